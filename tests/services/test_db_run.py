"""`triage.db.run` executes prebuilt statements on the DB-API cursor exactly as `Connection.execute` would: the same
rows and values (dates, JSON, booleans), the same rowcounts, the cursor events, and SQLAlchemy's exceptions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import bindparam, event, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from triage.db import _PLANS, run
from triage.hospital import base_policy, workflow
from triage.models import Origin, utcnow
from triage.services import new_encounter, store
from triage.services.store import ASSESSMENT, ENCOUNTER, SLOT

pytestmark = pytest.mark.db

_BY_ID = select(ENCOUNTER).where(ENCOUNTER.c.id == bindparam("id"))
_ASSESSMENTS = select(ASSESSMENT.c.inputs, ASSESSMENT.c.overridden, ASSESSMENT.c.created_at).where(
    ASSESSMENT.c.encounter_id == bindparam("id")).order_by(ASSESSMENT.c.id)
_RENAME = update(ENCOUNTER).where(ENCOUNTER.c.id == bindparam("b_id")).values(patient_name=bindparam("name"))
_INSERT_SLOT = insert(SLOT)
_EXPANDING = select(ENCOUNTER.c.id).where(ENCOUNTER.c.id.in_(bindparam("ids", expanding=True))).order_by(
    ENCOUNTER.c.id)


def _case(session: Session) -> Any:
    now = utcnow()
    return store.save(session, new_encounter(origin=Origin.WALK_IN, state="arrived", workflow=workflow(),
                                             policy=base_policy(), now=now, patient_name="王小明", age_years=41))


def test_rows_and_values_are_those_of_connection_execute(app: Flask, session: Session) -> None:
    with app.app_context():
        case = _case(session)
        now = utcnow()
        store.insert_assessment(session, store.AssessmentRecord(
            id=None, encounter_id=case.id, stage="onsite", created_at=now, actor_id=None,
            inputs={"symptoms": ["发热"], "temperature_c": 38.5}, result={"stream": "fever"},
            recommended_stream="fever", recommended_level=None, final_stream="fever", final_level=None,
            overridden=True, override_reason="护士判断", policy_version="t"))
        conn = session.connection()
        for statement in (_BY_ID, _ASSESSMENTS):
            expected = [tuple(row) for row in conn.execute(statement, {"id": case.id})]
            assert run(conn, statement, {"id": case.id}).all() == expected
        inputs, overridden, created_at = run(conn, _ASSESSMENTS, {"id": case.id}).one()
        assert inputs == {"symptoms": ["发热"], "temperature_c": 38.5} and overridden is True
        assert abs(created_at.replace(tzinfo=UTC) - now.astimezone(UTC)) < timedelta(seconds=1)
        assert run(conn, _BY_ID, {"id": -1}).first() is None and run(conn, _BY_ID, {"id": -1}).scalar() is None


def test_writes_report_their_rowcount_and_returning(app: Flask, session: Session) -> None:
    with app.app_context():
        case = _case(session)
        conn = session.connection()
        assert run(conn, _RENAME, {"b_id": case.id, "name": "李四"}).rowcount == 1
        assert run(conn, _RENAME, {"b_id": -1, "name": "李四"}).rowcount == 0
        assert run(conn, select(ENCOUNTER.c.patient_name).where(ENCOUNTER.c.id == bindparam("id")),
                   {"id": case.id}).scalar_one() == "李四"
        day = datetime(2030, 1, 2, 1, 0, tzinfo=UTC)
        rows = [{"stream": "general", "day": day.date(), "starts_at": day + timedelta(minutes=30 * i),
                 "ends_at": day + timedelta(minutes=30 * (i + 1)), "capacity": 5, "booked": 0} for i in range(3)]
        run(conn, _INSERT_SLOT, rows)  # several rows of parameters: through SQLAlchemy
        starts = run(conn, select(SLOT.c.starts_at).where(SLOT.c.day == bindparam("day")).order_by(SLOT.c.starts_at),
                     {"day": day.date()}).all()
        assert [s for (s,) in starts] == [r["starts_at"] for r in rows]


def test_statements_it_cannot_prepare_go_through_sqlalchemy(app: Flask, session: Session) -> None:
    with app.app_context():
        ids = sorted(_case(session).id for _ in range(3))
        conn = session.connection()
        assert run(conn, _EXPANDING, {"ids": ids}).all() == [(i,) for i in ids]
        assert any(key[0] == id(_EXPANDING) and plan is None for key, plan in _PLANS.items())


def test_cursor_events_fire_and_errors_are_sqlalchemys(app: Flask, session: Session) -> None:
    with app.app_context():
        case = _case(session)
        conn = session.connection()
        seen: list[str] = []

        def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            seen.append(statement)

        event.listen(conn.engine, "before_cursor_execute", record)
        try:
            run(conn, _BY_ID, {"id": case.id})
        finally:
            event.remove(conn.engine, "before_cursor_execute", record)
        assert len(seen) == 1 and "encounter" in seen[0].lower()
        duplicate = {name: getattr(case, name) for name in store._WRITABLE}
        with pytest.raises(IntegrityError):  # the same reference again, without ON CONFLICT
            run(conn, insert(ENCOUNTER), duplicate)
        session.rollback()


_LATEST_TWO = (select(ENCOUNTER.c.id)
               .where(ENCOUNTER.c.id >= bindparam("low"), ENCOUNTER.c.id < bindparam("low") + 1000)
               .order_by(ENCOUNTER.c.id.desc()).limit(2))


def test_parameters_are_those_sqlalchemy_would_send(app: Flask, session: Session) -> None:
    """A parameter named twice, a bound value of the statement's own (LIMIT), a bind processor (a date), and a
    missing value refused with SQLAlchemy's own error."""
    from sqlalchemy.exc import InvalidRequestError

    with app.app_context():
        ids = sorted(_case(session).id for _ in range(3))
        conn = session.connection()
        expected = conn.execute(_LATEST_TWO, {"low": ids[0]}).all()
        assert run(conn, _LATEST_TWO, {"low": ids[0]}).all() == expected == [(ids[2],), (ids[1],)]
        later = datetime.now(UTC) + timedelta(days=3)
        moved = update(ENCOUNTER).where(ENCOUNTER.c.id == bindparam("b_id")).values(order_at=bindparam("at"))
        assert run(conn, moved, {"b_id": ids[0], "at": later}).rowcount == 1
        stored = conn.execute(select(ENCOUNTER.c.order_at).where(ENCOUNTER.c.id == ids[0])).scalar_one()
        assert stored.replace(tzinfo=stored.tzinfo or UTC) == later
        with pytest.raises(InvalidRequestError, match="low"):
            run(conn, _LATEST_TWO, {})
        session.rollback()
