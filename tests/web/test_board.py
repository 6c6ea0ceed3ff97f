"""Waiting-room boards: a long key instead of a login, masked names, the fever board apart, cheap refreshes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event

from tests.onsite_support import (
    always_open_app,  # noqa: F401 - the `app` fixture of this module
    db,
    open_app,
    staff_actor,
    ticketed,
)
from triage.domain.policy import Stream
from triage.hospital import base_policy, workflow
from triage.models import Encounter, Role
from triage.services import onsite

EN = {"Accept-Language": "en"}


def _key(app: Flask, area: str) -> str:
    from triage.web.board import board_key

    with app.app_context():
        return board_key(area)


def _ticket(app: Flask, stream: Stream, name: str, *, call: bool = False) -> Encounter:
    with db(app) as s:
        enc = ticketed(s, stream, name=name)
        if call:
            enc = onsite.queue_action(s, reference=enc.reference, trigger="call", policy=base_policy(),
                                      workflow=workflow(), actor=staff_actor(s))
        return enc


# --- access ------------------------------------------------------------------------------------------------


def test_a_board_link_with_its_key_opens_without_login(app: Flask, client: FlaskClient) -> None:
    response = client.get("/board/fever", query_string={"key": _key(app, "fever")}, headers=EN)
    assert response.status_code == 200 and "Fever clinic waiting area" in response.text


def test_without_a_key_the_board_asks_for_a_staff_login(client: FlaskClient) -> None:
    response = client.get("/board/fever")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


@pytest.mark.parametrize("key", ["wrong", "0" * 32])
def test_a_wrong_key_is_refused(app: Flask, client: FlaskClient, key: str) -> None:
    assert client.get("/board/fever", query_string={"key": key}).status_code == 403
    assert client.get("/board/fever/partial", query_string={"key": key}).status_code == 403


def test_a_key_opens_only_its_own_area(app: Flask, client: FlaskClient) -> None:
    assert client.get("/board/outpatient", query_string={"key": _key(app, "fever")}).status_code == 403


@pytest.mark.db
def test_changing_the_board_key_revokes_the_links(database_url: str, tmp_path: Path) -> None:
    first = open_app(database_url, tmp_path, BOARD_KEY="first-board-key")
    second = open_app(database_url, tmp_path, BOARD_KEY="second-board-key")
    old = _key(first, "fever")
    assert old != _key(second, "fever")
    assert second.test_client().get("/board/fever", query_string={"key": old}).status_code == 403
    for application in (first, second):
        application.extensions["triage.db"].dispose()


@pytest.mark.parametrize("role", list(Role))
def test_logged_in_staff_may_open_any_board(login: Callable[[Role], FlaskClient], role: Role) -> None:
    client = login(role)
    for area in ("fever", "emergency", "outpatient"):
        assert client.get(f"/board/{area}").status_code == 200


@pytest.mark.parametrize(("role", "status"), [(Role.NURSE, 403), (Role.SUPERVISOR, 200), (Role.ADMIN, 200)])
def test_the_board_links_page_is_for_supervisors_and_administrators(
        app: Flask, login: Callable[[Role], FlaskClient], role: Role, status: int) -> None:
    response = login(role).get("/board/", headers=EN)
    assert response.status_code == status
    if status == 200:
        assert f"/board/fever?key={_key(app, 'fever')}" in response.text


def test_the_board_links_page_needs_a_login(client: FlaskClient) -> None:
    response = client.get("/board/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_unknown_area_is_404(app: Flask, client: FlaskClient) -> None:
    assert client.get("/board/canteen", query_string={"key": _key(app, "fever")}).status_code == 404


# --- content -----------------------------------------------------------------------------------------------------


def test_the_board_shows_called_and_next_tickets_with_masked_names(app: Flask, client: FlaskClient) -> None:
    _ticket(app, Stream.FEVER, "张三明", call=True)
    _ticket(app, Stream.FEVER, "John Smith")
    page = client.get("/board/fever", query_string={"key": _key(app, "fever")}, headers=EN).text
    called = page[page.index("Now calling"):page.index('id="next-title"')]
    upcoming = page[page.index('id="next-title"'):]
    assert "F-001" in called and "张*明" in called and "Please go to: Fever clinic" in called
    assert "F-002" in upcoming and "J*** S." in upcoming
    assert "张三明" not in page and "John Smith" not in page


def test_the_fever_board_is_separate_from_the_others(app: Flask, client: FlaskClient) -> None:
    _ticket(app, Stream.FEVER, "发热患者")
    _ticket(app, Stream.GENERAL, "普通患者")
    _ticket(app, Stream.CHRONIC, "慢病患者")
    fever = client.get("/board/fever/partial", query_string={"key": _key(app, "fever")}).text
    outpatient = client.get("/board/outpatient/partial", query_string={"key": _key(app, "outpatient")}).text
    assert "F-001" in fever and "G-001" not in fever and "C-001" not in fever
    assert "G-001" in outpatient and "C-001" in outpatient and "F-001" not in outpatient


def test_the_board_updates_itself_and_keeps_the_csp(app: Flask, client: FlaskClient) -> None:
    key = _key(app, "fever")
    response = client.get("/board/fever", query_string={"key": key})
    assert f'hx-get="/board/fever/partial?key={key}"' in response.text and 'hx-trigger="every 3s"' in response.text
    assert "<script>" not in response.text and " style=" not in response.text
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert '<meta http-equiv="refresh"' in response.text  # inside <noscript>, for screens without JavaScript


def test_the_board_is_bilingual(app: Flask, client: FlaskClient) -> None:
    key = _key(app, "fever")
    assert "正在叫号" in client.get("/board/fever", query_string={"key": key}).text
    assert "Now calling" in client.get("/board/fever", query_string={"key": key, "lang": "en"}).text


def test_an_unchanged_board_answers_304(app: Flask, client: FlaskClient) -> None:
    _ticket(app, Stream.FEVER, "张三明")
    url, query = "/board/fever/partial", {"key": _key(app, "fever")}
    first = client.get(url, query_string=query)
    assert first.status_code == 200 and first.headers["ETag"]
    again = client.get(url, query_string=query, headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""
    _ticket(app, Stream.FEVER, "李四", call=True)
    changed = client.get(url, query_string=query, headers={"If-None-Match": first.headers["ETag"]})
    assert changed.status_code == 200 and "F-002" in changed.text


@pytest.mark.parametrize("patients", [2, 20])
def test_a_board_refresh_runs_two_statements(app: Flask, client: FlaskClient, patients: int) -> None:
    for i in range(patients):
        _ticket(app, Stream.FEVER, f"P{i}", call=i % 3 == 0)
    query = {"key": _key(app, "fever")}
    client.get("/board/fever/partial", query_string=query)  # warm caches as a running server has
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.lstrip().upper().startswith(("BEGIN", "PRAGMA")):
            seen.append(statement)

    engine = app.extensions["triage.db"].read_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        assert client.get("/board/fever/partial", query_string=query).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(seen) == 2, seen


def test_many_screens_polling_one_board_share_one_computation_per_interval(app: Flask, client: FlaskClient) -> None:
    app.config["LIVE_CACHE_SECONDS"] = 60
    _ticket(app, Stream.FEVER, "张一", call=True)
    url = f"/board/fever/partial?key={_key(app, 'fever')}"
    first = client.get(url, headers=EN).text
    _ticket(app, Stream.FEVER, "李二", call=True)
    assert client.get(url, headers=EN).text == first  # within the interval: the same fragment, not recomputed
    app.extensions["triage.live_cache"].clear()  # the interval has passed
    assert client.get(url, headers=EN).text != first
