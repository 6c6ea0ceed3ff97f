"""Time slots for online booking: what is free under the current policy, and taking a place safely.

The policy's capacity per slot is the truth (a supervisor's cut applies at once, also to slot rows made
before it). Listing never writes; booking creates the day's rows if needed, locks the chosen row (a
row lock on PostgreSQL; SQLite's write transaction holds the database lock) and lets the workflow's
`hold_slot` effect take the place with an atomic conditional update.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import bindparam, select
from sqlmodel import Session

from triage.db import run
from triage.domain.errors import Conflict, InvalidInput
from triage.domain.policy import Policy, Stream
from triage.services import store
from triage.services.core import ensure_slots
from triage.services.store import SLOT, SlotRecord

SLOT_KEY_FORMAT = "%Y%m%dT%H%M"  # local start time of a slot, as a form value: 20261123T0900


def aware(at: datetime) -> datetime:
    """An aware datetime (a naive one is read as UTC)."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def booking_window(policy: Policy, now: datetime) -> tuple[date, date]:
    """The first and last local day a patient may book online."""
    today = policy.local(now).date()
    return today, today + timedelta(days=policy.booking_days_ahead)


_WEEKDAYS_ZH = "一二三四五六日"
_WEEKDAYS_EN = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def describe_day(day: date, lang: str, *, today: date | None = None) -> str:
    """A day as people say it: 11月23日（周一） / Mon 23 Nov, with today/tomorrow named."""
    if lang == "en":
        text = f"{_WEEKDAYS_EN[day.weekday()]} {day.day} {_MONTHS_EN[day.month - 1]}"
        named = {0: "Today", 1: "Tomorrow"}
    else:
        text = f"{day.month}月{day.day}日（周{_WEEKDAYS_ZH[day.weekday()]}）"
        named = {0: "今天", 1: "明天"}
    if today is not None and (day - today).days in named:
        return f"{named[(day - today).days]} · {text}" if lang == "en" else f"{named[(day - today).days]} {text}"
    return text


def day_parts(day: date, lang: str, *, today: date | None = None) -> tuple[str, str]:
    """A day as two short lines for a button: ("Tomorrow", "23 Nov") / ("周二", "11月24日")."""
    offset = (day - today).days if today is not None else None
    if lang == "en":
        name = {0: "Today", 1: "Tomorrow"}.get(offset, _WEEKDAYS_EN[day.weekday()]) if offset is not None \
            else _WEEKDAYS_EN[day.weekday()]
        return name, f"{day.day} {_MONTHS_EN[day.month - 1]}"
    name = {0: "今天", 1: "明天"}.get(offset, "") if offset is not None else ""
    return name or f"周{_WEEKDAYS_ZH[day.weekday()]}", f"{day.month}月{day.day}日"


def describe_slot(starts_at: datetime, ends_at: datetime, policy: Policy, lang: str,
                  *, today: date | None = None) -> str:
    """A slot in the hospital's local time: 11月23日（周一）09:00–09:30."""
    start, end = policy.local(starts_at), policy.local(ends_at)
    return f"{describe_day(start.date(), lang, today=today)} {start:%H:%M}–{end:%H:%M}"


# --- offers and booking ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlotOffer:
    """A bookable slot as the patient sees it: times, capacity under the current policy, places left."""

    stream: Stream
    day: date
    starts_at: datetime  # aware UTC
    ends_at: datetime
    local_start: datetime
    capacity: int
    booked: int

    @property
    def free(self) -> int:
        """Places left."""
        return max(0, self.capacity - self.booked)

    @property
    def key(self) -> str:
        """The form value that names this slot: its local start, 20261123T0900."""
        return self.local_start.strftime(SLOT_KEY_FORMAT)


def parse_slot_key(key: str | None, policy: Policy) -> datetime | None:
    """The aware UTC start named by a slot key (local 20261123T0900, or an ISO time), or None."""
    text = (key or "").strip()
    if not text:
        return None
    try:
        named = datetime.strptime(text, SLOT_KEY_FORMAT)
    except ValueError:
        try:
            named = datetime.fromisoformat(text)
        except ValueError:
            return None
    try:
        return named.replace(tzinfo=named.tzinfo or policy.timezone).astimezone(UTC)
    except OverflowError:  # "0001-01-01 00:00" east of UTC: no slot is that early
        return None


