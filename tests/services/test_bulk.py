"""Bulk generation of past encounters: consistent rows the reports can read, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from sqlalchemy import func, select
from sqlmodel import Session, col

from tests.supervisor_support import local
from triage.bulk import generate_encounters
from triage.domain.reports import IsoWeek
from triage.hospital import base_policy, workflow
from triage.models import Assessment, Encounter, TicketCounter, TransitionLog
from triage.services import oversight, reports

NOW = local("2026-11-22 10:30")


def test_generates_exactly_n_consistent_encounters(app: Flask, session: Session) -> None:
    policy = base_policy()
    result = generate_encounters(session, policy, 3000, seed=5, now=NOW, days=60, history_days=2, staff_ids=())
    assert result.encounters == 3000
    assert session.execute(select(func.count()).select_from(Encounter)).scalar_one() == 3000
    assert (result.first_day, result.last_day) == (NOW.date() - timedelta(days=59), NOW.date())
    rows = session.execute(select(Encounter)).scalars().all()
    assert len({e.reference for e in rows}) == 3000
    assert all(e.created_at <= NOW and (e.arrived_at is None or e.arrived_at <= NOW) for e in rows)
    for e in rows:
        if e.ticket is not None:  # ticketed: a stream, a visit day, and times in order
            assert e.stream and e.queued_at is not None and e.arrived_at is not None
            assert e.arrived_at <= e.queued_at
            assert e.ticket.startswith({"fever": "F", "emergency": "E", "general": "G", "chronic": "C"}[e.stream])
        if workflow().is_final(e.state):
            assert e.ended_at is not None
        else:
            assert e.ended_at is None
        if e.state in ("waiting", "called", "in_consultation"):
            assert e.visit_day == NOW.date()  # only today's patients are still in the queues
    # General and chronic clinics are closed on Sundays in the demo policy: nobody was seen there.
    assert not any(e.stream in ("general", "chronic") and e.visit_day and e.visit_day.weekday() == 6 for e in rows)
    counters = session.execute(select(func.max(TicketCounter.last_no))).scalar_one()
    assert counters and counters >= 1
    assert session.execute(select(func.count()).select_from(TransitionLog)).scalar_one() == result.transitions > 0
    assert session.execute(select(func.count()).select_from(Assessment)).scalar_one() == result.assessments > 0
    logged_days = {local_day for (local_day,) in session.execute(
        select(col(Encounter.visit_day)).join(TransitionLog, col(TransitionLog.encounter_id) == col(Encounter.id))
        .distinct())}
    assert logged_days <= {NOW.date(), NOW.date() - timedelta(days=1)}


def test_reports_read_generated_data(app: Flask, session: Session) -> None:
    policy = base_policy()
    generate_encounters(session, policy, 4000, seed=9, now=NOW, days=400, history_days=3, staff_ids=())
    week = IsoWeek.of(NOW.date()).shifted(-1)
    weekly = reports.weekly_report(session, policy=policy, week=week, now=NOW)
    assert weekly.source == "records" and weekly.total.current > 0 and weekly.total.pct is not None
    daily = reports.daily_report(session, policy=policy, day=NOW.date() - timedelta(days=1), now=NOW)
    assert daily.total.visits > 0 and daily.total.waits.count > 0
    board = oversight.dashboard(session, policy=policy, workflow=workflow(), now=NOW)
    assert sum(board.arrivals_total) > 0
    assert oversight.quality(session, policy=policy, first=NOW.date() - timedelta(days=2), last=NOW.date()).pairs > 0


def test_a_second_run_adds_without_colliding(app: Flask, session: Session) -> None:
    policy = base_policy()
    generate_encounters(session, policy, 500, seed=1, now=NOW, days=5, history_days=0)
    generate_encounters(session, policy, 500, seed=1, now=NOW, days=5, history_days=0)  # same seed: still unique
    assert session.execute(select(func.count(func.distinct(Encounter.reference)))).scalar_one() == 1000
    tickets = session.execute(select(Encounter.ticket_day, Encounter.ticket).where(
        col(Encounter.ticket).is_not(None))).all()
    assert len(tickets) == len(set(tickets))


def test_demo_command_adds_past_encounters(app: Flask) -> None:
    with app.app_context():  # `demo` is a plain click command: `flask` pushes the context, the runner does not
        result = app.test_cli_runner().invoke(args=["demo", "--encounters", "300"])
    assert result.exit_code == 0, result.output
    assert "generated 300 past encounters" in result.output
