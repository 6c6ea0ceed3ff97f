"""The database out of reach for a moment: a clear "try again" answer meanwhile, and recovery without a restart.

PostgreSQL: the server reaches the database through a TCP relay started by the test, which cuts every connection
and refuses new ones, then comes back. Meanwhile pages answer 503 with the "try again" page (Chinese by default,
English when the browser asks) and the API answers 503 JSON: never a 500 or a stack trace, and nothing half-done.
Afterwards requests succeed again by themselves (a pooled connection the server closed is refused at checkout).
Both databases: a transaction holding the write lock for a few seconds (a backup, a migration) makes requests
wait, not fail.
"""

from __future__ import annotations

import contextlib
import re
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from functools import partial

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.reliability.support import (
    PASSWORD,
    PG_URL,
    WORKERS,
    Hospital,
    Reply,
    Server,
    Staff,
    assert_consistent,
    request,
    run_all,
    triage_body,
)

pytestmark = [pytest.mark.slow, pytest.mark.db]

TRY_AGAIN_EN = "The system is busy or briefly unavailable. Nothing was lost; please try again in a moment."
TRY_AGAIN_ZH = "系统繁忙或暂时不可用。您的信息没有丢失，请稍后再试。"
LEAKS = ("Traceback", "OperationalError", "psycopg", "sqlalchemy", "5432")


