"""The audit trail, read back: a case's full history, and the log filtered by staff member, stream and day.

Reads only. The log itself is written by `triage.services.core.transition` in the same transaction as every
state change and cannot be altered afterwards (database triggers). The log is paged by id ("older than"),
(keyset on time and id), so a page costs the same on the first day and after years of use.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select, tuple_
from sqlmodel import Session, col

from triage.domain.errors import InvalidInput, NotFound
from triage.domain.policy import Policy, Stream
from triage.domain.reports import DAY_MESSAGE, parse_day
from triage.models import (
    Assessment,
    CallbackRequest,
    ContactAttempt,
    Encounter,
    Notification,
    StaffUser,
    TransitionLog,
)
from triage.services.core import normalize_reference

PAGE_SIZE = 100


@dataclass(frozen=True)
class HistoryEntry:
    """One transition of a case, with the staff member who made it (None for the patient or the system)."""

    log: TransitionLog
    actor: StaffUser | None


@dataclass(frozen=True)
class CaseHistory:
    """Everything recorded about one case, oldest first."""

    encounter: Encounter
    assessments: list[tuple[Assessment, StaffUser | None]]
    transitions: list[HistoryEntry]
    contacts: list[tuple[ContactAttempt, StaffUser | None]]
    callbacks: list[CallbackRequest]
    notifications: list[Notification]


def case_history(session: Session, reference: str) -> CaseHistory:
    """A case's assessments (with inputs and results), transitions, contacts and messages."""
    code = normalize_reference(reference or "")
    encounter = session.execute(select(Encounter).where(col(Encounter.reference) == code)).scalar_one_or_none()
    if encounter is None:
        raise NotFound("找不到此编号的病例。", "No case has this reference code.", field="reference")
    assessments = [(a, u) for a, u in session.execute(
        select(Assessment, StaffUser).join(StaffUser, col(StaffUser.id) == col(Assessment.actor_id), isouter=True)
        .where(col(Assessment.encounter_id) == encounter.id).order_by(col(Assessment.id)))]
    transitions = [HistoryEntry(log, user) for log, user in session.execute(
        select(TransitionLog, StaffUser).join(StaffUser, col(StaffUser.id) == col(TransitionLog.actor_id), isouter=True)
        .where(col(TransitionLog.encounter_id) == encounter.id).order_by(col(TransitionLog.id)))]
    contacts = [(c, u) for c, u in session.execute(
        select(ContactAttempt, StaffUser)
        .join(StaffUser, col(StaffUser.id) == col(ContactAttempt.actor_id), isouter=True)
        .where(col(ContactAttempt.encounter_id) == encounter.id).order_by(col(ContactAttempt.id)))]
    callbacks = list(session.execute(select(CallbackRequest).where(col(CallbackRequest.encounter_id) == encounter.id)
                                     .order_by(col(CallbackRequest.id))).scalars())
    notifications = list(session.execute(select(Notification).where(col(Notification.encounter_id) == encounter.id)
                                         .order_by(col(Notification.id))).scalars())
    return CaseHistory(encounter, assessments, transitions, contacts, callbacks, notifications)


@dataclass(frozen=True)
class LogFilter:
    """Which log rows to show: by staff member, stream and local day (each optional), older than an id."""

    staff_id: int | None = None
    stream: Stream | None = None
    day: date | None = None
    before_id: int | None = None

    def query_args(self) -> dict[str, str]:
        """The filter as query-string values (without the page cursor)."""
        args = {}
        if self.staff_id is not None:
            args["staff"] = str(self.staff_id)
        if self.stream is not None:
            args["stream"] = self.stream.value
        if self.day is not None:
            args["day"] = self.day.isoformat()
        return args


def _row_id(text: str | None) -> bool:
    """Whether `text` can be a row's id: digits, and within the database's integer."""
    value = str(text or "").strip()
    # ASCII digits and few of them: int() refuses more than 4,300 digits (a ValueError, not a message).
    return value.isascii() and value.isdecimal() and len(value) <= 10 and int(value) < 2**31


def parse_log_filter(*, staff: str | None, stream: str | None, day: str | None, before: str | None) -> LogFilter:
    """Read the filter from query-string values; InvalidInput names the field at fault."""
    errors: dict[str, tuple[str, str]] = {}
    staff_id = parsed_stream = parsed_day = before_id = None
    if (staff or "").strip():
        if not _row_id(staff):
            errors["staff"] = ("请选择员工。", "Choose a member of staff.")
        else:
            staff_id = int(str(staff).strip())
    if (stream or "").strip():
        try:
            parsed_stream = Stream(str(stream).strip())
        except ValueError:
            errors["stream"] = ("请选择分流。", "Choose a stream.")
    if (day or "").strip():
        try:
            parsed_day = parse_day(str(day))
        except ValueError:
            errors["day"] = DAY_MESSAGE
    if (before or "").strip():
        if not _row_id(before):
            errors["before"] = ("页码无效。", "Invalid page.")
        else:
            before_id = int(str(before).strip())
    if errors:
        raise InvalidInput(errors)
    return LogFilter(staff_id, parsed_stream, parsed_day, before_id)


@dataclass(frozen=True)
class LogRow:
    """One row of the log, with the case's reference and ticket and the staff member's name."""

    log: TransitionLog
    reference: str
    ticket: str | None
    actor: StaffUser | None


@dataclass(frozen=True)
class LogPage:
    """A page of the log, newest first; `older` is the cursor of the next page (None on the last)."""

    rows: list[LogRow]
    older: int | None


def audit_log(session: Session, *, policy: Policy, where: LogFilter, limit: int = PAGE_SIZE) -> LogPage:
    """The log rows matching the filter, newest first, one page at a time."""
    stmt = (select(TransitionLog, col(Encounter.reference), col(Encounter.ticket), StaffUser)
            .join(Encounter, col(Encounter.id) == col(TransitionLog.encounter_id))
            .join(StaffUser, col(StaffUser.id) == col(TransitionLog.actor_id), isouter=True))
    if where.staff_id is not None:
        stmt = stmt.where(col(TransitionLog.actor_id) == where.staff_id)
    if where.stream is not None:
        stmt = stmt.where(col(TransitionLog.stream) == where.stream.value)
    if where.day is not None:
        start, end = policy.local_day_bounds(where.day)
        stmt = stmt.where(col(TransitionLog.at) >= start, col(TransitionLog.at) < end)
    if where.before_id is not None:
        # Keyset paging on (time, id): the page after the row `before_id`, whatever the log's size.
        anchor = session.execute(select(col(TransitionLog.at)).where(col(TransitionLog.id) == where.before_id)
                                 ).scalar_one_or_none()
        if anchor is not None:
            stmt = stmt.where(tuple_(col(TransitionLog.at), col(TransitionLog.id)) < tuple_(anchor, where.before_id))
    rows = session.execute(stmt.order_by(col(TransitionLog.at).desc(), col(TransitionLog.id).desc())
                           .limit(limit + 1)).all()
    page = [LogRow(log, reference, ticket, user) for log, reference, ticket, user in rows[:limit]]
    older = page[-1].log.id if len(rows) > limit and page else None
    return LogPage(page, older)


def staff_choices(session: Session) -> list[StaffUser]:
    """Every staff account, for the log's filter (deactivated ones too: their past actions stay)."""
    return list(session.execute(select(StaffUser).order_by(col(StaffUser.username))).scalars())


def local_time(policy: Policy, at: datetime) -> str:
    """A timestamp in the hospital's local time, to the second."""
    return policy.local(at).strftime("%Y-%m-%d %H:%M:%S")
