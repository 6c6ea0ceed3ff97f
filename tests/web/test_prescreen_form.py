"""The online pre-screen through its real HTML forms: validation, red flags, booking, changes, expiry."""

from __future__ import annotations

import html
import io
import re
from collections.abc import Callable
from datetime import date, timedelta

import pytest
import segno
from click.testing import Result
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update
from sqlmodel import col, select

from tests.conftest import make_app
from tests.web.prescreen_support import (
    change_policy,
    csrf_token,
    db,
    encounter,
    fill_day,
    form_data,
    only_encounter,
    open_day,
    policy_of,
    reference_from,
    submit,
)
from triage.domain.policy import Stream
from triage.models import (
    Assessment,
    CallbackRequest,
    Encounter,
    Notification,
    Role,
    Slot,
    StaffUser,
    TransitionLog,
    utcnow,
)
from triage.services import format_reference


@pytest.fixture
def day(app: Flask) -> str:
    """A day with general-outpatient slots, from tomorrow on."""
    return open_day(app).isoformat()


def _booked(client: FlaskClient, app: Flask, day: str, **overrides: object) -> tuple[str, str]:
    response = submit(client, preferred_day=day, **overrides)
    assert response.status_code == 302, response.text
    return reference_from(response.headers["Location"], app), response.headers["Location"]


def _trail(app: Flask, reference: str) -> list[tuple[str, str]]:
    with db(app) as s:
        e = s.exec(select(Encounter).where(Encounter.reference == reference)).one()
        return [(row.trigger, row.to_state) for row in s.exec(
            select(TransitionLog).where(TransitionLog.encounter_id == e.id).order_by(col(TransitionLog.id)))]


# --- the page -------------------------------------------------------------------------------------------


def test_the_questionnaire_is_chinese_by_default_with_labels_on_every_control(client: FlaskClient) -> None:
    page = client.get("/prescreen/").text
    assert "来院前线上预检" in page and "首先：是不是急症？" in page
    assert "胸痛或胸口压榨感" in page  # the engine's vocabulary, in plain words
    # Every input has a label pointing at it.
    ids = set(re.findall(r'<input[^>]*\bid="([^"]+)"[^>]*>', page)) - {"csrf_token", "family"}
    labelled = set(re.findall(r'<label[^>]*for="([^"]+)"', page))
    wrapped = set(re.findall(r'<label[^>]*>\s*<input[^>]*\bid="([^"]+)"', page))
    assert ids <= labelled | wrapped, ids - labelled - wrapped


def test_the_questionnaire_is_available_in_english(client: FlaskClient) -> None:
    page = client.get("/prescreen/?lang=en").text
    assert "Pre-screen before you come" in page and "Chest pain or pressure" in page
    assert "Today ·" in page  # the preferred-day choices


def test_the_start_page_leads_to_the_pre_screen(client: FlaskClient) -> None:
    page = client.get("/").text
    assert 'href="/prescreen/"' in page and 'href="/prescreen/lookup"' in page


# --- validation: every message beside its field, nothing typed is lost -----------------------------------------

