"""Staff login: sessions, roles, expiry, rate limits, CSRF, and the production-secret refusal."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import PASSWORD, make_app
from triage import create_app
from triage.config import ConfigError
from triage.hospital import forget_cached_policy
from triage.models import Role, StaffUser
from triage.services import create_user


def test_production_refuses_to_start_with_the_default_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRIAGE_SECRET_KEY", raising=False)
    with pytest.raises(ConfigError, match="TRIAGE_SECRET_KEY is not set"):
        create_app({"DATABASE_URL": "sqlite://"})


def test_production_starts_with_a_secret_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIAGE_SECRET_KEY", "a-long-random-production-secret")
    app = create_app({"DATABASE_URL": "sqlite://"})
    assert app.config["SECRET_KEY"] == "a-long-random-production-secret"
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True


def test_testing_may_use_the_development_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRIAGE_SECRET_KEY", raising=False)
    assert create_app({"TESTING": True, "DATABASE_URL": "sqlite://"}).testing


def test_login_page_is_bilingual(client: FlaskClient) -> None:
    zh = client.get("/login", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert "员工登录" in zh.text and 'lang="zh-CN"' in zh.text
    en = client.get("/login", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert "Staff login" in en.text and 'lang="en"' in en.text


def test_chinese_is_the_default_language(client: FlaskClient) -> None:
    assert "员工登录" in client.get("/login", headers={"Accept-Language": "fr"}).text


def test_the_language_switch_remembers_the_choice(client: FlaskClient) -> None:
    response = client.get("/lang/en?next=/login")
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert "Staff login" in client.get("/login", headers={"Accept-Language": "zh-CN"}).text
    client.get("/lang/zh?next=/login")
    assert "员工登录" in client.get("/login").text


def test_the_language_switch_never_redirects_elsewhere(client: FlaskClient) -> None:
    for target in ("https://evil.example/", "//evil.example/x", "javascript:alert(1)"):
        response = client.get("/lang/en", query_string={"next": target})
        assert response.headers["Location"] == "/"


def test_login_and_logout(client: FlaskClient, make_user: Callable[..., StaffUser]) -> None:
    make_user("wang", Role.NURSE)
    response = client.post("/login", data={"username": "wang", "password": PASSWORD})
    assert response.status_code == 302
    assert "wang" in client.get("/", headers={"Accept-Language": "en"}).text
    response = client.post("/logout")
    assert response.status_code == 302 and response.headers["Location"].endswith("/login")
    assert "Log out" not in client.get("/", headers={"Accept-Language": "en"}).text


@pytest.mark.parametrize(("username", "password"), [("wang", "wrong-password"), ("nobody", PASSWORD)])
def test_wrong_credentials_get_one_clear_message(
    client: FlaskClient, make_user: Callable[..., StaffUser], username: str, password: str
) -> None:
    make_user("wang", Role.NURSE)
    response = client.post("/login", data={"username": username, "password": password},
                           headers={"Accept-Language": "en"})
    assert response.status_code == 200
    assert "Wrong username or password, or the account is deactivated." in response.text
    assert f'value="{username}"' in response.text  # what was typed is kept


def test_empty_login_form_says_what_is_missing(client: FlaskClient) -> None:
    response = client.post("/login", data={}, headers={"Accept-Language": "en"})
    assert "Enter your username." in response.text and "Enter your password." in response.text


def test_a_deactivated_account_cannot_log_in_and_its_sessions_end(
    app: Flask, make_user: Callable[..., StaffUser]
) -> None:
    user = make_user("wang", Role.NURSE)
    client = app.test_client()
    client.post("/login", data={"username": "wang", "password": PASSWORD})
    with app.app_context():
        s = app.extensions["triage.db"].session()
        row = s.get(StaffUser, user.id)
        assert row is not None
        row.active = False
        row.session_epoch += 1
        s.add(row)
        s.commit()
        s.close()
    assert "Log out" not in client.get("/", headers={"Accept-Language": "en"}).text
    response = app.test_client().post("/login", data={"username": "wang", "password": PASSWORD},
                                      headers={"Accept-Language": "en"})
    assert "deactivated" in response.text


def test_login_never_redirects_off_site(client: FlaskClient, make_user: Callable[..., StaffUser]) -> None:
    make_user("wang", Role.NURSE)
    response = client.post("/login?next=https://evil.example/", data={"username": "wang", "password": PASSWORD})
    assert response.headers["Location"] == "/"


def test_sessions_expire(database_url: str, make_user: Callable[..., StaffUser]) -> None:
    app = make_app(database_url, PERMANENT_SESSION_LIFETIME=timedelta(seconds=1))
    make_user("wang", Role.NURSE)
    client = app.test_client()
    client.post("/login", data={"username": "wang", "password": PASSWORD})
    assert "Log out" in client.get("/", headers={"Accept-Language": "en"}).text
    time.sleep(2.1)
    assert "Log out" not in client.get("/", headers={"Accept-Language": "en"}).text


def test_login_needs_a_csrf_token(database_url: str, make_user: Callable[..., StaffUser]) -> None:
    app = make_app(database_url, WTF_CSRF_ENABLED=True)
    make_user("wang", Role.NURSE)
    response = app.test_client().post("/login", data={"username": "wang", "password": PASSWORD},
                                      headers={"Accept-Language": "en"})
    assert response.status_code == 400
    assert "This form has expired" in response.text


def test_login_is_rate_limited(database_url: str, make_user: Callable[..., StaffUser]) -> None:
    app = make_app(database_url, RATELIMIT_ENABLED=True)
    make_user("wang", Role.NURSE)
    client = app.test_client()
    statuses = [client.post("/login", data={"username": "wang", "password": "guess"}).status_code
                for _ in range(12)]
    assert statuses[:10] == [200] * 10 and statuses[10:] == [429, 429]


def test_security_headers(client: FlaskClient) -> None:
    headers = client.get("/login").headers
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert "unsafe-inline" not in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"


def test_unknown_page_is_a_friendly_404(client: FlaskClient) -> None:
    response = client.get("/no-such-page", headers={"Accept-Language": "en"})
    assert response.status_code == 404 and "There is nothing at this address." in response.text
    api = client.get("/api/v1/no-such-thing")
    assert api.status_code == 404 and api.json is not None and api.json["message"]


def test_the_session_cookie_is_secure_httponly_and_same_site_by_default(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRIAGE_SECURE_COOKIES", raising=False)  # the production default, not `make run`'s
    forget_cached_policy()
    app = create_app({"TESTING": True, "SECRET_KEY": "test-secret", "DATABASE_URL": database_url,
                      "WTF_CSRF_ENABLED": False, "RATELIMIT_ENABLED": False})
    with app.app_context():
        s = app.extensions["triage.db"].session()
        create_user(s, username="cookie-nurse", password=PASSWORD, role=Role.NURSE)
        s.close()
    response = app.test_client().post("/login", data={"username": "cookie-nurse", "password": PASSWORD})
    assert response.status_code == 302
    cookie = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("session="))
    flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"secure", "httponly", "samesite"} <= flags, cookie
    assert "samesite=lax" in cookie.lower()
    app.extensions["triage.db"].dispose()
