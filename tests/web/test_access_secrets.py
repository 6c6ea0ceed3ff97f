"""Secrets: status links cannot be guessed or brute-forced, sessions end on the server, nothing is stored in clear.

What the other files already prove is not repeated here: the staff login's rate limit, its CSRF token and the
browser forgetting an old session (tests/web/test_auth.py); failed look-ups and API status reads being rate
limited (test_prescreen_form.py, test_api_prescreen.py); every form's CSRF token (test_access_matrix.py).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from flask import Flask, request, session
from flask.testing import FlaskClient
from itsdangerous import TimestampSigner
from sqlmodel import SQLModel

from tests.conftest import PASSWORD, make_app
from tests.web.prescreen_support import api_body, db, open_day
from triage.models import Role, StaffUser
from triage.services import staff
from triage.services.prescreen import TOKEN_BYTES

pytestmark = pytest.mark.db

URLSAFE = set(string.ascii_letters + string.digits + "-_")


def _prescreen(client: FlaskClient, app: Flask, phone: str = "13800138000") -> dict[str, str]:
    body = api_body(preferred_day=open_day(app).isoformat(), phone=phone)
    response = client.post("/api/v1/prescreenings", json=body)
    assert response.status_code == 201, response.json
    return response.json  # type: ignore[return-value]


# --- status links ---------------------------------------------------------------------------------------------


def test_status_links_carry_256_random_bits(client: FlaskClient, app: Flask) -> None:
    tokens = [_prescreen(client, app, f"1390000000{i}")["status_token"] for i in range(3)]
    assert TOKEN_BYTES * 8 >= 256
    for token in tokens:
        assert len(token) >= 43 and set(token) <= URLSAFE  # 43 url-safe characters: 6 bits each
    assert len(set(tokens)) == len(tokens)


def test_guessing_status_links_is_rate_limited_but_opening_ones_own_is_not(database_url: str) -> None:
    app = make_app(database_url, RATELIMIT_ENABLED=True, PRESCREEN_LOOKUP_LIMIT="3 per minute")
    client = app.test_client()
    own = _prescreen(app.test_client(), app)["status_token"]
    assert [client.get(f"/prescreen/s/{own}").status_code for _ in range(5)] == [200] * 5
    guesses = [client.get(f"/prescreen/s/{secrets.token_urlsafe(32)}").status_code for _ in range(4)]
    assert guesses == [404, 404, 404, 429]
    assert client.get(f"/prescreen/s/{own}").status_code == 429  # this address is out of guesses for now
    assert app.test_client().get(f"/prescreen/s/{own}", environ_base={"REMOTE_ADDR": "10.0.0.9"}).status_code == 200
    app.extensions["triage.db"].dispose()


def test_guessing_one_visits_phone_number_from_many_addresses_is_rate_limited(database_url: str) -> None:
    app = make_app(database_url, RATELIMIT_ENABLED=True, PRESCREEN_LOOKUP_PER_CODE_LIMIT="3 per hour")
    reference = _prescreen(app.test_client(), app)["reference"]
    answers = [app.test_client().post("/prescreen/lookup", data={"reference": reference, "phone": f"1390000{i:04d}"},
                                      environ_base={"REMOTE_ADDR": f"10.0.{i}.1"}) for i in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    # An hour's window: the page and Retry-After say when, not "a minute".
    assert answers[-1].headers["Retry-After"] == "3600"
    assert "最多等待 60 分钟" in answers[-1].get_data(as_text=True)
    other = app.test_client().post("/prescreen/lookup", data={"reference": "ZZZZ-ZZZZ", "phone": "13900000000"},
                                   environ_base={"REMOTE_ADDR": "10.0.9.1"})
    assert other.status_code == 200  # another code has its own budget
    app.extensions["triage.db"].dispose()


# --- sessions -------------------------------------------------------------------------------------------------


@pytest.fixture
def offset(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Seconds added to the server's clock for signed cookies (itsdangerous's timestamps): `offset[0] += n`."""
    moved = [0]
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda _self: int(time.time()) + moved[0])
    return moved


def test_the_server_refuses_a_session_older_than_its_lifetime(
    app: Flask, login: Callable[[Role], FlaskClient], offset: list[int]
) -> None:
    # The browser would drop the expired cookie by itself; a copied cookie must fail on the server too. The
    # signed cookie carries its time: move the server's clock instead of waiting for the configured lifetime.
    lifetime = int(app.permanent_session_lifetime.total_seconds())
    assert timedelta(seconds=lifetime) <= timedelta(hours=12)
    nurse = login(Role.NURSE)
    assert nurse.get("/desk/").status_code == 200
    offset[0] += lifetime - 60
    assert nurse.get("/desk/").status_code == 200  # in use: each request starts the lifetime again
    offset[0] += lifetime - 60
    assert nurse.get("/desk/").status_code == 200
    offset[0] += lifetime + 60  # left alone longer than the lifetime
    response = nurse.get("/desk/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login?next=")


def test_a_session_in_use_is_sent_again_once_a_minute_not_with_every_poll(
    app: Flask, login: Callable[[Role], FlaskClient], offset: list[int]
) -> None:
    nurse = login(Role.NURSE)
    assert nurse.get("/desk/").status_code == 200
    offset[0] += 30
    assert "Set-Cookie" not in nurse.get("/queues/general/partial").headers  # a poll: no new cookie
    offset[0] += 40
    refreshed = nurse.get("/queues/general/partial")
    assert refreshed.status_code == 200 and "session=" in refreshed.headers.get("Set-Cookie", "")


