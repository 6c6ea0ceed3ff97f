"""The daily and weekly reports against hand-computed fixtures, and the command that prints them."""

from __future__ import annotations

from datetime import date

import pytest
from flask import Flask
from sqlmodel import Session

from tests.supervisor_support import assessment, case, local, log
from triage.domain.errors import InvalidInput
from triage.domain.policy import Stream
from triage.domain.reports import Category, IsoWeek
from triage.hospital import base_policy
from triage.models import Origin
from triage.services import baselines
from triage.services import reports as svc

NOW = local("2026-11-23 00:30")
DAY = date(2026, 11, 22)


@pytest.fixture
def sunday(app: Flask, session: Session) -> Session:
    """22 November 2026, with one patient still waiting at midnight and one re-triaged patient."""
    # F1: fever, queued 23:25 and still waiting when the report is made at 00:30 (65 min, target 30).
    case(session, state="waiting", stream="fever", visit_day="2026-11-22", arrived="2026-11-22 23:20",
         queued="2026-11-22 23:25", isolation=True)
    # E2: emergency level 4, queued 22:00, called 23:50 (110 min, target 240), completed after midnight.
    case(session, state="completed", stream="emergency", level=4, visit_day="2026-11-22",
         arrived="2026-11-22 21:55", queued="2026-11-22 22:00", called="2026-11-22 23:50",
         started="2026-11-22 23:55", ended="2026-11-23 00:20")
    # R1: re-triaged: first sent to the fever clinic (an override), then back to general; one visit.
    r1 = case(session, state="completed", stream="general", visit_day="2026-11-22", arrived="2026-11-22 09:20",
              queued="2026-11-22 10:00", called="2026-11-22 10:40", started="2026-11-22 10:41",
              ended="2026-11-22 10:55")
    assessment(session, r1, stage="onsite", at="2026-11-22 09:30", recommended="general", final="fever",
               overridden=True, reason="体温复测 37.8℃")
    log(session, r1, at="2026-11-22 09:55", trigger="retriage", src="waiting", dest="arrived",
        reason="复测体温正常")
    assessment(session, r1, stage="onsite", at="2026-11-22 10:00", recommended="general", final="general")
    # G2: online general, queued 09:00, called 10:30 (90 min, target 60).
    case(session, state="completed", stream="general", origin=Origin.ONLINE, provisional="general",
         visit_day="2026-11-22", created="2026-11-20 09:00", arrived="2026-11-22 08:55", queued="2026-11-22 09:00",
         called="2026-11-22 10:30", started="2026-11-22 10:31", ended="2026-11-22 10:45", slot="2026-11-22 09:00")
    # L1: general, left without being seen: not a wait, counted apart.
    case(session, state="left_without_being_seen", stream="general", visit_day="2026-11-22",
         arrived="2026-11-22 10:55", queued="2026-11-22 11:00", ended="2026-11-22 12:00")
    # N1: booked online and never came (no-show); X1: cancelled. Neither is a visit.
    case(session, state="no_show", provisional="general", origin=Origin.ONLINE, visit_day="2026-11-22",
         created="2026-11-20 09:00", slot="2026-11-22 14:00", ended="2026-11-23 00:10")
    case(session, state="cancelled", provisional="general", origin=Origin.ONLINE, visit_day="2026-11-22",
         created="2026-11-20 09:00", slot="2026-11-22 15:00", ended="2026-11-21 08:00")
    # C1: chronic, queued 14:00, called 14:20, referred to a community centre.
    case(session, state="referred", stream="chronic", visit_day="2026-11-22", arrived="2026-11-22 13:55",
         queued="2026-11-22 14:00", called="2026-11-22 14:20", started="2026-11-22 14:21", ended="2026-11-22 14:30",
         disposition="cmty-east")
    # W0: queued the evening before, called after midnight: belongs to the 21st, not to this report.
    case(session, state="completed", stream="fever", visit_day="2026-11-21", arrived="2026-11-21 23:40",
         queued="2026-11-21 23:50", called="2026-11-22 00:20", ended="2026-11-22 00:40")
    # Pre-screens submitted around the day's edges (local midnight is 16:00 UTC).
    for created in ("2026-11-22 00:30", "2026-11-22 23:59", "2026-11-23 00:01"):
        case(session, state="prescreened", provisional="chronic", origin=Origin.ONLINE, visit_day="2026-11-25",
             created=created)
    session.commit()
    return session


def _row(report: svc.DailyReport, key: str) -> svc.DailyRow:
    return next(r for r in [*report.streams, *report.levels, report.total] if r.key == key)


