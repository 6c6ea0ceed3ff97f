"""The dashboard, the workflow counts and the quality of triage against hand-computed fixtures.

The clock stands at 00:30 on 23 November 2026 in the hospital (Asia/Shanghai): just after midnight, so
patients who arrived yesterday and are still waiting must still be counted as waiting, with their full
wait, while what happened yesterday is not "today".
"""

from __future__ import annotations

from datetime import date

import pytest
from flask import Flask
from sqlmodel import Session

from tests.supervisor_support import assessment, case, local
from triage.domain.errors import InvalidInput
from triage.domain.policy import Stream
from triage.hospital import base_policy, workflow
from triage.models import Origin
from triage.services import oversight

NOW = local("2026-11-23 00:30")


@pytest.fixture
def night(app: Flask, session: Session) -> Session:
    """The cases of a night shift, around midnight."""
    # Fever patient queued before midnight, still waiting: 65 minutes at 00:30, target 30.
    case(session, state="waiting", stream="fever", visit_day="2026-11-22", arrived="2026-11-22 23:20",
         queued="2026-11-22 23:25", isolation=True, name="张三明")
    # Fever patient of today, called after 10 minutes.
    case(session, state="called", stream="fever", visit_day="2026-11-23", arrived="2026-11-23 00:05",
         queued="2026-11-23 00:10", called="2026-11-23 00:20", isolation=True)
    # Emergency level 2, seen without a call after 6 minutes.
    case(session, state="in_consultation", stream="emergency", level=2, visit_day="2026-11-23",
         arrived="2026-11-23 00:00", queued="2026-11-23 00:02", started="2026-11-23 00:08")
    # Emergency level 4 from yesterday evening, completed just after midnight (its wait ended yesterday).
    case(session, state="completed", stream="emergency", level=4, visit_day="2026-11-22",
         arrived="2026-11-22 21:55", queued="2026-11-22 22:00", called="2026-11-22 23:50",
         started="2026-11-22 23:55", ended="2026-11-23 00:20")
    # Emergency level 3 waiting 15 minutes (target 30: on time).
    case(session, state="waiting", stream="emergency", level=3, visit_day="2026-11-23",
         arrived="2026-11-23 00:12", queued="2026-11-23 00:15")
    # A walk-in awaiting triage.
    case(session, state="arrived", visit_day="2026-11-23", arrived="2026-11-23 00:25")
    # Online bookings: today 08:00 (counted), cancelled today 09:00 (not), tomorrow (not today).
    case(session, state="booked", provisional="general", origin=Origin.ONLINE, visit_day="2026-11-23",
         created="2026-11-20 10:00", slot="2026-11-23 08:00")
    case(session, state="cancelled", provisional="general", origin=Origin.ONLINE, visit_day="2026-11-23",
         created="2026-11-20 10:00", slot="2026-11-23 09:00", ended="2026-11-23 00:05")
    case(session, state="booked", provisional="general", origin=Origin.ONLINE, visit_day="2026-11-24",
         created="2026-11-20 10:00", slot="2026-11-24 08:00")
    session.commit()
    return session


def _stream(board: oversight.Dashboard, stream: Stream) -> oversight.StreamNumbers:
    return next(n for n in board.streams if n.stream is stream)


def test_dashboard_numbers_just_after_midnight(night: Session) -> None:
    board = oversight.dashboard(night, policy=base_policy(), workflow=workflow(), now=NOW)
    assert board.day == date(2026, 11, 23)
    fever = _stream(board, Stream.FEVER)
    assert (fever.waiting, fever.called, fever.in_consultation, fever.completed_today) == (1, 1, 0, 0)
    assert fever.longest_wait == 65  # queued 23:25 yesterday: the wait is not reset at midnight
    assert fever.median_wait == pytest.approx(37.5)  # running 65 and today's ended 10
    assert (fever.over_target, fever.isolation) == (1, 2)
    assert (fever.arrivals_online, fever.arrivals_walk_in) == (0, 1)  # yesterday's arrival is not today's

    emergency = _stream(board, Stream.EMERGENCY)
    assert (emergency.waiting, emergency.called, emergency.in_consultation, emergency.completed_today) == (1, 0, 1, 1)
    assert emergency.longest_wait == 15
    assert emergency.median_wait == pytest.approx(10.5)  # running 15 and 6 (seen without call); not yesterday's
    assert (emergency.over_target, emergency.arrivals_walk_in) == (0, 2)

    general = _stream(board, Stream.GENERAL)
    assert (general.waiting, general.booked_today, general.longest_wait, general.median_wait) == (0, 1, None, None)
    assert board.awaiting_triage == 1
    assert board.totals["waiting"] == 2


