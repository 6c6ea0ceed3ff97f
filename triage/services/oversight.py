"""Live oversight for supervisors: the dashboard's numbers, the workflow diagram's counts, the quality of triage.

Everything is read from the database on each request (several workers on several hosts serve the same
dashboard; nothing is kept in a process). Each read is bounded by an index, whatever the size of the
history: the live queues by `ix_encounter_queue` (through `onsite.read_queue`, the same waits against
target as the clinics' screens), today's and yesterday's visits by `ix_encounter_visit_day`, what ended
today by `ix_encounter_ended`, the on-site decisions of a period by `ix_assessment_stage_created`.

"Today" is the hospital's local day (the policy's time zone). Definitions:
- waiting / called / in consultation: the cases in that state now, whatever day they arrived (a patient
  still waiting at midnight is still waiting);
- completed today: consultations completed since local midnight;
- longest wait: the longest running wait (ticket to now) among those waiting;
- median wait: over the waits still running now and the waits that ended today (called or seen);
- over target: waiting longer than the target for their acuity (`triage.domain.queue.measure_wait`);
- arrivals: check-ins and walk-in registrations since midnight, per local hour, against the patients
  booked into that hour's slots (cancelled bookings excluded).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import and_, bindparam, exists, func, or_, select, text
from sqlalchemy.orm import aliased
from sqlmodel import Session, col

from triage.domain.errors import InvalidInput
from triage.domain.policy import Policy, Stream
from triage.domain.queue import WaitStatus
from triage.domain.reports import DAY_MESSAGE, local_hour, median, minutes_between, parse_day, wait_end
from triage.models import Assessment, Encounter, utcnow
from triage.services.onsite import QueueEntry, read_queue
from triage.workflow import Workflow

UNTRIAGED = ""  # key of arrivals not yet given a stream
# Rules present in every online result, which say nothing about why a stream was chosen.
GENERIC_RULES = frozenset({"ONLINE-PROVISIONAL"})
MAX_PERIOD_DAYS = 366


@dataclass(frozen=True)
class StreamNumbers:
    """One stream's live numbers."""

    stream: Stream
    waiting: int
    called: int
    in_consultation: int
    completed_today: int
    longest_wait: int | None
    median_wait: float | None
    over_target: int
    due_soon: int
    isolation: int
    arrivals_online: int
    arrivals_walk_in: int
    booked_today: int


@dataclass(frozen=True)
class WaitGroup:
    """Today's waits of one acuity group (an emergency level, or an ungraded stream) against its target."""

    key: str  # "emergency-1" ... "emergency-4", "fever", "general", "chronic"
    stream: Stream
    level: int | None
    target_minutes: int
    waits: tuple[float, ...]

    @property
    def median(self) -> float | None:
        """Median wait of the group."""
        return median(self.waits)

    @property
    def over_target(self) -> int:
        """How many waits are past the target."""
        return sum(1 for w in self.waits if w > self.target_minutes)


@dataclass(frozen=True)
class Dashboard:
    """What the supervisor sees: per-stream numbers, who is over target, isolation cases, today's hours."""

    at: datetime
    day: date
    streams: list[StreamNumbers]
    over_target: list[QueueEntry]  # most overdue first
    due_soon: list[QueueEntry]
    isolation: list[QueueEntry]
    awaiting_triage: int
    arrivals_by_hour: Mapping[str, list[int]]  # stream value (or UNTRIAGED) -> 24 counts
    booked_by_hour: Mapping[str, list[int]]
    wait_by_hour: list[float | None]  # median of the waits that ended (or run) in each hour
    wait_groups: list[WaitGroup]
    ended_today: Mapping[str, int]  # final state -> count

    @property
    def totals(self) -> dict[str, int]:
        """Sums over the streams."""
        keys = ("waiting", "called", "in_consultation", "completed_today", "over_target", "isolation",
                "arrivals_online", "arrivals_walk_in", "booked_today")
        return {k: sum(int(getattr(s, k)) for s in self.streams) for k in keys}

    @property
    def arrivals_total(self) -> list[int]:
        """Arrivals per hour, all streams."""
        return [sum(hours[h] for hours in self.arrivals_by_hour.values()) for h in range(24)]

    @property
    def booked_total(self) -> list[int]:
        """Booked patients per slot hour, all streams."""
        return [sum(hours[h] for hours in self.booked_by_hour.values()) for h in range(24)]


def _overdue_by(entry: QueueEntry) -> int:
    return entry.wait.waited_minutes - entry.wait.target_minutes


