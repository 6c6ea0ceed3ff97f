"""The arithmetic of supervision and reporting: waits against targets, percentiles, restoration and ISO weeks.

Pure functions of plain values (no Flask, no session), so the numbers on the dashboard and in the reports
the authorities receive can be checked by hand against tables of cases.

Definitions (shown to supervisors on the report pages too):
- A wait runs from the ticket (joining the queue) to the call, or to the start of the consultation when
  the patient was seen without a call. A re-triaged patient's wait starts again at the new ticket.
- A wait is over target when it is longer than the target for the patient's acuity (a target of 0
  minutes means "at once": any wait at all is over it), as on the queue screens (`triage.domain.queue`).
- Median and percentiles interpolate linearly between the two nearest waits (the "inclusive" method
  of spreadsheets): the median of 10, 20, 30, 40 minutes is 25.
- Restoration is this period's volume as a percentage of the same ISO week one year earlier
  (notice 004: "the level of restoration as a percentage of the same period of the previous year").
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from triage.domain.policy import Stream

HOURS = tuple(range(24))
_WEEK = re.compile(r"^\s*(\d{4})-?W(\d{1,2})\s*$", re.IGNORECASE)
# The years a report, a log or a period may ask about: any hospital's records, and clear of the calendar's ends
# (a day's local bounds, the week after or the year before must still be dates).
FIRST_YEAR, LAST_YEAR = 1900, 2999
DAY_MESSAGE = (f"请输入 {FIRST_YEAR} 至 {LAST_YEAR} 年间的日期，例如 2026-11-22。",
               f"Enter a date between {FIRST_YEAR} and {LAST_YEAR}, like 2026-11-22.")
WEEK_MESSAGE = (f"请输入 {FIRST_YEAR} 至 {LAST_YEAR} 年间的 ISO 周，例如 2026-W47。",
                f"Enter an ISO week between {FIRST_YEAR} and {LAST_YEAR}, like 2026-W47.")


# --- waits -------------------------------------------------------------------------------------------


def minutes_between(start: datetime, end: datetime) -> float:
    """Minutes from `start` to `end` (never negative: a clock skew is not a negative wait)."""
    return max((end - start).total_seconds(), 0.0) / 60.0


def wait_end(called_at: datetime | None, started_at: datetime | None) -> datetime | None:
    """When a wait ended: the call, else the start of a consultation begun without a call."""
    if called_at is not None and started_at is not None:
        return min(called_at, started_at)
    return called_at or started_at


def over_target(minutes: float, target_minutes: int) -> bool:
    """Whether a wait of `minutes` is past its target (target 0: any wait at all is past it)."""
    return minutes > target_minutes


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation between closest ranks; None when empty."""
    if not values:
        return None
    if not 0 <= q <= 100:
        raise ValueError("q must be between 0 and 100")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = math.ceil(position)
    if low == high:
        return float(ordered[low])
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: Sequence[float]) -> float | None:
    """The median (None when there are no values)."""
    return percentile(values, 50)


@dataclass(frozen=True, slots=True)
class WaitStats:
    """Waits of one group against its target: how many, typical and long waits, and breaches."""

    count: int
    target_minutes: int | None
    median: float | None
    p90: float | None
    longest: float | None
    over_target: int

    @property
    def within_target(self) -> int:
        """How many waits were within the target."""
        return self.count - self.over_target

    @property
    def within_target_pct(self) -> float | None:
        """Share of waits within target, in percent (None without waits)."""
        return None if self.count == 0 else 100.0 * self.within_target / self.count


def wait_stats(minutes: Sequence[float], target_minutes: int | None) -> WaitStats:
    """Count, median, 90th percentile, longest and breaches of a group's waits (target None: no breaches)."""
    over = 0 if target_minutes is None else sum(1 for m in minutes if over_target(m, target_minutes))
    return WaitStats(
        count=len(minutes),
        target_minutes=target_minutes,
        median=median(minutes),
        p90=percentile(minutes, 90),
        longest=max(minutes) if minutes else None,
        over_target=over,
    )


@dataclass(frozen=True, slots=True)
class TargetedWait:
    """One wait with the target that applies to it (for mixed groups, each patient has their own)."""

    minutes: float
    target_minutes: int


def mixed_wait_stats(waits: Sequence[TargetedWait]) -> WaitStats:
    """Statistics over waits whose targets differ (an emergency stream's levels): breaches per own target."""
    minutes = [w.minutes for w in waits]
    targets = {w.target_minutes for w in waits}
    stats = wait_stats(minutes, None)
    return WaitStats(
        count=stats.count,
        target_minutes=targets.pop() if len(targets) == 1 else None,
        median=stats.median,
        p90=stats.p90,
        longest=stats.longest,
        over_target=sum(1 for w in waits if over_target(w.minutes, w.target_minutes)),
    )


def display_minutes(value: float | None) -> str:
    """Minutes as shown to people: whole minutes, rounded half up; a dash when there is no value."""
    if value is None:
        return "—"
    return str(math.floor(value + 0.5))


def display_pct(value: float | None) -> str:
    """A percentage with one decimal place; a dash when there is no value."""
    if value is None:
        return "—"
    return f"{value:.1f}%"


# --- restoration -------------------------------------------------------------------------------------


class Category(enum.StrEnum):
    """The volume categories of the weekly restoration report."""

    OUTPATIENT = "outpatient"
    EMERGENCY = "emergency"
    OTHER = "other"

    def label(self, lang: str) -> str:
        """Label in the given language."""
        zh, en = _CATEGORY_LABELS[self]
        return en if lang == "en" else zh


