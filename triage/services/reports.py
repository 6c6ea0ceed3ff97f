"""The reports the hospital sends: the daily report and the weekly restoration report (notice 004).

Both are computed in the database from the hospital's own records (GROUP BY over indexed columns; the
daily report reads one day's visits), in the hospital's local time. The page, the CSV file and
`flask --app wsgi report ...` all render the same `Table`s built here, so they always agree.

Counting rules (also printed under each report):
- A visit is an encounter given a ticket on site, counted once on its visit day (the local day of
  arrival), in the stream it ended up in: a re-triaged patient is one visit.
- Online follow-ups (a stable chronic patient who chose not to come) count as "other" volume.
- No-shows, left without being seen, referrals and cancellations are counted on the visit day.
- Waits run from ticket to call (or to the start of a consultation without a call). Patients still
  waiting when the report is made are included with their wait so far; patients who left without
  being seen are counted apart, not as waits.
- "Still waiting at midnight": ticketed that day and not yet called (nor gone) at local midnight.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime

from sqlalchemy import func, or_, select
from sqlmodel import Session, col

from triage.domain.errors import InvalidInput
from triage.domain.policy import Policy, Stream
from triage.domain.reports import (
    DAY_MESSAGE,
    ONLINE_FOLLOWUP_KEY,
    WEEK_MESSAGE,
    Category,
    IsoWeek,
    TargetedWait,
    WaitStats,
    category_totals,
    display_minutes,
    display_pct,
    minutes_between,
    mixed_wait_stats,
    restoration_pct,
    wait_end,
)
from triage.domain.reports import parse_day as parse_iso_day
from triage.models import Assessment, Encounter, WeeklyBaseline, utcnow

LEVELS = (1, 2, 3, 4)


def _t(lang: str, zh: str, en: str) -> str:
    return en if lang == "en" else zh


@dataclass(frozen=True)
class Table:
    """A titled table of text cells: what the page, the CSV file and the command line all show."""

    key: str
    title: str
    columns: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)
    numeric: bool = True  # the cells after the first are numbers (right-aligned on the page)


# --- daily report -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DailyRow:
    """One stream's (or one emergency level's) day."""

    key: str
    stream: Stream | None
    level: int | None
    visits: int
    online: int
    walk_in: int
    waits: WaitStats
    still_waiting_at_midnight: int
    completed: int
    no_show: int
    left: int
    referred: int
    overrides: int


@dataclass(frozen=True)
class DailyOverride:
    """A nurse's override on the day, with its reason."""

    at: datetime  # local time
    reference: str
    recommended: str
    decided: str
    reason: str


@dataclass(frozen=True)
class DailyReport:
    """The report of one local day."""

    day: date
    generated_at: datetime
    policy_version: str
    streams: list[DailyRow]
    levels: list[DailyRow]
    total: DailyRow
    prescreens: int
    directed_to_emergency: int
    cancelled: int
    online_followup: int
    overrides: list[DailyOverride]


def parse_day(text: str | None, *, today: date) -> date:
    """The day a report asks for ("" means yesterday's complete day is not assumed: today)."""
    value = (text or "").strip()
    if not value:
        return today
    try:
        return parse_iso_day(value)
    except ValueError:
        raise InvalidInput({"day": DAY_MESSAGE}) from None


def parse_week(text: str | None, *, today: date) -> IsoWeek:
    """The ISO week a report asks for ("" means the last complete week)."""
    value = (text or "").strip()
    if not value:
        return IsoWeek.of(today).shifted(-1)
    try:
        return IsoWeek.parse(value)
    except ValueError:
        raise InvalidInput({"week": WEEK_MESSAGE}) from None


