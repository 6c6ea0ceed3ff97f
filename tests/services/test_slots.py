"""Slot keys as patients' browsers and API clients send them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from triage.domain.policy import Policy, load_policy
from triage.services.slots import parse_slot_key

POLICY_FILE = Path(__file__).resolve().parents[2] / "workflows" / "policy.yaml"


def base_policy() -> Policy:
    """The hospital's policy file as shipped (Asia/Shanghai)."""
    return load_policy(POLICY_FILE)


def test_a_local_slot_key_and_an_iso_time_name_the_same_start() -> None:
    policy = base_policy()
    expected = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)  # 09:00 in Beijing
    assert parse_slot_key("20261123T0900", policy) == expected
    assert parse_slot_key("2026-11-23T09:00:00", policy) == expected
    assert parse_slot_key("2026-11-23T01:00:00+00:00", policy) == expected


@pytest.mark.parametrize("key", ["", "  ", "tomorrow", "2026-02-30T09:00", "0001-01-01 00:00:00",
                                 "00010101T0000", "9999-12-31T23:59:59-12:00"])
def test_keys_that_name_no_possible_slot_are_none(key: str) -> None:
    assert parse_slot_key(key, base_policy()) is None
