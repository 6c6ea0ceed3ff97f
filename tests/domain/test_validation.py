"""Validation: impossible or inconsistent input is rejected with one clear message per field, in
Chinese and English, and nothing is decided."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.domain.conftest import OPEN, healthy_adult
from triage.domain.assessment import Assessment, assess
from triage.domain.policy import Policy
from triage.domain.validation import usable_name


def check(policy: Policy, data: Any) -> Assessment:
    return assess(data, policy, now=OPEN)


def rejected(policy: Policy, **overrides: Any) -> dict[str, tuple[str, str]]:
    """Errors of a rejected healthy adult with overrides, as field -> (zh, en)."""
    result = check(policy, healthy_adult(**overrides))
    assert result.outcome == "reject"
    assert result.stream is None and result.cn_level is None and result.reasons == ()
    assert not result.isolation_required and not result.priority_flags and not result.emergency_now
    return {e.field: (e.zh, e.en) for e in result.errors}


def accepted(policy: Policy, **overrides: Any) -> Assessment:
    result = check(policy, healthy_adult(**overrides))
    assert result.outcome == "route", result.errors
    return result


# field, value, words the English message must contain, words the Chinese message must contain
RANGES = [
    ("temperature_c", 29.9, "30.0–43.0 °C", "30.0–43.0 °C"),
    ("temperature_c", 43.1, "outside", "超出"),
    ("temperature_c", 99.5, "Fahrenheit", "华氏"),
    ("spo2", 120, "above 100", "100%"),
    ("spo2", 100.5, "above 100", "100%"),
    ("spo2", -1, "outside", "超出"),
    ("spo2", 0.97, "fraction", "百分数"),
    ("heart_rate", 301, "outside", "超出"),
    ("heart_rate", -5, "outside", "超出"),
    ("respiratory_rate", 81, "outside", "超出"),
    ("sbp", 301, "outside", "超出"),
    ("gcs", 2, "outside", "超出"),
    ("gcs", 16, "outside", "超出"),
    ("gcs", 14.5, "whole number", "整数"),
    ("pain_nrs", 11, "outside", "超出"),
    ("pain_nrs", -1, "outside", "超出"),
    ("pregnancy_weeks", 0, "outside", "超出"),
    ("pregnancy_weeks", 46, "outside", "超出"),
    ("age_years", 121, "outside", "超出"),
    ("age_years", -1, "outside", "超出"),
    ("glucose_mmol_l", 180, "mg/dL", "mg/dL"),
    ("potassium_mmol_l", 0.5, "outside", "超出"),
    ("requested_prescription_weeks", 0, "outside", "超出"),
    ("requested_prescription_weeks", 4.5, "whole number", "整数"),
]


@pytest.mark.parametrize(("field", "value", "en", "zh"), RANGES, ids=[f"{r[0]}={r[1]}" for r in RANGES])
def test_values_outside_the_possible_range_are_rejected(policy: Policy, field: str, value: float,
                                                        en: str, zh: str) -> None:
    overrides: dict[str, Any] = {field: value}
    if field == "pregnancy_weeks":
        overrides["sex"] = "F"
    errors = rejected(policy, **overrides)
    assert list(errors) == [field]
    assert en in errors[field][1] and zh in errors[field][0]


def test_fahrenheit_message_gives_the_celsius_value_and_range(policy: Policy) -> None:
    zh, en = rejected(policy, temperature_c=99.5)["temperature_c"]
    assert "37.5 °C" in en and "between 30.0 and 43.0 °C" in en
    assert "37.5 °C" in zh and "摄氏度" in zh


@pytest.mark.parametrize(("field", "value"), [
    ("temperature_c", 30.0), ("temperature_c", 43.0), ("spo2", 0), ("spo2", 100), ("heart_rate", 300),
    ("respiratory_rate", 80), ("sbp", 300), ("gcs", 3), ("gcs", 15), ("gcs", 14.0), ("pain_nrs", 0),
    ("pain_nrs", 10), ("age_years", 120), ("pregnancy_weeks", 1), ("pregnancy_weeks", 45),
])
def test_values_on_the_edge_of_the_possible_range_are_accepted(policy: Policy, field: str, value: float) -> None:
    accepted(policy, **{field: value})


@pytest.mark.parametrize("field", ["heart_rate", "respiratory_rate", "sbp"])
@pytest.mark.parametrize(("avpu", "gcs", "ok"), [("U", None, True), (None, 3, True), ("U", 3, True),
                                                 ("A", 15, False), ("P", 6, False), (None, None, False)])
def test_zero_pulse_breathing_or_pressure_only_in_an_unresponsive_patient(
        policy: Policy, field: str, avpu: str | None, gcs: int | None, ok: bool) -> None:
    overrides = {field: 0, "avpu": avpu, "gcs": gcs}
    if ok:
        assert accepted(policy, **overrides).cn_level == 1
    else:
        zh, en = rejected(policy, **overrides)[field]
        assert "unresponsive" in en and "AVPU U or GCS 3" in en and "无反应" in zh


def test_pregnancy_weeks_for_a_male_patient_are_rejected(policy: Policy) -> None:
    zh, en = rejected(policy, sex="M", pregnancy_weeks=20)["pregnancy_weeks"]
    assert "male" in en and "男性" in zh


def test_pregnancy_weeks_for_a_young_child_are_rejected(policy: Policy) -> None:
    zh, en = rejected(policy, age_years=4, heart_rate=100, pregnancy_weeks=20)["pregnancy_weeks"]
    assert "age" in en and "年龄" in zh


@pytest.mark.parametrize(("field", "codes"), [("symptoms", ["vaginal_bleeding"]), ("symptoms", ["contractions"]),
                                              ("needs", ["antenatal_check"])])
def test_female_only_answers_for_a_male_patient_are_rejected(policy: Policy, field: str, codes: list[str]) -> None:
    zh, en = rejected(policy, sex="M", **{field: codes})[field]
    assert codes[0] in en and "male" in en and "男性" in zh


@pytest.mark.parametrize(("field", "value"), [
    ("avpu", "X"), ("avpu", "a"), ("avpu", 1), ("stage", "triage"), ("sex", "female"), ("arrival_mode", "bus"),
])
def test_unknown_choices_are_rejected_with_the_options(policy: Policy, field: str, value: Any) -> None:
    zh, en = rejected(policy, **{field: value})[field]
    assert "must be one of" in en and "应为以下之一" in zh


@pytest.mark.parametrize(("field", "code"), [("symptoms", "sneezing"), ("chronic_conditions", "gout"),
                                             ("needs", "massage")])
def test_unknown_codes_are_rejected(policy: Policy, field: str, code: str) -> None:
    zh, en = rejected(policy, **{field: ["cough", code] if field == "symptoms" else [code]})[field]
    assert code in en and code in zh and "/api/v1/vocabulary" in en


def test_unknown_fields_are_rejected(policy: Policy) -> None:
    zh, en = rejected(policy, temprature=37.0)["temprature"]
    assert "Unknown field" in en and "temprature" in zh


@pytest.mark.parametrize(("field", "value"), [
    ("temperature_c", "38.5"), ("heart_rate", True), ("spo2", [98]), ("age_years", {"years": 3}),
    ("pain_nrs", float("nan")), ("sbp", float("inf")),
])
def test_wrong_types_for_numbers_are_rejected(policy: Policy, field: str, value: Any) -> None:
    zh, en = rejected(policy, **{field: value})[field]
    assert "must be a number" in en and "必须是数字" in zh


@pytest.mark.parametrize(("field", "value"), [("symptoms", "cough"), ("needs", {"a": 1}),
                                              ("chronic_conditions", 3), ("symptoms", [1])])
def test_wrong_types_for_code_lists_are_rejected(policy: Policy, field: str, value: Any) -> None:
    assert field in rejected(policy, **{field: value})


@pytest.mark.parametrize(("value", "field"), [
    ({"contact_case_14d": "yes"}, "epi.contact_case_14d"),
    ({"contact_case_21d": True}, "epi.contact_case_21d"),
    (["contact_case_14d"], "epi"),
])
def test_epidemiological_answers_are_validated(policy: Policy, value: Any, field: str) -> None:
    zh, en = rejected(policy, epi=value)[field]
    assert zh and en


def test_epi_answers_may_be_null_or_partial(policy: Policy) -> None:
    assert not accepted(policy, epi={"contact_case_14d": None}).infection_screen_positive
    assert accepted(policy, epi={"cluster_14d": True}).infection_screen_positive


@pytest.mark.parametrize(("value", "field"), [
    ({"at": "yesterday"}, "context.at"), ({"at": 20200301}, "context.at"),
    ({"at": "9999-12-31T23:59:59-12:00"}, "context.at"), ({"at": "0001-01-01T00:00:00+14:00"}, "context.at"),
    ({"outpatient_open": "no"}, "context.outpatient_open"),
    ({"region_risk_level": "extreme"}, "context.region_risk_level"),
    ({"weather": "rain"}, "context.weather"),
    ("now", "context"),
])
def test_context_is_validated(policy: Policy, value: Any, field: str) -> None:
    assert field in rejected(policy, context=value)


@pytest.mark.parametrize("value", [True, 1.5, [1], "x" * 201, 2**64])
def test_an_unusable_id_is_rejected(policy: Policy, value: Any) -> None:
    assert "id" in rejected(policy, id=value)


def test_on_oxygen_must_be_true_or_false(policy: Policy) -> None:
    zh, en = rejected(policy, on_oxygen="yes")["on_oxygen"]
    assert "true or false" in en and "true" in zh


def test_stage_and_age_are_required(policy: Policy) -> None:
    result = check(policy, {})
    assert {e.field for e in result.errors} == {"stage", "age_years"}


def test_a_baby_under_one_year_needs_the_age_in_days(policy: Policy) -> None:
    zh, en = rejected(policy, age_years=0, heart_rate=140)["age_days"]
    assert "days" in en and "日龄" in zh


def test_age_in_days_alone_is_enough(policy: Policy) -> None:
    result = check(policy, {"stage": "onsite", "age_days": 12})
    assert result.outcome == "route" and result.priority_flags == ("child", "newborn")


def test_age_in_days_must_match_age_in_years(policy: Policy) -> None:
    assert "age_days" in rejected(policy, age_years=0, age_days=400)
    accepted(policy, age_years=1, age_days=400, heart_rate=120, respiratory_rate=30, sbp=95)


def test_measurements_may_be_null(policy: Policy) -> None:
    result = check(policy, {"stage": "onsite", "age_years": 30, "temperature_c": None, "heart_rate": None,
                            "symptoms": None, "epi": None, "context": None})
    assert result.outcome == "route"


def test_one_message_per_field_and_every_faulty_field_reported(policy: Policy) -> None:
    result = check(policy, healthy_adult(spo2=120, heart_rate="fast", gcs=1, foo=1))
    assert sorted(e.field for e in result.errors) == ["foo", "gcs", "heart_rate", "spo2"]


@pytest.mark.parametrize("body", [None, [], "text", 42, [{"stage": "onsite"}]])
def test_a_body_that_is_not_an_object_is_rejected(policy: Policy, body: Any) -> None:
    result = check(policy, body)
    assert result.outcome == "reject" and result.errors[0].field == "body"


def test_every_message_exists_in_both_languages(policy: Policy) -> None:
    result = check(policy, healthy_adult(spo2=120, temperature_c=99.5, heart_rate=0, gcs=16, avpu="Z",
                                         symptoms=["x"], epi={"q": True}, sex="M", pregnancy_weeks=3,
                                         context={"at": "?"}, id=[1]))
    assert len(result.errors) >= 9
    for error in result.errors:
        assert error.zh and error.en and error.zh != error.en
        assert error.text("en") == error.en and error.text("zh") == error.zh
        body = result.to_dict("en")
        assert {"field": error.field, "message": error.en} in body["errors"]


@pytest.mark.parametrize("data", [
    {"stage": "onsite", "age_years": 10**5000},
    {"stage": "onsite", "age_years": 30, 10**5000: 1},
    {"stage": "onsite", "age_years": 30, "epi": {10**5000: True}, "context": {(1, 2): 3}},
])
def test_absurd_values_are_rejected_without_raising(policy: Policy, data: Any) -> None:
    result = check(policy, data)
    assert result.outcome == "reject" and result.errors


@pytest.mark.parametrize(("field", "value", "shown"), [
    ("age_years", 10**300, "1" + "0" * 36 + "..."),
    ("age_years", int("1" * 300), "1" * 37 + "..."),
    ("age_years", -(10**50), "-1" + "0" * 35 + "..."),
    ("age_years", 10**5000, "1" + "0" * 36 + "..."),  # past what str() converts
    ("age_years", 1e300, "1" + "0" * 36 + "..."),
    ("temperature_c", 1e6, "1000000"),
    ("heart_rate", 123456789.0, "123456789"),
    ("spo2", 1e-7, "0.0000001"),
], ids=["1e300-int", "300-ones", "-1e50", "1e5000", "1e300-float", "1e6", "123456789.0", "1e-7"])
def test_absurd_numbers_are_echoed_in_plain_digits_cut_like_text(policy: Policy, field: str, value: float,
                                                                 shown: str) -> None:
    zh, en = rejected(policy, **{field: value})[field]
    assert f" {shown}" in en and f" {shown}" in zh
    assert not re.search(r"\de[+-]?\d", en + zh)  # no 1e+06, 1e-07 nor 1e40+


# --- names: one check for patients' and staff names -------------------------------------------------------------

@pytest.mark.parametrize(("name", "usable"), [
    ("张三", True), ("阿依古丽·买买提", True), ("Ayşe Ñúñez", True), ("O'Brien-Smith", True), ("李 雷", True),
    ("Wang\x1b[2J", False), ("\u202eevil\u202c", False), ("Zhang\u200fLi", False), ("a\x00b", False),
    ("Li\u2028Wei", False), ("tab\there", False), ("<b>Li</b>", False), ("{{ 7*7 }}", False),
])
def test_a_name_is_usable_when_every_character_is_printable_and_none_is_markup(name: str, usable: bool) -> None:
    assert usable_name(name) is usable