def dashboard(session: Session, *, policy: Policy, workflow: Workflow, now: datetime | None = None) -> Dashboard:
    """The live dashboard: four queue reads, today's and yesterday's visits, and what ended today."""
    now = now or utcnow()
    today = policy.local(now).date()
    start, end = policy.local_day_bounds(today)
    tz = policy.timezone

    queues = {s: read_queue(session, stream=s, policy=policy, workflow=workflow, now=now) for s in Stream}
    ended = _ended_between(session, start, end)
    columns = (col(Encounter.stream), col(Encounter.provisional_stream), col(Encounter.origin), col(Encounter.state),
               col(Encounter.cn_level), col(Encounter.arrived_at), col(Encounter.queued_at), col(Encounter.called_at),
               col(Encounter.started_at), col(Encounter.slot_starts_at), col(Encounter.visit_day))
    # Today's visits, and those of yesterday whose wait ended after midnight (a handful).
    rows = list(session.execute(select(*columns).where(col(Encounter.visit_day) == today)).all())
    rows += session.execute(select(*columns).where(
        col(Encounter.visit_day) == today - timedelta(days=1),
        or_(col(Encounter.called_at) >= start, col(Encounter.started_at) >= start))).all()

    arrivals: dict[str, list[int]] = {s.value: [0] * 24 for s in Stream}
    arrivals[UNTRIAGED] = [0] * 24
    booked: dict[str, list[int]] = {s.value: [0] * 24 for s in Stream}
    origin_counts: dict[tuple[str, str], int] = {}
    ended_waits: dict[str, list[float]] = {}
    waits_by_hour: list[list[float]] = [[] for _ in range(24)]
    groups: dict[tuple[str, int | None], list[float]] = {}
    for (stream, provisional, origin, state, level, arrived_at, queued_at, called_at, started_at, slot_at,
         visit_day) in rows:
        key = stream or provisional or UNTRIAGED
        if arrived_at is not None and start <= arrived_at < end:
            arrivals.setdefault(key, [0] * 24)[local_hour(arrived_at, tz)] += 1
            origin_counts[(key, origin)] = origin_counts.get((key, origin), 0) + 1
        if visit_day == today and slot_at is not None and state != "cancelled" and provisional:
            booked.setdefault(provisional, [0] * 24)[local_hour(slot_at, tz)] += 1
        finished = wait_end(called_at, started_at)
        if stream and queued_at is not None and finished is not None and start <= finished < end:
            minutes = minutes_between(queued_at, finished)
            ended_waits.setdefault(stream, []).append(minutes)
            waits_by_hour[local_hour(finished, tz)].append(minutes)
            groups.setdefault((stream, level if stream == Stream.EMERGENCY.value else None), []).append(minutes)

    current_hour = local_hour(now, tz)
    numbers: list[StreamNumbers] = []
    over: list[QueueEntry] = []
    due: list[QueueEntry] = []
    isolation: list[QueueEntry] = []
    for stream, view in queues.items():
        running = [float(e.wait.waited_minutes) for e in view.waiting]
        for entry in view.waiting:
            waits_by_hour[current_hour].append(float(entry.wait.waited_minutes))
            level = entry.encounter.cn_level if stream is Stream.EMERGENCY else None
            groups.setdefault((stream.value, level), []).append(float(entry.wait.waited_minutes))
        over += [e for e in view.waiting if e.wait.status is WaitStatus.OVERDUE]
        due += [e for e in view.waiting if e.wait.status is WaitStatus.DUE_SOON]
        isolation += [e for e in view.entries if e.encounter.isolation_required]
        numbers.append(StreamNumbers(
            stream=stream,
            waiting=len(view.waiting),
            called=len(view.called),
            in_consultation=len(view.in_consultation),
            completed_today=ended.get(("completed", stream.value), 0),
            longest_wait=max((e.wait.waited_minutes for e in view.waiting), default=None),
            median_wait=median(running + ended_waits.get(stream.value, [])),
            over_target=view.overdue,
            due_soon=sum(1 for e in view.waiting if e.wait.status is WaitStatus.DUE_SOON),
            isolation=sum(1 for e in view.entries if e.encounter.isolation_required),
            arrivals_online=origin_counts.get((stream.value, "online"), 0),
            arrivals_walk_in=origin_counts.get((stream.value, "walk_in"), 0),
            booked_today=sum(booked.get(stream.value, [])),
        ))
    over.sort(key=lambda e: (-_overdue_by(e), e.encounter.id or 0))
    due.sort(key=lambda e: (e.wait.remaining_minutes, e.encounter.id or 0))
    awaiting = session.execute(select(func.count()).select_from(Encounter)
                               .where(col(Encounter.state) == "arrived")).scalar_one()
    ended_states: dict[str, int] = {}
    for (state, _stream), count in ended.items():
        ended_states[state] = ended_states.get(state, 0) + count
    return Dashboard(
        at=now, day=today, streams=numbers, over_target=over, due_soon=due, isolation=isolation,
        awaiting_triage=int(awaiting), arrivals_by_hour=arrivals, booked_by_hour=booked,
        wait_by_hour=[median(w) for w in waits_by_hour],
        wait_groups=_wait_groups(policy, groups), ended_today=ended_states,
    )


