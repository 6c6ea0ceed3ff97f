"""Measure the live-update options for the waiting-room boards and the queue screens.

    .venv/bin/python tools/measure_live_updates.py [--past 1000000] [--boards 60] [--seconds 30]

What it does (the numbers are in README.md, "Live updates"):
1. Builds a fresh SQLite database (or --database-url) with N past encounters and a live morning
   (waiting and called patients in every stream).
2. Serves the app with gunicorn and the project's gunicorn.conf.py (gthread workers: by default
   2 workers x 4 threads = 8 requests at a time), plus one measurement-only route that streams
   server-sent events the way an SSE board would (one board read per second, never ending).
3. Server-sent events: opens as many streams as the server has threads (one small waiting room of
   boards) and times a nurse's request meanwhile.
4. Polling: --boards boards poll the board fragment every 3 s and 10 nurses poll the queue fragment
   every 5 s for --seconds; reports latency percentiles. Then times the board fragment, the queue
   fragment and the staff API's queue one request at a time.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PASSWORD = "measure-password-123"  # noqa: S105 - a throw-away account in a throw-away database


def make_sse_app() -> Any:
    """The app plus /_measure/sse/<area>: an SSE stream sending the board every second (gunicorn entry)."""
    from flask import Response, stream_with_context

    from triage import create_app
    from triage.db import get_db
    from triage.services import onsite

    app = create_app()

    @app.get("/_measure/sse/<area>")
    def sse(area: str) -> Response:
        """An SSE stream of the board, as an SSE design would serve it."""
        def events() -> Iterator[str]:
            """One event a second, for ever."""
            while True:
                with get_db().session(readonly=True) as session:
                    board = onsite.read_board(session, area=area)
                yield f"data: {len(board.called)} called, {len(board.upcoming)} next\n\n"
                time.sleep(1)

        return Response(stream_with_context(events()), mimetype="text/event-stream")

    return app


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def build_database(url: str, past: int) -> None:
    """Schema, N past encounters, a live morning in every stream, a nurse with an API token."""
    from sqlalchemy import create_engine, insert
    from sqlmodel import Session, SQLModel

    import triage.models as models
    from triage.models import Encounter, Role, utcnow
    from triage.services import create_user, issue_token

    engine = create_engine(url)
    SQLModel.metadata.drop_all(engine)
    SQLModel.metadata.create_all(engine)
    now = utcnow()
    streams = ("fever", "emergency", "general", "chronic")
    started = time.monotonic()
    batch = 50_000
    with engine.begin() as conn:
        for offset in range(0, past, batch):
            rows = []
            for i in range(offset, min(past, offset + batch)):
                at = now - timedelta(days=1 + i % 700, minutes=i % 600)
                rows.append({
                    "reference": f"P{i:07d}", "origin": "online" if i % 3 else "walk_in",
                    "state": ("completed", "completed", "completed", "no_show", "referred",
                              "left_without_being_seen")[i % 6],
                    "workflow_name": "encounter", "workflow_version": "1", "policy_version": "measure",
                    "version": 6, "stream": streams[i % 4], "cn_level": (i % 4) + 1 if i % 4 == 1 else None,
                    "acuity_sort": (i % 4) + 1 if i % 4 == 1 else 5, "priority_sort": i % 2,
                    "priority_flags": "", "isolation_required": False, "patient_name": None,
                    "order_at": at, "queued_at": at, "created_at": at, "updated_at": at, "call_count": 1,
                    "ticket_day": (at.date()), "ticket_no": i, "ticket": f"{'FEGC'[i % 4]}-{i:07d}",
                })
            conn.execute(insert(Encounter), rows)
    print(f"  {past:,} past encounters inserted in {time.monotonic() - started:.0f} s")
    names = ["张三明", "李四", "王五", "赵六", "John Smith", "Maria Garcia", "欧阳小明", "钱七"]
    live = []
    for s_index, stream in enumerate(streams):
        for n in range(45):
            at = now - timedelta(minutes=90 - n * 2)
            live.append({
                "reference": f"L{s_index}{n:06d}", "origin": "online", "state": "called" if n < 5 else "waiting",
                "workflow_name": "encounter", "workflow_version": "1", "policy_version": "measure", "version": 4,
                "stream": stream, "cn_level": 3 if stream == "emergency" else None,
                "acuity_sort": 3 if stream == "emergency" else 5, "priority_sort": n % 3 and 1,
                "priority_flags": "" if n % 3 else "elderly", "isolation_required": stream == "fever",
                "patient_name": names[n % len(names)], "age_years": 30 + n, "sex": "FM"[n % 2],
                "order_at": at, "queued_at": at, "called_at": now if n < 5 else None, "call_count": int(n < 5),
                "created_at": at, "updated_at": at, "ticket_day": models.utcnow().date() + timedelta(days=1),
                "ticket_no": n + 1, "ticket": f"{'FEGC'[s_index]}-{n + 1:03d}",
            })
    with engine.begin() as conn:
        conn.execute(insert(Encounter), live)
    with Session(engine) as session:
        user = create_user(session, username="measure", password=PASSWORD, role=Role.NURSE)
        token = issue_token(session, user=user, label="measure")
    Path(os.environ["MEASURE_TOKEN_FILE"]).write_text(token)
    engine.dispose()


class Client:
    """A keep-alive HTTP client with cookies, for one simulated screen."""

    def __init__(self, port: int, timeout: float = 10) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, body: str | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, str, float]:
        """Send a request; returns (status, body, seconds); status 0 when it timed out."""
        hdrs = {"Accept-Language": "zh-CN", **(headers or {})}
        if self.cookies:
            hdrs["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if body is not None:
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        started = time.perf_counter()
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=body, headers=hdrs)
                response = self.conn.getresponse()
                text = response.read().decode("utf-8", "replace")
                break
            except TimeoutError:
                self.conn.close()
                return 0, "", time.perf_counter() - started
            except OSError:
                # The server closed an idle keep-alive connection: reconnect once, as browsers do.
                self.conn.close()
                if attempt == 2:
                    return 0, "", time.perf_counter() - started
        elapsed = time.perf_counter() - started
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                self.cookies[name] = rest.split(";", 1)[0]
        return response.status, text, elapsed

    def login(self) -> None:
        """Log in through the real form (with its CSRF token)."""
        from urllib.parse import urlencode

        _, page, _ = self.request("GET", "/login")
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
        assert token, "no CSRF token on the login page"
        status, _, _ = self.request("POST", "/login", urlencode(
            {"username": "measure", "password": PASSWORD, "csrf_token": token.group(1)}))
        assert status == 302, f"login failed: {status}"


def percentiles(samples: list[float]) -> str:
    """p50 / p95 / p99 / max in milliseconds."""
    if not samples:
        return "no samples"
    ordered = sorted(samples)

    def at(q: float) -> float:
        """The q-quantile in milliseconds."""
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return (f"n={len(ordered)} p50={statistics.median(ordered) * 1000:.1f} ms p95={at(0.95):.1f} ms "
            f"p99={at(0.99):.1f} ms max={ordered[-1] * 1000:.1f} ms")


def measure_sse(port: int, slots: int) -> None:
    """Hold `slots` SSE streams open and time a nurse's request meanwhile."""
    print(f"\nServer-sent events: {slots} open streams (= the server's threads)")
    stop = threading.Event()
    opened = threading.Semaphore(0)

    def board_stream() -> None:
        """One board holding an SSE stream open."""
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("GET", "/_measure/sse/fever")
        response = conn.getresponse()
        opened.release()
        while not stop.is_set():
            if not response.fp or not response.fp.readline():
                break
        conn.close()

    threads = [threading.Thread(target=board_stream, daemon=True) for _ in range(slots)]
    for thread in threads:
        thread.start()
    for _ in threads:
        opened.acquire(timeout=10)
    time.sleep(1)
    nurse = Client(port, timeout=10)
    status, _, elapsed = nurse.request("GET", "/healthz")
    verdict = "TIMED OUT (no thread free)" if status == 0 else f"{status} in {elapsed * 1000:.0f} ms"
    print(f"  a nurse's request while {slots} boards stream: {verdict} after {elapsed:.1f} s")
    stop.set()


