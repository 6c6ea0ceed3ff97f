"""Data retention: remove personal data from closed cases, keep the anonymous statistics."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session, col, select

from triage.models import ContactAttempt, Encounter, Notification
from triage.workflow import Workflow


def parse_age(text: str) -> timedelta:
    """Parse an age such as '180d', '26w' or '12h' into a timedelta; ValueError with a clear message."""
    units = {"d": "days", "w": "weeks", "h": "hours"}
    text = text.strip().lower()
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdecimal():
        raise ValueError(f"expected a number and a unit (d, w or h), such as 180d; got {text!r}")
    try:
        return timedelta(**{units[text[-1]]: int(text[:-1])})
    except OverflowError:
        raise ValueError(f"{text!r} is longer than any record can be kept") from None


def purge_personal_data(session: Session, *, workflow: Workflow, older_than: timedelta, now: datetime) -> int:
    """Blank names, phones, links and free text of cases closed before now - older_than; commits.

    Streams, levels, times, states, assessments' clinical inputs and the audit trail stay, so the
    daily and weekly reports are unchanged. Returns how many cases were purged.
    """
    cutoff = now - older_than
    final_states = [name for name, spec in workflow.states.items() if spec.final]
    closed = (
        col(Encounter.state).in_(final_states)
        & (col(Encounter.ended_at) < cutoff)
        & col(Encounter.purged_at).is_(None)
    )
    ids = [i for i in session.exec(select(col(Encounter.id)).where(closed)) if i is not None]
    if not ids:
        return 0
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        session.execute(
            update(Encounter).where(col(Encounter.id).in_(chunk)).values(
                patient_name=None, patient_phone=None, party_id=None, status_token_hash=None,
                visit_reason=None, purged_at=now,
            )
        )
        session.execute(update(ContactAttempt).where(col(ContactAttempt.encounter_id).in_(chunk)).values(note=None))
        session.execute(
            update(Notification).where(col(Notification.encounter_id).in_(chunk)).values(
                recipient="", body="(removed by the retention policy)")
        )
    session.commit()
    return len(ids)

