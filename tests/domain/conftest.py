"""Fixtures for the engine's tests: the repository's policy, a fixed clock, and a patient factory."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from triage.domain.assessment import Assessment, assess
from triage.domain.policy import Policy, load_policy

ROOT = Path(__file__).resolve().parents[2]
SHANGHAI = ZoneInfo("Asia/Shanghai")
# A Wednesday at 10:00 in the hospital's time zone: outpatient clinics open.
OPEN = datetime(2026, 11, 18, 10, 0, tzinfo=SHANGHAI)
# The same Wednesday at 22:00: outpatient clinics closed.
CLOSED = datetime(2026, 11, 18, 22, 0, tzinfo=SHANGHAI)

Assess = Callable[..., Assessment]


@pytest.fixture(scope="session")
def policy() -> Policy:
    """The policy shipped in workflows/policy.yaml."""
    return load_policy(ROOT / "workflows" / "policy.yaml")


def healthy_adult(**overrides: Any) -> dict[str, Any]:
    """A stable, afebrile 40-year-old on site with no symptoms and no exposure; override any field."""
    data: dict[str, Any] = {
        "stage": "onsite", "age_years": 40, "sex": "F", "pregnancy_weeks": None,
        "temperature_c": 36.6, "heart_rate": 76, "respiratory_rate": 16, "sbp": 122, "spo2": 98,
        "on_oxygen": False, "avpu": "A", "gcs": 15, "pain_nrs": None, "symptoms": [],
        "epi": {"mid_high_risk_area_14d": False, "contact_case_14d": False,
                "contact_febrile_from_case_community_14d": False, "cluster_14d": False},
        "chronic_conditions": [], "needs": [], "arrival_mode": "walk_in",
    }
    data.update(overrides)
    return data


def online_patient(**overrides: Any) -> dict[str, Any]:
    """An online pre-screen with no measured vital signs; override any field."""
    data: dict[str, Any] = {"stage": "online", "age_years": 40, "sex": "F", "symptoms": [],
                            "arrival_mode": "online"}
    data.update(overrides)
    return data


@pytest.fixture
def run(policy: Policy) -> Assess:
    """Assess a healthy adult with overrides, while the outpatient clinics are open."""
    def _run(_policy: Policy | None = None, _now: datetime = OPEN, **overrides: Any) -> Assessment:
        return assess(healthy_adult(**overrides), _policy or policy, now=_now)
    return _run


@pytest.fixture
def run_online(policy: Policy) -> Assess:
    """Assess an online pre-screen with overrides."""
    def _run(_now: datetime = OPEN, **overrides: Any) -> Assessment:
        return assess(online_patient(**overrides), policy, now=_now)
    return _run


def rules(result: Assessment) -> list[str]:
    """The rule ids of a result's reasons, in order."""
    return [r.rule for r in result.reasons]
