"""Supporting scores: NEWS2 (RCP 2017, SpO2 scale 1) and qSOFA (Sepsis-3)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.domain.conftest import Assess
from triage.domain.policy import Stream

# A patient scoring 0 on every NEWS2 parameter.
ZERO = {"respiratory_rate": 16, "spo2": 97, "on_oxygen": False, "sbp": 120, "heart_rate": 70, "avpu": "A",
        "temperature_c": 37.0}


@pytest.mark.parametrize(("overrides", "points"), [
    ({"respiratory_rate": 8}, 3), ({"respiratory_rate": 9}, 1), ({"respiratory_rate": 11}, 1),
    ({"respiratory_rate": 12}, 0), ({"respiratory_rate": 20}, 0), ({"respiratory_rate": 21}, 2),
    ({"respiratory_rate": 24}, 2), ({"respiratory_rate": 25}, 3),
    ({"spo2": 91}, 3), ({"spo2": 92}, 2), ({"spo2": 93}, 2), ({"spo2": 94}, 1), ({"spo2": 95}, 1),
    ({"spo2": 96}, 0), ({"on_oxygen": True}, 2), ({"on_oxygen": None}, 0),
    ({"sbp": 90}, 3), ({"sbp": 91}, 2), ({"sbp": 100}, 2), ({"sbp": 101}, 1), ({"sbp": 110}, 1),
    ({"sbp": 111}, 0), ({"sbp": 219}, 0), ({"sbp": 220}, 3),
    ({"heart_rate": 40}, 3), ({"heart_rate": 41}, 1), ({"heart_rate": 50}, 1), ({"heart_rate": 51}, 0),
    ({"heart_rate": 90}, 0), ({"heart_rate": 91}, 1), ({"heart_rate": 110}, 1), ({"heart_rate": 111}, 2),
    ({"heart_rate": 130}, 2), ({"heart_rate": 131}, 3),
    ({"avpu": "C"}, 3), ({"avpu": "V"}, 3), ({"avpu": "P"}, 3), ({"avpu": "U", "gcs": 3}, 3),
    ({"avpu": None, "gcs": 14}, 3), ({"avpu": None, "gcs": 15}, 0), ({"symptoms": ["confusion"]}, 3),
    ({"temperature_c": 35.0}, 3), ({"temperature_c": 35.1}, 1), ({"temperature_c": 36.0}, 1),
    ({"temperature_c": 36.1}, 0), ({"temperature_c": 38.0}, 0), ({"temperature_c": 38.1}, 1),
    ({"temperature_c": 39.0}, 1), ({"temperature_c": 39.1}, 2),
])
def test_news2_parameter_bands(run: Assess, overrides: dict[str, Any], points: int) -> None:
    assert run(**{**ZERO, "gcs": None, **overrides}).scores["news2"] == points


@pytest.mark.parametrize("missing", ["respiratory_rate", "spo2", "sbp", "heart_rate", "temperature_c"])
def test_news2_needs_every_parameter(run: Assess, missing: str) -> None:
    assert run(**{**ZERO, missing: None}).scores["news2"] is None


def test_news2_needs_the_consciousness_level(run: Assess) -> None:
    assert run(**{**ZERO, "avpu": None, "gcs": None}).scores["news2"] is None


@pytest.mark.parametrize(("overrides", "score"), [
    ({}, 0), ({"respiratory_rate": 22}, 1), ({"sbp": 100}, 1), ({"avpu": "C"}, 1), ({"gcs": 14, "avpu": None}, 1),
    ({"respiratory_rate": 22, "sbp": 100}, 2), ({"respiratory_rate": 22, "sbp": 100, "avpu": "V"}, 3),
    ({"respiratory_rate": 21, "sbp": 101}, 0),
])
def test_qsofa(run: Assess, overrides: dict[str, Any], score: int) -> None:
    assert run(**{**ZERO, "gcs": None, **overrides}).scores["qsofa"] == score


@pytest.mark.parametrize(("avpu", "gcs", "alert"), [("A", 15, True), ("A", 14, False), ("C", 15, False),
                                                      ("A", None, True), (None, 14, False)])
def test_either_consciousness_reading_below_normal_is_not_alert(run: Assess, avpu: str | None, gcs: int | None,
                                                                alert: bool) -> None:
    scores = run(**{**ZERO, "avpu": avpu, "gcs": gcs}).scores
    assert scores == {"news2": 0 if alert else 3, "qsofa": 0 if alert else 1}


def test_a_gcs_of_14_beside_avpu_a_makes_a_febrile_patient_with_fast_breathing_septic(run: Assess) -> None:
    # qSOFA 2 (RR >= 22 and altered mentation) with signs of infection: level 2, isolated as infection-positive.
    result = run(age_years=60, temperature_c=38.5, heart_rate=96, respiratory_rate=24, sbp=120, spo2=98,
                 avpu="A", gcs=14, symptoms=["fever", "cough"])
    assert result.scores == {"news2": 7, "qsofa": 2}
    assert result.stream is Stream.EMERGENCY and result.cn_level == 2 and result.isolation_required


def test_qsofa_is_unknown_when_a_criterion_is_missing(run: Assess) -> None:
    assert run(**{**ZERO, "sbp": None}).scores["qsofa"] is None


def test_scores_are_recorded_from_16(run: Assess) -> None:
    assert run(**ZERO, age_years=15).scores == {"news2": None, "qsofa": None}
    assert run(**ZERO, age_years=16).scores == {"news2": 0, "qsofa": 0}
