"""Hostile requests found over real HTTP: each was a 500 (or worse) before, and is now a clear answer.

Non-ASCII secrets compared with `hmac.compare_digest`, a `next` that a browser would read as another site, a form
field sent as a file, a day at the calendar's ends or an id past the database's integer in a supervisor's page,
and a body sent in chunks past the size limit.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import PASSWORD
from triage.models import Role, StaffUser


def test_a_board_key_with_non_ascii_characters_is_refused_not_a_crash(client: FlaskClient) -> None:
    for path in ("/board/fever?key=%C3%A9", "/board/fever/partial?key=%C3%A9%E4%B8%AD"):
        response = client.get(path, headers={"Accept-Language": "en"})
        assert response.status_code == 403, path


@pytest.mark.parametrize("target", ["/\r\nX-Evil:1", "/\t/evil.example/x", "/\\evil.example", "//evil.example",
                                    "https://evil.example/"])
def test_the_language_switch_never_leaves_the_site_nor_crashes(client: FlaskClient, target: str) -> None:
    response = client.get("/lang/en", query_string={"next": target})
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


def test_the_language_switch_goes_back_to_a_page_of_the_site(client: FlaskClient) -> None:
    response = client.get("/lang/en", query_string={"next": "/prescreen/?step=2"})
    assert response.status_code == 302 and response.headers["Location"] == "/prescreen/?step=2"


def test_a_login_with_a_hostile_next_lands_on_the_start_page(client: FlaskClient,
                                                             make_user: Callable[..., StaffUser]) -> None:
    make_user("wang", Role.NURSE)
    response = client.post("/login", query_string={"next": "/\r\nX-Evil: 1"},
                           data={"username": "wang", "password": PASSWORD})
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert "X-Evil" not in response.headers


@pytest.mark.parametrize(("path", "field"), [("/login", "username"), ("/prescreen/", "name"),
                                             ("/prescreen/lookup", "reference")])
def test_a_form_field_sent_as_a_file_is_a_clear_422(client: FlaskClient, path: str, field: str) -> None:
    response = client.post(path, headers={"Accept-Language": "en"},
                           data={field: (io.BytesIO(b"hello"), "a.txt"), "password": "x"},
                           content_type="multipart/form-data")
    assert response.status_code == 422
    assert "Files cannot be sent here" in response.get_data(as_text=True)


@pytest.mark.parametrize("query", [
    "/supervisor/reports/daily?day=9999-12-31", "/supervisor/reports/daily?day=0001-01-01",
    "/supervisor/reports/daily.csv?day=9999-12-31", "/supervisor/reports/weekly?week=9999-W52",
    "/supervisor/reports/weekly?week=0001-W01", "/supervisor/reports/weekly.csv?week=9999-W52",
    "/supervisor/quality?first=0001-01-01&last=0001-01-02", "/supervisor/audit?day=9999-12-31",
    "/supervisor/audit?staff=99999999999999999999999", "/supervisor/audit?before=9223372036854775807",
    "/supervisor/audit?staff=" + "9" * 5000, "/supervisor/audit?before=" + "9" * 5000, "/supervisor/audit?staff=%D9%A3",
])
def test_a_day_at_the_calendars_end_or_an_id_past_the_database_is_a_clear_422(
        login: Callable[[Role], FlaskClient], query: str) -> None:
    response = login(Role.SUPERVISOR).get(query, headers={"Accept-Language": "en"})
    assert response.status_code == 422, query
    text = response.get_data(as_text=True)
    assert any(words in text for words in ("between 1900 and 2999", "Choose a member of staff", "Invalid page"))


def test_the_first_and_last_years_of_the_range_still_answer(login: Callable[[Role], FlaskClient]) -> None:
    supervisor = login(Role.SUPERVISOR)
    for query in ("/supervisor/reports/daily?day=1900-01-01", "/supervisor/reports/weekly?week=1900-W01",
                  "/supervisor/reports/weekly?week=2999-W52", "/supervisor/audit?day=2999-12-31"):
        assert supervisor.get(query).status_code == 200, query


# What a server hands on for a body sent in chunks: no length, and an input that ends where the body ends.
CHUNKED = {"CONTENT_LENGTH": "", "wsgi.input_terminated": True}


def _chunked(client: FlaskClient, path: str, body: bytes, content_type: str) -> int:
    response = client.post(path, input_stream=io.BytesIO(body), content_type=content_type,
                           headers={"Transfer-Encoding": "chunked", "Accept-Language": "en"},
                           environ_overrides=CHUNKED)
    return response.status_code


def test_a_chunked_body_over_the_limit_is_413_not_cut_short(app: Flask, client: FlaskClient) -> None:
    limit = app.config["MAX_CONTENT_LENGTH"]
    padded = json.dumps({"stage": "onsite", "age_years": 40, "symptoms": [], "pad": "x" * limit}).encode()
    assert _chunked(client, "/api/v1/assessments", padded, "application/json") == 413
    assert _chunked(client, "/login", b"username=wang&password=" + b"x" * limit,
                    "application/x-www-form-urlencoded") == 413


def test_a_chunked_body_under_the_limit_is_read_whole(client: FlaskClient) -> None:
    body = json.dumps({"stage": "onsite", "age_years": 40, "sex": "M", "symptoms": ["headache"]}).encode()
    response = client.post("/api/v1/assessments", input_stream=io.BytesIO(body), content_type="application/json",
                           headers={"Transfer-Encoding": "chunked"}, environ_overrides=CHUNKED)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json is not None and response.json["stream"] == "general"
