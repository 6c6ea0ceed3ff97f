"""The real server, a plain HTTP client and the properties every case keeps, for the reliability tests.

The server is gunicorn with gunicorn.conf.py and four workers, exactly as `make run` starts it, on a database
migrated with `flask --app wsgi db upgrade`. The test process seeds and reads the same database directly
(triage.services, triage.bulk), and talks to the server over real HTTP with the standard library only.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import create_engine, text
from sqlmodel import col, select

from tests.conftest import PG_URL, database_beside
from tests.onsite_support import always_open_policy
from triage.bulk import Booking, generate_bookings
from triage.db import Database
from triage.domain.policy import Stream, load_policy
from triage.models import Assessment, Encounter, Role, TicketCounter, TransitionLog, utcnow
from triage.services import create_user, issue_token

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
WORKERS = 4
PASSWORD = "correct-horse-battery"

# What the client sees when the server went away under a request: the outcome is unknown.
INTERRUPTED = (OSError, http.client.HTTPException)

GENERAL_VITALS: dict[str, Any] = {"temperature_c": 36.6, "heart_rate": 78, "respiratory_rate": 16, "sbp": 122,
                                  "spo2": 98, "avpu": "A"}
FEVER_VITALS: dict[str, Any] = {**GENERAL_VITALS, "temperature_c": 38.4}
EMERGENCY_VITALS: dict[str, Any] = {**GENERAL_VITALS, "spo2": 91}  # the engine itself sends them to emergency
# Where each staff action leaves a case (the triage request also queues it: triage, then enqueue).
DESTINATION = {"check_in": "arrived", "triage": "waiting", "call": "called", "start": "in_consultation",
               "complete": "completed"}


def triage_body(i: int) -> dict[str, Any]:
    """An on-site assessment that sends patient `i` to the general, fever or emergency queue in turn."""
    kind = i % 3
    if kind == 0:
        return dict(GENERAL_VITALS)
    if kind == 1:
        return dict(FEVER_VITALS)
    return dict(EMERGENCY_VITALS)


def walk_in_body(i: int) -> dict[str, Any]:
    """A walk-in registered and triaged in one request (streams in turn, like triage_body)."""
    return {"patient": {"age_years": 20 + i % 60, "sex": "FM"[i % 2], "name": f"来访{i}"},
            "assessment": triage_body(i)}


# --- HTTP --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """An HTTP answer: status, body (parsed when JSON) and headers (lower-case names)."""

    status: int
    body: Any
    headers: dict[str, str]

    @property
    def ok(self) -> bool:
        """2xx."""
        return 200 <= self.status < 300

    @property
    def text(self) -> str:
        """The body as text."""
        return self.body if isinstance(self.body, str) else json.dumps(self.body, ensure_ascii=False)


def request(port: int, method: str, path: str, *, body: Any = None, form: dict[str, str] | None = None,
            token: str | None = None, headers: dict[str, str | None] | None = None, timeout: float = 30) -> Reply:
    """One request on a new connection (English unless `headers` say otherwise; a None value leaves a header out);
    raises one of INTERRUPTED when no answer came."""
    wanted: dict[str, str | None] = {"Accept-Language": "en", **(headers or {})}
    sent = {k: v for k, v in wanted.items() if v is not None}
    payload = None
    if body is not None:
        payload = json.dumps(body).encode()
        sent["Content-Type"] = "application/json"
    elif form is not None:
        payload = urlencode(form).encode()
        sent["Content-Type"] = "application/x-www-form-urlencoded"
    if token:
        sent["Authorization"] = f"Bearer {token}"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=payload, headers=sent)
        response = conn.getresponse()
        raw = response.read().decode()
        answer = {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()
    parsed: Any = raw
    if answer.get("content-type", "").startswith("application/json"):
        parsed = json.loads(raw)
    return Reply(response.status, parsed, answer)


@dataclass
class Staff:
    """A nurse's API client (bearer token, English answers)."""

    port: int
    token: str

    def post(self, path: str, body: Any = None) -> Reply:
        """POST JSON to the API."""
        return request(self.port, "POST", f"/api/v1{path}", body=body if body is not None else {}, token=self.token)

    def get(self, path: str) -> Reply:
        """GET from the API."""
        return request(self.port, "GET", f"/api/v1{path}", token=self.token)

    def check_in(self, reference: str) -> Reply:
        """Check a pre-screened patient in."""
        return self.post(f"/encounters/{reference}/check-in")

    def triage(self, reference: str, body: dict[str, Any]) -> Reply:
        """Triage a checked-in patient (issues the ticket)."""
        return self.post(f"/encounters/{reference}/triage", body)

    def event(self, reference: str, trigger: str, body: dict[str, Any] | None = None) -> Reply:
        """A queue action: call, start, complete..."""
        return self.post(f"/encounters/{reference}/events/{trigger}", body)

    def walk_in(self, body: dict[str, Any]) -> Reply:
        """Register and triage a walk-in."""
        return self.post("/walk-ins", body)


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the server --------------------------------------------------------------------------------------------


