"""Bulk generation of realistic past encounters, for demos, reports and benchmarks.

`generate_encounters` writes N encounters spread over the days up to `end_day` (about thirteen months,
so every recent week has the same week a year earlier to compare with), with the hospital's stream mix,
opening hours, weekday and season patterns, an epidemic dip and its recovery, and waits, no-shows,
patients who left, referrals and cancellations. For the most recent `history_days` days it also writes
the audit trail (TransitionLog) and the online and on-site assessments, so the audit and quality pages
have something to show; older encounters carry their timestamps only, which is all the reports need.

Speed: rows are built as plain tuples with pre-formatted timestamps and written in one transaction,
with sqlite3 `executemany` in large batches on SQLite and `COPY` on PostgreSQL. A million encounters
take well under a minute on either. The row layout matches what the services write (`transition`,
`issue_ticket`...), so nothing downstream can tell a generated encounter from a real one.
"""

from __future__ import annotations

import bisect
import json
import math
import multiprocessing
import random
import secrets
import time as clock
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlmodel import Session, col, select

from triage.domain.policy import Policy, Stream
from triage.domain.reports import local_day_bounds
from triage.models import Slot, utcnow
from triage.services.core import ensure_slots
from triage.services.staff import digest

REFERENCE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

# Share of visits per stream on an ordinary day (before weekday, season and epidemic effects).
STREAM_SHARE = {Stream.GENERAL: 0.50, Stream.CHRONIC: 0.18, Stream.EMERGENCY: 0.20, Stream.FEVER: 0.12}
# Share pre-screened online and booked, per stream.
ONLINE_SHARE = {Stream.GENERAL: 0.45, Stream.CHRONIC: 0.55, Stream.EMERGENCY: 0.03, Stream.FEVER: 0.20}
EMERGENCY_LEVELS = ((1, 0.02), (2, 0.10), (3, 0.38), (4, 0.50))
# Median wait (minutes) and spread of the log-normal wait per stream / emergency level.
WAITS = {"fever": (13.0, 0.7), "general": (27.0, 0.6), "chronic": (19.0, 0.6),
         1: (0.4, 0.8), 2: (5.0, 0.6), 3: (17.0, 0.6), 4: (55.0, 0.8)}
# Arrivals per local hour (relative), for streams open around the clock; clinics use their opening hours.
ROUND_THE_CLOCK = (2, 1.5, 1.2, 1, 1, 1.2, 2, 3.5, 6, 7, 7, 6.5, 5, 5, 5.5, 5.5, 5, 5, 5, 4.5, 4, 3.5, 3, 2.5)
CLINIC_HOURS = (0, 0, 0, 0, 0, 0, 0, 2, 9, 10, 9, 7, 3, 5, 7, 6, 4, 1, 0, 0, 0, 0, 0, 0)
NAMES_FAMILY = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
NAMES_GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国红梅志强玉兰海燕建华丹萍鹏辉宇浩然子轩欣怡"
# Reasons nurses give for changing the engine's recommendation, by the stream they decided on.
OVERRIDE_REASONS = {
    Stream.FEVER: ("体温复测 38.2℃，改送发热门诊", "同住家属近日发热，改送发热门诊"),
    Stream.EMERGENCY: ("胸痛持续，心电图异常，升级急诊", "疼痛评分复评 8 分", "血氧复测 93%",
                       "既往哮喘发作史，喘息明显"),
    Stream.GENERAL: ("外伤需清创缝合，生命体征平稳", "症状轻微，无需急诊处理"),
    Stream.CHRONIC: ("患者要求慢病续方，病情稳定", "糖尿病复诊取药，血糖平稳"),
}
BATCH = 20_000


@dataclass(frozen=True)
class BulkResult:
    """What was written, and how long it took."""

    encounters: int
    transitions: int
    assessments: int
    first_day: date
    last_day: date
    seconds: float