class Relay:
    """A TCP relay 127.0.0.1:<port> -> the database server, which the test can cut and restore."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self.listener: socket.socket | None = None
        self.live: set[socket.socket] = set()
        self.lock = threading.Lock()

    def start(self) -> Relay:
        """Listen (again, on the same port) and relay every connection."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def stop(self) -> None:
        """Cut every relayed connection and refuse new ones, as a network failure or a database restart would."""
        if self.listener is not None:
            _close(self.listener)  # shutdown first: a blocked accept() would otherwise keep it listening
            self.listener = None
        with self.lock:
            for sock in self.live:
                _close(sock)
            self.live.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # stopped
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self.lock:
                if self.listener is not listener:  # stopped meanwhile
                    _close(client)
                    _close(upstream)
                    return
                self.live.update((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            _close(sink)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def _login(port: int, username: str) -> str:
    """Log in through the real login form (with its CSRF token); the session cookie."""
    page = request(port, "GET", "/login")
    cookie = page.headers["set-cookie"].split(";", 1)[0]
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text)
    assert match, page.text[:500]
    done = request(port, "POST", "/login", form={"csrf_token": match.group(1), "username": username,
                                                 "password": PASSWORD}, headers={"Cookie": cookie})
    assert done.status == 302, done.text[:500]
    return done.headers["set-cookie"].split(";", 1)[0]


def _page(port: int, path: str, *, lang: str | None, cookie: str | None = None) -> Reply:
    """A page as a browser asks for it (no Accept-Language: the default language)."""
    return request(port, "GET", path, headers={"Accept-Language": lang, "Cookie": cookie,
                                               "Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})


@pytest.mark.skipif(not PG_URL, reason="PostgreSQL only (TRIAGE_TEST_DATABASE_URL): SQLite has no connection to cut")
def test_the_database_out_of_reach_for_a_moment_gives_a_clear_try_again_and_recovers_by_itself(
        hospital: Hospital, serve: Callable[..., Server]) -> None:
    token = hospital.staff_token("nurse")
    booking, = hospital.bookings(1)
    url = make_url(hospital.url)
    relay = Relay((url.host or "127.0.0.1", url.port or 5432)).start()
    server = serve(database_url=url.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False))
    nurse = Staff(server.port, token)
    cookie = _login(server.port, "nurse")
    case, status_page = f"/encounters/{booking.reference}", f"/prescreen/s/{booking.status_token}"
    assert all(nurse.get(case).ok for _ in range(2 * WORKERS))  # every worker holds pooled connections
    assert _page(server.port, status_page, lang=None).status == 200
    assert _page(server.port, "/desk/", lang=None, cookie=cookie).status == 200

    relay.stop()
    pages = [(status_page, None), (status_page, cookie), ("/desk/", cookie)]  # a patient, then a nurse
    api: list[Reply] = []
    chinese: list[Reply] = []
    english: list[Reply] = []
    started = time.monotonic()
    for round_ in range(2):
        if round_:
            time.sleep(2.5)  # the workers' cached policy (2 s) has expired: the patient pages read it again
        api += [nurse.get(case) for _ in range(WORKERS)] + [nurse.check_in(booking.reference) for _ in range(WORKERS)]
        chinese += [_page(server.port, path, lang=None, cookie=c) for path, c in pages] * 2
        english += [_page(server.port, path, lang="en", cookie=c) for path, c in pages] * 2
    during = time.monotonic() - started

    assert [(r.status, r.body) for r in api] == [(503, {"message": TRY_AGAIN_EN, "errors": []})] * len(api)
    for replies, message in ((chinese, TRY_AGAIN_ZH), (english, TRY_AGAIN_EN)):
        assert [r.status for r in replies] == [503] * len(replies), [r.text[:300] for r in replies]
        assert all(r.headers["content-type"].startswith("text/html") and message in r.text for r in replies)
    assert not [leak for r in api + chinese + english for leak in LEAKS if leak in r.text]
    assert during < 15  # answered at once, not after a hang

    relay.start()
    assert [nurse.get(case).status for _ in range(2 * WORKERS)] == [200] * 2 * WORKERS  # no restart needed
    assert _page(server.port, status_page, lang=None).status == 200
    assert _page(server.port, "/desk/", lang=None, cookie=cookie).status == 200
    checked_in = nurse.check_in(booking.reference)  # the check-in refused meanwhile had changed nothing
    assert checked_in.ok, checked_in.text
    assert_consistent(hospital)
    log = server.log_text()
    assert "database unavailable" in log and "Traceback" not in log
    relay.stop()


HOLD_SECONDS = 3
LOCKED_VISITS = 16


def _hold_write_lock(url: str, held: threading.Event, release: threading.Event) -> None:
    """Another process's long write transaction: SQLite's write lock, or PostgreSQL's table locks."""
    if url.startswith("sqlite"):
        writer = sqlite3.connect(make_url(url).database or "", isolation_level=None)
        writer.execute("BEGIN IMMEDIATE")
        held.set()
        release.wait(30)
        writer.execute("ROLLBACK")
        writer.close()
        return
    engine = create_engine(url)
    with engine.connect() as conn:
        conn.execute(text("LOCK TABLE encounter, ticket_counter IN EXCLUSIVE MODE"))  # reads go on, writes wait
        held.set()
        release.wait(30)
        conn.rollback()
    engine.dispose()


def test_a_transaction_holding_the_write_lock_for_a_moment_makes_requests_wait_not_fail(
        hospital: Hospital, serve: Callable[..., Server]) -> None:
    token = hospital.staff_token("nurse")
    bookings = hospital.bookings(LOCKED_VISITS)
    server = serve()
    nurse = Staff(server.port, token)
    held, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(hospital.url, held, release))
    holder.start()
    assert held.wait(10)
    threading.Timer(HOLD_SECONDS, release.set).start()

    started = time.monotonic()
    read = nurse.get(f"/encounters/{bookings[0].reference}")
    assert read.ok and time.monotonic() - started < HOLD_SECONDS  # reading does not wait for the writer

    def visit(i: int, reference: str) -> list[Reply]:
        return [nurse.check_in(reference), nurse.triage(reference, triage_body(i))]

    results = run_all([partial(visit, i, b.reference) for i, b in enumerate(bookings)], 8)
    waited = time.monotonic() - started
    holder.join(30)

    assert not [r for r in results if isinstance(r, Exception)]
    assert not [(r.status, r.text[:300]) for replies in results for r in replies if not r.ok]
    assert waited >= HOLD_SECONDS - 0.5  # they did wait for the lock
    cases = assert_consistent(hospital)
    assert all(case.state == "waiting" for case in cases.values())
