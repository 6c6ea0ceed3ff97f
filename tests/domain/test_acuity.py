"""Acuity on the Chinese four-level scale: every threshold pinned on both sides.

Afebrile patients without exposure, while the outpatient clinics are open, so level 4 means general.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.domain.conftest import Assess, rules
from triage.domain.assessment import Assessment
from triage.domain.policy import Stream


def level(result: Assessment) -> int:
    """The acuity level of an afebrile result: cn_level in emergency, 4 in general outpatient."""
    assert result.outcome == "route", result.errors
    if result.stream is Stream.EMERGENCY:
        assert result.cn_level is not None
        return result.cn_level
    assert result.stream is Stream.GENERAL and result.cn_level is None
    return 4


ADULT = [
    # heart rate: >180 or <40 level 1; 150-180 or 40-50 level 2; 100-150 or 50-55 level 3
    ({"heart_rate": 181}, 1, "CN1-HR-HIGH"),
    ({"heart_rate": 180}, 2, "CN2-HR-HIGH"),
    ({"heart_rate": 150}, 2, "CN2-HR-HIGH"),
    ({"heart_rate": 149}, 3, "CN3-HR-HIGH"),
    ({"heart_rate": 100}, 3, "CN3-HR-HIGH"),
    ({"heart_rate": 99}, 4, "CN4"),
    ({"heart_rate": 56}, 4, "CN4"),
    ({"heart_rate": 55}, 3, "CN3-HR-LOW"),
    ({"heart_rate": 51}, 3, "CN3-HR-LOW"),
    ({"heart_rate": 50}, 2, "CN2-HR-LOW"),
    ({"heart_rate": 40}, 2, "CN2-HR-LOW"),
    ({"heart_rate": 39}, 1, "CN1-HR-LOW"),
    # systolic pressure: <70 level 1; >200 or 70-80 level 2; 180-200 or 80-90 level 3
    ({"sbp": 69}, 1, "CN1-SBP"),
    ({"sbp": 70}, 2, "CN2-SBP-LOW"),
    ({"sbp": 80}, 2, "CN2-SBP-LOW"),
    ({"sbp": 81}, 3, "CN3-SBP-LOW"),
    ({"sbp": 90}, 3, "CN3-SBP-LOW"),
    ({"sbp": 91}, 4, "CN4"),
    ({"sbp": 179}, 4, "CN4"),
    ({"sbp": 180}, 3, "CN3-SBP-HIGH"),
    ({"sbp": 200}, 3, "CN3-SBP-HIGH"),
    ({"sbp": 201}, 2, "CN2-SBP-HIGH"),
    # SpO2: <80 level 1; 80-90 level 2; 90-94 level 3
    ({"spo2": 79}, 1, "CN1-SPO2"),
    ({"spo2": 80}, 2, "CN2-SPO2"),
    ({"spo2": 90}, 2, "CN2-SPO2"),
    ({"spo2": 91}, 3, "CN3-SPO2"),
    ({"spo2": 94}, 3, "CN3-SPO2"),
    ({"spo2": 95}, 4, "CN4"),
    # point-of-care tests
    ({"glucose_mmol_l": 3.32}, 1, "CN1-GLUCOSE"),
    ({"glucose_mmol_l": 3.33}, 4, "CN4"),
    ({"potassium_mmol_l": 7.1}, 1, "CN1-K"),
    ({"potassium_mmol_l": 7.0}, 4, "CN4"),
    # consciousness
    ({"gcs": 8, "avpu": None}, 1, "CN1-GCS"),
    ({"gcs": 9, "avpu": None}, 2, "CN2-GCS"),
    ({"gcs": 12, "avpu": None}, 2, "CN2-GCS"),
    ({"gcs": 13, "avpu": None}, 3, "CN3-GCS"),
    ({"gcs": 14, "avpu": None}, 3, "CN3-GCS"),
    ({"gcs": 15, "avpu": None}, 4, "CN4"),
    ({"avpu": "U", "gcs": None}, 1, "CN1-AVPU"),
    ({"avpu": "P", "gcs": None}, 1, "CN1-AVPU"),
    ({"avpu": "V", "gcs": None}, 2, "CN2-AVPU"),
    ({"avpu": "C", "gcs": None}, 3, "CN3-CONFUSION"),
    ({"avpu": "A", "gcs": None}, 4, "CN4"),
    # breathing rate (adults): severe breathlessness >= 30, bradypnoea <= 8
    ({"respiratory_rate": 30}, 2, "CN2-RR-HIGH"),
    ({"respiratory_rate": 29}, 4, "CN4"),
    ({"respiratory_rate": 9}, 4, "CN4"),
    ({"respiratory_rate": 8}, 2, "CN2-RR-LOW"),
    # pain: 7-10 level 2, 4-6 level 3
    ({"pain_nrs": 10}, 2, "CN2-PAIN"),
    ({"pain_nrs": 7}, 2, "CN2-PAIN"),
    ({"pain_nrs": 6}, 3, "CN3-PAIN"),
    ({"pain_nrs": 4}, 3, "CN3-PAIN"),
    ({"pain_nrs": 3}, 4, "CN4"),
    ({"pain_nrs": 0}, 4, "CN4"),
]


@pytest.mark.parametrize(("overrides", "expected", "rule"), ADULT, ids=[str(c[0]) for c in ADULT])
def test_adult_measurement_thresholds(run: Assess, overrides: dict[str, Any], expected: int, rule: str) -> None:
    result = run(**overrides)
    assert level(result) == expected
    assert rule in rules(result)


SYMPTOMS = [
    (["cardiac_arrest"], 1, "CN1-ARREST"),
    (["seizure"], 1, "CN1-SEIZURE"),
    (["unilateral_weakness"], 2, "CN2-STROKE"),
    (["slurred_speech"], 2, "CN2-STROKE"),
    (["facial_droop"], 2, "CN2-STROKE"),
    (["chest_pain"], 2, "CN2-CHEST-PAIN"),     # the default patient is 40: cardiac risk by age
    (["dyspnoea"], 2, "CN2-DYSPNOEA"),
    (["haematemesis"], 2, "CN2-BLEEDING"),
    (["heavy_bleeding"], 2, "CN2-BLEEDING"),
    (["contractions"], 2, "CN2-LABOUR"),
    (["syncope"], 2, "CN2-SYNCOPE"),
    (["poisoning"], 2, "CN2-POISONING"),
    (["abdominal_pain", "diaphoresis"], 2, "CN2-PAIN-SWEAT"),
    (["confusion"], 3, "CN3-CONFUSION"),
    (["wheeze"], 3, "CN3-WHEEZE"),
    (["limb_deformity"], 3, "CN3-FRACTURE"),
    (["head_injury"], 3, "CN3-HEAD-INJURY"),
    (["suicidal_ideation"], 3, "CN3-SELF-HARM"),
    (["diaphoresis"], 4, "CN4"),
    (["abdominal_pain"], 4, "CN4"),
    (["vaginal_bleeding"], 4, "CN4"),
    (["limb_injury"], 4, "CN4"),
    (["headache", "dizziness", "palpitations", "vomiting", "back_pain", "flank_pain", "laceration",
      "low_mood", "insomnia", "skin_rash", "eye_irritation", "ear_pain", "blurred_vision",
      "epigastric_discomfort"], 4, "CN4"),
]


@pytest.mark.parametrize(("symptoms", "expected", "rule"), SYMPTOMS, ids=[",".join(c[0]) for c in SYMPTOMS])
def test_declared_symptoms(run: Assess, symptoms: list[str], expected: int, rule: str) -> None:
    result = run(symptoms=symptoms)
    assert level(result) == expected
    assert rule in rules(result)


@pytest.mark.parametrize("symptom", ["chest_pain", "syncope"])
@pytest.mark.parametrize(("overrides", "expected"), [
    ({"age_years": 29}, 3),                                             # non-cardiac type
    ({"age_years": 30}, 2),                                             # cardiac risk by age
    ({"age_years": 22, "chronic_conditions": ["hypertension"]}, 2),     # cardiac risk factor
    ({"age_years": 25, "chronic_conditions": ["coronary_heart_disease"]}, 2),
    ({"age_years": 26, "pregnancy_weeks": 30}, 2),                      # embolism, dissection
    ({"age_years": 22, "chronic_conditions": ["asthma"]}, 3),
    ({"age_years": 10, "heart_rate": 90, "respiratory_rate": 18}, 3),
])
def test_chest_pain_and_fainting_are_cardiac_type_with_cardiac_risk(run: Assess, symptom: str,
                                                                    overrides: dict[str, Any], expected: int) -> None:
    result = run(symptoms=[symptom], **overrides)
    assert level(result) == expected
    assert f"CN{expected}-{'CHEST-PAIN' if symptom == 'chest_pain' else 'SYNCOPE'}" in rules(result)


@pytest.mark.parametrize(("age", "expected"), [(64, 4), (65, 4), (65.5, 3), (66, 3), (80, 3)])
def test_abdominal_pain_is_level_3_over_65(run: Assess, age: int, expected: int) -> None:
    assert level(run(age_years=age, symptoms=["abdominal_pain"])) == expected


@pytest.mark.parametrize("symptom", ["vaginal_bleeding", "abdominal_pain"])
def test_bleeding_or_abdominal_pain_in_pregnancy_is_level_2(run: Assess, symptom: str) -> None:
    result = run(pregnancy_weeks=8, symptoms=[symptom])
    assert level(result) == 2
    assert "CN2-PREGNANCY" in rules(result)


def test_every_criterion_met_is_explained_and_the_most_urgent_wins(run: Assess) -> None:
    result = run(heart_rate=120, sbp=75, pain_nrs=5, symptoms=["chest_pain"])
    assert level(result) == 2
    assert {"CN3-HR-HIGH", "CN2-SBP-LOW", "CN3-PAIN", "CN2-CHEST-PAIN"} <= set(rules(result))


def test_a_measurement_fires_only_its_most_urgent_band(run: Assess) -> None:
    names = rules(run(heart_rate=45))
    assert "CN2-HR-LOW" in names and "CN3-HR-LOW" not in names


@pytest.mark.parametrize(("temperature", "expected_level"), [(41.1, 1), (41.0, None)])
def test_temperature_above_41_is_level_1(run: Assess, temperature: float, expected_level: int | None) -> None:
    result = run(temperature_c=temperature)
    assert result.infection_screen_positive
    assert result.cn_level == expected_level
    assert result.stream is (Stream.EMERGENCY if expected_level else Stream.FEVER)


@pytest.mark.parametrize(("anc", "stream"), [(0.4, Stream.EMERGENCY), (0.5, Stream.FEVER)])
def test_fever_with_neutropenia_is_level_2(run: Assess, anc: float, stream: Stream) -> None:
    result = run(temperature_c=38.4, anc_x10e9_l=anc)
    assert result.stream is stream
    assert ("CN2-NEUTROPENIC-FEVER" in rules(result)) is (stream is Stream.EMERGENCY)


def test_neutropenia_without_fever_is_not_a_criterion(run: Assess) -> None:
    assert level(run(anc_x10e9_l=0.2)) == 4


@pytest.mark.parametrize(("rr", "sbp", "stream"), [(22, 100, Stream.EMERGENCY), (21, 100, Stream.FEVER),
                                                   (22, 101, Stream.FEVER)])
def test_suspected_sepsis_is_infection_signs_and_qsofa_2(run: Assess, rr: int, sbp: int, stream: Stream) -> None:
    result = run(temperature_c=38.6, symptoms=["cough"], respiratory_rate=rr, sbp=sbp)
    assert result.stream is stream
    assert ("CN2-SEPSIS" in rules(result)) is (stream is Stream.EMERGENCY)


def test_qsofa_2_without_infection_signs_is_not_sepsis(run: Assess) -> None:
    assert "CN2-SEPSIS" not in rules(run(respiratory_rate=24, sbp=98))


# Children: vital signs normal for the age, then one value moved across its limit.
NEWBORN = {"age_years": 0, "age_days": 10, "heart_rate": 140, "respiratory_rate": 40, "sbp": 70, "spo2": 98}
INFANT = {"age_years": 0, "age_days": 60, "heart_rate": 140, "respiratory_rate": 40, "sbp": 80, "spo2": 98}
TODDLER = {"age_years": 2, "heart_rate": 120, "respiratory_rate": 30, "sbp": 95, "spo2": 98}
CHILD5 = {"age_years": 5, "heart_rate": 100, "respiratory_rate": 24, "sbp": 100, "spo2": 98}
CHILD10 = {"age_years": 10, "heart_rate": 90, "respiratory_rate": 18, "sbp": 110, "spo2": 98}
CHILD13 = {"age_years": 13, "heart_rate": 80, "respiratory_rate": 16, "sbp": 115, "spo2": 98}

PAEDIATRIC = [
    # under 3 months: HR > 180, RR > 50 (ESI); HR < 80 (PALS asleep)
    (INFANT, {"heart_rate": 181}, 2, "PED2-HR-HIGH"),
    (INFANT, {"heart_rate": 180}, 4, "CN4"),
    (INFANT, {"respiratory_rate": 51}, 2, "PED2-RR-HIGH"),
    (INFANT, {"respiratory_rate": 50}, 4, "CN4"),
    (INFANT, {"heart_rate": 79}, 2, "PED2-HR-LOW"),
    (INFANT, {"heart_rate": 80}, 4, "CN4"),
    (INFANT, {"heart_rate": 59}, 1, "PED1-HR-LOW"),
    # 3 months to 3 years: HR > 160, RR > 40; HR < 90
    (TODDLER, {"heart_rate": 161}, 2, "PED2-HR-HIGH"),
    (TODDLER, {"heart_rate": 160}, 4, "CN4"),
    (TODDLER, {"respiratory_rate": 41}, 2, "PED2-RR-HIGH"),
    (TODDLER, {"respiratory_rate": 40}, 4, "CN4"),
    (TODDLER, {"heart_rate": 89}, 2, "PED2-HR-LOW"),
    (TODDLER, {"heart_rate": 90}, 4, "CN4"),
    # 3 to 8 years: HR > 140, RR > 30
    (CHILD5, {"heart_rate": 141}, 2, "PED2-HR-HIGH"),
    (CHILD5, {"heart_rate": 140}, 4, "CN4"),
    (CHILD5, {"respiratory_rate": 31}, 2, "PED2-RR-HIGH"),
    (CHILD5, {"respiratory_rate": 30}, 4, "CN4"),
    # 8 to 14 years: HR > 100, RR > 20
    (CHILD10, {"heart_rate": 101}, 2, "PED2-HR-HIGH"),
    (CHILD10, {"heart_rate": 100}, 4, "CN4"),
    (CHILD10, {"respiratory_rate": 21}, 2, "PED2-RR-HIGH"),
    (CHILD10, {"respiratory_rate": 20}, 4, "CN4"),
    # any child: HR < 60 and RR < 10 level 1 (PALS); SpO2 < 92 level 2 (ESI)
    (CHILD10, {"heart_rate": 59}, 1, "PED1-HR-LOW"),
    (CHILD10, {"heart_rate": 60}, 4, "CN4"),
    (CHILD10, {"respiratory_rate": 9}, 1, "PED1-RR-LOW"),
    (CHILD10, {"respiratory_rate": 10}, 4, "CN4"),
    (CHILD10, {"spo2": 91}, 2, "PED2-SPO2"),
    (CHILD10, {"spo2": 92}, 3, "CN3-SPO2"),
    (CHILD10, {"spo2": 79}, 1, "CN1-SPO2"),
    # PALS hypotension: < 60 newborn, < 70 + 2 x years, at most 90
    (NEWBORN, {"sbp": 59}, 1, "PED1-SBP"),
    (NEWBORN, {"sbp": 60}, 4, "CN4"),
    (INFANT, {"sbp": 69}, 1, "PED1-SBP"),
    (INFANT, {"sbp": 70}, 4, "CN4"),
    (CHILD5, {"sbp": 79}, 1, "PED1-SBP"),
    (CHILD5, {"sbp": 80}, 4, "CN4"),
    (CHILD13, {"sbp": 89}, 1, "PED1-SBP"),
    (CHILD13, {"sbp": 90}, 4, "CN4"),
    (CHILD13, {"sbp": 201}, 2, "CN2-SBP-HIGH"),
]


@pytest.mark.parametrize(("base", "overrides", "expected", "rule"), PAEDIATRIC,
                         ids=[f"{c[0].get('age_days', c[0]['age_years'])}-{c[1]}" for c in PAEDIATRIC])
def test_children_are_graded_on_age_band_limits(run: Assess, base: dict[str, Any], overrides: dict[str, Any],
                                                expected: int, rule: str) -> None:
    result = run(**{**base, **overrides})
    assert level(result) == expected
    assert rule in rules(result)


@pytest.mark.parametrize(("age", "heart_rate", "expected", "rule"), [
    (13, 120, 2, "PED2-HR-HIGH"),   # a child: ESI danger zone above 100
    (14, 120, 3, "CN3-HR-HIGH"),    # an adult: 100-150 is level 3
    (13, 45, 1, "PED1-HR-LOW"),     # a child: PALS bradycardia below 60
    (14, 45, 2, "CN2-HR-LOW"),      # an adult: 40-50 is level 2
])
def test_paediatric_limits_stop_at_14(run: Assess, age: int, heart_rate: int, expected: int, rule: str) -> None:
    result = run(age_years=age, heart_rate=heart_rate)
    assert level(result) == expected
    assert rule in rules(result)


def test_a_child_is_never_graded_on_adult_heart_rate_limits(run: Assess) -> None:
    result = run(**{**TODDLER, "heart_rate": 155})  # adult level 2, normal for a toddler
    assert level(result) == 4


@pytest.mark.parametrize(("age_days", "temperature", "symptoms", "level_2"), [
    (60, 38.0, [], True),
    (89, 38.0, [], True),
    (90, 38.0, [], False),
    (60, 37.9, [], False),
    (60, 36.8, ["fever"], True),   # fever measured at home counts
])
def test_fever_in_an_infant_under_90_days_is_level_2(run: Assess, age_days: int, temperature: float,
                                                     symptoms: list[str], level_2: bool) -> None:
    result = run(**{**INFANT, "age_days": age_days, "temperature_c": temperature, "symptoms": symptoms})
    assert ("PED2-FEBRILE-INFANT" in rules(result)) is level_2
    assert result.stream is (Stream.EMERGENCY if level_2 else Stream.FEVER)
    assert result.isolation_required is level_2
