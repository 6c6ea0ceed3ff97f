"""On-site triage in Chromium: scan, triage, queue, call, board, complete; re-triage; the one-Enter rule.

Screenshots are saved under tests/e2e/screenshots/onsite-*.png for people to look at.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from tests.onsite_support import db, open_app, prescreened
from triage.models import Role
from triage.services import format_reference

Shoot = Callable[[Any, str], Path]


@pytest.fixture
def live_app(database_url: str, tmp_path: Path) -> Flask:
    """The live server's app: CSRF on, clinics that never close (routing independent of the clock)."""
    return open_app(database_url, tmp_path, WTF_CSRF_ENABLED=True)


def _case(app: Flask, **kwargs: Any) -> str:
    with db(app) as s:
        return prescreened(s, **kwargs).reference


def _board_url(app: Flask, base: str, area: str, lang: str) -> str:
    from triage.web.board import board_key

    with app.app_context():
        return f"{base}/board/{area}?key={board_key(area)}&lang={lang}"


class Keys:
    """Counts the Enter presses a nurse makes."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.enters = 0

    def type(self, text: str) -> None:
        self.page.keyboard.type(text)

    def tab(self) -> None:
        self.page.keyboard.press("Tab")

    def enter(self) -> None:
        self.enters += 1
        self.page.keyboard.press("Enter")


def test_a_pre_screened_patient_takes_one_scan_the_measurements_and_one_enter(
        live_app: Flask, live_server: str, page_factory: Callable[..., Any],
        staff_login: Callable[[Any, Role], None], shoot: Shoot) -> None:
    reference = _case(live_app, name="张三明", age=46, symptoms=["headache"])
    cancelled = _case(live_app, name="赵六", state="cancelled")
    page = page_factory(lang="zh-CN", width=1366, height=900)
    staff_login(page, Role.NURSE)
    page.goto(f"{live_server}/desk/")
    shoot(page, "onsite-desk-zh")

    # A pass that cannot check in: the reason beside the field, and the next scan simply replaces it.
    page.keyboard.type(cancelled)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "此预检已取消" in page.locator("#code-error").inner_text()
    shoot(page, "onsite-desk-refused-zh")
    keys = Keys(page)

    # The scan: the USB scanner types the code into the focused field and presses Enter.
    assert page.evaluate("document.activeElement.name") == "code"
    with page.expect_navigation():
        keys.type(reference)
        keys.enter()
    assert page.url.endswith(f"/desk/{reference}/triage")
    assert page.evaluate("document.activeElement.name") == "temperature_c"
    page.locator(".online-answers").wait_for(state="visible")  # the online answers, at once

    # The measurements, Tab between fields...
    for value in ("36.8", "82", "16", "124", "98"):
        keys.type(value)
        keys.tab()
    page.keyboard.press("Shift+Tab")  # back into SpO2 to show the form as the nurse sees it
    page.wait_for_selector("#recommendation .stream-general")  # the live recommendation caught up
    shoot(page, "onsite-triage-filled-zh")

    # ...and one Enter confirms the recommendation and issues the ticket.
    with page.expect_navigation():
        keys.enter()
    assert keys.enters == 2  # one for the scan, one to confirm
    assert page.url.endswith(f"/desk/{reference}/ticket")
    assert page.locator(".ticket-number").inner_text() == "G-001"
    assert page.evaluate("document.activeElement.textContent").strip().startswith("下一位患者")
    shoot(page, "onsite-ticket-general-zh")

    # Enter again: back at the desk, the scan field focused for the next patient.
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url.endswith("/desk/") and page.evaluate("document.activeElement.name") == "code"


def test_check_in_override_queue_call_board_complete(
        live_app: Flask, live_server: str, page_factory: Callable[..., Any],
        staff_login: Callable[[Any, Role], None], shoot: Shoot) -> None:
    reference = _case(live_app, name="John Smith", age=58, sex="M", symptoms=["headache"])
    page = page_factory(lang="en", width=1366, height=900)
    staff_login(page, Role.NURSE)
    page.goto(f"{live_server}/desk/")

    # A typed code with its dash, in lower case.
    page.fill("#code", format_reference(reference).lower())
    with page.expect_navigation():
        page.keyboard.press("Enter")
    for field, value in (("temperature_c", "36.9"), ("heart_rate", "104"), ("respiratory_rate", "20"),
                         ("sbp", "150"), ("spo2", "96"), ("pain_nrs", "5")):
        page.fill(f"#{field}", value)
    page.wait_for_selector("#recommendation .level-3")
    # Override with the keyboard: Alt+O jumps to the stream.
    page.keyboard.press("Alt+o")
    assert page.evaluate("document.activeElement.name") == "override_stream"
    page.select_option("#override_stream", "emergency")
    page.select_option("#override_level", "2")
    page.fill("#override_reason", "")
    with page.expect_navigation():
        page.keyboard.press("Enter")  # no reason: refused, nothing lost
    page.locator("#override_reason-error").wait_for(state="visible")
    assert page.input_value("#heart_rate") == "104"
    shoot(page, "onsite-triage-override-missing-reason-en")
    page.fill("#override_reason", "Crushing chest pain on questioning")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.locator(".ticket-number").inner_text() == "E-001"
    assert "Crushing chest pain on questioning" in page.locator(".ticket-decision").inner_text()
    shoot(page, "onsite-ticket-override-en")

    # The waiting-room board, opened with its key on a screen nobody is logged in to.
    board = page_factory(lang="en", width=1920, height=1080)
    board.goto(_board_url(live_app, live_server, "emergency", "en"))
    assert "E-001" in board.locator(".board-next").inner_text()
    assert "J*** S." in board.locator(".board-next").inner_text()
    assert "John Smith" not in board.content()

    # The clinic calls the patient...
    page.goto(f"{live_server}/queues/emergency")
    row = page.locator(f"#row-{reference}")
    assert "Level 2" in row.inner_text() and "target 10 min" in row.inner_text()
    shoot(page, "onsite-queue-emergency-en")
    with page.expect_navigation():
        row.get_by_role("button", name="Call").click()
    assert page.locator(".flash-success").inner_text() == "E-001: Call."

    # ...and the board shows it without anyone touching it.
    board.wait_for_selector(".board-called .called-ticket:has-text('E-001')", timeout=10_000)
    shoot(board, "onsite-board-emergency-called-en")

    row = page.locator(f"#row-{reference}")
    row.get_by_role("button", name="Call again").wait_for(state="visible")
    with page.expect_navigation():
        row.get_by_role("button", name="Start consultation").click()
    row = page.locator(f"#row-{reference}")
    row.get_by_role("button", name="Complete").wait_for(state="visible")
    assert row.get_by_role("button", name="Call").count() == 0  # only what the workflow allows now
    with page.expect_navigation():
        row.get_by_role("button", name="Complete").click()
    assert page.locator(f"#row-{reference}").count() == 0
    shoot(page, "onsite-queue-after-complete-en")
    board.wait_for_selector(".board-called .board-empty", timeout=10_000)


def test_a_walk_in_re_triaged_from_general_to_fever(
        live_app: Flask, live_server: str, page_factory: Callable[..., Any],
        staff_login: Callable[[Any, Role], None], shoot: Shoot) -> None:
    page = page_factory(lang="zh-CN", width=1366, height=900)
    staff_login(page, Role.NURSE)
    page.goto(f"{live_server}/desk/")
    page.keyboard.press("Alt+w")
    assert page.evaluate("document.activeElement.name") == "name"
    page.keyboard.type("李四光")
    page.fill("#age_years", "35")
    page.check("input[name=sex][value=M]")
    with page.expect_navigation():
        page.get_by_role("button", name="登记并分诊").click()
    for field, value in (("temperature_c", "36.7"), ("heart_rate", "76"), ("respiratory_rate", "16"),
                         ("sbp", "118"), ("spo2", "99")):
        page.fill(f"#{field}", value)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.locator(".ticket-number").inner_text() == "G-001"

    # In the general clinic the patient turns out febrile: re-triage with the reason.
    page.goto(f"{live_server}/queues/general")
    row = page.locator("tr:has-text('G-001')")
    with page.expect_navigation():
        row.get_by_role("link", name="更多操作").click()
    page.get_by_label("重新分诊原因").fill("候诊时测体温 38.6 °C")
    shoot(page, "onsite-queue-retriage-zh")
    with page.expect_navigation():
        page.get_by_role("button", name="重新分诊").click()
    assert re.search(r"/desk/\w+/triage$", page.url)
    assert "重新分诊，原号码 G-001" in page.locator(".triage-head").inner_text()
    page.fill("#temperature_c", "38.6")
    page.fill("#heart_rate", "96")
    page.wait_for_selector("#recommendation .stream-fever")
    shoot(page, "onsite-retriage-form-zh")
    page.locator("#heart_rate").focus()
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.locator(".ticket-number").inner_text() == "F-001"
    assert "发热门诊专用通道" in page.locator(".escort").inner_text()
    shoot(page, "onsite-ticket-fever-escort-zh")

    board = page_factory(lang="zh-CN", width=1920, height=1080)
    board.goto(_board_url(live_app, live_server, "fever", "zh"))
    assert "F-001" in board.locator(".board-next").inner_text() and "李*光" in board.content()
    shoot(board, "onsite-board-fever-zh")
    outpatient = page_factory(lang="zh-CN", width=1920, height=1080)
    outpatient.goto(_board_url(live_app, live_server, "outpatient", "zh"))
    assert "G-001" not in outpatient.content()


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_the_desk_and_the_queue_on_a_small_screen(live_app: Flask, live_server: str,
                                                  page_factory: Callable[..., Any],
                                                  staff_login: Callable[[Any, Role], None], shoot: Shoot,
                                                  lang: str) -> None:
    reference = _case(live_app, name="王五", symptoms=["cough"], epi={"contact_case_14d": True})
    page = page_factory(lang=lang, width=360, height=800, mobile=True)
    staff_login(page, Role.SUPERVISOR)
    page.goto(f"{live_server}/desk/")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    shoot(page, f"onsite-desk-360-{lang}")
    page.fill("#code", reference)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    shoot(page, f"onsite-triage-360-{lang}")
    page.fill("#temperature_c", "37.0")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.locator(".ticket-number").inner_text() == "F-001"
    page.goto(f"{live_server}/queues/fever")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    shoot(page, f"onsite-queue-360-{lang}")
