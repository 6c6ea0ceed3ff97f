"""The core of every use case: the one transition function, its effects, tickets and slots.

Every state change goes through `transition`, which checks it against the workflow, bumps the
version, runs the declared effects and writes the transition log, all in the caller's transaction.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from triage.domain.errors import Conflict, InvalidInput, NotFound
from triage.domain.policy import Policy, Stream
from triage.models import (
    Encounter,
    Origin,
    Slot,
    StaffUser,
    TicketCounter,
    TransitionLog,
    utcnow,
)
from triage.workflow import Case, Workflow

# Crockford's base32 without the letters that read like digits: easy to read aloud and type.
REFERENCE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
REFERENCE_LENGTH = 8


@dataclass(frozen=True)
class Actor:
    """Who acts: a staff member, the patient (through their link) or the system."""

    kind: str  # staff | patient | system
    user_id: int | None = None

    @classmethod
    def staff(cls, user: StaffUser) -> Actor:
        """The actor for a logged-in staff member."""
        return cls("staff", user.id)


PATIENT = Actor("patient")
SYSTEM = Actor("system")


@dataclass
class Facts:
    """What a use case supplies to the workflow's conditions and effects."""

    reason: str | None = None
    slot: Slot | None = None
    decision_stream: Stream | None = None
    decision_level: int | None = None
    referral_target: str | None = None


# --- references and tokens -----------------------------------------------------------------------


def new_reference() -> str:
    """A random reference code, 8 characters of Crockford base32 (40 bits)."""
    return "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(REFERENCE_LENGTH))


_LOOKALIKES = str.maketrans("OIL", "011")


def normalize_reference(text: str) -> str:
    """Normalize what a scanner or a person typed: case, dashes, spaces, O/I/L read as digits."""
    cleaned = text.strip().upper().replace("-", "").replace(" ", "")
    cleaned = cleaned.translate(_LOOKALIKES)
    # A pass's QR code carries the status URL; accept the code at its end.
    if "/" in cleaned:
        cleaned = cleaned.rstrip("/").rsplit("/", 1)[-1]
    return cleaned


def format_reference(reference: str) -> str:
    """Show a reference in two groups of four: K7P2-M9QX."""
    return f"{reference[:4]}-{reference[4:]}" if len(reference) == REFERENCE_LENGTH else reference


# --- the one transition function -------------------------------------------------------------------


