"""Properties that hold for any input: the engine never raises, and its decisions are coherent."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.domain.conftest import OPEN, ROOT
from triage.domain.assessment import Assessment, assess
from triage.domain.policy import Policy, Stream, load_policy
from triage.domain.vocabulary import CONDITIONS, EXPOSURES, NEEDS, PRIORITY_FLAGS, SYMPTOMS

POLICY: Policy = load_policy(ROOT / "workflows" / "policy.yaml")
# 100 examples per property keeps the domain suite within a few seconds; CI may raise it with a profile.
FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)
FIELDS = ["id", "stage", "age_years", "age_days", "sex", "pregnancy_weeks", "temperature_c", "heart_rate",
          "respiratory_rate", "sbp", "spo2", "on_oxygen", "avpu", "gcs", "pain_nrs", "glucose_mmol_l",
          "potassium_mmol_l", "anc_x10e9_l", "symptoms", "epi", "chronic_conditions", "needs",
          "requested_prescription_weeks", "arrival_mode", "context"]


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


# Plausible requests, with values drawn a little past every limit so both sides are exercised.
patients = st.fixed_dictionaries({
    "stage": st.sampled_from(["online", "onsite"]),
    "age_years": st.integers(0, 125) | st.floats(0, 121),
    "sex": maybe(st.sampled_from(["F", "M"])),
}, optional={
    "age_days": st.integers(0, 800),
    "pregnancy_weeks": maybe(st.integers(0, 46)),
    "temperature_c": maybe(st.floats(29, 44) | st.floats(90, 110)),
    "heart_rate": maybe(st.integers(-1, 310)),
    "respiratory_rate": maybe(st.integers(-1, 85)),
    "sbp": maybe(st.integers(-1, 310)),
    "spo2": maybe(st.integers(-1, 121) | st.floats(0, 1)),
    "on_oxygen": maybe(st.booleans()),
    "avpu": maybe(st.sampled_from(["A", "C", "V", "P", "U"])),
    "gcs": maybe(st.integers(2, 16)),
    "pain_nrs": maybe(st.integers(-1, 11)),
    "glucose_mmol_l": maybe(st.floats(0, 40)),
    "potassium_mmol_l": maybe(st.floats(1, 10)),
    "anc_x10e9_l": maybe(st.floats(0, 10)),
    "symptoms": st.lists(st.sampled_from([s.code for s in SYMPTOMS]), max_size=5),
    "epi": st.dictionaries(st.sampled_from([e.code for e in EXPOSURES]), maybe(st.booleans())),
    "chronic_conditions": st.lists(st.sampled_from([c.code for c in CONDITIONS]), max_size=3),
    "needs": st.lists(st.sampled_from([n.code for n in NEEDS]), max_size=2),
    "requested_prescription_weeks": maybe(st.integers(0, 60)),
    "arrival_mode": maybe(st.sampled_from(["online", "walk_in", "ambulance", "carried"])),
    "context": st.fixed_dictionaries({}, optional={
        "outpatient_open": st.booleans(), "region_risk_level": st.sampled_from(["low", "medium", "high"])}),
})


def coherent(result: Assessment) -> None:
    """Invariants of every result."""
    json.dumps(result.to_dict("zh"), allow_nan=False)
    json.dumps(result.to_dict("en"), allow_nan=False)
    if result.outcome == "reject":
        assert result.stream is None and result.cn_level is None and result.errors and not result.reasons
        assert not result.isolation_required and not result.emergency_now
        return
    assert result.outcome == "route" and not result.errors and result.reasons
    assert isinstance(result.stream, Stream)
    # a level only with emergency, and always with it
    assert (result.cn_level is not None) is (result.stream is Stream.EMERGENCY)
    assert result.cn_level in (None, 1, 2, 3, 4)
    # a febrile or exposed patient never waits in the general hall or the chronic clinic
    if result.infection_screen_positive:
        assert result.stream in (Stream.FEVER, Stream.EMERGENCY)
    if result.isolation_required:
        assert result.stream is Stream.EMERGENCY and result.infection_screen_positive
    if result.emergency_now:
        assert result.provisional and result.stream is Stream.EMERGENCY
    assert list(result.priority_flags) == sorted(set(result.priority_flags))
    assert set(result.priority_flags) <= set(PRIORITY_FLAGS)
    assert (result.max_prescription_weeks is not None) is (result.stream is Stream.CHRONIC)
    for reason in result.reasons:
        assert reason.rule and reason.zh and reason.en


@FAST
@given(json_values)
def test_never_raises_on_any_json_value(data: Any) -> None:
    coherent(assess(data, POLICY, now=OPEN))


@FAST
@given(st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), json_values, max_size=8))
def test_never_raises_on_any_object_with_known_or_unknown_fields(data: dict[str, Any]) -> None:
    coherent(assess(data, POLICY, now=OPEN))


@FAST
@given(patients)
def test_every_plausible_request_gets_exactly_one_stream_or_a_rejection(data: dict[str, Any]) -> None:
    coherent(assess(data, POLICY, now=OPEN))


@FAST
@given(patients, st.floats(37.3, 43.0))
def test_a_febrile_patient_is_never_routed_to_general_or_chronic(data: dict[str, Any], temperature: float) -> None:
    result = assess({**data, "temperature_c": temperature}, POLICY, now=OPEN)
    if result.outcome == "route":
        assert result.infection_screen_positive
        assert result.stream in (Stream.FEVER, Stream.EMERGENCY)


@FAST
@given(patients, st.sampled_from([e.code for e in EXPOSURES]))
def test_an_exposed_patient_is_never_routed_to_general_or_chronic(data: dict[str, Any], exposure: str) -> None:
    result = assess({**data, "epi": {exposure: True}}, POLICY, now=OPEN)
    if result.outcome == "route":
        assert result.stream in (Stream.FEVER, Stream.EMERGENCY)


@FAST
@given(patients, st.sampled_from(["cardiac_arrest", "seizure", "dyspnoea", "unilateral_weakness", "haematemesis"]))
def test_a_danger_sign_always_reaches_the_emergency_department(data: dict[str, Any], symptom: str) -> None:
    result = assess({**data, "symptoms": [symptom]}, POLICY, now=OPEN)
    if result.outcome == "route":
        assert result.stream is Stream.EMERGENCY
        assert result.emergency_now is (data["stage"] == "online")


@FAST
@given(patients, st.datetimes(timezones=st.none() | st.timezones()).map(datetime.isoformat) | st.text(max_size=30))
def test_any_clock_time_in_the_context_is_handled(data: dict[str, Any], at: str) -> None:
    coherent(assess({**data, "context": {"at": at}}, POLICY, now=OPEN))