_CATEGORY_LABELS = {
    Category.OUTPATIENT: ("门诊（普通、慢病）", "Outpatient (general, chronic)"),
    Category.EMERGENCY: ("急诊", "Emergency"),
    Category.OTHER: ("其他（发热门诊、线上复诊）", "Other (fever clinic, online follow-up)"),
}

# Online follow-ups have no stream of their own: they are counted as "other", with the fever clinic whose
# volume depends on the epidemic rather than on how far routine care is restored.
ONLINE_FOLLOWUP_KEY = "online_followup"
CATEGORY_OF: Mapping[str, Category] = {
    Stream.GENERAL.value: Category.OUTPATIENT,
    Stream.CHRONIC.value: Category.OUTPATIENT,
    Stream.EMERGENCY.value: Category.EMERGENCY,
    Stream.FEVER.value: Category.OTHER,
    ONLINE_FOLLOWUP_KEY: Category.OTHER,
}


def category_totals(counts: Mapping[str, int]) -> dict[Category, int]:
    """Volumes per category from volumes per stream (and "online_followup"); unknown keys are ignored."""
    totals = dict.fromkeys(Category, 0)
    for key, count in counts.items():
        category = CATEGORY_OF.get(key)
        if category is not None:
            totals[category] += count
    return totals


def restoration_pct(current: int, baseline: int | None) -> float | None:
    """This period's volume as a percentage of the baseline; None when there is no baseline to compare."""
    if baseline is None or baseline <= 0:
        return None
    return 100.0 * current / baseline


# --- ISO weeks in the hospital's time zone -------------------------------------------------------------


@dataclass(frozen=True, order=True, slots=True)
class IsoWeek:
    """An ISO 8601 week (Monday to Sunday) of the hospital's calendar."""

    year: int
    week: int

    def __post_init__(self) -> None:
        if not 1 <= self.week <= weeks_in_year(self.year):
            raise ValueError(f"{self.year} has no ISO week {self.week}")

    @classmethod
    def parse(cls, text: str) -> IsoWeek:
        """Read "2026-W47" (also "2026W47", "2026-w7"); ValueError when it is not a real week."""
        match = _WEEK.match(text or "")
        if match is None:
            raise ValueError(f"not an ISO week like 2026-W47: {text!r}")
        if not FIRST_YEAR <= int(match.group(1)) <= LAST_YEAR:
            raise ValueError(f"years run from {FIRST_YEAR} to {LAST_YEAR} here: {text!r}")
        return cls(int(match.group(1)), int(match.group(2)))

    @classmethod
    def of(cls, day: date) -> IsoWeek:
        """The ISO week that contains `day`."""
        year, week, _ = day.isocalendar()
        return cls(year, week)

    def __str__(self) -> str:
        return f"{self.year}-W{self.week:02d}"

    @property
    def monday(self) -> date:
        """The week's first day."""
        return date.fromisocalendar(self.year, self.week, 1)

    @property
    def sunday(self) -> date:
        """The week's last day."""
        return date.fromisocalendar(self.year, self.week, 7)

    def days(self) -> list[date]:
        """The seven days, Monday first."""
        return [self.monday + timedelta(days=i) for i in range(7)]

    def shifted(self, weeks: int) -> IsoWeek:
        """The week `weeks` later (negative: earlier)."""
        return IsoWeek.of(self.monday + timedelta(weeks=weeks))

    def year_earlier(self) -> IsoWeek:
        """The same week number one ISO year earlier; week 53 compares with week 52 when that year has no 53."""
        year = self.year - 1
        return IsoWeek(year, min(self.week, weeks_in_year(year)))

    def local_bounds(self, tz: ZoneInfo) -> tuple[datetime, datetime]:
        """Start and end (aware, UTC) of the week in the time zone `tz`: Monday 00:00 to next Monday 00:00."""
        return local_day_bounds(self.monday, tz)[0], local_day_bounds(self.sunday, tz)[1]


def weeks_in_year(year: int) -> int:
    """52 or 53: the number of ISO weeks of an ISO year."""
    return date(year, 12, 28).isocalendar()[1]


def local_day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """Start and end (aware, UTC) of the local `day`; a day with a clock change is 23 or 25 hours long."""
    start = datetime.combine(day, time(0), tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def local_date(at: datetime, tz: ZoneInfo) -> date:
    """The local calendar date of an instant (naive values are read as UTC)."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(tz).date()


def local_hour(at: datetime, tz: ZoneInfo) -> int:
    """The local hour (0-23) of an instant (naive values are read as UTC)."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(tz).hour


def parse_day(text: str) -> date:
    """Read "2026-11-22"; ValueError when it is not a real date from FIRST_YEAR to LAST_YEAR."""
    day = date.fromisoformat((text or "").strip())
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        raise ValueError(f"years run from {FIRST_YEAR} to {LAST_YEAR} here: {day}")
    return day


def days_between(first: date, last: date) -> Iterator[date]:
    """Every day from `first` to `last`, both included."""
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def hourly(counts: Iterable[tuple[int, int]]) -> list[int]:
    """24 counts, one per local hour, from (hour, count) pairs (hours outside 0-23 are ignored)."""
    result = [0] * 24
    for hour, count in counts:
        if 0 <= hour < 24:
            result[hour] += count
    return result