def test_daily_report_per_stream(sunday: Session) -> None:
    report = svc.daily_report(sunday, policy=base_policy(), day=DAY, now=NOW)
    fever = _row(report, "fever")
    assert (fever.visits, fever.walk_in, fever.still_waiting_at_midnight) == (1, 1, 1)
    assert (fever.waits.count, fever.waits.median, fever.waits.over_target) == (1, 65, 1)
    assert fever.overrides == 1  # R1's first decision sent them to the fever clinic

    general = _row(report, "general")
    assert (general.visits, general.online, general.walk_in) == (3, 1, 2)  # R1 once, G2, L1; not N1 nor X1
    assert (general.waits.count, general.waits.median, general.waits.over_target) == (2, 65, 1)  # 40 and 90
    assert general.waits.within_target_pct == 50
    assert general.waits.target_minutes == 60
    assert (general.completed, general.no_show, general.left, general.referred) == (2, 1, 1, 0)

    emergency, level4 = _row(report, "emergency"), _row(report, "emergency-4")
    assert (emergency.visits, emergency.waits.median, emergency.waits.over_target) == (1, 110, 0)
    assert emergency.completed == 1
    assert (level4.visits, level4.waits.target_minutes) == (1, 240)
    assert _row(report, "emergency-2").visits == 0

    chronic = _row(report, "chronic")
    assert (chronic.visits, chronic.waits.median, chronic.referred) == (1, 20, 1)


def test_daily_report_totals_and_other_figures(sunday: Session) -> None:
    report = svc.daily_report(sunday, policy=base_policy(), day=DAY, now=NOW)
    total = report.total
    assert total.visits == 6
    assert total.waits.count == 5 and total.waits.median == 65  # 20, 40, 65, 90, 110
    assert total.waits.over_target == 2  # the fever patient still waiting, and G2
    assert (total.still_waiting_at_midnight, total.completed, total.no_show, total.left, total.referred) == (
        1, 3, 1, 1, 1)
    assert total.overrides == 1
    assert report.prescreens == 2  # 00:30 and 23:59 local; not 00:01 the next day (local time, not UTC)
    assert report.cancelled == 1
    assert [o.reason for o in report.overrides] == ["体温复测 37.8℃"]
    assert report.overrides[0].at.strftime("%H:%M") == "09:30"  # shown in local time


def test_the_day_before_keeps_its_own_late_patient(sunday: Session) -> None:
    report = svc.daily_report(sunday, policy=base_policy(), day=date(2026, 11, 21), now=NOW)
    fever = _row(report, "fever")
    assert (fever.visits, fever.waits.median, fever.still_waiting_at_midnight) == (1, 30, 1)  # 23:50 -> 00:20


def test_daily_tables_and_csv_agree_with_the_numbers(sunday: Session) -> None:
    report = svc.daily_report(sunday, policy=base_policy(), day=DAY, now=NOW)
    tables = svc.daily_tables(report, "en")
    main = tables[0]
    general = next(r for r in main.rows if r[0] == "General outpatient")
    assert general[1:6] == ["3", "1", "2", "60", "65"]
    text = svc.tables_csv(svc.daily_title(report, "Demo", "en"), tables)
    assert "General outpatient,3,1,2,60,65" in text
    assert "体温复测 37.8℃" in text


def test_csv_neutralises_formulas_in_free_text() -> None:
    table = svc.Table("t", "T", ["a"], [["=HYPERLINK(\"x\")"], ["-3"]])
    body = svc.tables_csv("title", [table])
    assert "'=HYPERLINK" in body and "\r\n-3\r\n" in body


@pytest.fixture
def two_years(app: Flask, session: Session) -> Session:
    """2026-W47 (16-22 Nov 2026) and the same week a year earlier, 2025-W47 (17-23 Nov 2025)."""
    for i, (stream, day) in enumerate([("general", "2026-11-16"), ("general", "2026-11-16"), ("chronic", "2026-11-18"),
                                       ("emergency", "2026-11-17"), ("emergency", "2026-11-22"),
                                       ("fever", "2026-11-19")]):
        case(session, state="completed", stream=stream, visit_day=day, queued=f"{day} 09:{i:02d}")
    case(session, state="referred", provisional="chronic", origin=Origin.ONLINE, visit_day="2026-11-20",
         created="2026-11-18 08:00", disposition="online_followup")
    case(session, state="no_show", provisional="general", origin=Origin.ONLINE, visit_day="2026-11-20",
         created="2026-11-18 08:00")
    for i, (stream, day) in enumerate([("general", "2025-11-17"), ("general", "2025-11-17"), ("general", "2025-11-19"),
                                       ("chronic", "2025-11-23"), ("emergency", "2025-11-18"),
                                       ("emergency", "2025-11-18"), ("fever", "2025-11-20")]):
        case(session, state="completed", stream=stream, visit_day=day, queued=f"{day} 09:{i:02d}")
    # The day after the year-earlier week: not in it.
    case(session, state="completed", stream="general", visit_day="2025-11-24", queued="2025-11-24 09:00")
    session.commit()
    return session


