"""The benchmark's smoke run: `make bench` end to end with a tiny load, so it cannot rot.

Timings are not checked here (they are noisy); only that every operation ran, answered without errors,
and that bench/results.json has the documented shape.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OPERATIONS = {"prescreen_submit", "status_read", "check_in", "triage", "queue_read", "board", "dashboard",
              "weekly_report", "mix"}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("wrk") is None and os.geteuid() != 0,
                       reason="wrk is not installed (Debian: apt-get install wrk); .ci/run installs it"),
]


def test_the_benchmark_runs_every_operation_without_errors_and_writes_its_results(tmp_path: Path) -> None:
    output = tmp_path / "results.json"
    env = {k: v for k, v in os.environ.items() if k != "TRIAGE_BENCH_POSTGRES_URL"}
    done = subprocess.run([sys.executable, "-m", "bench.run", "--smoke", "--output", str(output)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(output.read_text())
    assert results["database"] == "sqlite"
    assert {"date", "floor_rps", "engine_assessments_per_s", "operations", "runs"} <= set(results)
    assert results["floor_rps"] > 0 and results["engine_assessments_per_s"] > 0
    assert set(results["operations"]) == OPERATIONS
    for name, op in results["operations"].items():
        assert {"rps", "ratio", "p50_ms", "p99_ms", "errors"} <= set(op), name
        assert op["rps"] > 0, name
        assert op["errors"] == 0, (name, op["statuses"], done.stderr[-2000:])
    assert results["workers"]["count"] >= 1 and all(mb > 0 for mb in results["workers"]["peak_rss_mb"])
    assert "sqlite" in done.stdout and "prescreen_submit" in done.stdout  # the table was printed
