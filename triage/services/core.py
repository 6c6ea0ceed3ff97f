"""The core of every use case: the one transition function, its effects, tickets and slots.

Every state change goes through `transition`, which checks it against the workflow, bumps the
version, runs the declared effects and writes the transition log, all in the caller's transaction.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col
from sqlmodel import select as orm_select

from triage.db import run
from triage.domain.errors import Conflict, InvalidInput, NotFound
from triage.domain.policy import Policy, Stream
from triage.models import Origin, StaffUser, TicketCounter, TransitionLog, utcnow
from triage.services import store
from triage.services.staff import Staff
from triage.services.store import (
    ENCOUNTER,
    REFERENCE_LENGTH,
    SLOT,
    EncounterRecord,
    SlotRecord,
    new_reference,
)
from triage.workflow import Case, Workflow

TICKET_COUNTER = TicketCounter.__table__  # type: ignore[attr-defined]



@dataclass(frozen=True)
class Actor:
    """Who acts: a staff member, the patient (through their link) or the system."""

    kind: str  # staff | patient | system
    user_id: int | None = None

    @classmethod
    def staff(cls, user: StaffUser | Staff) -> Actor:
        """The actor for a logged-in staff member."""
        return cls("staff", user.id)


PATIENT = Actor("patient")
SYSTEM = Actor("system")


@dataclass
class Facts:
    """What a use case supplies to the workflow's conditions and effects."""

    reason: str | None = None
    slot: SlotRecord | None = None
    decision_stream: Stream | None = None
    decision_level: int | None = None
    referral_target: str | None = None


# --- references and tokens -----------------------------------------------------------------------


_LOOKALIKES = str.maketrans("OIL", "011")


def normalize_reference(text: str) -> str:
    """Normalize what a scanner or a person typed: full-width characters (a Chinese keyboard), case, dashes, spaces,
    O/I/L read as digits."""
    cleaned = unicodedata.normalize("NFKC", text).strip().upper().replace("-", "").replace(" ", "")
    cleaned = cleaned.translate(_LOOKALIKES)
    # A pass's QR code carries the status URL; accept the code at its end.
    if "/" in cleaned:
        cleaned = cleaned.rstrip("/").rsplit("/", 1)[-1]
    return cleaned


def format_reference(reference: str) -> str:
    """Show a reference in two groups of four: K7P2-M9QX."""
    return f"{reference[:4]}-{reference[4:]}" if len(reference) == REFERENCE_LENGTH else reference


# --- the one transition function -------------------------------------------------------------------


def lock_encounter(session: Session, reference: str) -> EncounterRecord:
    """Load an encounter for update (row lock on PostgreSQL; SQLite holds the write lock already)."""
    encounter = store.by_reference(session, reference, lock=True)
    if encounter is None:
        raise NotFound("找不到此编号的病例。", "No case has this reference code.", field="reference")
    return encounter


def transition(
    session: Session,
    encounter: EncounterRecord,
    trigger: str,
    *,
    workflow: Workflow,
    policy: Policy,
    actor: Actor,
    facts: Facts | None = None,
    expected_version: int | None = None,
    now: datetime | None = None,
) -> None:
    """Check `trigger` against the workflow, change the state, run effects, queue the audit row.

    The case and its audit rows are written together by `store.save`, once however many transitions.
    """
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
    for effect in spec.effects:
        EFFECTS[effect](session, encounter, facts, policy, now)
    if workflow.is_final(encounter.state):
        encounter.ended_at = now
    encounter.pending_log.append(_audit_row(
        encounter, trigger=trigger, from_state=from_state, actor=actor, reason=facts.reason, workflow=workflow,
        policy=policy, now=now))


def log_entry(
    encounter: EncounterRecord, *, workflow: Workflow, policy: Policy, actor: Actor, now: datetime,
) -> None:
    """Queue the audit row of a new encounter entering the workflow at its entry state."""
    if encounter.state not in workflow.entries:
        raise Conflict("无效的起始状态。", "An encounter cannot start in this state.")
    encounter.pending_log.append(_audit_row(
        encounter, trigger="create", from_state=None, actor=actor, reason=None, workflow=workflow, policy=policy,
        now=now))


