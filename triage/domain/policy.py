"""The hospital's policy, loaded from YAML and validated: one hospital, one policy (004 §3.1)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from triage.domain.clinical import ClinicalPolicy
from triage.domain.errors import ConfigFileError


class Stream(enum.StrEnum):
    """The four streams of classified care (141 §3), with ticket prefix and labels."""

    FEVER = "fever"
    EMERGENCY = "emergency"
    GENERAL = "general"
    CHRONIC = "chronic"

    @property
    def prefix(self) -> str:
        """Ticket prefix: F-012, E-003, G-045, C-007."""
        return _PREFIX[self]

    @property
    def label_zh(self) -> str:
        """Chinese label."""
        return _LABELS[self][0]

    @property
    def label_en(self) -> str:
        """English label."""
        return _LABELS[self][1]

    def label(self, lang: str) -> str:
        """Label in the given language ("zh" or "en")."""
        return self.label_en if lang == "en" else self.label_zh


_PREFIX = {Stream.FEVER: "F", Stream.EMERGENCY: "E", Stream.GENERAL: "G", Stream.CHRONIC: "C"}
_LABELS = {
    Stream.FEVER: ("发热门诊", "Fever clinic"),
    Stream.EMERGENCY: ("急诊", "Emergency"),
    Stream.GENERAL: ("普通门诊", "General outpatient"),
    Stream.CHRONIC: ("慢病门诊", "Chronic care"),
}


class RiskLevel(enum.StrEnum):
    """Regional epidemic risk level (162 §1-4)."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    def label(self, lang: str) -> str:
        """Label in the given language."""
        zh, en = {"low": ("低风险", "Low risk"), "medium": ("中风险", "Medium risk"),
                  "high": ("高风险", "High risk")}[self.value]
        return en if lang == "en" else zh


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Hours:
    """Opening days and hours; `closes` may be 24:00 (end of day)."""

    days: frozenset[int]
    opens: time
    closes_minutes: int  # minutes after midnight, up to 1440

    def is_open(self, at: datetime) -> bool:
        """Whether these hours include the local datetime `at`."""
        minute = at.hour * 60 + at.minute
        opens = self.opens.hour * 60 + self.opens.minute
        return at.weekday() in self.days and opens <= minute < self.closes_minutes

    def is_open_on(self, day: date) -> bool:
        """Whether these hours include any time on `day`."""
        return day.weekday() in self.days