def test_over_target_patients_are_listed_first_most_overdue_first(night: Session) -> None:
    board = oversight.dashboard(night, policy=base_policy(), workflow=workflow(), now=NOW)
    assert [e.encounter.patient_name for e in board.over_target] == ["张三明"]
    assert board.over_target[0].wait.waited_minutes - board.over_target[0].wait.target_minutes == 35
    assert {e.encounter.stream for e in board.isolation} == {"fever"}


def test_arrivals_per_local_hour_against_booked_slots(night: Session) -> None:
    board = oversight.dashboard(night, policy=base_policy(), workflow=workflow(), now=NOW)
    assert board.arrivals_total[0] == 4  # 00:00-00:59 local: fever, two emergencies, one awaiting triage
    assert board.arrivals_by_hour[oversight.UNTRIAGED][0] == 1
    assert sum(board.arrivals_total) == 4
    assert board.booked_total[8] == 1 and board.booked_total[9] == 0  # the cancelled booking is not counted
    assert board.wait_by_hour[0] == pytest.approx(12.5)  # median of 6, 10 and the running 15, 65


def test_wait_groups_per_acuity(night: Session) -> None:
    board = oversight.dashboard(night, policy=base_policy(), workflow=workflow(), now=NOW)
    groups = {g.key: g for g in board.wait_groups}
    assert groups["fever"].target_minutes == 30 and sorted(groups["fever"].waits) == [10, 65]
    assert groups["fever"].over_target == 1
    assert groups["emergency-2"].waits == (6.0,) and groups["emergency-2"].target_minutes == 10
    assert groups["emergency-3"].waits == (15.0,)
    assert groups["emergency-4"].waits == ()


def test_state_counts_for_the_workflow_diagram(night: Session) -> None:
    counts = oversight.state_counts(night, workflow=workflow(), policy=base_policy(), now=NOW)
    assert counts["waiting"] == 2
    assert counts["called"] == 1 and counts["in_consultation"] == 1 and counts["arrived"] == 1
    assert counts["booked"] == 1  # tomorrow's booking is not today's
    assert counts["completed"] == 1 and counts["cancelled"] == 1  # ended today
    assert counts["no_show"] == 0


def test_mermaid_text_carries_the_counts_in_the_users_language(night: Session) -> None:
    counts = oversight.state_counts(night, workflow=workflow(), policy=base_policy(), now=NOW)
    zh = oversight.localized_mermaid(workflow(), counts, "zh")
    en = oversight.localized_mermaid(workflow(), counts, "en")
    assert "    waiting : 候诊中 (2)" in zh.splitlines()
    assert "    waiting : Waiting (2)" in en.splitlines()
    assert "    booked --> arrived : 到院签到" in zh.splitlines()
    assert zh.startswith("stateDiagram-v2") and "class " in zh


