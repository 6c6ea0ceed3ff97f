"""Weekly baseline figures: the hospital's official volumes of weeks before the system was used.

The weekly restoration report compares a week with the same week a year earlier; for a week from before
the system was used the hospital's records are empty, so an administrator enters that week's outpatient,
emergency and other visits here. A baseline, when entered, takes precedence over the records of its week.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from triage.domain.errors import InvalidInput, NotFound
from triage.domain.reports import Category, IsoWeek
from triage.models import WeeklyBaseline, utcnow

MAX_VOLUME = 10_000_000


def list_baselines(session: Session) -> list[WeeklyBaseline]:
    """Every baseline, latest week first."""
    return list(session.execute(select(WeeklyBaseline).order_by(col(WeeklyBaseline.iso_year).desc(),
                                                                col(WeeklyBaseline.iso_week).desc())).scalars())


def find(session: Session, week_text: str) -> WeeklyBaseline | None:
    """The baseline of a week given as "2025-W47", if entered (None also for a malformed week)."""
    try:
        week = IsoWeek.parse(week_text)
    except ValueError:
        return None
    return session.execute(select(WeeklyBaseline).where(col(WeeklyBaseline.iso_year) == week.year,
                                                        col(WeeklyBaseline.iso_week) == week.week)).scalar_one_or_none()


def _volume(value: Any, field: str, errors: dict[str, tuple[str, str]]) -> int:
    text = str(value if value is not None else "").strip().replace(",", "")
    if not text.isdecimal() or int(text) > MAX_VOLUME:  # isdecimal: "²" is a digit that int() cannot read
        errors[field] = ("请输入非负整数（就诊人次）。", "Enter a whole number of visits (0 or more).")
        return 0
    return int(text)


def save_baseline(session: Session, *, week: str, outpatient: Any, emergency: Any, other: Any,
                  actor_id: int | None) -> WeeklyBaseline:
    """Enter or correct one week's baseline; commits. InvalidInput names each field at fault."""
    errors: dict[str, tuple[str, str]] = {}
    parsed: IsoWeek | None = None
    try:
        parsed = IsoWeek.parse(week)
    except ValueError:
        errors["week"] = ("请输入 ISO 周，例如 2025-W47。", "Enter an ISO week like 2025-W47.")
    values = {c: _volume(v, c.value, errors) for c, v in ((Category.OUTPATIENT, outpatient),
                                                          (Category.EMERGENCY, emergency), (Category.OTHER, other))}
    if errors:
        raise InvalidInput(errors)
    assert parsed is not None
    try:
        return _write(session, parsed, values, actor_id)
    except IntegrityError:
        # Another administrator entered the same new week in the meantime (PostgreSQL: there was no row to lock):
        # the week exists now, and this entry corrects it, as it would have a moment later.
        session.rollback()
        return _write(session, parsed, values, actor_id)


def _write(session: Session, week: IsoWeek, values: Mapping[Category, int], actor_id: int | None) -> WeeklyBaseline:
    row = session.execute(select(WeeklyBaseline).where(col(WeeklyBaseline.iso_year) == week.year,
                                                       col(WeeklyBaseline.iso_week) == week.week)
                          .with_for_update()).scalar_one_or_none()
    if row is None:
        row = WeeklyBaseline(iso_year=week.year, iso_week=week.week, outpatient=0, emergency=0, other=0)
    row.outpatient = values[Category.OUTPATIENT]
    row.emergency = values[Category.EMERGENCY]
    row.other = values[Category.OTHER]
    row.entered_by_id = actor_id
    row.entered_at = utcnow()
    session.add(row)
    session.commit()
    return row


def delete_baseline(session: Session, *, baseline_id: int) -> None:
    """Remove a week's baseline; commits."""
    row = session.get(WeeklyBaseline, baseline_id)
    if row is None:
        raise NotFound("没有这条基线数据。", "No such baseline.")
    session.delete(row)
    session.commit()
