"""Staff accounts kept per worker while the staff stamp holds: the database raises the stamp at every change to an
account or a token (triggers of migration 0005, whoever writes), and a worker re-reads it every few seconds."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, text
from sqlmodel import Session

from triage.models import ApiToken, Role
from triage.services import create_user, issue_token
from triage.services.staff import AccountCache, deactivate_user, reset_password, revoke_token, user_for_token

pytestmark = pytest.mark.db


def stamp(session: Session) -> int:
    return int(session.connection().execute(text("SELECT stamp FROM staff_stamp WHERE id = 1")).scalar() or 0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_every_change_to_accounts_and_tokens_raises_the_stamp(app: Flask, session: Session) -> None:
    seen = [stamp(session)]
    admin = create_user(session, username="admin", password="admin-password-1", role=Role.ADMIN)
    nurse = create_user(session, username="nurse", password="nurse-password-1", role=Role.NURSE)
    seen.append(stamp(session))
    issue_token(session, user=nurse, label="desk")
    seen.append(stamp(session))
    token = session.exec(ApiToken.__table__.select()).first()  # type: ignore[attr-defined]
    revoke_token(session, user_id=nurse.id or 0, token_id=token.id)
    seen.append(stamp(session))
    reset_password(session, user_id=nurse.id or 0, password="another-password-2")
    seen.append(stamp(session))
    deactivate_user(session, user_id=nurse.id or 0, actor_id=admin.id)
    seen.append(stamp(session))
    # A change made outside the application (an administrator's SQL) raises it too.
    session.connection().execute(text("UPDATE staff_user SET display_name = 'X' WHERE username = 'admin'"))
    session.commit()
    seen.append(stamp(session))
    assert seen == sorted(set(seen)), seen  # strictly rising


def test_a_kept_account_serves_without_a_query_until_the_stamp_is_read_again(app: Flask, session: Session) -> None:
    nurse = create_user(session, username="nurse", password="nurse-password-1", role=Role.NURSE)
    secret = issue_token(session, user=nurse, label="desk")
    clock = Clock()
    cache = AccountCache(2.0, clock=clock)
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement)

    engine = app.extensions["triage.db"].engine
    with engine.connect() as connection:
        found = user_for_token(connection, secret, cache)
        assert found is not None and found.username == "nurse"
        event.listen(engine, "before_cursor_execute", record)
        try:
            clock.now += 1
            assert user_for_token(connection, secret, cache) == found
            assert sent == []  # neither the stamp nor the token
            token = session.exec(ApiToken.__table__.select()).first()  # type: ignore[attr-defined]
            revoke_token(session, user_id=nurse.id or 0, token_id=token.id)
            connection.rollback()  # a new snapshot, as a new request's
            clock.now += 0.5
            assert user_for_token(connection, secret, cache) == found  # within the bound, still kept
            clock.now += 0.6  # two seconds since the stamp was read
            assert user_for_token(connection, secret, cache) is None
            assert any("staff_stamp" in s for s in sent) and any("api_token" in s for s in sent)
        finally:
            event.remove(engine, "before_cursor_execute", record)


def test_with_no_delay_a_change_applies_at_the_next_look_up(app: Flask, session: Session) -> None:
    nurse = create_user(session, username="nurse", password="nurse-password-1", role=Role.NURSE)
    secret = issue_token(session, user=nurse, label="desk")
    cache = AccountCache(0)
    engine = app.extensions["triage.db"].engine
    with engine.connect() as connection:
        assert user_for_token(connection, secret, cache) is not None
        assert user_for_token(connection, secret, cache) is not None
        connection.rollback()
        deactivate_user(session, user_id=nurse.id or 0, actor_id=None)
        assert user_for_token(connection, secret, cache) is None
        assert user_for_token(connection, "not a token", cache) is None


def test_an_account_read_in_an_older_snapshot_is_not_kept(app: Flask, session: Session) -> None:
    """A thread that read its account before a change (its snapshot older than the stamp the cache holds now) is
    answered, but what it read is not kept for the others."""
    from triage.services.staff import Staff

    create_user(session, username="nurse", password="nurse-password-1", role=Role.NURSE)
    cache = AccountCache(2.0)
    engine = app.extensions["triage.db"].engine
    old = Staff(1, "nurse", "Nurse", "nurse", True, 0)
    with engine.connect() as connection:
        current = stamp(session)
        assert cache.get(connection, "key", lambda: (old, current - 1)) == old
        loads = []
        assert cache.get(connection, "key", lambda: loads.append(1) or (old, current)) == old
        assert loads == [1]  # the first was not kept
        assert cache.get(connection, "key", lambda: loads.append(1) or (old, current)) == old
        assert loads == [1]  # the second was
