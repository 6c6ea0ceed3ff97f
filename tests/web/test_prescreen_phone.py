"""A phone number is stored and compared in ASCII digits, however its digits were typed.

A Chinese keyboard types full-width digits ("１３８"); other scripts have their own decimal digits. Each is read as
its ASCII digit, so the limit of open bookings per phone and the lookup by phone see one number. Characters that
look like digits but are not decimal digits (superscripts "²", circled "①") are refused with the phone's message.
"""

from __future__ import annotations

import html

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import select

from tests.web.prescreen_support import db, encounter, open_day, reference_from, submit
from triage.models import Encounter
from triage.services.prescreen import normalize_phone


@pytest.fixture
def day(app: Flask) -> str:
    """A day with general-outpatient slots, from tomorrow on."""
    return open_day(app).isoformat()


@pytest.mark.parametrize(("typed", "stored"), [
    ("13800138000", "13800138000"),
    ("138 0013 8000", "13800138000"),
    ("+86 138-0013-8000", "13800138000"),
    ("１３８００１３８０００", "13800138000"),  # full width
    ("＋８６ １３８ ００１３ ８０００", "13800138000"),  # full width, with the country code
    ("١٣٨٠٠١٣٨٠٠٠", "13800138000"),  # Arabic-Indic
    ("۱۳۸۰۰۱۳۸۰۰۰", "13800138000"),  # Extended Arabic-Indic
    ("१३८००१३८०००", "13800138000"),  # Devanagari
    ("138²0013800", "1380013800"),  # a superscript is no digit of a phone number (refused by validation)
    ("①3800138000", "3800138000"),
])
def test_a_phone_number_is_normalized_to_ascii_digits(typed: str, stored: str) -> None:
    assert normalize_phone(typed) == stored
    assert normalize_phone(typed).isascii()


@pytest.mark.parametrize("typed", ["１３８００１３８０００", "١٣٨٠٠١٣٨٠٠٠", "＋８６ （１３８） ００１３－８０００"])
def test_a_phone_typed_in_another_scripts_digits_is_stored_in_ascii_digits(
        client: FlaskClient, app: Flask, day: str, typed: str) -> None:
    response = submit(client, preferred_day=day, phone=typed)
    assert response.status_code == 302, response.text
    assert encounter(app, reference_from(response.headers["Location"], app)).patient_phone == "13800138000"


@pytest.mark.parametrize("typed", ["138²0013800", "13800138000¹", "①3800138000"])
@pytest.mark.parametrize(("lang", "message"), [("en", "Enter a valid phone number, e.g. 138 0013 8000."),
                                               ("zh", "请填写正确的电话号码，例如 138 0013 8000。")])
def test_a_character_that_only_looks_like_a_digit_is_refused_and_nothing_is_stored(
        client: FlaskClient, app: Flask, day: str, typed: str, lang: str, message: str) -> None:
    response = client.post("/prescreen/", headers={"Accept-Language": lang}, data={
        "name": "张三明", "phone": typed, "age_years": "40", "sex": "M", "other": ["headache"], "epi": ["none"],
        "consent": "y", "preferred_day": day})
    assert response.status_code == 200
    assert message in html.unescape(response.text)
    with db(app) as s:
        assert s.exec(select(Encounter)).first() is None


def test_the_limit_of_eight_open_bookings_counts_a_number_however_its_digits_are_typed(
        client: FlaskClient, app: Flask, day: str) -> None:
    for i in range(8):
        assert submit(client, preferred_day=day, name=f"家人{i}", phone="13800138000").status_code == 302
    response = submit(client, preferred_day=day, name="第九人", phone="１３８００１３８０００")
    assert response.status_code == 200 and "This phone number already has 8 open bookings." in response.text
    with db(app) as s:
        assert len(s.exec(select(Encounter)).all()) == 8


def test_a_visit_booked_with_ascii_digits_is_found_with_full_width_ones(
        client: FlaskClient, app: Flask, day: str) -> None:
    response = submit(client, preferred_day=day, phone="138 0013 8000")
    reference = reference_from(response.headers["Location"], app)
    other = app.test_client()
    found = other.post("/prescreen/lookup", data={"reference": reference, "phone": "１３８ ００１３ ８０００"})
    assert found.status_code == 302 and found.headers["Location"].endswith(f"/prescreen/v/{reference}")
