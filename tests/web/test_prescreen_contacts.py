"""Hospital-side rescheduling: bookings a policy change affects, contact attempts, callbacks, actions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import col, select

from tests.web.prescreen_support import api_body, change_policy, db, encounter, fill_day, open_day
from triage.domain.policy import Stream
from triage.models import CallbackRequest, ContactAttempt, Notification, Role, StaffUser, TransitionLog

EN = {"Accept-Language": "en"}


@pytest.fixture
def day(app: Flask) -> date:
    """A day with general-outpatient slots."""
    return open_day(app)


@pytest.fixture
def supervisor(make_user: Callable[..., StaffUser]) -> StaffUser:
    """A supervisor who changes the policy."""
    return make_user("chief", Role.SUPERVISOR)


def _book(client: FlaskClient, day: date, i: int, **assessment: object) -> str:
    body = api_body(name=f"病人{i}", phone=f"139{i:08d}", preferred_day=day.isoformat(),
                    slot=f"{day.isoformat()}T09:00:00+08:00", assessment=assessment)
    response = client.post("/api/v1/prescreenings", json=body)
    assert response.status_code == 201, response.json
    return str(response.json["reference"])  # type: ignore[index]


@pytest.mark.parametrize("role", [Role.NURSE, Role.SUPERVISOR, Role.ADMIN])
def test_staff_of_every_role_see_the_contact_list(login: Callable[[Role], FlaskClient], role: Role) -> None:
    page = login(role).get("/staff/contacts/", headers=EN)
    assert page.status_code == 200 and "Patient contacts" in page.text
    assert 'href="/staff/contacts/"' in page.text  # in the staff navigation


def test_patients_cannot_see_the_contact_list(client: FlaskClient) -> None:
    response = client.get("/staff/contacts/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert client.post("/staff/contacts/ABCDEFGH/cancel").status_code == 302


def test_a_capacity_cut_lists_the_bookings_beyond_it_and_keeps_priority_groups(
    client: FlaskClient, app: Flask, day: date, supervisor: StaffUser, login: Callable[[Role], FlaskClient]
) -> None:
    first = _book(client, day, 1)
    second = _book(client, day, 2)
    elderly = _book(client, day, 3, age_years=80)  # booked last, but a priority group keeps its place
    change_policy(app, supervisor, capacities={"general": 2})
    page = login(Role.NURSE).get("/staff/contacts/", headers=EN).text
    assert "The slot&#39;s capacity is now 2; this booking is beyond it" in page
    assert "病人2" in page and "病人1" not in page and "病人3" not in page
    assert encounter(app, second).state == "booked"  # listed for contact, not changed behind anyone's back
    assert first and elderly


def test_a_higher_risk_level_lists_those_who_could_stay_home(
    client: FlaskClient, app: Flask, day: date, supervisor: StaffUser, login: Callable[[Role], FlaskClient]
) -> None:
    reference = _book(client, day, 1)
    _book(client, day, 2, age_years=70)  # elderly: never asked to stay away
    change_policy(app, supervisor, risk="high")
    nurse = login(Role.NURSE)
    page = nurse.get("/staff/contacts/", headers=EN).text
    assert "Risk level raised: offer online follow-up or a later slot" in page
    assert "病人1" in page and "病人2" not in page
    # The patient agrees to online follow-up on the phone.
    assert nurse.post(f"/staff/contacts/{reference}/online").status_code == 302
    e = encounter(app, reference)
    assert e.state == "referred" and e.disposition == "online_followup"
    with db(app) as s:
        attempt = s.exec(select(ContactAttempt)).one()
        assert attempt.outcome == "reached_online"
        log = s.exec(select(TransitionLog).order_by(col(TransitionLog.id).desc())).first()
        assert log is not None and log.actor_kind == "staff" and log.trigger == "refer"
    assert "病人1" not in nurse.get("/staff/contacts/", headers=EN).text.split("Callback requests")[0]


def test_staff_record_attempts_and_a_kept_booking_leaves_the_list(
    client: FlaskClient, app: Flask, day: date, supervisor: StaffUser, login: Callable[[Role], FlaskClient]
) -> None:
    _book(client, day, 1)
    reference = _book(client, day, 2)
    change_policy(app, supervisor, capacities={"general": 1})
    nurse = login(Role.NURSE)
    missing = nurse.post(f"/staff/contacts/{reference}/attempt", data={"channel": "phone"}, headers=EN)
    assert missing.status_code == 422 and "Choose the outcome." in missing.text
    assert nurse.post(f"/staff/contacts/{reference}/attempt",
                      data={"channel": "phone", "outcome": "no_answer", "note": "忙音"}).status_code == 302
    case = nurse.get(f"/staff/contacts/{reference}", headers=EN).text
    assert "No answer" in case and "忙音" in case and "Why this booking must change:" in case
    assert "病人2" in nurse.get("/staff/contacts/", headers=EN).text
    nurse.post(f"/staff/contacts/{reference}/attempt", data={"channel": "phone", "outcome": "reached_kept"})
    assert "病人2" not in nurse.get("/staff/contacts/", headers=EN).text
    with db(app) as s:
        assert [a.outcome for a in s.exec(select(ContactAttempt).order_by(col(ContactAttempt.id)))] == [
            "no_answer", "reached_kept"]


def test_staff_move_a_booking_and_the_patient_is_told(
    client: FlaskClient, app: Flask, day: date, supervisor: StaffUser, login: Callable[[Role], FlaskClient]
) -> None:
    _book(client, day, 1)
    reference = _book(client, day, 2)
    change_policy(app, supervisor, capacities={"general": 1})
    nurse = login(Role.NURSE)
    key = f"{day:%Y%m%d}T1400"
    assert key in nurse.get(f"/staff/contacts/{reference}?day={day.isoformat()}").text
    assert nurse.post(f"/staff/contacts/{reference}/move", data={"slot": key, "channel": "phone"}).status_code == 302
    e = encounter(app, reference)
    assert e.state == "booked" and e.slot_starts_at is not None
    with db(app) as s:
        assert s.exec(select(ContactAttempt)).one().outcome == "reached_moved"
        last = s.exec(select(Notification).order_by(col(Notification.id).desc())).first()
        assert last is not None and "14:00" in last.body and last.recipient == "139****0002"
        log = s.exec(select(TransitionLog).order_by(col(TransitionLog.id).desc())).first()
        assert log is not None and (log.trigger, log.actor_kind) == ("reschedule", "staff")
    assert "病人2" not in nurse.get("/staff/contacts/", headers=EN).text


def test_staff_cancel_needs_a_reason_and_tells_the_patient(
    client: FlaskClient, app: Flask, day: date, login: Callable[[Role], FlaskClient]
) -> None:
    reference = _book(client, day, 1)
    nurse = login(Role.NURSE)
    refused = nurse.post(f"/staff/contacts/{reference}/cancel", data={"reason": ""}, headers=EN)
    assert refused.status_code == 422 and "Give the reason." in refused.text
    assert nurse.post(f"/staff/contacts/{reference}/cancel", data={"reason": "门诊停诊"}).status_code == 302
    assert encounter(app, reference).state == "cancelled"
    with db(app) as s:
        body = s.exec(select(Notification).order_by(col(Notification.id).desc())).first()
        assert body is not None and "门诊停诊" in body.body
        assert s.exec(select(ContactAttempt)).one().outcome == "reached_cancelled"


def test_staff_book_a_callback_patient_and_close_the_request(
    client: FlaskClient, app: Flask, day: date, login: Callable[[Role], FlaskClient]
) -> None:
    fill_day(app, Stream.GENERAL, day)
    response = client.post("/api/v1/prescreenings", json=api_body(preferred_day=day.isoformat()))
    reference = str(response.json["reference"])  # type: ignore[index]
    other = open_day(app, skip=1)
    # The patient asked for a call back from the status page.
    patient = app.test_client()
    patient.post("/prescreen/lookup", data={"reference": reference, "phone": "13800138000"})
    assert patient.post(f"/prescreen/v/{reference}/callback").status_code == 302
    nurse = login(Role.NURSE)
    listing = nurse.get("/staff/contacts/", headers=EN).text
    assert "No free time" in listing and "13800138000" in listing
    key = f"{other:%Y%m%d}T0900"
    assert nurse.post(f"/staff/contacts/{reference}/move", data={"slot": key, "channel": "phone"}).status_code == 302
    assert encounter(app, reference).state == "booked"
    with db(app) as s:
        request = s.exec(select(CallbackRequest)).one()
        assert request.handled_at is not None and request.outcome and request.outcome.startswith("booked")
    assert "No open callback request." in nurse.get("/staff/contacts/", headers=EN).text


def test_a_callback_is_closed_with_what_was_agreed(
    client: FlaskClient, app: Flask, day: date, login: Callable[[Role], FlaskClient]
) -> None:
    fill_day(app, Stream.GENERAL, day)
    reference = str(client.post("/api/v1/prescreenings",
                                json=api_body(preferred_day=day.isoformat())).json["reference"])  # type: ignore[index]
    client.post("/prescreen/lookup", data={"reference": reference, "phone": "13800138000"})
    client.post(f"/prescreen/v/{reference}/callback")
    with db(app) as s:
        callback_id = s.exec(select(CallbackRequest)).one().id
    nurse = login(Role.NURSE)
    empty = nurse.post(f"/staff/contacts/callbacks/{callback_id}/done", data={"outcome": "", "reference": reference},
                       headers=EN, follow_redirects=True)
    assert "Write down what was agreed." in empty.text
    done = nurse.post(f"/staff/contacts/callbacks/{callback_id}/done",
                      data={"outcome": "患者改去社区医院", "reference": reference}, headers=EN, follow_redirects=True)
    assert "Callback request closed." in done.text and "患者改去社区医院" in done.text
    again = nurse.post(f"/staff/contacts/callbacks/{callback_id}/done", data={"outcome": "x"}, headers=EN,
                       follow_redirects=True)
    assert "This callback request has already been handled." in again.text