class _Formats:
    """Timestamps and dates in the text form each database stores or parses fastest."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        suffix = ".000000" if dialect == "sqlite" else "+00"
        self._clock = [f"{h:02d}:{m:02d}:{s:02d}{suffix}" for h in range(24) for m in range(60) for s in range(60)]
        self._days: dict[int, str] = {}
        self.true: Any = 1 if dialect == "sqlite" else True
        self.false: Any = 0 if dialect == "sqlite" else False

    def ts(self, epoch: int | None) -> str | None:
        """An epoch second (UTC) as a timestamp literal."""
        if epoch is None:
            return None
        day, second = divmod(epoch, 86400)
        prefix = self._days.get(day)
        if prefix is None:
            prefix = (date(1970, 1, 1) + timedelta(days=day)).isoformat() + " "
            self._days[day] = prefix
        return prefix + self._clock[second]

    @staticmethod
    def day(value: date | None) -> str | None:
        """A date literal."""
        return None if value is None else value.isoformat()


def _epoch(at: datetime) -> int:
    return int(at.timestamp())


def _pick(cumulative: Sequence[float], rng: random.Random) -> int:
    return bisect.bisect_right(cumulative, rng.random() * cumulative[-1])


def _cumulative(weights: Sequence[float]) -> list[float]:
    total = 0.0
    out = []
    for w in weights:
        total += w
        out.append(total)
    return out


def _season(day: date, stream: Stream) -> float:
    """Winter brings fever and respiratory visits; the rest of the year is flatter."""
    phase = math.cos(2 * math.pi * (day.timetuple().tm_yday - 15) / 365.25)
    return 1 + (0.45 if stream is Stream.FEVER else 0.08) * phase


def _epidemic(progress: float, stream: Stream) -> float:
    """Routine care dips in the epidemic months and recovers; the fever clinic runs the other way."""
    dip = math.exp(-(((progress - 0.45) / 0.12) ** 2))
    if stream is Stream.FEVER:
        return 1 + 1.2 * dip
    recovery = 0.12 * max(0.0, progress - 0.45)
    return 1 - 0.55 * dip - recovery * (0.3 if stream is Stream.EMERGENCY else 1.0)


def _weekday(day: date, stream: Stream) -> float:
    if stream in (Stream.GENERAL, Stream.CHRONIC):
        return 1.15 if day.weekday() == 0 else 1.0
    return 1.1 if day.weekday() >= 5 else 1.0


def _hour_weights(policy: Policy, stream: Stream, day: date) -> list[float]:
    spec = policy.streams[stream]
    if not spec.hours.is_open_on(day):
        return [0.0] * 24
    opens = spec.hours.opens.hour
    closes = math.ceil(spec.hours.closes_minutes / 60)
    shape = ROUND_THE_CLOCK if (opens == 0 and closes >= 24) else CLINIC_HOURS
    return [float(shape[h]) if opens <= h < closes else 0.0 for h in range(24)]


def _allocate(n: int, weights: Sequence[float]) -> list[int]:
    """Split n into parts proportional to weights, exactly (largest remainders)."""
    total = sum(weights)
    if total <= 0:
        return [0] * len(weights)
    raw = [n * w / total for w in weights]
    parts = [int(r) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: raw[i] - parts[i], reverse=True)
    for i in order[: n - sum(parts)]:
        parts[i] += 1
    return parts


def _connection(target: Session | Engine | Connection) -> tuple[Connection, Callable[[], None]]:
    if isinstance(target, Session):
        return target.connection(), target.commit
    if isinstance(target, Engine):
        conn = target.connect()
        conn.begin()

        def finish() -> None:
            conn.commit()
            conn.close()

        return conn, finish
    return target, lambda: None


class _Writer:
    """Writes batches of rows: sqlite3 executemany, or PostgreSQL COPY."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.dialect = conn.dialect.name
        self.raw: Any = conn.connection.dbapi_connection
        assert self.raw is not None
        if self.dialect == "sqlite":
            # Keep the indexes being written in memory (set back afterwards for the pooled connection).
            self.raw.execute("PRAGMA cache_size = -262144")

    def write(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        """Write rows now, in the caller's thread."""
        if not rows:
            return
        cursor = self.raw.cursor()
        try:
            if self.dialect == "postgresql":
                with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    copy.write(_copy_text(rows))
            else:
                marks = ", ".join("?" for _ in columns)
                # Table and column names are this module's constants, never input.
                cursor.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)  # noqa: S608  # nosec B608
        finally:
            cursor.close()

    def finish(self, tables: Sequence[str]) -> None:
        """Restore connection settings; move PostgreSQL's id sequences past the explicit ids."""
        if self.dialect == "sqlite":
            self.raw.execute("PRAGMA cache_size = -2000")
        if self.dialect != "postgresql":
            return
        cursor = self.raw.cursor()
        try:
            for table in tables:
                sql = (f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608 - constant names  # nosec B608
                       f"GREATEST((SELECT COALESCE(MAX(id), 0) FROM {table}), 1))")
                cursor.execute(sql)
        finally:
            cursor.close()


ENCOUNTER_COLUMNS = (
    "id", "reference", "origin", "state", "workflow_name", "workflow_version", "policy_version", "version",
    "patient_name", "age_years", "sex", "patient_lang", "provisional_stream", "stream", "cn_level",
    "priority_flags", "isolation_required", "acuity_sort", "priority_sort", "order_at", "slot_starts_at",
    "visit_day", "ticket_day", "ticket_no", "ticket", "disposition", "created_at", "arrived_at", "triaged_at",
    "queued_at", "called_at", "call_count", "started_at", "ended_at", "updated_at",
)
LOG_COLUMNS = ("encounter_id", "at", "trigger", "from_state", "to_state", "actor_id", "actor_kind", "stream",
               "reason", "workflow_version", "policy_version")