def _ended_between(session: Session, start: datetime, end: datetime) -> dict[tuple[str, str], int]:
    """Cases that reached a final state in [start, end), by (state, stream or provisional stream)."""
    rows = session.execute(
        select(col(Encounter.state), col(Encounter.stream), func.count())
        .where(col(Encounter.ended_at) >= start, col(Encounter.ended_at) < end)
        .group_by(col(Encounter.state), col(Encounter.stream)))
    result: dict[tuple[str, str], int] = {}
    for state, stream, count in rows:
        key = (str(state), str(stream or ""))
        result[key] = result.get(key, 0) + int(count)
    return result


def _wait_groups(policy: Policy, groups: Mapping[tuple[str, int | None], list[float]]) -> list[WaitGroup]:
    order: list[tuple[Stream, int | None]] = [(Stream.EMERGENCY, level) for level in (1, 2, 3, 4)]
    order += [(Stream.FEVER, None), (Stream.GENERAL, None), (Stream.CHRONIC, None)]
    result = []
    for stream, level in order:
        key = f"{stream.value}-{level}" if level is not None else stream.value
        target = policy.streams[stream].wait_target(level)
        result.append(WaitGroup(key, stream, level, target, tuple(groups.get((stream.value, level), ()))))
    return result


def state_counts(session: Session, *, workflow: Workflow, policy: Policy, now: datetime | None = None
                 ) -> dict[str, int]:
    """Today's count in each workflow state: the live cases (booked ones only for today or before) and
    the cases that reached a final state today."""
    now = now or utcnow()
    today = policy.local(now).date()
    start, end = policy.local_day_bounds(today)
    open_states = [s for s in workflow.states if not workflow.is_final(s)]
    counts = dict.fromkeys(workflow.states, 0)
    rows = session.execute(
        select(col(Encounter.state), func.count())
        .where(col(Encounter.state).in_(open_states),
               or_(col(Encounter.visit_day).is_(None), col(Encounter.visit_day) <= today))
        .group_by(col(Encounter.state)))
    for state, count in rows:
        counts[str(state)] = int(count)
    for (state, _stream), count in _ended_between(session, start, end).items():
        if state in counts:
            counts[state] += count
    return counts


def localized_mermaid(workflow: Workflow, counts: Mapping[str, int], lang: str) -> str:
    """The workflow's Mermaid diagram (`Workflow.to_mermaid`) with today's counts, labelled in `lang`."""
    source = workflow.to_mermaid(counts)
    lines = []
    for line in source.splitlines():
        if lang == "en":
            lines.append(line)
            continue
        name, sep, rest = line.strip().partition(" : ")
        if sep and name in workflow.states and "-->" not in name:
            line = f"    {name} : {workflow.state_label(name, lang)} ({counts.get(name, 0)})"
        elif sep and "-->" in name:
            line = f"    {name} : {workflow.trigger_label(rest, lang)}"
        lines.append(line)
    # States with cases today stand out (Mermaid's classDef is a stylesheet rule, allowed by the CSP).
    busy = [name for name in workflow.states if counts.get(name, 0) > 0]
    lines.append("    classDef busy fill:#dbeafe,stroke:#1d4ed8,stroke-width:2px,font-weight:bold")
    if busy:
        lines.append(f"    class {','.join(busy)} busy")
    return "\n".join(lines) + "\n"


# --- quality of triage -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Agreement:
    """How often the on-site decision differed from the online recommendation, for one stream or rule."""

    key: str
    pairs: int
    differs: int

    @property
    def differs_pct(self) -> float | None:
        """Share that differed, in percent."""
        return None if self.pairs == 0 else 100.0 * self.differs / self.pairs


