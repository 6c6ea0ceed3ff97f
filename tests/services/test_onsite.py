"""On-site use cases: check-in, walk-ins, the nurse's decision, re-triage, queue actions and the reads."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, text
from sqlmodel import Session, col, select

from tests.conftest import make_app
from tests.onsite_support import (
    FEVER_VITALS,
    GENERAL_VITALS,
    always_open_policy,
    prescreened,
    staff_actor,
    ticketed,
)
from triage.domain.errors import Conflict, InvalidInput, NotFound
from triage.domain.policy import Stream
from triage.hospital import base_policy, workflow
from triage.models import Assessment, Encounter, TransitionLog, utcnow
from triage.services import format_reference, onsite, store
from triage.services.staff import digest


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    """The app with a policy whose clinics never close, so the engine's routing does not follow the clock."""
    application = make_app(database_url, POLICY_PATH=str(always_open_policy(tmp_path)))
    with application.app_context():
        yield application
    application.extensions["triage.db"].dispose()


def _check_in(session: Session, code: str) -> Encounter:
    return onsite.check_in(session, code=code, policy=base_policy(), workflow=workflow(), actor=staff_actor(session))


def _triage(session: Session, reference: str, data: dict[str, Any] | None = None,
            override: onsite.Override | None = None, *, supervisor: bool = False) -> onsite.Decision:
    return onsite.triage(session, reference=reference, data=data or GENERAL_VITALS, override=override,
                         policy=base_policy(), workflow=workflow(), actor=staff_actor(session),
                         may_lower_critical=supervisor)


def _log(session: Session, encounter: Encounter) -> list[tuple[str, str | None, str, str | None]]:
    rows = session.exec(select(TransitionLog).where(TransitionLog.encounter_id == encounter.id)
                        .order_by(col(TransitionLog.id))).all()
    return [(r.trigger, r.from_state, r.to_state, r.reason) for r in rows]


# --- check-in ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["prescreened", "booked"])
def test_check_in_by_code_arrives_and_logs(app: Flask, session: Session, state: str) -> None:
    enc = prescreened(session, state=state)
    checked = _check_in(session, enc.reference)
    assert checked.state == "arrived" and checked.arrived_at is not None
    assert _log(session, checked)[-1][:3] == ("check_in", state, "arrived")


@pytest.mark.parametrize("typed", [
    "{ref}", "{ref_lower}", "{formatted}", " {formatted} ", "https://hospital.example/s/{ref}",
    "https://hospital.example/v/{ref}?lang=en",
])
def test_check_in_accepts_what_scanners_and_people_type(app: Flask, session: Session, typed: str) -> None:
    enc = prescreened(session)
    code = typed.format(ref=enc.reference, ref_lower=enc.reference.lower(), formatted=format_reference(enc.reference))
    assert _check_in(session, code).reference == enc.reference


def test_check_in_by_a_status_link_token(app: Flask, session: Session) -> None:
    enc = prescreened(session)
    enc.status_token_hash = digest("Secret-Token_abc123")
    store.save(session, enc)
    session.commit()
    assert _check_in(session, "https://hospital.example/status/Secret-Token_abc123").reference == enc.reference


@pytest.mark.parametrize(("code", "error"), [
    ("", InvalidInput), ("   ", InvalidInput), ("ABC", InvalidInput), ("x" * 600, InvalidInput),
    ("ZZZZZZZZ", NotFound),
])
def test_check_in_refuses_what_is_not_a_known_code(app: Flask, session: Session, code: str,
                                                   error: type[Exception]) -> None:
    with pytest.raises(error) as caught:
        _check_in(session, code)
    assert caught.value.field == "code"  # type: ignore[attr-defined]


def test_a_cancelled_pre_screen_cannot_check_in(app: Flask, session: Session) -> None:
    enc = prescreened(session, state="cancelled")
    with pytest.raises(Conflict, match="cancelled") as caught:
        _check_in(session, enc.reference)
    assert "已取消" in caught.value.zh and "walk-in" in caught.value.en


def test_a_pre_screen_from_a_past_day_expires_and_cannot_check_in(app: Flask, session: Session) -> None:
    enc = prescreened(session, state="booked", visit_day_offset=-1)
    with pytest.raises(Conflict, match="has expired") as caught:
        _check_in(session, enc.reference)
    assert "已过期" in caught.value.zh
    session.expire_all()
    # The pre-screening module's expiry ran: the case is closed as a no-show, and it stays so.
    assert session.get(Encounter, enc.id).state == "no_show"  # type: ignore[union-attr]


