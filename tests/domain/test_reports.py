"""The arithmetic of the reports, as tables of hand-computed cases."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from triage.domain.reports import (
    Category,
    IsoWeek,
    TargetedWait,
    category_totals,
    display_minutes,
    display_pct,
    hourly,
    local_date,
    local_day_bounds,
    local_hour,
    median,
    minutes_between,
    mixed_wait_stats,
    over_target,
    percentile,
    restoration_pct,
    wait_end,
    wait_stats,
    weeks_in_year,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(("values", "expected"), [
    ([], None),
    ([7], 7.0),
    ([10, 20, 30, 40], 25.0),        # even count: between the middle two
    ([40, 10, 30], 30.0),            # order does not matter
    ([1, 2, 3, 4, 100], 3.0),        # the median ignores the outlier
])
def test_median(values: list[float], expected: float | None) -> None:
    assert median(values) == expected


@pytest.mark.parametrize(("values", "q", "expected"), [
    ([10, 20, 30, 40, 50, 60, 70, 80, 90, 100], 90, 91.0),  # rank 8.1 -> 90 + 0.1 * 10
    ([10, 20, 30, 40, 50, 60, 70, 80, 90, 100], 100, 100.0),
    ([10, 20, 30, 40, 50, 60, 70, 80, 90, 100], 0, 10.0),
    ([5, 15], 50, 10.0),
    ([3], 90, 3.0),
])
def test_percentile_interpolates_between_closest_ranks(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == pytest.approx(expected)


def test_percentile_refuses_a_share_outside_0_100() -> None:
    with pytest.raises(ValueError):
        percentile([1, 2], 101)


@pytest.mark.parametrize(("minutes", "target", "over"), [
    (30, 30, False),     # exactly on target is within it
    (30.5, 30, True),
    (0, 0, False),       # level 1 "at once": no wait at all is within it
    (0.2, 0, True),
    (239, 240, False),
])
def test_over_target_is_strictly_longer_than_the_target(minutes: float, target: int, over: bool) -> None:
    assert over_target(minutes, target) is over


def test_wait_stats_counts_breaches_and_share_within_target() -> None:
    stats = wait_stats([10, 20, 35, 70], 30)
    assert (stats.count, stats.median, stats.longest, stats.over_target) == (4, 27.5, 70, 2)
    assert stats.within_target == 2
    assert stats.within_target_pct == 50.0
    assert stats.p90 == pytest.approx(59.5)  # rank 2.7 -> 35 + 0.7 * 35


def test_wait_stats_of_nothing() -> None:
    stats = wait_stats([], 30)
    assert (stats.count, stats.median, stats.p90, stats.longest, stats.within_target_pct) == (0, None, None, None, None)


def test_mixed_wait_stats_judges_each_wait_against_its_own_target() -> None:
    # Emergency: a level-2 patient waiting 12 min is over (target 10); a level-4 patient waiting 100 is not (240).
    stats = mixed_wait_stats([TargetedWait(12, 10), TargetedWait(100, 240), TargetedWait(5, 10)])
    assert stats.over_target == 1
    assert stats.target_minutes is None
    assert stats.median == 12


def test_wait_end_is_the_call_or_a_start_without_call() -> None:
    call = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
    start = datetime(2026, 11, 22, 2, 5, tzinfo=UTC)
    assert wait_end(call, start) == call
    assert wait_end(None, start) == start
    assert wait_end(None, None) is None


def test_minutes_between_never_negative() -> None:
    a = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
    assert minutes_between(a, a.replace(minute=30)) == 30
    assert minutes_between(a.replace(minute=30), a) == 0


@pytest.mark.parametrize(("current", "baseline", "expected"), [
    (85, 100, 85.0), (120, 100, 120.0), (0, 50, 0.0), (10, 0, None), (10, None, None),
])
def test_restoration_is_a_percentage_of_the_year_earlier(current: int, baseline: int | None,
                                                         expected: float | None) -> None:
    assert restoration_pct(current, baseline) == expected


def test_categories_of_streams() -> None:
    totals = category_totals({"general": 10, "chronic": 5, "emergency": 7, "fever": 3, "online_followup": 2,
                              "unknown": 99})
    assert totals == {Category.OUTPATIENT: 15, Category.EMERGENCY: 7, Category.OTHER: 5}


@pytest.mark.parametrize(("text", "week"), [
    ("2026-W47", IsoWeek(2026, 47)), ("2026W47", IsoWeek(2026, 47)), ("2026-w7", IsoWeek(2026, 7)),
    (" 2020-W53 ", IsoWeek(2020, 53)),
])
def test_iso_week_parse(text: str, week: IsoWeek) -> None:
    assert IsoWeek.parse(text) == week


@pytest.mark.parametrize("text", ["", "2026-47", "2026-W00", "2026-W54", "2025-W53", "W47", "2026-W4x"])
def test_iso_week_parse_refuses_what_is_not_a_week(text: str) -> None:
    with pytest.raises(ValueError):
        IsoWeek.parse(text)


def test_iso_week_days_and_year_earlier() -> None:
    week = IsoWeek(2026, 47)
    assert (week.monday, week.sunday) == (date(2026, 11, 16), date(2026, 11, 22))
    assert str(week) == "2026-W47"
    assert week.year_earlier() == IsoWeek(2025, 47)
    assert week.year_earlier().monday == date(2025, 11, 17)
    assert week.shifted(-1) == IsoWeek(2026, 46)
    assert IsoWeek(2026, 1).shifted(-1) == IsoWeek(2025, 52)
    assert IsoWeek.of(date(2027, 1, 1)) == IsoWeek(2026, 53)  # 1 January 2027 belongs to 2026's week 53


def test_week_53_compares_with_week_52_when_the_year_before_has_none() -> None:
    assert weeks_in_year(2026) == 53 and weeks_in_year(2025) == 52
    assert IsoWeek(2026, 53).year_earlier() == IsoWeek(2025, 52)
    assert IsoWeek(2021, 53 - 1).year_earlier() == IsoWeek(2020, 52)


def test_local_day_bounds_in_the_hospitals_time_zone() -> None:
    start, end = local_day_bounds(date(2026, 11, 22), SHANGHAI)
    assert start == datetime(2026, 11, 21, 16, 0, tzinfo=UTC)  # midnight in Shanghai is 16:00 UTC
    assert end == datetime(2026, 11, 22, 16, 0, tzinfo=UTC)


def test_a_day_with_a_clock_change_is_not_24_hours() -> None:
    start, end = local_day_bounds(date(2026, 3, 29), BERLIN)  # summer time begins
    assert (end - start).total_seconds() == 23 * 3600


def test_week_bounds_in_local_time() -> None:
    start, end = IsoWeek(2026, 47).local_bounds(SHANGHAI)
    assert start == datetime(2026, 11, 15, 16, 0, tzinfo=UTC)
    assert end == datetime(2026, 11, 22, 16, 0, tzinfo=UTC)


def test_local_date_and_hour() -> None:
    late = datetime(2026, 11, 22, 17, 30, tzinfo=UTC)  # 01:30 the next morning in Shanghai
    assert local_date(late, SHANGHAI) == date(2026, 11, 23)
    assert local_hour(late, SHANGHAI) == 1
    assert local_hour(late.replace(tzinfo=None), SHANGHAI) == 1  # naive values are UTC


def test_hourly_buckets() -> None:
    assert hourly([(0, 2), (23, 1), (0, 1), (24, 9), (-1, 9)])[:1] == [3]
    assert sum(hourly([(5, 4), (6, 1)])) == 5


@pytest.mark.parametrize(("value", "text"), [(None, "—"), (12.5, "13"), (12.49, "12"), (0, "0")])
def test_display_minutes_rounds_half_up(value: float | None, text: str) -> None:
    assert display_minutes(value) == text


def test_display_pct() -> None:
    assert display_pct(93.66) == "93.7%"
    assert display_pct(None) == "—"
