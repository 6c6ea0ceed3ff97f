"""`make bench`: the app under gunicorn with its production configuration, a year of data, load from wrk.

For each database (SQLite in a temporary folder; PostgreSQL too when TRIAGE_BENCH_POSTGRES_URL names an
EMPTY database the benchmark may fill and drop tables in) it:

1. migrates a fresh database (`flask db upgrade`) and loads 1,000,000 past encounters with the bulk generator,
   plus today's bookings (some already checked in) and two staff accounts;
2. starts gunicorn with gunicorn.conf.py (the production settings: workers, threads, access log), behind a
   pretend proxy (TRIAGE_PROXY_HOPS=1) so that each simulated phone has its own address for the rate limits;
3. drives each operation alone with wrk (16 connections, time-bounded), each run preceded by the framework
   floor (GET /healthz of the same app under the same server), then the morning's mix of all of them;
4. prints a table and writes bench/results.json (the first database's figures at the top level, every
   database's under "runs").

    .venv/bin/python -m bench.run                      # what `make bench` runs
    .venv/bin/python -m bench.run --smoke --output /tmp/r.json   # a tiny run, as the test suite does

The targets are ratios to the floor of the same run (issue 8): see TARGETS.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
OPERATIONS = ("prescreen_submit", "status_read", "check_in", "triage", "queue_read", "board", "dashboard",
              "weekly_report")
# Minimum ratio to the floor, and p99 / p50 ceilings in ms.
TARGETS: dict[str, dict[str, float]] = {
    "prescreen_submit": {"ratio": 0.25}, "triage": {"ratio": 0.20}, "queue_read": {"ratio": 0.35, "p99_ms": 50},
    "board": {"ratio": 0.60}, "dashboard": {"p50_ms": 200}, "weekly_report": {"p50_ms": 2000},
}
NURSE, SUPERVISOR = "bench-nurse", "bench-supervisor"
PASSWORD = "bench-password-not-secret"  # a throwaway account in a throwaway database


@dataclass
class Scale:
    """How big and how long: the full benchmark, or the smoke run of the test suite."""

    encounters: int = 1_000_000
    # 5 s per operation and 2 s per floor (wrk takes whole seconds): both databases within 5 minutes even on this
    # VM's slowest days (5 min 38 s with 6 s and 3 s on 2026-12-02, engine 13,500 assessments/s).
    seconds: float = 5.0
    floor_seconds: float = 2.0
    mix_seconds: float = 10.0
    connections: int = 16
    wrk_threads: int = 2
    # Codes are consumed once: enough for 5 s of the fastest VM seen (1,200 check-ins/s, 800 triages/s) twice over.
    check_in_pool: int = 15_000
    triage_pool: int = 10_000
    mix_pool: int = 2_000
    engine_seconds: float = 3.0


SMOKE = Scale(encounters=3_000, seconds=1.0, floor_seconds=0.5, mix_seconds=1.0, connections=4, check_in_pool=3_000,
              triage_pool=3_000, mix_pool=1_000, engine_seconds=0.2)


@dataclass
class Run:
    """One database's results."""

    database: str
    date: str
    floor_rps: float = 0.0
    engine_assessments_per_s: float = 0.0
    operations: dict[str, dict[str, Any]] = field(default_factory=dict)
    floors: list[float] = field(default_factory=list)
    bulk_seconds: float = 0.0
    encounters: int = 0
    workers: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"database": self.database, "date": self.date, "floor_rps": round(self.floor_rps, 1),
                "engine_assessments_per_s": round(self.engine_assessments_per_s),
                "operations": self.operations, "floor_runs_rps": [round(f, 1) for f in self.floors],
                "encounters": self.encounters, "bulk_seconds": round(self.bulk_seconds, 1), "workers": self.workers,
                "machine": machine(), "targets_met": targets_met(self.operations)}


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


def targets_met(operations: dict[str, dict[str, Any]]) -> dict[str, bool]:
    met = {}
    for name, target in TARGETS.items():
        result = operations.get(name)
        if result is None:
            continue
        met[name] = (result["errors"] == 0
                     and result["ratio"] >= target.get("ratio", 0)
                     and result["p99_ms"] <= target.get("p99_ms", float("inf"))
                     and result["p50_ms"] <= target.get("p50_ms", float("inf")))
    if "mix" in operations:
        met["mix"] = operations["mix"]["errors"] == 0
    return met


# --- the database ------------------------------------------------------------------------------------------


