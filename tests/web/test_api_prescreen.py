"""POST /api/v1/prescreenings and GET /api/v1/prescreenings/<reference>: same rules as the form."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import select

from tests.web.prescreen_support import api_body, db, encounter, fill_day, open_day
from triage.domain.policy import Stream
from triage.models import Encounter, Role, StaffUser
from triage.services import issue_token
from triage.web.openapi import openapi_document

EN = {"Accept-Language": "en"}


@pytest.fixture
def day(app: Flask) -> str:
    """A day with general-outpatient slots."""
    return open_day(app).isoformat()


def _create(client: FlaskClient, **overrides: object) -> dict[str, object]:
    response = client.post("/api/v1/prescreenings", json=api_body(**overrides), headers=EN)
    assert response.status_code == 201, response.json
    return response.json  # type: ignore[return-value]


def test_a_pre_screen_is_created_with_reference_status_link_assessment_and_slot(
    client: FlaskClient, app: Flask, day: str
) -> None:
    response = client.post("/api/v1/prescreenings", json=api_body(preferred_day=day), headers=EN)
    assert response.status_code == 201
    body = response.json
    assert body is not None
    assert len(body["reference"]) == 8 and body["reference_display"][4] == "-"
    assert response.headers["Location"] == f"/api/v1/prescreenings/{body['reference']}"
    assert body["status_url"].endswith(f"/prescreen/s/{body['status_token']}")
    assert len(body["status_token"]) >= 32
    assert body["state"] == "booked" and body["next_step"] == "come_at_slot"
    assert body["assessment"]["stream"] == "general" and body["assessment"]["provisional"] is True
    assert body["slot"]["day"] == day and body["slot"]["local_start"].endswith("T08:00:00+08:00")
    assert response.headers["Cache-Control"] == "no-store"
    assert encounter(app, body["reference"]).status_token_hash != body["status_token"]


def test_a_chosen_slot_is_booked(client: FlaskClient, day: str) -> None:
    body = _create(client, preferred_day=day, slot=f"{day}T10:30:00+08:00")
    assert body["slot"]["local_start"] == f"{day}T10:30:00+08:00"  # type: ignore[index]


def test_a_full_chosen_slot_is_a_conflict_and_nothing_is_stored(client: FlaskClient, app: Flask, day: str) -> None:
    fill_day(app, Stream.GENERAL, date.fromisoformat(day))
    response = client.post("/api/v1/prescreenings", json=api_body(preferred_day=day, slot=f"{day}T09:00:00+08:00"),
                           headers=EN)
    assert response.status_code == 409
    full = "This slot has just been filled; choose another."
    assert response.json == {"message": full, "errors": [{"field": "slot", "message": full}]}
    with db(app) as s:
        assert s.exec(select(Encounter)).first() is None


def test_a_full_day_returns_the_alternatives(client: FlaskClient, app: Flask, day: str) -> None:
    fill_day(app, Stream.GENERAL, date.fromisoformat(day))
    body = _create(client, preferred_day=day)
    assert body["slot"] is None and body["next_step"] == "choose_slot" and body["state"] == "prescreened"
    assert body["alternatives"] and all(a["day"] > day for a in body["alternatives"])  # type: ignore[union-attr]


@pytest.mark.parametrize(("overrides", "field", "message"), [
    ({"name": ""}, "name", "Enter the patient's name."),
    ({"phone": 13800138000}, "phone", "Must be text."),
    ({"preferred_day": "tomorrow"}, "preferred_day", "The date must look like 2026-11-23."),
    ({"preferred_day": "2000-01-01"}, "preferred_day", "You can book from today up to"),
    ({"consent": "yes"}, "consent", "Must be true or false."),
    ({"consent": False}, "consent", "Please agree that the hospital uses this information for the visit."),
    ({"surprise": 1}, "surprise", "Unknown field “surprise”."),
    ({"assessment": {"temperature_c": 99.5}}, "assessment.temperature_c", "looks like Fahrenheit"),
    ({"assessment": {"sex": None}}, "assessment.sex", "Choose the sex."),
    ({"assessment": {"epi": {}}}, "assessment.epi", "Answer every question about the last 14 days (yes or no)."),
    ({"assessment": {"stage": "onsite"}}, "assessment.stage", "A pre-screen's stage can only be online."),
    ({"assessment": {"symptoms": ["flu"]}}, "assessment.symptoms", "Unknown symptom code(s): 'flu'."),
    ({"slot": "2020-01-01T09:00:00+08:00"}, "slot", "There is no bookable slot at that time"),
    ({"family_of": {"reference": "AAAAAAAA", "status_token": "x" * 43}}, "family_of",
     "The family member's code or status token is not right."),
])
def test_invalid_input_is_a_422_with_the_field_and_the_same_messages_as_the_form(
    client: FlaskClient, app: Flask, day: str, overrides: dict[str, object], field: str, message: str
) -> None:
    body = api_body(preferred_day=day)
    assessment = overrides.pop("assessment", None)
    if isinstance(assessment, dict):
        body["assessment"].update(assessment)
        body["assessment"] = {k: v for k, v in body["assessment"].items() if v is not None}
    body.update(overrides)
    response = client.post("/api/v1/prescreenings", json=body, headers=EN)
    assert response.status_code == 422, response.json
    errors = {e["field"]: e["message"] for e in response.json["errors"]}  # type: ignore[index]
    assert field in errors and message in errors[field], errors
    with db(app) as s:
        assert s.exec(select(Encounter)).first() is None


def test_a_body_that_is_not_json_is_a_422(client: FlaskClient) -> None:
    response = client.post("/api/v1/prescreenings", data="name=x", headers=EN)
    assert response.status_code == 422 and response.json["errors"][0]["field"] == "body"  # type: ignore[index]


def test_a_red_flag_is_created_as_go_to_emergency_now_without_a_slot(client: FlaskClient, day: str) -> None:
    body = _create(client, preferred_day=day, assessment={"symptoms": ["slurred_speech"]})
    assert body["state"] == "directed_to_emergency" and body["next_step"] == "go_to_emergency_now"
    assert body["slot"] is None and body["assessment"]["emergency_now"] is True  # type: ignore[index]


def test_a_red_flag_with_invalid_contact_details_still_says_go_now(client: FlaskClient, day: str) -> None:
    response = client.post("/api/v1/prescreenings", headers=EN, json=api_body(
        preferred_day=day, phone="", assessment={"symptoms": ["chest_pain"]}))
    assert response.status_code == 422
    assert response.json["emergency_now"] is True  # type: ignore[index]
    assert response.json["message"].startswith("Danger sign: go to the emergency department now")  # type: ignore[index]


def test_a_phone_with_eight_open_bookings_gets_a_422_on_the_phone_alone_or_with_other_errors(
    client: FlaskClient, app: Flask, day: str
) -> None:
    for i in range(8):
        _create(client, preferred_day=day, name=f"家人{i}")
    alone = client.post("/api/v1/prescreenings", headers=EN, json=api_body(preferred_day=day, name="第九人"))
    assert alone.status_code == 422
    assert [e["field"] for e in alone.json["errors"]] == ["phone"]  # type: ignore[index]
    assert "already has 8 open bookings" in alone.json["errors"][0]["message"]  # type: ignore[index]
    both = client.post("/api/v1/prescreenings", headers=EN, json=api_body(preferred_day=day, name=""))
    assert both.status_code == 422
    assert {e["field"] for e in both.json["errors"]} == {"name", "phone"}  # type: ignore[index]
    urgent = client.post("/api/v1/prescreenings", headers=EN, json=api_body(
        preferred_day=day, name="第九人", assessment={"symptoms": ["chest_pain"]}))
    assert urgent.status_code == 422 and urgent.json["emergency_now"] is True  # type: ignore[index]
    with db(app) as s:
        assert len(s.exec(select(Encounter)).all()) == 8


def test_the_api_sets_no_cookie(client: FlaskClient, day: str) -> None:
    response = client.post("/api/v1/prescreenings", json=api_body(preferred_day=day), headers=EN)
    assert response.status_code == 201 and "Set-Cookie" not in response.headers
    assert "Set-Cookie" not in client.get("/api/v1/slots?stream=general").headers


def test_online_follow_up_is_taken_when_offered_and_accepted(client: FlaskClient, app: Flask) -> None:
    day = open_day(app, Stream.CHRONIC).isoformat()
    body = _create(client, preferred_day=day, accept_online_followup=True, assessment={
        "age_years": 60, "symptoms": [], "needs": ["prescription_refill"], "chronic_conditions": ["hypertension"]})
    assert body["state"] == "referred" and body["disposition"] == "online_followup" and body["slot"] is None


def test_family_members_share_a_party_with_proof(client: FlaskClient, app: Flask, day: str) -> None:
    first = _create(client, preferred_day=day)
    second = _create(client, preferred_day=day, name="张小明", family_of={
        "reference": first["reference_display"], "status_token": first["status_token"]})
    assert encounter(app, str(first["reference"])).party_id == encounter(app, str(second["reference"])).party_id


# --- reading the status --------------------------------------------------------------------------------------


def test_the_status_is_read_with_the_token_the_phone_or_a_staff_token(
    client: FlaskClient, app: Flask, day: str, make_user: Callable[..., StaffUser]
) -> None:
    created = _create(client, preferred_day=day, visit_reason="膝盖疼", assessment={"symptoms": ["back_pain"]})
    url = f"/api/v1/prescreenings/{created['reference']}"
    with app.app_context():
        s = app.extensions["triage.db"].session()
        staff = issue_token(s, user=make_user("api-nurse", Role.NURSE))
        s.close()
    for headers in ({"X-Status-Token": created["status_token"]}, {"X-Patient-Phone": "+86 138 0013 8000"},
                    {"Authorization": f"Bearer {staff}"}):
        response = client.get(url, headers={**EN, **headers})  # type: ignore[arg-type]
        assert response.status_code == 200, headers
        body = response.json
        assert body is not None and body["state"] == "booked" and body["stream"] == "general"
        text = response.get_data(as_text=True)
        for secret in ("back_pain", "Back pain", "膝盖疼", "13800138000", "张三明"):
            assert secret not in text
    assert client.get(f"{url}?token={created['status_token']}").status_code == 200


@pytest.mark.parametrize("headers", [{}, {"X-Status-Token": "wrong" * 9}, {"X-Patient-Phone": "13900139000"},
                                     {"X-Patient-Phone": "²"}, {"X-Patient-Phone": "138²0013800"},
                                     {"X-Status-Token": "é" * 40}, {"Authorization": "Bearer nope"}])
def test_the_code_alone_or_a_wrong_proof_reveals_nothing(
    client: FlaskClient, day: str, headers: dict[str, str]
) -> None:
    created = _create(client, preferred_day=day)
    known = client.get(f"/api/v1/prescreenings/{created['reference']}", headers={**EN, **headers})
    unknown = client.get("/api/v1/prescreenings/ZZZZZZZZ", headers={**EN, **headers})
    assert known.status_code == unknown.status_code == 404
    assert known.json == unknown.json


def test_failed_status_reads_are_rate_limited(database_url: str) -> None:
    from tests.conftest import make_app

    app = make_app(database_url, RATELIMIT_ENABLED=True, PRESCREEN_LOOKUP_LIMIT="3 per minute")
    client = app.test_client()
    statuses = [client.get("/api/v1/prescreenings/ZZZZZZZZ", headers={"X-Patient-Phone": "1"}).status_code
                for _ in range(4)]
    assert statuses == [404, 404, 404, 429]
    app.extensions["triage.db"].dispose()


def test_every_questionnaire_sent_counts_against_the_minute(database_url: str) -> None:
    from tests.conftest import make_app

    app = make_app(database_url, RATELIMIT_ENABLED=True, PRESCREEN_POST_LIMIT="2 per minute")
    client = app.test_client()
    statuses = [client.post("/api/v1/prescreenings", json=api_body(name=""), headers=EN).status_code
                for _ in range(3)]
    assert statuses == [422, 422, 429]
    refused = client.post("/api/v1/prescreenings", json=api_body(name=""), headers=EN)
    assert refused.headers["Retry-After"] == "60" and refused.json["message"]  # type: ignore[index]
    app.extensions["triage.db"].dispose()


# --- slots and the OpenAPI document --------------------------------------------------------------------------


def test_free_slots_are_listed_per_stream_and_never_for_emergency(client: FlaskClient, day: str) -> None:
    general = client.get(f"/api/v1/slots?stream=general&day={day}").json
    assert general is not None and general["bookable_online"] is True
    assert general["slots"][0]["local_start"] == f"{day}T08:00:00+08:00" and general["slots"][0]["free"] == 20
    emergency = client.get("/api/v1/slots?stream=emergency").json
    assert emergency == {"stream": "emergency", "bookable_online": False, "slots": []}
    assert client.get("/api/v1/slots?stream=dentist", headers=EN).status_code == 422
    assert client.get("/api/v1/slots?stream=general&day=soon", headers=EN).status_code == 422


def test_the_openapi_document_describes_the_pre_screen_endpoints(app: Flask) -> None:
    with app.app_context():
        doc = openapi_document()
    assert {"/api/v1/prescreenings", "/api/v1/prescreenings/{reference}", "/api/v1/slots"} <= set(doc["paths"])
    schemas = doc["components"]["schemas"]
    assert {"PrescreeningInput", "Prescreening", "PrescreeningStatus", "Slot"} <= set(schemas)
    assert "X-Status-Token" in str(doc["paths"]["/api/v1/prescreenings/{reference}"])