ASSESSMENT_COLUMNS = ("encounter_id", "stage", "created_at", "actor_id", "inputs", "result", "recommended_stream",
                      "recommended_level", "final_stream", "final_level", "overridden", "override_reason",
                      "policy_version")


@dataclass
class _Visit:
    """One generated encounter's facts before formatting (times are epoch seconds, UTC)."""

    stream: Stream
    online: bool
    level: int | None
    arrival: int
    slot: int | None
    flags: str
    age: int
    sex: str
    outcome: str  # completed | left | referred | no_show | cancelled | directed
    created: int = 0
    triaged: int | None = None
    called: int | None = None
    started: int | None = None
    ended: int | None = None
    provisional: Stream | None = None


def generate_encounters(
    session_or_engine: Session | Engine | Connection,
    policy: Policy,
    n: int,
    *,
    seed: int = 2026,
    end_day: date | None = None,
    now: datetime | None = None,
    days: int = 400,
    history_days: int = 7,
    staff_ids: Sequence[int] = (),
    workflow_name: str = "encounter",
    workflow_version: str = "1",
    echo: Callable[[str], object] | None = None,
) -> BulkResult:
    """Write `n` realistic past encounters ending on `end_day` (default: today) in one transaction; commits.

    On `end_day` itself only what happened before `now` is written, so today's queues are alive: patients
    still waiting, called or in consultation. Deterministic for a given seed, data and `now`.
    """
    if n < 0:
        raise ValueError("n must not be negative")
    started_clock = clock.perf_counter()
    now = now or utcnow()
    tz = policy.timezone
    end_day = end_day or now.astimezone(tz).date()
    first_day = end_day - timedelta(days=days - 1)
    now_epoch = _epoch(now)
    rng = random.Random(seed)  # noqa: S311 - synthetic data, reproducible from its seed  # nosec B311
    conn, commit = _connection(session_or_engine)
    writer = _Writer(conn)
    fmt = _Formats(writer.dialect)

    # Expected visits per (day, stream), with today cut at `now`; then n split over them exactly.
    day_list = [first_day + timedelta(days=i) for i in range(days)]
    cells: list[tuple[int, Stream, list[float]]] = []
    weights: list[float] = []
    for index, day in enumerate(day_list):
        start, _ = local_day_bounds(day, tz)
        progress = index / max(days - 1, 1)
        for stream in Stream:
            hours = _hour_weights(policy, stream, day)
            for hour in range(24):
                hour_start = _epoch(start) + hour * 3600
                elapsed = min(max((now_epoch - hour_start) / 3600, 0.0), 1.0)
                hours[hour] *= elapsed
            weight = (STREAM_SHARE[stream] * _season(day, stream) * _epidemic(progress, stream)
                      * _weekday(day, stream) * sum(hours) / max(sum(_hour_weights(policy, stream, day)), 1e-9))
            if sum(hours) > 0:
                cells.append((index, stream, _cumulative(hours)))
                weights.append(weight)
    counts = _allocate(n, weights)

    refs = _References(rng, {row[0] for row in conn.execute(text("SELECT reference FROM encounter"))}, n)
    constants = (workflow_name, workflow_version, policy.version)
    next_id = int(conn.execute(text("SELECT COALESCE(MAX(id), 0) FROM encounter")).scalar_one()) + 1
    counters: dict[tuple[date, str], int] = {
        (row[0] if isinstance(row[0], date) else date.fromisoformat(str(row[0])), row[1]): int(row[2])
        for row in conn.execute(text("SELECT day, stream, last_no FROM ticket_counter WHERE day >= :a AND day <= :b"),
                                {"a": first_day, "b": end_day})}
    history_from = end_day - timedelta(days=max(history_days, 0) - 1) if history_days > 0 else end_day + timedelta(1)

    by_day: dict[int, list[tuple[Stream, list[float], int]]] = {}
    for (index, stream, cumulative), count in zip(cells, counts, strict=True):
        if count:
            by_day.setdefault(index, []).append((stream, cumulative, count))
    job = _Job(rng=rng, policy=policy, by_day=by_day, day_list=day_list, now=now_epoch, next_id=next_id, fmt=fmt,
               counters=counters, refs=refs, constants=constants, history_from=history_from,
               staff_ids=tuple(staff_ids))

    totals = {"encounters": 0, "transitions": 0, "assessments": 0}
    logs: list[tuple[Any, ...]] = []
    assessments: list[tuple[Any, ...]] = []
    with ExitStack() as stack:
        copy: Any = None
        for kind, payload in _batches(job, parallel=n >= PARALLEL_FROM):
            if kind == "rows":
                writer.write("encounter", ENCOUNTER_COLUMNS, payload)
                totals["encounters"] += len(payload)
            elif kind == "text":
                # PostgreSQL: one COPY for every batch, so the server stores rows while the next batch is built.
                if copy is None:
                    cursor = stack.enter_context(closing(writer.raw.cursor()))
                    statement = f"COPY encounter ({', '.join(ENCOUNTER_COLUMNS)}) FROM STDIN"
                    copy = stack.enter_context(cursor.copy(statement))
                text_rows, count = payload
                copy.write(text_rows)
                totals["encounters"] += count
            else:
                logs, assessments, counters = payload
            if echo is not None and kind != "done" and totals["encounters"] % (BATCH * 10) == 0:
                echo(f"  … {totals['encounters']:,} encounters")
    # The audit trail and assessments refer to the encounters: written once those are all in.
    for i in range(0, len(logs), BATCH):
        writer.write("transition_log", LOG_COLUMNS, logs[i:i + BATCH])
    for i in range(0, len(assessments), BATCH):
        writer.write("assessment", ASSESSMENT_COLUMNS, assessments[i:i + BATCH])
    totals["transitions"], totals["assessments"] = len(logs), len(assessments)

    _save_counters(conn, writer.dialect, counters)
    writer.finish(("encounter", "transition_log", "assessment"))
    commit()
    return BulkResult(totals["encounters"], totals["transitions"], totals["assessments"], first_day, end_day,
                      clock.perf_counter() - started_clock)


