"""Database engines and sessions: embedded SQLite (WAL, full durability) by default, PostgreSQL by URL."""

from __future__ import annotations

import fcntl
import os
import select
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask, current_app, g, has_request_context, request
from sqlalchemy import Connection, Engine, bindparam, create_engine, event, func
from sqlalchemy import select as sql_select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlmodel import Session

_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Database:
    """The engines of one application: `engine` for writes, `read_engine` for read-only requests."""

    def __init__(self, url: str, **engine_options: Any) -> None:
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        if self.is_sqlite:
            # SQLite has no row locks: a write transaction takes the database write lock at BEGIN
            # (IMMEDIATE) so two nurses never both read a case, then both write it.
            # Writers queue at a lock file before BEGIN IMMEDIATE: the kernel hands the lock to the next
            # waiter as soon as it is free, where SQLite's busy handler would sleep and poll (and, with many
            # writers, sleep ever longer: seconds of tail latency at the entrance's peak).
            gate = f"{self.url.database}.writers" if self.url.database not in (None, "", ":memory:") else None
            self.engine = _sqlite_engine(url, begin="BEGIN IMMEDIATE", gate=gate, **engine_options)
            self.read_engine = _sqlite_engine(url, begin="BEGIN", **engine_options)
        else:
            options = {"pool_size": 5, "max_overflow": 10, **engine_options}
            self.engine = create_engine(url, **options)
            event.listen(self.engine, "checkout", _refuse_closed_connection)
            # Reads run without BEGIN and ROLLBACK: two round trips less per poll of a screen. Under PostgreSQL's
            # READ COMMITTED every statement sees its own snapshot either way.
            self.read_engine = self.engine.execution_options(isolation_level="AUTOCOMMIT")

    def session(self, *, readonly: bool = False) -> Session:
        """A new session; read-only sessions never take SQLite's write lock."""
        return Session(self.read_engine if readonly else self.engine, expire_on_commit=False)

    def dispose(self) -> None:
        """Close every pooled connection (tests, forked workers)."""
        self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()


def _sqlite_engine(url: str, *, begin: str, gate: str | None = None, **options: Any) -> Engine:
    connect_args = {"timeout": 30, "check_same_thread": False, **options.pop("connect_args", {})}
    engine = create_engine(url, connect_args=connect_args, **options)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions begin (see the "begin" hook).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a confirmed triage decision survives a power cut, not only a crash.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        if gate is None:
            connection.exec_driver_sql(begin)
            return
        fd = connection.connection.info.get("gate")
        if fd is None:
            fd = connection.connection.info["gate"] = os.open(gate, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            connection.exec_driver_sql(begin)
        except BaseException:
            fcntl.flock(fd, fcntl.LOCK_UN)
            raise

    if gate is not None:
        # Released when the connection goes back to the pool, right after its COMMIT or ROLLBACK (the engine's
        # "commit" event would fire before the COMMIT, letting the next writer in while this one syncs).
        def _release_on_checkin(_dbapi_connection: Any, record: Any) -> None:
            fd = record.info.get("gate") if record is not None else None
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)

        def _close_gate(_dbapi_connection: Any, record: Any) -> None:
            fd = record.info.pop("gate", None)
            if fd is not None:
                os.close(fd)

        event.listen(engine, "checkin", _release_on_checkin)
        event.listen(engine, "close", _close_gate)

    return engine


def _refuse_closed_connection(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Before a pooled PostgreSQL connection is handed out: if the server has closed it (a restart, a cut network, an
    administrator), its socket has become readable while idle. The pool then opens a new one, so requests after an
    outage succeed by themselves; a ping would cost a round trip on every request for the same answer."""
    pgconn = getattr(dbapi_connection, "pgconn", None)
    if pgconn is None:
        return
    try:
        readable, _, _ = select.select([pgconn.socket], [], [], 0)
    except (OSError, ValueError):  # the socket is gone already
        readable = [True]
    if readable or dbapi_connection.closed:
        raise DisconnectionError("the server closed this connection")


def init_app(app: Flask) -> None:
    """Create the application's engines and close the request's session at teardown."""
    app.extensions["triage.db"] = Database(app.config["DATABASE_URL"])
    app.teardown_appcontext(_close_session)


def get_db() -> Database:
    """The current application's Database."""
    db: Database = current_app.extensions["triage.db"]
    return db


def get_session() -> Session:
    """The request's session, opened on first use; GET requests read without taking the write lock."""
    if "db_session" not in g:
        readonly = has_request_context() and request.method in _READ_METHODS
        g.db_session = get_db().session(readonly=readonly)
    session: Session = g.db_session
    return session


@contextmanager
def reading(session: Session | None = None) -> Iterator[Connection]:
    """A connection for what a request reads before it writes (who is asking, the hospital's policy): in a write
    request a short read-only one, else the connection of `session` (default: the request's). A write request's
    transaction then starts with its writes: on SQLite the write lock is not held while the request is parsed and
    assessed, on PostgreSQL the transaction is that much shorter."""
    if has_request_context() and request.method not in _READ_METHODS:
        with get_db().read_engine.connect() as connection:
            yield connection
        return
    yield (session if session is not None else get_session()).connection()


def _close_session(_exc: BaseException | None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()


@contextmanager
def session_scope() -> Iterator[Session]:
    """A write session outside a request (CLI, scripts), closed at the end."""
    session = get_db().session()
    try:
        yield session
    finally:
        session.close()


_NAMED_LOCK = sql_select(func.pg_advisory_xact_lock(func.hashtext(bindparam("name"))))


def serialize(session: Session, name: str) -> None:
    """Wait for, then hold until the end of the transaction, the lock called `name` (PostgreSQL).

    A row lock cannot guard a row that does not exist yet or a count of rows: transactions that must not interleave
    take the same named lock first, and read after it. SQLite needs none: its write transaction holds the database.
    """
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        connection.execute(_NAMED_LOCK, {"name": name})
