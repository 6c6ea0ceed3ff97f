"""Administrators: staff accounts (create, deactivate, reactivate, reset password, API tokens) and baselines."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import select

from tests.conftest import PASSWORD
from tests.onsite_support import db
from triage.models import Role, StaffUser, WeeklyBaseline

EN = {"Accept-Language": "en"}
PAGES = ["/admin/staff", "/admin/staff/1", "/admin/baselines", "/admin/baselines?week=2025-W47"]
POSTS = ["/admin/staff", "/admin/staff/1/deactivate", "/admin/staff/1/reactivate", "/admin/staff/1/password",
         "/admin/staff/1/tokens", "/admin/staff/1/tokens/1/revoke", "/admin/baselines", "/admin/baselines/1/delete"]


@pytest.mark.parametrize("path", PAGES)
def test_anonymous_visitors_are_sent_to_the_login(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302 and "/login" in response.headers["Location"]


@pytest.mark.parametrize("role", [Role.NURSE, Role.SUPERVISOR])
@pytest.mark.parametrize("path", PAGES)
def test_only_admins_see_administration(login: Callable[[Role], FlaskClient], role: Role, path: str) -> None:
    assert login(role).get(path).status_code == 403


@pytest.mark.parametrize("role", [Role.NURSE, Role.SUPERVISOR])
@pytest.mark.parametrize("path", POSTS)
def test_only_admins_change_accounts(login: Callable[[Role], FlaskClient], role: Role, path: str) -> None:
    assert login(role).post(path, data={"password": "x" * 12}).status_code == 403


@pytest.mark.parametrize("path", PAGES)
def test_admins_see_every_page(login: Callable[[Role], FlaskClient], path: str) -> None:
    assert login(Role.ADMIN).get(path, headers=EN).status_code == 200


@pytest.fixture
def admin(login: Callable[[Role], FlaskClient]) -> FlaskClient:
    """A logged-in administrator (user id 1)."""
    return login(Role.ADMIN)


def _user_id(app: Flask, username: str) -> int:
    with db(app) as s:
        user = s.exec(select(StaffUser).where(StaffUser.username == username)).one()
        return user.id or 0


def _log_in(app: Flask, username: str, password: str = PASSWORD) -> FlaskClient:
    c = app.test_client()
    assert c.post("/login", data={"username": username, "password": password}).status_code == 302
    return c


def test_create_an_account_and_log_in_with_it(app: Flask, admin: FlaskClient) -> None:
    response = admin.post("/admin/staff", data={"username": "nurse.li", "display_name": "李护士", "role": "nurse",
                                                "password": "a-long-password"}, headers=EN)
    assert response.status_code == 302
    page = admin.get(response.headers["Location"], headers=EN).text
    assert "Account nurse.li created." in page and "李护士" in page
    _log_in(app, "nurse.li", "a-long-password")


@pytest.mark.parametrize(("data", "message"), [
    ({"username": "admin-user", "password": "a-long-password"}, "This username is already taken."),
    ({"username": "Admin-User", "password": "a-long-password"}, "This username is already taken."),
    ({"username": "ａｄｍｉｎ-user", "password": "a-long-password"}, "This username is already taken."),
    ({"username": "bad name!", "password": "a-long-password"}, "Usernames use letters, digits"),
    ({"username": "ok", "password": "short"}, "The password must have at least 8 characters."),
])
def test_account_errors_are_shown_beside_their_fields(admin: FlaskClient, data: dict[str, str], message: str) -> None:
    response = admin.post("/admin/staff", data={"role": "nurse", "display_name": "某人", **data}, headers=EN)
    assert response.status_code in (409, 422)
    assert message in response.text
    assert f'value="{data["username"]}"' in response.text  # what was typed stays (never the password)
    assert data["password"] not in response.text


@pytest.mark.parametrize("display_name", [
    "Wang\x1b[2J", "\u202eevil\u202c", "Li\u0007", "Zhang\u200fLi", "<b>Li</b>", "{{ 7*7 }}", "Li\u2028Wei",
], ids=["escape", "bidi-override", "bell", "rtl-mark", "markup", "template", "line-separator"])
@pytest.mark.parametrize(("lang", "message"), [
    ("zh", "姓名中有不能使用的字符。"), ("en", "The name contains characters that cannot be used."),
])
def test_a_display_name_with_control_or_markup_characters_is_refused_like_a_patients(
        app: Flask, admin: FlaskClient, display_name: str, lang: str, message: str) -> None:
    response = admin.post("/admin/staff", data={"username": "nurse.li", "display_name": display_name,
                                                "role": "nurse", "password": "a-long-password"},
                          headers={"Accept-Language": lang})
    assert response.status_code == 422
    assert message in response.text
    with db(app) as s:
        assert s.exec(select(StaffUser).where(StaffUser.username == "nurse.li")).first() is None


def test_a_display_name_in_any_script_is_kept(app: Flask, admin: FlaskClient) -> None:
    response = admin.post("/admin/staff", data={"username": "nurse.a", "display_name": "  Ayşe Ñúñez 阿依古丽·买买提 ",
                                                "role": "nurse", "password": "a-long-password"})
    assert response.status_code == 302
    with db(app) as s:
        user = s.exec(select(StaffUser).where(StaffUser.username == "nurse.a")).one()
        assert user.display_name == "Ayşe Ñúñez 阿依古丽·买买提"


def test_a_username_typed_in_full_width_logs_in(app: Flask, make_user: Callable[..., StaffUser]) -> None:
    make_user("nurse01", Role.NURSE)  # a Chinese keyboard in full-width mode types ｎｕｒｓｅ０１
    _log_in(app, "ｎｕｒｓｅ０１")


def test_deactivate_ends_the_sessions_and_reactivate_restores_login(
        app: Flask, admin: FlaskClient, make_user: Callable[..., StaffUser]) -> None:
    nurse = make_user("nurse-x", Role.NURSE)
    their_browser = _log_in(app, "nurse-x")
    assert their_browser.get("/desk/").status_code == 200
    assert admin.post(f"/admin/staff/{nurse.id}/deactivate").status_code == 302
    assert their_browser.get("/desk/").status_code == 302  # logged out at once
    locked_out = app.test_client().post("/login", data={"username": "nurse-x", "password": PASSWORD})
    assert locked_out.status_code == 200  # the login form again, with its error
    assert admin.post(f"/admin/staff/{nurse.id}/reactivate").status_code == 302
    _log_in(app, "nurse-x")


def test_an_admin_cannot_lock_themselves_out(app: Flask, admin: FlaskClient) -> None:
    me = _user_id(app, "admin-user")
    response = admin.post(f"/admin/staff/{me}/deactivate", headers=EN, follow_redirects=True)
    assert "You cannot deactivate your own account." in response.text
    with db(app) as s:
        assert s.get(StaffUser, me).active  # type: ignore[union-attr]


def test_the_last_admin_cannot_be_deactivated(app: Flask, admin: FlaskClient,
                                              make_user: Callable[..., StaffUser]) -> None:
    other = make_user("admin-two", Role.ADMIN)
    assert admin.post(f"/admin/staff/{other.id}/deactivate").status_code == 302  # two active admins: allowed
    from triage.domain.errors import Conflict
    from triage.services import staff

    with db(app) as s, pytest.raises(Conflict) as caught:
        staff.deactivate_user(s, user_id=_user_id(app, "admin-user"), actor_id=None)  # e.g. from a script
    assert caught.value.en == "The last active administrator cannot be deactivated."


def test_reset_password_ends_old_sessions(app: Flask, admin: FlaskClient,
                                          make_user: Callable[..., StaffUser]) -> None:
    nurse = make_user("nurse-y", Role.NURSE)
    their_browser = _log_in(app, "nurse-y")
    short = admin.post(f"/admin/staff/{nurse.id}/password", data={"password": "short"}, headers=EN)
    assert short.status_code == 422 and "at least 8 characters" in short.text
    assert admin.post(f"/admin/staff/{nurse.id}/password", data={"password": "new-password-1"}).status_code == 302
    assert their_browser.get("/desk/").status_code == 302
    _log_in(app, "nurse-y", "new-password-1")


def test_api_token_is_shown_once_works_and_can_be_revoked(
        app: Flask, admin: FlaskClient, make_user: Callable[..., StaffUser]) -> None:
    nurse = make_user("ward-system", Role.NURSE)
    missing = admin.post(f"/admin/staff/{nurse.id}/tokens", data={"label": ""}, headers=EN)
    assert missing.status_code == 422 and "Say what the token is for." in missing.text
    issued = admin.post(f"/admin/staff/{nurse.id}/tokens", data={"label": "病房系统"}, headers=EN)
    assert issued.status_code == 201 and issued.headers["Cache-Control"] == "no-store"
    secret = re.search(r'value="(trg_[^"]+)"', issued.text)
    assert secret is not None
    bearer = {"Authorization": f"Bearer {secret.group(1)}"}
    assert app.test_client().get("/api/v1/encounters/ABCD1234", headers=bearer).status_code == 404  # authorised
    page = admin.get(f"/admin/staff/{nurse.id}", headers=EN).text
    assert secret.group(1) not in page and "病房系统" in page  # never shown again
    token_id = re.search(rf'/admin/staff/{nurse.id}/tokens/(\d+)/revoke', page)
    assert token_id is not None
    assert admin.post(f"/admin/staff/{nurse.id}/tokens/{token_id.group(1)}/revoke").status_code == 302
    assert app.test_client().get("/api/v1/encounters/ABCD1234", headers=bearer).status_code == 401
    again = admin.post(f"/admin/staff/{nurse.id}/tokens/{token_id.group(1)}/revoke", headers=EN,
                       follow_redirects=True)
    assert "This token is already revoked." in again.text


def test_baselines_are_entered_corrected_and_removed(app: Flask, admin: FlaskClient) -> None:
    bad = admin.post("/admin/baselines", data={"week": "2025-47", "outpatient": "x", "emergency": "10",
                                               "other": "5"}, headers=EN)
    assert bad.status_code == 422
    assert "Enter an ISO week like 2025-W47." in bad.text and "Enter a whole number of visits" in bad.text
    assert 'value="2025-47"' in bad.text
    data = {"week": "2025-W47", "outpatient": "1200", "emergency": "300", "other": "80"}
    assert admin.post("/admin/baselines", data=data).status_code == 302
    assert admin.post("/admin/baselines", data={**data, "outpatient": "1250"}).status_code == 302
    with db(app) as s:
        rows = s.exec(select(WeeklyBaseline)).all()
        assert [(r.iso_year, r.iso_week, r.outpatient) for r in rows] == [(2025, 47, 1250)]
        row_id = rows[0].id
    form = admin.get("/admin/baselines?week=2025-W47", headers=EN).text
    assert 'value="1250"' in form
    assert admin.post(f"/admin/baselines/{row_id}/delete").status_code == 302
    with db(app) as s:
        assert s.exec(select(WeeklyBaseline)).first() is None
