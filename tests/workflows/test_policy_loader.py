"""The policy loader refuses broken files with a message naming file and key: one case per rule."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import pytest
import yaml

from triage.config import ROOT
from triage.domain.errors import ConfigFileError
from triage.domain.policy import RiskLevel, Stream, load_policy

GOOD = yaml.safe_load((ROOT / "workflows" / "policy.yaml").read_text(encoding="utf-8"))
Mutation = Callable[[dict[str, Any]], None]

BROKEN: list[tuple[str, Mutation, str, str]] = [
    ("unknown key", lambda d: d.update(colour="red"), "colour", "unknown key; expected one of booking_days_ahead, "
     "chronic_care, clinical, hospital, outpatient_hours, priority_groups, referral_facilities, "
     "region_risk_level, streams, version"),
    ("missing version", lambda d: d.pop("version"), "version", "is required"),
    ("bad risk level", lambda d: d.update(region_risk_level="severe"), "region_risk_level",
     "must be low, medium or high, got 'severe'"),
    ("bad time zone", lambda d: d["hospital"].update(timezone="Mars/Olympus"), "hospital.timezone",
     "unknown time zone 'Mars/Olympus'"),
    ("missing English name", lambda d: d["hospital"]["name"].pop("en"), "hospital.name.en",
     "must be a non-empty text"),
    ("bad weekday", lambda d: d["outpatient_hours"].update(days=["mon", "funday"]), "outpatient_hours.days",
     "unknown weekday 'funday'; use mon, tue, wed, thu, fri, sat, sun"),
    ("bad clock", lambda d: d["outpatient_hours"].update(opens="8am"), "outpatient_hours.opens",
     "must be a time like \"08:00\", got '8am'"),
    ("closes before opens", lambda d: d["outpatient_hours"].update(opens="18:00"), "outpatient_hours.closes",
     "must be later than opens"),
    ("missing stream", lambda d: d["streams"].pop("chronic"), "streams.chronic", "is required"),
    ("unknown stream", lambda d: d["streams"].update(dental={}), "streams.dental",
     "unknown stream; expected fever, emergency, general, chronic"),
    ("negative capacity", lambda d: d["streams"]["general"].update(capacity_per_slot=-1),
     "streams.general.capacity_per_slot", "must be between 0 and 10000, got -1"),
    ("capacity not a number", lambda d: d["streams"]["general"].update(capacity_per_slot="many"),
     "streams.general.capacity_per_slot", "must be a whole number, got 'many'"),
    ("emergency target missing a level", lambda d: d["streams"]["emergency"]["wait_target_minutes"].pop(4),
     "streams.emergency.wait_target_minutes", "missing level(s) [4]"),
    ("elderly age out of range", lambda d: d["priority_groups"].update(elderly_from_years=20),
     "priority_groups.elderly_from_years", "must be between 50 and 100, got 20"),
    ("duplicate facility", lambda d: d["referral_facilities"].append(copy.deepcopy(d["referral_facilities"][0])),
     "referral_facilities[3].code", "duplicate facility code 'cmty-east'"),
]


@pytest.mark.parametrize(("case", "mutate", "key", "message"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_policy_is_refused_naming_file_and_key(
    tmp_path: Path, case: str, mutate: Mutation, key: str, message: str
) -> None:
    doc = copy.deepcopy(GOOD)
    mutate(doc)
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigFileError) as error:
        load_policy(path)
    assert str(error.value) == f"{path}: {key}: {message}"


def test_the_shipped_policy_loads_with_its_values() -> None:
    policy = load_policy(ROOT / "workflows" / "policy.yaml")
    assert policy.region_risk_level is RiskLevel.LOW
    assert policy.streams[Stream.EMERGENCY].wait_target(1) == 0
    assert policy.streams[Stream.EMERGENCY].wait_target(2) == 10
    assert policy.streams[Stream.EMERGENCY].wait_target(3) == 30
    assert not policy.streams[Stream.EMERGENCY].bookable_online
    assert policy.max_prescription_weeks == 12
    assert policy.clinical.fever_threshold_c == 37.3


def test_slots_follow_opening_hours_and_length() -> None:
    policy = load_policy(ROOT / "workflows" / "policy.yaml")
    monday = date(2026, 11, 23)
    starts = policy.streams[Stream.GENERAL].slot_starts(monday)
    assert starts[0] == time(8, 0) and starts[-1] == time(16, 30) and len(starts) == 18
    assert policy.streams[Stream.GENERAL].slot_starts(date(2026, 11, 22)) == []  # Sunday: closed
    assert len(policy.streams[Stream.FEVER].slot_starts(date(2026, 11, 22))) == 48  # fever clinic: 24 h
    assert policy.streams[Stream.EMERGENCY].slot_starts(monday) == []  # never booked, always open


def test_outpatient_hours_use_the_hospital_time_zone() -> None:
    policy = load_policy(ROOT / "workflows" / "policy.yaml")
    # 01:30 UTC on Monday is 09:30 in Shanghai: open. 10:00 UTC is 18:00 there: closed.
    assert policy.outpatient_open(datetime(2026, 11, 23, 1, 30, tzinfo=UTC))
    assert not policy.outpatient_open(datetime(2026, 11, 23, 10, 0, tzinfo=UTC))


def test_overrides_change_only_risk_level_and_capacity() -> None:
    policy = load_policy(ROOT / "workflows" / "policy.yaml")
    changed = policy.with_overrides(region_risk_level=RiskLevel.HIGH, capacities={Stream.GENERAL: 5},
                                    version="2026.11-1+1")
    assert changed.region_risk_level is RiskLevel.HIGH
    assert changed.streams[Stream.GENERAL].capacity_per_slot == 5
    assert changed.streams[Stream.FEVER] == policy.streams[Stream.FEVER]
    assert changed.version == "2026.11-1+1"