CASES = [
    ({"name": ""}, "Enter the patient's name."),
    ({"name": "张" * 51}, "At most 50 characters."),
    ({"phone": ""}, "Enter a phone number so the hospital can reach you."),
    ({"phone": "12ab"}, "Enter a valid phone number, e.g. 138 0013 8000."),
    ({"phone": "12800138000"}, "A mobile number's second digit is 3 to 9; please check it."),
    ({"age_years": ""}, "Age is required (an estimate is fine for an unknown patient)."),
    ({"age_years": "forty"}, "Enter the age in whole years, for example 45 (0 for a baby)."),
    ({"age_years": "3_3"}, "Enter the age in whole years, for example 45 (0 for a baby)."),
    ({"age_years": "130"}, "Age 130 years is outside the possible range 0–120 years; please re-check."),
    ({"age_years": "1" * 300},  # its own digits, cut: not 1e40+, nor a float's 11111111111111111694...
     "Age " + "1" * 37 + "... years is outside the possible range 0–120 years; please re-check."),
    ({"age_years": "１" * 400}, "Age " + "1" * 37 + "... years is outside the possible range 0–120 years"),
    ({"age_years": "0"}, "For a baby under one year, give the age in days (age_days)."),
    ({"age_days": "twenty", "age_years": "0"}, "Enter the baby's age in whole days, for example 20."),
    ({"sex": None}, "Choose the sex."),
    ({"sex": "F", "pregnant": "y"}, "Enter the weeks of pregnancy (an estimate is fine)."),
    ({"sex": "F", "pregnant": "y", "pregnancy_weeks": "many"},
     "Enter the weeks of pregnancy as a number, for example 32."),
    ({"pregnant": "y", "pregnancy_weeks": "20"},
     "Pregnancy weeks were given for a male patient: check the sex or remove the pregnancy."),
    ({"temperature_c": "hot"}, "Enter the temperature as a number, for example 37.5."),
    ({"temperature_c": "101.3"}, "Temperature 101.3 looks like Fahrenheit (about 38.5 °C)."),
    ({"temperature_c": "25"}, "Temperature 25 °C is outside the possible range 30.0–43.0 °C; please re-check."),
    ({"temperature_c": "1000000"}, "Temperature 1000000 °C is outside the possible range 30.0–43.0 °C"),  # not 1e+06
    ({"epi": None}, "Answer this question: tick what applies, or “None of these”."),
    ({"epi": ["none", "contact_case_14d"]}, "You ticked “None of these” and a situation: tick only what is true."),
    ({"epi": ["bogus"]}, "“bogus” is not one of the choices here."),
    ({"other": None}, "Tell us why you are coming: tick a symptom or a need, or write the reason."),
    ({"visit_reason": "x" * 201, "other": None}, "At most 200 characters."),
    ({"other": ["vaginal_bleeding"]}, "vaginal_bleeding cannot apply to a male patient: check the sex."),
    ({"needs": ["antenatal_check"]}, "antenatal_check cannot apply to a male patient: check the sex."),
    ({"consent": None}, "Please agree that the hospital uses this information for the visit."),
    ({"preferred_day": None}, "Choose the day you would like to come."),
    ({"preferred_day": "2000-01-01"}, "You can book from today up to"),
]


@pytest.mark.parametrize(("overrides", "message"), CASES, ids=[str(c[0])[:40] for c in CASES])
def test_each_invalid_answer_gets_its_message_and_nothing_is_stored(
    client: FlaskClient, app: Flask, day: str, overrides: dict[str, object], message: str
) -> None:
    response = submit(client, **{"preferred_day": day, **overrides})
    assert response.status_code == 200
    assert message in html.unescape(response.text)
    assert "Please correct the fields marked below." in response.text
    with db(app) as s:
        assert s.exec(select(Encounter)).first() is None


def test_all_messages_show_at_once_and_what_was_typed_is_kept(client: FlaskClient, day: str) -> None:
    response = submit(client, preferred_day=day, name="李四", phone="", age_years="abc", consent=None,
                      other=["headache", "dizziness"], epi=None, temperature_c="37,2")
    page = response.text
    for message in ("Enter a phone number so the hospital can reach you.",
                    "Enter the age in whole years, for example 45 (0 for a baby).",
                    "Answer this question: tick what applies, or “None of these”.",
                    "Please agree that the hospital uses this information for the visit."):
        assert message in page
    assert 'value="李四"' in page and 'value="abc"' in page and 'value="37,2"' in page
    assert page.count("checked") >= 3  # sex and both symptoms stay ticked
    assert f'value="{day}" selected' in page or f'selected value="{day}"' in page


def test_errors_are_in_chinese_for_a_chinese_page(client: FlaskClient, day: str) -> None:
    response = client.post("/prescreen/", data=form_data(preferred_day=day, name=""))
    assert "请填写就诊人姓名。" in response.text and "请修改下面标出的内容。" in response.text
    unknown = client.post("/prescreen/", data=form_data(preferred_day=day, epi=["bogus"]))
    assert "“bogus”不是这里的选项。" in html.unescape(unknown.text)


