"""Database engines and sessions: embedded SQLite (WAL, full durability) by default, PostgreSQL by URL."""

from __future__ import annotations

import fcntl
import logging
import os
import select
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from flask import Flask, current_app, g, has_request_context, request
from sqlalchemy import Connection, Engine, bindparam, create_engine, event, func
from sqlalchemy import select as sql_select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError, MultipleResultsFound, NoResultFound
from sqlmodel import Session

_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
log = logging.getLogger(__name__)


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
            _cache_every_query()
            self.engine = create_engine(url, **options)
            # Reads run without BEGIN and ROLLBACK: two round trips less per poll of a screen. Under PostgreSQL's
            # READ COMMITTED every statement sees its own snapshot either way. Their connections are a pool of their
            # own, in autocommit from the start: switching a shared connection to autocommit at each check-out and
            # back at each return cost a read request 40-50 us of the worker's time.
            self.read_engine = create_engine(url, isolation_level="AUTOCOMMIT", **options)
            for engine in (self.engine, self.read_engine):
                event.listen(engine, "checkout", _refuse_closed_connection)

    def session(self, *, readonly: bool = False) -> Session:
        """A new session; read-only sessions never take SQLite's write lock."""
        return Session(self.read_engine if readonly else self.engine, expire_on_commit=False)

    def dispose(self) -> None:
        """Close every pooled connection (tests, forked workers)."""
        self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()


CHECKPOINT_EVERY = 32  # commits of one write connection between its passive checkpoints
AUTOCHECKPOINT_PAGES = 10_000  # SQLite's own checkpoint, inside a COMMIT, past this many WAL pages (default 1,000)


class _GatedConnection(sqlite3.Connection):
    """A write connection to SQLite that queues at the writers' gate (a lock file) before its BEGIN IMMEDIATE and
    leaves it the moment its COMMIT or ROLLBACK returns, before SQLAlchemy's bookkeeping and the pool's check-in:
    the write lock is the bottleneck of SQLite's writes, so no Python runs under it that need not."""

    gate_fd: int | None = None
    holding = False
    commits = 0

    def enter_gate(self) -> None:
        if self.gate_fd is not None and not self.holding:
            fcntl.flock(self.gate_fd, fcntl.LOCK_EX)
            self.holding = True

    def leave_gate(self) -> None:
        if self.holding and self.gate_fd is not None:
            self.holding = False
            fcntl.flock(self.gate_fd, fcntl.LOCK_UN)

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.leave_gate()
        self.commits += 1
        if self.commits % CHECKPOINT_EVERY == 0:
            # Outside the write lock: a passive checkpoint copies what the WAL holds into the database (and syncs
            # it) while other writers go on. Run inside a COMMIT, as SQLite does by itself, it kept them waiting.
            try:
                self.execute("PRAGMA wal_checkpoint(PASSIVE)").close()
            except sqlite3.Error:  # the commit stands; SQLite's own checkpoint is the fallback
                log.warning("passive WAL checkpoint failed", exc_info=True)

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.leave_gate()

    def close(self) -> None:
        try:
            self.leave_gate()
            if self.gate_fd is not None:
                os.close(self.gate_fd)
                self.gate_fd = None
        finally:
            super().close()


def _sqlite_engine(url: str, *, begin: str, gate: str | None = None, **options: Any) -> Engine:
    connect_args = {"timeout": 30, "check_same_thread": False, **options.pop("connect_args", {})}
    if gate is not None:
        connect_args["factory"] = _GatedConnection
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
        if gate is not None:
            dbapi_connection.gate_fd = os.open(gate, os.O_RDWR | os.O_CREAT, 0o600)
            # The writers checkpoint after their commits (see _GatedConnection.commit); SQLite's own checkpoint,
            # inside a COMMIT, stays as a bound on the WAL's size should they not keep up.
            dbapi_connection.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}").close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        if gate is None:
            _send(connection, begin)
            return
        dbapi_connection = connection.connection.dbapi_connection
        dbapi_connection.enter_gate()
        try:
            _send(connection, begin)
        except BaseException:
            dbapi_connection.leave_gate()
            raise

    if gate is not None:
        # Left at COMMIT or ROLLBACK already; a connection invalidated or returned without either leaves it here.
        @event.listens_for(engine, "checkin")
        def _leave_on_checkin(dbapi_connection: Any, _record: Any) -> None:
            if dbapi_connection is not None:
                dbapi_connection.leave_gate()

    return engine


# psycopg turns a query's `%(name)s` placeholders into `$1, $2, ...` with a regular-expression scan of the query, and
# keeps the result only for queries of at most this many parameters (4,096 bytes, too). The app's statements are
# prebuilt, a fixed set, and the largest run on the hot paths: a pre-screen's single statement (the case, its audit
# rows and its assessment) has 72 parameters and was scanned anew at every pre-screen, a sixth of the worker's
# instructions (callgrind: 8.1 M -> 6.7 M). tests/web/test_statement_budget.py checks that it is kept.
PSYCOPG_CACHED_PARAMS = 200


