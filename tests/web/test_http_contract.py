"""The HTTP contract beside the messages: the headers an error owes its client, and one status per kind of refusal.

A 405 names the methods the address takes (Allow); an API 401 says which credentials it wants (WWW-Authenticate:
Bearer). The queue-event endpoint answers 404 for an action it does not offer, as its OpenAPI document says, and
409 for an action it offers that the case's state does not allow now.
"""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import PASSWORD
from tests.onsite_support import (
    always_open_app,  # noqa: F401 - the `app` fixture of this module
    db,
    state_of,
    ticketed,
)
from triage.hospital import workflow
from triage.models import Role
from triage.services import create_user, issue_token, onsite

EN = {"Accept-Language": "en"}


@pytest.fixture
def bearer(app: Flask) -> dict[str, str]:
    """A nurse's API token, with English answers."""
    with db(app) as s:
        nurse = create_user(s, username="api-nurse", password=PASSWORD, role=Role.NURSE)
        return {"Authorization": f"Bearer {issue_token(s, user=nurse, label='test')}", **EN}


def _waiting(app: Flask) -> str:
    with db(app) as s:
        return ticketed(s).reference


# --- headers -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("get", "/api/v1/walk-ins", {"POST"}),
    ("delete", "/api/v1/assessments", {"POST"}),
    ("put", "/prescreen/", {"GET", "POST"}),
    ("get", "/staff/contacts/AAAAAAAA/move", {"POST"}),
    ("patch", "/login", {"GET", "POST"}),
])
def test_a_405_names_the_methods_the_address_takes(client: FlaskClient, method: str, path: str,
                                                   allowed: set[str]) -> None:
    response = getattr(client, method)(path, headers=EN)
    assert response.status_code == 405
    assert allowed <= {m.strip() for m in response.headers["Allow"].split(",")}
    assert "This address does not accept this kind of request." in response.text


@pytest.mark.parametrize(("header", "challenge"), [
    (None, 'Bearer realm="triage"'),
    ("Basic YWRtaW46YWRtaW4=", 'Bearer realm="triage"'),
    ("Bearer not-a-token", 'Bearer realm="triage", error="invalid_token"'),
])
@pytest.mark.parametrize(("method", "path"), [("get", "/api/v1/queues/general"), ("post", "/api/v1/walk-ins"),
                                              ("post", "/api/v1/encounters/AAAAAAAA/events/call")])
def test_an_api_401_asks_for_a_bearer_token(client: FlaskClient, method: str, path: str, header: str | None,
                                            challenge: str) -> None:
    response = getattr(client, method)(path, headers={"Authorization": header} if header else {}, json={})
    assert response.status_code == 401 and response.json["message"].startswith("需要有效的 API 令牌")
    assert response.headers["WWW-Authenticate"] == challenge
    english = getattr(client, method)(path, headers={"Accept-Language": "en"}, json={})
    assert english.json["message"] == "A valid API token is required (header Authorization: Bearer <token>)."


def test_a_page_for_staff_sends_the_browser_to_the_login_without_a_bearer_challenge(client: FlaskClient) -> None:
    response = client.get("/staff/contacts/")
    assert response.status_code == 302 and "WWW-Authenticate" not in response.headers


# --- the queue-event endpoint: 404 not offered here, 409 not allowed now ----------------------------------------------


def _not_offered(app: Flask) -> list[str]:
    with app.app_context():
        return sorted({t.trigger for t in workflow().transitions} - set(onsite.QUEUE_TRIGGERS))


def test_the_workflow_has_actions_the_queue_event_endpoint_does_not_offer(app: Flask) -> None:
    assert {"book", "check_in", "triage", "expire", "cancel"} <= set(_not_offered(app))


@pytest.mark.parametrize("trigger", ["book", "check_in", "triage", "enqueue", "expire", "cancel", "reschedule",
                                     "direct_to_emergency", "fly"])
def test_an_action_the_queue_event_endpoint_does_not_offer_is_404(
        app: Flask, client: FlaskClient, bearer: dict[str, str], trigger: str) -> None:
    reference = _waiting(app)
    response = client.post(f"/api/v1/encounters/{reference}/events/{trigger}", headers=bearer, json={})
    assert response.status_code == 404
    assert response.json["errors"] == [{"field": "trigger", "message": "There is no such queue action; use one of "
                                        "call, start, complete, retriage, mark_no_show, leave, refer."}]
    assert state_of(app, reference).state == "waiting"


def test_a_queue_action_the_case_is_not_ready_for_is_409(app: Flask, client: FlaskClient,
                                                         bearer: dict[str, str]) -> None:
    reference = _waiting(app)
    response = client.post(f"/api/v1/encounters/{reference}/events/complete", headers=bearer, json={})
    assert response.status_code == 409
    assert "is not allowed while the case is" in response.json["message"]
    assert state_of(app, reference).state == "waiting"


def test_the_document_lists_exactly_the_actions_the_endpoint_offers(
        app: Flask, client: FlaskClient, bearer: dict[str, str]) -> None:
    operation = client.get("/api/v1/openapi.json").json["paths"]["/api/v1/encounters/{reference}/events/{trigger}"]
    listed = next(p for p in operation["post"]["parameters"] if p["name"] == "trigger")["schema"]["enum"]
    assert listed == list(onsite.QUEUE_TRIGGERS)
    assert {"404", "409", "422"} <= set(operation["post"]["responses"])
    reference = _waiting(app)
    for trigger in listed:  # offered: never "unknown", whatever the case's state
        response = client.post(f"/api/v1/encounters/{reference}/events/{trigger}", headers=bearer, json={})
        assert response.status_code != 404, (trigger, response.json)
    for trigger in _not_offered(app):
        response = client.post(f"/api/v1/encounters/{reference}/events/{trigger}", headers=bearer, json={})
        assert response.status_code == 404, (trigger, response.json)