def daily_report(session: Session, *, policy: Policy, day: date, now: datetime | None = None) -> DailyReport:
    """The day's volumes, waits against targets, no-shows, departures, referrals and overrides per stream."""
    now = now or utcnow()
    start, end = policy.local_day_bounds(day)
    rows = session.execute(
        select(col(Encounter.stream), col(Encounter.provisional_stream), col(Encounter.origin), col(Encounter.state),
               col(Encounter.cn_level), col(Encounter.triaged_at), col(Encounter.queued_at), col(Encounter.called_at),
               col(Encounter.started_at), col(Encounter.ended_at), col(Encounter.disposition))
        .where(col(Encounter.visit_day) == day)).all()

    groups: dict[str, dict[str, int]] = {}
    waits: dict[str, list[TargetedWait]] = {}
    counters = ("visits", "online", "walk_in", "midnight", "completed", "no_show", "left", "referred", "overrides")

    def bump(key: str, what: str, by: int = 1) -> None:
        groups.setdefault(key, dict.fromkeys(counters, 0))[what] += by

    cancelled = followup = 0
    for stream, provisional, origin, state, level, triaged, queued, called, started, ended, disposition in rows:
        key = stream or provisional or ""
        keys = [key] + ([f"emergency-{level}"] if stream == Stream.EMERGENCY.value and level in LEVELS else [])
        if state == "cancelled":
            cancelled += 1
        if disposition == ONLINE_FOLLOWUP_KEY and triaged is None:
            followup += 1
        for k in keys:
            if triaged is not None:
                bump(k, "visits")
                bump(k, "online" if origin == "online" else "walk_in")
            for name, what in (("completed", "completed"), ("no_show", "no_show"),
                               ("left_without_being_seen", "left"), ("referred", "referred")):
                if state == name:
                    bump(k, what)
        if stream is None or queued is None:
            continue
        finished = wait_end(called, started)
        if finished is None and state == "left_without_being_seen":
            if ended is None or ended >= end:
                for k in keys:
                    bump(k, "midnight")
            continue
        if finished is None or finished >= end:
            for k in keys:
                bump(k, "midnight")
        target = policy.streams[Stream(stream)].wait_target(level)
        minutes = minutes_between(queued, finished or now)
        for k in keys:
            waits.setdefault(k, []).append(TargetedWait(minutes, target))

    for final_stream, level, count in session.execute(
            select(col(Assessment.final_stream), col(Assessment.final_level), func.count())
            .where(col(Assessment.stage) == "onsite", col(Assessment.created_at) >= start,
                   col(Assessment.created_at) < end, col(Assessment.overridden).is_(True))
            .group_by(col(Assessment.final_stream), col(Assessment.final_level))):
        bump(str(final_stream or ""), "overrides", int(count))
        if final_stream == Stream.EMERGENCY.value and level in LEVELS:
            bump(f"emergency-{level}", "overrides", int(count))

    def row(key: str, stream: Stream | None, level: int | None) -> DailyRow:
        g = groups.get(key, dict.fromkeys(counters, 0))
        stats = mixed_wait_stats(waits.get(key, []))
        if stream is not None and (stream is not Stream.EMERGENCY or level is not None):
            # One target for the whole row, shown even on a day without waits.
            stats = replace(stats, target_minutes=policy.streams[stream].wait_target(level))
        return DailyRow(key, stream, level, g["visits"], g["online"], g["walk_in"], stats, g["midnight"],
                        g["completed"], g["no_show"], g["left"], g["referred"], g["overrides"])

    streams = [row(s.value, s, None) for s in Stream]
    levels = [row(f"emergency-{n}", Stream.EMERGENCY, n) for n in LEVELS]
    every_wait = [w for s in Stream for w in waits.get(s.value, [])]

    def total(name: str) -> int:
        return sum(int(getattr(r, name)) for r in streams)

    total_row = DailyRow("total", None, None, total("visits"), total("online"), total("walk_in"),
                         mixed_wait_stats(every_wait), total("still_waiting_at_midnight"), total("completed"),
                         total("no_show"), total("left"), total("referred"), total("overrides"))
    prescreens = session.execute(
        select(func.count()).select_from(Encounter)
        .where(col(Encounter.created_at) >= start, col(Encounter.created_at) < end,
               col(Encounter.origin) == "online")).scalar_one()
    directed = session.execute(
        select(func.count()).select_from(Encounter)
        .where(col(Encounter.created_at) >= start, col(Encounter.created_at) < end,
               col(Encounter.state) == "directed_to_emergency")).scalar_one()
    overrides = [DailyOverride(policy.local(at), ref, _decision(rs, rl), _decision(fs, fl), reason or "")
                 for at, ref, rs, rl, fs, fl, reason in session.execute(
                     select(col(Assessment.created_at), col(Encounter.reference), col(Assessment.recommended_stream),
                            col(Assessment.recommended_level), col(Assessment.final_stream),
                            col(Assessment.final_level), col(Assessment.override_reason))
                     .join(Encounter, col(Encounter.id) == col(Assessment.encounter_id))
                     .where(col(Assessment.stage) == "onsite", col(Assessment.created_at) >= start,
                            col(Assessment.created_at) < end, col(Assessment.overridden).is_(True))
                     .order_by(col(Assessment.created_at), col(Assessment.id)).limit(500))]
    return DailyReport(day=day, generated_at=now, policy_version=policy.version, streams=streams, levels=levels,
                       total=total_row, prescreens=int(prescreens), directed_to_emergency=int(directed),
                       cancelled=cancelled, online_followup=followup, overrides=overrides)


