"""The clinics' queue screens: order, waits against target, only the allowed buttons, every action, conflicts."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, update
from sqlmodel import col

from tests.conftest import PASSWORD
from tests.onsite_support import (
    always_open_app,  # noqa: F401 - the `app` fixture of this module
    db,
    open_app,
    state_of,
    ticketed,
    version_of,
)
from triage.domain.policy import Stream
from triage.models import Encounter, Role, utcnow
from triage.services import create_user, onsite

EN = {"Accept-Language": "en"}


@pytest.fixture
def nurse(login: Callable[[Role], FlaskClient]) -> FlaskClient:
    """A logged-in nurse."""
    return login(Role.NURSE)


def _ticket(app: Flask, stream: Stream = Stream.GENERAL, **kwargs: Any) -> Encounter:
    with db(app) as s:
        return ticketed(s, stream, **kwargs)


def _act(client: FlaskClient, app: Flask, enc: Encounter, trigger: str, stream: str = "general",
         **form: str) -> Any:
    data = {"version": str(version_of(app, enc.reference)), **form}
    return client.post(f"/queues/{stream}/{enc.reference}/{trigger}", data=data, headers=EN)


def _row(page: str, reference: str) -> str:
    start = page.index(f'id="row-{reference}"')
    return page[start:page.index("</tr>", start)]


def _buttons(row: str) -> list[str]:
    return re.findall(r'/queues/\w+/\w+/(\w+)"', row)


# --- access ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), [("get", "/queues/"), ("get", "/queues/general"),
                                              ("get", "/queues/general/partial"),
                                              ("post", "/queues/general/AAAAAAAA/call")])
def test_anonymous_users_get_the_login_page(client: FlaskClient, method: str, path: str) -> None:
    response = getattr(client, method)(path)
    assert response.status_code == 302 and "/login" in response.headers["Location"]


@pytest.mark.parametrize("role", list(Role))
def test_every_staff_role_may_work_the_queues(app: Flask, login: Callable[[Role], FlaskClient], role: Role) -> None:
    client = login(role)
    enc = _ticket(app)
    assert client.get("/queues/", headers=EN).status_code == 200
    assert "G-001" in client.get("/queues/general", headers=EN).text
    assert _act(client, app, enc, "call").status_code == 302
    assert state_of(app, enc.reference).state == "called"


def test_unknown_streams_and_actions_are_404(app: Flask, nurse: FlaskClient) -> None:
    enc = _ticket(app)
    assert nurse.get("/queues/dentistry").status_code == 404
    assert nurse.get("/queues/dentistry/partial").status_code == 404
    assert _act(nurse, app, enc, "explode").status_code == 404
    assert _act(nurse, app, enc, "check_in").status_code == 404  # not a queue action


# --- what the screen shows ---------------------------------------------------------------------------------------


def test_the_queue_is_in_queue_order_with_waits_against_target(app: Flask, nurse: FlaskClient) -> None:
    level3 = _ticket(app, Stream.EMERGENCY, name="Three", override=onsite.Override(Stream.EMERGENCY, 3, "x"))
    level2 = _ticket(app, Stream.EMERGENCY, name="Two", override=onsite.Override(Stream.EMERGENCY, 2, "x"))
    page = nurse.get("/queues/emergency", headers=EN).text
    assert page.index(f"row-{level2.reference}") < page.index(f"row-{level3.reference}")
    assert "target 10 min" in _row(page, level2.reference) and "target 30 min" in _row(page, level3.reference)
    assert "Level 2" in _row(page, level2.reference)


def test_an_overdue_patient_is_highlighted_in_words_not_only_colour(app: Flask, nurse: FlaskClient) -> None:
    enc = _ticket(app, Stream.EMERGENCY, override=onsite.Override(Stream.EMERGENCY, 2, "x"))
    with db(app) as s:
        s.execute(update(Encounter).where(col(Encounter.id) == enc.id)
                  .values(queued_at=utcnow() - timedelta(minutes=25)))
        s.commit()
    page = nurse.get("/queues/emergency", headers=EN).text
    row = _row(page, enc.reference)
    assert 'class="overdue' in row and "Overdue" in row and "25 min" in row
    assert "Overdue: 1" in page
    overview = nurse.get("/queues/", headers=EN).text
    assert re.search(r'<tr class="overdue">.*?Emergency', overview, re.S)


def _case_page(client: FlaskClient, reference: str) -> str:
    page = client.get(f"/queues/general/{reference}", headers=EN)
    assert page.status_code == 200
    return page.text


def test_buttons_show_only_what_the_workflow_allows_now(app: Flask, nurse: FlaskClient) -> None:
    enc = _ticket(app)
    row = _row(nurse.get("/queues/general").text, enc.reference)
    assert _buttons(row) == ["call", "start"] and f'href="/queues/general/{enc.reference}"' in row  # More actions
    assert _buttons(_case_page(nurse, enc.reference)) == ["call", "start", "retriage", "refer", "leave"]
    _act(nurse, app, enc, "call")
    called_row = _row(nurse.get("/queues/general", headers=EN).text, enc.reference)
    assert _buttons(called_row) == ["call", "start"] and "Call again" in called_row
    assert _buttons(_case_page(nurse, enc.reference)) == ["call", "start", "retriage", "refer", "mark_no_show",
                                                          "leave"]
    _act(nurse, app, enc, "start")
    assert _buttons(_row(nurse.get("/queues/general").text, enc.reference)) == ["complete"]
    assert _buttons(_case_page(nurse, enc.reference)) == ["complete", "refer"]


def test_every_action_carries_the_version(app: Flask, nurse: FlaskClient) -> None:
    enc = _ticket(app)
    version = f'name="version" value="{version_of(app, enc.reference)}"'
    row = _row(nurse.get("/queues/general").text, enc.reference)
    assert row.count("<button") == row.count(version) == 2
    page = _case_page(nurse, enc.reference)
    assert page.count(version) == 5  # call, start, re-triage, refer, left


def test_a_case_no_longer_in_the_queue_sends_back_to_the_list(app: Flask, nurse: FlaskClient) -> None:
    enc = _ticket(app)
    _act(nurse, app, enc, "leave")
    response = nurse.get(f"/queues/general/{enc.reference}", headers=EN)
    assert response.status_code == 302 and response.headers["Location"] == "/queues/general"
    assert "G-001 is no longer in this queue." in nurse.get("/queues/general", headers=EN).text
    assert nurse.get("/queues/general/ZZZZZZZZ").status_code == 404


def test_the_partial_is_a_fragment(app: Flask, nurse: FlaskClient) -> None:
    _ticket(app)
    response = nurse.get("/queues/general/partial", headers=EN)
    assert response.status_code == 200 and "<html" not in response.text and "G-001" in response.text


def test_the_screen_polls_its_partial(nurse: FlaskClient) -> None:
    page = nurse.get("/queues/general").text
    assert 'hx-get="/queues/general/partial"' in page and 'hx-trigger="every 5s"' in page
    assert "htmx.min.js" in page and "includeIndicatorStyles" in page and "<script>" not in page


# --- actions ---------------------------------------------------------------------------------------------------


def test_call_call_again_start_complete(app: Flask, nurse: FlaskClient) -> None:
    enc = _ticket(app)
    response = _act(nurse, app, enc, "call")
    assert response.status_code == 302 and response.headers["Location"] == "/queues/general"
    assert "G-001: Call." in nurse.get("/queues/general", headers=EN).text
    _act(nurse, app, enc, "call")
    assert state_of(app, enc.reference).call_count == 2
    _act(nurse, app, enc, "start")
    assert state_of(app, enc.reference).state == "in_consultation"
    _act(nurse, app, enc, "complete")
    assert state_of(app, enc.reference).state == "completed"
    assert "G-001" not in nurse.get("/queues/general/partial").text


@pytest.mark.parametrize(("setup", "trigger", "state"), [
    (["call"], "mark_no_show", "no_show"),
    ([], "leave", "left_without_being_seen"),
    (["call"], "leave", "left_without_being_seen"),
])
def test_closing_actions(app: Flask, nurse: FlaskClient, setup: list[str], trigger: str, state: str) -> None:
    enc = _ticket(app)
    for step in setup:
        _act(nurse, app, enc, step)
    assert _act(nurse, app, enc, trigger).status_code == 302
    assert state_of(app, enc.reference).state == state


@pytest.mark.parametrize("target", ["cmty-west", "online_followup"])
def test_refer_to_a_facility_from_the_policy_or_to_online_follow_up(app: Flask, nurse: FlaskClient,
                                                                     target: str) -> None:
    enc = _ticket(app)
    page = _case_page(nurse, enc.reference)
    assert "West District Community Health Centre" in page and "Online follow-up" in page
    assert _act(nurse, app, enc, "refer", referral_target=target).status_code == 302
    case = state_of(app, enc.reference)
    assert (case.state, case.disposition) == ("referred", target)


def test_refer_without_a_target_is_refused_on_the_cases_page(app: Flask, nurse: FlaskClient) -> None:
    enc = _ticket(app)
    response = _act(nurse, app, enc, "refer", referral_target="")
    assert response.status_code == 422
    assert 'role="alert"' in response.text and "Choose a facility" in response.text
    assert 'name="referral_target" aria-invalid="true"' in response.text


def test_a_failed_call_is_shown_beside_its_row(app: Flask, login: Callable[[Role], FlaskClient]) -> None:
    first, second = login(Role.NURSE), login(Role.SUPERVISOR)
    enc = _ticket(app)
    stale = str(version_of(app, enc.reference))
    assert first.post(f"/queues/general/{enc.reference}/call", data={"version": stale}).status_code == 302
    response = second.post(f"/queues/general/{enc.reference}/start", data={"version": stale}, headers=EN)
    assert response.status_code == 409 and "The list below shows the current state." in response.text
    row = _row(response.text, enc.reference)
    assert "has-problem" in row and "Someone else changed this case" in row


def test_re_triage_needs_a_reason_and_keeps_what_was_typed(app: Flask, nurse: FlaskClient) -> None:
    enc = _ticket(app)
    response = _act(nurse, app, enc, "retriage", reason="   ")
    assert response.status_code == 422 and "Give the reason for re-triage" in response.text
    assert state_of(app, enc.reference).state == "waiting"


def test_re_triage_from_general_to_fever_through_the_screens(app: Flask, nurse: FlaskClient) -> None:
    enc = _ticket(app)
    response = _act(nurse, app, enc, "retriage", reason="38.6 °C while waiting")
    assert response.status_code == 302 and response.headers["Location"] == f"/desk/{enc.reference}/triage"
    form = nurse.get(response.headers["Location"], headers=EN).text
    assert "Re-triage, was G-001" in form and "Previous on-site triage" in form
    assert "Reason for re-triage:</strong> 38.6 °C while waiting" in form
    response = nurse.post(f"/desk/{enc.reference}/triage", data={
        "version": str(version_of(app, enc.reference)), "temperature_c": "38.6", "heart_rate": "92",
        "action": "confirm"})
    assert response.status_code == 302
    case = state_of(app, enc.reference)
    assert (case.stream, case.ticket, case.state) == ("fever", "F-001", "waiting")
    assert "F-001" in nurse.get("/queues/fever").text
    assert f"row-{enc.reference}" not in nurse.get("/queues/general").text


def test_a_stale_action_gets_a_clear_conflict_never_a_silent_overwrite(app: Flask,
                                                                       login: Callable[[Role], FlaskClient]) -> None:
    first, second = login(Role.NURSE), login(Role.SUPERVISOR)
    enc = _ticket(app)
    stale = str(version_of(app, enc.reference))
    assert first.post(f"/queues/general/{enc.reference}/start", data={"version": stale}).status_code == 302
    response = second.post(f"/queues/general/{enc.reference}/leave", data={"version": stale}, headers=EN)
    assert response.status_code == 409
    assert "Someone else changed this case" in response.text
    assert "The page shows the current state." in response.text  # the case's page, where "left" is
    assert state_of(app, enc.reference).state == "in_consultation"


def test_an_action_the_workflow_does_not_allow_is_a_conflict(app: Flask, nurse: FlaskClient) -> None:
    enc = _ticket(app)
    response = _act(nurse, app, enc, "complete")
    assert response.status_code == 409 and "is not allowed while the case is" in response.text
    response = _act(nurse, app, enc, "mark_no_show")
    assert response.status_code == 409


def test_a_clinic_screen_cannot_act_on_another_streams_patient(app: Flask, nurse: FlaskClient) -> None:
    fever = _ticket(app, Stream.FEVER)
    for trigger in ("call", "leave"):
        response = _act(nurse, app, fever, trigger, stream="chronic")
        assert response.status_code == 409 and "no longer in this queue" in response.text
    assert state_of(app, fever.reference).state == "waiting"
    assert _act(nurse, app, fever, "call", stream="fever").status_code == 302


@pytest.mark.parametrize("version", ["9" * 5000, "-1", "²", "١", "abc"])
def test_an_action_whose_version_is_not_a_version_is_refused_and_changes_nothing(app: Flask, nurse: FlaskClient,
                                                                                 version: str) -> None:
    enc = _ticket(app)
    response = _act(nurse, app, enc, "call", version=version)
    assert response.status_code == 422 and "reload the page" in response.text
    assert state_of(app, enc.reference).state == "waiting"


def test_unknown_case_is_404(nurse: FlaskClient) -> None:
    response = nurse.post("/queues/general/ZZZZZZZZ/call", data={"version": "1"}, headers=EN)
    assert response.status_code == 404


# --- performance guard ---------------------------------------------------------------------------------------------


def _statements(app: Flask, client: FlaskClient, path: str) -> list[str]:
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.lstrip().upper().startswith(("BEGIN", "PRAGMA")):
            seen.append(statement)

    engine = app.extensions["triage.db"].read_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        assert client.get(path).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return seen


@pytest.mark.parametrize("patients", [2, 60])
def test_the_queue_partial_runs_a_fixed_number_of_statements(app: Flask, nurse: FlaskClient, patients: int) -> None:
    for i in range(patients):
        _ticket(app, name=f"P{i}", age=20 + i)
    nurse.get("/queues/general/partial")  # warm the policy cache, as a running server has
    _ticket(app, name="Last")  # the queue changed: the next poll renders it again
    seen = _statements(app, nurse, "/queues/general/partial")
    encounter_reads = [s for s in seen if "FROM encounter" in s]
    assert len(encounter_reads) == 3, seen  # called and in consultation, the head of the line, its counts
    assert len(seen) <= 5, seen  # and the logged-in user, the queue's version
    again = _statements(app, nurse, "/queues/general/partial")
    assert [s for s in again if "FROM encounter" in s] == [] and len(again) <= 2, again  # unchanged: kept


def test_a_kept_list_is_never_stale_and_carries_each_screens_own_token(
    app: Flask, login: Callable[[Role], FlaskClient]
) -> None:
    first, second = login(Role.NURSE), login(Role.SUPERVISOR)
    enc = _ticket(app, name="Wang Wu")
    other = _ticket(app, name="Li Si")
    assert 'name="csrf_token"' in first.get("/queues/general/partial", headers=EN).text
    assert "/call" in _row(second.get("/queues/general/partial", headers=EN).text, enc.reference)
    assert _act(first, app, enc, "call").status_code == 302
    page = second.get("/queues/general/partial", headers=EN).text
    assert "/start" in _row(page, enc.reference) and "Call again" in _row(page, enc.reference)
    assert "/call" in _row(page, other.reference)
    tokens = {re.search(r'name="csrf_token" value="([^"]+)"', client.get("/queues/general/partial").text)[1]
              for client in (first, second)}  # type: ignore[index]
    assert len(tokens) == 2


def test_a_kept_list_posts_with_the_screens_own_csrf_token(database_url: str, tmp_path: Path) -> None:
    app = open_app(database_url, tmp_path, WTF_CSRF_ENABLED=True)
    try:
        with db(app) as s:
            for name in ("nurse-a", "nurse-b"):
                create_user(s, username=name, password=PASSWORD, role=Role.NURSE)
        clients = []
        for name in ("nurse-a", "nurse-b"):
            client = app.test_client()
            token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', client.get("/login").text)[1]  # type: ignore[index]
            assert client.post("/login", data={"csrf_token": token, "username": name, "password": PASSWORD}
                               ).status_code == 302
            clients.append(client)
        enc = _ticket(app)
        clients[0].get("/queues/general/partial")  # rendered for the first screen, kept for the second
        page = clients[1].get("/queues/general/partial").text
        assert f"/queues/general/{enc.reference}/call" in _row(page, enc.reference)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)[1]  # type: ignore[index]
        response = clients[1].post(f"/queues/general/{enc.reference}/call",
                                   data={"csrf_token": token, "version": str(version_of(app, enc.reference))})
        assert response.status_code == 302 and state_of(app, enc.reference).state == "called"
    finally:
        app.extensions["triage.db"].dispose()
