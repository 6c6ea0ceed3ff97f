"""A supervisor's day in a real browser, in Chinese and English: the live dashboard and its charts (Chart.js
under the strict CSP), the workflow diagram (Mermaid under the same CSP), the audit trail, and a risk-level
change previewed, then confirmed. Screenshots go to tests/e2e/screenshots/ for people to look at.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlmodel import col, select

from tests.e2e.conftest import SCREENSHOTS
from tests.onsite_support import db
from tests.supervisor_support import case
from triage.bulk import generate_encounters
from triage.domain.policy import Stream
from triage.hospital import base_policy
from triage.models import Origin, Role, Slot, StaffUser, utcnow
from triage.services import create_user, ensure_slots

LANGS = [("zh-CN", "zh"), ("en", "en")]
TEXT = {
    "zh": {"dashboard": "监管总览", "over": "超时", "preview": "预览影响", "high": "高风险", "confirm": "确认调整",
           "exceed": "超出新容量", "changed": "政策已调整", "history": "病例记录", "workflow": "候诊中"},
    "en": {"dashboard": "Supervisor dashboard", "over": "Over target", "preview": "Preview the effect",
           "high": "High risk", "confirm": "Confirm the change", "exceed": "exceed the new capacity",
           "changed": "The policy is changed", "history": "Case history", "workflow": "Waiting"},
}


@pytest.fixture
def busy_day(live_app: Flask) -> None:
    """A month of generated history ending now, a patient far over target, and bookings to cut."""
    with db(live_app) as s:
        nurse = create_user(s, username="night-nurse", password="correct-horse-battery", role=Role.NURSE,
                            display_name="夜班护士")
        policy = base_policy()
        generate_encounters(s, policy, 3000, seed=11, days=30, history_days=3, staff_ids=[nurse.id or 0])
        queued = utcnow() - timedelta(minutes=95)
        case(s, state="waiting", stream="general", name="欧阳明华", queued_at=queued, triaged_at=queued,
             ticket="G-990", ticket_day=policy.local(queued).date(), ticket_no=990,
             visit_day=policy.local(queued).date().isoformat())
        day = policy.local(utcnow()).date() + timedelta(days=1)
        while not policy.streams[Stream.GENERAL].hours.is_open_on(day):
            day += timedelta(days=1)
        ensure_slots(s, policy, Stream.GENERAL, day)
        slot = s.exec(select(Slot).where(Slot.stream == "general", Slot.day == day)
                      .order_by(col(Slot.starts_at))).first()
        assert slot is not None
        for i, name in enumerate(["陈一", "林二", "黄三", "周四"]):
            case(s, state="booked", provisional="general", origin=Origin.ONLINE, visit_day=day.isoformat(),
                 created=f"2026-11-01 08:0{i}", name=name, slot_id=slot.id, slot_starts_at=slot.starts_at,
                 patient_phone=f"1390000000{i}")
        slot.booked = 4
        s.add(slot)
        s.commit()


def _errors(page: Any) -> list[str]:
    found: list[str] = []
    page.on("console", lambda m: found.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: found.append(str(e)))
    return found


@pytest.mark.parametrize(("locale", "lang"), LANGS)
def test_dashboard_charts_and_workflow(
    live_server: str, busy_day: None, page_factory: Callable[..., Any], staff_login: Callable[[Any, Role], None],
    shoot: Callable[[Any, str], Path], locale: str, lang: str,
) -> None:
    page = page_factory(width=1366, height=900, lang=locale)
    errors = _errors(page)
    staff_login(page, Role.SUPERVISOR)
    page.goto(f"{live_server}/supervisor/")
    assert page.locator("h1").inner_text() == TEXT[lang]["dashboard"]
    assert "G-990" in page.locator(".sup-over").inner_text()
    page.wait_for_function("window.Chart && Object.keys(window.Chart.instances).length === 4")
    page.wait_for_timeout(500)  # the charts' short animation
    shoot(page, f"supervisor-dashboard-{lang}")
    page.locator("#chart-arrivals").screenshot(path=str(SCREENSHOTS / f"supervisor-chart-arrivals-{lang}.png"))
    page.locator(".chart-card").nth(3).screenshot(path=str(SCREENSHOTS / f"supervisor-chart-acuity-{lang}.png"))
    # The live region refreshes itself (htmx) without a reload.
    with page.expect_response(lambda r: "/supervisor/live" in r.url, timeout=15_000):
        pass
    assert errors == []

    page.goto(f"{live_server}/supervisor/workflow")
    page.wait_for_selector("#workflow-diagram svg#workflow-svg", timeout=20_000)
    assert TEXT[lang]["workflow"] in (page.locator("#workflow-diagram svg").text_content() or "")
    box = page.locator("#workflow-diagram svg").bounding_box()
    assert box is not None and box["height"] > 300
    shoot(page, f"supervisor-workflow-{lang}")


@pytest.mark.parametrize(("locale", "lang"), LANGS)
def test_wall_screen_and_phone(
    live_server: str, busy_day: None, page_factory: Callable[..., Any], staff_login: Callable[[Any, Role], None],
    shoot: Callable[[Any, str], Path], locale: str, lang: str,
) -> None:
    wall = page_factory(width=1920, height=1080, lang=locale)
    staff_login(wall, Role.SUPERVISOR)
    wall.goto(f"{live_server}/supervisor/?wall=1")
    shoot(wall, f"supervisor-wall-{lang}")
    phone = page_factory(width=360, height=780, lang=locale, mobile=True)
    staff_login(phone, Role.SUPERVISOR)
    phone.goto(f"{live_server}/supervisor/")
    assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    shoot(phone, f"supervisor-dashboard-phone-{lang}")


@pytest.mark.parametrize(("locale", "lang"), LANGS)
def test_audit_view(
    live_app: Flask, live_server: str, busy_day: None, page_factory: Callable[..., Any],
    staff_login: Callable[[Any, Role], None], shoot: Callable[[Any, str], Path], locale: str, lang: str,
) -> None:
    page = page_factory(width=1366, height=900, lang=locale)
    staff_login(page, Role.SUPERVISOR)
    with db(live_app) as s:
        nurse_id = s.exec(select(StaffUser).where(StaffUser.username == "night-nurse")).one().id
    page.goto(f"{live_server}/supervisor/audit")
    page.select_option("#staff", str(nurse_id))
    with page.expect_navigation():
        page.get_by_role("button", name="筛选" if lang == "zh" else "Filter", exact=True).click()
    assert page.locator(".audit-log tbody tr").count() > 0
    assert "夜班护士" in page.locator(".audit-log").inner_text()
    shoot(page, f"supervisor-audit-log-{lang}")
    with page.expect_navigation():
        page.locator(".audit-log tbody tr a.mono").first.click()
    assert TEXT[lang]["history"] in page.locator("h1").inner_text()
    shoot(page, f"supervisor-audit-case-{lang}")


@pytest.mark.parametrize(("locale", "lang"), LANGS)
def test_risk_level_change_preview_then_confirm(
    live_server: str, busy_day: None, page_factory: Callable[..., Any], staff_login: Callable[[Any, Role], None],
    shoot: Callable[[Any, str], Path], locale: str, lang: str,
) -> None:
    page = page_factory(width=1366, height=900, lang=locale)
    staff_login(page, Role.SUPERVISOR)
    page.goto(f"{live_server}/supervisor/policy")
    page.get_by_label(TEXT[lang]["high"]).check()
    page.fill("#capacity_general", "2")
    page.fill("#reason", "市疫情防控指挥部通知：本区调整为高风险" if lang == "zh" else "The district is now high risk")
    shoot(page, f"supervisor-policy-form-{lang}")
    with page.expect_navigation():
        page.get_by_role("button", name=TEXT[lang]["preview"]).click()
    effect = page.locator(".effect").inner_text()
    assert TEXT[lang]["exceed"] in effect
    assert "黄三" in effect and "周四" in effect and "陈一" not in effect  # the earliest bookings keep their places
    shoot(page, f"supervisor-policy-preview-{lang}")
    with page.expect_navigation():
        page.get_by_role("button", name=TEXT[lang]["confirm"]).click()
    assert TEXT[lang]["changed"] in page.locator(".flash").inner_text()
    shoot(page, f"supervisor-policy-confirmed-{lang}")