@pytest.fixture
def decisions(app: Flask, session: Session) -> Session:
    """Online recommendations and on-site decisions of one week."""
    # Q1: online general; the nurse sends to the fever clinic; later re-triaged back to general (counted once).
    q1 = case(session, state="waiting", stream="general", origin=Origin.ONLINE, visit_day="2026-11-20",
              queued="2026-11-20 10:00")
    assessment(session, q1, stage="online", at="2026-11-19 20:00", recommended="general",
               rules=("ROUTE-GENERAL", "ONLINE-PROVISIONAL"))
    assessment(session, q1, stage="onsite", at="2026-11-20 09:00", recommended="fever", final="fever")
    assessment(session, q1, stage="onsite", at="2026-11-20 09:40", recommended="general", final="general")
    # Q2: online general, on site general.
    q2 = case(session, state="completed", stream="general", origin=Origin.ONLINE, visit_day="2026-11-20",
              queued="2026-11-20 11:00")
    assessment(session, q2, stage="online", at="2026-11-19 21:00", recommended="general",
               rules=("ROUTE-GENERAL", "ONLINE-PROVISIONAL"))
    assessment(session, q2, stage="onsite", at="2026-11-20 10:50", recommended="general", final="general")
    # Q3: online fever, on site fever.
    q3 = case(session, state="completed", stream="fever", origin=Origin.ONLINE, visit_day="2026-11-21",
              queued="2026-11-21 11:00")
    assessment(session, q3, stage="online", at="2026-11-20 21:00", recommended="fever",
               rules=("INF-TEMP", "ROUTE-FEVER", "ONLINE-PROVISIONAL"))
    assessment(session, q3, stage="onsite", at="2026-11-21 10:50", recommended="fever", final="fever")
    # Q4: a walk-in whose nurse overrode the engine (general -> emergency level 2).
    q4 = case(session, state="completed", stream="emergency", level=2, visit_day="2026-11-21",
              queued="2026-11-21 12:00")
    assessment(session, q4, stage="onsite", at="2026-11-21 11:58", recommended="general", final="emergency",
               final_level=2, overridden=True, reason="胸痛持续，心电图异常")
    # Outside the period: not counted.
    q5 = case(session, state="completed", stream="fever", origin=Origin.ONLINE, visit_day="2026-11-10",
              queued="2026-11-10 11:00")
    assessment(session, q5, stage="online", at="2026-11-09 21:00", recommended="general", rules=("ROUTE-GENERAL",))
    assessment(session, q5, stage="onsite", at="2026-11-10 10:50", recommended="fever", final="fever")
    session.commit()
    return session


def test_quality_of_triage_by_stream_and_by_rule(decisions: Session) -> None:
    result = oversight.quality(decisions, policy=base_policy(), first=date(2026, 11, 16), last=date(2026, 11, 22))
    assert (result.pairs, result.differs) == (3, 1)
    assert result.differs_pct == pytest.approx(100 / 3)
    by_stream = {a.key: a for a in result.by_stream}
    assert (by_stream["general"].pairs, by_stream["general"].differs) == (2, 1)
    assert (by_stream["fever"].pairs, by_stream["fever"].differs) == (1, 0)
    assert result.matrix == {("general", "fever"): 1, ("general", "general"): 1, ("fever", "fever"): 1}
    by_rule = {a.key: (a.pairs, a.differs) for a in result.by_rule}
    assert by_rule == {"ROUTE-GENERAL": (2, 1), "ROUTE-FEVER": (1, 0), "INF-TEMP": (1, 0)}
    assert result.by_rule[0].key == "ROUTE-GENERAL"  # the rule most often overturned first
    assert (result.decisions, result.overrides) == (4, 1)
    assert result.override_changes == [("general", "emergency", 1)]
    assert [o.reason for o in result.recent_overrides] == ["胸痛持续，心电图异常"]


@pytest.mark.parametrize(("first", "last", "field"), [
    ("2026-11-22", "2026-11-01", "last"), ("yesterday", "", "first"), ("2025-01-01", "2026-11-22", "first"),
])
def test_quality_period_is_validated(first: str, last: str, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        oversight.parse_period(first, last, today=date(2026, 11, 22))
    assert field in caught.value.errors


def test_quality_period_defaults_to_the_last_seven_days() -> None:
    assert oversight.parse_period("", "", today=date(2026, 11, 22)) == (date(2026, 11, 16), date(2026, 11, 22))
