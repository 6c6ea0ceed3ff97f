"""SQLite's writers: they queue at the gate (a lock file) before BEGIN IMMEDIATE, leave it the moment their COMMIT or
ROLLBACK returns, and checkpoint the WAL after their commits, outside the write lock."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

import triage.db
from triage.db import Database


def _gate_is_free(path: Path) -> bool:
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # closing the descriptor releases a lock taken through it
    return True


def test_a_writer_holds_the_gate_from_begin_until_its_commit_or_rollback_returns(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'triage.db'}")
    gate = tmp_path / "triage.db.writers"
    with database.engine.connect() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        assert not _gate_is_free(gate)
        conn.commit()
        assert _gate_is_free(gate)  # the connection is still checked out: the gate was left at COMMIT
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
        assert not _gate_is_free(gate)
        conn.rollback()
        assert _gate_is_free(gate)
        conn.exec_driver_sql("INSERT INTO t VALUES (2)")
    assert _gate_is_free(gate)  # returned to the pool without COMMIT: rolled back, and the gate left
    with database.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar_one() == 0
    database.dispose()


def test_writers_checkpoint_the_wal_after_their_commits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(triage.db, "CHECKPOINT_EVERY", 2)
    database = Database(f"sqlite:///{tmp_path / 'triage.db'}")
    sent: list[str] = []
    with database.engine.connect() as conn:
        conn.connection.dbapi_connection.set_trace_callback(sent.append)  # type: ignore[union-attr]
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        conn.commit()
        for i in range(5):
            conn.exec_driver_sql(f"INSERT INTO t VALUES ({i})")
            conn.commit()
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one() == triage.db.AUTOCHECKPOINT_PAGES
        conn.rollback()
    assert sent.count("PRAGMA wal_checkpoint(PASSIVE)") == 3  # after the 2nd, 4th and 6th commit
    database.dispose()