def _cache_every_query() -> None:
    try:
        from psycopg import _queries
    except ImportError:  # another driver
        return
    if getattr(_queries, "MAX_CACHED_STATEMENT_PARAMS", PSYCOPG_CACHED_PARAMS) < PSYCOPG_CACHED_PARAMS:
        _queries.MAX_CACHED_STATEMENT_PARAMS = PSYCOPG_CACHED_PARAMS


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
    """A connection for what a request reads before it writes (who is asking, the hospital's policy): on SQLite, in a
    write request, a short read-only one, so that the write lock (taken at the write transaction's BEGIN) is not held
    while the request is parsed and assessed; else the connection of `session` (default: the request's). On
    PostgreSQL these reads take no lock a writer waits for, and a second pooled connection per request would cost
    more than the few hundred microseconds the transaction stays open longer."""
    if has_request_context() and request.method not in _READ_METHODS and get_db().is_sqlite:
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
        run(connection, _NAMED_LOCK, {"name": name})


# --- prebuilt statements on the DB-API cursor ------------------------------------------------------------------


class Rows:
    """What `run` returns: the rows (tuples, with SQLAlchemy's result processing applied) and the rowcount."""

    __slots__ = ("rowcount", "rows")

    def __init__(self, rows: list[tuple[Any, ...]], rowcount: int) -> None:
        self.rows = rows
        self.rowcount = rowcount

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self.rows)

    def all(self) -> list[tuple[Any, ...]]:
        return self.rows

    def first(self) -> tuple[Any, ...] | None:
        return self.rows[0] if self.rows else None

    def one(self) -> tuple[Any, ...]:
        if len(self.rows) != 1:
            raise (NoResultFound if not self.rows else MultipleResultsFound)(f"{len(self.rows)} rows, one expected")
        return self.rows[0]

    def scalar(self) -> Any:
        return self.rows[0][0] if self.rows else None

    def scalar_one(self) -> Any:
        return self.one()[0]


_REQUIRED = object()


class _Plan:
    """A statement compiled for one dialect (and one set of parameter names), ready for the DB-API cursor."""

    __slots__ = ("compiled", "fields", "is_select", "names", "results", "returns_rows", "sql", "statement")

    def __init__(self, statement: Any, compiled: Any) -> None:
        self.statement = statement  # keeps the id() of the cache key alive
        self.compiled = compiled
        self.sql: str = compiled.string
        # The cursor's parameters in order, each (key, name, default, bind processor): what SQLAlchemy's
        # construct_params and its processors do for each execution, worked out once.
        binds = {name: bind for bind, name in compiled.bind_names.items()}
        defaults = compiled.construct_params(_check=False, escape_names=False)
        order = tuple(compiled.positiontup) if compiled.positional else tuple(binds)
        processors = compiled._bind_processors
        self.fields = tuple((binds[name].key, name, _REQUIRED if binds[name].required else defaults[name],
                             processors.get(name)) for name in order)
        self.names: tuple[str, ...] | None = None if compiled.positional else order
        self.is_select = bool(statement.is_select)
        self.returns_rows = bool(compiled._result_columns)  # a SELECT, or RETURNING
        # (column index, result processor) of the columns that have one; set at the first execution (needs the cursor)
        self.results: list[tuple[int, Any]] | None = None

    def parameters(self, params: Mapping[str, Any]) -> Any:
        """The cursor's parameters for these values: a tuple (SQLite), or a dict (PostgreSQL)."""
        values = []
        for key, name, default, process in self.fields:
            if key in params:
                value = params[key]
            elif name in params:
                value = params[name]
            elif default is _REQUIRED:
                self.compiled.construct_params(params)  # raises SQLAlchemy's own error, naming the parameter
                raise AssertionError(name)
            else:
                value = default
            values.append(value if process is None else process(value))
        return tuple(values) if self.names is None else dict(zip(self.names, values, strict=True))


_PLANS: dict[tuple[int, str, tuple[str, ...]], _Plan | None] = {}


def _plan(statement: Any, dialect: Any, keys: tuple[str, ...]) -> _Plan | None:
    """The statement's plan, or None where only SQLAlchemy's own execution does it right (defaults computed in
    Python, expanding IN lists, escaped names)."""
    key = (id(statement), dialect.name, keys)
    try:
        return _PLANS[key]
    except KeyError:
        pass
    compiled = statement.compile(dialect=dialect, column_keys=list(keys) or None)
    plan: _Plan | None = _Plan(statement, compiled)
    if (compiled.insert_prefetch or compiled.update_prefetch or compiled.literal_execute_params
            or compiled.post_compile_params or compiled.escaped_bind_names or compiled.schema_translate_map
            or compiled.has_out_parameters or any(bind.callable for bind in compiled.bind_names)
            or any(isinstance(process, tuple) for process in compiled._bind_processors.values())):
        plan = None
    _PLANS[key] = plan
    return plan