def is_bookable(policy: Policy, stream: Stream) -> bool:
    """Whether patients book slots in this stream online (never emergency: it is open to all, now)."""
    spec = policy.streams[stream]
    return stream is not Stream.EMERGENCY and spec.bookable_online and spec.capacity_per_slot > 0


_DAY = select(SLOT).where(SLOT.c.stream == bindparam("stream"), SLOT.c.day == bindparam("day")).order_by(SLOT.c.id)
_AT = select(SLOT).where(SLOT.c.stream == bindparam("stream"), SLOT.c.starts_at == bindparam("starts_at"))
_LOCK = select(SLOT).where(SLOT.c.id == bindparam("id")).with_for_update(key_share=True)
_LOCK_MANY = (select(SLOT.c.id).where(SLOT.c.id.in_(bindparam("ids", expanding=True))).order_by(SLOT.c.id)
              .with_for_update(key_share=True))


def day_slots(session: Session, stream: Stream, day: date) -> list[SlotRecord]:
    """The slot rows of a stream's day, in id order."""
    return [SlotRecord(*row) for row in run(store.connection(session), _DAY, {"stream": stream.value, "day": day})]


def free_slots(session: Session, policy: Policy, stream: Stream, day: date, now: datetime,
               *, include_full: bool = False) -> list[SlotOffer]:
    """The stream's slots on `day` that have not started, with places left (read-only; no rows created)."""
    first, last = booking_window(policy, now)
    if not is_bookable(policy, stream) or not first <= day <= last:
        return []
    return _offers(policy, stream, day, now, day_slots(session, stream, day), include_full=include_full)


def _offers(policy: Policy, stream: Stream, day: date, now: datetime, rows: Iterable[SlotRecord],
            *, include_full: bool = False) -> list[SlotOffer]:
    """The policy's slots on `day` that have not started, with their bookings from `rows`."""
    spec = policy.streams[stream]
    booked = {aware(row.starts_at): row.booked for row in rows}
    offers = []
    for start in spec.slot_starts(day):
        local = datetime.combine(day, start, tzinfo=policy.timezone)
        begin = local.astimezone(UTC)
        if begin <= now:
            continue
        # The policy's capacity is the truth: a supervisor's cut applies to rows created before it.
        offer = SlotOffer(stream=stream, day=day, starts_at=begin,
                          ends_at=begin + timedelta(minutes=spec.slot_minutes), local_start=local,
                          capacity=spec.capacity_per_slot, booked=booked.get(begin, 0))
        if include_full or offer.free > 0:
            offers.append(offer)
    return offers


def next_free_slots(session: Session, policy: Policy, stream: Stream, *, after: date, now: datetime,
                    limit: int = 12) -> list[SlotOffer]:
    """Free slots on the days after `after`, within the booking window, earliest first."""
    _, last = booking_window(policy, now)
    found: list[SlotOffer] = []
    day = after + timedelta(days=1)
    while day <= last and len(found) < limit:
        found.extend(free_slots(session, policy, stream, day, now))
        day += timedelta(days=1)
    return found[:limit]


def days_with_free_slots(session: Session, policy: Policy, stream: Stream, now: datetime) -> list[date]:
    """The days of the booking window on which the stream has a free slot."""
    first, last = booking_window(policy, now)
    days = []
    day = first
    while day <= last:
        if free_slots(session, policy, stream, day, now):
            days.append(day)
        day += timedelta(days=1)
    return days


def slot_for_booking(session: Session, policy: Policy, stream: Stream, starts_at: datetime, now: datetime,
                     *, also_lock: Iterable[int | None] = ()) -> SlotRecord:
    """The slot row starting at `starts_at`, created if needed and locked (its capacity is the policy's).

    `also_lock` names other slot rows the caller will change (the slot a patient moves from): all are
    locked in id order, so two patients swapping slots cannot deadlock on PostgreSQL.
    """
    local = policy.local(starts_at)
    day = local.date()
    first, last = booking_window(policy, now)
    spec = policy.streams[stream]
    if not is_bookable(policy, stream) or not first <= day <= last or local.time() not in spec.slot_starts(day):
        raise InvalidInput({"slot": ("这个时段不存在或不可预约，请从列表中选择。",
                                     "There is no bookable slot at that time; choose one from the list.")})
    if starts_at <= now:
        raise Conflict("这个时段已经开始，请选择之后的时段。", "This slot has already started; choose a later one.",
                       field="slot")
    ensure_slots(session, policy, stream, day)
    conn = store.connection(session)
    row = run(conn, _AT, {"stream": stream.value, "starts_at": starts_at}).one()
    lock_slots(session, [row[0], *also_lock])
    slot = SlotRecord(*run(conn, _LOCK, {"id": row[0]}).one())
    return replace(slot, capacity=spec.capacity_per_slot)