# --- red flags -------------------------------------------------------------------------------------------------


def test_a_red_flag_stops_with_go_to_emergency_now_and_no_slot(client: FlaskClient, app: Flask, day: str) -> None:
    response = submit(client, preferred_day=day, danger=["chest_pain"], other=None)
    assert response.status_code == 302
    page = client.get(response.headers["Location"], headers={"Accept-Language": "en"}).text
    assert "Go to the emergency department now" in page and 'href="tel:120"' in page
    e = only_encounter(app)
    assert e.state == "directed_to_emergency" and e.slot_id is None
    assert _trail(app, e.reference) == [("create", "prescreened"), ("direct_to_emergency", "directed_to_emergency")]
    with db(app) as s:
        assert s.exec(select(Slot).where(Slot.booked > 0)).first() is None
        assessment = s.exec(select(Assessment)).one()
        assert assessment.stage == "online" and assessment.result["emergency_now"] is True


def test_a_red_flag_stops_even_when_other_answers_are_missing(client: FlaskClient, app: Flask) -> None:
    response = client.post("/prescreen/", data={"danger": ["dyspnoea"]}, headers={"Accept-Language": "en"})
    assert response.status_code == 200
    assert "Go to the emergency department now" in response.text
    assert "Severe breathlessness" in response.text
    assert "Please correct the fields" not in response.text
    with db(app) as s:
        assert s.exec(select(Encounter)).first() is None


def test_vaginal_bleeding_in_pregnancy_is_a_red_flag(client: FlaskClient, app: Flask, day: str) -> None:
    response = submit(client, preferred_day=day, sex="F", pregnant="y", pregnancy_weeks="30",
                      other=["vaginal_bleeding"])
    assert response.status_code == 302
    assert only_encounter(app).state == "directed_to_emergency"


def test_the_stop_page_is_reachable_without_answering(client: FlaskClient) -> None:
    page = client.get("/prescreen/emergency").text
    assert "请立即去急诊" in page and 'href="tel:120"' in page


# --- booking ---------------------------------------------------------------------------------------------------


def test_a_stable_patient_gets_the_first_free_slot_of_the_provisional_stream(
    client: FlaskClient, app: Flask, day: str
) -> None:
    reference, location = _booked(client, app, day)
    e = encounter(app, reference)
    assert e.state == "booked" and e.provisional_stream == "general" and e.visit_day == date.fromisoformat(day)
    assert e.status_token_hash and len(e.status_token_hash) == 64  # only the digest is stored
    assert location.rsplit("/", 1)[-1] not in e.status_token_hash
    policy = policy_of(app)
    assert policy.local(e.slot_starts_at).strftime("%H:%M") == "08:00"  # type: ignore[arg-type]
    assert _trail(app, reference) == [("create", "prescreened"), ("book", "booked")]
    page = client.get(location, headers={"Accept-Language": "en"}).text
    assert format_reference(reference) in page and "General outpatient" in page
    assert "08:00–08:30" in page and "Show my pass" in page
    with db(app) as s:
        slot = s.get(Slot, e.slot_id)
        assert slot is not None and slot.booked == 1


def test_a_fever_patient_is_booked_in_the_fever_clinic_and_told_the_separate_entrance(
    client: FlaskClient, app: Flask, day: str
) -> None:
    _, location = _booked(client, app, day, temperature_c="38.4", other=None, common=["cough"])
    e = only_encounter(app)
    assert e.provisional_stream == "fever" and e.state == "booked"
    # A 24-hour clinic still gives "tomorrow" a daytime slot, not midnight.
    assert policy_of(app).local(e.slot_starts_at).hour == 8  # type: ignore[arg-type]
    page = client.get(location, headers={"Accept-Language": "en"}).text
    assert "Fever clinic" in page and "fever clinic entrance" in page


