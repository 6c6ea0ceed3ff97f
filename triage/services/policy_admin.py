"""Supervisors change the regional risk level and stream capacities on the day (notice 162 §1-4, 004 §3.1).

A change is a `PolicyChange` row on top of the policy file (which stays the source for everything else):
versioned "<file version>+<change id>", with who made it and why. Before it is confirmed, `preview_change`
shows its effect: the booked patients of the coming days beyond a slot's new capacity, and those whose
online answers lead elsewhere under the new risk level, so staff can contact them (141 §5, 004 §4.5).
Confirming writes the row, applies the new capacities to future slots, and drops the cached policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlmodel import Session, col

from triage.db import serialize
from triage.domain.errors import Conflict, InvalidInput
from triage.domain.policy import Policy, RiskLevel, Stream
from triage.hospital import forget_cached_policy
from triage.models import Encounter, PolicyChange, Slot, StaffUser, utcnow
from triage.services.contacts import AffectedBooking, affected_bookings
from triage.services.core import Actor

REASON_MAX = 1000
POLICY_LOCK = "policy_admin.change"
CAPACITY_MAX = 10000


def bookable_streams(policy: Policy) -> list[Stream]:
    """The streams with bookable slots, whose capacity a supervisor may change."""
    return [s for s in Stream if policy.streams[s].bookable_online]


@dataclass(frozen=True)
class Proposal:
    """A validated change: the new risk level, the new capacity per slot of each bookable stream, and why."""

    region_risk_level: RiskLevel
    capacities: Mapping[Stream, int]
    reason: str


def parse_proposal(policy: Policy, *, region_risk_level: Any, capacities: Mapping[str, Any], reason: Any
                   ) -> Proposal:
    """Validate form or JSON values; InvalidInput names each field ("capacity_general", "reason"...)."""
    errors: dict[str, tuple[str, str]] = {}
    level: RiskLevel | None = None
    try:
        level = RiskLevel(str(region_risk_level or ""))
    except ValueError:
        errors["region_risk_level"] = ("请选择低、中或高风险。", "Choose low, medium or high risk.")
    parsed: dict[Stream, int] = {}
    for stream in bookable_streams(policy):
        raw = capacities.get(stream.value)
        text = str(raw).strip() if raw is not None else ""
        if not text:
            parsed[stream] = policy.streams[stream].capacity_per_slot
            continue
        if not text.isdecimal() or int(text) > CAPACITY_MAX:  # isdecimal: "²" is a digit int() cannot read
            errors[f"capacity_{stream.value}"] = (f"请输入 0–{CAPACITY_MAX} 之间的整数。",
                                                  f"Enter a whole number from 0 to {CAPACITY_MAX}.")
            continue
        parsed[stream] = int(text)
    words = " ".join(str(reason or "").split())
    if len(words) < 4:
        errors["reason"] = ("请写明调整原因（例如：市卫健委通知，本区调整为中风险）。",
                            "Say why (for example: the city health commission raised this district to medium risk).")
    elif len(words) > REASON_MAX:
        errors["reason"] = (f"原因最多 {REASON_MAX} 字。", f"The reason can be at most {REASON_MAX} characters.")
    if errors:
        raise InvalidInput(errors)
    assert level is not None
    if level is policy.region_risk_level and all(
            parsed[s] == policy.streams[s].capacity_per_slot for s in parsed):
        raise InvalidInput({"region_risk_level": ("与当前政策相同：请更改风险等级或容量。",
                                                  "This is the current policy: change the risk level or a capacity.")})
    return Proposal(level, parsed, words)


@dataclass(frozen=True)
class DayEffect:
    """One stream's booked patients on one coming day against its capacity before and after the change."""

    day: date
    stream: Stream
    slots: int
    booked: int
    capacity_before: int
    capacity_after: int
    beyond: int  # booked patients beyond the new capacity of their slot


@dataclass(frozen=True)
class Preview:
    """What a proposed change would do, shown before the supervisor confirms it."""

    current: Policy
    proposed: Policy
    proposal: Proposal
    based_on: int  # id of the latest change when previewed (0: none), checked again on confirm
    days: list[DayEffect]
    affected: list[AffectedBooking]  # to contact after the change
    newly_affected: frozenset[int]  # encounter ids not already on the contact list before the change

    @property
    def changes(self) -> list[tuple[str, str, str]]:
        """(what, before, after) for each changed value: "region_risk_level" or a stream value."""
        rows = []
        if self.current.region_risk_level is not self.proposed.region_risk_level:
            rows.append(("region_risk_level", self.current.region_risk_level.value,
                         self.proposed.region_risk_level.value))
        for stream in bookable_streams(self.current):
            before = self.current.streams[stream].capacity_per_slot
            after = self.proposed.streams[stream].capacity_per_slot
            if before != after:
                rows.append((stream.value, str(before), str(after)))
        return rows

    def beyond(self, stream: Stream) -> int:
        """Booked patients of a stream beyond the new capacity, over the coming days."""
        return sum(d.beyond for d in self.days if d.stream is stream)


def latest_change_id(session: Session) -> int:
    """The id of the latest change (0 when the policy file applies unchanged)."""
    value = session.execute(select(func.max(PolicyChange.id))).scalar_one()
    return int(value or 0)