def lock_encounter(session: Session, reference: str) -> Encounter:
    """Load an encounter for update (row lock on PostgreSQL; SQLite holds the write lock already)."""
    encounter = session.exec(
        select(Encounter)
        .where(Encounter.reference == reference)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()
    if encounter is None:
        raise NotFound("找不到此编号的病例。", "No case has this reference code.", field="reference")
    return encounter


def transition(
    session: Session,
    encounter: Encounter,
    trigger: str,
    *,
    workflow: Workflow,
    policy: Policy,
    actor: Actor,
    facts: Facts | None = None,
    expected_version: int | None = None,
    now: datetime | None = None,
) -> None:
    """Check `trigger` against the workflow, change the state, run effects, write the audit row."""
    facts = facts or Facts()
    now = now or utcnow()
    if expected_version is not None and expected_version != encounter.version:
        raise Conflict(
            "此病例刚被其他人更新，请刷新后再操作。",
            "Someone else changed this case a moment ago; reload it and try again.",
            field="version",
        )
    case = Case(
        state=encounter.state,
        reason=facts.reason,
        slot_id=facts.slot.id if facts.slot else None,
        is_visit_day=encounter.visit_day in (None, policy.local(now).date()),
        decision=facts.decision_stream,
        ticket=encounter.ticket,
        referral_target=facts.referral_target,
    )
    from_state = encounter.state
    spec = workflow.fire(trigger, case)
    encounter.state = case.state
    encounter.version += 1
    encounter.updated_at = now
    with session.no_autoflush:  # the effects' own statements need none of this: one UPDATE of the case, below
        for effect in spec.effects:
            EFFECTS[effect](session, encounter, facts, policy, now)
    if workflow.is_final(encounter.state):
        encounter.ended_at = now
    session.add(encounter)
    session.add(
        TransitionLog(
            encounter_id=_id(encounter),
            at=now,
            trigger=trigger,
            from_state=from_state,
            to_state=encounter.state,
            actor_id=actor.user_id,
            actor_kind=actor.kind,
            stream=encounter.stream or encounter.provisional_stream,
            reason=(facts.reason or "").strip() or None,
            workflow_version=workflow.version,
            policy_version=policy.version,
        )
    )
    # Not flushed here: the caller's next query or its commit writes the case once, however many transitions.


def log_entry(
    session: Session, encounter: Encounter, *, workflow: Workflow, policy: Policy, actor: Actor,
    now: datetime,
) -> None:
    """Write the audit row for a new encounter entering the workflow at its entry state."""
    if encounter.state not in workflow.entries:
        raise Conflict("无效的起始状态。", "An encounter cannot start in this state.")
    session.add(TransitionLog(
        encounter_id=_id(encounter), at=now, trigger="create", from_state=None, to_state=encounter.state,
        actor_id=actor.user_id, actor_kind=actor.kind,
        stream=encounter.stream or encounter.provisional_stream, reason=None,
        workflow_version=workflow.version, policy_version=policy.version,
    ))


def _id(encounter: Encounter) -> int:
    if encounter.id is None:
        raise ValueError("the encounter must be flushed before it is logged")
    return encounter.id


def apply_event(
    session: Session,
    *,
    reference: str,
    trigger: str,
    workflow: Workflow,
    policy: Policy,
    actor: Actor,
    reason: str | None = None,
    referral_target: str | None = None,
    expected_version: int | None = None,
) -> Encounter:
    """A queue action (call, start, complete, no-show, leave, refer, cancel...) on one case; commits."""
    encounter = lock_encounter(session, reference)
    if referral_target is not None and referral_target != "online_followup" \
            and policy.facility(referral_target) is None:
        raise InvalidInput({"referral_target": ("请选择政策列出的转诊机构或线上随访。",
                                                "Choose a facility from the policy's list, or online follow-up.")})
    facts = Facts(reason=reason, referral_target=referral_target)
    transition(session, encounter, trigger, workflow=workflow, policy=policy, actor=actor, facts=facts,
                expected_version=expected_version)
    if trigger == "refer" and referral_target:
        encounter.disposition = referral_target
    session.commit()
    return encounter


# --- effects: what a transition does besides changing the state, named in the workflow YAML -------

Effect = Callable[[Session, Encounter, Facts, Policy, datetime], None]


def _hold_slot(session: Session, encounter: Encounter, facts: Facts, policy: Policy, now: datetime) -> None:
    slot = facts.slot
    assert slot is not None  # guarded by the has_slot condition
    if slot.starts_at <= now:
        raise Conflict("这个时段已经开始，请选择之后的时段。", "This slot has already started; choose a later one.",
                       field="slot")
    # Atomic: a concurrent booking cannot push the slot past its capacity.
    result = session.execute(
        update(Slot).where(col(Slot.id) == slot.id, col(Slot.booked) < col(Slot.capacity))
        .values(booked=col(Slot.booked) + 1)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict("这个时段刚刚约满，请选择其他时段。", "This slot has just been filled; choose another.",
                       field="slot")
    encounter.slot_id = slot.id
    encounter.slot_starts_at = slot.starts_at
    encounter.visit_day = slot.day
    encounter.order_at = slot.starts_at


def _release_slot(session: Session, encounter: Encounter, facts: Facts, policy: Policy, now: datetime) -> None:
    # Once the patient has arrived the slot was used: releasing it would reopen spent capacity.
    if encounter.slot_id is None or encounter.arrived_at is not None:
        return
    session.execute(
        update(Slot).where(col(Slot.id) == encounter.slot_id, col(Slot.booked) > 0)
        .values(booked=col(Slot.booked) - 1)
    )
    encounter.slot_id = None


def _stamp_arrival(session: Session, encounter: Encounter, facts: Facts, policy: Policy, now: datetime) -> None:
    encounter.arrived_at = now
    encounter.visit_day = policy.local(now).date()
    encounter.order_at = encounter.slot_starts_at or now


def _issue_ticket(session: Session, encounter: Encounter, facts: Facts, policy: Policy, now: datetime) -> None:
    stream = facts.decision_stream
    assert stream is not None  # guarded by the has_decision condition
    day = policy.local(now).date()
    number = next_ticket_number(session, stream, day)
    encounter.stream = stream.value
    encounter.cn_level = facts.decision_level if stream is Stream.EMERGENCY else None
    encounter.acuity_sort = encounter.cn_level or 5
    encounter.ticket_day = day
    encounter.ticket_no = number
    encounter.ticket = f"{stream.prefix}-{number:03d}"
    encounter.triaged_at = now
    encounter.queued_at = now
    encounter.order_at = encounter.order_at or now
    encounter.call_count = 0
    encounter.called_at = None


def _stamp_call(session: Session, encounter: Encounter, facts: Facts, policy: Policy, now: datetime) -> None:
    encounter.called_at = now
    encounter.call_count += 1


def _stamp_start(session: Session, encounter: Encounter, facts: Facts, policy: Policy, now: datetime) -> None:
    encounter.started_at = now


EFFECTS: Mapping[str, Effect] = {
    "hold_slot": _hold_slot,
    "release_slot": _release_slot,
    "stamp_arrival": _stamp_arrival,
    "issue_ticket": _issue_ticket,
    "stamp_call": _stamp_call,
    "stamp_start": _stamp_start,
}


def next_ticket_number(session: Session, stream: Stream, day: date) -> int:
    """The next ticket number of `stream` on `day`, unique even when nurses issue tickets at once."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    last_no = col(TicketCounter.last_no)
    stmt = (
        insert(TicketCounter)
        .values(day=day, stream=stream.value, last_no=1)
        .on_conflict_do_update(index_elements=["day", "stream"], set_={"last_no": last_no + 1})
        .returning(last_no)
    )
    number: int = session.execute(stmt).scalar_one()
    return number


# --- slots ------------------------------------------------------------------------------------------


def ensure_slots(session: Session, policy: Policy, stream: Stream, day: date) -> None:
    """Create the stream's slot rows for `day` from the policy, if not there yet (idempotent)."""
    spec = policy.streams[stream]
    starts = spec.slot_starts(day)
    if not starts:
        return
    exists = session.exec(
        select(func.count()).select_from(Slot).where(Slot.stream == stream.value, Slot.day == day)
    ).one()
    if exists:
        return
    rows = []
    for start in starts:
        local = datetime.combine(day, start, tzinfo=policy.timezone)
        begin = local.astimezone(UTC)
        rows.append({"stream": stream.value, "day": day, "starts_at": begin,
                     "ends_at": begin + timedelta(minutes=spec.slot_minutes),
                     "capacity": spec.capacity_per_slot, "booked": 0})
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(insert(Slot).values(rows).on_conflict_do_nothing(index_elements=["stream", "starts_at"]))


# --- encounters ---------------------------------------------------------------------------------------


def new_encounter(
    *, origin: Origin, state: str, workflow: Workflow, policy: Policy, now: datetime, **fields: Any
) -> Encounter:
    """A new Encounter row (not yet added) with a fresh reference code."""
    return Encounter(
        reference=new_reference(), origin=origin.value, state=state, workflow_name=workflow.name,
        workflow_version=workflow.version, policy_version=policy.version, created_at=now,
        updated_at=now, **fields,
    )


LIVE_QUEUE_STATES = ("waiting", "called")


def queue_position(session: Session, encounter: Encounter) -> int | None:
    """1-based place of a waiting encounter in its stream's queue (None when not waiting)."""
    if encounter.state != "waiting" or encounter.stream is None or encounter.order_at is None:
        return None
    ahead = session.exec(
        select(func.count()).select_from(Encounter).where(
            Encounter.state == "waiting",
            Encounter.stream == encounter.stream,
            tuple_(col(Encounter.acuity_sort), col(Encounter.priority_sort), col(Encounter.order_at),
                   col(Encounter.id))
            < tuple_(encounter.acuity_sort, encounter.priority_sort, encounter.order_at, encounter.id),
        )
    ).one()
    return int(ahead) + 1


def history(session: Session, encounter: Encounter) -> list[TransitionLog]:
    """The encounter's audit rows, oldest first."""
    return list(session.exec(
        select(TransitionLog).where(TransitionLog.encounter_id == encounter.id).order_by(col(TransitionLog.id))
    ))