def test_the_next_patient_gets_the_next_slot_when_one_is_full(client: FlaskClient, app: Flask, day: str) -> None:
    fill_day(app, Stream.GENERAL, date.fromisoformat(day), leave=17)  # the first slot is full
    _booked(client, app, day)
    e = only_encounter(app)
    assert policy_of(app).local(e.slot_starts_at).strftime("%H:%M") == "08:30"  # type: ignore[arg-type]


def test_a_full_day_offers_the_next_days_and_a_callback(client: FlaskClient, app: Flask, day: str) -> None:
    fill_day(app, Stream.GENERAL, date.fromisoformat(day))
    reference, location = _booked(client, app, day)
    e = encounter(app, reference)
    assert e.state == "prescreened" and e.slot_id is None
    page = client.get(location, headers={"Accept-Language": "en"}).text
    assert "No free time on" in page and "These times are free. Choose one:" in page
    assert "Please call me back" in page
    # The patient takes one of the offered slots.
    later = open_day(app, skip=1)
    key = f"{later:%Y%m%d}T0800"
    assert key in page
    response = client.post(f"/prescreen/v/{reference}/move", data={"slot": key})
    assert response.status_code == 302
    e = encounter(app, reference)
    assert e.state == "booked" and e.visit_day == later
    assert _trail(app, reference)[-1] == ("book", "booked")


def test_a_callback_request_is_recorded_once_and_staff_see_it(
    client: FlaskClient, app: Flask, day: str, login: Callable[[Role], FlaskClient]
) -> None:
    fill_day(app, Stream.GENERAL, date.fromisoformat(day))
    reference, location = _booked(client, app, day)
    for _ in range(2):
        assert client.post(f"/prescreen/v/{reference}/callback").status_code == 302
    with db(app) as s:
        requests = list(s.exec(select(CallbackRequest)))
        assert len(requests) == 1 and requests[0].stream == "general"
    page = client.get(location, headers={"Accept-Language": "en"}).text
    assert "We have your request. Staff will call you at 138****8000." in page
    staff = login(Role.NURSE).get("/staff/contacts/", headers={"Accept-Language": "en"}).text
    assert "张三明" in staff and "13800138000" in staff and "No free time" in staff


def test_the_emergency_stream_without_a_red_flag_is_never_booked(client: FlaskClient, app: Flask, day: str) -> None:
    # Abdominal pain at 70 is acuity level 3: the emergency department, today, without a slot.
    _, location = _booked(client, app, day, age_years="70", other=["abdominal_pain"])
    e = only_encounter(app)
    assert e.provisional_stream == "emergency" and e.state == "prescreened" and e.slot_id is None
    assert e.visit_day == policy_of(app).local(utcnow()).date()
    page = client.get(location, headers={"Accept-Language": "en"}).text
    assert "Come today. No appointment is needed" in page


# --- the pass -------------------------------------------------------------------------------------------------


def test_the_pass_shows_code_stream_name_and_time_but_no_answers(client: FlaskClient, app: Flask, day: str) -> None:
    reference, _ = _booked(client, app, day, other=["headache", "insomnia"], visit_reason="头痛很久了",
                           conditions=["depression"])
    page = client.get(f"/prescreen/v/{reference}/pass", headers={"Accept-Language": "en"}).text
    assert format_reference(reference) in page and "pass-general" in page and "General outpatient" in page
    assert "张*明" in page and "张三明" not in page  # the name masked for bystanders
    for answer in ("Headache", "Trouble sleeping", "头痛很久了", "Depression", "13800138000"):
        assert answer not in page
    assert f'src="/prescreen/v/{reference}/qr.svg"' in page
    qr = client.get(f"/prescreen/v/{reference}/qr.svg")
    assert qr.status_code == 200 and qr.mimetype == "image/svg+xml"
    assert b"<svg" in qr.data and b"<script" not in qr.data