class Server:
    """gunicorn with gunicorn.conf.py (4 sync workers) serving wsgi:app on 127.0.0.1:<port>."""

    def __init__(self, env: dict[str, str], port: int, log: Path) -> None:
        self.env, self.port, self.log = env, port, log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The master's pid."""
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 60) -> Server:
        """Start the server and wait until /healthz answers and every worker is up."""
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [str(BIN / "gunicorn"), "--config", "gunicorn.conf.py", "wsgi:app"], cwd=ROOT, env=self.env,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        """Wait for /healthz and all the workers (after start, or after a worker was killed)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if request(self.port, "GET", "/healthz", timeout=5).status == 200 and len(self.workers()) == WORKERS:
                    return
            except INTERRUPTED:
                pass
            assert self.process is not None
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn is not serving; its log:\n{self.log_text()[-3000:]}")
            time.sleep(0.1)

    def workers(self) -> list[int]:
        """The live worker processes (children of the master)."""
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        try:
            pids = [int(p) for p in children.read_text().split()]
        except OSError:
            return []
        return [p for p in pids if _alive(p)]

    def stop(self) -> None:
        """Graceful stop (SIGTERM to the master): workers finish the requests they are serving."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL to the whole server (master and workers), as a power cut or the OOM killer would."""
        if self.process is None or self.process.poll() is not None:
            return  # gone already (its workers leave when their master dies)
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def log_text(self) -> str:
        """What the server wrote so far (access and error log)."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def server_env(database_url: str, policy: Path, port: int) -> dict[str, str]:
    """The production environment of `make run`, plus the test's database, port and secret."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRIAGE_", "GUNICORN_"))}
    env.update(
        TRIAGE_DATABASE_URL=database_url, TRIAGE_POLICY=str(policy), TRIAGE_BIND=f"127.0.0.1:{port}",
        TRIAGE_WORKERS=str(WORKERS), TRIAGE_THREADS="1", TRIAGE_SECRET_KEY="reliability-" + os.urandom(16).hex(),
        TRIAGE_SECURE_COOKIES="0",
        # One trusted proxy hop: each simulated patient comes from an address of their own (X-Forwarded-For), so
        # the per-address pre-screen limits stay on as in production. The staff API has no rate limit.
        TRIAGE_PROXY_HOPS="1",
        # gunicorn's control socket defaults to one path per user: servers of parallel runs would share it.
        GUNICORN_CMD_ARGS="--no-control-socket",
    )
    return env


# --- the database ------------------------------------------------------------------------------------------


def fresh_database(folder: Path) -> str:
    """An empty database migrated by `flask --app wsgi db upgrade`: a SQLite file, or PostgreSQL when asked.

    PostgreSQL: a database of its own beside the test database (`<name>_reliability`), emptied for each test, so
    the other tests' schema (created without Alembic) is never touched.
    """
    if PG_URL:
        database_url = database_beside(PG_URL, "reliability")
        engine = create_engine(database_url)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    else:
        database_url = f"sqlite:///{folder / 'triage.db'}"
    migrate(database_url)
    return database_url


def migrate(database_url: str) -> None:
    """`flask --app wsgi db upgrade` on this database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIAGE_")}
    env.update(TRIAGE_DATABASE_URL=database_url, TRIAGE_SECRET_KEY="migrate-" + os.urandom(8).hex())
    done = subprocess.run([str(BIN / "flask"), "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


@dataclass(frozen=True)
class Case:
    """One encounter as stored, with its transition log (trigger, from, to) oldest first."""

    reference: str
    state: str
    version: int
    stream: str | None
    ticket: str | None
    ticket_day: Any
    ticket_no: int | None
    log: tuple[tuple[str, str | None, str], ...]
    onsite_assessments: int


@dataclass
class Hospital:
    """The test's database and policy, seen from the test process: seed it, then read it back."""

    url: str
    policy_path: Path
    _db: Database | None = field(default=None, repr=False)

    @property
    def db(self) -> Database:
        """Engines on the test's database (SQLite: the same write gate as the server's workers)."""
        if self._db is None:
            self._db = Database(self.url)
        return self._db

    def close(self) -> None:
        """Close the test process's connections."""
        if self._db is not None:
            self._db.dispose()

    def staff_token(self, username: str, role: Role = Role.NURSE) -> str:
        """A new staff account and a bearer token for it."""
        with self.db.session() as s:
            user = create_user(s, username=username, password=PASSWORD, role=role)
            return issue_token(s, user=user, label="reliability test")

    def bookings(self, n: int) -> list[Booking]:
        """`n` patients pre-screened online and booked for today (as submit_prescreen leaves them)."""
        policy = load_policy(self.policy_path)
        with self.db.session() as s:
            return generate_bookings(s, policy, n, now=utcnow())

    def cases(self) -> dict[str, Case]:
        """Every encounter with its log, by reference."""
        with self.db.session(readonly=True) as s:
            encounters = s.exec(select(Encounter)).all()
            logs: dict[int, list[tuple[str, str | None, str]]] = defaultdict(list)
            for row in s.exec(select(TransitionLog).order_by(col(TransitionLog.id))):
                logs[row.encounter_id].append((row.trigger, row.from_state, row.to_state))
            onsite: dict[int, int] = defaultdict(int)
            for encounter_id in s.exec(select(Assessment.encounter_id).where(Assessment.stage == "onsite")):
                onsite[encounter_id] += 1
            return {e.reference: Case(e.reference, e.state, e.version, e.stream, e.ticket, e.ticket_day, e.ticket_no,
                                      tuple(logs[e.id or 0]), onsite[e.id or 0]) for e in encounters}

    def counters(self) -> dict[tuple[Any, str], int]:
        """The last ticket number issued per (day, stream)."""
        with self.db.session(readonly=True) as s:
            return {(c.day, c.stream): c.last_no for c in s.exec(select(TicketCounter))}