def test_weekly_restoration_from_the_records(two_years: Session) -> None:
    report = svc.weekly_report(two_years, policy=base_policy(), week=IsoWeek(2026, 47), now=NOW)
    assert (report.compared_with, report.source, report.complete) == (IsoWeek(2025, 47), "records", True)
    rows = {r.category: r for r in report.rows}
    assert (rows[Category.OUTPATIENT].current, rows[Category.OUTPATIENT].previous) == (3, 4)
    assert rows[Category.OUTPATIENT].pct == 75.0
    assert rows[Category.EMERGENCY].pct == 100.0
    assert (rows[Category.OTHER].current, rows[Category.OTHER].pct) == (2, 200.0)  # fever + online follow-up
    assert (report.total.current, report.total.previous, report.total.pct) == (7, 7, 100.0)
    assert report.streams["online_followup"] == 1
    monday = report.days[0]
    assert (monday.day, monday.previous_day) == (date(2026, 11, 16), date(2025, 11, 17))
    assert monday.current[Category.OUTPATIENT] == 2 and monday.previous == {
        Category.OUTPATIENT: 2, Category.EMERGENCY: 0, Category.OTHER: 0}


def test_an_entered_baseline_replaces_the_records_of_its_week(two_years: Session) -> None:
    baselines.save_baseline(two_years, week="2025-W47", outpatient="10", emergency="4", other="5", actor_id=None)
    report = svc.weekly_report(two_years, policy=base_policy(), week=IsoWeek(2026, 47), now=NOW)
    rows = {r.category: r for r in report.rows}
    assert report.source == "baseline"
    assert (rows[Category.OUTPATIENT].pct, rows[Category.EMERGENCY].pct, rows[Category.OTHER].pct) == (30.0, 50.0,
                                                                                                        40.0)
    assert report.total.pct == pytest.approx(700 / 19)
    assert report.days[0].previous is None  # a baseline has no days


def test_a_week_without_any_earlier_figures(two_years: Session) -> None:
    report = svc.weekly_report(two_years, policy=base_policy(), week=IsoWeek(2026, 40), now=NOW)
    assert report.source == "none"
    assert all(r.pct is None for r in report.rows)
    assert "—" in svc.tables_text("t", svc.weekly_tables(report, "en"))


def test_the_current_week_is_marked_incomplete(two_years: Session) -> None:
    report = svc.weekly_report(two_years, policy=base_policy(), week=IsoWeek(2026, 48), now=NOW)
    assert report.complete is False
    assert any("not over" in n for n in svc.weekly_tables(report, "en")[0].notes)


def test_report_parameters_are_validated() -> None:
    assert svc.parse_week("", today=date(2026, 11, 23)) == IsoWeek(2026, 47)  # the last complete week
    assert svc.parse_day("", today=date(2026, 11, 23)) == date(2026, 11, 23)
    with pytest.raises(InvalidInput):
        svc.parse_week("2026-W60", today=date(2026, 11, 23))
    with pytest.raises(InvalidInput):
        svc.parse_day("22/11/2026", today=date(2026, 11, 23))


def test_baseline_entry_is_validated_and_upserted(app: Flask, session: Session) -> None:
    with pytest.raises(InvalidInput) as caught:
        baselines.save_baseline(session, week="2025-47", outpatient="x", emergency="-1", other="3", actor_id=None)
    assert set(caught.value.errors) == {"week", "outpatient", "emergency"}
    baselines.save_baseline(session, week="2025-W47", outpatient="1,200", emergency="300", other="50", actor_id=None)
    row = baselines.save_baseline(session, week="2025-W47", outpatient="1300", emergency="300", other="50",
                                  actor_id=None)
    assert (row.outpatient, len(baselines.list_baselines(session))) == (1300, 1)


def test_report_command_prints_the_weekly_report(app: Flask, two_years: Session) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(args=["report", "weekly", "--week", "2026-W47", "--lang", "en"])
    assert result.exit_code == 0, result.output
    assert "weekly restoration report 2026-W47" in result.output
    assert "75.0%" in result.output and "200.0%" in result.output
    csv_result = runner.invoke(args=["report", "weekly", "--week", "2026-W47", "--csv"])
    assert csv_result.exit_code == 0
    assert "门诊（普通、慢病）,3,4,75.0%" in csv_result.output
    bad = runner.invoke(args=["report", "weekly", "--week", "soon"])
    assert bad.exit_code != 0 and "2026-W47" in bad.output


def test_report_command_prints_the_daily_report(app: Flask, sunday: Session) -> None:
    result = app.test_cli_runner().invoke(args=["report", "daily", "--day", "2026-11-22", "--lang", "en"])
    assert result.exit_code == 0, result.output
    assert "daily report 2026-11-22" in result.output
    assert Stream.GENERAL.label("en") in result.output
