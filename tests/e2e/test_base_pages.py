"""The first pages in a real browser: start page and staff login, in Chinese and English, phone and desk."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PASSWORD
from triage.models import Role


@pytest.mark.parametrize(("lang", "heading"), [("zh-CN", "员工登录"), ("en", "Staff login")])
def test_login_page_on_a_phone(
    live_server: str, page_factory: Callable[..., Any], shoot: Callable[[Any, str], Path], lang: str, heading: str
) -> None:
    page = page_factory(width=390, height=844, lang=lang, mobile=True)
    page.goto(f"{live_server}/login")
    assert page.locator("h1").inner_text() == heading
    # No horizontal scrolling on a small phone.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    shoot(page, f"login-phone-{lang}")


def test_staff_log_in_with_the_keyboard_and_switch_language(
    live_server: str, page_factory: Callable[..., Any], staff_login: Callable[[Any, Role], None],
    shoot: Callable[[Any, str], Path],
) -> None:
    page = page_factory(lang="zh-CN")
    staff_login(page, Role.NURSE)
    page.get_by_role("button", name="退出登录").wait_for(state="visible")
    shoot(page, "home-nurse-zh")
    page.get_by_role("link", name="English").click()
    page.get_by_role("button", name="Log out").wait_for(state="visible")
    shoot(page, "home-nurse-en")


def test_wrong_password_keeps_the_username(live_server: str, page_factory: Callable[..., Any]) -> None:
    page = page_factory(lang="en")
    page.goto(f"{live_server}/login")
    page.fill("input[name=username]", "someone")
    page.fill("input[name=password]", PASSWORD + "x")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.locator(".error").inner_text() == "Wrong username or password, or the account is deactivated."
    assert page.input_value("input[name=username]") == "someone"