@dataclass(frozen=True)
class StreamPolicy:
    """One stream's booking and waiting rules."""

    stream: Stream
    hours: Hours
    bookable_online: bool
    slot_minutes: int
    capacity_per_slot: int
    wait_target_minutes: Mapping[int | None, int]  # acuity level (None: not graded) -> minutes
    consultation_minutes: int = 10  # average length of one consultation, for estimated waits

    def wait_target(self, cn_level: int | None) -> int:
        """Target minutes from ticket to call for a patient of this acuity."""
        if cn_level in self.wait_target_minutes:
            return self.wait_target_minutes[cn_level]
        return self.wait_target_minutes.get(None, max(self.wait_target_minutes.values()))

    def slot_starts(self, day: date) -> list[time]:
        """Local start times of this stream's bookable slots on `day`."""
        if not self.bookable_online or not self.hours.is_open_on(day):
            return []
        start = self.hours.opens.hour * 60 + self.hours.opens.minute
        starts = []
        while start + self.slot_minutes <= self.hours.closes_minutes:
            starts.append(time(start // 60, start % 60))
            start += self.slot_minutes
        return starts


@dataclass(frozen=True)
class Facility:
    """A nearby facility of the medical alliance, for referral."""

    code: str
    name_zh: str
    name_en: str

    def name(self, lang: str) -> str:
        """Name in the given language."""
        return self.name_en if lang == "en" else self.name_zh


@dataclass(frozen=True)
class Policy:
    """Everything a hospital decides for itself, as validated data."""

    version: str
    hospital_name_zh: str
    hospital_name_en: str
    timezone: ZoneInfo
    region_risk_level: RiskLevel
    outpatient_hours: Hours
    booking_days_ahead: int
    streams: Mapping[Stream, StreamPolicy]
    newborn_under_days: int
    child_under_years: int
    elderly_from_years: int
    max_prescription_weeks: int
    offer_online_followup_to_stable_refill: bool
    referral_facilities: tuple[Facility, ...]
    clinical: ClinicalPolicy
    source: str = field(default="", compare=False)

    def hospital_name(self, lang: str) -> str:
        """Hospital name in the given language."""
        return self.hospital_name_en if lang == "en" else self.hospital_name_zh

    def local(self, at: datetime) -> datetime:
        """Convert an aware (or naive, read as UTC) datetime to the hospital's local time."""
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        return at.astimezone(self.timezone)

    def local_day_bounds(self, day: date) -> tuple[datetime, datetime]:
        """The start and end (aware, UTC) of the hospital's local `day`."""
        start = datetime.combine(day, time(0), tzinfo=self.timezone)
        end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=self.timezone)
        return start.astimezone(UTC), end.astimezone(UTC)

    def outpatient_open(self, at: datetime) -> bool:
        """Whether the outpatient clinics are open at `at` (aware; naive is read as UTC)."""
        return self.outpatient_hours.is_open(self.local(at))

    def facility(self, code: str) -> Facility | None:
        """The referral facility with this code, if the policy lists it."""
        return next((f for f in self.referral_facilities if f.code == code), None)

    def with_overrides(self, *, region_risk_level: RiskLevel | None = None,
                       capacities: Mapping[Stream, int] | None = None,
                       version: str | None = None) -> Policy:
        """A copy with the supervisor-editable values changed (risk level, capacities)."""
        streams = dict(self.streams)
        for stream, capacity in (capacities or {}).items():
            streams[stream] = replace(streams[stream], capacity_per_slot=capacity)
        return replace(
            self,
            region_risk_level=region_risk_level or self.region_risk_level,
            streams=streams,
            version=version or self.version,
        )


class _Reader:
    """Reads typed values out of a YAML mapping, raising ConfigFileError that names the key."""

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, key: str, message: str) -> ConfigFileError:
        return ConfigFileError(self.path, key, message)

    def mapping(self, data: Any, key: str) -> Mapping[str, Any]:
        if not isinstance(data, Mapping):
            raise self.fail(key, "must be a mapping")
        return data

    def get(self, data: Mapping[str, Any], key: str, where: str, default: Any = ...) -> Any:
        if key not in data:
            if default is ...:
                raise self.fail(_join(where, key), "is required")
            return default
        return data[key]

    def integer(self, value: Any, key: str, low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"must be a whole number, got {value!r}")
        if not low <= value <= high:
            raise self.fail(key, f"must be between {low} and {high}, got {value}")
        return value

    def number(self, value: Any, key: str, low: float, high: float) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(key, f"must be a number, got {value!r}")
        if not low <= value <= high:
            raise self.fail(key, f"must be between {low} and {high}, got {value}")
        return float(value)

    def boolean(self, value: Any, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(key, f"must be true or false, got {value!r}")
        return value

    def text(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, "must be a non-empty text")
        return value.strip()

    def names(self, value: Any, key: str) -> tuple[str, str]:
        data = self.mapping(value, key)
        return self.text(data.get("zh"), f"{key}.zh"), self.text(data.get("en"), f"{key}.en")

    def clock(self, value: Any, key: str, *, allow_24: bool = False) -> int:
        if not isinstance(value, str) or len(value) != 5 or value[2] != ":":
            raise self.fail(key, f'must be a time like "08:00", got {value!r}')
        try:
            hours, minutes = int(value[:2]), int(value[3:])
        except ValueError:
            raise self.fail(key, f'must be a time like "08:00", got {value!r}') from None
        total = hours * 60 + minutes
        if minutes > 59 or total > (1440 if allow_24 else 1439):
            raise self.fail(key, f"is not a valid time of day: {value!r}")
        return total

    def hours(self, data: Mapping[str, Any], where: str) -> Hours:
        days = self.get(data, "days", where)
        if not isinstance(days, list) or not days:
            raise self.fail(f"{where}.days", f"must be a list of weekdays from {', '.join(WEEKDAYS)}")
        for day in days:
            if day not in WEEKDAYS:
                raise self.fail(f"{where}.days", f"unknown weekday {day!r}; use {', '.join(WEEKDAYS)}")
        opens = self.clock(self.get(data, "opens", where), f"{where}.opens")
        closes = self.clock(self.get(data, "closes", where), f"{where}.closes", allow_24=True)
        if closes <= opens:
            raise self.fail(f"{where}.closes", "must be later than opens")
        return Hours(frozenset(WEEKDAYS.index(d) for d in days), time(opens // 60, opens % 60), closes)


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


_TOP_KEYS = {
    "version", "hospital", "region_risk_level", "outpatient_hours", "booking_days_ahead", "streams",
    "priority_groups", "chronic_care", "referral_facilities", "clinical",
}


_STREAM_KEYS = {
    "bookable_online", "slot_minutes", "capacity_per_slot", "days", "opens", "closes", "wait_target_minutes",
    "consultation_minutes",
}


def parse_policy(data: Any, path: str) -> Policy:
    """Validate a parsed policy document and build the Policy; raise ConfigFileError on the first fault."""
    r = _Reader(path)
    doc = r.mapping(data, "(top level)")
    for key in doc:
        if key not in _TOP_KEYS:
            raise r.fail(str(key), f"unknown key; expected one of {', '.join(sorted(_TOP_KEYS))}")
    version = r.get(doc, "version", "")
    if isinstance(version, (int, float)) and not isinstance(version, bool):
        version = str(version)
    version = r.text(version, "version")

    hospital = r.mapping(r.get(doc, "hospital", ""), "hospital")
    name_zh, name_en = r.names(r.get(hospital, "name", "hospital"), "hospital.name")
    tz_name = r.text(r.get(hospital, "timezone", "hospital"), "hospital.timezone")
    try:
        tz = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise r.fail("hospital.timezone", f"unknown time zone {tz_name!r}") from None

    level = r.get(doc, "region_risk_level", "")
    if level not in {x.value for x in RiskLevel}:
        raise r.fail("region_risk_level", f"must be low, medium or high, got {level!r}")

    outpatient = r.hours(r.mapping(r.get(doc, "outpatient_hours", ""), "outpatient_hours"),
                         "outpatient_hours")
    ahead = r.integer(r.get(doc, "booking_days_ahead", "", 6), "booking_days_ahead", 0, 60)

    streams_doc = r.mapping(r.get(doc, "streams", ""), "streams")
    streams: dict[Stream, StreamPolicy] = {}
    for key in streams_doc:
        if key not in {s.value for s in Stream}:
            raise r.fail(f"streams.{key}", "unknown stream; expected fever, emergency, general, chronic")
    for stream in Stream:
        where = f"streams.{stream.value}"
        sdoc = r.mapping(r.get(streams_doc, stream.value, "streams"), where)
        for key in sdoc:
            if key not in _STREAM_KEYS:
                raise r.fail(f"{where}.{key}", f"unknown key; expected one of {', '.join(sorted(_STREAM_KEYS))}")
        hours = r.hours(sdoc, where)
        bookable = r.boolean(sdoc.get("bookable_online", True), f"{where}.bookable_online")
        slot_minutes = capacity = 0
        if bookable:
            slot_minutes = r.integer(r.get(sdoc, "slot_minutes", where), f"{where}.slot_minutes", 5, 240)
            capacity = r.integer(r.get(sdoc, "capacity_per_slot", where),
                                 f"{where}.capacity_per_slot", 0, 10000)
        target = r.get(sdoc, "wait_target_minutes", where)
        targets: dict[int | None, int] = {}
        if isinstance(target, Mapping):
            for level_key, minutes in target.items():
                lk = f"{where}.wait_target_minutes.{level_key}"
                if level_key not in (1, 2, 3, 4):
                    raise r.fail(lk, "acuity level must be 1, 2, 3 or 4")
                targets[level_key] = r.integer(minutes, lk, 0, 1440)
            missing = sorted({1, 2, 3, 4} - set(targets))
            if missing:
                raise r.fail(f"{where}.wait_target_minutes", f"missing level(s) {missing}")
        else:
            targets[None] = r.integer(target, f"{where}.wait_target_minutes", 0, 1440)
        consultation = r.integer(sdoc.get("consultation_minutes", 10), f"{where}.consultation_minutes", 1, 240)
        streams[stream] = StreamPolicy(stream, hours, bookable, slot_minutes, capacity, targets, consultation)

    groups = r.mapping(r.get(doc, "priority_groups", ""), "priority_groups")
    chronic = r.mapping(r.get(doc, "chronic_care", ""), "chronic_care")
    facilities: list[Facility] = []
    fac_doc = r.get(doc, "referral_facilities", "", [])
    if not isinstance(fac_doc, list):
        raise r.fail("referral_facilities", "must be a list")
    for i, item in enumerate(fac_doc):
        where = f"referral_facilities[{i}]"
        item = r.mapping(item, where)
        code = r.text(r.get(item, "code", where), f"{where}.code")
        if any(f.code == code for f in facilities):
            raise r.fail(f"{where}.code", f"duplicate facility code {code!r}")
        zh, en = r.names(r.get(item, "name", where), f"{where}.name")
        facilities.append(Facility(code, zh, en))

    return Policy(
        version=version,
        hospital_name_zh=name_zh,
        hospital_name_en=name_en,
        timezone=tz,
        region_risk_level=RiskLevel(level),
        outpatient_hours=outpatient,
        booking_days_ahead=ahead,
        streams=streams,
        newborn_under_days=r.integer(r.get(groups, "newborn_under_days", "priority_groups"),
                                     "priority_groups.newborn_under_days", 1, 365),
        child_under_years=r.integer(r.get(groups, "child_under_years", "priority_groups"),
                                    "priority_groups.child_under_years", 1, 18),
        elderly_from_years=r.integer(r.get(groups, "elderly_from_years", "priority_groups"),
                                     "priority_groups.elderly_from_years", 50, 100),
        max_prescription_weeks=r.integer(r.get(chronic, "max_prescription_weeks", "chronic_care"),
                                         "chronic_care.max_prescription_weeks", 1, 52),
        offer_online_followup_to_stable_refill=r.boolean(
            chronic.get("offer_online_followup_to_stable_refill", True),
            "chronic_care.offer_online_followup_to_stable_refill"),
        referral_facilities=tuple(facilities),
        clinical=ClinicalPolicy.from_mapping(r.get(doc, "clinical", "", {}), path),
        source=path,
    )


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy YAML file; raise ConfigFileError naming file and key."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigFileError(name, "", f"cannot read the policy file ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        raise ConfigFileError(name, where, f"not valid YAML ({getattr(exc, 'problem', exc)})") from None
    return parse_policy(data, name)
