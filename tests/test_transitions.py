"""Every state change goes through one service function: checked, versioned, audited, atomic."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, select

from triage.domain.errors import Conflict
from triage.domain.policy import Stream
from triage.hospital import base_policy, workflow
from triage.models import Encounter, Origin, Slot, TransitionLog, utcnow
from triage.services import (
    SYSTEM,
    Actor,
    Facts,
    apply_event,
    ensure_slots,
    log_entry,
    new_encounter,
    next_ticket_number,
    store,
    transition,
)
from triage.services.slots import day_slots
from triage.services.store import EncounterRecord, SlotRecord
from triage.workflow import TransitionNotAllowed

NURSE = Actor("staff", None)


def _encounter(session: Session, state: str, **fields: object) -> EncounterRecord:
    now = utcnow()
    enc = new_encounter(origin=Origin.ONLINE, state=state, workflow=workflow(), policy=base_policy(), now=now,
                        **fields)
    return store.save(session, enc)


def _future_slot(session: Session) -> SlotRecord:
    policy = base_policy()
    day = policy.local(utcnow()).date() + timedelta(days=1)
    while not policy.streams[Stream.FEVER].slot_starts(day):
        day += timedelta(days=1)
    ensure_slots(session, policy, Stream.FEVER, day)
    return day_slots(session, Stream.FEVER, day)[0]


def _facts_for(session: Session, trigger: str) -> Facts:
    return Facts(
        reason="patient became febrile",
        slot=_future_slot(session) if trigger in ("book", "reschedule") else None,
        decision_stream=Stream.GENERAL,
        referral_target="cmty-east",
    )


def _legal() -> list[tuple[str, str, str]]:
    from triage.config import ROOT
    from triage.services import EFFECTS
    from triage.workflow import load_workflow

    wf = load_workflow(ROOT / "workflows" / "encounter.yaml", effects=EFFECTS.keys())
    return [(t.trigger, t.source, t.dest) for t in wf.transitions]


@pytest.mark.parametrize(("trigger", "source", "dest"), _legal(), ids=[f"{t}:{s}" for t, s, _ in _legal()])
def test_every_legal_transition_changes_state_bumps_version_and_writes_audit(
    app: Flask, session: Session, trigger: str, source: str, dest: str
) -> None:
    with app.app_context():
        enc = _encounter(session, source, ticket="G-001" if source == "triaged" else None,
                         slot_id=None)
        if source == "booked":
            # A booked case holds a slot on its visit day.
            slot = _future_slot(session)
            enc.slot_id, enc.slot_starts_at = slot.id, slot.starts_at
            if trigger == "check_in":
                enc.visit_day = base_policy().local(utcnow()).date()
        version = enc.version
        transition(session, enc, trigger, workflow=workflow(), policy=base_policy(), actor=SYSTEM,
                   facts=_facts_for(session, trigger))
        store.save(session, enc)
        session.commit()
        assert enc.state == dest
        assert enc.version == version + 1
        log = session.exec(select(TransitionLog).where(TransitionLog.encounter_id == enc.id)).all()
        assert [(row.trigger, row.from_state, row.to_state) for row in log] == [(trigger, source, dest)]
        assert log[0].workflow_version == workflow().version
        assert log[0].policy_version == base_policy().version
        assert log[0].actor_kind == "system"
        if workflow().is_final(dest):
            assert enc.ended_at is not None


ILLEGAL = [
    ("complete", "waiting"), ("call", "booked"), ("check_in", "completed"), ("triage", "waiting"),
    ("start", "arrived"), ("book", "arrived"), ("cancel", "in_consultation"), ("retriage", "prescreened"),
    ("enqueue", "arrived"), ("mark_no_show", "waiting"), ("refer", "completed"), ("unknown_trigger", "waiting"),
]


@pytest.mark.parametrize(("trigger", "state"), ILLEGAL)
def test_illegal_transition_is_refused_and_changes_nothing(
    app: Flask, session: Session, trigger: str, state: str
) -> None:
    with app.app_context():
        enc = _encounter(session, state)
        session.commit()
        with pytest.raises(TransitionNotAllowed) as error:
            apply_event(session, reference=enc.reference, trigger=trigger, workflow=workflow(),
                        policy=base_policy(), actor=NURSE, reason="x", referral_target="cmty-east")
        assert error.value.status == 409
        assert "is not allowed while the case is" in error.value.en
        session.rollback()
        fresh = session.exec(select(Encounter).where(Encounter.id == enc.id)).one()
        assert (fresh.state, fresh.version) == (state, 1)
        assert session.exec(select(TransitionLog).where(TransitionLog.encounter_id == enc.id)).all() == []


def test_a_failed_condition_says_what_is_missing(app: Flask, session: Session) -> None:
    with app.app_context():
        enc = _encounter(session, "waiting")
        session.commit()
        with pytest.raises(TransitionNotAllowed) as error:
            apply_event(session, reference=enc.reference, trigger="retriage", workflow=workflow(),
                        policy=base_policy(), actor=NURSE, reason="   ")
        assert (error.value.field, error.value.en, error.value.zh) == (
            "has_reason", "A reason is required.", "请填写原因。")


def test_stale_version_is_a_conflict_and_the_case_is_not_overwritten(app: Flask, session: Session) -> None:
    with app.app_context():
        enc = _encounter(session, "waiting", ticket="G-001")
        session.commit()
        apply_event(session, reference=enc.reference, trigger="call", workflow=workflow(), policy=base_policy(),
                    actor=NURSE, expected_version=1)
        with pytest.raises(Conflict) as error:
            # A second nurse still looking at version 1 tries to start the consultation.
            apply_event(session, reference=enc.reference, trigger="start", workflow=workflow(),
                        policy=base_policy(), actor=NURSE, expected_version=1)
        assert error.value.status == 409
        assert error.value.en == "Someone else changed this case a moment ago; reload it and try again."
        session.rollback()
        fresh = session.exec(select(Encounter).where(Encounter.id == enc.id)).one()
        assert (fresh.state, fresh.version) == ("called", 2)


def test_the_audit_log_is_append_only(app: Flask, session: Session) -> None:
    with app.app_context():
        enc = _encounter(session, "waiting", ticket="G-001")
        session.commit()
        apply_event(session, reference=enc.reference, trigger="call", workflow=workflow(), policy=base_policy(),
                    actor=NURSE)
        with pytest.raises(DBAPIError, match="append-only"):
            session.execute(text("UPDATE transition_log SET reason = 'rewritten'"))
        session.rollback()
        with pytest.raises(DBAPIError, match="append-only"):
            session.execute(text("DELETE FROM transition_log"))
        session.rollback()


def test_ticket_numbers_count_per_stream_per_day(app: Flask, session: Session) -> None:
    with app.app_context():
        today = base_policy().local(utcnow()).date()
        numbers = [next_ticket_number(session, Stream.FEVER, today) for _ in range(3)]
        other = next_ticket_number(session, Stream.GENERAL, today)
        tomorrow = next_ticket_number(session, Stream.FEVER, today + timedelta(days=1))
        session.commit()
        assert (numbers, other, tomorrow) == ([1, 2, 3], 1, 1)


def test_a_slot_is_never_booked_beyond_capacity(app: Flask, session: Session) -> None:
    with app.app_context():
        slot = _future_slot(session)
        session.commit()
        booked = []
        for _ in range(slot.capacity + 2):
            enc = _encounter(session, "prescreened")
            try:
                transition(session, enc, "book", workflow=workflow(), policy=base_policy(), actor=SYSTEM,
                           facts=Facts(slot=slot))
                store.save(session, enc)
                session.commit()
                booked.append(enc.id)
            except Conflict as error:
                assert error.en == "This slot has just been filled; choose another."
                session.rollback()
        fresh = session.exec(select(Slot).where(Slot.id == slot.id)).one()
        assert len(booked) == slot.capacity == fresh.booked


def test_cancelling_releases_the_slot(app: Flask, session: Session) -> None:
    with app.app_context():
        slot = _future_slot(session)
        enc = _encounter(session, "prescreened")
        transition(session, enc, "book", workflow=workflow(), policy=base_policy(), actor=SYSTEM,
                   facts=Facts(slot=slot))
        store.save(session, enc)
        session.commit()
        apply_event(session, reference=enc.reference, trigger="cancel", workflow=workflow(),
                    policy=base_policy(), actor=SYSTEM)
        fresh = session.exec(select(Slot).where(Slot.id == slot.id)).one()
        assert fresh.booked == 0


def test_entry_is_logged_and_only_at_an_entry_state(app: Flask, session: Session) -> None:
    with app.app_context():
        enc = _encounter(session, "arrived")
        log_entry(enc, workflow=workflow(), policy=base_policy(), actor=NURSE, now=utcnow())
        store.save(session, enc)
        session.commit()
        rows = session.exec(select(TransitionLog).where(TransitionLog.encounter_id == enc.id)).all()
        assert [(r.trigger, r.from_state, r.to_state) for r in rows] == [("create", None, "arrived")]
        bad = _encounter(session, "waiting")
        with pytest.raises(Conflict):
            log_entry(bad, workflow=workflow(), policy=base_policy(), actor=NURSE, now=utcnow())
