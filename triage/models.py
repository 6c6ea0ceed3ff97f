"""Database tables (SQLModel). Timestamps are aware UTC; the policy's time zone is applied on display."""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import DDL, JSON, BigInteger, Column, Index, Text, UniqueConstraint, event, text
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    """Current time, aware, in UTC: the form every timestamp is stored in."""
    return datetime.now(UTC)


class Role(enum.StrEnum):
    """Staff roles; each includes what the previous may do where the views say so."""

    NURSE = "nurse"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"

    def label(self, lang: str) -> str:
        """Label in the given language."""
        zh, en = {"nurse": ("护士", "Nurse"), "supervisor": ("主管", "Supervisor"),
                  "admin": ("管理员", "Administrator")}[self.value]
        return en if lang == "en" else zh


class Origin(enum.StrEnum):
    """How an encounter started."""

    ONLINE = "online"
    WALK_IN = "walk_in"


class StaffUser(SQLModel, table=True):
    """A member of staff who can log in."""

    __tablename__ = "staff_user"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True)
    display_name: str = Field(max_length=100)
    role: str = Field(max_length=16)
    password_hash: str = Field(max_length=255)
    active: bool = True
    # Bumped on password reset or deactivation: every existing login session becomes invalid.
    session_epoch: int = 0
    created_at: datetime = Field(default_factory=utcnow)


class ApiToken(SQLModel, table=True):
    """A bearer token for the staff JSON API; only its SHA-256 digest is stored."""

    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="staff_user.id", index=True)
    token_hash: str = Field(max_length=64, unique=True)
    label: str = Field(default="", max_length=100)
    created_at: datetime = Field(default_factory=utcnow)
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class Slot(SQLModel, table=True):
    """A bookable time slot of one stream, with its capacity and how many are booked."""

    __tablename__ = "slot"
    __table_args__ = (UniqueConstraint("stream", "starts_at", name="uq_slot_stream_start"),
                      Index("ix_slot_day_stream", "day", "stream"))

    id: int | None = Field(default=None, primary_key=True)
    stream: str = Field(max_length=16)
    day: date  # the hospital's local date
    starts_at: datetime
    ends_at: datetime
    capacity: int
    booked: int = 0


class Encounter(SQLModel, table=True):
    """One patient visit, from pre-screen or walk-in to its end. Personal data kept to the minimum."""

    __tablename__ = "encounter"
    __table_args__ = (
        UniqueConstraint("ticket_day", "ticket", name="uq_encounter_ticket"),
        # The queue read: a stream's live encounters in queue order.
        Index("ix_encounter_queue", "state", "stream", "acuity_sort", "priority_sort", "order_at"),
        Index("ix_encounter_visit_day", "visit_day", "stream"),
        Index("ix_encounter_created", "created_at"),
        # Supervisors' reads: what ended today (dashboard, workflow diagram) without scanning the year. Open
        # encounters (every new pre-screen) are left out: nothing looks them up by an end.
        Index("ix_encounter_ended", "ended_at", "state", "stream", sqlite_where=text("ended_at IS NOT NULL"),
              postgresql_where=text("ended_at IS NOT NULL")),
        # A phone's open bookings (the limit per number at pre-screening) and the look-up by code and phone.
        Index("ix_encounter_phone", "patient_phone"),
    )

    id: int | None = Field(default=None, primary_key=True)
    reference: str = Field(max_length=16, unique=True)
    status_token_hash: str | None = Field(default=None, max_length=64, unique=True)
    origin: str = Field(max_length=16)
    state: str = Field(max_length=32)
    workflow_name: str = Field(max_length=32)
    workflow_version: str = Field(max_length=32)
    policy_version: str = Field(max_length=64)
    version: int = 1

    # Personal data: removed by `flask purge` once the case is closed and old enough.
    patient_name: str | None = Field(default=None, max_length=100)
    patient_phone: str | None = Field(default=None, max_length=32)
    party_id: str | None = Field(default=None, max_length=32, index=True)  # family booked together
    age_years: int | None = None
    sex: str | None = Field(default=None, max_length=1)
    visit_reason: str | None = Field(default=None, max_length=200)
    patient_lang: str = Field(default="zh", max_length=8)  # language of messages to the patient

    provisional_stream: str | None = Field(default=None, max_length=16)
    stream: str | None = Field(default=None, max_length=16)
    cn_level: int | None = None
    priority_flags: str = Field(default="", max_length=200)  # comma-separated codes
    isolation_required: bool = False
    acuity_sort: int = 9  # cn_level for emergency, 5 otherwise: more urgent first
    priority_sort: int = 1  # 0 for a priority group
    order_at: datetime | None = None  # slot time, else arrival

    slot_id: int | None = Field(default=None, foreign_key="slot.id", index=True)
    slot_starts_at: datetime | None = None
    visit_day: date | None = None  # local date the visit is for (slot day, else arrival day)

    ticket_day: date | None = None
    ticket_no: int | None = None
    ticket: str | None = Field(default=None, max_length=16)
    disposition: str | None = Field(default=None, max_length=64)  # referral target, online follow-up...

    created_at: datetime = Field(default_factory=utcnow)
    arrived_at: datetime | None = None
    triaged_at: datetime | None = None
    queued_at: datetime | None = None
    called_at: datetime | None = None
    call_count: int = 0
    started_at: datetime | None = None
    ended_at: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)
    purged_at: datetime | None = None

    @property
    def flags(self) -> list[str]:
        """Priority flags as a list."""
        return [f for f in self.priority_flags.split(",") if f]