def test_a_pre_screen_for_a_later_day_cannot_check_in_today(app: Flask, session: Session) -> None:
    enc = prescreened(session, state="booked", visit_day_offset=2)
    with pytest.raises(Conflict, match="not today"):
        _check_in(session, enc.reference)
    session.expire_all()
    assert session.get(Encounter, enc.id).state == "booked"  # type: ignore[union-attr]


def test_checking_in_twice_says_so(app: Flask, session: Session) -> None:
    enc = prescreened(session)
    _check_in(session, enc.reference)
    with pytest.raises(onsite.AlreadyCheckedIn) as caught:
        _check_in(session, enc.reference)
    assert caught.value.state == "arrived" and caught.value.status == 409
    _triage(session, enc.reference)
    with pytest.raises(onsite.AlreadyCheckedIn, match="ticket G-001") as ticketed_case:
        _check_in(session, enc.reference)
    assert ticketed_case.value.ticket == "G-001"


@pytest.mark.parametrize("state", ["completed", "no_show", "referred", "directed_to_emergency"])
def test_a_closed_case_cannot_check_in(app: Flask, session: Session, state: str) -> None:
    enc = prescreened(session, state=state)
    with pytest.raises(Conflict, match="closed"):
        _check_in(session, enc.reference)


# --- the decision ---------------------------------------------------------------------------------------------


def test_confirming_issues_a_ticket_queues_and_keeps_both_assessments(app: Flask, session: Session) -> None:
    enc = prescreened(session, symptoms=["headache"])
    _check_in(session, enc.reference)
    decision = _triage(session, enc.reference)
    assert decision.encounter.state == "waiting" and decision.encounter.ticket == "G-001"
    assert decision.escort is None
    stages = [a.stage for a in session.exec(select(Assessment).where(Assessment.encounter_id == enc.id)
                                            .order_by(col(Assessment.id)))]
    assert stages == ["online", "onsite"]
    record = decision.record
    assert record.inputs["stage"] == "onsite" and record.inputs["temperature_c"] == 36.6
    assert "symptoms" not in record.inputs and record.inputs["age_years"] == 40  # age from the case
    assert (record.recommended_stream, record.final_stream, record.overridden) == ("general", "general", False)
    assert record.result["reasons"] and {"rule", "zh", "en"} <= set(record.result["reasons"][0])
    assert [row[0] for row in _log(session, enc)][-2:] == ["triage", "enqueue"]


def test_a_febrile_patient_goes_to_the_fever_clinic_with_an_escort(app: Flask, session: Session) -> None:
    enc = prescreened(session)
    _check_in(session, enc.reference)
    decision = _triage(session, enc.reference, FEVER_VITALS)
    assert decision.encounter.ticket == "F-001" and decision.encounter.isolation_required
    assert decision.escort is onsite.Escort.FEVER
    assert "fever clinic" in decision.escort.text("en") and "发热门诊" in decision.escort.text("zh")


def test_priority_groups_set_the_sort_columns(app: Flask, session: Session) -> None:
    enc = prescreened(session, age=80)
    _check_in(session, enc.reference)
    decision = _triage(session, enc.reference)
    assert decision.encounter.flags == ["elderly"] and decision.encounter.priority_sort == 0
    assert decision.encounter.acuity_sort == 5


def test_an_override_needs_a_reason(app: Flask, session: Session) -> None:
    enc = prescreened(session)
    _check_in(session, enc.reference)
    with pytest.raises(InvalidInput) as caught:
        _triage(session, enc.reference, override=onsite.Override(Stream.EMERGENCY, 3))
    assert set(caught.value.errors) == {"override.reason"}
    session.rollback()
    decision = _triage(session, enc.reference, override=onsite.Override(Stream.EMERGENCY, 3, "chest tightness"))
    record = decision.record
    assert (record.recommended_stream, record.final_stream, record.final_level) == ("general", "emergency", 3)
    assert record.overridden and record.override_reason == "chest tightness"
    assert decision.encounter.ticket == "E-001" and decision.encounter.acuity_sort == 3
    assert _log(session, enc)[-2] == ("triage", "arrived", "triaged", "chest tightness")