def _decision(stream: str | None, level: int | None) -> str:
    if not stream:
        return ""
    return f"{stream}-{level}" if level else stream


def _stream_label(key: str, lang: str) -> str:
    if key == "total":
        return _t(lang, "合计", "Total")
    if key == ONLINE_FOLLOWUP_KEY:
        return _t(lang, "线上复诊", "Online follow-up")
    stream, _, level = key.partition("-")
    try:
        label = Stream(stream).label(lang)
    except ValueError:
        return key
    return f"{label} {_t(lang, f'{level}级', f'level {level}')}" if level else label


def decision_label(code: str, lang: str) -> str:
    """A stored decision code ("emergency-2", "fever") in words."""
    return _stream_label(code, lang) if code else "—"


def _target_text(stats: WaitStats, lang: str) -> str:
    if stats.target_minutes is None:
        return _t(lang, "按分级", "by level")
    return str(stats.target_minutes)


def daily_tables(report: DailyReport, lang: str) -> list[Table]:
    """The daily report as tables, in `lang`."""
    columns = [
        _t(lang, "分流", "Stream"), _t(lang, "就诊人次", "Visits"), _t(lang, "线上预检", "Pre-screened online"),
        _t(lang, "现场挂号", "Walk-in"), _t(lang, "目标（分钟）", "Target (min)"),
        _t(lang, "候诊中位数（分钟）", "Median wait (min)"), _t(lang, "第90百分位（分钟）", "90th percentile (min)"),
        _t(lang, "最长（分钟）", "Longest (min)"), _t(lang, "超时人数", "Over target"),
        _t(lang, "目标内比例", "Within target"), _t(lang, "午夜仍在候诊", "Still waiting at midnight"),
        _t(lang, "已完成", "Completed"), _t(lang, "未到诊", "No-shows"),
        _t(lang, "未就诊离开", "Left without being seen"), _t(lang, "转诊", "Referred"),
        _t(lang, "更改建议", "Overrides"),
    ]

    def cells(r: DailyRow) -> list[str]:
        w = r.waits
        return [_stream_label(r.key, lang), str(r.visits), str(r.online), str(r.walk_in), _target_text(w, lang),
                display_minutes(w.median), display_minutes(w.p90), display_minutes(w.longest), str(w.over_target),
                display_pct(w.within_target_pct), str(r.still_waiting_at_midnight), str(r.completed),
                str(r.no_show), str(r.left), str(r.referred), str(r.overrides)]

    main = Table("streams", _t(lang, "各分流", "By stream"), columns,
                 [cells(r) for r in report.streams] + [cells(report.total)],
                 notes=[_t(lang, "就诊人次：现场发号的就诊，按就诊日计一次（重新分诊的患者计一次）。",
                           "Visits: tickets issued on site, counted once on the visit day (a re-triaged patient "
                           "counts once)."),
                        _t(lang, "候诊时间：从发号到叫号（或未叫号直接就诊）；仍在候诊者按至今时间计；"
                                 "未就诊离开者不计入候诊时间。",
                           "Waits: from ticket to call (or to a consultation begun without a call); patients still "
                           "waiting count with their wait so far; those who left without being seen are not "
                           "counted as waits.")])
    levels = Table("levels", _t(lang, "急诊各级", "Emergency by level"), columns, [cells(r) for r in report.levels])
    other = Table("other", _t(lang, "其他", "Other figures"),
                  [_t(lang, "项目", "Item"), _t(lang, "数量", "Count")],
                  [[_t(lang, "当日提交的线上预检", "Online pre-screens submitted"), str(report.prescreens)],
                   [_t(lang, "线上指引立即急诊", "Told online to go to emergency now"),
                    str(report.directed_to_emergency)],
                   [_t(lang, "取消的预约", "Cancelled bookings"), str(report.cancelled)],
                   [_t(lang, "改为线上复诊", "Online follow-ups instead of a visit"), str(report.online_followup)]])
    overrides = Table("overrides", _t(lang, "更改系统建议及原因", "Overrides and their reasons"),
                      [_t(lang, "时间", "Time"), _t(lang, "编号", "Reference"), _t(lang, "系统建议", "Recommended"),
                       _t(lang, "护士决定", "Decided"), _t(lang, "原因", "Reason")],
                      [[o.at.strftime("%H:%M"), o.reference, decision_label(o.recommended, lang),
                        decision_label(o.decided, lang), o.reason] for o in report.overrides], numeric=False)
    return [main, levels, other, overrides]