def test_the_qr_code_encodes_only_the_reference(client: FlaskClient, app: Flask, day: str) -> None:
    reference, _ = _booked(client, app, day)
    # The same payload gives the same symbol: the entrance scanner types the bare code, nothing else.
    expected = segno.make(reference, error="m", micro=False)
    svg = client.get(f"/prescreen/v/{reference}/qr.svg").data.decode()
    buffer = io.BytesIO()
    expected.save(buffer, kind="svg", scale=10, border=4, xmldecl=False, svgclass=None, lineclass=None,
                  title=format_reference(reference))
    assert svg == buffer.getvalue().decode()


def test_another_browser_cannot_open_a_visit_by_its_code_alone(client: FlaskClient, app: Flask, day: str) -> None:
    reference, _ = _booked(client, app, day)
    stranger = app.test_client()
    response = stranger.get(f"/prescreen/v/{reference}")
    assert response.status_code == 302 and "/prescreen/lookup" in response.headers["Location"]
    assert stranger.get(f"/prescreen/v/{reference}/pass").status_code == 404
    assert stranger.get(f"/prescreen/v/{reference}/qr.svg").status_code == 404
    assert stranger.post(f"/prescreen/v/{reference}/cancel").status_code == 404
    assert encounter(app, reference).state == "booked"


def test_the_status_link_works_in_any_browser(client: FlaskClient, app: Flask, day: str) -> None:
    _, location = _booked(client, app, day)
    other = app.test_client()
    assert other.get(location).status_code == 200
    assert other.get("/prescreen/s/not-a-real-token-but-long-enough-123").status_code == 404


# --- changes: move, cancel -------------------------------------------------------------------------------------


def test_the_patient_moves_the_slot_and_the_old_place_is_released(client: FlaskClient, app: Flask, day: str) -> None:
    reference, _ = _booked(client, app, day)
    old = encounter(app, reference).slot_id
    page = client.get(f"/prescreen/v/{reference}/move?day={day}", headers={"Accept-Language": "en"}).text
    key = f"{date.fromisoformat(day):%Y%m%d}T1000"
    assert key in page
    response = client.post(f"/prescreen/v/{reference}/move", data={"slot": key})
    assert response.status_code == 302
    e = encounter(app, reference)
    assert policy_of(app).local(e.slot_starts_at).strftime("%H:%M") == "10:00"  # type: ignore[arg-type]
    with db(app) as s:
        assert s.get(Slot, old).booked == 0  # type: ignore[union-attr]
        assert s.get(Slot, e.slot_id).booked == 1  # type: ignore[union-attr]
        bodies = [n.body for n in s.exec(select(Notification).order_by(col(Notification.id)))]
    assert _trail(app, reference)[-1] == ("reschedule", "booked")
    assert "10:00" in bodies[-1]


def test_moving_to_a_full_slot_says_so_beside_the_choice(client: FlaskClient, app: Flask, day: str) -> None:
    reference, _ = _booked(client, app, day)
    fill_day(app, Stream.GENERAL, date.fromisoformat(day), leave=1)
    key = f"{date.fromisoformat(day):%Y%m%d}T1000"
    response = client.post(f"/prescreen/v/{reference}/move", data={"slot": key}, headers={"Accept-Language": "en"})
    assert response.status_code == 409
    assert "This slot has just been filled; choose another." in response.text
    assert _trail(app, reference)[-1] == ("book", "booked")


def test_moving_without_choosing_asks_for_a_time(client: FlaskClient, app: Flask, day: str) -> None:
    reference, _ = _booked(client, app, day)
    response = client.post(f"/prescreen/v/{reference}/move", data={}, headers={"Accept-Language": "en"})
    assert "Choose a time." in response.text


def test_the_patient_cancels_and_the_slot_is_released(client: FlaskClient, app: Flask, day: str) -> None:
    reference, location = _booked(client, app, day)
    confirm = client.get(f"/prescreen/v/{reference}/cancel", headers={"Accept-Language": "en"}).text
    assert "Cancel my visit?" in confirm
    assert client.post(f"/prescreen/v/{reference}/cancel").status_code == 302
    e = encounter(app, reference)
    assert e.state == "cancelled" and e.slot_id is None
    with db(app) as s:
        assert s.exec(select(Slot).where(Slot.booked > 0)).first() is None
    assert _trail(app, reference)[-1] == ("cancel", "cancelled")
    page = client.get(location, headers={"Accept-Language": "en"}).text
    assert "This visit is cancelled." in page and "Choose another time" not in page
    # A cancelled visit cannot be moved or cancelled again.
    again = client.post(f"/prescreen/v/{reference}/cancel", headers={"Accept-Language": "en"})
    assert again.status_code == 409


