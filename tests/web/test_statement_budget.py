"""The write requests of the morning peak stay lean: one transaction and a fixed number of statements each.

Counted on both engines with SQLAlchemy's `before_cursor_execute`, on SQLite and PostgreSQL. A change that adds
a query per request (an N+1, a second transaction, a re-read after the commit) fails here before it shows in
`make bench`. The budgets are what the code needs today; lower them when a statement goes away.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event
from sqlmodel import select

from tests.conftest import PASSWORD
from tests.onsite_support import (
    always_open_app,  # noqa: F401 - the `app` fixture of this module
    db,
    prescreened,
)
from tests.web.prescreen_support import api_body, change_policy, open_day
from triage.models import Role, StaffUser
from triage.services import create_user, issue_token

VITALS = {"temperature_c": 36.7, "heart_rate": 78, "respiratory_rate": 16, "sbp": 126, "spo2": 98, "avpu": "A",
          "symptoms": [], "epi": {"mid_high_risk_area_14d": False, "contact_case_14d": False,
                                  "contact_febrile_from_case_community_14d": False, "cluster_14d": False}}


class Seen(list[str]):
    """The statements sent, in order; `reads` are those sent on the read-only engine (outside any write)."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []

    @classmethod
    def of(cls, sent: list[str], reads: list[str]) -> Seen:
        seen = cls()
        seen.extend(sent)
        seen.reads = reads
        return seen


@contextmanager
def statements(app: Flask) -> Iterator[Seen]:
    """Every statement sent to the database meanwhile (BEGIN included, PRAGMA not)."""
    seen = Seen()
    database = app.extensions["triage.db"]

    def record(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.lstrip().upper().startswith("PRAGMA"):
            seen.append(" ".join(statement.split()))
            if conn.engine is database.read_engine:
                seen.reads.append(seen[-1])

    engines = [database.engine, database.read_engine]
    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)


def transactions(seen: list[str], app: Flask) -> int:
    """How many write transactions the statements ran in (SQLite's BEGIN IMMEDIATE is a statement; PostgreSQL's
    BEGIN is implicit, its reads outside a transaction)."""
    if app.extensions["triage.db"].is_sqlite:
        return sum(s.upper().startswith("BEGIN IMMEDIATE") for s in seen)
    return 1 if seen else 0


def stamp_read(statement: str) -> bool:
    """The staff stamp's periodic read (every 2 s per worker: a test may or may not see one)."""
    return statement.startswith("SELECT staff_stamp.stamp")


def token_read_first(seen: Seen, app: Flask) -> bool:
    """The bearer token's owner was read before anything else: on SQLite on the read-only engine, without the write
    lock; on PostgreSQL first in the request's transaction (no lock, no second connection)."""
    seen = Seen.of([s for s in seen if not stamp_read(s)], seen.reads)
    tokens = [s for s in seen if "api_token" in s]
    if not app.extensions["triage.db"].is_sqlite:
        return len(tokens) == 1 and work(seen)[0] == tokens[0]
    return bool(tokens) and all(s in seen.reads for s in tokens) and seen.index(tokens[0]) < min(
        i for i, s in enumerate(seen) if s not in seen.reads)


def work(seen: list[str]) -> list[str]:
    return [s for s in seen if not s.upper().startswith("BEGIN")]


def issued(app: Flask, label: str) -> dict[str, str]:
    """The Authorization header of a new API token of the nurse "desk" (created the first time)."""
    with db(app) as s:
        nurse = s.exec(select(StaffUser).where(StaffUser.username == "desk")).first()
        if nurse is None:
            nurse = create_user(s, username="desk", password=PASSWORD, role=Role.NURSE)
        return {"Authorization": f"Bearer {issue_token(s, user=nurse, label=label)}"}


@pytest.fixture
def bearer(app: Flask, client: FlaskClient) -> dict[str, str]:
    """A nurse's API token, on a server that has read its policy and this token's owner already (both are kept, as in
    a running server: the accounts while the staff stamp, re-read every two seconds, holds)."""
    app.config["ACCOUNT_CACHE_SECONDS"] = 2.0  # production's
    assert client.get("/api/v1/slots?stream=general").status_code == 200
    header = issued(app, "desk")
    assert client.get("/api/v1/queues/general", headers=header).status_code == 200
    return header


def prescreen_budget(app: Flask) -> int:
    """A pre-screen's statements: seven on SQLite; on PostgreSQL a lock on its phone number before it counts the
    phone's open bookings (SQLite's write transaction holds the whole database already), and the case, its audit rows
    and its assessment in one statement: six."""
    return 7 if app.extensions["triage.db"].is_sqlite else 6


def test_a_pre_screen_is_one_transaction_of_seven_statements_and_a_phone_lock_on_postgresql(
        app: Flask, client: FlaskClient) -> None:
    day = open_day(app).isoformat()
    client.post("/api/v1/prescreenings", json=api_body(phone="13900000001", preferred_day=day))  # creates the slots
    with statements(app) as seen:
        response = client.post("/api/v1/prescreenings", json=api_body(phone="13900000002", preferred_day=day))
    assert response.status_code == 201, response.json
    assert response.json["state"] == "booked"
    assert transactions(seen, app) == 1, seen
    # (PostgreSQL: the phone's lock,) the phone's open bookings, the first free slot (locked), its place taken, the
    # case, its two audit rows, the online assessment (on PostgreSQL these three in one statement), the message
    assert len(work(seen)) <= prescreen_budget(app), work(seen)


