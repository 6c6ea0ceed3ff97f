"""Micro-benchmark of the clinical assessment engine: assessments per second on one core.

Run `.venv/bin/python bench/engine.py [seconds]`; the full benchmark imports `measure`.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: bench/ is on the path, the project root is not
    sys.path.insert(0, str(ROOT))

from triage.domain.assessment import assess  # noqa: E402
from triage.domain.policy import load_policy  # noqa: E402

NOW = datetime(2026, 11, 18, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
_NO_EPI = {"mid_high_risk_area_14d": False, "contact_case_14d": False,
           "contact_febrile_from_case_community_14d": False, "cluster_14d": False}


def _onsite(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "stage": "onsite", "age_years": 45, "sex": "F", "pregnancy_weeks": None, "temperature_c": 36.6,
        "heart_rate": 78, "respiratory_rate": 16, "sbp": 124, "spo2": 98, "on_oxygen": False, "avpu": "A",
        "gcs": 15, "pain_nrs": None, "symptoms": [], "epi": _NO_EPI, "chronic_conditions": [], "needs": [],
        "arrival_mode": "walk_in",
    }
    data.update(overrides)
    return data


# A mix like an entrance's morning: fever, emergencies, chronic refills, online pre-screens, children,
# and a mistyped record that is rejected.
MIX: tuple[dict[str, Any], ...] = (
    _onsite(temperature_c=38.5, symptoms=["fever", "dry_cough", "fatigue"]),
    _onsite(symptoms=["limb_injury"], pain_nrs=3),
    _onsite(age_years=58, sex="M", symptoms=["chest_pain", "diaphoresis"], pain_nrs=8, heart_rate=98),
    _onsite(temperature_c=40.1, heart_rate=140, respiratory_rate=30, sbp=64, spo2=90, avpu="P", gcs=8,
            symptoms=["fever", "confusion"], arrival_mode="ambulance"),
    _onsite(age_years=72, chronic_conditions=["hypertension", "type2_diabetes"], needs=["prescription_refill"],
            requested_prescription_weeks=16),
    _onsite(age_years=4, heart_rate=150, respiratory_rate=34, sbp=95, temperature_c=38.9, symptoms=["cough"]),
    _onsite(age_years=25, epi={**_NO_EPI, "contact_case_14d": True}, symptoms=["limb_injury"]),
    {"stage": "online", "age_years": 56, "sex": "M", "temperature_c": 36.5, "symptoms": [],
     "chronic_conditions": ["hypertension"], "needs": ["prescription_refill"], "arrival_mode": "online"},
    {"stage": "online", "age_years": 44, "sex": "M", "symptoms": ["eye_irritation"], "arrival_mode": "online",
     "epi": _NO_EPI},
    _onsite(spo2=120),
)


def measure(seconds: float) -> float:
    """Assessments per second on one core, over the mix, for about `seconds` of wall time."""
    policy = load_policy(ROOT / "workflows" / "policy.yaml")
    for data in MIX:  # warm up: build the policy's rule tables once, as the app does
        assess(data, policy, now=NOW)
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for data in MIX:
            assess(data, policy, now=NOW)
        done += len(MIX)
        if time.perf_counter() >= deadline:
            break
    return done / (time.perf_counter() - start)


if __name__ == "__main__":
    duration = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    print(f"{measure(duration):,.0f} assessments/s (one core, {len(MIX)}-case mix, {duration:g} s)")