def bench_policy(folder: Path) -> Path:
    """The hospital's policy as a large hospital runs it at its morning peak, whatever the time the benchmark runs:
    the outpatient clinics open (so stable patients go to them, not to emergency), room for the day's bookings."""
    policy = yaml.safe_load((ROOT / "workflows" / "policy.yaml").read_text())
    every_day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    policy["version"] = f"{policy['version']}-bench"
    policy["outpatient_hours"].update(days=every_day, opens="00:00", closes="24:00")
    for spec in policy["streams"].values():
        spec.update(days=every_day, opens="00:00", closes="24:00")
        if spec.get("bookable_online", True):
            spec["capacity_per_slot"] = 2000
    path = folder / "policy.yaml"
    path.write_text(yaml.safe_dump(policy, allow_unicode=True, sort_keys=False))
    return path


BENCH_REDIS = "redis://127.0.0.1:6379/15"  # a database of its own, emptied before each run


def ratelimit_storage() -> str:
    """Where the server counts its rate limits, as in production with several workers: in Redis, shared by them
    (TRIAGE_RATELIMIT_STORAGE_URI when set, else the local server). Without Redis, in each worker's memory."""
    configured = os.environ.get("TRIAGE_RATELIMIT_STORAGE_URI")
    if configured:
        return configured
    try:
        import redis

        client = redis.Redis.from_url(BENCH_REDIS, socket_connect_timeout=1)
        client.flushdb()  # a previous run's counters (the same simulated addresses) would refuse this run's requests
        client.close()
    except Exception:
        print("(no Redis at 127.0.0.1:6379: rate limits are counted in each worker's memory)", flush=True)
        return "memory://"
    return BENCH_REDIS


