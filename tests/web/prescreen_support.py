"""Helpers for the pre-screen tests: form answers, days with open slots, filling slots, reading the DB."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update
from sqlmodel import Session, col, select

from triage.domain.policy import Policy, Stream
from triage.hospital import effective_policy, forget_cached_policy
from triage.models import Encounter, PolicyChange, Slot, StaffUser, utcnow
from triage.services import ensure_slots

PHONE = "13800138000"
NO_EXPOSURE = ["none"]


def form_data(**overrides: Any) -> dict[str, Any]:
    """A complete, valid questionnaire for a 40-year-old man with a headache, tomorrow-or-later day."""
    data: dict[str, Any] = {
        "name": "张三明", "phone": "138 0013 8000", "age_years": "40", "sex": "M",
        "other": ["headache"], "epi": NO_EXPOSURE, "consent": "y",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def api_body(**overrides: Any) -> dict[str, Any]:
    """A complete, valid POST /api/v1/prescreenings body."""
    assessment = {"age_years": 40, "sex": "M", "symptoms": ["headache"],
                  "epi": {"mid_high_risk_area_14d": False, "contact_case_14d": False,
                          "contact_febrile_from_case_community_14d": False, "cluster_14d": False}}
    assessment.update(overrides.pop("assessment", {}))
    body: dict[str, Any] = {"name": "张三明", "phone": "13800138000", "consent": True, "assessment": assessment}
    body.update(overrides)
    return body


@contextmanager
def db(app: Flask) -> Iterator[Session]:
    """A fresh session on the app's database, inside an app context."""
    with app.app_context():
        s = app.extensions["triage.db"].session()
        try:
            yield s
        finally:
            s.close()


def policy_of(app: Flask) -> Policy:
    """The app's effective policy now."""
    with db(app) as s:
        return effective_policy(s)


def open_day(app: Flask, stream: Stream = Stream.GENERAL, *, skip: int = 0) -> date:
    """A day from tomorrow on, within the booking window, on which the stream has slots."""
    policy = policy_of(app)
    today = policy.local(utcnow()).date()
    found = []
    for offset in range(1, policy.booking_days_ahead + 1):
        day = today + timedelta(days=offset)
        if policy.streams[stream].slot_starts(day):
            found.append(day)
    return found[skip]


def fill_day(app: Flask, stream: Stream, day: date, *, leave: int = 0) -> None:
    """Mark every slot of the stream on `day` as fully booked (optionally leaving the last `leave` with room)."""
    with db(app) as s:
        policy = effective_policy(s)
        ensure_slots(s, policy, stream, day)
        slots = list(s.exec(select(Slot).where(Slot.stream == stream.value, Slot.day == day)
                            .order_by(col(Slot.starts_at))))
        for slot in slots[:len(slots) - leave] if leave else slots:
            s.execute(update(Slot).where(col(Slot.id) == slot.id)
                      .values(booked=policy.streams[stream].capacity_per_slot,
                              capacity=policy.streams[stream].capacity_per_slot))
        s.commit()


def change_policy(app: Flask, user: StaffUser, *, capacities: dict[str, int] | None = None,
                  risk: str = "low") -> None:
    """Record a supervisor's policy change (risk level, capacities) and drop the cached policy."""
    with db(app) as s:
        s.add(PolicyChange(actor_id=user.id or 0, base_version="test", region_risk_level=risk,
                           capacities=capacities or {}, reason="test"))
        s.commit()
    forget_cached_policy()


def encounter(app: Flask, reference: str) -> Encounter:
    """The encounter row, read fresh."""
    with db(app) as s:
        row = s.exec(select(Encounter).where(Encounter.reference == reference)).one()
        s.expunge(row)
        return row


def only_encounter(app: Flask) -> Encounter:
    """The single encounter in the database."""
    with db(app) as s:
        rows = list(s.exec(select(Encounter)))
        assert len(rows) == 1, rows
        s.expunge(rows[0])
        return rows[0]


def submit(client: FlaskClient, **overrides: Any) -> Any:
    """Post the questionnaire (following no redirect)."""
    return client.post("/prescreen/", data=form_data(**overrides), headers={"Accept-Language": "en"})


def reference_from(location: str, app: Flask) -> str:
    """The reference of the newest encounter (the redirect carries only the secret token)."""
    with db(app) as s:
        row = s.exec(select(Encounter).order_by(col(Encounter.id).desc())).first()
        assert row is not None
        return row.reference


def csrf_token(html: str) -> str:
    """The CSRF token of the first form on a page."""
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)
