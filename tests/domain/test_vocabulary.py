"""The published vocabularies: complete, bilingual, and consistent with the rules."""

from __future__ import annotations

import pytest

from tests.domain.conftest import Assess, rules
from triage.domain.policy import Stream
from triage.domain.vocabulary import (
    CONDITIONS,
    INFECTION_SYMPTOMS,
    NEEDS,
    RED_FLAG_SYMPTOMS,
    SYMPTOMS,
    vocabulary_document,
)

ISSUE_SYMPTOMS = {
    "fever", "dry_cough", "cough", "fatigue", "sore_throat", "nasal_congestion", "runny_nose", "loss_smell_taste",
    "conjunctivitis", "myalgia", "diarrhoea", "chest_pain", "dyspnoea", "wheeze", "cardiac_arrest", "seizure",
    "syncope", "confusion", "unilateral_weakness", "slurred_speech", "headache", "dizziness", "palpitations",
    "diaphoresis", "haematemesis", "vomiting", "abdominal_pain", "flank_pain", "back_pain", "vaginal_bleeding",
    "contractions", "limb_injury", "laceration", "suicidal_ideation", "low_mood", "insomnia", "skin_rash",
    "eye_irritation", "ear_pain", "blurred_vision", "epigastric_discomfort",
}
ISSUE_CONDITIONS = {
    "hypertension", "type2_diabetes", "coronary_heart_disease", "copd", "asthma", "ckd", "esrd_haemodialysis",
    "cancer", "hiv", "tuberculosis", "hepatitis_b", "cirrhosis", "schizophrenia", "bipolar_disorder",
    "depression", "epilepsy", "hypothyroidism", "chronic_gastritis", "eczema",
}
ISSUE_NEEDS = {"prescription_refill", "dialysis", "chemotherapy", "radiotherapy", "antenatal_check"}
ISSUE_EPI = {"mid_high_risk_area_14d", "contact_case_14d", "contact_febrile_from_case_community_14d",
             "cluster_14d"}


def test_the_document_publishes_at_least_every_code_of_the_contract() -> None:
    doc = vocabulary_document()
    assert set(doc) == {"symptoms", "chronic_conditions", "needs", "epi"}
    assert {s["code"] for s in doc["symptoms"]} >= ISSUE_SYMPTOMS
    assert {c["code"] for c in doc["chronic_conditions"]} >= ISSUE_CONDITIONS
    assert {n["code"] for n in doc["needs"]} >= ISSUE_NEEDS
    assert {e["code"] for e in doc["epi"]} == ISSUE_EPI


@pytest.mark.parametrize("section", ["symptoms", "chronic_conditions", "needs", "epi"])
def test_every_entry_has_a_unique_code_and_both_labels(section: str) -> None:
    entries = vocabulary_document()[section]
    codes = [e["code"] for e in entries]
    assert len(codes) == len(set(codes))
    for entry in entries:
        assert entry["zh"] and entry["en"] and entry["zh"] != entry["en"]


def test_exposure_questions_state_the_policy_window() -> None:
    assert "14" in vocabulary_document()["epi"][0]["en"]
    assert "21" in vocabulary_document(21)["epi"][0]["zh"] and "21 days" in vocabulary_document(21)["epi"][0]["en"]


def test_the_infection_screen_symptoms_are_the_issue_list() -> None:
    expected = {"fever", "dry_cough", "cough", "fatigue", "sore_throat", "nasal_congestion", "runny_nose",
                "loss_smell_taste", "conjunctivitis", "myalgia", "diarrhoea"}
    assert expected == INFECTION_SYMPTOMS


@pytest.mark.parametrize("symptom", [s.code for s in SYMPTOMS])
def test_red_flags_and_level_1_2_symptoms_coincide(run: Assess, symptom: str) -> None:
    # Every symptom that meets a level 1-2 criterion alone is a red flag online, and every red flag
    # reaches the emergency department on site.
    result = run(symptoms=[symptom], sex="F")
    level = result.cn_level if result.stream is Stream.EMERGENCY else 4
    if symptom in RED_FLAG_SYMPTOMS:
        assert result.stream is Stream.EMERGENCY, symptom
    elif not result.infection_screen_positive:
        assert level >= 3, (symptom, rules(result))


def test_psychiatric_priority_conditions() -> None:
    assert {c.code for c in CONDITIONS if c.priority == "psychiatric"} == {"schizophrenia", "bipolar_disorder",
                                                                          "depression"}


def test_chronic_needs_are_the_stable_chronic_needs() -> None:
    assert {n.code for n in NEEDS if n.chronic} == {"prescription_refill", "dialysis", "chemotherapy",
                                                    "radiotherapy", "special_drugs"}