def _audit_row(encounter: EncounterRecord, *, trigger: str, from_state: str | None, actor: Actor,
               reason: str | None, workflow: Workflow, policy: Policy, now: datetime) -> dict[str, Any]:
    return {"at": now, "trigger": trigger, "from_state": from_state, "to_state": encounter.state,
            "actor_id": actor.user_id, "actor_kind": actor.kind,
            "stream": encounter.stream or encounter.provisional_stream, "reason": (reason or "").strip() or None,
            "workflow_version": workflow.version, "policy_version": policy.version}


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
    stream: str | None = None,
) -> EncounterRecord:
    """A queue action (call, start, complete, no-show, leave, refer, cancel...) on one case; commits.

    With `stream`, the case must be in that stream's queue (a clinic's screen acts on its own patients only)."""
    if referral_target is not None and referral_target != "online_followup" \
            and policy.facility(referral_target) is None:
        raise InvalidInput({"referral_target": ("请选择政策列出的转诊机构或线上随访。",
                                                "Choose a facility from the policy's list, or online follow-up.")})
    encounter = lock_encounter(session, reference)
    if stream is not None and encounter.stream != stream:
        raise Conflict("此病例已不在这个队列中，请刷新。", "This case is no longer in this queue: refresh the list.")
    facts = Facts(reason=reason, referral_target=referral_target)
    transition(session, encounter, trigger, workflow=workflow, policy=policy, actor=actor, facts=facts,
               expected_version=expected_version)
    if trigger == "refer" and referral_target:
        encounter.disposition = referral_target
    store.save(session, encounter)
    session.commit()
    return encounter


# --- effects: what a transition does besides changing the state, named in the workflow YAML -------

Effect = Callable[[Session, EncounterRecord, Facts, Policy, datetime], None]

_HOLD = (update(SLOT).where(SLOT.c.id == bindparam("slot_id"), SLOT.c.booked < bindparam("cap"))
         .values(booked=SLOT.c.booked + 1, capacity=bindparam("cap")))
_RELEASE = update(SLOT).where(SLOT.c.id == bindparam("slot_id"), SLOT.c.booked > 0).values(booked=SLOT.c.booked - 1)


def _hold_slot(session: Session, encounter: EncounterRecord, facts: Facts, policy: Policy, now: datetime) -> None:
    slot = facts.slot
    assert slot is not None  # guarded by the has_slot condition
    if slot.starts_at <= now:
        raise Conflict("这个时段已经开始，请选择之后的时段。", "This slot has already started; choose a later one.",
                       field="slot")
    # Atomic: a concurrent booking cannot push the slot past its capacity. The policy's capacity is the truth
    # (a supervisor's change applies to rows created before it), so the row takes it in the same statement.
    capacity = policy.streams[Stream(slot.stream)].capacity_per_slot
    result = run(store.connection(session), _HOLD, {"slot_id": slot.id, "cap": capacity})
    if result.rowcount != 1:
        raise Conflict("这个时段刚刚约满，请选择其他时段。", "This slot has just been filled; choose another.",
                       field="slot")
    encounter.slot_id = slot.id
    encounter.slot_starts_at = slot.starts_at
    encounter.visit_day = slot.day
    encounter.order_at = slot.starts_at


def _release_slot(session: Session, encounter: EncounterRecord, facts: Facts, policy: Policy, now: datetime) -> None:
    # Once the patient has arrived the slot was used: releasing it would reopen spent capacity.
    if encounter.slot_id is None or encounter.arrived_at is not None:
        return
    run(store.connection(session), _RELEASE, {"slot_id": encounter.slot_id})
    encounter.slot_id = None


def _stamp_arrival(session: Session, encounter: EncounterRecord, facts: Facts, policy: Policy, now: datetime) -> None:
    encounter.arrived_at = now
    encounter.visit_day = policy.local(now).date()
    encounter.order_at = encounter.slot_starts_at or now


def _issue_ticket(session: Session, encounter: EncounterRecord, facts: Facts, policy: Policy, now: datetime) -> None:
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


def _stamp_call(session: Session, encounter: EncounterRecord, facts: Facts, policy: Policy, now: datetime) -> None:
    encounter.called_at = now
    encounter.call_count += 1


def _stamp_start(session: Session, encounter: EncounterRecord, facts: Facts, policy: Policy, now: datetime) -> None:
    encounter.started_at = now