def environment(url: str, policy: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRIAGE_", "GUNICORN_"))}
    env.update(TRIAGE_DATABASE_URL=url, TRIAGE_POLICY=str(policy), TRIAGE_SECRET_KEY="bench-" + os.urandom(16).hex(),
               TRIAGE_BIND=f"127.0.0.1:{port}", TRIAGE_PROXY_HOPS="1", TRIAGE_SECURE_COOKIES="0",
               TRIAGE_RATELIMIT_STORAGE_URI=ratelimit_storage())
    for key in ("GUNICORN_CMD_ARGS", "TRIAGE_WORKERS", "TRIAGE_THREADS"):  # to compare server models
        if key in os.environ:
            env[key] = os.environ[key]
    return env


def empty_postgres(url: str) -> None:
    """Drop what a previous run left in the benchmark's PostgreSQL database."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def load(env: dict[str, str], scale: Scale, folder: Path) -> tuple[float, dict[str, str]]:
    """Migrate, load the year and today's bookings; write the data files of load.lua. Returns the bulk time."""
    subprocess.run([str(BIN / "flask"), "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env=env, check=True,
                   capture_output=True)
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        from sqlalchemy import text

        from triage import create_app
        from triage.bulk import generate_bookings, generate_encounters
        from triage.domain.reports import IsoWeek
        from triage.hospital import effective_policy, forget_cached_policy
        from triage.models import Role, utcnow
        from triage.services import create_user
        from triage.services.staff import issue_token
        from triage.web.board import board_key

        forget_cached_policy()
        app = create_app()
        db = app.extensions["triage.db"]
        with app.app_context():
            session = db.session()
            nurse = create_user(session, username=NURSE, password=PASSWORD, role=Role.NURSE)
            create_user(session, username=SUPERVISOR, password=PASSWORD, role=Role.SUPERVISOR)
            token = issue_token(session, user=nurse, label="bench")
            policy = effective_policy(session)
            result = generate_encounters(session, policy, scale.encounters, staff_ids=[nurse.id or 0])
            pools = {"check_in": scale.check_in_pool, "mix_check_in": scale.mix_pool,
                     "triage": scale.triage_pool, "mix_triage": scale.mix_pool}
            booked = pools["check_in"] + pools["mix_check_in"]
            bookings = generate_bookings(session, policy, booked + pools["triage"] + pools["mix_triage"],
                                         arrived=pools["triage"] + pools["mix_triage"])
            # Fresh statistics, and on PostgreSQL a vacuumed table as autovacuum keeps it (the visibility map lets
            # the latest-change probe of a queue be an index-only scan).
            with db.engine.connect() as conn:
                if db.is_sqlite:
                    conn.execute(text("ANALYZE"))
                    conn.commit()
                else:
                    conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
            today = policy.local(utcnow()).date()
            config = {"bearer": token, "board_key": board_key("outpatient"),
                      "booking_day": (today + timedelta(days=1)).isoformat(),
                      "week": str(IsoWeek.of(today).shifted(-1))}
            session.close()
        db.dispose()
        if db.is_sqlite:
            # Start from a quiet disk: fold the load into the database file now, or the first writer's checkpoint
            # would flush the whole bulk load inside the measured pre-screens.
            with contextlib.closing(sqlite3.connect(str(db.url.database), isolation_level=None)) as raw:
                raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        os.sync()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    start = 0
    for name, size in pools.items():
        (folder / name).write_text("\n".join(b.reference for b in bookings[start:start + size]) + "\n")
        start += size
    (folder / "tokens").write_text("\n".join(b.status_token for b in bookings) + "\n")
    return result.seconds, config


# --- the server ---------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def gunicorn(env: dict[str, str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The app under gunicorn with gunicorn.conf.py; stopped (SIGTERM) on leaving."""
    with log.open("wb") as out:
        server = subprocess.Popen([str(BIN / "gunicorn"), "--config", "gunicorn.conf.py", "wsgi:app"], cwd=ROOT,
                                  env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if request(port, "GET", "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not start: see {log}\n{log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield server
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def workers_of(master: int) -> list[int]:
    """The gunicorn master's worker processes."""
    children = Path(f"/proc/{master}/task/{master}/children")
    return [int(pid) for pid in children.read_text().split()] if children.exists() else []


def peak_rss_mb(pid: int) -> float:
    """A process's peak resident memory (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def request(port: int, method: str, path: str, body: str | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read().decode()
    finally:
        conn.close()


def login(port: int, username: str) -> str:
    """Log a staff member in through the login form; returns the Cookie header of the session."""
    _, headers, page = request(port, "GET", "/login")
    cookie = headers["set-cookie"].split(";", 1)[0]
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    if match is None:
        raise RuntimeError("no CSRF token on the login page")
    status, headers, _ = request(
        port, "POST", "/login", urlencode({"csrf_token": match.group(1), "username": username, "password": PASSWORD}),
        {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie})
    if status != 302:
        raise RuntimeError(f"logging {username} in failed: {status}")
    cookie = headers["set-cookie"].split(";", 1)[0]
    # The cookie a browser holds once its first page is shown (the welcome message read, the page's CSRF token
    # in the session): what a screen then polls with. The login's own cookie would make every request of the run
    # add a CSRF token to the session and send the cookie again, as no browser does.
    status, headers, _ = request(port, "GET", urlsplit(headers["location"]).path, headers={"Cookie": cookie})
    if status != 200:
        raise RuntimeError(f"{username}'s first page after logging in answered {status}")
    return headers["set-cookie"].split(";", 1)[0] if "set-cookie" in headers else cookie


# --- the load ----------------------------------------------------------------------------------------------


def wrk(port: int, op: str, seconds: float, scale: Scale, folder: Path) -> dict[str, Any]:
    """One time-bounded wrk run of an operation; its rate, latency and errors."""
    command = ["wrk", "-t", str(scale.wrk_threads), "-c", str(scale.connections), "-d", f"{max(seconds, 1):g}s",
               "--timeout", "10s", "-s", str(ROOT / "bench" / "load.lua"), f"http://127.0.0.1:{port}",
               "--", op, str(folder), str(scale.wrk_threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=seconds + 60)
    line = next((line for line in done.stdout.splitlines() if line.startswith("BENCH ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({op}): {done.stdout}\n{done.stderr}")
    raw = json.loads(line[len("BENCH "):])
    if done.stderr.strip():
        print(done.stderr.strip(), file=sys.stderr)
    return {"rps": raw["requests"] / (raw["duration_us"] / 1e6), "p50_ms": raw["p50_us"] / 1000,
            "p99_ms": raw["p99_us"] / 1000, "errors": raw["errors"], "statuses": raw["statuses"],
            "requests": raw["requests"]}


def run_database(label: str, url: str, scale: Scale, engine_rate: float) -> Run:
    run = Run(database=label, date=datetime.now(UTC).isoformat(timespec="seconds"),
              engine_assessments_per_s=engine_rate, encounters=scale.encounters)
    with tempfile.TemporaryDirectory(prefix="triage-bench-") as name:
        folder = Path(name)
        if label == "sqlite":
            url = f"sqlite:///{folder / 'bench.db'}"
        else:
            empty_postgres(url)
        port = free_port()
        env = environment(url, bench_policy(folder), port)
        print(f"[{label}] loading {scale.encounters:,} past encounters and today's bookings …", flush=True)
        run.bulk_seconds, config = load(env, scale, folder)
        print(f"[{label}] bulk generation took {run.bulk_seconds:.1f} s", flush=True)
        with gunicorn(env, port, folder / "gunicorn.log") as server:
            config["nurse_cookie"] = login(port, NURSE)
            config["supervisor_cookie"] = login(port, SUPERVISOR)
            (folder / "config").write_text("".join(f"{k} {v}\n" for k, v in config.items()))
            for op in ("floor", "status_read", "queue_read", "board", "dashboard"):  # warm every worker up
                wrk(port, op, min(1.0, scale.seconds), scale, folder)
            for op in OPERATIONS:
                floor = wrk(port, "floor", scale.floor_seconds, scale, folder)
                run.floors.append(floor["rps"])
                result = wrk(port, op, scale.seconds, scale, folder)
                run.operations[op] = result
                print(f"[{label}] {op:17s} {result['rps']:8.0f} req/s  (floor {floor['rps']:.0f})", flush=True)
            run.floors.append(wrk(port, "floor", scale.floor_seconds, scale, folder)["rps"])
            run.operations["mix"] = wrk(port, "mix", scale.mix_seconds, scale, folder)
            workers = workers_of(server.pid)
            run.workers = {"count": len(workers), "peak_rss_mb": [round(peak_rss_mb(p), 1) for p in workers],
                           "server": gunicorn_settings(env),
                           "rate_limits": env["TRIAGE_RATELIMIT_STORAGE_URI"].split("://", 1)[0]}
    run.floor_rps = statistics.median(run.floors)
    # Each operation against the floor measured just before and just after it: a shared VM's speed drifts within
    # a run, and the same drift then moves both. The mix against the floor just before it.
    for i, result in enumerate(run.operations.values()):
        around = run.floors[i:i + 2] if i + 1 < len(run.floors) else run.floors[-1:]
        result["ratio"] = round(result["rps"] / statistics.mean(around), 3)
        result["rps"] = round(result["rps"], 1)
        result["p50_ms"] = round(result["p50_ms"], 2)
        result["p99_ms"] = round(result["p99_ms"], 2)
    return run


def gunicorn_settings(env: dict[str, str]) -> str:
    out = subprocess.run([str(BIN / "gunicorn"), "--config", "gunicorn.conf.py", "--print-config", "wsgi:app"],
                         cwd=ROOT, env=env, capture_output=True, text=True, check=False).stdout
    settings = dict(re.findall(r"^(workers|worker_class|threads)\s*=\s*(\S+)", out, re.MULTILINE))
    return ", ".join(f"{k}={v}" for k, v in sorted(settings.items())) or "see gunicorn.conf.py"


def table(run: Run) -> str:
    lines = [f"{run.database}: floor {run.floor_rps:,.0f} req/s (GET /healthz), engine "
             f"{run.engine_assessments_per_s:,.0f} assessments/s on one core, {run.encounters:,} past encounters "
             f"(bulk {run.bulk_seconds:.1f} s), workers {run.workers.get('server', '')}, rate limits in "
             f"{run.workers.get('rate_limits', '?')}, peak RSS per worker "
             f"{run.workers.get('peak_rss_mb')} MB",
             f"{'operation':18s}{'req/s':>9s}{'ratio':>8s}{'p50 ms':>9s}{'p99 ms':>9s}{'errors':>8s}  target"]
    met = targets_met(run.operations)
    for name, r in run.operations.items():
        target = TARGETS.get(name, {})
        wanted = ", ".join(f"{'≥' if k == 'ratio' else '<'} {v:g}{'' if k == 'ratio' else ' ms ' + k[:3]}"
                           for k, v in target.items())
        verdict = "" if name not in met else ("  ok" if met[name] else "  MISSED")
        lines.append(f"{name:18s}{r['rps']:9.0f}{r['ratio']:8.2f}{r['p50_ms']:9.1f}{r['p99_ms']:9.1f}"
                     f"{r['errors']:8d}  {wanted}{verdict}{'  ' + r['statuses'] if r['statuses'] else ''}")
    return "\n".join(lines)


def ensure_wrk() -> None:
    if shutil.which("wrk"):
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, capture_output=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        return
    raise SystemExit("wrk is needed: install it (Debian: apt-get install wrk)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny, quick run (the test suite's)")
    parser.add_argument("--encounters", type=int, help="past encounters to load (default 1,000,000)")
    parser.add_argument("--seconds", type=float, help="seconds per operation (default 6)")
    parser.add_argument("--only", choices=("sqlite", "postgresql"), help="one database only")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results.json")
    args = parser.parse_args(argv)
    scale = SMOKE if args.smoke else Scale()
    if args.encounters is not None:
        scale.encounters = args.encounters
    if args.seconds is not None:
        scale.seconds = args.seconds
    ensure_wrk()
    sys.path.insert(0, str(ROOT))
    from bench.engine import measure

    engine_rate = measure(scale.engine_seconds)
    print(f"assessment engine: {engine_rate:,.0f} assessments/s on one core", flush=True)
    databases = [("sqlite", "")]
    pg = os.environ.get("TRIAGE_BENCH_POSTGRES_URL")
    if pg:
        databases.append(("postgresql", pg))
    else:
        print("(set TRIAGE_BENCH_POSTGRES_URL to an empty PostgreSQL database to measure PostgreSQL too)")
    if args.only:
        databases = [d for d in databases if d[0] == args.only]
    runs = [run_database(label, url, scale, engine_rate) for label, url in databases]
    for run in runs:
        print()
        print(table(run))
    results = {**runs[0].as_json(), "runs": [run.as_json() for run in runs]}
    args.output.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(f"\nwritten to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
