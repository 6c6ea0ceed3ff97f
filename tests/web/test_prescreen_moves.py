"""Moving a visit, by the patient or by staff: a closed visit says why, a bad choice is refused beside its field.

Contract: a visit that can no longer be moved is a conflict (409, or on the patient's page a message on the
status page) that names its state; a slot or a contact channel that is not one of the choices is invalid
input (422) with the field's message; nothing is written either way.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from datetime import date, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update
from sqlmodel import col, select

from tests.web.prescreen_support import db, encounter, open_day, policy_of, reference_from, submit
from triage.domain.errors import InvalidInput
from triage.hospital import workflow
from triage.models import ContactAttempt, Encounter, Role, StaffUser, TransitionLog, utcnow
from triage.notify import LoggingNotifier
from triage.services import Actor
from triage.services.prescreen import cancel_visit, move_visit

EN = {"Accept-Language": "en"}
ZH = {"Accept-Language": "zh"}


@pytest.fixture
def day(app: Flask) -> date:
    """A day with general-outpatient slots, from tomorrow on."""
    return open_day(app)


def _key(day: date, at: str = "1000") -> str:
    return f"{day:%Y%m%d}T{at}"


def _booked(client: FlaskClient, app: Flask, day: date, **overrides: object) -> str:
    response = submit(client, preferred_day=day.isoformat(), **overrides)
    assert response.status_code == 302, response.text
    return reference_from(response.headers["Location"], app)


def _log_length(app: Flask, reference: str) -> int:
    with db(app) as s:
        e = s.exec(select(Encounter).where(Encounter.reference == reference)).one()
        return len(s.exec(select(TransitionLog).where(TransitionLog.encounter_id == e.id)).all())


# --- a visit that is closed says why -----------------------------------------------------------------------------


def _cancelled(client: FlaskClient, app: Flask, day: date) -> str:
    reference = _booked(client, app, day)
    assert client.post(f"/prescreen/v/{reference}/cancel").status_code == 302
    return reference


def _expired(client: FlaskClient, app: Flask, day: date) -> str:
    reference = _booked(client, app, day)
    with db(app) as s:
        past = policy_of(app).local(utcnow()).date() - timedelta(days=1)
        s.execute(update(Encounter).where(col(Encounter.reference) == reference).values(visit_day=past))
        s.commit()
    assert app.test_cli_runner().invoke(args=["expire"]).exit_code == 0
    return reference


def _directed_to_emergency(client: FlaskClient, app: Flask, day: date) -> str:
    return _booked(client, app, day, danger=["chest_pain"], other=None)


def _online_follow_up(client: FlaskClient, app: Flask, day: date) -> str:
    reference = _booked(client, app, open_day(app), age_years="62", other=None, needs=["prescription_refill"],
                        conditions=["hypertension"])
    assert client.post(f"/prescreen/v/{reference}/online").status_code == 302
    return reference


CLOSED = [
    (_cancelled, "cancelled", "This visit is cancelled and can no longer be changed.", "此预约已取消，不能再更改。"),
    (_expired, "no_show", "This visit has expired (it was valid on its day only) and can no longer be changed.",
     "此预约已过期（仅在预约当天有效），不能再更改。"),
    (_directed_to_emergency, "directed_to_emergency", "You were told to go to the emergency department now",
     "您已被指引立即前往急诊"),
    (_online_follow_up, "referred", "This visit became an online follow-up or a referral",
     "此就诊已改为线上复诊或转诊"),
]


@pytest.mark.parametrize(("close", "state", "en", "zh"), CLOSED, ids=[c[1] for c in CLOSED])
def test_a_patient_moving_a_closed_visit_is_told_why_it_cannot_move(
        client: FlaskClient, app: Flask, day: date, close: Callable[[FlaskClient, Flask, date], str], state: str,
        en: str, zh: str) -> None:
    reference = close(client, app, day)
    assert encounter(app, reference).state == state
    logged = _log_length(app, reference)
    for headers, message in ((EN, en), (ZH, zh)):
        response = client.post(f"/prescreen/v/{reference}/move", data={"slot": _key(day)}, headers=headers,
                               follow_redirects=True)
        page = html.unescape(response.text)
        assert message in page
        assert "after check-in" not in page and "到院签到后" not in page
    assert encounter(app, reference).state == state and _log_length(app, reference) == logged


@pytest.mark.parametrize(("close", "state", "en", "zh"), CLOSED, ids=[c[1] for c in CLOSED])
def test_staff_moving_a_closed_visit_get_a_conflict_that_says_why(
        client: FlaskClient, app: Flask, day: date, login: Callable[[Role], FlaskClient],
        close: Callable[[FlaskClient, Flask, date], str], state: str, en: str, zh: str) -> None:
    reference = close(client, app, day)
    nurse = login(Role.NURSE)
    for headers, message in ((EN, en), (ZH, zh)):
        response = nurse.post(f"/staff/contacts/{reference}/move", data={"slot": _key(day), "channel": "phone"},
                              headers=headers)
        assert response.status_code == 409
        assert message in html.unescape(response.text)
    assert encounter(app, reference).state == state
    with db(app) as s:
        assert s.exec(select(ContactAttempt)).first() is None


def test_a_visit_checked_in_still_says_it_cannot_move_after_check_in(
        client: FlaskClient, app: Flask, login: Callable[[Role], FlaskClient]) -> None:
    today = policy_of(app).local(utcnow()).date()
    reference = _booked(client, app, today)
    with db(app) as s:
        s.execute(update(Encounter).where(col(Encounter.reference) == reference)
                  .values(state="arrived", arrived_at=utcnow()))
        s.commit()
    nurse = login(Role.NURSE)
    response = nurse.post(f"/staff/contacts/{reference}/move", data={"slot": _key(today + timedelta(days=1)),
                                                                      "channel": "phone"}, headers=EN)
    assert response.status_code == 409 and "The time cannot be changed after check-in." in response.text


# --- a choice that is not offered is invalid input -------------------------------------------------------------


@pytest.mark.parametrize("channel", ["x" * 100, "fax", ""])
@pytest.mark.parametrize(("headers", "message"), [
    (EN, "Choose how the patient was reached: phone, text message or in person."),
    (ZH, "请选择联系患者的方式：电话、短信或当面。")])
def test_staff_moving_with_an_unknown_contact_channel_is_refused_beside_the_field(
        client: FlaskClient, app: Flask, day: date, login: Callable[[Role], FlaskClient], channel: str,
        headers: dict[str, str], message: str) -> None:
    reference = _booked(client, app, day)
    before = encounter(app, reference)
    nurse = login(Role.NURSE)
    response = nurse.post(f"/staff/contacts/{reference}/move?day={day.isoformat()}",
                          data={"slot": _key(day, "1400"), "channel": channel}, headers=headers)
    assert response.status_code == 422
    assert message in html.unescape(response.text)
    after = encounter(app, reference)
    assert (after.state, after.slot_id, after.version) == (before.state, before.slot_id, before.version)
    with db(app) as s:
        assert s.exec(select(ContactAttempt)).first() is None


def test_an_unknown_contact_channel_is_reported_on_a_visit_that_can_no_longer_move(
        client: FlaskClient, app: Flask, day: date, login: Callable[[Role], FlaskClient]) -> None:
    reference = _cancelled(client, app, day)
    response = login(Role.NURSE).post(f"/staff/contacts/{reference}/move",
                                      data={"slot": _key(day), "channel": "x" * 100}, headers=EN)
    assert response.status_code == 422  # the page has no move form now: the message is at its top
    assert "Choose how the patient was reached: phone, text message or in person." in html.unescape(response.text)


@pytest.mark.parametrize("use_case", [move_visit, cancel_visit])
def test_the_move_and_cancel_use_cases_refuse_an_unknown_contact_channel(
        client: FlaskClient, app: Flask, day: date, make_user: Callable[..., StaffUser],
        use_case: Callable[..., object]) -> None:
    reference = _booked(client, app, day)
    nurse = make_user("nurse", Role.NURSE)
    extra = {"slot_key": _key(day, "1400")} if use_case is move_visit else {"reason": "门诊停诊"}
    with db(app) as s, pytest.raises(InvalidInput) as refused:
        use_case(s, reference=reference, workflow=workflow(), policy=policy_of(app), notifier=LoggingNotifier(),
                 actor=Actor.staff(nurse), channel="x" * 100, **extra)
    assert refused.value.errors == {"channel": ("请选择联系方式。", "Choose how you contacted the patient.")}
    assert encounter(app, reference).state == "booked"


@pytest.mark.parametrize("slot", ["garbage", "20000101T0900", "99999999T9999", "2026-13-45T09:00"])
def test_the_move_use_case_reads_a_slot_that_is_not_offered_as_invalid_input(
        client: FlaskClient, app: Flask, day: date, slot: str) -> None:
    reference = _booked(client, app, day)
    with db(app) as s, pytest.raises(InvalidInput) as refused:
        move_visit(s, reference=reference, slot_key=slot, workflow=workflow(), policy=policy_of(app),
                   notifier=LoggingNotifier())
    assert list(refused.value.errors) == ["slot"]


@pytest.mark.parametrize("slot", ["", "garbage", "20000101T0900"])
def test_a_patient_moving_to_a_slot_that_is_not_offered_gets_422_beside_the_choice(
        client: FlaskClient, app: Flask, day: date, slot: str) -> None:
    reference = _booked(client, app, day)
    response = client.post(f"/prescreen/v/{reference}/move", data={"slot": slot}, headers=EN)
    assert response.status_code == 422, response.status_code
    assert encounter(app, reference).version == 2  # created, booked: nothing more


@pytest.mark.parametrize("slot", ["garbage", "20000101T0900"])
def test_staff_moving_to_a_slot_that_is_not_offered_get_422_beside_the_choice(
        client: FlaskClient, app: Flask, day: date, login: Callable[[Role], FlaskClient], slot: str) -> None:
    reference = _booked(client, app, day)
    response = login(Role.NURSE).post(f"/staff/contacts/{reference}/move", data={"slot": slot, "channel": "phone"},
                                      headers=EN)
    assert response.status_code == 422, response.status_code
