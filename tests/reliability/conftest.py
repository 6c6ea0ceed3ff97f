"""Fixtures of the reliability tests: a fresh migrated database, and the real server on it under gunicorn.

SQLite by default; PostgreSQL when TRIAGE_TEST_DATABASE_URL is set (`make test-postgres`). These tests do not use
the `app` fixture, so each module marks itself `db` (and `slow`) explicitly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.reliability.support import Hospital, Server, free_port, fresh_database, new_policy, server_env


@pytest.fixture
def hospital(tmp_path: Path) -> Iterator[Hospital]:
    """A fresh database migrated with `flask --app wsgi db upgrade`, and the policy the server runs."""
    found = Hospital(fresh_database(tmp_path), new_policy(tmp_path))
    yield found
    found.close()


@pytest.fixture
def serve(hospital: Hospital, tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Factory: the app under gunicorn (gunicorn.conf.py, 4 workers) on the hospital's database, started and
    serving; every server started is killed at teardown.

    `serve(database_url=...)` points the server elsewhere (through a proxy); `serve(port=...)` reuses a port.
    """
    started: list[Server] = []

    def start(*, database_url: str | None = None, port: int | None = None) -> Server:
        port = port or free_port()
        env = server_env(database_url or hospital.url, hospital.policy_path, port)
        server = Server(env, port, tmp_path / f"gunicorn-{len(started)}.log")
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.kill()
