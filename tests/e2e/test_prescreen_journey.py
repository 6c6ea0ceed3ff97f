"""The patient's journey on a phone, in Chinese and in English: questionnaire, result, pass, changes.

Screenshots go to tests/e2e/screenshots/prescreen-<lang>-NN-<step>.png; look at them after a change.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from tests.conftest import PASSWORD
from tests.web.prescreen_support import api_body, change_policy, open_day
from triage.models import Role
from triage.services import create_user

PHONE = {"width": 390, "height": 844, "mobile": True}

TEXT = {
    "zh-CN": {
        "start": "开始线上预检", "send": "提交并获取就诊时间", "name": "张三明", "child": "张小明",
        "female": "女", "male": "男", "none": "以上都没有", "cough": "咳嗽", "headache": "头痛",
        "chest_pain": "胸痛或胸口压榨感", "pass": "出示我的通行证", "another": "改约其他时间",
        "book": "预约这个时间", "family": "为另一位家人预检", "cancel": "取消预约", "yes_cancel": "是，取消预约",
        "cancelled": "此预约已取消。", "stop": "请立即去急诊", "fever": "发热门诊", "general": "普通门诊",
        "errors": "请修改下面标出的内容。", "find": "查询", "lookup": "查询我的预约", "back": "返回我的预约",
        "consent": "我同意医院使用以上信息安排本次就诊。", "saved": "预检已提交",
    },
    "en": {
        "start": "Start the pre-screen", "send": "Send and get my time", "name": "Zhang Sanming",
        "child": "Zhang Xiaoming", "female": "Female", "male": "Male", "none": "None of these", "cough": "Cough",
        "headache": "Headache", "chest_pain": "Chest pain or pressure", "pass": "Show my pass",
        "another": "Choose another time", "book": "Book this time", "family": "Add another family member",
        "cancel": "Cancel my visit", "yes_cancel": "Yes, cancel", "cancelled": "This visit is cancelled.",
        "stop": "Go to the emergency department now", "fever": "Fever clinic", "general": "General outpatient",
        "errors": "Please correct the fields marked below.", "find": "Find", "lookup": "Find my visit",
        "back": "Back to my visit", "consent": "I agree that the hospital uses these answers to arrange this visit.",
        "saved": "Your pre-screen is saved",
    },
}


WIDER = """(limit) => Array.from(document.querySelectorAll('body *'))
  .filter(el => el.getBoundingClientRect().right > limit + 1)
  .map(el => el.tagName + '.' + el.className).slice(0, 10)"""


def _fits(page: Any) -> None:
    """No horizontal scrolling on a small phone (a mobile browser would zoom out to the widest element)."""
    page.wait_for_load_state("load")
    width = page.viewport_size["width"]
    assert page.evaluate("document.documentElement.scrollWidth") <= width + 1, page.evaluate(WIDER, width)


def _tick(page: Any, label: str) -> None:
    box = page.get_by_label(label, exact=True)
    if not box.is_visible():  # inside a closed "more" section: open it, as a patient would
        box.locator("xpath=ancestor::details[1]/summary").click()
    box.check()


def _fill_patient(page: Any, t: dict[str, str], *, name: str, age: str, symptom: str, day: str,
                  female: bool = False) -> None:
    page.fill("input[name=name]", name)
    page.fill("input[name=age_years]", age)
    _tick(page, t["female"] if female else t["male"])
    _tick(page, symptom)
    _tick(page, t["none"])
    page.select_option("select[name=preferred_day]", value=day)
    _tick(page, t["consent"])


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_a_patient_pre_screens_books_shows_the_pass_moves_adds_family_and_cancels(
    live_server: str, live_app: Flask, page_factory: Callable[..., Any], shoot: Callable[[Any, str], Path],
    lang: str,
) -> None:
    t = TEXT[lang]
    day = open_day(live_app).isoformat()
    shot = lambda page, name: shoot(page, f"prescreen-{lang}-{name}")  # noqa: E731
    page = page_factory(lang=lang, **PHONE)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)

    page.goto(live_server + "/")
    _fits(page)
    shot(page, "01-start")
    page.get_by_role("link", name=t["start"]).click()
    page.wait_for_url(re.compile(r"/prescreen/"))
    _fits(page)
    shot(page, "02-form")

    # Sent empty: every message beside its field, nothing lost.
    page.get_by_role("button", name=t["send"]).click()
    assert page.locator(".flash-error").first.inner_text().startswith(t["errors"])
    assert page.locator(".error").count() >= 5
    _fits(page)
    shot(page, "03-errors")

    # A fever patient: cough, tomorrow.
    symptom = t["cough"] if lang == "zh-CN" else t["headache"]
    page.fill("input[name=phone]", "138 0013 8000")
    _fill_patient(page, t, name=t["name"], age="67", symptom=symptom, day=day)
    page.get_by_role("button", name=t["send"]).click()
    assert t["saved"] in page.locator(".flash-success").inner_text()
    stream = t["fever"] if lang == "zh-CN" else t["general"]
    assert page.locator(".pt-result .stream").inner_text() == stream
    _fits(page)
    shot(page, "04-result")

    # The pass: big code, stream name, QR code served by the app.
    page.get_by_role("link", name=t["pass"]).click()
    code = page.locator(".pass-code").inner_text()
    assert len(code) == 9 and code[4] == "-"
    assert page.locator(".pass-band").inner_text() == stream
    # The QR image loads after the page: wait until it has (a broken image would never get a width).
    page.wait_for_function("() => { const qr = document.querySelector('.pass-qr');"
                           " return qr !== null && qr.complete && qr.naturalWidth > 0; }", timeout=15_000)
    page.get_by_role("button", name="打印" if lang == "zh-CN" else "Print").wait_for(state="visible")  # JS added it
    _fits(page)
    shot(page, "05-pass")
    page.emulate_media(media="print")
    shot(page, "06-pass-print")
    page.emulate_media(media="screen")

    # Choose another time on another day.
    page.get_by_role("link", name=t["back"]).click()
    old_time = page.locator(".pt-when").inner_text()
    page.get_by_role("link", name=t["another"]).click()
    page.locator(".pt-days a").nth(1).click()
    _fits(page)
    shot(page, "07-move")
    page.locator(".pt-slot").nth(2).click()
    page.get_by_role("button", name=t["book"]).click()
    assert page.locator(".pt-when").inner_text() != old_time

    # A second family member from the same phone.
    page.get_by_role("link", name=t["family"]).click()
    assert page.input_value("input[name=phone]") == "13800138000"
    _fill_patient(page, t, name=t["child"], age="6", symptom=symptom, day=day, female=True)
    page.get_by_role("button", name=t["send"]).click()
    assert page.locator(".pt-members li").count() == 2
    _fits(page)
    shot(page, "08-family")

    # Someone else's browser finds the visit with code and phone.
    other = page_factory(lang=lang, **PHONE)
    other.goto(live_server + "/prescreen/lookup")
    other.fill("input[name=reference]", code.lower())
    other.fill("input[name=phone]", "+86 138 0013 8000")
    shot(other, "09-lookup")
    other.get_by_role("button", name=t["find"], exact=True).click()
    assert other.locator(".pt-code-inline").first.inner_text() == code

    # ... and cancels it.
    other.get_by_role("link", name=t["cancel"]).click()
    _fits(other)
    shot(other, "10-cancel-confirm")
    other.get_by_role("button", name=t["yes_cancel"]).click()
    assert t["cancelled"] in other.locator("main").inner_text()
    shot(other, "11-cancelled")
    assert problems == [], problems  # no CSP violation, no script error


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_a_danger_sign_stops_the_questionnaire_at_once(
    live_server: str, page_factory: Callable[..., Any], shoot: Callable[[Any, str], Path], lang: str
) -> None:
    t = TEXT[lang]
    page = page_factory(lang=lang, **PHONE)
    page.goto(live_server + "/prescreen/")
    _tick(page, t["chest_pain"])
    stop = page.locator("#stop-now")
    stop.wait_for(state="visible")  # shown before anything is sent
    shoot(page, f"prescreen-{lang}-12-danger-ticked")
    page.get_by_role("button", name=t["send"]).click()  # the rest left empty on purpose
    assert page.locator("h1").inner_text() == t["stop"]
    call = page.get_by_role("link", name="拨打 120" if lang == "zh-CN" else "Call 120")
    assert call.get_attribute("href") == "tel:120"
    _fits(page)
    shoot(page, f"prescreen-{lang}-13-emergency")


def test_the_questionnaire_works_without_javascript(
    live_server: str, live_app: Flask, browser: Any, shoot: Callable[[Any, str], Path]
) -> None:
    context = browser.new_context(viewport={"width": 360, "height": 740}, locale="zh-CN", java_script_enabled=False,
                                  extra_http_headers={"Accept-Language": "zh-CN"}, is_mobile=True, has_touch=True)
    try:
        page = context.new_page()
        page.goto(live_server + "/prescreen/")
        t = TEXT["zh-CN"]
        page.fill("input[name=phone]", "13900139000")
        _fill_patient(page, t, name="李四", age="45", symptom=t["headache"], day=open_day(live_app).isoformat())
        page.get_by_role("button", name=t["send"]).click()
        assert page.locator(".pt-result .stream").inner_text() == t["general"]
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        shoot(page, "prescreen-zh-CN-14-no-js-result")
    finally:
        context.close()


def test_staff_see_and_work_the_contact_list(
    live_server: str, live_app: Flask, page_factory: Callable[..., Any], staff_login: Callable[[Any, Role], None],
    shoot: Callable[[Any, str], Path],
) -> None:
    day = open_day(live_app)
    api = live_app.test_client()
    for i in range(3):
        body = api_body(name=f"病人{i}", phone=f"139{i:08d}", preferred_day=day.isoformat(),
                        slot=f"{day.isoformat()}T09:00:00+08:00")
        assert api.post("/api/v1/prescreenings", json=body).status_code == 201
    with live_app.app_context():
        s = live_app.extensions["triage.db"].session()
        supervisor = create_user(s, username="chief-e2e", password=PASSWORD, role=Role.SUPERVISOR)
        s.close()
    change_policy(live_app, supervisor, capacities={"general": 1})
    page = page_factory(lang="zh-CN")
    staff_login(page, Role.NURSE)
    page.get_by_role("link", name="患者联系").click()
    assert page.locator("table.contacts tbody tr").count() == 2
    shoot(page, "prescreen-staff-zh-CN-01-contacts")
    page.get_by_role("link", name="联系", exact=True).first.click()
    page.get_by_label("无人接听").check()
    page.get_by_role("button", name="保存联系记录").click()
    assert "联系记录已保存" in page.locator(".flash-success").inner_text()
    # The booked day (a whole day of slots, whatever the time now; the first day listed may be today's evening).
    page.locator(f'.pt-days a[href*="day={day.isoformat()}"]').click()
    page.locator(".pt-slot:not(.pt-slot-mine)").nth(3).click()
    page.get_by_role("button", name="改约并通知患者").click()
    assert "已改约" in page.locator(".flash-success").inner_text()
    shoot(page, "prescreen-staff-zh-CN-02-case")
    phone = page_factory(lang="en", **PHONE)
    staff_login(phone, Role.NURSE)
    phone.goto(live_server + "/staff/contacts/")
    _fits(phone)
    shoot(phone, "prescreen-staff-en-03-contacts-phone")