def test_an_override_to_emergency_needs_a_level(app: Flask, session: Session) -> None:
    enc = prescreened(session)
    _check_in(session, enc.reference)
    with pytest.raises(InvalidInput) as caught:
        _triage(session, enc.reference, override=onsite.Override(Stream.EMERGENCY, None, "looks unwell"))
    assert set(caught.value.errors) == {"override.cn_level"}


def test_a_level_without_emergency_is_refused(app: Flask, session: Session) -> None:
    enc = prescreened(session)
    _check_in(session, enc.reference)
    with pytest.raises(InvalidInput) as caught:
        _triage(session, enc.reference, override=onsite.Override(None, 2, "x"))
    assert set(caught.value.errors) == {"override.cn_level"}


def test_restating_the_recommendation_is_not_an_override(app: Flask, session: Session) -> None:
    enc = prescreened(session)
    _check_in(session, enc.reference)
    decision = _triage(session, enc.reference, override=onsite.Override(Stream.GENERAL, None, ""))
    assert not decision.record.overridden and decision.record.override_reason is None


@pytest.mark.parametrize("stream", [Stream.GENERAL, Stream.CHRONIC])
def test_a_patient_who_screens_positive_never_goes_to_a_general_area(app: Flask, session: Session,
                                                                     stream: Stream) -> None:
    enc = prescreened(session)
    _check_in(session, enc.reference)
    with pytest.raises(InvalidInput) as caught:
        _triage(session, enc.reference, FEVER_VITALS, onsite.Override(stream, None, "nurse thinks it is fine"),
                supervisor=True)
    assert set(caught.value.errors) == {"override.stream"}


def test_a_fever_patient_sent_to_emergency_is_isolated(app: Flask, session: Session) -> None:
    enc = prescreened(session)
    _check_in(session, enc.reference)
    decision = _triage(session, enc.reference, FEVER_VITALS, onsite.Override(Stream.EMERGENCY, 3, "worsening"))
    assert decision.encounter.isolation_required and decision.escort is onsite.Escort.ISOLATION


CRITICAL = {**GENERAL_VITALS, "spo2": 85}  # level 2 on the Chinese scale


@pytest.mark.parametrize("override", [onsite.Override(Stream.EMERGENCY, 3, "re-measured"),
                                      onsite.Override(Stream.GENERAL, None, "re-measured")])
def test_only_a_supervisor_may_lower_a_level_1_or_2_recommendation(app: Flask, session: Session,
                                                                   override: onsite.Override) -> None:
    enc = prescreened(session)
    _check_in(session, enc.reference)
    with pytest.raises(onsite.NotPermitted) as caught:
        _triage(session, enc.reference, CRITICAL, override)
    assert caught.value.status == 403
    session.rollback()
    decision = _triage(session, enc.reference, CRITICAL, override, supervisor=True)
    assert decision.record.overridden


def test_anyone_may_raise_the_urgency(app: Flask, session: Session) -> None:
    enc = prescreened(session)
    _check_in(session, enc.reference)
    decision = _triage(session, enc.reference, CRITICAL, onsite.Override(Stream.EMERGENCY, 1, "deteriorating"))
    assert decision.record.recommended_level == 2 and decision.encounter.cn_level == 1


def test_invalid_measurements_are_refused_per_field_and_nothing_changes(app: Flask, session: Session) -> None:
    enc = prescreened(session)
    _check_in(session, enc.reference)
    with pytest.raises(InvalidInput) as caught:
        _triage(session, enc.reference, {**GENERAL_VITALS, "temperature_c": 101.5, "spo2": 130})
    assert set(caught.value.errors) == {"temperature_c", "spo2"}
    assert "Fahrenheit" in caught.value.errors["temperature_c"][1]
    session.rollback()
    session.expire_all()
    assert session.get(Encounter, enc.id).state == "arrived"  # type: ignore[union-attr]


def test_a_stale_version_is_a_conflict(app: Flask, session: Session) -> None:
    enc = prescreened(session)
    arrived = _check_in(session, enc.reference)
    with pytest.raises(Conflict, match="Someone else"):
        onsite.triage(session, reference=enc.reference, data=GENERAL_VITALS, policy=base_policy(),
                      workflow=workflow(), actor=staff_actor(session), may_lower_critical=False,
                      expected_version=arrived.version - 1)