def check_based_on(session: Session, based_on: int) -> None:
    """Conflict when the policy has changed since the preview made on change `based_on`."""
    if latest_change_id(session) != based_on:
        raise Conflict("政策刚被其他人更改，请查看当前政策后重新预览。",
                       "Someone else changed the policy a moment ago: check the current policy and preview again.")


def proposed_policy(base: Policy, proposal: Proposal, *, version: str | None = None) -> Policy:
    """The policy the change would give: the file with the new risk level and capacities."""
    return base.with_overrides(region_risk_level=proposal.region_risk_level, capacities=proposal.capacities,
                               version=version or f"{base.version}+preview")


def preview_change(session: Session, *, base: Policy, current: Policy, proposal: Proposal,
                   now: datetime | None = None) -> Preview:
    """The effect of a proposed change on the coming days' bookings; changes nothing."""
    now = now or utcnow()
    proposed = proposed_policy(base, proposal)
    today = current.local(now).date()
    rows = session.execute(
        select(col(Slot.day), col(Slot.stream), func.count(), func.sum(col(Slot.booked)),
               func.sum(col(Slot.capacity)))
        .where(col(Slot.day) >= today, col(Slot.starts_at) > now)
        .group_by(col(Slot.day), col(Slot.stream)).order_by(col(Slot.day), col(Slot.stream))).all()
    beyond = _beyond_by_day(session, proposed, now)
    days = []
    for day, stream_value, slots, booked, capacity in rows:
        try:
            stream = Stream(str(stream_value))
        except ValueError:
            continue
        day = day if isinstance(day, date) else date.fromisoformat(str(day))
        days.append(DayEffect(day, stream, int(slots), int(booked or 0), int(capacity or 0),
                              int(slots) * proposed.streams[stream].capacity_per_slot,
                              beyond.get((day, stream), 0)))
    affected = affected_bookings(session, proposed, now)
    before = {a.encounter.id for a in affected_bookings(session, current, now)}
    return Preview(current=current, proposed=proposed, proposal=proposal, based_on=latest_change_id(session),
                   days=days, affected=affected,
                   newly_affected=frozenset(a.encounter.id or 0 for a in affected if a.encounter.id not in before))


def _beyond_by_day(session: Session, proposed: Policy, now: datetime) -> dict[tuple[date, Stream], int]:
    """Booked patients beyond each future slot's new capacity, summed per day and stream."""
    result: dict[tuple[date, Stream], int] = {}
    rows = session.execute(
        select(col(Slot.day), col(Slot.stream), func.count(col(Encounter.id)))
        .join(Encounter, col(Encounter.slot_id) == col(Slot.id))
        .where(col(Slot.starts_at) > now, col(Encounter.state) == "booked")
        .group_by(col(Slot.id), col(Slot.day), col(Slot.stream))).all()
    for day, stream_value, booked in rows:
        try:
            stream = Stream(str(stream_value))
        except ValueError:
            continue
        day = day if isinstance(day, date) else date.fromisoformat(str(day))
        over = max(int(booked) - proposed.streams[stream].capacity_per_slot, 0)
        result[(day, stream)] = result.get((day, stream), 0) + over
    return result


def apply_proposal(session: Session, *, base: Policy, proposal: Proposal, actor: Actor, based_on: int,
                   now: datetime | None = None) -> PolicyChange:
    """Record the change (who, why, version), apply the capacities to future slots; commits.

    Conflict when someone else changed the policy since the preview: the supervisor previews again.
    """
    now = now or utcnow()
    if actor.user_id is None:
        raise Conflict("只有登录的员工可以更改政策。", "Only a logged-in member of staff can change the policy.")
    # The latest change, read under a lock every confirmation takes (SQLite: the write lock). A row lock on the latest
    # change would not do: a confirmation waiting for it reads that same row again, not the one committed meanwhile.
    serialize(session, POLICY_LOCK)
    check_based_on(session, based_on)
    change = PolicyChange(at=now, actor_id=actor.user_id, base_version=base.version,
                          region_risk_level=proposal.region_risk_level.value,
                          capacities={s.value: c for s, c in proposal.capacities.items()}, reason=proposal.reason)
    session.add(change)
    session.flush()
    # Slots not yet created take the capacity from the effective policy when they are (`ensure_slots`).
    for stream, capacity in proposal.capacities.items():
        session.execute(update(Slot).where(col(Slot.stream) == stream.value, col(Slot.starts_at) > now)
                        .values(capacity=capacity))
    session.commit()
    forget_cached_policy()
    return change


def version_of(base: Policy, change: PolicyChange) -> str:
    """The policy version a change gives: "<file version>+<change id>"."""
    return f"{change.base_version or base.version}+{change.id}"


@dataclass(frozen=True)
class ChangeEntry:
    """A change in the history, with its author."""

    change: PolicyChange
    actor: StaffUser | None
    version: str


def change_history(session: Session, *, base: Policy, limit: int = 50) -> list[ChangeEntry]:
    """The latest changes, newest first, with who made them."""
    rows = session.execute(
        select(PolicyChange, StaffUser).join(StaffUser, col(StaffUser.id) == col(PolicyChange.actor_id), isouter=True)
        .order_by(col(PolicyChange.id).desc()).limit(limit)).all()
    return [ChangeEntry(change, actor, version_of(base, change)) for change, actor in rows]
