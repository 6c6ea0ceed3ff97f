"""Supervisors' pages: who may see them, what they show, the policy change (preview, then confirm), audit, reports."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import col, select

from tests.conftest import PASSWORD, make_app
from tests.onsite_support import db
from tests.supervisor_support import case, log
from triage.domain.policy import Stream
from triage.hospital import base_policy, forget_cached_policy
from triage.models import Origin, PolicyChange, Role, Slot, StaffUser, utcnow
from triage.services import ensure_slots

EN = {"Accept-Language": "en"}
PAGES = [
    "/supervisor/", "/supervisor/?wall=1", "/supervisor/live", "/supervisor/charts.json", "/supervisor/workflow",
    "/supervisor/quality", "/supervisor/policy", "/supervisor/audit", "/supervisor/reports",
    "/supervisor/reports/daily?day=2026-11-22", "/supervisor/reports/daily.csv?day=2026-11-22",
    "/supervisor/reports/weekly?week=2026-W47", "/supervisor/reports/weekly.csv?week=2026-W47",
    "/supervisor/reports/weekly?week=2026-W47&print=1",
]


@pytest.mark.parametrize("path", PAGES)
def test_anonymous_visitors_are_sent_to_the_login(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


@pytest.mark.parametrize("path", [*PAGES, "/supervisor/audit/ABCD1234"])
def test_nurses_may_not_see_supervision(login: Callable[[Role], FlaskClient], path: str) -> None:
    assert login(Role.NURSE).get(path).status_code == 403


@pytest.mark.parametrize("role", [Role.SUPERVISOR, Role.ADMIN])
@pytest.mark.parametrize("path", PAGES)
def test_supervisors_and_admins_see_every_page(login: Callable[[Role], FlaskClient], role: Role, path: str) -> None:
    response = login(role).get(path, headers=EN)
    assert response.status_code == 200, response.text[:500]


@pytest.mark.parametrize("path", ["/supervisor/policy/preview", "/supervisor/policy/confirm"])
def test_nurses_may_not_change_the_policy(login: Callable[[Role], FlaskClient], path: str) -> None:
    assert login(Role.NURSE).post(path, data={"region_risk_level": "high"}).status_code == 403


def test_supervision_is_in_the_navigation_of_supervisors_only(login: Callable[[Role], FlaskClient]) -> None:
    supervisor = login(Role.SUPERVISOR).get("/", headers=EN).text
    assert "/supervisor/" in supervisor and "/admin/staff" not in supervisor
    assert "/admin/staff" in login(Role.ADMIN).get("/", headers=EN).text
    nurse = login(Role.NURSE).get("/", headers=EN).text
    assert "/supervisor/" not in nurse


def test_dashboard_shows_who_is_over_target(app: Flask, login: Callable[[Role], FlaskClient]) -> None:
    queued = utcnow() - timedelta(minutes=50)
    with db(app) as session:
        case(session, state="waiting", stream="fever", visit_day=None, name="王小明", isolation=True,
             queued_at=queued, triaged_at=queued, ticket="F-901", ticket_day=queued.date(), ticket_no=901)
        session.commit()
    page = login(Role.SUPERVISOR).get("/supervisor/", headers=EN).text
    assert "F-901" in page and "王*明" in page and "王小明" not in page  # masked on a screen many can see
    assert 'hx-get="/supervisor/live' in page
    assert "chart.umd.min.js" in page and "mermaid" not in page  # Mermaid loads on its own page only
    live = login(Role.ADMIN).get("/supervisor/live", headers=EN).text
    assert "Over target" in live and "F-901" in live


def test_a_long_line_over_target_lists_the_most_overdue_and_counts_the_rest(
    app: Flask, login: Callable[[Role], FlaskClient]
) -> None:
    with db(app) as session:
        for i in range(40):
            queued = utcnow() - timedelta(minutes=70 + i)
            case(session, state="waiting", stream="fever", visit_day=None, isolation=True, queued_at=queued,
                 triaged_at=queued, ticket=f"F-{900 + i}", ticket_day=queued.date(), ticket_no=900 + i)
        session.commit()
    live = login(Role.SUPERVISOR).get("/supervisor/live", headers=EN).text
    assert live.count('<tr class="overdue">') == 25 and "F-939" in live  # the most overdue first
    assert "15 more over target or due soon" in live and "15 more: the queues show every patient." in live
    assert ">40</span>" in live  # the badges count every one


def test_chart_data_is_json_for_today(login: Callable[[Role], FlaskClient]) -> None:
    response = login(Role.SUPERVISOR).get("/supervisor/charts.json", headers=EN)
    body = response.get_json()
    assert response.headers["Cache-Control"] == "no-store"
    assert len(body["hours"]) == 24 and len(body["booked"]) == 24
    assert [s["key"] for s in body["arrivals"]] == ["fever", "emergency", "general", "chronic", "untriaged"]
    assert [g["key"] for g in body["wait_groups"]][:2] == ["emergency-1", "emergency-2"]
    assert body["wait_groups"][1]["target"] == 10


def test_workflow_page_carries_the_mermaid_text(login: Callable[[Role], FlaskClient]) -> None:
    page = login(Role.SUPERVISOR).get("/supervisor/workflow").text
    assert "stateDiagram-v2" in page and "候诊中 (0)" in page
    assert "vendor/mermaid/mermaid.min.js" in page
    assert "<script>" not in page and "style=" not in page  # CSP: no inline script or style


def test_quality_page_validates_the_period(login: Callable[[Role], FlaskClient]) -> None:
    response = login(Role.SUPERVISOR).get("/supervisor/quality?first=2026-11-22&last=2026-11-01", headers=EN)
    assert response.status_code == 422
    assert "The last day cannot be before the first day." in response.text
    assert 'value="2026-11-22"' in response.text  # what was typed stays


# --- policy change ------------------------------------------------------------------------------------------


def _open_day(policy_stream: Stream = Stream.GENERAL) -> tuple[object, object]:
    policy = base_policy()
    today = policy.local(utcnow()).date()
    day = today + timedelta(days=1)
    while not policy.streams[policy_stream].hours.is_open_on(day):
        day += timedelta(days=1)
    return policy, day


@pytest.fixture
def bookings(app: Flask) -> list[str]:
    """Three patients booked into the first general slot of the next open day; their names."""
    names = ["甲一", "乙二", "丙三"]
    with db(app) as session:
        policy, day = _open_day()
        ensure_slots(session, policy, Stream.GENERAL, day)  # type: ignore[arg-type]
        slot = session.exec(select(Slot).where(Slot.stream == "general", Slot.day == day)
                            .order_by(col(Slot.starts_at))).first()
        assert slot is not None
        for i, name in enumerate(names):
            case(session, state="booked", provisional="general", origin=Origin.ONLINE,
                 visit_day=day.isoformat(), created=f"2026-11-01 08:0{i}", name=name,  # type: ignore[attr-defined]
                 slot_id=slot.id, slot_starts_at=slot.starts_at, patient_phone=f"1380000000{i}")
        slot.booked = 3
        session.add(slot)
        session.commit()
    return names


FORM = {"region_risk_level": "medium", "capacity_fever": "6", "capacity_general": "1", "capacity_chronic": "10",
        "reason": "市卫健委通知：本区调整为中风险"}


def test_preview_lists_the_booked_patients_beyond_the_new_capacity(
        app: Flask, bookings: list[str], login: Callable[[Role], FlaskClient]) -> None:
    supervisor = login(Role.SUPERVISOR)
    response = supervisor.post("/supervisor/policy/preview", data=FORM, headers=EN)
    assert response.status_code == 200
    page = response.text
    assert "Preview: nothing has changed yet" in page
    assert re.search(r"2 booked General outpatient patients on \d{4}-\d\d-\d\d exceed the new capacity", page)
    assert "乙二" in page and "丙三" in page  # the later bookings are listed for contact
    assert "Medium risk" in page
    with db(app) as session:
        assert session.exec(select(PolicyChange)).first() is None  # nothing changed yet


def test_confirm_records_the_change_and_applies_it(
        app: Flask, bookings: list[str], login: Callable[[Role], FlaskClient]) -> None:
    supervisor = login(Role.SUPERVISOR)
    supervisor.post("/supervisor/policy/preview", data=FORM)
    response = supervisor.post("/supervisor/policy/confirm", data={**FORM, "based_on": "0"}, headers=EN)
    assert response.status_code == 302
    page = supervisor.get(response.headers["Location"], headers=EN).text
    with app.app_context():
        version = f"{base_policy().version}+1"
    assert f"The policy is changed (version {version})" in page
    assert "Medium risk" in page and "市卫健委通知" in page and "supervisor-user" in page
    with db(app) as s:
        change = s.exec(select(PolicyChange)).one()
        assert (change.region_risk_level, change.capacities["general"]) == ("medium", 1)
        slots = s.exec(select(Slot).where(Slot.stream == "general")).all()
        assert slots and all(slot.capacity == 1 for slot in slots)  # future slots take the new capacity
        from triage.hospital import effective_policy

        forget_cached_policy()
        assert effective_policy(s).version == version
    contacts = supervisor.get("/contacts/", headers=EN)
    if contacts.status_code == 200:
        assert "丙三" in contacts.text


def test_confirm_after_someone_else_changed_the_policy_is_a_conflict(
        app: Flask, bookings: list[str], login: Callable[[Role], FlaskClient]) -> None:
    supervisor = login(Role.SUPERVISOR)
    assert supervisor.post("/supervisor/policy/confirm", data={**FORM, "based_on": "0"}).status_code == 302
    forget_cached_policy()
    stale = supervisor.post("/supervisor/policy/confirm",
                            data={**FORM, "region_risk_level": "high", "based_on": "0"}, headers=EN)
    assert stale.status_code == 409
    assert "Someone else changed the policy" in stale.text
    assert 'name="based_on" value="1"' in stale.text  # the new preview can be confirmed


@pytest.mark.parametrize(("change", "field", "message"), [
    ({"reason": ""}, "reason", "Say why"),
    ({"capacity_general": "many"}, "capacity_general", "Enter a whole number from 0 to 10000."),
    ({"region_risk_level": "extreme"}, "region_risk_level", "Choose low, medium or high risk."),
    ({"region_risk_level": "low", "capacity_general": "20"}, "region_risk_level", "This is the current policy"),
])
def test_policy_form_errors_are_shown_beside_their_fields(
        login: Callable[[Role], FlaskClient], change: dict[str, str], field: str, message: str) -> None:
    data = {**FORM, **change}
    response = login(Role.SUPERVISOR).post("/supervisor/policy/preview", data=data, headers=EN)
    assert response.status_code == 422
    assert message in response.text
    if field.startswith("capacity") and change.get(field):
        assert f'value="{change[field]}"' in response.text  # what was typed stays


def test_policy_change_with_csrf_on(database_url: str) -> None:
    app = make_app(database_url, WTF_CSRF_ENABLED=True)
    with app.app_context():
        from triage.services import create_user

        s = app.extensions["triage.db"].session()
        create_user(s, username="chief", password=PASSWORD, role=Role.SUPERVISOR)
        s.close()
    client = app.test_client()
    login_page = client.get("/login").text
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', login_page) or re.search(
        r'name="csrf_token" value="([^"]+)"', login_page)
    assert token is not None
    client.post("/login", data={"username": "chief", "password": PASSWORD, "csrf_token": token.group(1)})
    assert client.post("/supervisor/policy/preview", data=FORM).status_code == 400  # no token: refused
    page = client.get("/supervisor/policy").text
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert token is not None
    preview = client.post("/supervisor/policy/preview", data={**FORM, "csrf_token": token.group(1)}, headers=EN)
    assert preview.status_code == 200
    confirm_token = re.search(r'name="csrf_token" value="([^"]+)"', preview.text)
    assert confirm_token is not None
    done = client.post("/supervisor/policy/confirm",
                       data={**FORM, "based_on": "0", "csrf_token": confirm_token.group(1)})
    assert done.status_code == 302
    app.extensions["triage.db"].dispose()


# --- audit ---------------------------------------------------------------------------------------------------


@pytest.fixture
def history(app: Flask) -> tuple[str, int]:
    """A case with its transitions by a nurse, and another expired by the system; (reference, nurse id)."""
    with db(app) as session:
        nurse = StaffUser(username="auditnurse", display_name="审计护士", role="nurse", password_hash="x")
        session.add(nurse)
        session.flush()
        encounter = case(session, state="waiting", stream="fever", visit_day="2026-11-22",
                         arrived="2026-11-22 09:00", queued="2026-11-22 09:05")
        log(session, encounter, at="2026-11-22 09:00", trigger="create", src=None, dest="arrived", actor_id=nurse.id)
        log(session, encounter, at="2026-11-22 09:05", trigger="triage", src="arrived", dest="triaged",
            actor_id=nurse.id, stream="fever")
        log(session, encounter, at="2026-11-22 09:05", trigger="enqueue", src="triaged", dest="waiting",
            actor_id=nurse.id, stream="fever")
        other = case(session, state="no_show", provisional="general", visit_day="2026-11-21",
                     created="2026-11-20 08:00")
        log(session, other, at="2026-11-22 00:01", trigger="expire", src="booked", dest="no_show", stream="general")
        session.commit()
        return encounter.reference, nurse.id or 0


def test_audit_log_filters_by_staff_stream_and_day(
        history: tuple[str, int], login: Callable[[Role], FlaskClient]) -> None:
    supervisor = login(Role.SUPERVISOR)
    nurse_id = history[1]
    page = supervisor.get(f"/supervisor/audit?staff={nurse_id}", headers=EN).text
    assert page.count("审计护士") >= 3 and "Expire" not in page
    by_stream = supervisor.get("/supervisor/audit?stream=general", headers=EN).text
    assert "Expire (did not come)" in by_stream and "审计护士</td>" not in by_stream
    other_day = supervisor.get("/supervisor/audit?day=2026-11-21", headers=EN).text
    assert "No log entry matches." in other_day
    same_day = supervisor.get("/supervisor/audit?day=2026-11-22", headers=EN).text
    assert "2026-11-22 09:05:00" in same_day  # local time
    bad = supervisor.get("/supervisor/audit?day=yesterday&stream=x", headers=EN)
    assert bad.status_code == 422 and "Choose a stream." in bad.text
    assert "Enter a date between 1900 and 2999, like 2026-11-22." in bad.text


def test_audit_log_pages_by_older_entries(history: tuple[str, int], login: Callable[[Role], FlaskClient],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from triage.services import audit

    monkeypatch.setattr(audit, "PAGE_SIZE", 2)
    supervisor = login(Role.SUPERVISOR)
    first = supervisor.get("/supervisor/audit", headers=EN).text
    older = re.search(r'href="(/supervisor/audit\?before=\d+[^"]*)"', first)
    assert older is not None
    second = supervisor.get(older.group(1).replace("&amp;", "&"), headers=EN).text
    assert "Older entries" not in second  # 4 rows, 2 per page: the second page is the last
    assert "2026-11-22 09:00:00" in second and "2026-11-22 09:00:00" not in first


def test_case_history_shows_every_transition(history: tuple[str, int],
                                             login: Callable[[Role], FlaskClient]) -> None:
    reference = history[0]
    supervisor = login(Role.SUPERVISOR)
    lookup = supervisor.get(f"/supervisor/audit/case?reference={reference.lower()}")
    assert lookup.status_code == 302 and lookup.headers["Location"].endswith(f"/supervisor/audit/{reference}")
    page = supervisor.get(f"/supervisor/audit/{reference}", headers=EN).text
    assert "Case history" in page and page.count("审计护士") == 3
    assert "Arrived, awaiting triage → Triaged" in page
    missing = supervisor.get("/supervisor/audit/ZZZZ9999", headers=EN)
    assert missing.status_code == 404


# --- reports --------------------------------------------------------------------------------------------------


def test_report_csv_is_a_download_with_a_bom(login: Callable[[Role], FlaskClient]) -> None:
    response = login(Role.SUPERVISOR).get("/supervisor/reports/weekly.csv?week=2026-W47")
    assert response.mimetype == "text/csv"
    assert 'filename="weekly-report-2026-W47.csv"' in response.headers["Content-Disposition"]
    assert response.data.startswith("\ufeff".encode())
    assert "恢复比例" in response.data.decode()


def test_printable_report_has_no_navigation(login: Callable[[Role], FlaskClient]) -> None:
    supervisor = login(Role.SUPERVISOR)
    page = supervisor.get("/supervisor/reports/daily?day=2026-11-22&print=1", headers=EN).text
    assert 'class="topbar"' not in page and "data-print" in page and "js/print.js" in page
    normal = supervisor.get("/supervisor/reports/daily?day=2026-11-22", headers=EN).text
    assert 'class="topbar"' in normal and "Printable page" in normal


@pytest.mark.parametrize(("path", "message"), [
    ("/supervisor/reports/weekly?week=2026-W99", "Enter an ISO week between 1900 and 2999, like 2026-W47."),
    ("/supervisor/reports/daily?day=22.11.2026", "Enter a date between 1900 and 2999, like 2026-11-22."),
    ("/supervisor/reports/weekly.csv?week=nope", "Enter an ISO week between 1900 and 2999, like 2026-W47."),
])
def test_report_parameters_errors_are_shown_beside_their_field(
        login: Callable[[Role], FlaskClient], path: str, message: str) -> None:
    response = login(Role.SUPERVISOR).get(path, headers=EN)
    assert response.status_code == 422 and message in response.text
