"""POST /api/v1/assessments and GET /api/v1/vocabulary: the public contract."""

from __future__ import annotations

import json

import pytest
from flask.testing import FlaskClient

from triage.config import ROOT

VIGNETTES = [json.loads(line) for line in
             (ROOT / "tests" / "domain" / "vignettes_public.jsonl").read_text(encoding="utf-8").splitlines() if line]


@pytest.mark.parametrize("case", VIGNETTES, ids=[c["id"] for c in VIGNETTES])
def test_the_public_vignettes_through_the_api(client: FlaskClient, case: dict) -> None:
    response = client.post("/api/v1/assessments", json=case["input"])
    body = response.get_json()
    assert response.status_code == (200 if case["expected"]["outcome"] == "route" else 422)
    for key, value in case["expected"].items():
        assert body[key] == value, key


def test_a_rejection_has_one_message_per_field_in_the_users_language(client: FlaskClient) -> None:
    data = {"stage": "onsite", "age_years": 40, "sex": "M", "spo2": 120, "temperature_c": 99.5}
    en = client.post("/api/v1/assessments", json=data, headers={"Accept-Language": "en"}).get_json()
    fields = {e["field"] for e in en["errors"]}
    assert {"spo2", "temperature_c"} <= fields
    assert en["outcome"] == "reject" and en["stream"] is None and en["message"]
    assert any("Fahrenheit" in e["message"] for e in en["errors"])
    zh = client.post("/api/v1/assessments", json=data).get_json()
    assert any("华氏" in e["message"] for e in zh["errors"])


@pytest.mark.parametrize("body", ["not json", "[1, 2]", "null", '"text"', "{"])
def test_a_malformed_body_is_422_never_500(client: FlaskClient, body: str) -> None:
    response = client.post("/api/v1/assessments", data=body, content_type="application/json")
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == "body"


def test_without_a_time_the_outpatient_clinics_are_taken_as_open(client: FlaskClient) -> None:
    minor = {"stage": "onsite", "age_years": 25, "sex": "M", "temperature_c": 36.6, "heart_rate": 76,
             "respiratory_rate": 14, "sbp": 122, "spo2": 99, "avpu": "A", "gcs": 15, "pain_nrs": 3,
             "symptoms": ["limb_injury"]}
    assert client.post("/api/v1/assessments", json=minor).get_json()["stream"] == "general"
    closed = {**minor, "context": {"outpatient_open": False}}
    body = client.post("/api/v1/assessments", json=closed).get_json()
    assert (body["stream"], body["cn_level"]) == ("emergency", 4)
    sunday_night = {**minor, "context": {"at": "2026-11-22T23:00:00+08:00"}}
    assert client.post("/api/v1/assessments", json=sunday_night).get_json()["stream"] == "emergency"


def test_vocabulary_lists_the_required_codes_with_both_labels(client: FlaskClient) -> None:
    body = client.get("/api/v1/vocabulary").get_json()
    symptoms = {item["code"]: item for item in body["symptoms"]}
    for code in ("fever", "dry_cough", "cough", "fatigue", "sore_throat", "nasal_congestion", "runny_nose",
                 "loss_smell_taste", "conjunctivitis", "myalgia", "diarrhoea", "chest_pain", "dyspnoea",
                 "cardiac_arrest", "seizure", "unilateral_weakness", "epigastric_discomfort"):
        assert symptoms[code]["zh"] and symptoms[code]["en"]
    assert {"hypertension", "esrd_haemodialysis", "hepatitis_b"} <= {c["code"] for c in body["chronic_conditions"]}
    assert {"prescription_refill", "dialysis", "antenatal_check"} <= {n["code"] for n in body["needs"]}


def test_openapi_document_describes_the_api(client: FlaskClient) -> None:
    doc = client.get("/api/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    assert "/api/v1/assessments" in doc["paths"] and "/api/v1/vocabulary" in doc["paths"]