class Assessment(SQLModel, table=True):
    """Every online and on-site assessment, with its inputs, result and policy version. Never updated."""

    __tablename__ = "assessment"
    # Quality of triage: the on-site decisions of a period, without scanning every assessment.
    __table_args__ = (Index("ix_assessment_stage_created", "stage", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    encounter_id: int = Field(foreign_key="encounter.id", index=True)
    stage: str = Field(max_length=8)
    created_at: datetime = Field(default_factory=utcnow)
    actor_id: int | None = Field(default=None, foreign_key="staff_user.id")
    inputs: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    result: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    recommended_stream: str | None = Field(default=None, max_length=16)
    recommended_level: int | None = None
    final_stream: str | None = Field(default=None, max_length=16)
    final_level: int | None = None
    overridden: bool = False
    override_reason: str | None = Field(default=None, sa_column=Column(Text))
    policy_version: str = Field(max_length=64)


# The transitions that change what a clinic's queue shows: into, within or out of its live states. Written as SQL
# once, so the query that asks for the latest of them matches the partial index below word for word (a planner
# uses a partial index only when the query repeats its condition).
QUEUE_CHANGE_SQL = ("from_state IN ('waiting', 'called', 'in_consultation') "
                    "OR to_state IN ('waiting', 'called', 'in_consultation')")


class TransitionLog(SQLModel, table=True):
    """Append-only audit of every state change: from, to, trigger, actor, time, reason, versions."""

    __tablename__ = "transition_log"
    __table_args__ = (
        Index("ix_transition_log_at", "at"),
        # What a staff member did (the audit's filter); the patients' and the system's rows are left out.
        Index("ix_transition_log_actor_id", "actor_id", sqlite_where=text("actor_id IS NOT NULL"),
              postgresql_where=text("actor_id IS NOT NULL")),
        # The latest queue change of a stream, one index probe: a clinic screen's cached list is still current
        # while this id has not moved (triage/web/queues.py).
        Index("ix_transition_log_queue", "stream", "id", sqlite_where=text(QUEUE_CHANGE_SQL),
              postgresql_where=text(QUEUE_CHANGE_SQL)),
    )

    id: int | None = Field(default=None, primary_key=True)
    encounter_id: int = Field(foreign_key="encounter.id", index=True)
    at: datetime = Field(default_factory=utcnow)
    trigger: str = Field(max_length=32)
    from_state: str | None = Field(default=None, max_length=32)
    to_state: str = Field(max_length=32)
    actor_id: int | None = Field(default=None, foreign_key="staff_user.id")
    actor_kind: str = Field(max_length=16)  # staff | patient | system
    stream: str | None = Field(default=None, max_length=16)
    reason: str | None = Field(default=None, sa_column=Column(Text))
    workflow_version: str = Field(max_length=32)
    policy_version: str = Field(max_length=64)


class TicketCounter(SQLModel, table=True):
    """The last ticket number issued per stream per local day."""

    __tablename__ = "ticket_counter"

    day: date = Field(primary_key=True)
    stream: str = Field(primary_key=True, max_length=16)
    last_no: int = 0


class CallbackRequest(SQLModel, table=True):
    """A patient who found no free slot asks staff to call back."""

    __tablename__ = "callback_request"

    id: int | None = Field(default=None, primary_key=True)
    encounter_id: int | None = Field(default=None, foreign_key="encounter.id", index=True)
    created_at: datetime = Field(default_factory=utcnow)
    stream: str = Field(max_length=16)
    preferred_day: date | None = None
    handled_at: datetime | None = None
    handled_by_id: int | None = Field(default=None, foreign_key="staff_user.id")
    outcome: str | None = Field(default=None, max_length=200)


class ContactAttempt(SQLModel, table=True):
    """Staff contacting a patient whose booking must change (141 §5, 004 §4.5)."""

    __tablename__ = "contact_attempt"

    id: int | None = Field(default=None, primary_key=True)
    encounter_id: int = Field(foreign_key="encounter.id", index=True)
    at: datetime = Field(default_factory=utcnow)
    actor_id: int | None = Field(default=None, foreign_key="staff_user.id")
    channel: str = Field(max_length=16)
    outcome: str = Field(max_length=32)
    note: str | None = Field(default=None, sa_column=Column(Text))


class Notification(SQLModel, table=True):
    """A message sent to a patient through the notification interface."""

    __tablename__ = "notification"

    id: int | None = Field(default=None, primary_key=True)
    encounter_id: int | None = Field(default=None, foreign_key="encounter.id", index=True)
    at: datetime = Field(default_factory=utcnow)
    channel: str = Field(max_length=16)
    recipient: str = Field(max_length=32)  # masked
    body: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(max_length=16)


class PolicyChange(SQLModel, table=True):
    """A supervisor's change of risk level or capacities on top of the policy file, versioned."""

    __tablename__ = "policy_change"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow)
    actor_id: int = Field(foreign_key="staff_user.id")
    base_version: str = Field(max_length=64)
    region_risk_level: str = Field(max_length=8)
    capacities: dict[str, int] = Field(sa_column=Column(JSON, nullable=False))
    reason: str = Field(sa_column=Column(Text, nullable=False))


class WeeklyBaseline(SQLModel, table=True):
    """Volumes of an ISO week before the system was used, for the restoration report."""

    __tablename__ = "weekly_baseline"
    __table_args__ = (UniqueConstraint("iso_year", "iso_week", name="uq_weekly_baseline_week"),)

    id: int | None = Field(default=None, primary_key=True)
    iso_year: int
    iso_week: int
    outpatient: int
    emergency: int
    other: int
    entered_by_id: int | None = Field(default=None, foreign_key="staff_user.id")
    entered_at: datetime = Field(default_factory=utcnow)


class StaffStamp(SQLModel, table=True):
    """One row whose stamp the database itself raises at every change to staff accounts or API tokens (triggers):
    each worker keeps the accounts it has looked up while the stamp holds (triage/services/staff.py)."""

    __tablename__ = "staff_stamp"

    id: int | None = Field(default=None, primary_key=True)
    stamp: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))