EFFECTS: Mapping[str, Effect] = {
    "hold_slot": _hold_slot,
    "release_slot": _release_slot,
    "stamp_arrival": _stamp_arrival,
    "issue_ticket": _issue_ticket,
    "stamp_call": _stamp_call,
    "stamp_start": _stamp_start,
}


def _counter_statement(dialect: str) -> Any:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (insert(TICKET_COUNTER)
            .values(day=bindparam("day"), stream=bindparam("stream"), last_no=1)
            .on_conflict_do_update(index_elements=["day", "stream"],
                                   set_={"last_no": TICKET_COUNTER.c.last_no + 1})
            .returning(TICKET_COUNTER.c.last_no))


_NEXT_TICKET = {dialect: _counter_statement(dialect) for dialect in ("sqlite", "postgresql")}


def next_ticket_number(session: Session, stream: Stream, day: date) -> int:
    """The next ticket number of `stream` on `day`, unique even when nurses issue tickets at once."""
    conn = store.connection(session)
    number: int = run(conn, _NEXT_TICKET[conn.dialect.name], {"day": day, "stream": stream.value}).scalar_one()
    return number


# --- slots ------------------------------------------------------------------------------------------

_SLOTS_EXIST = select(SLOT.c.id).where(SLOT.c.stream == bindparam("stream"), SLOT.c.day == bindparam("day")).limit(1)
_NEW_SLOTS = {dialect: (postgresql.insert if dialect == "postgresql" else sqlite.insert)(SLOT)
              .on_conflict_do_nothing(index_elements=["stream", "starts_at"]) for dialect in ("sqlite", "postgresql")}


def ensure_slots(session: Session, policy: Policy, stream: Stream, day: date) -> bool:
    """Create the stream's slot rows for `day` from the policy, if not there yet (idempotent); True if it did."""
    spec = policy.streams[stream]
    starts = spec.slot_starts(day)
    if not starts:
        return False
    conn = store.connection(session)
    if run(conn, _SLOTS_EXIST, {"stream": stream.value, "day": day}).first() is not None:
        return False
    rows = []
    for start in starts:
        local = datetime.combine(day, start, tzinfo=policy.timezone)
        begin = local.astimezone(UTC)
        rows.append({"stream": stream.value, "day": day, "starts_at": begin,
                     "ends_at": begin + timedelta(minutes=spec.slot_minutes),
                     "capacity": spec.capacity_per_slot, "booked": 0})
    run(conn, _NEW_SLOTS[conn.dialect.name], rows)
    return True


# --- encounters ---------------------------------------------------------------------------------------


def new_encounter(
    *, origin: Origin, state: str, workflow: Workflow, policy: Policy, now: datetime, **fields: Any
) -> EncounterRecord:
    """A new encounter record (not yet saved) with a fresh reference code."""
    return EncounterRecord(
        reference=new_reference(), origin=origin.value, state=state, workflow_name=workflow.name,
        workflow_version=workflow.version, policy_version=policy.version, created_at=now,
        updated_at=now, **fields,
    )


LIVE_QUEUE_STATES = ("waiting", "called")


_AHEAD = select(func.count()).select_from(ENCOUNTER).where(
    ENCOUNTER.c.state == "waiting",
    ENCOUNTER.c.stream == bindparam("stream"),
    tuple_(ENCOUNTER.c.acuity_sort, ENCOUNTER.c.priority_sort, ENCOUNTER.c.order_at, ENCOUNTER.c.id)
    < tuple_(bindparam("acuity_sort"), bindparam("priority_sort"),
             bindparam("order_at", type_=ENCOUNTER.c.order_at.type), bindparam("id")),
)


def queue_position(session: Session, encounter: EncounterRecord) -> int | None:
    """1-based place of a waiting encounter in its stream's queue (None when not waiting)."""
    if encounter.state != "waiting" or encounter.stream is None or encounter.order_at is None:
        return None
    ahead = run(store.connection(session), _AHEAD, {
        "stream": encounter.stream, "acuity_sort": encounter.acuity_sort, "priority_sort": encounter.priority_sort,
        "order_at": encounter.order_at, "id": encounter.id}).scalar_one()
    return int(ahead) + 1


def history(session: Session, encounter: EncounterRecord) -> list[TransitionLog]:
    """The encounter's audit rows, oldest first."""
    return list(session.exec(
        orm_select(TransitionLog).where(TransitionLog.encounter_id == encounter.id).order_by(col(TransitionLog.id))
    ))