# From this many encounters the rows are built in a child process while this one writes them: on two cores
# building and writing then overlap (a thread would not: both halves need the GIL).
PARALLEL_FROM = 50_000


@dataclass
class _Job:
    """Everything the row builder needs: plain data, so a forked child can run it."""

    rng: random.Random
    policy: Policy
    by_day: dict[int, list[tuple[Stream, list[float], int]]]
    day_list: list[date]
    now: int
    next_id: int
    fmt: _Formats
    counters: dict[tuple[date, str], int]
    refs: _References
    constants: tuple[str, str, str]
    history_from: date
    staff_ids: tuple[int, ...] = field(default_factory=tuple)


def _produce(job: _Job) -> Iterator[tuple[str, Any]]:
    """Batches of encounter rows ("rows", [...]), then ("done", (log rows, assessment rows, ticket counters))."""
    rng, policy, tz = job.rng, job.policy, job.policy.timezone
    logs: list[tuple[Any, ...]] = []
    assessments: list[tuple[Any, ...]] = []
    pending: list[tuple[Any, ...]] = []
    next_id = job.next_id
    workflow_version = job.constants[1]
    for index in sorted(job.by_day):
        day = job.day_list[index]
        start, end = local_day_bounds(day, tz)
        with_history = day >= job.history_from
        rows, visits = _day_rows(rng, policy, job.by_day[index], day, _epoch(start), _epoch(end), job.now, next_id,
                                 job.fmt, job.counters, job.refs, job.constants, keep_visits=with_history)
        pending.extend(rows)
        for row, visit in zip(rows, visits, strict=False):
            actor = job.staff_ids[int(rng.random() * len(job.staff_ids))] if job.staff_ids else None
            logs.extend(_log_rows(visit, row[0], row, job.fmt, actor, policy.version, workflow_version, job.now))
            assessments.extend(_assessment_rows(visit, row[0], job.fmt, actor, policy.version, rng, job.now))
        next_id += len(rows)
        if len(pending) >= BATCH:
            yield _batch(pending, job.fmt.dialect)
            pending = []
    if pending:
        yield _batch(pending, job.fmt.dialect)
    yield "done", (logs, assessments, job.counters)


def _batch(rows: list[tuple[Any, ...]], dialect: str) -> tuple[str, Any]:
    """Rows for sqlite3 executemany, or already as COPY text for PostgreSQL."""
    if dialect == "postgresql":
        return "text", (_copy_text(rows), len(rows))
    return "rows", rows


def _copy_text(rows: list[tuple[Any, ...]]) -> str:
    # COPY's text format, built in one piece: much faster than adapting row by row. The values are numbers,
    # fixed codes, timestamps, generated names and JSON: never a tab, newline or backslash.
    return "\n".join("\t".join(["\\N" if v is None else str(v) for v in row]) for row in rows) + "\n"


def _child(job: _Job, out: Any) -> None:
    try:
        for item in _produce(job):
            out.put(item)
    except BaseException:  # handed to the parent, which raises it
        out.put(("error", traceback.format_exc()))


def _batches(job: _Job, *, parallel: bool) -> Iterator[tuple[str, Any]]:
    """The producer's batches, built in a forked child process when possible, else here."""
    if not parallel or "fork" not in multiprocessing.get_all_start_methods():
        yield from _produce(job)
        return
    context = multiprocessing.get_context("fork")
    out = context.Queue(maxsize=3)
    child = context.Process(target=_child, args=(job, out), name="triage-bulk", daemon=True)
    child.start()
    try:
        while True:
            kind, payload = out.get()
            if kind == "error":
                raise RuntimeError(f"generating encounters failed:\n{payload}")
            yield kind, payload
            if kind == "done":
                return
    finally:
        if child.is_alive():
            child.terminate()
        child.join()


