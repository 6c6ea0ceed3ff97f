"""Processes die under load: a worker killed mid-transition, the server stopped or killed and started again.

Whatever dies, a case is in the state before the interrupted request or the state after it, never in between;
its log explains its state; tickets stay unique and gapless; what a nurse saw confirmed (2xx) is still there after
a restart. SQLite by default, PostgreSQL with TRIAGE_TEST_DATABASE_URL (`make test-postgres`).
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Callable
from functools import partial

import pytest

from tests.reliability.support import (
    DESTINATION,
    INTERRUPTED,
    Hospital,
    Reply,
    Server,
    Staff,
    assert_consistent,
    run_all,
    triage_body,
    walk_in_body,
)

pytestmark = [pytest.mark.slow, pytest.mark.db]

STEPS = ("check_in", "triage", "call", "start", "complete")


def _step(nurse: Staff, action: str, i: int, reference: str) -> Reply:
    if action == "check_in":
        return nurse.check_in(reference)
    if action == "triage":
        return nurse.triage(reference, triage_body(i))
    return nurse.event(reference, action)


class Track:
    """What one client knows of one case: the last state confirmed by a 2xx, and the action it lost an answer to."""

    def __init__(self, reference: str, state: str) -> None:
        self.reference, self.confirmed = reference, state
        self.pending: str | None = None
        self.refused: list[Reply] = []


def _walk(nurse: Staff, i: int, track: Track, done: Callable[[], None]) -> Track:
    """Take one booked patient through the whole visit; stop at the first request left without an answer."""
    for action in STEPS:
        try:
            reply = _step(nurse, action, i, track.reference)
        except INTERRUPTED:
            track.pending = action
            return track
        finally:
            done()
        if not reply.ok:
            track.refused.append(reply)
            return track
        track.confirmed = DESTINATION[action]
    return track


CRASH_CASES = 100
CRASH_CLIENTS = 24
KILLS = 4


def test_a_worker_killed_in_the_middle_of_transitions_leaves_each_case_before_or_after_never_between(
        hospital: Hospital, serve: Callable[..., Server]) -> None:
    token = hospital.staff_token("nurse")
    bookings = hospital.bookings(CRASH_CASES)
    server = serve()
    nurse = Staff(server.port, token)
    first_workers = set(server.workers())
    answered = threading.Semaphore(0)
    killed: list[int] = []

    def killer() -> None:
        # Once the load is running, SIGKILL a busy worker every half second: whatever it was doing is cut short.
        for _ in range(60):
            answered.acquire()
        for _ in range(KILLS):
            victim = random.choice(server.workers())
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)
            time.sleep(0.5)

    assassin = threading.Thread(target=killer)
    assassin.start()
    tracks = run_all([partial(_walk, nurse, i, Track(b.reference, "booked"), answered.release)
                      for i, b in enumerate(bookings)], CRASH_CLIENTS)
    assassin.join(30)

    assert not [t for t in tracks if isinstance(t, Exception)]
    assert len(killed) == KILLS
    assert not [(t.reference, r.status, r.text[:300]) for t in tracks for r in t.refused]  # no 5xx, no conflict
    interrupted = [t for t in tracks if t.pending]
    assert interrupted, "no request was cut short: the kills did not land during a request"
    server.wait_ready()  # gunicorn replaced the dead workers
    assert server.process is not None and server.process.poll() is None
    assert not set(killed) & set(server.workers()) and set(server.workers()) != first_workers

    cases = assert_consistent(hospital)
    for track in tracks:
        allowed = {track.confirmed} | ({DESTINATION[track.pending]} if track.pending else set())
        assert cases[track.reference].state in allowed, (track.reference, track.pending, cases[track.reference])

    # And it keeps serving: a new patient gets the next ticket of their queue.
    reply = nurse.walk_in(walk_in_body(0))
    assert reply.status == 201, reply.text
    assert_consistent(hospital)


RESTART_CASES = 120
RESTART_WALK_INS = 30
RESTART_CLIENTS = 16
STOP_AFTER = 80  # answers received before the server goes down


@pytest.mark.parametrize("stop", ["graceful", "killed"])
def test_a_restart_loses_nothing_a_nurse_saw_confirmed(hospital: Hospital, serve: Callable[..., Server],
                                                        stop: str) -> None:
    token = hospital.staff_token("nurse")
    bookings = hospital.bookings(RESTART_CASES)
    server = serve()
    nurse = Staff(server.port, token)
    answered = threading.Semaphore(0)
    confirmed: list[tuple[str, str, Reply]] = []
    refused: list[Reply] = []
    lost = 0

    def send(action: str, i: int, reference: str | None) -> bool:
        nonlocal lost
        try:
            reply = nurse.walk_in(walk_in_body(i)) if reference is None else _step(nurse, action, i, reference)
        except INTERRUPTED:
            lost += 1
            return False
        finally:
            answered.release()
        if not reply.ok:
            refused.append(reply)
            return False
        confirmed.append((action, reference or reply.body["reference"], reply))
        return True

    def visit(i: int, reference: str) -> None:
        if send("check_in", i, reference):
            send("triage", i, reference)

    def stopper() -> None:
        for _ in range(STOP_AFTER):
            answered.acquire()
        if stop == "graceful":
            server.stop()  # SIGTERM: the master stops accepting; workers finish the requests in hand
        else:
            server.kill()  # SIGKILL to master and workers at once

    jobs: list[Callable[[], object]] = [partial(visit, i, b.reference) for i, b in enumerate(bookings)]
    jobs += [partial(send, "walk_in", i, None) for i in range(RESTART_WALK_INS)]
    random.Random(3).shuffle(jobs)
    stopping = threading.Thread(target=stopper)
    stopping.start()
    results = run_all(jobs, RESTART_CLIENTS)
    stopping.join(60)

    assert not [r for r in results if isinstance(r, Exception)]
    assert not [(r.status, r.text[:300]) for r in refused]
    assert lost, "the server went down after every request was answered"
    restarted = serve(port=server.port)
    for action, reference, reply in confirmed:
        found = nurse.get(f"/encounters/{reference}")
        assert found.status == 200, f"{action} of {reference} was confirmed, then lost"
        case = found.body
        triggers = [h["trigger"] for h in case["history"]]
        if action == "check_in":
            assert "check_in" in triggers and case["encounter"]["state"] in ("arrived", "waiting"), case
        else:
            assert case["encounter"]["state"] == "waiting" and case["encounter"]["ticket"] == reply.body["ticket"]
    assert_consistent(hospital)

    # Work goes on where it stopped: the patients not yet seen are checked in and triaged, tickets continue.
    pending = [b.reference for b in bookings
               if nurse.get(f"/encounters/{b.reference}").body["encounter"]["state"] != "waiting"]
    for i, reference in enumerate(pending):
        if nurse.get(f"/encounters/{reference}").body["encounter"]["state"] == "booked":
            assert nurse.check_in(reference).ok
        assert nurse.triage(reference, triage_body(i)).ok
    cases = assert_consistent(hospital)
    assert all(case.state == "waiting" for case in cases.values())
    assert restarted.process is not None and restarted.process.poll() is None
