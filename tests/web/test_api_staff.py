"""The staff JSON API: bearer tokens, check-in, triage, walk-ins, queue events, cases and queues."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import select

from tests.conftest import PASSWORD
from tests.onsite_support import (
    always_open_app,  # noqa: F401 - the `app` fixture of this module
    db,
    prescreened,
    state_of,
    ticketed,
)
from triage.domain.policy import Stream
from triage.models import Encounter, Role
from triage.services import create_user, issue_token

VITALS: dict[str, Any] = {"temperature_c": 36.6, "heart_rate": 78, "respiratory_rate": 16, "sbp": 122,
                          "spo2": 98, "avpu": "A"}


@pytest.fixture
def token(app: Flask) -> Callable[[Role], dict[str, str]]:
    """Factory: Authorization headers for a new user of a role (English answers)."""
    made: dict[Role, dict[str, str]] = {}

    def make(role: Role = Role.NURSE) -> dict[str, str]:
        if role not in made:
            with db(app) as s:
                user = create_user(s, username=f"api-{role.value}", password=PASSWORD, role=role)
                made[role] = {"Authorization": f"Bearer {issue_token(s, user=user, label='test')}",
                              "Accept-Language": "en"}
        return made[role]

    return make


def _case(app: Flask, **kwargs: Any) -> str:
    with db(app) as s:
        return prescreened(s, **kwargs).reference


def _waiting(app: Flask, stream: Stream = Stream.GENERAL, **kwargs: Any) -> Encounter:
    with db(app) as s:
        return ticketed(s, stream, **kwargs)


ENDPOINTS = [("post", "/api/v1/encounters/AAAAAAAA/check-in"), ("post", "/api/v1/encounters/AAAAAAAA/triage"),
             ("post", "/api/v1/walk-ins"), ("post", "/api/v1/encounters/AAAAAAAA/events/call"),
             ("get", "/api/v1/encounters/AAAAAAAA"), ("get", "/api/v1/queues/general")]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
@pytest.mark.parametrize("header", [None, "Bearer", "Bearer not-a-token", "Basic abc"])
def test_no_valid_token_is_401(client: FlaskClient, method: str, path: str, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    response = getattr(client, method)(path, headers=headers, json={})
    assert response.status_code == 401 and response.json["message"]


def test_a_browser_session_is_not_a_token(login: Callable[[Role], FlaskClient]) -> None:
    assert login(Role.ADMIN).get("/api/v1/queues/general").status_code == 401


@pytest.mark.parametrize("role", list(Role))
def test_every_staff_role_may_use_the_staff_api(app: Flask, client: FlaskClient,
                                                token: Callable[[Role], dict[str, str]], role: Role) -> None:
    reference = _case(app)
    assert client.post(f"/api/v1/encounters/{reference}/check-in", headers=token(role)).status_code == 200
    assert client.get("/api/v1/queues/general", headers=token(role)).status_code == 200


# --- check-in and triage --------------------------------------------------------------------------------------------


def test_check_in_then_triage_returns_the_decision_and_ticket(app: Flask, client: FlaskClient,
                                                              token: Callable[[Role], dict[str, str]]) -> None:
    reference = _case(app)
    checked = client.post(f"/api/v1/encounters/{reference.lower()}/check-in", headers=token(Role.NURSE))
    assert checked.status_code == 200 and checked.json["encounter"]["state"] == "arrived"
    version = checked.json["encounter"]["version"]
    response = client.post(f"/api/v1/encounters/{reference}/triage", headers=token(Role.NURSE),
                           json={**VITALS, "temperature_c": 38.4, "version": version})
    assert response.status_code == 200
    body = response.json
    assert body["ticket"] == "F-001" and body["reference"] == reference
    assert body["decision"]["recommended"] == {"stream": "fever", "cn_level": None}
    assert body["decision"]["final"] == {"stream": "fever", "cn_level": None}
    assert body["decision"]["overridden"] is False and body["decision"]["isolation_required"] is True
    assert body["decision"]["assessment"]["outcome"] == "route" and body["decision"]["assessment"]["reasons"]
    assert body["escort"]["kind"] == "fever" and "fever clinic" in body["escort"]["message"]
    assert body["encounter"]["state"] == "waiting"


def test_triage_with_an_override(app: Flask, client: FlaskClient, token: Callable[[Role], dict[str, str]]) -> None:
    reference = _case(app)
    client.post(f"/api/v1/encounters/{reference}/check-in", headers=token())
    missing = client.post(f"/api/v1/encounters/{reference}/triage", headers=token(),
                          json={**VITALS, "override": {"stream": "emergency", "cn_level": 3}})
    assert missing.status_code == 422
    assert missing.json["errors"] == [{"field": "override.reason", "message": missing.json["errors"][0]["message"]}]
    response = client.post(f"/api/v1/encounters/{reference}/triage", headers=token(), json={
        **VITALS, "override": {"stream": "emergency", "cn_level": 3, "reason": "chest tightness"}})
    assert response.status_code == 200 and response.json["ticket"] == "E-001"
    assert response.json["decision"]["overridden"] is True
    assert response.json["decision"]["override_reason"] == "chest tightness"


def test_lowering_a_critical_recommendation_is_403_for_a_nurse(app: Flask, client: FlaskClient,
                                                               token: Callable[[Role], dict[str, str]]) -> None:
    reference = _case(app)
    client.post(f"/api/v1/encounters/{reference}/check-in", headers=token(Role.NURSE))
    body = {**VITALS, "spo2": 85, "override": {"stream": "emergency", "cn_level": 4, "reason": "re-measured"}}
    denied = client.post(f"/api/v1/encounters/{reference}/triage", headers=token(Role.NURSE), json=body)
    assert denied.status_code == 403 and "needs a supervisor" in denied.json["message"]
    allowed = client.post(f"/api/v1/encounters/{reference}/triage", headers=token(Role.SUPERVISOR), json=body)
    assert allowed.status_code == 200 and allowed.json["decision"]["final"]["cn_level"] == 4


@pytest.mark.parametrize("level", ["1", "", " 2", True, False, 1.0, [1], {"level": 1}, 0, 5, -1, 2**70])
def test_an_override_level_is_a_json_integer_from_1_to_4(app: Flask, client: FlaskClient,
                                                         token: Callable[[Role], dict[str, str]], level: Any) -> None:
    reference = _case(app)
    client.post(f"/api/v1/encounters/{reference}/check-in", headers=token())
    response = client.post(f"/api/v1/encounters/{reference}/triage", headers=token(), json={
        **VITALS, "override": {"stream": "emergency", "cn_level": level, "reason": "chest tightness"}})
    assert response.status_code == 422
    errors = {e["field"]: e["message"] for e in response.json["errors"]}
    assert list(errors) == ["override.cn_level"] and "1, 2, 3 or 4" in errors["override.cn_level"]
    assert state_of(app, reference).state == "arrived"


@pytest.mark.parametrize(("body", "field"), [
    ({**VITALS, "temperature_c": 99.5}, "temperature_c"),
    ({**VITALS, "spo2": "high"}, "spo2"),
    ({**VITALS, "stage": "online"}, "stage"),
    ({**VITALS, "override": "emergency"}, "override"),
    ({**VITALS, "override": {"stream": "dentistry", "reason": "x"}}, "override.stream"),
    ({**VITALS, "override": {"colour": "red"}}, "override.colour"),
    ({**VITALS, "version": "2"}, "version"),
    ({**VITALS, "shoe_size": 44}, "shoe_size"),
    ({**VITALS, "context": {"outpatient_open": True}}, "context"),
    ({**VITALS, "context": {"at": "2026-11-22T23:00:00+08:00", "region_risk_level": "low"}}, "context"),
])
def test_invalid_triage_input_is_422_per_field(app: Flask, client: FlaskClient,
                                               token: Callable[[Role], dict[str, str]], body: dict[str, Any],
                                               field: str) -> None:
    reference = _case(app)
    client.post(f"/api/v1/encounters/{reference}/check-in", headers=token())
    response = client.post(f"/api/v1/encounters/{reference}/triage", headers=token(), json=body)
    assert response.status_code == 422
    assert field in [e["field"] for e in response.json["errors"]]
    assert state_of(app, reference).state == "arrived"


def test_a_body_that_is_not_json_is_422(app: Flask, client: FlaskClient,
                                        token: Callable[[Role], dict[str, str]]) -> None:
    response = client.post("/api/v1/encounters/AAAAAAAA/triage", headers=token(), data="temperature=38")
    assert response.status_code == 422 and response.json["errors"][0]["field"] == "body"


@pytest.mark.parametrize(("setup", "status"), [({"state": "cancelled"}, 409), ({"state": "completed"}, 409),
                                               ({"state": "booked", "visit_day_offset": -2}, 409)])
def test_check_in_refusals(app: Flask, client: FlaskClient, token: Callable[[Role], dict[str, str]],
                           setup: dict[str, Any], status: int) -> None:
    reference = _case(app, **setup)
    response = client.post(f"/api/v1/encounters/{reference}/check-in", headers=token())
    assert response.status_code == status and response.json["errors"][0]["field"] == "code"


def test_unknown_and_malformed_codes(client: FlaskClient, token: Callable[[Role], dict[str, str]]) -> None:
    assert client.post("/api/v1/encounters/ZZZZZZZZ/check-in", headers=token()).status_code == 404
    assert client.post("/api/v1/encounters/HELLO/check-in", headers=token()).status_code == 422
    assert client.post("/api/v1/encounters/ZZZZZZZZ/triage", headers=token(), json=VITALS).status_code == 404
    assert client.get("/api/v1/encounters/ZZZZZZZZ", headers=token()).status_code == 404


def test_triage_twice_is_409_and_a_stale_version_is_409(app: Flask, client: FlaskClient,
                                                        token: Callable[[Role], dict[str, str]]) -> None:
    reference = _case(app)
    version = client.post(f"/api/v1/encounters/{reference}/check-in", headers=token()).json["encounter"]["version"]
    stale = client.post(f"/api/v1/encounters/{reference}/triage", headers=token(), json={**VITALS, "version": 1})
    assert stale.status_code == 409
    assert client.post(f"/api/v1/encounters/{reference}/triage", headers=token(),
                       json={**VITALS, "version": version}).status_code == 200
    again = client.post(f"/api/v1/encounters/{reference}/triage", headers=token(), json=VITALS)
    assert again.status_code == 409 and "not awaiting triage" in again.json["message"]


# --- walk-ins -----------------------------------------------------------------------------------------------------


def test_a_walk_in_is_registered_and_ticketed_in_one_call(app: Flask, client: FlaskClient,
                                                         token: Callable[[Role], dict[str, str]]) -> None:
    response = client.post("/api/v1/walk-ins", headers=token(), json={
        "patient": {"name": "王五", "age_years": 72, "sex": "F", "arrival_mode": "ambulance"},
        "assessment": {**VITALS}})
    assert response.status_code == 201
    body = response.json
    assert body["ticket"] == "G-001" and len(body["reference"]) == 8
    assert response.headers["Location"].endswith(f"/api/v1/encounters/{body['reference']}")
    assert body["encounter"]["origin"] == "walk_in" and body["encounter"]["priority_flags"] == ["elderly"]
    detail = client.get(response.headers["Location"], headers=token()).json
    assert [a["stage"] for a in detail["assessments"]] == ["onsite"]
    assert detail["assessments"][0]["inputs"]["arrival_mode"] == "ambulance"
    assert [h["trigger"] for h in detail["history"]] == ["create", "triage", "enqueue"]
    agreeing = client.post("/api/v1/walk-ins", headers=token(), json={
        "patient": {"age_years": 72.5, "sex": "F"}, "assessment": {**VITALS, "age_years": 72, "sex": "F"}})
    assert agreeing.status_code == 201, agreeing.json


@pytest.mark.parametrize(("body", "field"), [
    ({"patient": {"name": "x"}, "assessment": VITALS}, "patient.age_years"),
    ({"patient": {"age_years": 30, "sex": "X"}, "assessment": VITALS}, "patient.sex"),
    ({"patient": {"age_years": 30, "height": 180}, "assessment": VITALS}, "patient.height"),
    ({"patient": {"age_years": 30, "name": 5}, "assessment": VITALS}, "patient.name"),
    ({"patient": {"age_years": 30, "name": "\u202eevil"}, "assessment": VITALS}, "patient.name"),
    ({"patient": {"age_years": 30, "name": "Wang\x1b[2J"}, "assessment": VITALS}, "patient.name"),
    ({"patient": {"age_years": 30, "name": "<b>Wang</b>"}, "assessment": VITALS}, "patient.name"),
    ({"patient": {"age_years": 30}, "assessment": {"spo2": 140}}, "spo2"),
    ({"patient": {"age_years": 30}, "assessment": VITALS, "insurance": "x"}, "insurance"),
    ({"patient": "Wang", "assessment": VITALS}, "patient"),
    ({"patient": {"age_years": 30}, "assessment": {**VITALS, "context": {"outpatient_open": False}}}, "context"),
    ({"patient": {"age_years": 50}, "assessment": {**VITALS, "age_years": 5}}, "assessment.age_years"),
    ({"patient": {"age_years": 50, "sex": "F"}, "assessment": {**VITALS, "sex": "M"}}, "assessment.sex"),
])
def test_invalid_walk_ins_are_422_and_leave_nothing(app: Flask, client: FlaskClient,
                                                    token: Callable[[Role], dict[str, str]], body: dict[str, Any],
                                                    field: str) -> None:
    response = client.post("/api/v1/walk-ins", headers=token(), json=body)
    assert response.status_code == 422 and field in [e["field"] for e in response.json["errors"]]
    with db(app) as s:
        assert s.exec(select(Encounter)).all() == []


# --- events -----------------------------------------------------------------------------------------------------------


def test_queue_events_follow_the_workflow(app: Flask, client: FlaskClient,
                                          token: Callable[[Role], dict[str, str]]) -> None:
    enc = _waiting(app)
    url = f"/api/v1/encounters/{enc.reference}/events"
    premature = client.post(f"{url}/complete", headers=token())
    assert premature.status_code == 409 and "not allowed" in premature.json["message"]
    assert premature.json["errors"] == [{"field": "state", "message": premature.json["message"]}]
    called = client.post(f"{url}/call", headers=token())
    assert called.status_code == 200 and called.json["encounter"]["state"] == "called"
    assert "mark_no_show" in called.json["encounter"]["available_actions"]
    assert client.post(f"{url}/call", headers=token()).json["encounter"]["call_count"] == 2
    assert client.post(f"{url}/start", headers=token(), json={}).json["encounter"]["state"] == "in_consultation"
    done = client.post(f"{url}/complete", headers=token())
    assert done.status_code == 200 and done.json["encounter"]["state"] == "completed"


def test_events_check_the_version(app: Flask, client: FlaskClient, token: Callable[[Role], dict[str, str]]) -> None:
    enc = _waiting(app)
    url = f"/api/v1/encounters/{enc.reference}/events"
    assert client.post(f"{url}/call", headers=token(), json={"version": enc.version}).status_code == 200
    stale = client.post(f"{url}/start", headers=token(), json={"version": enc.version})
    assert stale.status_code == 409 and stale.json["errors"][0]["field"] == "version"


@pytest.mark.parametrize(("trigger", "body", "status", "field"), [
    ("retriage", {}, 422, "reason"),
    ("refer", {}, 422, "referral_target"),
    ("refer", {"referral_target": "moon"}, 422, "referral_target"),
    ("refer", {"referral_target": 7}, 422, "referral_target"),
    ("call", {"colour": "red"}, 422, "colour"),
    ("check_in", {}, 404, "trigger"),
    ("fly", {}, 404, "trigger"),
])
def test_invalid_events(app: Flask, client: FlaskClient, token: Callable[[Role], dict[str, str]], trigger: str,
                        body: dict[str, Any], status: int, field: str) -> None:
    enc = _waiting(app)
    response = client.post(f"/api/v1/encounters/{enc.reference}/events/{trigger}", headers=token(), json=body)
    assert response.status_code == status and response.json["errors"][0]["field"] == field


def test_refer_and_retriage_events(app: Flask, client: FlaskClient, token: Callable[[Role], dict[str, str]]) -> None:
    first, second = _waiting(app, name="A"), _waiting(app, name="B")
    referred = client.post(f"/api/v1/encounters/{first.reference}/events/refer", headers=token(),
                           json={"referral_target": "online_followup", "reason": "stable refill"})
    assert referred.json["encounter"]["state"] == "referred"
    assert referred.json["encounter"]["disposition"] == "online_followup"
    back = client.post(f"/api/v1/encounters/{second.reference}/events/retriage", headers=token(),
                       json={"reason": "febrile while waiting"})
    assert back.status_code == 200 and back.json["encounter"]["state"] == "arrived"
    again = client.post(f"/api/v1/encounters/{second.reference}/triage", headers=token(),
                        json={**VITALS, "temperature_c": 38.8})
    assert again.json["ticket"] == "F-001"
    detail = client.get(f"/api/v1/encounters/{second.reference}", headers=token()).json
    assert [a["final"]["stream"] for a in detail["assessments"]] == ["general", "fever"]
    retriage = next(h for h in detail["history"] if h["trigger"] == "retriage")
    assert retriage["reason"] == "febrile while waiting" and retriage["actor_kind"] == "staff"


# --- reads ----------------------------------------------------------------------------------------------------------


def test_a_case_with_its_assessments_and_history(app: Flask, client: FlaskClient,
                                                 token: Callable[[Role], dict[str, str]]) -> None:
    reference = _case(app, symptoms=["headache"])
    client.post(f"/api/v1/encounters/{reference}/check-in", headers=token())
    client.post(f"/api/v1/encounters/{reference}/triage", headers=token(), json=VITALS)
    body = client.get(f"/api/v1/encounters/{reference}", headers=token()).json
    assert body["encounter"]["ticket"] == "G-001" and body["encounter"]["patient"]["name"] == "张三明"
    assert "phone" not in body["encounter"]["patient"]
    assert [a["stage"] for a in body["assessments"]] == ["online", "onsite"]
    assert all(isinstance(r["message"], str) for r in body["assessments"][1]["result"]["reasons"])
    assert [h["trigger"] for h in body["history"]] == ["create", "check_in", "triage", "enqueue"]
    zh = client.get(f"/api/v1/encounters/{reference}",
                    headers={**token(), "Accept-Language": "zh-CN"}).json
    assert zh["encounter"]["state_label"] == "候诊中"


def test_a_queue_in_queue_order(app: Flask, client: FlaskClient, token: Callable[[Role], dict[str, str]]) -> None:
    young = _waiting(app, name="Young", age=30)
    old = _waiting(app, name="Old", age=80)
    body = client.get("/api/v1/queues/general", headers=token()).json
    assert [e["encounter"]["reference"] for e in body["waiting"]] == [old.reference, young.reference]
    assert body["waiting"][0]["position"] == 1 and body["waiting"][0]["wait"]["target_minutes"] == 60
    assert body["called"] == [] and body["in_consultation"] == [] and body["overdue"] == 0
    assert client.get("/api/v1/queues/dentistry", headers=token()).status_code == 404


def test_the_openapi_document_describes_the_staff_api(client: FlaskClient) -> None:
    paths = client.get("/api/v1/openapi.json").json["paths"]
    for path in ("/api/v1/encounters/{reference}/check-in", "/api/v1/encounters/{reference}/triage",
                 "/api/v1/walk-ins", "/api/v1/encounters/{reference}/events/{trigger}",
                 "/api/v1/encounters/{reference}", "/api/v1/queues/{stream}"):
        assert path in paths
        operation = next(iter(paths[path].values()))
        assert operation["security"] == [{"bearer": []}] and "401" in operation["responses"]


def test_a_real_pre_screen_is_checked_in_and_triaged_with_both_assessments_kept(
        app: Flask, client: FlaskClient, token: Callable[[Role], dict[str, str]]) -> None:
    from sqlalchemy import update
    from sqlmodel import col

    from tests.web.prescreen_support import api_body, open_day
    from triage.hospital import base_policy
    from triage.models import utcnow

    created = client.post("/api/v1/prescreenings", headers={"Accept-Language": "en"},
                          json=api_body(preferred_day=open_day(app).isoformat(),
                                        assessment={"symptoms": ["cough"]}))
    assert created.status_code == 201, created.json
    reference = created.json["reference"]
    with db(app) as s:  # the booked day has come
        today = base_policy().local(utcnow()).date()
        s.execute(update(Encounter).where(col(Encounter.reference) == reference).values(visit_day=today))
        s.commit()
    assert client.post(f"/api/v1/encounters/{reference}/check-in", headers=token()).status_code == 200
    decision = client.post(f"/api/v1/encounters/{reference}/triage", headers=token(),
                           json={**VITALS, "symptoms": ["cough"]})
    assert decision.status_code == 200 and decision.json["ticket"] == "F-001"
    detail = client.get(f"/api/v1/encounters/{reference}", headers=token()).json
    online, onsite_record = detail["assessments"]
    assert (online["stage"], onsite_record["stage"]) == ("online", "onsite")
    assert online["result"]["reasons"] and all(r["message"].isascii() for r in online["result"]["reasons"])
    assert "reasons_en" not in online["result"]