def test_postgresql_keeps_the_pre_screens_statement_converted(app: Flask, client: FlaskClient,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """psycopg scans a query for its placeholders again unless it keeps the result, which it does only for queries
    of up to `triage.db.PSYCOPG_CACHED_PARAMS` parameters: the pre-screen's single statement has 72."""
    if app.extensions["triage.db"].is_sqlite:
        pytest.skip("PostgreSQL's driver only")
    from psycopg import _queries

    day = open_day(app).isoformat()
    first = client.post("/api/v1/prescreenings", json=api_body(phone="13900000001", preferred_day=day))
    assert first.status_code == 201, first.json
    scanned: list[bytes] = []
    scan = _queries._query2pg_nocache
    monkeypatch.setattr(_queries, "_query2pg_nocache", lambda query, *args: scanned.append(query) or scan(query, *args))
    with statements(app) as seen:
        response = client.post("/api/v1/prescreenings", json=api_body(phone="13900000002", preferred_day=day))
    assert response.status_code == 201, response.json
    assert any("INSERT INTO encounter" in s for s in seen)
    assert scanned == []


def test_a_check_in_is_one_transaction_of_four_statements(app: Flask, client: FlaskClient,
                                                          bearer: dict[str, str]) -> None:
    with db(app) as s:
        reference = prescreened(s).reference
    with statements(app) as seen:
        response = client.post(f"/api/v1/encounters/{reference}/check-in", json={}, headers=bearer)
    assert response.status_code == 200, response.json
    assert transactions(seen, app) == 1, seen
    # the case (locked), the case written, the audit row (on PostgreSQL in the same statement)
    assert len(work(seen)) <= (3 if app.extensions["triage.db"].is_sqlite else 2), work(seen)


def test_a_token_not_yet_kept_is_read_before_the_write(app: Flask, client: FlaskClient,
                                                       bearer: dict[str, str]) -> None:
    """On SQLite on the read-only engine, so the write lock is not taken while the token is looked up."""
    with db(app) as s:
        reference = prescreened(s).reference
    fresh = issued(app, "second desk")
    with statements(app) as seen:
        response = client.post(f"/api/v1/encounters/{reference}/check-in", json={}, headers=fresh)
    assert response.status_code == 200, response.json
    assert transactions(seen, app) == 1, seen
    assert token_read_first(seen, app), seen
    assert len(work([s for s in seen if not stamp_read(s)])) <= 4, work(seen)  # and the token


def test_a_triage_decision_is_one_transaction_of_six_statements(app: Flask, client: FlaskClient,
                                                                  bearer: dict[str, str]) -> None:
    with db(app) as s:
        reference = prescreened(s).reference
    assert client.post(f"/api/v1/encounters/{reference}/check-in", json={}, headers=bearer).status_code == 200
    with statements(app) as seen:
        response = client.post(f"/api/v1/encounters/{reference}/triage", json=VITALS, headers=bearer)
    assert response.status_code == 200, response.json
    assert transactions(seen, app) == 1, seen
    # the case (locked), the ticket number, the case written once for both transitions (triage, then queue), their
    # two audit rows in one statement, the assessment (on PostgreSQL these three are one statement)
    assert len(work(seen)) <= (5 if app.extensions["triage.db"].is_sqlite else 3), work(seen)


def test_a_write_request_reads_the_policy_apart_from_its_write_transaction(
        app: Flask, client: FlaskClient, make_user: Callable[..., StaffUser]) -> None:
    """Every worker re-reads the supervisors' latest policy change now and then, whatever the request: on SQLite, in
    a write request, it is read on the read-only engine, so that the write lock is not taken before the request is
    even assessed (on PostgreSQL the read takes no lock: it is the transaction's first statement)."""
    day = open_day(app).isoformat()
    client.post("/api/v1/prescreenings", json=api_body(phone="13900000001", preferred_day=day))  # creates the slots
    change_policy(app, make_user("sup", Role.SUPERVISOR), capacities={"general": 50})  # drops the cached policy
    with statements(app) as seen:
        response = client.post("/api/v1/prescreenings", json=api_body(phone="13900000002", preferred_day=day))
    assert response.status_code == 201, response.json
    assert response.json["assessment"]["policy_version"].endswith("+1")  # the change, read apart, is applied
    policy_reads = [s for s in seen if "policy_change" in s]
    assert transactions(seen, app) == 1, seen
    if app.extensions["triage.db"].is_sqlite:
        assert policy_reads and all(s in seen.reads for s in policy_reads), seen
        assert len(work([s for s in seen if s not in seen.reads])) <= prescreen_budget(app), seen
    else:
        assert len(policy_reads) == 1 and work(seen)[0] == policy_reads[0], seen
        assert len(work(seen)) <= prescreen_budget(app) + 1, seen
