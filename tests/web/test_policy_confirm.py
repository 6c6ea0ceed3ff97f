"""Confirming a policy change that is no longer based on the latest change is a conflict: preview again.

The preview carries the id of the latest change it was made on (`based_on`); confirming checks it again.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import select

from tests.conftest import PASSWORD
from tests.web.prescreen_support import db
from triage.models import PolicyChange, Role, StaffUser

EN = {"Accept-Language": "en"}
FORM = {"region_risk_level": "medium", "capacity_fever": "6", "capacity_general": "1", "capacity_chronic": "10",
        "reason": "市卫健委通知：本区调整为中风险", "based_on": "0"}


def _browser(app: Flask, username: str) -> FlaskClient:
    browser = app.test_client()
    assert browser.post("/login", data={"username": username, "password": PASSWORD}).status_code == 302
    return browser


def test_confirming_a_change_someone_else_has_just_made_is_a_conflict_not_invalid_input(
        app: Flask, make_user: Callable[..., StaffUser]) -> None:
    make_user("chief", Role.SUPERVISOR)
    first, second = _browser(app, "chief"), _browser(app, "chief")
    assert first.post("/supervisor/policy/confirm", data=FORM).status_code == 302
    # The second preview was made before the first was confirmed: the same change, on change 0.
    response = second.post("/supervisor/policy/confirm", data=FORM, headers=EN)
    assert response.status_code == 409
    assert "Someone else changed the policy a moment ago" in response.text
    with db(app) as s:
        assert len(s.exec(select(PolicyChange)).all()) == 1


@pytest.mark.parametrize("based_on", ["9" * 5000, "9" * 19, "-1", "²", ""])
def test_a_preview_id_that_names_no_change_is_a_conflict(
        app: Flask, make_user: Callable[..., StaffUser], based_on: str) -> None:
    make_user("chief", Role.SUPERVISOR)
    response = _browser(app, "chief").post("/supervisor/policy/confirm", data={**FORM, "based_on": based_on},
                                           headers=EN)
    assert response.status_code == 409
    assert "Someone else changed the policy a moment ago" in response.text
    with db(app) as s:
        assert s.exec(select(PolicyChange)).first() is None
