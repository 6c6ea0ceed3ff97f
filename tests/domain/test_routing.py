"""Infection screen, routing, chronic care, priority groups, regional risk and the online stage."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from tests.domain.conftest import CLOSED, OPEN, Assess, rules
from triage.domain.assessment import assess
from triage.domain.policy import Policy, RiskLevel, Stream
from triage.domain.vocabulary import EXPOSURES, INFECTION_SYMPTOMS

NO_EPI = {"mid_high_risk_area_14d": False, "contact_case_14d": False,
          "contact_febrile_from_case_community_14d": False, "cluster_14d": False}


# --- Infection screen ------------------------------------------------------------------------------

@pytest.mark.parametrize(("temperature", "positive"), [(37.2, False), (37.3, True), (38.5, True), (36.0, False)])
def test_fever_threshold_is_37_3_inclusive(run: Assess, temperature: float, positive: bool) -> None:
    result = run(temperature_c=temperature)
    assert result.infection_screen_positive is positive
    assert result.stream is (Stream.FEVER if positive else Stream.GENERAL)
    assert ("INF-TEMP" in rules(result)) is positive


def test_reported_fever_is_a_trigger(run: Assess) -> None:
    result = run(symptoms=["fever"])
    assert result.stream is Stream.FEVER and "INF-FEVER" in rules(result)


@pytest.mark.parametrize("symptom", sorted(INFECTION_SYMPTOMS - {"fever"}))
def test_every_listed_symptom_is_a_trigger(run: Assess, symptom: str) -> None:
    result = run(symptoms=[symptom])
    assert result.stream is Stream.FEVER and "INF-SYMPTOM" in rules(result)


@pytest.mark.parametrize("exposure", EXPOSURES, ids=[e.code for e in EXPOSURES])
def test_every_exposure_within_14_days_is_a_trigger(run: Assess, exposure: Any) -> None:
    result = run(epi={**NO_EPI, exposure.code: True})
    assert result.stream is Stream.FEVER and exposure.rule in rules(result)


def test_exposure_20_days_ago_is_answered_no_and_is_not_a_trigger(run: Assess) -> None:
    # The questions ask about the last 14 days: a return 20 days ago is a "no".
    result = run(epi=NO_EPI, symptoms=["eye_irritation"])
    assert not result.infection_screen_positive and result.stream is Stream.GENERAL


def test_non_screen_symptoms_are_not_triggers(run: Assess) -> None:
    result = run(symptoms=["skin_rash", "eye_irritation", "headache", "vomiting"])
    assert not result.infection_screen_positive


def test_each_trigger_is_its_own_reason(run: Assess) -> None:
    result = run(temperature_c=38.0, symptoms=["fever", "dry_cough"], epi={**NO_EPI, "cluster_14d": True})
    assert rules(result)[:4] == ["INF-TEMP", "INF-FEVER", "INF-SYMPTOM", "INF-EPI-CLUSTER"]


# --- Routing ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("overrides", "stream", "cn_level", "isolation", "route"), [
    ({"temperature_c": 38.5, "sbp": 65}, Stream.EMERGENCY, 1, True, "ROUTE-EMERGENCY-ISOLATION"),
    ({"temperature_c": 38.5, "symptoms": ["chest_pain"]}, Stream.EMERGENCY, 2, True, "ROUTE-EMERGENCY-ISOLATION"),
    ({"temperature_c": 38.5, "heart_rate": 120}, Stream.FEVER, None, False, "ROUTE-FEVER"),
    ({"temperature_c": 38.5}, Stream.FEVER, None, False, "ROUTE-FEVER"),
    ({"heart_rate": 120}, Stream.EMERGENCY, 3, False, "ROUTE-EMERGENCY"),
    ({"symptoms": ["dyspnoea"]}, Stream.EMERGENCY, 2, False, "ROUTE-EMERGENCY"),
    ({"needs": ["prescription_refill"]}, Stream.CHRONIC, None, False, "ROUTE-CHRONIC"),
    ({}, Stream.GENERAL, None, False, "ROUTE-GENERAL"),
])
def test_routes(run: Assess, overrides: dict[str, Any], stream: Stream, cn_level: int | None,
                isolation: bool, route: str) -> None:
    result = run(**overrides)
    assert (result.stream, result.cn_level, result.isolation_required) == (stream, cn_level, isolation)
    assert route in rules(result)


def test_outpatient_closed_sends_level_4_to_emergency(run: Assess) -> None:
    result = run(_now=CLOSED, symptoms=["limb_injury"], pain_nrs=2)
    assert (result.stream, result.cn_level) == (Stream.EMERGENCY, 4)
    assert "ROUTE-AFTER-HOURS" in rules(result)


def test_context_outpatient_open_overrides_the_clock(run: Assess) -> None:
    assert run(_now=OPEN, context={"outpatient_open": False}).cn_level == 4
    assert run(_now=CLOSED, context={"outpatient_open": True}).stream is Stream.GENERAL


def test_context_at_is_local_time_when_it_has_no_offset(run: Assess) -> None:
    assert run(_now=OPEN, context={"at": "2026-11-18T22:00:00"}).stream is Stream.EMERGENCY
    assert run(_now=CLOSED, context={"at": "2026-11-18T10:00:00"}).stream is Stream.GENERAL
    assert run(_now=CLOSED, context={"at": "2026-11-18T02:00:00Z"}).stream is Stream.GENERAL  # 10:00 local


def test_after_hours_fever_patients_still_go_to_the_fever_clinic(run: Assess) -> None:
    assert run(_now=CLOSED, temperature_c=38.2).stream is Stream.FEVER


# --- Chronic care ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("requested", "reason_mentions_cap"), [(None, False), (8, False), (12, False), (16, True)])
def test_prescription_length_is_capped_at_12_weeks(run: Assess, requested: int | None,
                                                   reason_mentions_cap: bool) -> None:
    result = run(chronic_conditions=["hypertension"], needs=["prescription_refill"],
                 requested_prescription_weeks=requested)
    assert result.stream is Stream.CHRONIC and result.max_prescription_weeks == 12
    cap = next(r for r in result.reasons if r.rule == "RX-CAP")
    assert ("capped" in cap.en) is reason_mentions_cap


@pytest.mark.parametrize("need", ["dialysis", "chemotherapy", "radiotherapy"])
def test_scheduled_treatment_goes_to_chronic_care_without_online_follow_up(run: Assess, need: str) -> None:
    result = run(needs=[need])
    assert result.stream is Stream.CHRONIC
    assert result.online_followup_eligible is False


def test_long_term_special_medicines_are_a_priority_group_seen_in_person(run: Assess) -> None:
    # 004 §3.3: patients on long-term medicines, narcotic and psychotropic drugs included, must keep being served.
    result = run(needs=["special_drugs"], chronic_conditions=["epilepsy"])
    assert result.stream is Stream.CHRONIC and result.priority_flags == ("special_drugs",)
    assert result.online_followup_eligible is False and "PRIO-SPECIAL-DRUGS" in rules(result)


@pytest.mark.parametrize("symptom", ["laceration", "limb_injury"])
def test_a_refill_with_a_complaint_that_needs_hands_is_not_offered_online_follow_up(run: Assess,
                                                                                   symptom: str) -> None:
    result = run(needs=["prescription_refill"], chronic_conditions=["type2_diabetes"], symptoms=[symptom])
    assert result.stream is Stream.CHRONIC and result.max_prescription_weeks == 12
    assert result.online_followup_eligible is False


def test_online_follow_up_for_stable_refills_can_be_turned_off(run: Assess, policy: Policy) -> None:
    assert run(needs=["prescription_refill"]).online_followup_eligible is True
    off = replace(policy, offer_online_followup_to_stable_refill=False)
    assert run(off, needs=["prescription_refill"]).online_followup_eligible is False


def test_an_unstable_chronic_patient_is_not_routed_to_chronic_care(run: Assess) -> None:
    result = run(needs=["prescription_refill"], sbp=205)
    assert result.stream is Stream.EMERGENCY and result.max_prescription_weeks is None
    assert result.online_followup_eligible is None


def test_a_febrile_chronic_patient_goes_to_the_fever_clinic(run: Assess) -> None:
    result = run(needs=["dialysis"], temperature_c=37.8)
    assert result.stream is Stream.FEVER and result.priority_flags == ("dialysis",)


def test_non_chronic_results_carry_no_prescription_fields(run: Assess) -> None:
    result = run()
    assert result.max_prescription_weeks is None and result.online_followup_eligible is None


def test_antenatal_check_is_general_with_pregnant_priority(run: Assess) -> None:
    result = run(needs=["antenatal_check"], pregnancy_weeks=24)
    assert result.stream is Stream.GENERAL and result.priority_flags == ("pregnant",)


# --- Priority groups -------------------------------------------------------------------------------

@pytest.mark.parametrize(("overrides", "flags"), [
    ({"age_years": 64}, ()),
    ({"age_years": 65}, ("elderly",)),
    ({"age_years": 14, "heart_rate": 80}, ()),
    ({"age_years": 13, "heart_rate": 80}, ("child",)),
    ({"age_years": 0, "age_days": 27, "heart_rate": 140, "respiratory_rate": 40, "sbp": 70}, ("child", "newborn")),
    ({"age_years": 0, "age_days": 28, "heart_rate": 140, "respiratory_rate": 40, "sbp": 70}, ("child",)),
    ({"pregnancy_weeks": 30}, ("pregnant",)),
    ({"chronic_conditions": ["esrd_haemodialysis"]}, ("dialysis",)),
    ({"needs": ["dialysis"]}, ("dialysis",)),
    ({"needs": ["chemotherapy"]}, ("chemo_radiotherapy",)),
    ({"needs": ["radiotherapy"]}, ("chemo_radiotherapy",)),
    ({"chronic_conditions": ["schizophrenia"]}, ("psychiatric",)),
    ({"chronic_conditions": ["bipolar_disorder"]}, ("psychiatric",)),
    ({"chronic_conditions": ["depression"]}, ("psychiatric",)),
    ({"chronic_conditions": ["epilepsy", "cancer", "hypertension"]}, ()),
    ({"age_years": 70, "chronic_conditions": ["depression"], "needs": ["dialysis"]},
     ("dialysis", "elderly", "psychiatric")),
])
def test_priority_groups(run: Assess, overrides: dict[str, Any], flags: tuple[str, ...]) -> None:
    result = run(**overrides)
    assert result.priority_flags == flags
    assert len([r for r in result.reasons if r.rule.startswith("PRIO-")]) == len(flags)


@pytest.mark.parametrize("overrides", [{"age_years": 80}, {"pregnancy_weeks": 20},
                                       {"chronic_conditions": ["esrd_haemodialysis", "schizophrenia"]}])
@pytest.mark.parametrize("base", [{}, {"temperature_c": 38.2}, {"heart_rate": 155}, {"needs": ["chemotherapy"]}])
def test_priority_never_changes_the_stream(run: Assess, overrides: dict[str, Any], base: dict[str, Any]) -> None:
    with_priority = run(**base, **overrides)
    assert with_priority.priority_flags
    assert with_priority.stream is run(**base).stream


# --- Regional risk level ---------------------------------------------------------------------------

def test_high_risk_region_offers_online_follow_up_to_general_patients(run: Assess) -> None:
    result = run(symptoms=["skin_rash"], context={"region_risk_level": "high"})
    assert result.stream is Stream.GENERAL and result.online_followup_eligible is True
    assert "REGION-HIGH" in rules(result)


@pytest.mark.parametrize("overrides", [
    {"age_years": 70},                       # a priority group is never turned away
    {"symptoms": ["laceration"]},            # needs hands-on care
])
def test_high_risk_region_never_sends_away_priority_or_hands_on_patients(run: Assess,
                                                                         overrides: dict[str, Any]) -> None:
    result = run(**overrides, context={"region_risk_level": "high"})
    assert result.stream is Stream.GENERAL and result.online_followup_eligible is None


def test_high_risk_region_offers_online_refills_even_when_the_policy_default_is_off(run: Assess,
                                                                                    policy: Policy) -> None:
    off = replace(policy, offer_online_followup_to_stable_refill=False, region_risk_level=RiskLevel.HIGH)
    result = run(off, needs=["prescription_refill"])
    assert result.online_followup_eligible is True and "REGION-HIGH" in rules(result)


def test_high_risk_region_never_changes_emergency(run: Assess) -> None:
    result = run(symptoms=["chest_pain"], context={"region_risk_level": "high"})
    assert result.stream is Stream.EMERGENCY and result.online_followup_eligible is None


# --- Online stage ----------------------------------------------------------------------------------

def test_online_results_are_provisional(run_online: Assess) -> None:
    result = run_online(symptoms=["eye_irritation"])
    assert result.provisional and result.stream is Stream.GENERAL and not result.emergency_now
    assert rules(result)[-1] == "ONLINE-PROVISIONAL"


@pytest.mark.parametrize(("symptoms", "cn_level"), [
    (["chest_pain"], 2), (["cardiac_arrest"], 1), (["seizure"], 1), (["dyspnoea"], 2),
    (["unilateral_weakness"], 2), (["slurred_speech"], 2), (["haematemesis"], 2), (["syncope"], 2),
    (["suicidal_ideation"], 3), (["confusion"], 3),
])
def test_online_red_flags_mean_emergency_now(run_online: Assess, symptoms: list[str], cn_level: int) -> None:
    result = run_online(symptoms=symptoms)
    assert (result.stream, result.cn_level, result.emergency_now) == (Stream.EMERGENCY, cn_level, True)
    assert "ONLINE-EMERGENCY-NOW" in rules(result)


def test_online_chest_pain_is_a_red_flag_even_without_cardiac_risk(run_online: Assess) -> None:
    result = run_online(age_years=20, symptoms=["chest_pain"])
    assert (result.stream, result.cn_level, result.emergency_now) == (Stream.EMERGENCY, 3, True)


def test_onsite_young_febrile_chest_pain_without_cardiac_risk_goes_to_the_fever_clinic(run: Assess) -> None:
    result = run(age_years=22, temperature_c=38.4, symptoms=["cough", "chest_pain"])
    assert result.stream is Stream.FEVER and "CN3-CHEST-PAIN" in rules(result)


def test_online_red_flag_with_infection_signs_is_isolated(run_online: Assess) -> None:
    result = run_online(symptoms=["fever", "dyspnoea"])
    assert (result.stream, result.isolation_required, result.emergency_now) == (Stream.EMERGENCY, True, True)


def test_online_bleeding_in_pregnancy_is_a_red_flag(run_online: Assess) -> None:
    result = run_online(pregnancy_weeks=10, symptoms=["vaginal_bleeding"])
    assert result.emergency_now and result.cn_level == 2


def test_online_home_oximeter_reading_is_used(run_online: Assess) -> None:
    # Silent hypoxia: a low home SpO2 is a danger sign even without breathlessness.
    result = run_online(spo2=86)
    assert result.emergency_now and result.cn_level == 2


def test_online_level_3_goes_to_emergency_without_calling_120(run_online: Assess) -> None:
    result = run_online(symptoms=["limb_deformity"])
    assert (result.stream, result.cn_level, result.emergency_now) == (Stream.EMERGENCY, 3, False)


def test_online_stage_books_a_slot_even_when_the_clinics_are_closed_now(run_online: Assess) -> None:
    assert run_online(_now=CLOSED, symptoms=["ear_pain"]).stream is Stream.GENERAL


def test_online_fever_goes_to_the_fever_clinic(run_online: Assess) -> None:
    result = run_online(symptoms=["fever", "sore_throat"])
    assert result.stream is Stream.FEVER and not result.emergency_now and result.provisional


def test_onsite_is_never_emergency_now(run: Assess) -> None:
    result = run(symptoms=["cardiac_arrest"], avpu="U", gcs=3, heart_rate=0, respiratory_rate=0)
    assert result.cn_level == 1 and not result.emergency_now and not result.provisional


# --- Output ----------------------------------------------------------------------------------------

def test_to_dict_is_the_json_contract(policy: Policy) -> None:
    data = {"id": "A-1", "stage": "onsite", "age_years": 70, "temperature_c": 38.1}
    body = assess(data, policy, now=OPEN).to_dict("en")
    assert list(body) == ["id", "outcome", "stream", "cn_level", "isolation_required", "priority_flags",
                          "max_prescription_weeks", "online_followup_eligible", "provisional",
                          "emergency_now", "infection_screen_positive", "scores", "reasons", "errors",
                          "policy_version"]
    assert body["stream"] == "fever" and body["priority_flags"] == ["elderly"]
    assert body["reasons"][0] == {"rule": "INF-TEMP", "message": body["reasons"][0]["message"]}
    assert body["policy_version"] == policy.version
    assert assess(data, policy, now=OPEN).to_dict()["reasons"][0]["message"].startswith("体温")


@pytest.mark.parametrize("ident", ["A-1", 7, 0])
def test_id_is_echoed_even_on_reject(policy: Policy, ident: str | int) -> None:
    assert assess({"id": ident, "stage": "onsite", "age_years": 30}, policy, now=OPEN).to_dict()["id"] == ident
    assert assess({"id": ident, "spo2": 120}, policy, now=OPEN).to_dict()["id"] == ident


def test_no_id_no_echo(policy: Policy) -> None:
    assert "id" not in assess({"stage": "onsite", "age_years": 30}, policy, now=OPEN).to_dict()


def test_scores_are_recorded_for_adults_only(run: Assess) -> None:
    assert run().scores == {"news2": 0, "qsofa": 0}
    assert run(age_years=10, heart_rate=90, respiratory_rate=18).scores == {"news2": None, "qsofa": None}
    assert run(pregnancy_weeks=20).scores == {"news2": None, "qsofa": 0}