# --- validity: a pre-screen is valid on its day only -----------------------------------------------------------


def _age(app: Flask, reference: str, days: int) -> None:
    """Move a booking `days` into the past, as if the patient never came."""
    with db(app) as s:
        e = s.exec(select(Encounter).where(Encounter.reference == reference)).one()
        past = policy_of(app).local(utcnow()).date() - timedelta(days=days)
        s.execute(update(Encounter).where(col(Encounter.id) == e.id).values(visit_day=past))
        s.commit()


def test_reading_a_stale_pre_screen_expires_it_and_releases_its_slot(
    client: FlaskClient, app: Flask, day: str
) -> None:
    reference, location = _booked(client, app, day)
    slot_id = encounter(app, reference).slot_id
    _age(app, reference, 1)
    page = client.get(location, headers={"Accept-Language": "en"}).text
    assert "This pre-screen has expired" in page and "Pre-screen again" in page
    e = encounter(app, reference)
    assert e.state == "no_show" and e.slot_id is None
    with db(app) as s:
        assert s.get(Slot, slot_id).booked == 0  # type: ignore[union-attr]
        last = s.exec(select(TransitionLog).order_by(col(TransitionLog.id).desc())).first()
        assert last is not None and last.trigger == "expire" and last.actor_kind == "system"


def test_a_stale_pre_screen_cannot_be_moved(client: FlaskClient, app: Flask, day: str) -> None:
    reference, _ = _booked(client, app, day)
    _age(app, reference, 2)
    response = client.post(f"/prescreen/v/{reference}/move", data={"slot": f"{date.fromisoformat(day):%Y%m%d}T1000"},
                           headers={"Accept-Language": "en"}, follow_redirects=True)
    assert "This pre-screen has expired (it is valid on its day only). Please pre-screen again." in response.text
    assert encounter(app, reference).state == "no_show"


def test_the_expire_command_expires_every_stale_pre_screen(client: FlaskClient, app: Flask, day: str) -> None:
    stale, _ = _booked(client, app, day)
    fresh, _ = _booked(client, app, day, name="王五", phone="13900139000")
    _age(app, stale, 1)
    result: Result = app.test_cli_runner().invoke(args=["expire"])
    assert result.exit_code == 0 and "Expired 1 pre-screen(s)." in result.output
    assert encounter(app, stale).state == "no_show" and encounter(app, fresh).state == "booked"
    assert app.test_cli_runner().invoke(args=["expire"]).output.strip() == "Expired 0 pre-screen(s)."


# --- lookup by code and phone -------------------------------------------------------------------------------------


@pytest.mark.parametrize("phone", ["13800138000", "138 0013 8000", "+86 138-0013-8000", "0086 13800138000"])
def test_lookup_by_code_and_phone_accepts_any_way_of_writing_them(
    client: FlaskClient, app: Flask, day: str, phone: str
) -> None:
    reference, _ = _booked(client, app, day)
    other = app.test_client()
    code = format_reference(reference).lower().replace("-", " ")
    response = other.post("/prescreen/lookup", data={"reference": code, "phone": phone})
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/prescreen/v/{reference}")
    assert other.get(f"/prescreen/v/{reference}").status_code == 200


@pytest.mark.parametrize(("code", "phone"), [("right", "13900139000"), ("ZZZZ-ZZZZ", "13800138000")])
def test_a_wrong_code_or_phone_gets_one_message(
    client: FlaskClient, app: Flask, day: str, code: str, phone: str
) -> None:
    reference, _ = _booked(client, app, day)
    response = app.test_client().post(
        "/prescreen/lookup", data={"reference": reference if code == "right" else code, "phone": phone},
        headers={"Accept-Language": "en"})
    assert response.status_code == 200 and "The code or the phone number is not right." in response.text


