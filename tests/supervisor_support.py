"""Helpers for the supervision tests: cases written straight into the tables with exact times.

The dashboard and the reports read timestamps; these helpers let a test state them to the minute, in the
hospital's local time (Asia/Shanghai, UTC+8, in the demo policy), so the expected numbers can be worked
out by hand.
"""

from __future__ import annotations

import itertools
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session

from triage.hospital import base_policy, workflow
from triage.models import Assessment, Encounter, Origin, TransitionLog
from triage.services import new_encounter, store

TZ = ZoneInfo("Asia/Shanghai")
_TICKETS = itertools.count(1)


def local(text: str) -> datetime:
    """"2026-11-22 23:25" in the hospital's time zone, as an aware datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=TZ)


def day(text: str) -> date:
    """A date from "2026-11-22"."""
    return date.fromisoformat(text)


def case(session: Session, *, state: str, stream: str | None = None, provisional: str | None = None,
         origin: Origin = Origin.WALK_IN, level: int | None = None, visit_day: str | None = None,
         created: str | None = None, arrived: str | None = None, queued: str | None = None,
         called: str | None = None, started: str | None = None, ended: str | None = None,
         slot: str | None = None, isolation: bool = False, name: str = "测试患者", **extra: Any) -> Encounter:
    """One encounter with the given state and local times (ticketed when `queued` is given)."""
    policy, wf = base_policy(), workflow()
    first = created or arrived or queued or slot or "2026-11-01 08:00"
    fields: dict[str, Any] = {
        "patient_name": name, "provisional_stream": provisional, "stream": stream, "cn_level": level,
        "isolation_required": isolation, "acuity_sort": level or 5,
        "visit_day": day(visit_day) if visit_day else None,
        "arrived_at": local(arrived) if arrived else None,
        "triaged_at": local(queued) if queued else None, "queued_at": local(queued) if queued else None,
        "called_at": local(called) if called else None, "started_at": local(started) if started else None,
        "ended_at": local(ended) if ended else None,
        "slot_starts_at": local(slot) if slot else None,
        "order_at": local(slot or arrived or queued or first),
    }
    if queued:
        number = next(_TICKETS)
        fields.update(ticket_day=local(queued).date(), ticket_no=number,
                      ticket=f"{(stream or 'general')[0].upper()}-{number:03d}")
    fields.update(extra)
    encounter = new_encounter(origin=origin, state=state, workflow=wf, policy=policy, now=local(first), **fields)
    return store.save(session, encounter)


def assessment(session: Session, encounter: Encounter, *, stage: str, at: str, recommended: str,
               final: str | None = None, level: int | None = None, final_level: int | None = None,
               overridden: bool = False, reason: str | None = None, rules: tuple[str, ...] = ()) -> Assessment:
    """An online or on-site assessment of `encounter` at a local time, with the rules that fired."""
    row = Assessment(
        encounter_id=encounter.id or 0, stage=stage, created_at=local(at), inputs={"age_years": 40},
        result={"outcome": "route", "stream": recommended,
                "reasons": [{"rule": r, "message": r} for r in rules]},
        recommended_stream=recommended, recommended_level=level, final_stream=final, final_level=final_level,
        overridden=overridden, override_reason=reason, policy_version=base_policy().version)
    session.add(row)
    session.flush()
    return row


def log(session: Session, encounter: Encounter, *, at: str, trigger: str, src: str | None, dest: str,
        actor_id: int | None = None, stream: str | None = None, reason: str | None = None) -> TransitionLog:
    """An audit row of `encounter` at a local time."""
    row = TransitionLog(encounter_id=encounter.id or 0, at=local(at), trigger=trigger, from_state=src,
                        to_state=dest, actor_id=actor_id, actor_kind="staff" if actor_id else "system",
                        stream=stream or encounter.stream, reason=reason, workflow_version=workflow().version,
                        policy_version=base_policy().version)
    session.add(row)
    session.flush()
    return row