def test_a_case_not_awaiting_triage_cannot_be_triaged(app: Flask, session: Session) -> None:
    enc = prescreened(session)
    with pytest.raises(Conflict, match="not awaiting triage"):
        _triage(session, enc.reference)


# --- walk-ins ---------------------------------------------------------------------------------------------------


def test_a_walk_in_is_registered_arrived_with_its_audit_row(app: Flask, session: Session) -> None:
    enc = onsite.register_walk_in(session, patient=onsite.WalkIn(age_years="67", name=" 王  五 ", sex="f"),
                                  policy=base_policy(), workflow=workflow(), actor=staff_actor(session))
    assert (enc.origin, enc.state, enc.patient_name, enc.age_years, enc.sex) == ("walk_in", "arrived", "王 五", 67, "F")
    assert enc.arrived_at is not None and enc.order_at == enc.arrived_at
    assert _log(session, enc) == [("create", None, "arrived", None)]


@pytest.mark.parametrize(("typed", "age"), [("６７", 67), ("67,5", 67), (" 8。5 ", 8), (41, 41), (0.5, 0)])
def test_a_walk_ins_age_is_read_as_the_desks_other_numbers(app: Flask, session: Session, typed: object,
                                                            age: int) -> None:
    enc = onsite.register_walk_in(session, patient=onsite.WalkIn(age_years=typed), policy=base_policy(),
                                  workflow=workflow(), actor=staff_actor(session))
    assert enc.age_years == age


@pytest.mark.parametrize(("patient", "fields"), [
    (onsite.WalkIn(), {"age_years"}),
    (onsite.WalkIn(age_years="old"), {"age_years"}),
    (onsite.WalkIn(age_years=130), {"age_years"}),
    (onsite.WalkIn(age_years="3_3"), {"age_years"}),  # float() reads 33
    (onsite.WalkIn(age_years="nan"), {"age_years"}),
    (onsite.WalkIn(age_years=float("inf")), {"age_years"}),
    (onsite.WalkIn(age_years=True), {"age_years"}),
    (onsite.WalkIn(age_years="1" * 400), {"age_years"}),
    (onsite.WalkIn(age_years="  "), {"age_years"}),
    (onsite.WalkIn(age_years=30, sex="X"), {"sex"}),
    (onsite.WalkIn(age_years=30, phone="call me"), {"phone"}),
    (onsite.WalkIn(age_years=30, arrival_mode="bicycle"), {"arrival_mode"}),
    (onsite.WalkIn(age_years=30, name="x" * 101), {"name"}),
])
def test_walk_in_details_are_validated(app: Flask, session: Session, patient: onsite.WalkIn,
                                       fields: set[str]) -> None:
    with pytest.raises(InvalidInput) as caught:
        onsite.register_walk_in(session, patient=patient, policy=base_policy(), workflow=workflow(),
                                actor=staff_actor(session))
    assert set(caught.value.errors) == fields


def test_a_walk_in_with_an_invalid_assessment_leaves_no_case(app: Flask, session: Session) -> None:
    with pytest.raises(InvalidInput):
        onsite.admit_walk_in(session, patient=onsite.WalkIn(age_years=30), data={"spo2": 150},
                             policy=base_policy(), workflow=workflow(), actor=staff_actor(session),
                             may_lower_critical=False)
    session.rollback()
    assert session.exec(select(Encounter)).all() == []


# --- re-triage and queue actions --------------------------------------------------------------------------------


def test_re_triage_moves_a_general_patient_to_the_fever_clinic(app: Flask, session: Session) -> None:
    enc = ticketed(session, Stream.GENERAL)
    assert enc.ticket == "G-001"
    back = onsite.retriage(session, reference=enc.reference, reason="temperature 38.5 while waiting",
                           policy=base_policy(), workflow=workflow(), actor=staff_actor(session),
                           expected_version=enc.version)
    assert back.state == "arrived"
    decision = _triage(session, enc.reference, FEVER_VITALS)
    assert (decision.encounter.stream, decision.encounter.ticket, decision.encounter.state) == (
        "fever", "F-001", "waiting")
    onsite_records = session.exec(select(Assessment).where(Assessment.encounter_id == enc.id,
                                                           Assessment.stage == "onsite")).all()
    assert [r.final_stream for r in onsite_records] == ["general", "fever"]
    assert ("retriage", "waiting", "arrived", "temperature 38.5 while waiting") in _log(session, enc)