_LEVEL_CUM = _cumulative([w for _, w in EMERGENCY_LEVELS])
_WAIT_PARAMS = {key: (math.log(median * 60), spread) for key, (median, spread) in WAITS.items()}
_NOT_SEEN = ("no_show", "cancelled", "directed")


def _day_rows(rng: random.Random, policy: Policy, cells: Sequence[tuple[Stream, list[float], int]], day: date,
              day_start: int, day_end: int, now: int, first_id: int, fmt: _Formats,
              counters: dict[tuple[date, str], int], refs: _References, constants: tuple[str, str, str], *,
              keep_visits: bool) -> tuple[list[tuple[Any, ...]], list[_Visit]]:
    """One day's encounter rows, built with local variables only: this loop runs a million times.

    `keep_visits` also returns the visits, for the days whose audit trail is written too.
    """
    random_, gauss, lognorm = rng.random, rng.gauss, rng.lognormvariate
    ts, true, false = fmt.ts, fmt.true, fmt.false
    workflow_name, workflow_version, policy_version = constants
    day_text, next_day = fmt.day(day), day + timedelta(days=1)
    next_text = fmt.day(next_day)
    level_total = _LEVEL_CUM[-1]
    rows: list[tuple[Any, ...]] = []
    visits: list[_Visit] = []
    row_id = first_id
    for stream, cumulative, count in cells:
        spec = policy.streams[stream]
        value, prefix = stream.value, stream.prefix
        bookable, share, step = spec.bookable_online, ONLINE_SHARE[stream], spec.slot_minutes * 60
        log_consult = math.log(spec.consultation_minutes * 60)
        emergency, fever = stream is Stream.EMERGENCY, stream is Stream.FEVER
        others = [s for s in (Stream.GENERAL, Stream.CHRONIC, Stream.FEVER) if s is not stream]
        total = cumulative[-1]
        arrivals = sorted(min(day_start + min(bisect.bisect_right(cumulative, random_() * total), 23) * 3600
                              + int(random_() * 3600), day_end - 1, now - 1) for _ in range(count))
        for arrival in arrivals:
            online = bookable and random_() < share
            level = EMERGENCY_LEVELS[bisect.bisect_right(_LEVEL_CUM, random_() * level_total)][0] if emergency \
                else None
            age = int(min(max(gauss(46, 22), 0), 98))
            roll = random_()
            flags = "elderly" if age >= 65 else "child" if age < 14 else ""
            if roll < 0.03:
                extra = "pregnant" if roll < 0.02 else "dialysis"
                flags = f"{flags},{extra}" if flags else extra
            slot = day_start + ((arrival - day_start) // step) * step if online else None
            roll = random_()
            outcome = "completed"
            if online and roll < 0.09:
                outcome = "no_show" if roll < 0.05 else "cancelled" if roll < 0.085 else "directed"
            elif roll > 0.945:
                outcome = "left" if roll > 0.975 else "referred"
            created = arrival - int((0.5 + 4.5 * random_()) * 86400) if online else arrival
            provisional = others[int(random_() * 2)] if online and random_() < 0.08 else stream
            triaged = called = started = ended = None
            if outcome not in _NOT_SEEN:
                triaged = arrival + int(60 + 360 * random_())
                mu, sigma = _WAIT_PARAMS[level if level is not None else value]
                wait = int(lognorm(mu, sigma))
                if outcome == "left":
                    ended = triaged + wait + int(300 + 1500 * random_())
                else:
                    called = triaged + wait
                    started = called + int(30 + 210 * random_())
                    ended = started + int(lognorm(log_consult, 0.4))
            state, finished = _state(outcome, arrival=arrival, created=created, triaged=triaged, called=called,
                                     started=started, ended=ended, now=now)
            seen = triaged is not None and triaged <= now
            arrived = arrival if state not in ("booked", "cancelled", "no_show", "directed_to_emergency") else None
            called_now = called if called is not None and called <= now else None
            started_now = started if started is not None and started <= now else None
            ticket_no = ticket = None
            ticket_text = None
            if seen:
                assert triaged is not None
                ticket_day = day if triaged < day_end else next_day
                key = (ticket_day, value)
                ticket_no = counters.get(key, 0) + 1
                counters[key] = ticket_no
                ticket = f"{prefix}-{ticket_no:03d}"
                ticket_text = day_text if ticket_day is day else next_text
            steps = 1 + online + (1 if arrived and online else 0) + (2 if seen else 0) + (1 if called_now else 0) \
                + (1 if started_now else 0) + (1 if finished and seen else 0)
            disposition = ("cmty-east" if random_() < 0.7 else "cmty-west") if state == "referred" else None
            last = finished or started_now or called_now or (triaged if seen else None) or arrived or created
            name = NAMES_FAMILY[int(random_() * len(NAMES_FAMILY))] + NAMES_GIVEN[int(random_() * len(NAMES_GIVEN))]
            if random_() < 0.6:
                name += NAMES_GIVEN[int(random_() * len(NAMES_GIVEN))]
            sex = "F" if random_() < 0.52 else "M"
            triaged_text = ts(triaged) if seen else None
            rows.append((
                row_id, refs.next(), "online" if online else "walk_in", state, workflow_name, workflow_version,
                policy_version, steps, name, age, sex, "zh", provisional.value if online else None,
                value if seen else None, level if seen else None, flags, true if (fever and seen) else false,
                (level or 5) if seen else 5, 0 if flags else 1, ts(slot if slot is not None else arrival), ts(slot),
                day_text, ticket_text, ticket_no, ticket, disposition, ts(created), ts(arrived), triaged_text,
                triaged_text, ts(called_now), 1 if called_now else 0, ts(started_now), ts(finished), ts(last),
            ))
            if keep_visits:
                visits.append(_Visit(stream=stream, online=online, level=level, arrival=arrival, slot=slot,
                                     flags=flags, age=age, sex=sex, outcome=outcome, created=created, triaged=triaged,
                                     called=called, started=started, ended=ended, provisional=provisional))
            row_id += 1
    return rows, visits


_PAIRS = [a + b for a in REFERENCE_ALPHABET for b in REFERENCE_ALPHABET]


class _References:
    """Reference codes that look random but ascend, so their unique index is appended to, not scattered.

    Each code is a random step above the previous one, from a random start in the upper half of the 40-bit
    space, the steps sized so that n codes fit; codes already in the database are skipped.
    """

    def __init__(self, rng: random.Random, taken: set[str], n: int) -> None:
        self.rng = rng
        self.taken = taken
        self.value = (1 << 39) + rng.getrandbits(37)
        self.spread = max(64, (1 << 38) // max(n, 1))

    def next(self) -> str:
        while True:
            self.value += 1 + int(self.rng.random() * self.spread)
            v = self.value
            ref = _PAIRS[(v >> 30) & 1023] + _PAIRS[(v >> 20) & 1023] + _PAIRS[(v >> 10) & 1023] + _PAIRS[v & 1023]
            if ref not in self.taken:
                return ref


def _state(outcome: str, *, arrival: int, created: int, triaged: int | None, called: int | None,
           started: int | None, ended: int | None, now: int) -> tuple[str, int | None]:
    """The state at `now` and when the case ended (None while live): events after `now` have not happened."""
    if outcome == "no_show":
        # Booked and never came: expired the day after the visit; still "booked" on the visit day itself.
        expiry = arrival + 86400
        return ("no_show", expiry) if expiry <= now else ("booked", None)
    if outcome == "cancelled":
        at = created + (arrival - created) // 2
        return ("cancelled", at) if at <= now else ("booked", None)
    if outcome == "directed":
        return "directed_to_emergency", created
    assert triaged is not None
    if triaged > now:
        return "arrived", None
    if outcome == "left":
        assert ended is not None
        return ("left_without_being_seen", ended) if ended <= now else ("waiting", None)
    assert called is not None and started is not None and ended is not None
    if called > now:
        return "waiting", None
    if started > now:
        return "called", None
    if ended > now:
        return "in_consultation", None
    return ("referred" if outcome == "referred" else "completed"), ended


_LOG_LABELS: dict[str, tuple[str, str]] = {
    "book": ("prescreened", "booked"), "check_in": ("booked", "arrived"), "triage": ("arrived", "triaged"),
    "enqueue": ("triaged", "waiting"), "call": ("waiting", "called"), "start": ("called", "in_consultation"),
    "complete": ("in_consultation", "completed"),
}


def _log_rows(v: _Visit, encounter_id: int, row: tuple[Any, ...], fmt: _Formats, actor: int | None,
              policy_version: str, workflow_version: str, now: int) -> Iterator[tuple[Any, ...]]:
    """The audit trail of one generated encounter, as the services would have written it."""
    ts = fmt.ts
    state = row[3]
    stream = (v.provisional or v.stream).value if v.online else None

    def log(at: int, trigger: str, src: str | None, dest: str, kind: str, who: int | None,
            reason: str | None = None, stream_value: str | None = None) -> tuple[Any, ...]:
        return (encounter_id, ts(at), trigger, src, dest, who, kind, stream_value or stream, reason,
                workflow_version, policy_version)

    if v.online:
        yield log(v.created, "create", None, "prescreened", "patient", None)
        if v.outcome == "directed":
            yield log(v.created, "direct_to_emergency", "prescreened", "directed_to_emergency", "patient", None,
                      "online red flag")
            return
        yield log(v.created + 5, "book", "prescreened", "booked", "patient", None)
        if state == "cancelled":
            yield log(v.created + (v.arrival - v.created) // 2, "cancel", "booked", "cancelled", "patient", None)
            return
        if state == "no_show":
            yield log(v.arrival + 86400, "expire", "booked", "no_show", "system", None)
            return
        if state == "booked":
            return
        yield log(v.arrival, "check_in", "booked", "arrived", "staff", actor)
    else:
        yield log(v.arrival, "create", None, "arrived", "staff", actor)
    if v.triaged is None or v.triaged > now:
        return
    final = v.stream.value
    yield log(v.triaged, "triage", "arrived", "triaged", "staff", actor, stream_value=final)
    yield log(v.triaged, "enqueue", "triaged", "waiting", "staff", actor, stream_value=final)
    if v.outcome == "left":
        if v.ended is not None and v.ended <= now:
            yield log(v.ended, "leave", "waiting", "left_without_being_seen", "staff", actor, stream_value=final)
        return
    for trigger, at in (("call", v.called), ("start", v.started)):
        if at is None or at > now:
            return
        src, dest = _LOG_LABELS[trigger]
        yield log(at, trigger, src, dest, "staff", actor, stream_value=final)
    if v.ended is None or v.ended > now:
        return
    if v.outcome == "referred":
        yield log(v.ended, "refer", "in_consultation", "referred", "staff", actor, stream_value=final)
    else:
        yield log(v.ended, "complete", "in_consultation", "completed", "staff", actor, stream_value=final)


def _result(stream: Stream, level: int | None, rule: str) -> str:
    return json.dumps({"outcome": "route", "stream": stream.value, "cn_level": level,
                       "reasons": [{"rule": rule, "zh": "", "en": "", "message": ""}]}, ensure_ascii=False)


_RULE = {Stream.FEVER: "ROUTE-FEVER", Stream.EMERGENCY: "ROUTE-EMERGENCY", Stream.GENERAL: "ROUTE-GENERAL",
         Stream.CHRONIC: "ROUTE-CHRONIC"}


def _assessment_rows(v: _Visit, encounter_id: int, fmt: _Formats, actor: int | None, policy_version: str,
                     rng: random.Random, now: int) -> Iterator[tuple[Any, ...]]:
    """The online and on-site assessments of one generated encounter."""
    inputs = json.dumps({"age_years": v.age, "sex": v.sex})
    if v.online:
        provisional = v.provisional or v.stream
        yield (encounter_id, "online", fmt.ts(v.created), None, inputs, _result(provisional, None, _RULE[provisional]),
               provisional.value, None, None, None, fmt.false, None, policy_version)
    if v.triaged is None or v.triaged > now:
        return
    overridden = rng.random() < 0.05
    recommended = v.stream
    if overridden:
        recommended = rng.choice([s for s in Stream if s is not v.stream])
    rec_level = (v.level or 3) if recommended is Stream.EMERGENCY else None
    result = _result(recommended, rec_level, _RULE[recommended])
    yield (encounter_id, "onsite", fmt.ts(v.triaged), actor, inputs, result,
           recommended.value, rec_level, v.stream.value, v.level, fmt.true if overridden else fmt.false,
           _choice(OVERRIDE_REASONS[v.stream], rng) if overridden else None, policy_version)


def _choice(options: Sequence[str], rng: random.Random) -> str:
    return options[int(rng.random() * len(options))]


def _save_counters(conn: Connection, dialect: str, counters: dict[tuple[date, str], int]) -> None:
    """Keep the ticket counters ahead of the generated tickets, so today's next ticket does not collide."""
    if not counters:
        return
    rows = [{"day": day, "stream": stream, "last_no": last} for (day, stream), last in counters.items()]
    conn.execute(text(
        "INSERT INTO ticket_counter (day, stream, last_no) VALUES (:day, :stream, :last_no) "
        "ON CONFLICT (day, stream) DO UPDATE SET last_no = CASE WHEN excluded.last_no > ticket_counter.last_no "
        "THEN excluded.last_no ELSE ticket_counter.last_no END"), rows)


# --- a day of bookings ---------------------------------------------------------------------------------------

BOOKING_COLUMNS = (*ENCOUNTER_COLUMNS, "status_token_hash", "patient_phone", "party_id", "slot_id")
BOOKING_SHARE = {Stream.GENERAL: 0.60, Stream.CHRONIC: 0.25, Stream.FEVER: 0.15}


@dataclass(frozen=True)
class Booking:
    """One generated booking: what its holder carries (the code and the status link's token)."""

    reference: str
    status_token: str
    stream: str
    arrived: bool


def generate_bookings(
    session: Session,
    policy: Policy,
    n: int,
    *,
    arrived: int = 0,
    day: date | None = None,
    now: datetime | None = None,
    seed: int = 7,
    workflow_name: str = "encounter",
    workflow_version: str = "1",
) -> list[Booking]:
    """Write `n` online pre-screens booked into `day`'s free slots (default: today), as `submit_prescreen` would;
    the last `arrived` of them are already checked in. Slot capacity is respected: ValueError when the day has
    too few free places. Commits.
    """
    if not 0 <= arrived <= n:
        raise ValueError("arrived must be between 0 and n")
    now = now or utcnow()
    day = day or policy.local(now).date()
    rng = random.Random(seed)  # noqa: S311 - synthetic data, reproducible from its seed  # nosec B311
    free: dict[Stream, list[list[Any]]] = {}
    for stream in BOOKING_SHARE:
        if not policy.streams[stream].bookable_online:
            continue
        ensure_slots(session, policy, stream, day)
        day_slots = session.exec(select(Slot).where(Slot.stream == stream.value, Slot.day == day)
                                 .order_by(col(Slot.starts_at))).all()
        free[stream] = [[s.id, s.starts_at, s.capacity - s.booked] for s in day_slots if s.capacity > s.booked]
    if sum(slot[2] for slots in free.values() for slot in slots) < n:
        raise ValueError(f"{day} has fewer than {n} free places in its slots: raise the capacities in the policy")

    conn = session.connection()
    writer = _Writer(conn)
    fmt = _Formats(writer.dialect)
    ts = fmt.ts
    refs = _References(rng, {row[0] for row in conn.execute(text("SELECT reference FROM encounter"))}, n)
    next_id = int(conn.execute(text("SELECT COALESCE(MAX(id), 0) FROM encounter")).scalar_one()) + 1
    cursor = {stream: 0 for stream in free}
    now_epoch = _epoch(now)
    rows: list[tuple[Any, ...]] = []
    logs: list[tuple[Any, ...]] = []
    assessments: list[tuple[Any, ...]] = []
    bookings: list[Booking] = []
    taken: dict[int, int] = {}
    streams = list(free)
    weights = _cumulative([BOOKING_SHARE[s] for s in streams])
    for i in range(n):
        stream = streams[_pick(weights, rng)]
        while not free[stream]:  # this stream is full: another one
            stream = next(s for s in streams if free[s])
        # Round-robin over the stream's slots, so the bookings spread over the day.
        slots = free[stream]
        index = cursor[stream] % len(slots)
        slot = slots[index]
        taken[slot[0]] = taken.get(slot[0], 0) + 1
        slot[2] -= 1
        if not slot[2]:
            slots.pop(index)
        else:
            cursor[stream] = index + 1
        is_arrived = i >= n - arrived
        starts = _epoch(slot[1] if slot[1].tzinfo else slot[1].replace(tzinfo=UTC))
        created = now_epoch - int((0.5 + 4.5 * rng.random()) * 86400)
        arrival = now_epoch - int(rng.random() * 1200) if is_arrived else None
        age = int(min(max(rng.gauss(46, 22), 1), 98))  # infants are triaged by age in days: not in this mix
        flags = "elderly" if age >= 65 else "child" if age < 14 else ""
        sex = "F" if rng.random() < 0.52 else "M"
        token = secrets.token_urlsafe(32)
        reference = refs.next()
        name = NAMES_FAMILY[int(rng.random() * len(NAMES_FAMILY))] + NAMES_GIVEN[int(rng.random() * len(NAMES_GIVEN))]
        row_id = next_id + i
        rows.append((
            row_id, reference, "online", "arrived" if is_arrived else "booked", workflow_name, workflow_version,
            policy.version, 3 if is_arrived else 2, name, age, sex, "zh", stream.value, None, None, flags, fmt.false,
            5, 0 if flags else 1, ts(starts), ts(starts), fmt.day(day), None, None, None, None, ts(created),
            ts(arrival), None, None, None, 0, None, None, ts(arrival or created + 5),
            digest(token), f"13{rng.randrange(10**9):09d}", secrets.token_hex(8), slot[0],
        ))
        log = (row_id, None, None, None, None, None, None, stream.value, None, workflow_version, policy.version)
        logs.append((row_id, ts(created), "create", None, "prescreened", None, "patient", *log[7:]))
        logs.append((row_id, ts(created + 5), "book", "prescreened", "booked", None, "patient", *log[7:]))
        if arrival is not None:
            logs.append((row_id, ts(arrival), "check_in", "booked", "arrived", None, "staff", *log[7:]))
        assessments.append((row_id, "online", ts(created), None, json.dumps({"age_years": age, "sex": sex}),
                            _result(stream, None, _RULE[stream]), stream.value, None, None, None, fmt.false, None,
                            policy.version))
        bookings.append(Booking(reference, token, stream.value, is_arrived))
    for i in range(0, n, BATCH):
        writer.write("encounter", BOOKING_COLUMNS, rows[i:i + BATCH])
    for i in range(0, len(logs), BATCH):
        writer.write("transition_log", LOG_COLUMNS, logs[i:i + BATCH])
    writer.write("assessment", ASSESSMENT_COLUMNS, assessments)
    conn.execute(text("UPDATE slot SET booked = booked + :k WHERE id = :id"),
                 [{"id": slot_id, "k": k} for slot_id, k in taken.items()])
    writer.finish(("encounter", "transition_log", "assessment"))
    session.commit()
    return bookings
