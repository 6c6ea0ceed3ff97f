"""The encounter store's records mirror the tables, and a saved case reads back exactly as it was written."""

from __future__ import annotations

from dataclasses import fields
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import event
from sqlmodel import Session, select

from triage.hospital import base_policy, workflow
from triage.models import Assessment, Encounter, Origin, Slot, TransitionLog, utcnow
from triage.services import SYSTEM, log_entry, new_encounter, store, transition
from triage.services.store import AssessmentRecord, EncounterRecord, SlotRecord

pytestmark = pytest.mark.db


@pytest.mark.parametrize(("record", "model"), [(EncounterRecord, Encounter), (SlotRecord, Slot),
                                                (AssessmentRecord, Assessment)])
def test_each_record_lists_its_tables_columns_in_order(record: type, model: type) -> None:
    columns = [c.name for c in model.__table__.columns]  # type: ignore[attr-defined]
    assert [f.name for f in fields(record) if f.name not in ("pending_log", "stored")] == columns


def test_a_saved_case_reads_back_as_written_with_its_audit_rows(app: Flask, session: Session) -> None:
    with app.app_context():
        now = utcnow()
        case = new_encounter(origin=Origin.ONLINE, state="prescreened", workflow=workflow(), policy=base_policy(),
                             now=now, patient_name="王小明", patient_phone="13800138000", age_years=41, sex="M",
                             visit_day=base_policy().local(now).date() + timedelta(days=1), priority_flags="elderly")
        log_entry(case, workflow=workflow(), policy=base_policy(), actor=SYSTEM, now=now)
        transition(session, case, "cancel", workflow=workflow(), policy=base_policy(), actor=SYSTEM, now=now)
        assert len(case.pending_log) == 2
        store.save(session, case)
        session.commit()
        assert case.id is not None and case.pending_log == []
        again = store.by_reference(session, case.reference)
        assert again is not None
        assert {f.name: getattr(again, f.name) for f in fields(again) if f.name not in ("pending_log", "stored")} == \
            {f.name: getattr(case, f.name) for f in fields(case) if f.name not in ("pending_log", "stored")}
        assert again.flags == ["elderly"] and again.created_at.tzinfo is not None
        orm = session.exec(select(Encounter).where(Encounter.id == case.id)).one()
        assert (orm.state, orm.version, orm.patient_name) == ("cancelled", 2, "王小明")
        log = session.exec(select(TransitionLog).where(TransitionLog.encounter_id == case.id)
                           .order_by(TransitionLog.id)).all()  # type: ignore[arg-type]
        assert [(r.trigger, r.from_state, r.to_state) for r in log] == [
            ("create", None, "prescreened"), ("cancel", "prescreened", "cancelled")]


def test_an_unsaved_change_writes_nothing(app: Flask, session: Session) -> None:
    with app.app_context():
        now = utcnow()
        case = store.save(session, new_encounter(origin=Origin.WALK_IN, state="arrived", workflow=workflow(),
                                                 policy=base_policy(), now=now))
        session.commit()
        transition(session, case, "leave", workflow=workflow(), policy=base_policy(), actor=SYSTEM, now=now)
        session.rollback()
        again = store.by_reference(session, case.reference)
        assert again is not None and (again.state, again.version) == ("arrived", 1)


def test_a_new_case_whose_reference_is_taken_draws_another(app: Flask, session: Session) -> None:
    with app.app_context():
        now = utcnow()
        first = new_encounter(origin=Origin.WALK_IN, state="arrived", workflow=workflow(), policy=base_policy(),
                              now=now)
        store.save(session, first)
        second = new_encounter(origin=Origin.WALK_IN, state="arrived", workflow=workflow(), policy=base_policy(),
                               now=now)
        second.reference = first.reference
        store.save(session, second)
        session.commit()
        assert second.id is not None and second.id != first.id and second.reference != first.reference
        assert len(second.reference) == 8


def test_an_update_writes_only_the_columns_that_changed(app: Flask, session: Session) -> None:
    with app.app_context():
        now = utcnow()
        case = store.save(session, new_encounter(origin=Origin.WALK_IN, state="arrived", workflow=workflow(),
                                                 policy=base_policy(), now=now, patient_name="李四"))
        session.commit()
        seen: list[str] = []
        engine = session.get_bind()
        record = lambda *args: seen.append(args[2])  # noqa: E731 - (conn, cursor, statement, ...)
        event.listen(engine, "before_cursor_execute", record)
        try:
            loaded = store.by_reference(session, case.reference)
            assert loaded is not None
            store.save(session, loaded)  # nothing changed: nothing written
            loaded.patient_name = "李小四"
            store.save(session, loaded)
        finally:
            event.remove(engine, "before_cursor_execute", record)
        session.commit()
        updates = [s for s in seen if s.startswith("UPDATE")]
        assert len(updates) == 1 and "patient_name" in updates[0] and "state" not in updates[0]


@pytest.mark.parametrize("assessed", [False, True])
def test_a_reference_taken_already_is_drawn_again_with_nothing_written_twice(app: Flask, session: Session,
                                                                             assessed: bool) -> None:
    """A new case whose random code is taken gets another; its audit rows and its assessment (written with it, in
    one statement on PostgreSQL) go to it alone."""
    with app.app_context():
        now = utcnow()

        def new_case() -> EncounterRecord:
            case = new_encounter(origin=Origin.ONLINE, state="prescreened", workflow=workflow(), policy=base_policy(),
                                 now=now, patient_name="王小明", patient_phone="13800138000", age_years=41, sex="M")
            log_entry(case, workflow=workflow(), policy=base_policy(), actor=SYSTEM, now=now)
            return case

        first = store.save(session, new_case())
        second = new_case()
        second.reference = first.reference
        assessment = AssessmentRecord(
            id=None, encounter_id=None, stage="online", created_at=now, actor_id=None, inputs={"age_years": 41},
            result={"stream": "general"}, recommended_stream="general", recommended_level=None, final_stream=None,
            final_level=None, overridden=False, override_reason=None, policy_version="test") if assessed else None
        store.save(session, second, assessment)
        session.commit()
        assert second.id not in (None, first.id) and second.reference != first.reference
        logs = session.exec(select(TransitionLog)).all()
        assert sorted(row.encounter_id for row in logs) == sorted([first.id, second.id])
        assessments = session.exec(select(Assessment)).all()
        if assessed:
            assert assessment is not None and [(a.id, a.encounter_id) for a in assessments] == [
                (assessment.id, second.id)]
            assert assessments[0].inputs == {"age_years": 41}
        else:
            assert assessments == []