# Every change to the accounts or tokens, whatever makes it (the app, the CLI, an administrator's SQL), raises the
# stamp in the same transaction. An upsert: a missing row (deleted by hand) is created again, at the time in
# milliseconds, so that its value does not come back to one a worker holds.
_STAMP_SQL = ("INSERT INTO staff_stamp (id, stamp) VALUES (1, {now_ms}) "
              "ON CONFLICT (id) DO UPDATE SET stamp = staff_stamp.stamp + 1")
_STAMP_TABLES = ("staff_user", "api_token")
STAMP_DDL = {
    "sqlite": [DDL(f"CREATE TRIGGER {table}_stamp_{event_name} AFTER {event_name.upper()} ON {table} BEGIN "
                   + _STAMP_SQL.format(now_ms="CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)")
                   + "; END")
               for table in _STAMP_TABLES for event_name in ("insert", "update", "delete")],
    "postgresql": [
        DDL("CREATE OR REPLACE FUNCTION staff_stamp_raise() RETURNS trigger AS $$ BEGIN "
            + _STAMP_SQL.format(now_ms="(extract(epoch FROM clock_timestamp()) * 1000)::bigint")
            + "; RETURN NULL; END; $$ LANGUAGE plpgsql"),
        *(DDL(f"CREATE TRIGGER {table}_stamp AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
              "FOR EACH STATEMENT EXECUTE FUNCTION staff_stamp_raise()") for table in _STAMP_TABLES),
    ],
}
for _dialect, _statements in STAMP_DDL.items():
    for _ddl in _statements:
        event.listen(SQLModel.metadata, "after_create", _ddl.execute_if(dialect=_dialect))


# The audit log is append-only, enforced by the database itself, not only by the code.
_NO_CHANGE_SQLITE = [
    DDL("CREATE TRIGGER transition_log_no_update BEFORE UPDATE ON transition_log "
        "BEGIN SELECT RAISE(ABORT, 'transition_log is append-only'); END"),
    DDL("CREATE TRIGGER transition_log_no_delete BEFORE DELETE ON transition_log "
        "BEGIN SELECT RAISE(ABORT, 'transition_log is append-only'); END"),
]
_NO_CHANGE_POSTGRES = [
    DDL("CREATE OR REPLACE FUNCTION transition_log_append_only() RETURNS trigger AS $$ "
        "BEGIN RAISE EXCEPTION 'transition_log is append-only'; END; $$ LANGUAGE plpgsql"),
    DDL("CREATE TRIGGER transition_log_no_change BEFORE UPDATE OR DELETE ON transition_log "
        "FOR EACH ROW EXECUTE FUNCTION transition_log_append_only()"),
]
_TABLE = SQLModel.metadata.tables["transition_log"]
for _ddl in _NO_CHANGE_SQLITE:
    event.listen(_TABLE, "after_create", _ddl.execute_if(dialect="sqlite"))
for _ddl in _NO_CHANGE_POSTGRES:
    event.listen(_TABLE, "after_create", _ddl.execute_if(dialect="postgresql"))

APPEND_ONLY_DDL = {"sqlite": _NO_CHANGE_SQLITE, "postgresql": _NO_CHANGE_POSTGRES}