def test_a_cookie_verified_once_is_still_refused_once_expired_or_altered(
    app: Flask, login: Callable[[Role], FlaskClient], offset: list[int]
) -> None:
    # Each worker keeps the cookies it has verified (a screen polls with the same one): what it keeps still expires,
    # and a cookie differing by one character is not the one it verified.
    nurse = login(Role.NURSE)
    assert nurse.get("/desk/").status_code == 200
    cookie = nurse.get_cookie("session")
    assert cookie is not None
    value = cookie.value
    assert nurse.get("/queues/general/partial").status_code == 200  # verified, and kept
    payload, _, signature = value.rpartition(".")
    for altered in (f"{payload}.{signature[:-1]}{'A' if signature[-1] != 'A' else 'B'}", value[1:], value + "x"):
        stranger = app.test_client()
        stranger.set_cookie("session", altered)
        assert stranger.get("/queues/general/partial").status_code == 302
    offset[0] += int(app.permanent_session_lifetime.total_seconds()) + 60
    replay = app.test_client()
    replay.set_cookie("session", value)
    assert replay.get("/queues/general/partial").status_code == 302


def test_each_request_gets_its_own_copy_of_a_kept_session(app: Flask) -> None:
    # A flashed message is a list changed in place: one request's change must not reach the next request made with
    # the same cookie (as with a cookie decoded afresh).
    interface = app.session_interface
    with app.test_request_context("/"):
        session["_flashes"] = [("info", "one")]
        session["count"] = 1
        response = app.response_class()
        interface.save_session(app, session, response)
    value = response.headers["Set-Cookie"].split(";", 1)[0].split("=", 1)[1]
    with app.test_request_context("/", headers={"Cookie": f"session={value}"}):
        first = interface.open_session(app, request)
        assert first is not None
        first["_flashes"].append(("info", "two"))
    with app.test_request_context("/", headers={"Cookie": f"session={value}"}):
        second = interface.open_session(app, request)
    assert second is not None and second["_flashes"] == [("info", "one")] and second["count"] == 1


def test_a_screens_csrf_token_is_signed_once_and_accepted(database_url: str) -> None:
    app = make_app(database_url, WTF_CSRF_ENABLED=True)

    def token(client: FlaskClient, path: str) -> str:
        found = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', client.get(path).get_data(as_text=True))
        assert found is not None
        return found.group(1)

    def logged_in(name: str, role: Role) -> FlaskClient:
        with db(app) as s:
            staff.create_user(s, username=name, password=PASSWORD, role=role)
        client = app.test_client()
        form = {"username": name, "password": PASSWORD, "csrf_token": token(client, "/login")}
        assert client.post("/login", data=form).status_code == 302
        return client

    nurse, supervisor = logged_in("screen", Role.NURSE), logged_in("lead", Role.SUPERVISOR)
    polled = {token(nurse, "/queues/general/partial") for _ in range(3)}
    assert polled == {token(nurse, "/desk/")}  # signed once for the session, the same on every page
    assert token(supervisor, "/desk/") not in polled  # another session, another token
    assert supervisor.post("/logout", data={"csrf_token": next(iter(polled))}).status_code == 400  # not theirs
    assert nurse.post("/logout", data={"csrf_token": token(nurse, "/queues/general/partial")}).status_code == 302
    assert nurse.get("/desk/").status_code == 302  # logged out: the token was accepted
    app.extensions["triage.db"].dispose()


# --- stored secrets -------------------------------------------------------------------------------------------


def _strong(password_hash: str) -> bool:
    """A slow, salted, modern scheme: scrypt (N >= 2^15), PBKDF2 (>= 600,000 rounds) or argon2."""
    name, *params = password_hash.split("$", 1)[0].split(":")
    if name == "scrypt":
        return int(params[0]) >= 2**15
    if name == "pbkdf2":
        return int(params[1]) >= 600_000
    return name.startswith("argon2")


def test_passwords_are_stored_with_a_slow_salted_hash(app: Flask, make_user: Callable[..., StaffUser]) -> None:
    first, second = make_user("wang", Role.NURSE), make_user("li", Role.NURSE)
    assert _strong(first.password_hash) and PASSWORD not in first.password_hash
    assert first.password_hash != second.password_hash  # same password, different salt
    with db(app) as s:
        reset = staff.reset_password(s, user_id=first.id or 0, password="another-long-password")
        assert _strong(reset.password_hash) and staff.authenticate(s, "wang", "another-long-password") is not None


def _every_stored_value(app: Flask) -> str:
    with db(app) as s:
        rows = [row for table in SQLModel.metadata.sorted_tables
                for row in s.execute(table.select())]
    return "\n".join(str(value) for row in rows for value in row)


def test_the_database_holds_no_password_link_or_token_in_clear(
    app: Flask, client: FlaskClient, login: Callable[[Role], FlaskClient], make_user: Callable[..., StaffUser]
) -> None:
    status_token = _prescreen(client, app)["status_token"]
    system = make_user("ward-system", Role.NURSE)
    issued = login(Role.ADMIN).post(f"/admin/staff/{system.id}/tokens", data={"label": "ward system"})
    found = re.search(r'value="(trg_[^"]+)"', issued.text)
    assert issued.status_code == 201 and found is not None
    api_token = found.group(1)
    assert client.get("/api/v1/queues/general", headers={"Authorization": f"Bearer {api_token}"}).status_code == 200
    stored = _every_stored_value(app)
    for secret in (status_token, api_token, PASSWORD):
        assert secret not in stored
    for secret in (status_token, api_token):
        assert hashlib.sha256(secret.encode()).hexdigest() in stored  # only the digest, to recognise it