@dataclass(frozen=True)
class OverrideRow:
    """A nurse's change of the engine's on-site recommendation, with the reason they gave."""

    at: datetime
    reference: str
    recommended_stream: str | None
    recommended_level: int | None
    final_stream: str | None
    final_level: int | None
    reason: str


@dataclass(frozen=True)
class Quality:
    """The quality of triage over a period of local days."""

    first: date
    last: date
    pairs: int  # visits with both an online recommendation and an on-site decision
    differs: int
    by_stream: list[Agreement]  # by the online recommendation
    by_rule: list[Agreement]  # by each rule that fired online
    matrix: Mapping[tuple[str, str], int]  # (online stream, on-site stream) -> visits
    decisions: int  # on-site decisions (first decisions per visit) in the period
    overrides: int  # on-site decisions that changed the engine's recommendation (every decision)
    override_changes: list[tuple[str, str, int]]  # (recommended, decided, count), most frequent first
    recent_overrides: list[OverrideRow] = field(default_factory=list)

    @property
    def differs_pct(self) -> float | None:
        """Share of visits where the on-site decision differed, in percent."""
        return None if self.pairs == 0 else 100.0 * self.differs / self.pairs


def parse_period(first: str | None, last: str | None, *, today: date, default_days: int = 7) -> tuple[date, date]:
    """The period of local days a page asks for ("" means the last `default_days` days up to today)."""
    errors: dict[str, tuple[str, str]] = {}
    parsed: dict[str, date] = {}
    for name, value, fallback in (("first", first, today - timedelta(days=default_days - 1)), ("last", last, today)):
        if not (value or "").strip():
            parsed[name] = fallback
            continue
        try:
            parsed[name] = parse_day(str(value))
        except ValueError:
            errors[name] = DAY_MESSAGE
    if not errors and parsed["first"] > parsed["last"]:
        errors["last"] = ("结束日期不能早于开始日期。", "The last day cannot be before the first day.")
    if not errors and (parsed["last"] - parsed["first"]).days >= MAX_PERIOD_DAYS:
        errors["first"] = ("时间段最长 366 天。", "The period can be at most 366 days.")
    if errors:
        raise InvalidInput(errors)
    return parsed["first"], parsed["last"]


def quality(session: Session, *, policy: Policy, first: date, last: date, limit: int = 100) -> Quality:
    """On-site decisions against the online recommendations of the period, and the nurses' overrides.

    A visit counts once, by its first on-site decision (a re-triage later is a new finding, not an error of
    the online stage); it differs when the on-site stream is not the online recommended stream.
    """
    start = policy.local_day_bounds(first)[0]
    end = policy.local_day_bounds(last)[1]
    onsite = aliased(Assessment, name="onsite")
    online = aliased(Assessment, name="online")
    earlier = aliased(Assessment, name="earlier")
    later = aliased(Assessment, name="later")
    first_decision = and_(
        col(onsite.stage) == "onsite", col(onsite.created_at) >= start, col(onsite.created_at) < end,
        ~exists().where(col(earlier.encounter_id) == col(onsite.encounter_id), col(earlier.stage) == "onsite",
                        col(earlier.id) < col(onsite.id)))
    last_online = ~exists().where(col(later.encounter_id) == col(online.encounter_id), col(later.stage) == "online",
                                  col(later.id) > col(online.id))
    matrix: dict[tuple[str, str], int] = {}
    for recommended, decided, count in session.execute(
            select(col(online.recommended_stream), col(onsite.final_stream), func.count())
            .join(online, and_(col(online.encounter_id) == col(onsite.encounter_id), col(online.stage) == "online"))
            .where(first_decision, last_online)
            .group_by(col(online.recommended_stream), col(onsite.final_stream))):
        matrix[(str(recommended or ""), str(decided or ""))] = int(count)
    by_stream = []
    for stream in Stream:
        pairs = sum(c for (rec, _), c in matrix.items() if rec == stream.value)
        differs = sum(c for (rec, dec), c in matrix.items() if rec == stream.value and dec != rec)
        by_stream.append(Agreement(stream.value, pairs, differs))
    pairs_total = sum(matrix.values())
    differs_total = sum(c for (rec, dec), c in matrix.items() if rec != dec)

    decisions = session.execute(select(func.count()).select_from(onsite).where(first_decision)).scalar_one()
    overrides_total = session.execute(
        select(func.count()).select_from(Assessment)
        .where(col(Assessment.stage) == "onsite", col(Assessment.created_at) >= start, col(Assessment.created_at) < end,
               col(Assessment.overridden).is_(True))).scalar_one()
    changes = [(str(r or ""), str(d or ""), int(c)) for r, d, c in session.execute(
        select(col(Assessment.recommended_stream), col(Assessment.final_stream), func.count())
        .where(col(Assessment.stage) == "onsite", col(Assessment.created_at) >= start, col(Assessment.created_at) < end,
               col(Assessment.overridden).is_(True))
        .group_by(col(Assessment.recommended_stream), col(Assessment.final_stream)))]
    changes.sort(key=lambda x: (-x[2], x[0], x[1]))
    recent = [OverrideRow(at, ref, rs, rl, fs, fl, reason or "") for at, ref, rs, rl, fs, fl, reason in session.execute(
        select(col(Assessment.created_at), col(Encounter.reference), col(Assessment.recommended_stream),
               col(Assessment.recommended_level), col(Assessment.final_stream), col(Assessment.final_level),
               col(Assessment.override_reason))
        .join(Encounter, col(Encounter.id) == col(Assessment.encounter_id))
        .where(col(Assessment.stage) == "onsite", col(Assessment.created_at) >= start, col(Assessment.created_at) < end,
               col(Assessment.overridden).is_(True))
        .order_by(col(Assessment.created_at).desc(), col(Assessment.id).desc()).limit(limit))]
    return Quality(
        first=first, last=last, pairs=pairs_total, differs=differs_total, by_stream=by_stream,
        by_rule=_by_rule(session, start, end), matrix=matrix, decisions=int(decisions),
        overrides=int(overrides_total), override_changes=changes, recent_overrides=recent,
    )


