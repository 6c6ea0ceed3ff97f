"""Slot capacity holds exactly when many patients book the same slot at the same instant.

Run on SQLite by default and on PostgreSQL with TRIAGE_TEST_DATABASE_URL (`make test-postgres`).
Each thread is its own browser (test client), so each request has its own session and transaction.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import col, select

from tests.conftest import all_at_once
from tests.web.prescreen_support import (
    api_body,
    change_policy,
    db,
    encounter,
    fill_day,
    form_data,
    open_day,
    reference_from,
)
from triage.domain.policy import Stream
from triage.models import Encounter, Role, Slot, StaffUser

PATIENTS = 20
CAPACITY = 5

pytestmark = pytest.mark.slow


def _all_at_once(work: Callable[[int], Any], count: int = PATIENTS) -> list[Any]:
    return all_at_once(work, count)


@pytest.fixture
def capacity_five(app: Flask, make_user: Callable[..., StaffUser]) -> date:
    """General outpatient slots hold five patients; returns a day with such slots."""
    change_policy(app, make_user("sup", Role.SUPERVISOR), capacities={"general": CAPACITY})
    return open_day(app)


def test_twenty_simultaneous_bookings_of_one_slot_fill_exactly_its_five_places(app: Flask, capacity_five: date) -> None:
    slot = f"{capacity_five.isoformat()}T09:00:00+08:00"

    def book(i: int) -> int:
        body = api_body(name=f"病人{i}", phone=f"139{i:08d}", preferred_day=capacity_five.isoformat(), slot=slot)
        response = app.test_client().post("/api/v1/prescreenings", json=body)
        return response.status_code

    statuses = Counter(_all_at_once(book))
    assert statuses == {201: CAPACITY, 409: PATIENTS - CAPACITY}
    with db(app) as s:
        rows = list(s.exec(select(Slot).where(Slot.stream == "general", Slot.booked > 0)))
        assert [(r.booked, r.capacity) for r in rows] == [(CAPACITY, CAPACITY)]
        encounters = list(s.exec(select(Encounter)))
        assert len(encounters) == CAPACITY  # a refused booking stores nothing
        assert {e.state for e in encounters} == {"booked"} and {e.slot_id for e in encounters} == {rows[0].id}


def test_twenty_simultaneous_questionnaires_for_the_last_slot_of_a_day(app: Flask, capacity_five: date) -> None:
    fill_day(app, Stream.GENERAL, capacity_five, leave=1)  # only the day's last slot has room

    def submit(i: int) -> int:
        data = form_data(name=f"病人{i}", phone=f"139{i:08d}", preferred_day=capacity_five.isoformat())
        return app.test_client().post("/prescreen/", data=data).status_code

    assert Counter(_all_at_once(submit)) == {302: PATIENTS}
    with db(app) as s:
        states = Counter(e.state for e in s.exec(select(Encounter)))
        assert states == {"booked": CAPACITY, "prescreened": PATIENTS - CAPACITY}
        assert all(slot.booked <= slot.capacity for slot in s.exec(select(Slot)))
        last = s.exec(select(Slot).where(Slot.day == capacity_five).order_by(col(Slot.starts_at).desc())).first()
        assert last is not None and last.booked == CAPACITY


def test_fifteen_waiting_patients_taking_five_places_at_once(app: Flask, capacity_five: date) -> None:
    fill_day(app, Stream.GENERAL, capacity_five, leave=1)
    waiting: list[tuple[str, FlaskClient]] = []
    for i in range(PATIENTS):
        client = app.test_client()
        data = form_data(name=f"病人{i}", phone=f"139{i:08d}", preferred_day=capacity_five.isoformat())
        response = client.post("/prescreen/", data=data)
        assert response.status_code == 302
        e = encounter(app, reference_from(response.headers["Location"], app))
        if e.state == "prescreened":
            waiting.append((e.reference, client))
    assert len(waiting) == PATIENTS - CAPACITY
    # Each of them picks the same free slot on another day at the same instant.
    later = open_day(app, skip=1)
    key = f"{later:%Y%m%d}T1000"

    def move(i: int) -> int:
        reference, client = waiting[i]
        return client.post(f"/prescreen/v/{reference}/move", data={"slot": key}).status_code

    statuses = Counter(_all_at_once(move, count=len(waiting)))
    assert statuses == {302: CAPACITY, 409: len(waiting) - CAPACITY}
    with db(app) as s:
        slots = s.exec(select(Slot).where(Slot.stream == "general", Slot.day == later)).all()
        assert [x.booked for x in slots if x.booked] == [CAPACITY]
        assert Counter(e.state for e in s.exec(select(Encounter))) == {"booked": 2 * CAPACITY,
                                                                      "prescreened": PATIENTS - 2 * CAPACITY}