def measure_polling(port: int, key: str, token: str, boards: int, seconds: int) -> None:
    """Boards polling every 3 s and nurses polling every 5 s, concurrently."""
    print(f"\nPolling: {boards} boards every 3 s + 10 nurses' queue screens every 5 s, for {seconds} s")
    board_times: list[float] = []
    queue_times: list[float] = []
    failures: list[int] = []
    # Log the nurses in first: password hashing is deliberately slow and is not what is measured.
    nurses = [Client(port) for _ in range(10)]
    for client in nurses:
        client.login()
    deadline = time.monotonic() + seconds

    def board(offset: float) -> None:
        """One board polling its fragment every 3 s (with If-None-Match)."""
        client = Client(port)
        time.sleep(offset)
        etag = ""
        while time.monotonic() < deadline:
            status, _, elapsed = client.request("GET", f"/board/fever/partial?key={key}",
                                                headers={"If-None-Match": etag} if etag else None)
            if status not in (200, 304):
                failures.append(status)
            board_times.append(elapsed)
            time.sleep(3)

    def nurse(client: Client, offset: float) -> None:
        """One clinic screen polling its queue fragment every 5 s."""
        time.sleep(offset)
        while time.monotonic() < deadline:
            status, _, elapsed = client.request("GET", "/queues/general/partial")
            if status != 200:
                failures.append(status)
            queue_times.append(elapsed)
            time.sleep(5)

    threads = [threading.Thread(target=board, args=(i * 3 / boards,)) for i in range(boards)]
    threads += [threading.Thread(target=nurse, args=(client, i * 0.5)) for i, client in enumerate(nurses)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(f"  board fragment: {percentiles(board_times)}")
    print(f"  queue fragment: {percentiles(queue_times)}")
    print(f"  failed requests: {len(failures)} {sorted(set(failures))}")

    print("\nOne request at a time (server cost per poll):")
    client = Client(port)
    samples = [client.request("GET", f"/board/fever/partial?key={key}")[2] for _ in range(300)]
    print(f"  board fragment (fever, 45 live tickets): {percentiles(samples)}")
    nurse_client = Client(port)
    nurse_client.login()
    samples = [nurse_client.request("GET", "/queues/general/partial")[2] for _ in range(300)]
    print(f"  queue fragment (general, 45 live cases): {percentiles(samples)}")
    api = Client(port)
    samples = [api.request("GET", "/api/v1/queues/general", headers={"Authorization": f"Bearer {token}"})[2]
               for _ in range(300)]
    print(f"  GET /api/v1/queues/general (JSON):      {percentiles(samples)}")


def main() -> int:
    """Build the database, start gunicorn, measure SSE and polling, print the results."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--past", type=int, default=1_000_000, help="past encounters in the database")
    parser.add_argument("--boards", type=int, default=60, help="boards polling at once")
    parser.add_argument("--seconds", type=int, default=30, help="length of the polling run")
    parser.add_argument("--database-url", help="default: a fresh SQLite file in a temporary folder")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="triage-measure-"))
    url = args.database_url or f"sqlite:///{folder / 'measure.db'}"
    os.environ["MEASURE_TOKEN_FILE"] = str(folder / "token")
    print(f"Database: {url.split('@')[-1]}")
    build_database(url, args.past)
    token = (folder / "token").read_text()
    port = _free_port()
    secret = secrets.token_hex(16)
    env = {**os.environ, "TRIAGE_SECRET_KEY": secret, "TRIAGE_DATABASE_URL": url,
           "TRIAGE_BIND": f"127.0.0.1:{port}", "TRIAGE_SECURE_COOKIES": "0"}
    workers, threads = int(env.get("TRIAGE_WORKERS", "2")), int(env.get("TRIAGE_THREADS", "4"))
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    server = subprocess.Popen(  # noqa: S603 - our own gunicorn with fixed arguments
        [gunicorn, "--config", str(ROOT / "gunicorn.conf.py"), "--access-logfile", "/dev/null",
         "tools.measure_live_updates:make_sse_app()"], cwd=ROOT, env=env)
    try:
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.1)
        print(f"gunicorn: {workers} gthread workers x {threads} threads = {workers * threads} requests at a time")
        os.environ.update(TRIAGE_SECRET_KEY=secret, TRIAGE_DATABASE_URL=url)
        from triage import create_app
        from triage.web.board import board_key

        app = create_app()
        with app.app_context():
            key = board_key("fever")
        measure_polling(port, key, token, args.boards, args.seconds)
        measure_sse(port, workers * threads)
    finally:
        server.terminate()
        server.wait(timeout=20)
        if not args.database_url:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
