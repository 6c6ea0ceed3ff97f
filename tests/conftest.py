"""Shared fixtures: a fresh app and database per test, staff factories, logged-in clients.

Set TRIAGE_TEST_DATABASE_URL to run the database tests against PostgreSQL (`make test-postgres`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import settings
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlmodel import Session, SQLModel

import triage.models  # noqa: F401 - registers the tables
from triage import create_app
from triage.hospital import forget_cached_policy
from triage.models import Role, StaffUser
from triage.services import create_user


def database_beside(url: str, suffix: str) -> str:
    """The PostgreSQL database named like `url`'s with `_suffix` added, on the same server, created when missing."""
    base = make_url(url)
    own = base.set(database=f"{base.database}_{suffix}")
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": own.database}).first():
            conn.execute(text(f'CREATE DATABASE "{own.database}"'))
    admin.dispose()
    return own.render_as_string(hide_password=False)


def _worker_database(url: str | None) -> str | None:
    """The PostgreSQL test database of this pytest process: `test` alone, `test_gw0`, `test_gw1`... under
    pytest-xdist (`make test` runs on every core), so that test processes never truncate each other's tables."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    return database_beside(url, worker) if url and worker else url


PG_URL = _worker_database(os.environ.get("TRIAGE_TEST_DATABASE_URL"))
PASSWORD = "correct-horse-battery"

# Property tests run the same examples on every run, so CI never fails by chance on a case the last run did not
# try; `HYPOTHESIS_PROFILE=explore make test` searches afresh (then keep whatever it finds as a fixed test).
settings.register_profile("repeatable", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that uses the database, so the PostgreSQL pass can select them."""
    for item in items:
        if "app" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.db)


@pytest.fixture(scope="session")
def _pg_schema() -> Iterator[str | None]:
    if not PG_URL:
        yield None
        return
    engine = create_engine(PG_URL)
    SQLModel.metadata.drop_all(engine)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
        conn.execute(text("DROP FUNCTION IF EXISTS transition_log_append_only() CASCADE"))
    SQLModel.metadata.create_all(engine)
    engine.dispose()
    yield PG_URL


@pytest.fixture
def database_url(tmp_path: Path, _pg_schema: str | None) -> str:
    """A fresh, empty database for this test."""
    if _pg_schema:
        engine = create_engine(_pg_schema)
        tables = ", ".join(t.name for t in SQLModel.metadata.sorted_tables)
        with engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        engine.dispose()
        return _pg_schema
    url = f"sqlite:///{tmp_path / 'test.db'}"
    engine = create_engine(url)
    SQLModel.metadata.create_all(engine)
    engine.dispose()
    return url


def make_app(database_url: str, **overrides: Any) -> Flask:
    """An application configured for tests (CSRF off unless asked for)."""
    config = {
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "DATABASE_URL": database_url,
        "WTF_CSRF_ENABLED": False,
        "SESSION_COOKIE_SECURE": False,
        "REMEMBER_COOKIE_SECURE": False,
        "RATELIMIT_ENABLED": False,
        "LIVE_CACHE_SECONDS": 0,  # boards and dashboard show every change at once (tests/test_ttlcache.py)
        "ACCOUNT_CACHE_SECONDS": 0,  # the staff stamp read at every look-up: account changes apply at once
        **overrides,
    }
    forget_cached_policy()
    return create_app(config)


@pytest.fixture
def app(database_url: str) -> Iterator[Flask]:
    """A fresh application on a fresh database."""
    application = make_app(database_url)
    yield application
    application.extensions["triage.db"].dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """An anonymous browser."""
    return app.test_client()


@pytest.fixture
def session(app: Flask) -> Iterator[Session]:
    """A database session on the test's database."""
    with app.app_context():
        s = app.extensions["triage.db"].session()
        yield s
        s.close()


@pytest.fixture
def make_user(app: Flask) -> Callable[..., StaffUser]:
    """Factory: create a staff user with a role."""

    def make(username: str = "nurse1", role: Role = Role.NURSE, password: str = PASSWORD) -> StaffUser:
        with app.app_context():
            s = app.extensions["triage.db"].session()
            user = create_user(s, username=username, password=password, role=role)
            s.close()
            return user

    return make


@pytest.fixture
def login(app: Flask, make_user: Callable[..., StaffUser]) -> Callable[[Role], FlaskClient]:
    """Factory: a client logged in as a new user of the given role."""

    def do(role: Role) -> FlaskClient:
        user = make_user(f"{role.value}-user", role)
        c = app.test_client()
        response = c.post("/login", data={"username": user.username, "password": PASSWORD})
        assert response.status_code == 302, response.text
        return c

    return do


def all_at_once(work: Callable[[int], Any], count: int) -> list[Any]:
    """Run work(0) ... work(count - 1) in as many threads released together; their results, none an exception."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except BaseException as exc:  # reported by the assertion below
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(isinstance(r, BaseException) for r in results), results
    return results
