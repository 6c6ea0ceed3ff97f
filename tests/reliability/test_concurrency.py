"""Many nurses and patients at once, over real HTTP, across the four workers of the real server.

Nothing is lost or doubled: every request answers, each case ends in one state that its log explains, tickets are
numbered 1..n per stream per day without gap or duplicate, two nurses racing on one case get one success and one
clear conflict, and a slot never takes more patients than its capacity. SQLite by default, PostgreSQL with
TRIAGE_TEST_DATABASE_URL (`make test-postgres`).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import Any

import pytest
from sqlalchemy import update
from sqlmodel import col, select

from tests.reliability.support import (
    GENERAL_VITALS,
    Hospital,
    Reply,
    Server,
    Staff,
    assert_consistent,
    at_once,
    request,
    run_all,
    triage_body,
    walk_in_body,
)
from triage.domain.policy import Stream, load_policy
from triage.models import Encounter, Slot, utcnow
from triage.services import ensure_slots

pytestmark = [pytest.mark.slow, pytest.mark.db]

BOOKED = 200
RACED = 20  # booked patients whom two nurses check in and triage at the same moment, on purpose
WALK_INS = 40
CLIENTS = 32
BOUND_SECONDS = 60

Outcome = tuple[str, str, Reply]  # reference, action, reply


def test_200_check_ins_and_triages_at_once_lose_no_case_and_number_tickets_without_gaps(
        hospital: Hospital, serve: Callable[..., Server]) -> None:
    tokens = [hospital.staff_token(f"nurse-{i}") for i in range(4)]
    bookings = hospital.bookings(BOOKED)
    server = serve()
    nurses = [Staff(server.port, token) for token in tokens]

    def visit(i: int, nurse: Staff, reference: str) -> list[Outcome]:
        checked_in = nurse.check_in(reference)
        triaged = nurse.triage(reference, triage_body(i))
        return [(reference, "check_in", checked_in), (reference, "triage", triaged)]

    def walk_in(i: int) -> list[Outcome]:
        reply = nurses[i % len(nurses)].walk_in(walk_in_body(i))
        return [(reply.body.get("reference", "") if isinstance(reply.body, dict) else "", "walk_in", reply)]

    units: list[list[Callable[[], list[Outcome]]]] = [
        [partial(visit, i, nurses[i % 4], b.reference)] for i, b in enumerate(bookings)]
    for i in range(RACED):  # a second nurse on the same patient, queued next to the first: they run together
        units[i].append(partial(visit, i, nurses[(i + 1) % 4], bookings[i].reference))
    units += [[partial(walk_in, i)] for i in range(WALK_INS)]
    random.Random(7).shuffle(units)

    started = time.monotonic()
    results = run_all([job for unit in units for job in unit], CLIENTS)
    elapsed = time.monotonic() - started

    assert not [r for r in results if isinstance(r, Exception)]  # every request was answered
    outcomes: list[Outcome] = [row for rows in results for row in rows]
    raced = {b.reference for b in bookings[:RACED]}
    unexpected = [(ref, action, r.status, r.text[:300]) for ref, action, r in outcomes
                  if not r.ok and not (r.status == 409 and ref in raced)]
    assert not unexpected
    conflicts = [(action, r.body["message"]) for _, action, r in outcomes if r.status == 409]
    assert Counter(action for action, _ in conflicts) == {"check_in": RACED, "triage": RACED}  # one loser each
    assert all(("already checked in" if action == "check_in" else "not awaiting triage") in message
               for action, message in conflicts), conflicts
    wins = Counter((ref, action) for ref, action, r in outcomes if r.ok)
    assert all(wins[(b.reference, "check_in")] == 1 and wins[(b.reference, "triage")] == 1 for b in bookings)

    cases = assert_consistent(hospital)
    walk_ins = {r.body["reference"] for _, action, r in outcomes if action == "walk_in"}
    assert len(walk_ins) == WALK_INS
    assert set(cases) == walk_ins | {b.reference for b in bookings}  # no case lost, none created twice
    assert all(case.state == "waiting" for case in cases.values())
    for ref, action, r in outcomes:
        if r.ok and action in ("triage", "walk_in"):
            assert cases[ref].ticket == r.body["ticket"], ref  # the ticket the nurse printed is the one stored
    assert Counter(case.stream for case in cases.values()).keys() == {"general", "fever", "emergency"}
    assert elapsed < BOUND_SECONDS, f"{len(outcomes)} requests took {elapsed:.1f} s"


# The same action by two nurses at the same instant: (action, the case's state before, the loser's message).
RACES = [
    ("check_in", "booked", "This patient is already checked in"),
    ("triage", "arrived", "This case is not awaiting triage"),
    ("start", "waiting", "'Start consultation' is not allowed while the case is 'In consultation'."),
    ("call", "waiting", "Someone else changed this case a moment ago; reload it and try again."),
]
RACES_PER_ACTION = 6


def _act(nurse: Staff, action: str, reference: str, version: int) -> Reply:
    if action == "check_in":
        return nurse.check_in(reference)
    if action == "triage":
        return nurse.triage(reference, dict(GENERAL_VITALS))
    if action == "call":
        # Both nurses send the version their screen showed: the second call would otherwise be a legal re-call.
        return nurse.event(reference, action, {"version": version})
    return nurse.event(reference, action)


def test_two_nurses_doing_the_same_thing_to_one_case_at_once_one_wins_the_other_gets_a_clear_conflict(
        hospital: Hospital, serve: Callable[..., Server]) -> None:
    first_token, second_token = hospital.staff_token("nurse-a"), hospital.staff_token("nurse-b")
    bookings = [b.reference for b in hospital.bookings(2 * RACES_PER_ACTION)]
    server = serve()
    first, second = Staff(server.port, first_token), Staff(server.port, second_token)
    cases: dict[str, list[str]] = {
        "check_in": bookings[:RACES_PER_ACTION],
        "triage": bookings[RACES_PER_ACTION:],
        "start": [first.walk_in(walk_in_body(0)).body["reference"] for _ in range(RACES_PER_ACTION)],
        "call": [first.walk_in(walk_in_body(0)).body["reference"] for _ in range(RACES_PER_ACTION)],
    }
    assert all(first.check_in(ref).ok for ref in cases["triage"])

    work: list[Callable[[], Reply]] = []
    expected: list[tuple[str, str, str]] = []
    for action, before, message in RACES:
        for ref in cases[action]:
            case = first.get(f"/encounters/{ref}").body["encounter"]
            assert case["state"] == before
            work += [partial(_act, first, action, ref, case["version"]),
                     partial(_act, second, action, ref, case["version"])]
            expected.append((action, ref, message))
    replies = at_once(work)  # every pair, all pairs together, over the four workers

    assert not [r for r in replies if isinstance(r, Exception)]
    for (action, ref, message), pair in zip(expected, zip(replies[::2], replies[1::2], strict=True), strict=True):
        statuses = sorted(r.status for r in pair)
        assert statuses == [200, 409], (action, ref, [r.text[:300] for r in pair])
        loser = next(r for r in pair if r.status == 409)
        assert message in loser.body["message"], (action, loser.body)
        history = first.get(f"/encounters/{ref}").body["history"]
        assert [h["trigger"] for h in history].count(action) == 1  # the action happened once
    assert_consistent(hospital)


SLOT_CLIENTS = 24
PLACES_LEFT = 3


def test_many_patients_booking_the_last_places_of_a_slot_at_once_never_overfill_it(
        hospital: Hospital, serve: Callable[..., Server]) -> None:
    server = serve()
    policy = load_policy(hospital.policy_path)
    tomorrow = policy.local(utcnow()).date() + timedelta(days=1)
    offer = request(server.port, "GET", f"/api/v1/slots?stream=general&day={tomorrow}").body["slots"][0]
    with hospital.db.session() as s:
        ensure_slots(s, policy, Stream.GENERAL, tomorrow)
        slot = s.exec(select(Slot).where(Slot.stream == "general", Slot.day == tomorrow)
                      .order_by(col(Slot.starts_at))).first()
        assert slot is not None and slot.capacity > PLACES_LEFT
        capacity = slot.capacity
        s.execute(update(Slot).where(col(Slot.id) == slot.id).values(booked=capacity - PLACES_LEFT))
        s.commit()

    def book(i: int) -> Reply:
        body: dict[str, Any] = {
            "name": f"患者{i}", "phone": f"1390000{i:04d}", "consent": True, "preferred_day": tomorrow.isoformat(),
            "slot": offer["local_start"],
            "assessment": {"age_years": 30 + i, "sex": "FM"[i % 2], "symptoms": ["headache"],
                           "epi": {"mid_high_risk_area_14d": False, "contact_case_14d": False,
                                   "contact_febrile_from_case_community_14d": False, "cluster_14d": False}}}
        # Each patient from an address of their own: the per-address pre-screen limit stays on.
        return request(server.port, "POST", "/api/v1/prescreenings", body=body,
                       headers={"X-Forwarded-For": f"10.1.{i // 200}.{i % 200 + 1}"})

    replies = at_once([partial(book, i) for i in range(SLOT_CLIENTS)])

    assert not [r for r in replies if isinstance(r, Exception)]
    assert Counter(r.status for r in replies) == {201: PLACES_LEFT, 409: SLOT_CLIENTS - PLACES_LEFT}, \
        [r.text[:300] for r in replies if r.status not in (201, 409)]
    assert all(r.body["slot"]["local_start"] == offer["local_start"] for r in replies if r.status == 201)
    assert all(r.body["message"] == "This slot has just been filled; choose another." for r in replies
               if r.status == 409)
    with hospital.db.session(readonly=True) as s:
        stored = s.exec(select(Slot).where(Slot.id == slot.id)).one()
        assert stored.booked == stored.capacity == capacity
        assert len(s.exec(select(Encounter).where(Encounter.slot_id == slot.id)).all()) == PLACES_LEFT
        assert len(s.exec(select(Encounter)).all()) == PLACES_LEFT  # nothing stored for those turned away
    assert_consistent(hospital)
