"""Rules that span rows hold when the same request arrives many times at the same instant.

A row lock cannot guard what does not exist yet (the next policy change, a username not yet taken, the week's
first baseline) nor a count of rows (active administrators, a phone's open bookings). These tests send the
requests together, each from its own browser (its own session and transaction), and check that the rule held
and that every request got a clear answer: never a 500. SQLite serializes writers by its write lock; PostgreSQL
(TRIAGE_TEST_DATABASE_URL, `make test-postgres`) is where they would race.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import col, select

from tests.conftest import PASSWORD, all_at_once
from tests.web.prescreen_support import api_body, db, open_day
from triage.domain.errors import Conflict
from triage.models import Encounter, PolicyChange, Role, StaffUser, WeeklyBaseline
from triage.services import staff
from triage.services.prescreen import LIVE_BOOKING_STATES, MAX_LIVE_PER_PHONE

pytestmark = pytest.mark.slow

EN = {"Accept-Language": "en"}


def _browsers(app: Flask, username: str, count: int) -> list[FlaskClient]:
    browsers = []
    for _ in range(count):
        browser = app.test_client()
        assert browser.post("/login", data={"username": username, "password": PASSWORD}).status_code == 302
        browsers.append(browser)
    return browsers


POLICY_FORM = {"region_risk_level": "medium", "capacity_fever": "6", "capacity_general": "1",
               "capacity_chronic": "10", "reason": "市卫健委通知：本区调整为中风险", "based_on": "0"}


def test_ten_supervisors_confirming_the_same_preview_at_once_make_one_change(
        app: Flask, make_user: Callable[..., StaffUser]) -> None:
    make_user("chief", Role.SUPERVISOR)
    browsers = _browsers(app, "chief", 10)

    def confirm(i: int) -> tuple[int, str]:
        response = browsers[i].post("/supervisor/policy/confirm", data=POLICY_FORM, headers=EN)
        return response.status_code, response.text

    results = all_at_once(confirm, 10)
    assert Counter(status for status, _ in results) == {302: 1, 409: 9}
    assert all("Someone else changed the policy" in text for status, text in results if status == 409)
    with db(app) as s:
        assert len(s.exec(select(PolicyChange)).all()) == 1


def test_two_admins_deactivating_each_other_at_once_leave_one_active_admin(
        app: Flask, make_user: Callable[..., StaffUser]) -> None:
    first, second = make_user("admin-a", Role.ADMIN), make_user("admin-b", Role.ADMIN)
    pairs = [(second, first), (first, second)]  # (whom, by whom)

    for _ in range(10):  # the moment has to fall between one's count and the other's commit
        def deactivate(i: int) -> str:
            whom, by = pairs[i]
            with db(app) as s:
                try:
                    staff.deactivate_user(s, user_id=whom.id or 0, actor_id=by.id)
                except Conflict as exc:
                    return exc.en
                return "deactivated"

        outcomes = all_at_once(deactivate, 2)
        with db(app) as s:
            active = s.exec(select(StaffUser).where(col(StaffUser.active).is_(True))).all()
            assert len(active) == 1, outcomes
            assert sorted(outcomes) == ["The last active administrator cannot be deactivated.", "deactivated"]
            for user in s.exec(select(StaffUser)):
                user.active = True
                s.add(user)
            s.commit()


def test_ten_admins_creating_the_same_username_at_once_create_it_once(
        app: Flask, make_user: Callable[..., StaffUser]) -> None:
    make_user("root", Role.ADMIN)
    browsers = _browsers(app, "root", 10)

    def create(i: int) -> tuple[int, str]:
        response = browsers[i].post("/admin/staff", headers=EN, data={
            "username": "nurse.wang", "display_name": f"王护士{i}", "role": "nurse", "password": "a-long-password"})
        return response.status_code, response.text

    results = all_at_once(create, 10)
    assert Counter(status for status, _ in results) == {302: 1, 409: 9}
    assert all("This username is already taken." in text for status, text in results if status == 409)
    with db(app) as s:
        assert len(s.exec(select(StaffUser).where(StaffUser.username == "nurse.wang")).all()) == 1


def test_ten_admins_entering_a_new_weeks_baseline_at_once_leave_one_row(
        app: Flask, make_user: Callable[..., StaffUser]) -> None:
    make_user("root", Role.ADMIN)
    browsers = _browsers(app, "root", 10)

    def enter(i: int) -> int:
        response = browsers[i].post("/admin/baselines", headers=EN, data={
            "week": "2025-W47", "outpatient": str(1000 + i), "emergency": "300", "other": "80"})
        return response.status_code

    assert Counter(all_at_once(enter, 10)) == {302: 10}  # each saves; the last one's figures stay
    with db(app) as s:
        rows = s.exec(select(WeeklyBaseline)).all()
        assert len(rows) == 1 and 1000 <= rows[0].outpatient <= 1009


def test_twenty_pre_screens_from_one_phone_at_once_open_at_most_eight_bookings(app: Flask) -> None:
    day = open_day(app).isoformat()

    def submit(i: int) -> tuple[int, Any]:
        response = app.test_client().post("/api/v1/prescreenings", headers=EN,
                               json=api_body(name=f"家人{i}", phone="13800138000", preferred_day=day))
        return response.status_code, response.json

    results = all_at_once(submit, 20)
    assert Counter(status for status, _ in results) == {201: MAX_LIVE_PER_PHONE, 422: 20 - MAX_LIVE_PER_PHONE}
    assert all(body["errors"][0]["field"] == "phone" for status, body in results if status == 422)
    with db(app) as s:
        live = s.exec(select(Encounter).where(col(Encounter.state).in_(LIVE_BOOKING_STATES))).all()
        assert len(live) == MAX_LIVE_PER_PHONE