def test_re_triage_needs_a_reason(app: Flask, session: Session) -> None:
    enc = ticketed(session)
    with pytest.raises(InvalidInput) as caught:
        onsite.retriage(session, reference=enc.reference, reason="  ", policy=base_policy(), workflow=workflow(),
                        actor=staff_actor(session))
    assert set(caught.value.errors) == {"reason"}


def _act(session: Session, enc: Encounter, trigger: str, **kwargs: Any) -> Encounter:
    return onsite.queue_action(session, reference=enc.reference, trigger=trigger, policy=base_policy(),
                               workflow=workflow(), actor=staff_actor(session), **kwargs)


def test_call_call_again_start_complete(app: Flask, session: Session) -> None:
    enc = ticketed(session)
    assert _act(session, enc, "call").state == "called"
    again = _act(session, enc, "call")
    assert again.call_count == 2
    assert _act(session, enc, "start").state == "in_consultation"
    done = _act(session, enc, "complete")
    assert done.state == "completed" and done.ended_at is not None


def test_the_workflow_decides_what_is_allowed(app: Flask, session: Session) -> None:
    enc = ticketed(session)
    with pytest.raises(Conflict, match="not allowed"):
        _act(session, enc, "complete")
    with pytest.raises(Conflict):
        _act(session, enc, "mark_no_show")


def test_a_stale_queue_action_is_refused(app: Flask, session: Session) -> None:
    enc = ticketed(session)
    version = enc.version
    _act(session, enc, "call", expected_version=version)
    with pytest.raises(Conflict, match="Someone else"):
        _act(session, enc, "start", expected_version=version)


@pytest.mark.parametrize("target", ["cmty-east", "online_followup"])
def test_refer_to_a_facility_or_online_follow_up(app: Flask, session: Session, target: str) -> None:
    enc = _act(session, ticketed(session), "refer", referral_target=target)
    assert (enc.state, enc.disposition) == ("referred", target)


@pytest.mark.parametrize(("target", "field"), [(None, "referral_target"), ("", "referral_target"),
                                               ("moon-clinic", "referral_target")])
