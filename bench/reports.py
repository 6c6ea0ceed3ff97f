"""Benchmark of the supervisors' reads with a year of data: 1,000,000 encounters.

Generates the encounters into a temporary SQLite database (and into PostgreSQL when
TRIAGE_BENCH_POSTGRES_URL is set: an EMPTY database it may fill and drop tables in), then times the live
dashboard (the service behind the page and its JSON, as one request does), the weekly restoration report
and the daily report, and prints the numbers.

    .venv/bin/python bench/reports.py [encounters]          # default 1000000
    TRIAGE_BENCH_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/bench .venv/bin/python bench/reports.py

Targets (issue 6): dashboard under 200 ms, weekly report under 2 s, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: bench/ is on the path, the project root is not
    sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402
from sqlmodel import SQLModel  # noqa: E402

import triage.models  # noqa: E402,F401 - registers the tables
from triage import create_app  # noqa: E402
from triage.bulk import generate_encounters  # noqa: E402
from triage.domain.reports import IsoWeek  # noqa: E402
from triage.hospital import effective_policy, forget_cached_policy, workflow  # noqa: E402
from triage.models import utcnow  # noqa: E402
from triage.services import oversight, reports  # noqa: E402

TARGETS = {"dashboard": 0.200, "weekly report": 2.0}


def _time(fn: Callable[[], Any], runs: int) -> tuple[float, float]:
    """Median and worst wall time of `runs` calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), max(times)


def prepare(url: str) -> None:
    """Create the schema in an empty database (dropping what a previous run left)."""
    engine = create_engine(url)
    if url.startswith("postgresql"):
        SQLModel.metadata.drop_all(engine)
        with engine.begin() as conn:
            conn.execute(text("DROP FUNCTION IF EXISTS transition_log_append_only() CASCADE"))
    SQLModel.metadata.create_all(engine)
    engine.dispose()


def run(url: str, label: str, n: int) -> dict[str, float]:
    """Fill `url` with n encounters and time the reads; returns the medians in seconds."""
    prepare(url)
    forget_cached_policy()
    app = create_app({"TESTING": True, "SECRET_KEY": "bench", "DATABASE_URL": url, "RATELIMIT_ENABLED": False})
    db = app.extensions["triage.db"]
    results: dict[str, float] = {}
    with app.app_context():
        session = db.session()
        policy = effective_policy(session)
        result = generate_encounters(session, policy, n, seed=2026, history_days=7)
        session.close()
        results["generate"] = result.seconds
        print(f"[{label}] generated {result.encounters:,} encounters ({result.first_day} to {result.last_day}), "
              f"{result.transitions:,} log rows, {result.assessments:,} assessments in {result.seconds:.1f} s")
        if url.startswith("postgresql"):
            with db.engine.begin() as conn:
                conn.execute(text("ANALYZE"))
        else:
            with db.engine.begin() as conn:
                conn.exec_driver_sql("ANALYZE")
        session = db.session(readonly=True)
        today = policy.local(utcnow()).date()
        week = IsoWeek.of(today).shifted(-1)
        wf = workflow()

        def dashboard() -> None:
            oversight.dashboard(session, policy=policy, workflow=wf)
            session.rollback()

        def weekly() -> None:
            report = reports.weekly_report(session, policy=policy, week=week)
            reports.weekly_tables(report, "zh")
            session.rollback()

        def daily() -> None:
            report = reports.daily_report(session, policy=policy, day=today)
            reports.daily_tables(report, "zh")
            session.rollback()

        def states() -> None:
            oversight.state_counts(session, workflow=wf, policy=policy)
            session.rollback()

        for name, fn, runs in (("dashboard", dashboard, 20), ("workflow counts", states, 20),
                               ("weekly report", weekly, 10), ("daily report", daily, 10)):
            median, worst = _time(fn, runs)
            results[name] = median
            target = TARGETS.get(name)
            verdict = "" if target is None else (
                "  OK" if median < target else f"  OVER the {target * 1000:.0f} ms target")
            print(f"[{label}] {name:16s} median {median * 1000:8.1f} ms   worst {worst * 1000:8.1f} ms{verdict}")
        board = oversight.dashboard(session, policy=policy, workflow=wf)
        print(f"[{label}] today: {board.totals['waiting']} waiting, {board.totals['completed_today']} completed, "
              f"{sum(board.arrivals_total)} arrivals; weekly report {week}: "
              f"{reports.weekly_report(session, policy=policy, week=week).total.pct or 0:.1f}% restored")
        session.close()
    db.dispose()
    return results


def main(argv: list[str]) -> int:
    """Run the benchmark on SQLite, and on PostgreSQL when configured."""
    n = int(argv[0]) if argv else 1_000_000
    with tempfile.TemporaryDirectory(prefix="triage-bench-") as folder:
        run(f"sqlite:///{folder}/bench.db", "sqlite", n)
    pg = os.environ.get("TRIAGE_BENCH_POSTGRES_URL")
    if pg:
        run(pg, "postgresql", n)
    else:
        print("(set TRIAGE_BENCH_POSTGRES_URL to an empty PostgreSQL database to measure PostgreSQL too)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