def test_failed_lookups_are_rate_limited(database_url: str) -> None:
    app = make_app(database_url, RATELIMIT_ENABLED=True, PRESCREEN_LOOKUP_LIMIT="3 per minute")
    client = app.test_client()
    statuses = [client.post("/prescreen/lookup", data={"reference": "ZZZZZZZZ", "phone": "13800138000"}).status_code
                for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    app.extensions["triage.db"].dispose()


# --- online follow-up and family ------------------------------------------------------------------------------


def test_a_stable_refill_patient_is_offered_online_follow_up_and_it_is_recorded(
    client: FlaskClient, app: Flask
) -> None:
    day = open_day(app, Stream.CHRONIC).isoformat()
    reference, location = _booked(client, app, day, age_years="62", other=None, needs=["prescription_refill"],
                                  conditions=["hypertension"])
    e = encounter(app, reference)
    assert e.provisional_stream == "chronic" and e.state == "booked"
    page = client.get(location, headers={"Accept-Language": "en"}).text
    assert "Choose online follow-up instead" in page
    assert client.post(f"/prescreen/v/{reference}/online").status_code == 302
    e = encounter(app, reference)
    assert e.state == "referred" and e.disposition == "online_followup" and e.slot_id is None
    assert _trail(app, reference)[-1] == ("refer", "referred")
    with db(app) as s:
        assert s.exec(select(CallbackRequest)).one().encounter_id == e.id
    page = client.get(location, headers={"Accept-Language": "en"}).text
    assert "Online follow-up: no need to come in" in page


def test_online_follow_up_is_not_offered_to_others(client: FlaskClient, app: Flask, day: str) -> None:
    reference, location = _booked(client, app, day)
    assert "Choose online follow-up instead" not in client.get(location).text
    assert client.post(f"/prescreen/v/{reference}/online").status_code == 409


def test_a_family_books_several_members_from_one_phone(client: FlaskClient, app: Flask, day: str) -> None:
    first, _ = _booked(client, app, day)
    form = client.get(f"/prescreen/?family={first}", headers={"Accept-Language": "en"}).text
    assert "Adding another family member" in form and 'value="13800138000"' in form
    response = submit(client, preferred_day=day, name="张小明", age_years="8", family=first,
                      other=None, common=["cough"])
    assert response.status_code == 302
    second = reference_from(response.headers["Location"], app)
    a, b = encounter(app, first), encounter(app, second)
    assert a.party_id == b.party_id and a.reference != b.reference
    assert b.provisional_stream == "fever" and "child" in b.flags
    family = client.get("/prescreen/family", headers={"Accept-Language": "en"}).text
    assert format_reference(first) in family and format_reference(second) in family
    assert client.get(f"/prescreen/v/{second}/pass").status_code == 200
    assert client.get(f"/prescreen/v/{first}/pass").status_code == 200


def test_a_family_link_from_another_browser_does_not_join_the_party(
    client: FlaskClient, app: Flask, day: str
) -> None:
    first, _ = _booked(client, app, day)
    stranger = app.test_client()
    response = submit(stranger, preferred_day=day, name="陌生人", phone="13900139000", family=first)
    assert response.status_code == 302
    second = reference_from(response.headers["Location"], app)
    assert encounter(app, second).party_id != encounter(app, first).party_id


def test_one_phone_cannot_hold_more_than_eight_open_bookings(client: FlaskClient, app: Flask, day: str) -> None:
    for i in range(8):
        _booked(client, app, day, name=f"家人{i}")
    response = submit(client, preferred_day=day, name="第九人")
    assert response.status_code == 200 and "This phone number already has 8 open bookings." in response.text


# --- CSRF and rate limits (as in production) -------------------------------------------------------------------


def test_with_csrf_on_the_real_form_round_trip_works_and_a_forged_post_fails(database_url: str) -> None:
    app = make_app(database_url, WTF_CSRF_ENABLED=True)
    client = app.test_client()
    day = open_day(app).isoformat()
    forged = client.post("/prescreen/", data=form_data(preferred_day=day))
    assert forged.status_code == 400
    token = csrf_token(client.get("/prescreen/").text)
    response = client.post("/prescreen/", data={**form_data(preferred_day=day), "csrf_token": token})
    assert response.status_code == 302
    reference = reference_from(response.headers["Location"], app)
    page = client.get(response.headers["Location"]).text
    cancel_page = client.get(f"/prescreen/v/{reference}/cancel").text
    assert client.post(f"/prescreen/v/{reference}/cancel").status_code == 400  # no token
    assert client.post(f"/prescreen/v/{reference}/cancel",
                       data={"csrf_token": csrf_token(cancel_page)}).status_code == 302
    assert format_reference(reference) in page
    app.extensions["triage.db"].dispose()


def test_creating_pre_screens_is_rate_limited_per_client_but_corrections_are_not(database_url: str) -> None:
    app = make_app(database_url, RATELIMIT_ENABLED=True, PRESCREEN_CREATE_LIMIT="2 per minute")
    client = app.test_client()
    day = open_day(app).isoformat()
    for _ in range(3):  # validation errors do not use up the budget
        assert submit(client, preferred_day=day, name="").status_code == 200
    assert submit(client, preferred_day=day, name="甲").status_code == 302
    assert submit(client, preferred_day=day, name="乙").status_code == 302
    blocked = submit(client, preferred_day=day, name="丙")
    assert blocked.status_code == 429 and blocked.headers["Retry-After"] == "60"  # the minute's window
    # The JSON API shares the same budget: no second door for a script.
    from tests.web.prescreen_support import api_body

    refused = client.post("/api/v1/prescreenings", json=api_body(preferred_day=day))
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "60"
    app.extensions["triage.db"].dispose()


def test_capacity_cut_by_a_supervisor_applies_to_existing_slot_rows(
    client: FlaskClient, app: Flask, day: str, make_user: Callable[..., StaffUser]
) -> None:
    _booked(client, app, day)  # creates the day's slot rows with capacity 20
    change_policy(app, make_user("sup", Role.SUPERVISOR), capacities={"general": 1})
    _booked(client, app, day, name="李四", phone="13900139000")
    with db(app) as s:
        rows = list(s.exec(select(Encounter).order_by(col(Encounter.id))))
        assert rows[0].slot_id != rows[1].slot_id
        assert all(slot.booked <= 1 for slot in s.exec(select(Slot)))


# --- on site: the same link shows the queue and the ticket -------------------------------------------------


def test_the_status_page_follows_the_patient_on_site(client: FlaskClient, app: Flask) -> None:
    from triage.hospital import workflow
    from triage.services import SYSTEM, Facts, lock_encounter, store, transition

    today = policy_of(app).local(utcnow()).date()
    _, location = _booked(client, app, today.isoformat(), age_years="70", other=["abdominal_pain"])
    e = only_encounter(app)  # emergency stream, no appointment: comes today
    with db(app) as s:
        policy = policy_of(app)
        row = lock_encounter(s, e.reference)
        for trigger, facts in (("check_in", Facts()), ("triage", Facts(decision_stream=Stream.GENERAL)),
                               ("enqueue", Facts())):
            transition(s, row, trigger, workflow=workflow(), policy=policy, actor=SYSTEM, facts=facts)
        store.save(s, row)
        s.commit()
    page = client.get(location, headers={"Accept-Language": "en"}).text
    assert "Your number" in page and "G-001" in page and "People before you: 0" in page
    assert '<meta http-equiv="refresh" content="30">' in page
    assert "Choose another time" not in page and "Cancel my visit" not in page
    with db(app) as s:
        row = lock_encounter(s, e.reference)
        transition(s, row, "call", workflow=workflow(), policy=policy_of(app), actor=SYSTEM)
        store.save(s, row)
        s.commit()
    page = client.get(location, headers={"Accept-Language": "en"}).text
    assert "You are being called now." in page and "G-001" in page