def test_refer_needs_a_known_target(app: Flask, session: Session, target: str | None, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        _act(session, ticketed(session), "refer", referral_target=target)
    assert set(caught.value.errors) == {field}


def test_only_queue_actions_are_accepted(app: Flask, session: Session) -> None:
    with pytest.raises(InvalidInput):
        _act(session, ticketed(session), "check_in")


def test_queue_actions_follow_the_workflow_file() -> None:
    assert onsite.QUEUE_TRIGGERS == ("call", "start", "complete", "retriage", "mark_no_show", "leave", "refer")


def test_available_actions_per_state(app: Flask) -> None:
    wf = workflow()
    assert onsite.queue_actions(wf, "waiting") == ("call", "start", "retriage", "leave", "refer")
    assert onsite.queue_actions(wf, "called") == ("call", "start", "retriage", "mark_no_show", "leave", "refer")
    assert onsite.queue_actions(wf, "in_consultation") == ("complete", "refer")
    assert onsite.queue_actions(wf, "completed") == ()


# --- reads ------------------------------------------------------------------------------------------------------


def test_the_queue_is_in_queue_order_and_split_by_state(app: Flask, session: Session) -> None:
    late = ticketed(session, Stream.EMERGENCY, name="Late Three",
                    override=onsite.Override(Stream.EMERGENCY, 3, "x"))
    urgent = ticketed(session, Stream.EMERGENCY, name="Level Two", override=onsite.Override(Stream.EMERGENCY, 2, "x"))
    elderly = ticketed(session, Stream.EMERGENCY, name="Old Three", age=80,
                       override=onsite.Override(Stream.EMERGENCY, 3, "x"))
    called = ticketed(session, Stream.EMERGENCY, name="Called Four", override=onsite.Override(Stream.EMERGENCY, 4, "x"))
    _act(session, called, "call")
    view = onsite.read_queue(session, stream=Stream.EMERGENCY, policy=base_policy(), workflow=workflow())
    assert [e.encounter.reference for e in view.waiting] == [urgent.reference, elderly.reference, late.reference]
    assert [e.position for e in view.waiting] == [1, 2, 3]
    assert [e.wait.target_minutes for e in view.waiting] == [10, 30, 30]
    assert [e.estimated_minutes for e in view.waiting] == [0, 20, 40]  # emergency: 20 minutes a consultation
    assert [e.encounter.reference for e in view.called] == [called.reference]
    assert view.called[0].actions == ("call", "start", "retriage", "mark_no_show", "leave", "refer")


def test_an_overdue_wait_is_flagged(app: Flask, session: Session) -> None:
    enc = ticketed(session, Stream.EMERGENCY, override=onsite.Override(Stream.EMERGENCY, 2, "x"))
    later = utcnow() + timedelta(minutes=11)
    view = onsite.read_queue(session, stream=Stream.EMERGENCY, policy=base_policy(), workflow=workflow(), now=later)
    assert view.waiting[0].wait.overdue and view.overdue == 1
    summary = {s.stream: s for s in onsite.queue_summary(session, policy=base_policy(), now=later)}
    assert summary[Stream.EMERGENCY].overdue == 1 and summary[Stream.EMERGENCY].longest_wait_minutes >= 10
    assert enc.ticket == "E-001"


def test_the_board_shows_masked_names_called_first_then_the_next(app: Flask, session: Session) -> None:
    first = ticketed(session, Stream.FEVER, name="张三明")
    ticketed(session, Stream.FEVER, name="John Smith")
    ticketed(session, Stream.GENERAL, name="Not On This Board")
    _act(session, first, "call")
    board = onsite.read_board(session, area="fever")
    assert [(t.ticket, t.name, t.recent) for t in board.called] == [("F-001", "张*明", True)]
    assert [(t.ticket, t.name) for t in board.upcoming] == [("F-002", "J*** S.")]
    outpatient = onsite.read_board(session, area="outpatient")
    assert [t.ticket for t in outpatient.upcoming] == ["G-001"]
    with pytest.raises(NotFound):
        onsite.read_board(session, area="canteen")


# --- performance guards -----------------------------------------------------------------------------------------


class _Statements:
    """Counts the SQL statements an engine runs (BEGIN and PRAGMA excluded)."""

    def __init__(self, app: Flask) -> None:
        self.engines = {app.extensions["triage.db"].engine, app.extensions["triage.db"].read_engine}
        self.seen: list[str] = []

    def __enter__(self) -> _Statements:
        for engine in self.engines:
            event.listen(engine, "before_cursor_execute", self._count)
        return self

    def __exit__(self, *exc: object) -> None:
        for engine in self.engines:
            event.remove(engine, "before_cursor_execute", self._count)

    def _count(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.lstrip().upper().startswith(("BEGIN", "PRAGMA")):
            self.seen.append(statement)


@pytest.mark.parametrize("patients", [3, 30])
def test_the_queue_read_is_one_statement_however_long_the_queue(app: Flask, session: Session, patients: int) -> None:
    for i in range(patients):
        enc = ticketed(session, Stream.GENERAL, name=f"P{i}", age=20 + i)
        if i % 3 == 0:
            _act(session, enc, "call")
    session.expire_all()
    with _Statements(app) as counted:
        view = onsite.read_queue(session, stream=Stream.GENERAL, policy=base_policy(), workflow=workflow())
        assert len(view.entries) == patients
        for entry in view.entries:  # everything the screen shows, without lazy loads
            _ = (entry.encounter.ticket, entry.encounter.flags, entry.wait.status, entry.actions)
    assert len(counted.seen) == 1, counted.seen


@pytest.mark.parametrize("patients", [3, 30])
def test_the_board_read_is_two_statements(app: Flask, session: Session, patients: int) -> None:
    for i in range(patients):
        enc = ticketed(session, Stream.FEVER, name=f"P{i}")
        if i % 2 == 0:
            _act(session, enc, "call")
    with _Statements(app) as counted:
        onsite.read_board(session, area="fever")
    assert len(counted.seen) == 2, counted.seen


def test_the_queue_read_uses_the_queue_index_among_many_past_cases(app: Flask, session: Session) -> None:
    now = utcnow()
    past = [{"reference": f"P{i:07d}", "origin": "online", "state": "completed", "workflow_name": "encounter",
             "workflow_version": "1", "policy_version": "test", "version": 5, "stream": "general",
             "created_at": now - timedelta(days=1 + i % 300), "updated_at": now, "order_at": now,
             "priority_flags": "", "isolation_required": False, "acuity_sort": 5, "priority_sort": 1,
             "call_count": 1} for i in range(20_000)]
    session.execute(Encounter.__table__.insert(), past)  # type: ignore[attr-defined]
    first = session.execute(text("SELECT min(id) FROM encounter")).scalar_one()
    # Their audit trail, and a busy morning of other streams' bookings logged after the last queue change.
    log = [{"encounter_id": first + i, "at": now, "trigger": "complete", "from_state": "in_consultation",
            "to_state": "completed", "actor_kind": "staff", "stream": ("general", "fever", "chronic")[i % 3],
            "workflow_version": "1", "policy_version": "test"} for i in range(20_000)]
    log += [{**row, "trigger": "book", "from_state": "prescreened", "to_state": "booked", "stream": "fever"}
            for row in log[:20_000]]
    session.execute(TransitionLog.__table__.insert(), log)  # type: ignore[attr-defined]
    for i in range(5):
        ticketed(session, Stream.GENERAL, name=f"Live {i}")
    dialect = session.get_bind().dialect
    session.commit()
    if dialect.name == "sqlite":
        session.execute(text("ANALYZE"))
    else:  # as autovacuum keeps a table: statistics and the visibility map
        with session.get_bind().connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    explain = "EXPLAIN QUERY PLAN" if dialect.name == "sqlite" else "EXPLAIN"
    for query in (onsite._QUEUE_ALL, onsite._QUEUE_HEAD, onsite._QUEUE_OTHERS):
        statement = query.params(stream="general", limit=50).compile(
            dialect=dialect, compile_kwargs={"literal_binds": True})
        plan = " ".join(str(row) for row in session.execute(text(f"{explain} {statement}")))
        assert "ix_encounter_queue" in plan, plan
    for stream in ("general", "chronic"):
        statement = onsite._LATEST_QUEUE_CHANGE.params(stream=stream).compile(
            dialect=dialect, compile_kwargs={"literal_binds": True})
        plan = " ".join(str(row) for row in session.execute(text(f"{explain} {statement}")))
        assert "ix_transition_log_queue" in plan, plan
    assert onsite.queue_version(session, Stream.GENERAL) > onsite.queue_version(session, Stream.CHRONIC) > 0
    session.rollback()
    view = onsite.read_queue(session, stream=Stream.GENERAL, policy=base_policy(), workflow=workflow())
    assert len(view.waiting) == 5


# --- concurrency -------------------------------------------------------------------------------------------------


def test_reads_by_end_and_by_staff_use_their_partial_indexes(app: Flask, session: Session) -> None:
    """Open cases and the patients' own audit rows are not indexed (migration 0004); the readers still are."""
    now = utcnow()
    rows = [{"reference": f"E{i:07d}", "origin": "online", "state": "completed" if i % 2 else "prescreened",
             "workflow_name": "encounter", "workflow_version": "1", "policy_version": "test", "version": 1,
             "stream": "general", "created_at": now - timedelta(days=i % 300), "updated_at": now, "order_at": now,
             "ended_at": now - timedelta(days=i % 300) if i % 2 else None, "priority_flags": "",
             "isolation_required": False, "acuity_sort": 5, "priority_sort": 1, "call_count": 0}
            for i in range(20_000)]
    session.execute(Encounter.__table__.insert(), rows)  # type: ignore[attr-defined]
    first = session.execute(text("SELECT min(id) FROM encounter")).scalar_one()
    log = [{"encounter_id": first + i, "at": now, "trigger": "book", "from_state": "prescreened",
            "to_state": "booked", "actor_kind": "patient", "stream": "general", "workflow_version": "1",
            "policy_version": "test"} for i in range(20_000)]
    session.execute(TransitionLog.__table__.insert(), log)  # type: ignore[attr-defined]
    dialect = session.get_bind().dialect
    session.commit()
    if dialect.name == "sqlite":
        session.execute(text("ANALYZE"))
    else:
        with session.get_bind().connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    explain = "EXPLAIN QUERY PLAN" if dialect.name == "sqlite" else "EXPLAIN"
    ended_today = (select(col(Encounter.state), col(Encounter.stream))
                   .where(col(Encounter.ended_at) >= now - timedelta(hours=12), col(Encounter.ended_at) < now))
    by_staff = select(col(TransitionLog.id)).where(col(TransitionLog.actor_id) == 1)
    for statement, index in ((ended_today, "ix_encounter_ended"), (by_staff, "ix_transition_log_actor_id")):
        sql = statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
        plan = " ".join(str(row) for row in session.execute(text(f"{explain} {sql}")))
        assert index in plan, plan
    catalog = {"sqlite": "SELECT sql FROM sqlite_master WHERE name = :name",
               "postgresql": "SELECT indexdef FROM pg_indexes WHERE indexname = :name"}[dialect.name]
    for index, column in (("ix_encounter_ended", "ended_at"), ("ix_transition_log_actor_id", "actor_id")):
        definition = " ".join(session.execute(text(catalog), {"name": index}).scalar_one().split())
        assert definition.replace("(", "").replace(")", "").endswith(f"WHERE {column} IS NOT NULL"), definition


def test_ticket_numbers_stay_unique_when_nurses_triage_at_the_same_instant(app: Flask, session: Session) -> None:
    nurses = 16
    references = []
    for i in range(nurses):
        enc = onsite.register_walk_in(session, patient=onsite.WalkIn(age_years=30 + i, name=f"Patient {i}"),
                                      policy=base_policy(), workflow=workflow(), actor=staff_actor(session))
        references.append(enc.reference)
    actor = staff_actor(session)
    policy, wf = base_policy(), workflow()
    session.rollback()  # end this session's transaction: on SQLite it would hold the write lock
    db = app.extensions["triage.db"]
    start = threading.Barrier(nurses)
    tickets: list[str] = []
    errors: list[BaseException] = []

    def nurse(reference: str) -> None:
        own = db.session()
        try:
            start.wait()
            decision = onsite.triage(own, reference=reference, data=FEVER_VITALS, policy=policy, workflow=wf,
                                     actor=actor, may_lower_critical=False)
            tickets.append(decision.encounter.ticket or "")
        except BaseException as exc:  # collected and re-raised by the test
            errors.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=nurse, args=(ref,)) for ref in references]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert sorted(tickets) == [f"F-{n:03d}" for n in range(1, nurses + 1)]
    stored = session.exec(select(Encounter.ticket).where(col(Encounter.ticket).is_not(None))).all()
    assert len(set(stored)) == nurses