# The online result keeps its reasons as a JSON list of {"rule": ..., ...}; each rule that fired is counted.
_BY_RULE_SQL = {
    "sqlite": """
        SELECT json_extract(r.value, '$.rule') AS rule, COUNT(*) AS pairs,
               SUM(CASE WHEN online.recommended_stream = onsite.final_stream THEN 0 ELSE 1 END) AS differs
        FROM assessment AS onsite
        JOIN assessment AS online ON online.encounter_id = onsite.encounter_id AND online.stage = 'online'
        JOIN json_each(online.result, '$.reasons') AS r
        WHERE {where}
        GROUP BY rule""",
    "postgresql": """
        SELECT r.value ->> 'rule' AS rule, COUNT(*) AS pairs,
               SUM(CASE WHEN online.recommended_stream = onsite.final_stream THEN 0 ELSE 1 END) AS differs
        FROM assessment AS onsite
        JOIN assessment AS online ON online.encounter_id = onsite.encounter_id AND online.stage = 'online'
        CROSS JOIN LATERAL json_array_elements(online.result -> 'reasons') AS r(value)
        WHERE {where}
        GROUP BY rule""",
}
_PAIR_WHERE = """onsite.stage = 'onsite' AND onsite.created_at >= :start AND onsite.created_at < :end
        AND NOT EXISTS (SELECT 1 FROM assessment AS earlier WHERE earlier.encounter_id = onsite.encounter_id
                        AND earlier.stage = 'onsite' AND earlier.id < onsite.id)
        AND NOT EXISTS (SELECT 1 FROM assessment AS later WHERE later.encounter_id = online.encounter_id
                        AND later.stage = 'online' AND later.id > online.id)"""


def _by_rule(session: Session, start: datetime, end: datetime) -> list[Agreement]:
    dialect = session.get_bind().dialect.name
    sql = _BY_RULE_SQL.get(dialect)
    if sql is None:
        return []
    # Bound with the column's type, so SQLite compares the stored text with text of the same form.
    column_type = Assessment.__table__.c.created_at.type  # type: ignore[attr-defined]
    stmt = text(sql.format(where=_PAIR_WHERE)).bindparams(bindparam("start", type_=column_type),
                                                          bindparam("end", type_=column_type))
    rows = session.execute(stmt, {"start": start, "end": end}).all()
    result = [Agreement(str(rule), int(pairs), int(differs or 0)) for rule, pairs, differs in rows
              if rule and str(rule) not in GENERIC_RULES]
    result.sort(key=lambda a: (-(a.differs_pct or 0.0), -a.pairs, a.key))
    return result


def hours_labels() -> Sequence[str]:
    """"00:00" ... "23:00"."""
    return [f"{h:02d}:00" for h in range(24)]