# --- weekly restoration report --------------------------------------------------------------------------


@dataclass(frozen=True)
class VolumeRow:
    """One category's volume this week against the same week a year earlier."""

    category: Category | None  # None: the total
    current: int
    previous: int | None
    pct: float | None


@dataclass(frozen=True)
class DayVolumes:
    """One day of the week against the same ISO weekday a year earlier (from records only)."""

    day: date
    current: Mapping[Category, int]
    previous_day: date
    previous: Mapping[Category, int] | None


@dataclass(frozen=True)
class WeeklyReport:
    """The weekly restoration report."""

    week: IsoWeek
    compared_with: IsoWeek
    source: str  # "records" | "baseline" | "none": where the year-earlier figures come from
    rows: list[VolumeRow]
    total: VolumeRow
    streams: Mapping[str, int]  # this week's volume per stream (and online follow-up)
    previous_streams: Mapping[str, int] | None
    days: list[DayVolumes]
    complete: bool  # False while the week is not over
    generated_at: datetime


def _volumes(session: Session, first: date, last: date) -> dict[tuple[date, str], int]:
    """Visits per (visit day, stream) in [first, last] (one GROUP BY on the visit-day index)."""
    rows = session.execute(
        select(col(Encounter.visit_day), col(Encounter.stream), func.count())
        .where(col(Encounter.visit_day) >= first, col(Encounter.visit_day) <= last,
               or_(col(Encounter.triaged_at).is_not(None), col(Encounter.disposition) == ONLINE_FOLLOWUP_KEY))
        .group_by(col(Encounter.visit_day), col(Encounter.stream)))
    result: dict[tuple[date, str], int] = {}
    for day, stream, count in rows:
        key = (day if isinstance(day, date) else date.fromisoformat(str(day)), str(stream or ONLINE_FOLLOWUP_KEY))
        result[key] = result.get(key, 0) + int(count)
    return result