def lock_slots(session: Session, ids: Iterable[int | None]) -> None:
    """Lock slot rows in id order, so two patients swapping slots cannot deadlock (PostgreSQL)."""
    wanted = sorted({i for i in ids if i is not None})
    if len(wanted) > 1:
        run(store.connection(session), _LOCK_MANY, {"ids": wanted}).all()


_STARTS: dict[tuple[Any, ...], frozenset[datetime]] = {}


def _utc_starts(policy: Policy, stream: Stream, day: date) -> frozenset[datetime]:
    """The UTC starts of the stream's slots on `day` (computed once per policy hours and day)."""
    spec = policy.streams[stream]
    key = (spec.hours, spec.slot_minutes, spec.bookable_online, policy.timezone, day)
    found = _STARTS.get(key)
    if found is None:
        if len(_STARTS) > 512:
            _STARTS.clear()
        found = _STARTS[key] = frozenset(datetime.combine(day, start, tzinfo=policy.timezone).astimezone(UTC)
                                         for start in spec.slot_starts(day))
    return found


_NEXT_FREE = (select(SLOT).where(SLOT.c.stream == bindparam("stream"), SLOT.c.day == bindparam("day"),
                                  SLOT.c.starts_at > bindparam("after"), SLOT.c.starts_at < bindparam("before"),
                                  SLOT.c.booked < bindparam("cap"))
              .order_by(SLOT.c.starts_at).limit(1).with_for_update(key_share=True))


def first_free_slot(session: Session, policy: Policy, stream: Stream, day: date, now: datetime) -> SlotRecord | None:
    """The earliest slot on `day` with a place left, locked (PostgreSQL), or None.

    Slots in outpatient hours come first: a 24-hour fever clinic should not hand a patient who asked
    for "tomorrow" a slot at midnight; night slots are there for those who choose them.
    One indexed statement finds and locks it (the day's rows are created on its first booking). On PostgreSQL
    only that row is locked: patients booking the same first slot wait for each other only until the booking
    before theirs commits, and the row is checked again then (a slot just filled is passed over for the next).
    SQLite's write transaction holds the database already.
    """
    first, last = booking_window(policy, now)
    spec = policy.streams[stream]
    if not is_bookable(policy, stream) or not first <= day <= last:
        return None
    starts = _utc_starts(policy, stream, day)
    if not starts:
        return None
    windows = []
    hours = policy.outpatient_hours
    if hours.is_open_on(day):
        midnight = datetime.combine(day, time(0), tzinfo=policy.timezone)
        opens = datetime.combine(day, hours.opens, tzinfo=policy.timezone).astimezone(UTC)
        closes = (midnight + timedelta(minutes=hours.closes_minutes)).astimezone(UTC)
        windows.append((max(now, opens - timedelta(microseconds=1)), closes))
    windows.append((now, max(starts) + timedelta(seconds=1)))
    conn = store.connection(session)
    capacity = spec.capacity_per_slot
    params = {"stream": stream.value, "day": day, "cap": capacity}
    for _ in range(2):  # a second look once the day's rows are created
        for after, before in windows:
            while (row := run(conn, _NEXT_FREE, {**params, "after": after, "before": before}).first()) is not None:
                slot = SlotRecord(*row)
                if aware(slot.starts_at) in starts:
                    return replace(slot, capacity=capacity)
                after = slot.starts_at  # a row of an earlier policy's slot times: not offered
        if not ensure_slots(session, policy, stream, day):
            return None
    return None


def chosen_slot(session: Session, policy: Policy, stream: Stream, key: str, now: datetime,
                *, also_lock: Iterable[int | None] = ()) -> SlotRecord:
    """Lock the slot a patient chose (by its key) or raise: unknown slot (422), full or started (409)."""
    starts_at = parse_slot_key(key, policy)
    if starts_at is None:
        raise InvalidInput({"slot": ("请选择一个时段。", "Choose a time slot.")})
    slot = slot_for_booking(session, policy, stream, starts_at, now, also_lock=also_lock)
    if slot.booked >= slot.capacity:
        raise Conflict("这个时段刚刚约满，请选择其他时段。", "This slot has just been filled; choose another.",
                       field="slot")
    return slot


