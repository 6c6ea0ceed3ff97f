"""Hospital-side contacts: callback requests, bookings a policy change affects, and contact attempts.

When the hospital cuts capacity or the regional risk level rises, every affected patient must be
contacted and rescheduled or redirected (141 §5, 004 §4.5). Staff see the list here, record each
attempt, and move, cancel or refer the visit on the patient's behalf through the same use cases the
patient uses (`triage.services.prescreen`), with their own actor: every change is in the audit log.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from triage.domain.assessment import assess
from triage.domain.errors import Conflict, InvalidInput, NotFound
from triage.domain.policy import Policy, Stream
from triage.models import Assessment, CallbackRequest, ContactAttempt, PolicyChange, TransitionLog, utcnow
from triage.notify import Notifier, commit_and_deliver
from triage.services import store
from triage.services.core import Actor, format_reference
from triage.services.prescreen import (
    LIVE_BOOKING_STATES,
    ONLINE_FOLLOWUP,
    get_encounter,
    live_encounter,
    patient_message,
    refer_online,
)
from triage.services.slots import aware, is_bookable
from triage.services.store import ENCOUNTER, EncounterRecord
from triage.workflow import Workflow

CONTACT_CHANNELS: Mapping[str, tuple[str, str]] = {
    "phone": ("电话", "Phone call"),
    "sms": ("短信", "Text message"),
    "in_person": ("当面", "In person"),
}
CONTACT_OUTCOMES: Mapping[str, tuple[str, str]] = {
    "no_answer": ("无人接听", "No answer"),
    "message_left": ("已留言", "Message left"),
    "wrong_number": ("号码有误", "Wrong number"),
    "reached_kept": ("已联系：保留原预约", "Reached: keeps the booking"),
    "reached_moved": ("已联系：已改约", "Reached: moved to another time"),
    "reached_cancelled": ("已联系：已取消", "Reached: visit cancelled"),
    "reached_online": ("已联系：改为线上复诊", "Reached: online follow-up instead"),
}
# What staff record by hand; the others are written by the reschedule, cancel and referral actions.
MANUAL_OUTCOMES = ("no_answer", "message_left", "wrong_number", "reached_kept")


def label(table: Mapping[str, tuple[str, str]], code: str, lang: str) -> str:
    """The label of a channel or outcome code in the given language."""
    zh, en = table.get(code, (code, code))
    return en if lang == "en" else zh


@dataclass(frozen=True)
class CallbackItem:
    """An open callback request with its visit."""

    request: CallbackRequest
    encounter: EncounterRecord | None

    @property
    def kind(self) -> str:
        """"online_followup" when the patient chose online follow-up, else "no_slot"."""
        if self.encounter is not None and self.encounter.disposition == ONLINE_FOLLOWUP:
            return ONLINE_FOLLOWUP
        return "no_slot"


def open_callbacks(session: Session, *, limit: int = 500) -> list[CallbackItem]:
    """Callback requests not yet handled, oldest first."""
    requests = list(session.exec(
        select(CallbackRequest).where(col(CallbackRequest.handled_at).is_(None))
        .order_by(col(CallbackRequest.created_at), col(CallbackRequest.id)).limit(limit)))
    ids = sorted({r.encounter_id for r in requests if r.encounter_id is not None})
    visits = {e.id: e for e in store.fetch(session, store.select_all().where(ENCOUNTER.c.id.in_(ids)))} if ids else {}
    return [CallbackItem(request, visits.get(request.encounter_id)) for request in requests]


def callbacks_for(session: Session, encounter: EncounterRecord) -> list[CallbackRequest]:
    """Every callback request of one visit, newest first."""
    return list(session.exec(select(CallbackRequest).where(CallbackRequest.encounter_id == encounter.id)
                             .order_by(col(CallbackRequest.id).desc())))


def handle_callback(session: Session, *, callback_id: int, actor: Actor, outcome: str,
                    now: datetime | None = None) -> CallbackRequest:
    """Mark a callback request handled, with what was agreed; commits."""
    text = (outcome or "").strip()
    if not text:
        raise InvalidInput({"outcome": ("请写下处理结果。", "Write down what was agreed.")})
    if len(text) > 200:
        raise InvalidInput({"outcome": ("最多 200 个字。", "At most 200 characters.")})
    request = session.exec(select(CallbackRequest).where(CallbackRequest.id == callback_id)
                           .with_for_update()).first()
    if request is None:
        raise NotFound("没有这个回电请求。", "No such callback request.")
    if request.handled_at is not None:
        raise Conflict("这个回电请求已被处理。", "This callback request has already been handled.")
    request.handled_at = now or utcnow()
    request.handled_by_id = actor.user_id
    request.outcome = text
    session.add(request)
    session.commit()
    return request


@dataclass(frozen=True)
class AffectedBooking:
    """A future booking the hospital must talk to the patient about, and why."""

    encounter: EncounterRecord
    reasons: tuple[tuple[str, str, str], ...]  # (code, zh, en)
    attempts: tuple[ContactAttempt, ...]

    def reason_texts(self, lang: str) -> list[str]:
        """The reasons in the given language."""
        return [en if lang == "en" else zh for _, zh, en in self.reasons]


def contact_attempts(session: Session, encounter: EncounterRecord) -> list[ContactAttempt]:
    """Contact attempts for one visit, newest first."""
    return list(session.exec(select(ContactAttempt).where(ContactAttempt.encounter_id == encounter.id)
                             .order_by(col(ContactAttempt.id).desc())))


def affected_bookings(session: Session, policy: Policy, now: datetime | None = None) -> list[AffectedBooking]:
    """Future bookings to contact: beyond a slot's (cut) capacity, or re-assessed differently under today's policy.

    Within an overfull slot, priority-group patients and the earliest bookings keep their places
    (141 §3: priority groups never lose service). A booking stops being listed once it is moved,
    cancelled, or staff record that the patient keeps it after the latest policy change.
    """
    now = now or utcnow()
    booked = store.fetch(session, store.select_all()
                         .where(ENCOUNTER.c.state == "booked", ENCOUNTER.c.slot_starts_at > now)
                         .order_by(ENCOUNTER.c.slot_starts_at, ENCOUNTER.c.id))
    if not booked:
        return []
    ids = [e.id for e in booked]
    booked_at: dict[int, datetime] = {
        encounter_id: aware(at) for encounter_id, at in session.exec(
            select(TransitionLog.encounter_id, func.max(TransitionLog.at))
            .where(col(TransitionLog.encounter_id).in_(ids), col(TransitionLog.trigger).in_(("book", "reschedule")))
            .group_by(col(TransitionLog.encounter_id)))}
    reasons: dict[int, list[tuple[str, str, str]]] = {}

    by_slot: dict[int, list[EncounterRecord]] = {}
    for encounter in booked:
        by_slot.setdefault(encounter.slot_id or 0, []).append(encounter)
    for members in by_slot.values():
        stream = Stream(members[0].provisional_stream or Stream.GENERAL.value)
        capacity = policy.streams[stream].capacity_per_slot if is_bookable(policy, stream) else 0
        if len(members) <= capacity:
            continue
        members.sort(key=lambda e: (e.priority_sort, booked_at.get(e.id or 0, aware(e.created_at)), e.id))
        for encounter in members[capacity:]:
            reasons.setdefault(encounter.id or 0, []).append((
                "over_capacity",
                f"时段容量已调整为 {capacity} 人，此预约超出容量",
                f"The slot's capacity is now {capacity}; this booking is beyond it"))

    rows = {a.encounter_id: a for a in session.exec(
        select(Assessment).where(col(Assessment.encounter_id).in_(ids), Assessment.stage == "online",
                                 Assessment.policy_version != policy.version))}
    for encounter in booked:
        row = rows.get(encounter.id or 0)
        if row is None:
            continue
        again = assess(row.inputs, policy, now=now)
        if again.outcome != "route" or again.stream is None:
            continue
        if again.emergency_now or again.stream.value != encounter.provisional_stream:
            reasons.setdefault(encounter.id or 0, []).append((
                "reassessed",
                f"按当前政策重新评估，应去 {again.stream.label('zh')}",
                f"Re-assessed under today's policy: {again.stream.label('en')}"))
        elif again.online_followup_eligible and not row.result.get("online_followup_eligible"):
            reasons.setdefault(encounter.id or 0, []).append((
                "online_offer",
                "风险等级提高：可改为线上复诊或改约较晚时段",
                "Risk level raised: offer online follow-up or a later slot"))
    if not reasons:
        return []

    last_change = session.exec(select(func.max(PolicyChange.at))).one()
    since = aware(last_change) if last_change is not None else datetime.min.replace(tzinfo=UTC)
    attempts: dict[int, list[ContactAttempt]] = {}
    for attempt in session.exec(select(ContactAttempt).where(col(ContactAttempt.encounter_id).in_(list(reasons)))
                                .order_by(col(ContactAttempt.id).desc())):
        attempts.setdefault(attempt.encounter_id, []).append(attempt)
    result = []
    for encounter in booked:
        key = encounter.id or 0
        if key not in reasons:
            continue
        tried = attempts.get(key, [])
        if any(a.outcome == "reached_kept" and aware(a.at) >= since for a in tried):
            continue
        result.append(AffectedBooking(encounter, tuple(reasons[key]), tuple(tried)))
    return result


def record_contact(session: Session, *, reference: str, actor: Actor, channel: str, outcome: str,
                   note: str | None = None, now: datetime | None = None) -> ContactAttempt:
    """Record one attempt to contact a patient; commits."""
    errors: dict[str, tuple[str, str]] = {}
    if channel not in CONTACT_CHANNELS:
        errors["channel"] = ("请选择联系方式。", "Choose how you contacted the patient.")
    if outcome not in MANUAL_OUTCOMES:
        errors["outcome"] = ("请选择联系结果。", "Choose the outcome of the contact.")
    if note and len(note) > 2000:
        errors["note"] = ("备注最多 2000 个字。", "The note can have at most 2000 characters.")
    if errors:
        raise InvalidInput(errors)
    encounter = get_encounter(session, reference)
    attempt = ContactAttempt(encounter_id=encounter.id or 0, at=now or utcnow(), actor_id=actor.user_id,
                             channel=channel, outcome=outcome, note=(note or "").strip() or None)
    session.add(attempt)
    session.commit()
    return attempt


def staff_online_followup(session: Session, *, reference: str, workflow: Workflow, policy: Policy,
                          notifier: Notifier, actor: Actor, channel: str = "phone",
                          now: datetime | None = None) -> EncounterRecord:
    """Staff switch a patient who agreed on the phone to online follow-up; records the contact; commits."""
    now = now or utcnow()
    encounter = live_encounter(session, reference, policy, workflow, now)
    if encounter.state not in LIVE_BOOKING_STATES:
        raise Conflict("到院签到后不能改为线上复诊。", "Online follow-up cannot be chosen after check-in.")
    refer_online(session, encounter, workflow=workflow, policy=policy, actor=actor, now=now)
    session.add(ContactAttempt(encounter_id=encounter.id or 0, at=now, actor_id=actor.user_id,
                               channel=channel if channel in CONTACT_CHANNELS else "phone",
                               outcome="reached_online"))
    message = patient_message(encounter, policy,
                              zh=f"您的就诊（编号 {format_reference(encounter.reference)}）已改为线上复诊，无需到院。",
                              en=f"Your visit (code {format_reference(encounter.reference)}) is now an online "
                                 f"follow-up: no need to come in.")
    commit_and_deliver(session, notifier, [message])
    return encounter