@pytest.mark.parametrize(("result", "zh", "en"), [
    ({"reasons": [{"rule": "R", "zh": "中文。", "en": "English."}]}, ["中文。"], ["English."]),
    ({"reasons": [{"rule": "R", "message": "中文。"}], "reasons_en": [{"rule": "R", "message": "English."}]},
     ["中文。"], ["English."]),
    ({"reasons": [{"rule": "R", "message": "中文。"}]}, ["中文。"], ["中文。"]),
    ({}, [], []),
    ({"reasons": ["junk", None]}, [], []),
])
def test_stored_reasons_are_read_in_either_form(result: dict[str, Any], zh: list[str], en: list[str]) -> None:
    assert onsite.reason_texts(result, "zh") == zh and onsite.reason_texts(result, "en") == en


def test_the_head_of_a_long_queue_has_the_whole_queues_counts(app: Flask, session: Session) -> None:
    """A clinic screen reads the next patients only; its counts and overdue figures are the whole line's."""
    policy, wf = base_policy(), workflow()
    for i in range(5):
        ticketed(session, Stream.EMERGENCY, name=f"病人{i}",
                 override=onsite.Override(Stream.EMERGENCY, 2 + i % 3, "test: mixed levels"))
    # Two of them have waited long: past the level-2 (10 min) or level-3 (30 min) target, not level 4's.
    rows = session.exec(select(Encounter).where(Encounter.state == "waiting").order_by(col(Encounter.id))).all()
    for enc, minutes in zip(rows, (45, 35, 25, 0, 0), strict=True):
        enc.queued_at = utcnow() - timedelta(minutes=minutes)
        session.add(enc)
    session.commit()
    full = onsite.read_queue(session, stream=Stream.EMERGENCY, policy=policy, workflow=wf)
    head = onsite.read_queue(session, stream=Stream.EMERGENCY, policy=policy, workflow=wf, waiting_limit=2)
    assert [e.encounter.id for e in head.waiting] == [e.encounter.id for e in full.waiting][:2]
    assert head.waiting_total == full.waiting_total == 5
    assert head.overdue == full.overdue == 2