def _by_stream(volumes: Mapping[tuple[date, str], int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for (_, key), count in volumes.items():
        out[key] = out.get(key, 0) + count
    return out


def weekly_report(session: Session, *, policy: Policy, week: IsoWeek, now: datetime | None = None) -> WeeklyReport:
    """Outpatient, emergency and other volumes of `week` as a percentage of the same week a year earlier.

    The year-earlier figures come from a baseline an administrator entered for that week, if any (the
    hospital's official figures from before the system was used); otherwise from the system's records.
    """
    now = now or utcnow()
    previous = week.year_earlier()
    current = _volumes(session, week.monday, week.sunday)
    earlier = _volumes(session, previous.monday, previous.sunday)
    baseline = session.execute(
        select(WeeklyBaseline).where(col(WeeklyBaseline.iso_year) == previous.year,
                                     col(WeeklyBaseline.iso_week) == previous.week)).scalar_one_or_none()
    streams = _by_stream(current)
    totals = category_totals(streams)
    previous_streams: dict[str, int] | None = _by_stream(earlier) if earlier else None
    if baseline is not None:
        source = "baseline"
        before: dict[Category, int] | None = {Category.OUTPATIENT: baseline.outpatient,
                                              Category.EMERGENCY: baseline.emergency, Category.OTHER: baseline.other}
    elif previous_streams:
        source = "records"
        before = category_totals(previous_streams)
    else:
        source = "none"
        before = None
    rows = [VolumeRow(c, totals[c], before[c] if before else None,
                      restoration_pct(totals[c], before[c] if before else None)) for c in Category]
    total_now = sum(totals.values())
    total_before = sum(before.values()) if before else None
    days = []
    for offset, day in enumerate(week.days()):
        previous_day = previous.days()[offset]
        day_now = category_totals({k: v for (d, k), v in current.items() if d == day})
        day_before = category_totals({k: v for (d, k), v in earlier.items() if d == previous_day}) \
            if source == "records" else None
        days.append(DayVolumes(day, day_now, previous_day, day_before))
    return WeeklyReport(
        week=week, compared_with=previous, source=source, rows=rows,
        total=VolumeRow(None, total_now, total_before, restoration_pct(total_now, total_before)),
        streams=streams, previous_streams=previous_streams if source == "records" else None, days=days,
        complete=policy.local(now).date() > week.sunday, generated_at=now,
    )


def _source_text(source: str, lang: str) -> str:
    return {"records": _t(lang, "本院系统记录", "the hospital's records"),
            "baseline": _t(lang, "管理员录入的基线数据", "baseline figures entered by an administrator"),
            "none": _t(lang, "无数据", "no figures")}[source]


def _category_label(category: Category | None, lang: str) -> str:
    return category.label(lang) if category is not None else _t(lang, "合计", "Total")


def weekly_tables(report: WeeklyReport, lang: str) -> list[Table]:
    """The weekly restoration report as tables, in `lang`."""
    week, previous = str(report.week), str(report.compared_with)
    main = Table(
        "restoration", _t(lang, "恢复情况", "Restoration"),
        [_t(lang, "类别", "Category"), _t(lang, f"本周 {week}", f"This week {week}"),
         _t(lang, f"去年同期 {previous}", f"Same week a year earlier {previous}"),
         _t(lang, "恢复比例", "Restoration")],
        [[_category_label(r.category, lang), str(r.current), "—" if r.previous is None else str(r.previous),
          display_pct(r.pct)] for r in [*report.rows, report.total]],
        notes=[
            _t(lang, f"去年同期数据来源：{_source_text(report.source, lang)}。",
               f"Year-earlier figures from {_source_text(report.source, lang)}."),
            _t(lang, "门诊 = 普通门诊 + 慢病门诊；其他 = 发热门诊 + 线上复诊；就诊人次按就诊日计，每次就诊计一次。",
               "Outpatient = general + chronic care; other = fever clinic + online follow-up; each visit "
               "counts once, on its visit day."),
        ] + ([] if report.complete else [_t(lang, "本周尚未结束：数字仍会增加。",
                                            "This week is not over yet: the figures will still grow.")]),
    )
    stream_keys = [s.value for s in Stream] + [ONLINE_FOLLOWUP_KEY]
    detail = Table(
        "streams", _t(lang, "各分流", "By stream"),
        [_t(lang, "分流", "Stream"), _t(lang, "本周", "This week"), _t(lang, "去年同期", "A year earlier")],
        [[_stream_label(k, lang), str(report.streams.get(k, 0)),
          "—" if report.previous_streams is None else str(report.previous_streams.get(k, 0))] for k in stream_keys])
    day_columns = [_t(lang, "日期", "Day")]
    for c in Category:
        day_columns += [c.label(lang), _t(lang, "去年同期", "A year earlier")]
    by_day = Table(
        "days", _t(lang, "逐日", "Day by day"), day_columns,
        [[d.day.isoformat()] + [x for c in Category for x in (
            str(d.current.get(c, 0)), "—" if d.previous is None else str(d.previous.get(c, 0)))]
         for d in report.days],
        notes=[_t(lang, "逐日对比仅在去年同期数据来自本院系统记录时提供。",
                  "Day-by-day comparison is available only when the year-earlier figures come from the records.")],
    )
    return [main, detail, by_day]


# --- text and CSV -------------------------------------------------------------------------------------------


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int, right: bool) -> str:
    space = " " * max(width - _width(text), 0)
    return space + text if right else text + space


def tables_text(title: str, tables: Iterable[Table]) -> str:
    """Tables as aligned plain text, for the command line (numbers right-aligned)."""
    out = [title, "=" * _width(title), ""]
    for table in tables:
        out += [table.title, "-" * _width(table.title)]
        if not table.rows:
            out += ["—", ""]
            continue
        widths = [max(_width(c) for c in column) for column in zip(table.columns, *table.rows, strict=True)]
        numeric = [all(_is_number(row[i]) for row in table.rows) for i in range(len(table.columns))]
        for line in [table.columns, *table.rows]:
            out.append("  ".join(_pad(cell, widths[i], numeric[i]) for i, cell in enumerate(line)).rstrip())
        out += [f"* {note}" for note in table.notes]
        out.append("")
    return "\n".join(out)


def _is_number(text: str) -> bool:
    return text == "—" or text.rstrip("%").replace(".", "", 1).isdigit()


def tables_csv(title: str, tables: Sequence[Table]) -> str:
    """Tables as one CSV document: a title line, then each table under its own title, a blank line between."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([_csv_safe(title)])
    for table in tables:
        writer.writerow([])
        writer.writerow([_csv_safe(table.title)])
        writer.writerow([_csv_safe(c) for c in table.columns])
        for row in table.rows:
            writer.writerow([_csv_safe(c) for c in row])
        for note in table.notes:
            writer.writerow([_csv_safe(note)])
    return buffer.getvalue()


def _csv_safe(text: str) -> str:
    # A cell starting with = + - @ is run as a formula by spreadsheets; free text (override reasons) could.
    if text and text[0] in "=+-@\t\r" and not _is_number(text.lstrip("-")):
        return "'" + text
    return text


def daily_title(report: DailyReport, hospital: str, lang: str) -> str:
    """The daily report's heading."""
    return _t(lang, f"{hospital} 日报 {report.day.isoformat()}", f"{hospital} daily report {report.day.isoformat()}")


def weekly_title(report: WeeklyReport, hospital: str, lang: str) -> str:
    """The weekly report's heading."""
    first, last = report.week.monday.isoformat(), report.week.sunday.isoformat()
    return _t(lang, f"{hospital} 医疗服务恢复情况周报 {report.week}（{first} 至 {last}）",
              f"{hospital} weekly restoration report {report.week} ({first} to {last})")