def assert_consistent(hospital: Hospital) -> dict[str, Case]:
    """The properties every case keeps, whatever happened to the server or the clients.

    - The log tells the case's story: it starts at an entry, each row starts where the previous one ended, the
      last row ends in the case's state, and there is one row per version.
    - Never in between: no case is left `triaged` (the triage request queues it in the same transaction), and a
      case has a ticket and an on-site assessment exactly when its log says it was triaged.
    - Tickets are unique per stream per day, formatted from their number, and numbered 1..n without a gap or a
      duplicate; the counter stands at n.
    Returns the cases.
    """
    cases = hospital.cases()
    problems: list[str] = []
    numbers: dict[tuple[Any, str], list[int]] = defaultdict(list)
    for ref, case in cases.items():
        states = [case.log[0][1]] + [to for _, _, to in case.log] if case.log else []
        chained = all(frm == states[i] for i, (_, frm, _) in enumerate(case.log))
        if not case.log or case.log[0][1] is not None or not chained or states[-1] != case.state:
            problems.append(f"{ref}: log {case.log} does not lead to its state {case.state}")
        if len(case.log) != case.version:
            problems.append(f"{ref}: version {case.version} but {len(case.log)} log rows")
        triaged = sum(1 for trigger, _, _ in case.log if trigger == "triage")
        if case.state == "triaged":
            problems.append(f"{ref}: left between triage and queue")
        if triaged != case.onsite_assessments or (triaged > 0) != (case.ticket is not None):
            problems.append(f"{ref}: {triaged} triage rows, {case.onsite_assessments} on-site assessments, "
                            f"ticket {case.ticket}")
        if case.ticket is not None:
            assert case.stream is not None and case.ticket_no is not None
            if case.ticket != f"{Stream(case.stream).prefix}-{case.ticket_no:03d}":
                problems.append(f"{ref}: ticket {case.ticket} is not number {case.ticket_no} of {case.stream}")
            numbers[(case.ticket_day, case.stream)].append(case.ticket_no)
    counters = hospital.counters()
    for key, issued in numbers.items():
        if sorted(issued) != list(range(1, len(issued) + 1)):
            duplicates = sorted(n for n in set(issued) if issued.count(n) > 1)
            missing = sorted(set(range(1, max(issued) + 1)) - set(issued))
            problems.append(f"{key}: tickets duplicated {duplicates}, missing {missing}")
        if counters.get(key) != len(issued):
            problems.append(f"{key}: counter at {counters.get(key)} for {len(issued)} tickets")
    assert not problems, "\n".join(problems[:20])
    return cases


# --- load --------------------------------------------------------------------------------------------------


def run_all(jobs: Iterable[Callable[[], Any]], clients: int) -> list[Any]:
    """Run the jobs on `clients` threads at once; their results (or exceptions) in order."""
    from concurrent.futures import ThreadPoolExecutor

    def safe(job: Callable[[], Any]) -> Any:
        try:
            return job()
        except Exception as exc:  # reported by the caller
            return exc

    with ThreadPoolExecutor(max_workers=clients) as pool:
        return list(pool.map(safe, list(jobs)))


def at_once(work: list[Callable[[], Any]]) -> list[Any]:
    """Start every job at the same instant (one thread each, behind a barrier); their results or exceptions."""
    barrier = threading.Barrier(len(work))
    results: list[Any] = [None] * len(work)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work[i]()
        except Exception as exc:  # reported by the caller
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(work))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return results


def new_policy(folder: Path) -> Path:
    """The demo policy with clinics open around the clock, so routing does not depend on the hour."""
    return always_open_policy(folder)
