"""The entrance desk through its real forms: scan, walk-in, triage (confirm or override), ticket; every role."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import col, select

from tests.conftest import PASSWORD
from tests.onsite_support import (
    always_open_app,  # noqa: F401 - the `app` fixture of this module
    db,
    open_app,
    prescreened,
    state_of,
    ticketed,
    version_of,
)
from triage.models import Assessment, Encounter, Role, StaffUser
from triage.services import create_user, format_reference

EN = {"Accept-Language": "en"}
VITALS = {"temperature_c": "36.6", "heart_rate": "78", "respiratory_rate": "16", "sbp": "122", "spo2": "98",
          "avpu": "A", "pain_nrs": "1"}


@pytest.fixture
def nurse(login: Callable[[Role], FlaskClient]) -> FlaskClient:
    """A logged-in nurse."""
    return login(Role.NURSE)


def _case(app: Flask, **kwargs: object) -> str:
    with db(app) as s:
        return prescreened(s, **kwargs).reference  # type: ignore[arg-type]


def _arrived(app: Flask, client: FlaskClient, **kwargs: object) -> str:
    reference = _case(app, **kwargs)
    assert client.post("/desk/check-in", data={"code": reference}).status_code == 302
    return reference


def _triage(client: FlaskClient, app: Flask, reference: str, **fields: object) -> object:
    data: dict[str, object] = {**VITALS, "version": str(version_of(app, reference)), "action": "confirm"}
    data.update(fields)
    return client.post(f"/desk/{reference}/triage", data=data, headers=EN)


# --- access ------------------------------------------------------------------------------------------------


DESK_PAGES = [("get", "/desk/"), ("get", "/desk/lists"), ("post", "/desk/check-in"), ("post", "/desk/walk-ins"),
              ("get", "/desk/AAAAAAAA/triage"), ("post", "/desk/AAAAAAAA/triage"),
              ("post", "/desk/AAAAAAAA/preview"), ("get", "/desk/AAAAAAAA/ticket")]


@pytest.mark.parametrize(("method", "path"), DESK_PAGES)
def test_anonymous_users_get_the_login_page(client: FlaskClient, method: str, path: str) -> None:
    response = getattr(client, method)(path)
    assert response.status_code == 302 and "/login" in response.headers["Location"]


@pytest.mark.parametrize("role", list(Role))
def test_every_staff_role_may_use_the_desk(login: Callable[[Role], FlaskClient], role: Role) -> None:
    client = login(role)
    page = client.get("/desk/", headers=EN)
    assert page.status_code == 200 and "Scan the pass, or type the reference code" in page.text
    assert client.get("/desk/lists").status_code == 200


def test_the_desk_is_in_chinese_by_default(nurse: FlaskClient) -> None:
    assert "扫描" in nurse.get("/desk/").text


# --- check-in -------------------------------------------------------------------------------------------------


def test_a_scan_checks_in_and_opens_the_triage_form(app: Flask, nurse: FlaskClient) -> None:
    reference = _case(app, symptoms=["cough"], epi={"contact_case_14d": True})
    response = nurse.post("/desk/check-in", data={"code": format_reference(reference).lower()})
    assert response.status_code == 302 and response.headers["Location"] == f"/desk/{reference}/triage"
    assert state_of(app, reference).state == "arrived"
    form = nurse.get(response.headers["Location"], headers=EN).text
    # The online answers, prefilled and shown: the re-asked questions start from what the patient said.
    assert re.search(r'<input[^>]*checked[^>]*value="cough"|<input[^>]*value="cough"[^>]*checked', form)
    assert re.search(r'value="contact_case_14d"[^>]*checked|checked[^>]*value="contact_case_14d"', form)
    assert "Online pre-screen" in form and "Provisional stream" in form


@pytest.mark.parametrize(("setup", "status", "message"), [
    ({"state": "cancelled"}, 409, "This pre-screen was cancelled"),
    ({"state": "booked", "visit_day_offset": -1}, 409, "has expired"),
    ({"state": "booked", "visit_day_offset": 3}, 409, "not today"),
    ({"state": "completed"}, 409, "is closed"),
])
def test_a_scan_that_cannot_check_in_says_why_beside_the_field(app: Flask, nurse: FlaskClient,
                                                              setup: dict[str, object], status: int,
                                                              message: str) -> None:
    reference = _case(app, **setup)
    response = nurse.post("/desk/check-in", data={"code": reference}, headers=EN)
    assert response.status_code == status
    assert message in response.text and 'id="code-error"' in response.text
    assert f'value="{reference}"' in response.text  # what was scanned stays in the field


@pytest.mark.parametrize(("code", "status", "message"), [
    ("", 422, "Scan the pass, or type its reference code."),
    ("HELLO", 422, "This is not a reference code"),
    ("ZZZZ-ZZZZ", 404, "No case has this reference code"),
])
def test_unknown_codes_get_a_clear_message(nurse: FlaskClient, code: str, status: int, message: str) -> None:
    response = nurse.post("/desk/check-in", data={"code": code}, headers=EN)
    assert response.status_code == status and message in response.text


def test_scanning_an_arrived_patient_again_continues_their_triage(app: Flask, nurse: FlaskClient) -> None:
    reference = _arrived(app, nurse)
    response = nurse.post("/desk/check-in", data={"code": reference})
    assert response.status_code == 302 and response.headers["Location"] == f"/desk/{reference}/triage"


def test_scanning_a_ticketed_patient_shows_their_ticket(app: Flask, nurse: FlaskClient) -> None:
    reference = _arrived(app, nurse)
    _triage(nurse, app, reference)
    response = nurse.post("/desk/check-in", data={"code": reference}, headers=EN)
    assert response.status_code == 409 and "ticket G-001" in response.text


# --- walk-ins --------------------------------------------------------------------------------------------------


def test_a_walk_in_is_registered_and_goes_to_triage(app: Flask, nurse: FlaskClient) -> None:
    response = nurse.post("/desk/walk-ins", data={"name": "王五", "age_years": "67", "sex": "F",
                                                   "arrival_mode": "ambulance", "phone": ""})
    assert response.status_code == 302
    reference = response.headers["Location"].split("/")[2]
    assert "arrival=ambulance" in response.headers["Location"]
    case = state_of(app, reference)
    assert (case.origin, case.state, case.patient_name, case.age_years, case.sex) == (
        "walk_in", "arrived", "王五", 67, "F")
    form = nurse.get(response.headers["Location"], headers=EN).text
    assert re.search(r'<option selected value="ambulance">|<option value="ambulance" selected>', form)


def test_walk_in_errors_are_shown_beside_their_fields_and_nothing_is_lost(nurse: FlaskClient) -> None:
    response = nurse.post("/desk/walk-ins", data={"name": "王五", "age_years": "abc", "sex": "F",
                                                   "arrival_mode": "walk_in", "phone": "call me"}, headers=EN)
    assert response.status_code == 422
    assert "The age must be a number from 0 to 120." in response.text
    assert "Enter a valid phone number" in response.text
    assert 'value="王五"' in response.text and 'value="abc"' in response.text


# --- triage ------------------------------------------------------------------------------------------------------


def test_the_triage_form_is_keyboard_first(app: Flask, nurse: FlaskClient) -> None:
    reference = _arrived(app, nurse)
    page = nurse.get(f"/desk/{reference}/triage").text
    form = page[page.index('id="triage-form"'):]
    buttons = re.findall(r'<button type="submit"[^>]*value="(\w+)"', form)
    assert buttons[0] == "confirm"  # Enter in any field submits the first submit button: confirm
    assert re.search(r'<input[^>]*autofocus[^>]*name="temperature_c"|<input[^>]*name="temperature_c"[^>]*autofocus',
                     form) or 'autofocus id="temperature_c"' in form
    fields = re.findall(r'name="(temperature_c|heart_rate|respiratory_rate|sbp|spo2|avpu|gcs|pain_nrs|'
                        r'override_stream|override_reason)"', form)
    assert fields == ["temperature_c", "heart_rate", "respiratory_rate", "sbp", "spo2", "avpu", "gcs", "pain_nrs",
                      "override_stream", "override_reason"]
    assert 'accesskey="o"' in form and "<kbd>Enter</kbd>" in form


def test_the_recommendation_is_shown_before_deciding(app: Flask, nurse: FlaskClient) -> None:
    reference = _arrived(app, nurse, symptoms=["cough"])
    page = nurse.get(f"/desk/{reference}/triage", headers=EN).text
    assert "Recommendation" in page and "Fever clinic" in page  # the cough alone screens positive


def test_confirm_issues_the_ticket_and_keeps_both_assessments(app: Flask, nurse: FlaskClient) -> None:
    reference = _arrived(app, nurse)
    response = _triage(nurse, app, reference)
    assert response.status_code == 302 and response.headers["Location"] == f"/desk/{reference}/ticket"  # type: ignore[attr-defined]
    ticket = nurse.get(f"/desk/{reference}/ticket", headers=EN).text
    assert "G-001" in ticket and "General outpatient" in ticket and "Escort the patient" not in ticket
    with db(app) as s:
        case = s.exec(select(Encounter).where(Encounter.reference == reference)).one()
        stages = s.exec(select(Assessment.stage).where(Assessment.encounter_id == case.id)
                        .order_by(col(Assessment.id))).all()
    assert case.state == "waiting" and stages == ["online", "onsite"]


def test_a_fever_ticket_carries_the_escort_instruction(app: Flask, nurse: FlaskClient) -> None:
    reference = _arrived(app, nurse)
    _triage(nurse, app, reference, temperature_c="38.6")
    ticket = nurse.get(f"/desk/{reference}/ticket", headers=EN).text
    assert "F-001" in ticket and "Escort the patient" in ticket and "separate route" in ticket
    zh = nurse.get(f"/desk/{reference}/ticket", headers={"Accept-Language": "zh-CN"}).text
    assert "发热门诊专用通道" in zh


def test_numbers_are_read_the_way_nurses_type_them(app: Flask, nurse: FlaskClient) -> None:
    reference = _arrived(app, nurse)
    response = _triage(nurse, app, reference, temperature_c="３８，５", heart_rate=" 96 ")
    assert response.status_code == 302  # type: ignore[attr-defined]
    with db(app) as s:
        record = s.exec(select(Assessment).where(Assessment.stage == "onsite")).one()
    assert record.inputs["temperature_c"] == 38.5 and record.inputs["heart_rate"] == 96


def test_unreadable_and_impossible_values_are_marked_beside_their_fields(app: Flask, nurse: FlaskClient) -> None:
    reference = _arrived(app, nurse)
    response = _triage(nurse, app, reference, heart_rate="fast")
    assert response.status_code == 422 and "Enter a number, for example 80." in response.text  # type: ignore[attr-defined]
    assert 'value="fast"' in response.text  # type: ignore[attr-defined]
    response = _triage(nurse, app, reference, heart_rate="9_6")  # float() would read 96
    assert response.status_code == 422 and "Enter a number, for example 80." in response.text  # type: ignore[attr-defined]
    response = _triage(nurse, app, reference, temperature_c="101.3")
    assert response.status_code == 422 and "looks like Fahrenheit" in response.text  # type: ignore[attr-defined]
    assert 'id="temperature_c-error"' in response.text  # type: ignore[attr-defined]
    assert state_of(app, reference).state == "arrived"


@pytest.mark.parametrize(("age", "shown"), [("1" * 300, "1" * 37 + "..."), ("9" * 41, "9" * 37 + "..."),
                                           ("1e50", "1" + "0" * 36 + "..."), ("1000000", "1000000")],
                         ids=["300-ones", "41-nines", "1e50", "a-million"])
def test_an_absurd_age_gets_the_out_of_range_message_in_plain_digits(app: Flask, nurse: FlaskClient, age: str,
                                                                     shown: str) -> None:
    reference = _arrived(app, nurse)
    response = _triage(nurse, app, reference, age_years=age)
    assert response.status_code == 422  # type: ignore[attr-defined]
    assert f"Age {shown} years is outside the possible range 0–120 years" in response.text  # type: ignore[attr-defined]
    assert "1e40" not in response.text and not re.search(r"\de\+\d", response.text)  # type: ignore[attr-defined]
    assert state_of(app, reference).state == "arrived"


def test_an_override_without_a_reason_is_refused_and_the_form_kept(app: Flask, nurse: FlaskClient) -> None:
    reference = _arrived(app, nurse)
    response = _triage(nurse, app, reference, override_stream="emergency", override_level="3")
    assert response.status_code == 422  # type: ignore[attr-defined]
    assert 'id="override_reason-error"' in response.text  # type: ignore[attr-defined]
    assert "A reason is required" in response.text and 'value="36.6"' in response.text  # type: ignore[attr-defined]
    response = _triage(nurse, app, reference, override_stream="emergency", override_level="3",
                       override_reason="chest tightness on questioning")
    assert response.status_code == 302  # type: ignore[attr-defined]
    ticket = nurse.get(f"/desk/{reference}/ticket", headers=EN).text
    assert "E-001" in ticket and "chest tightness on questioning" in ticket


def test_a_nurse_cannot_lower_a_critical_recommendation_but_a_supervisor_can(
        app: Flask, login: Callable[[Role], FlaskClient]) -> None:
    nurse = login(Role.NURSE)
    reference = _arrived(app, nurse)
    fields = {"spo2": "85", "override_stream": "emergency", "override_level": "4", "override_reason": "re-measured"}
    response = _triage(nurse, app, reference, **fields)
    assert response.status_code == 403 and "needs a supervisor" in response.text  # type: ignore[attr-defined]
    supervisor = login(Role.SUPERVISOR)
    assert _triage(supervisor, app, reference, **fields).status_code == 302  # type: ignore[attr-defined]


def test_a_decision_on_a_stale_form_is_a_conflict(app: Flask, nurse: FlaskClient) -> None:
    reference = _arrived(app, nurse)
    version = version_of(app, reference)
    assert _triage(nurse, app, reference).status_code == 302  # type: ignore[attr-defined]
    response = nurse.post(f"/desk/{reference}/triage", data={**VITALS, "version": str(version)}, headers=EN)
    assert response.status_code == 409 and "Someone else changed this case" in response.text


@pytest.mark.parametrize("version", ["9" * 5000, "-1", "²", "١", "abc"])
def test_a_form_whose_version_is_not_a_version_is_refused_and_decides_nothing(app: Flask, nurse: FlaskClient,
                                                                              version: str) -> None:
    reference = _arrived(app, nurse)
    response = _triage(nurse, app, reference, version=version)
    assert response.status_code == 422  # type: ignore[attr-defined]
    assert "reload the page" in response.text  # type: ignore[attr-defined]
    assert state_of(app, reference).state == "arrived"


def test_the_no_script_preview_button_updates_the_recommendation_without_deciding(app: Flask,
                                                                                  nurse: FlaskClient) -> None:
    reference = _arrived(app, nurse)
    response = _triage(nurse, app, reference, temperature_c="39.1", action="preview")
    assert response.status_code == 200 and "Fever clinic" in response.text  # type: ignore[attr-defined]
    assert state_of(app, reference).state == "arrived"


def test_the_live_preview_is_a_fragment_and_stores_nothing(app: Flask, nurse: FlaskClient) -> None:
    reference = _arrived(app, nurse)
    response = nurse.post(f"/desk/{reference}/preview", data={**VITALS, "spo2": "86"}, headers=EN)
    assert response.status_code == 200 and "<html" not in response.text
    assert "Emergency" in response.text and "Level 2" in response.text
    response = nurse.post(f"/desk/{reference}/preview", data={**VITALS, "spo2": "lots"}, headers=EN)
    assert "Some numbers cannot be read yet" in response.text
    assert state_of(app, reference).state == "arrived"


def test_the_triage_form_of_a_ticketed_case_shows_its_ticket(app: Flask, nurse: FlaskClient) -> None:
    reference = _arrived(app, nurse)
    _triage(nurse, app, reference)
    response = nurse.get(f"/desk/{reference}/triage")
    assert response.status_code == 302 and response.headers["Location"] == f"/desk/{reference}/ticket"


def test_the_triage_form_of_a_case_not_checked_in_sends_back_to_the_scan(app: Flask, nurse: FlaskClient) -> None:
    reference = _case(app)
    response = nurse.get(f"/desk/{reference}/triage", headers=EN)
    assert response.status_code == 302 and response.headers["Location"] == "/desk/"
    assert "is not awaiting triage (Pre-screened online)" in nurse.get("/desk/", headers=EN).text


def test_unknown_cases_are_404(nurse: FlaskClient) -> None:
    assert nurse.get("/desk/ZZZZZZZZ/triage").status_code == 404
    assert nurse.get("/desk/ZZZZZZZZ/ticket").status_code == 404


def test_the_desk_lists_patients_awaiting_triage_and_todays_tickets(app: Flask, nurse: FlaskClient) -> None:
    waiting = _arrived(app, nurse, name="赵六")
    with db(app) as s:
        ticketed(s, name="钱七")
    lists = nurse.get("/desk/lists", headers=EN).text
    assert "赵六" in lists and format_reference(waiting) in lists
    assert "G-001" in lists and "钱七" in lists


@pytest.mark.db
def test_the_desk_works_with_csrf_protection_on(database_url: str, tmp_path: Path) -> None:
    app = open_app(database_url, tmp_path, WTF_CSRF_ENABLED=True)
    with db(app) as s:
        create_user(s, username="csrf-nurse", password=PASSWORD, role=Role.NURSE)
        reference = prescreened(s).reference
        assert s.exec(select(StaffUser)).first() is not None
    client = app.test_client()
    login_page = client.get("/login").text
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', login_page)
    assert token
    client.post("/login", data={"username": "csrf-nurse", "password": PASSWORD, "csrf_token": token.group(1)})
    assert client.post("/desk/check-in", data={"code": reference}).status_code == 400
    desk = client.get("/desk/").text
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', desk)
    assert token
    response = client.post("/desk/check-in", data={"code": reference, "csrf_token": token.group(1)})
    assert response.status_code == 302
    app.extensions["triage.db"].dispose()