def run(connection: Connection, statement: Any, params: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
        ) -> Rows:
    """Execute a prebuilt Core statement on the connection's DB-API cursor, as `connection.execute` would.

    The hot paths of the entrance (a pre-screen, a triage decision, a queue poll) run a handful of statements each;
    through `Connection.execute` each one costs tens of microseconds of Python in SQLAlchemy (cache key, execution
    context, result metadata), about what SQLite takes to run it. Here the statement is compiled once per dialect,
    and each execution applies SQLAlchemy's own bind and result processors, fires the cursor events (the statement
    counters of the tests see it) and wraps DB-API errors as SQLAlchemy does (an OperationalError stays one; a
    dropped PostgreSQL connection is invalidated). Statements it cannot run exactly so (several rows of parameters,
    expanding IN lists, defaults computed in Python) go through `connection.execute`.
    """
    dialect = connection.dialect
    plan = None
    values: Mapping[str, Any] = {}
    if params is None or isinstance(params, Mapping):
        values = params = params or {}
        plan = _plan(statement, dialect, tuple(params))
    if plan is None or not _in_step(connection, plan):
        result = connection.execute(statement, params)  # type: ignore[arg-type]
        if not result.returns_rows:
            return Rows([], result.rowcount)
        done = [tuple(row) for row in result]
        return Rows(done, len(done))
    compiled = plan.compiled
    parameters = plan.parameters(values)
    sql = plan.sql
    cursor = _send(connection, sql, parameters, keep=True)
    try:
        rows: list[tuple[Any, ...]] = []
        # The description only when needed: psycopg builds it anew, a Column per column, at each access.
        if plan.returns_rows or cursor.description is not None:
            rows = cursor.fetchall()
            converters = plan.results
            if converters is None:
                types = [column[3] for column in compiled._result_columns]
                converters = plan.results = [
                    (i, process) for i, process in (
                        (i, types[i]._cached_result_processor(dialect, column[1]) if i < len(types) else None)
                        for i, column in enumerate(cursor.description))
                    if process is not None]
            if converters:
                converted = []
                for row in rows:
                    fields = list(row)
                    for i, process in converters:
                        fields[i] = process(fields[i])
                    converted.append(tuple(fields))
                rows = converted
            rowcount = len(rows)
        else:
            rowcount = cursor.rowcount
    except dialect.loaded_dbapi.Error as exc:
        connection._handle_dbapi_exception(exc, sql, parameters, cursor, None)
    finally:
        cursor.close()
    return Rows(rows, rowcount)


def _send(connection: Connection, sql: str, parameters: Any = (), *, keep: bool = False) -> Any:
    """Send one statement on the connection's DB-API cursor, with the cursor events SQLAlchemy fires and its wrapping
    of DB-API errors (a locked SQLite stays an OperationalError; a dropped PostgreSQL connection is invalidated).
    Returns the cursor, open, when `keep` (the caller reads and closes it)."""
    dbapi_connection = connection.connection.dbapi_connection
    assert dbapi_connection is not None
    cursor = dbapi_connection.cursor()
    # The engine's listeners, unless the connection has its own: a Connection's dispatch joins both, and builds the
    # joined list again for each new Connection (one per request).
    dispatch = connection.dispatch if connection._has_events else connection.engine.dispatch
    events = connection._has_events or connection.engine._has_events
    try:
        if events:
            for hook in dispatch.before_cursor_execute:
                hook(connection, cursor, sql, parameters, None, False)
        cursor.execute(sql, parameters)
        if events:
            for hook in dispatch.after_cursor_execute:
                hook(connection, cursor, sql, parameters, None, False)
    except connection.dialect.loaded_dbapi.Error as exc:
        cursor.close()
        connection._handle_dbapi_exception(exc, sql, parameters, cursor, None)
    except BaseException:
        cursor.close()
        raise
    if not keep:
        cursor.close()
    return cursor


def _in_step(connection: Connection, plan: _Plan) -> bool:
    """Whether a statement may go to the cursor as the connection stands: in a transaction SQLAlchemy has begun (on
    SQLite, after the write gate and BEGIN IMMEDIATE), or on an autocommit connection (PostgreSQL's reads), or a single
    SELECT on SQLite outside a transaction (it reads one consistent snapshot by itself, without BEGIN and ROLLBACK)."""
    if connection.in_transaction():
        return True
    if connection.dialect.name == "sqlite":
        return plan.is_select
    return connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT"
