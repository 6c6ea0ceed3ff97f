"""Who may use which route: every route of the app × every role, as one table.

Roles: anonymous; the patient (this browser opened the visit's secret status link, and sends its token to
the API); another patient (holds the link of a different visit); nurse, supervisor and admin (logged in,
and a bearer token of their own for the JSON API); a revoked token (an admin's) and an unknown token.

Each route is listed once with who may use it; the expected answer of every role follows from that:
the view's own answer for a role that may (200, a 302 after an action, a 422 for an empty form, a 409 when
the case's state refuses the action), the login page for a staff page asked anonymously, 401 on the staff
API without a valid token, 403 for a staff role that may not, 404 (not 403) for a patient page of a visit
this browser has not opened, so that a code alone proves nothing. A role that may not changes nothing:
its request writes no row. Every request acts on real objects made for it (a booked visit, a case waiting
in a queue, a staff account...), so "allowed" reaches the view and would act.

The table must name every route of `app.url_map`: a new route fails `test_every_route_is_in_the_table`
until it is classified here. Every POST route of `app.url_map` is then checked for CSRF: without the form's
token, 400 and no row written; with it, the view answers. The JSON API takes no CSRF token: a browser's
cookie opens nothing there (401), and what a cross-site form can send (not JSON) is refused.
"""

from __future__ import annotations

import itertools
import re
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, event, text
from sqlmodel import SQLModel, select
from werkzeug.test import TestResponse

from tests.conftest import PASSWORD, make_app
from tests.onsite_support import db, open_app, prescreened, staff_actor, ticketed
from tests.web.prescreen_support import api_body, open_day
from triage.domain.policy import Stream
from triage.hospital import base_policy, workflow
from triage.models import ApiToken, CallbackRequest, Role, StaffUser
from triage.services import baselines, create_user, issue_token, onsite
from triage.services.staff import revoke_token
from triage.web.board import board_key

pytestmark = pytest.mark.db

ROLES = ("anonymous", "patient", "other_patient", "nurse", "supervisor", "admin", "revoked_token", "unknown_token")
STAFF = ("nurse", "supervisor", "admin")

OK = "the view answers"  # with the route's own status (the `ok` column)
LOGIN = "login page"  # 302 to /login?next=...
LOOKUP = "look-up page"  # 302 to /prescreen/lookup: "look your visit up with its code and phone number"


def _who(default: object, **cells: object) -> dict[str, object]:
    """Every role's answer: `default`, except the roles named."""
    return {role: cells.get(role, default) for role in ROLES}


# Who may use a route: the answer each role gets.
PUBLIC = _who(OK)
PATIENT = _who(404, patient=OK)
VISIT = _who(LOOKUP, patient=OK)
STAFF_PAGE = _who(LOGIN, nurse=OK, supervisor=OK, admin=OK)
SUPERVISOR_PAGE = _who(LOGIN, nurse=403, supervisor=OK, admin=OK)
ADMIN_PAGE = _who(LOGIN, nurse=403, supervisor=403, admin=OK)
STAFF_API = _who(401, nurse=OK, supervisor=OK, admin=OK)
# A pre-screen's status, for whoever proves they hold it (status token, phone number or a staff token); any other
# request, a revoked token's too, gets the answer an unknown code gets.
HOLDER_API = _who(404, patient=OK, nurse=OK, supervisor=OK, admin=OK)


@dataclass(frozen=True)
class Route:
    """One row: a request (placeholders in braces are real objects made for it) and who may send it."""

    method: str
    path: str
    who: Mapping[str, object]
    ok: int | tuple[int, ...]
    body: Mapping[str, Any] | None = None

    def __str__(self) -> str:
        return f"{self.method} {self.path}"

    def expected(self, role: str) -> tuple[object, ...]:
        """The outcomes that are right for `role`."""
        answer = self.who[role]
        if answer is OK:
            return self.ok if isinstance(self.ok, tuple) else (self.ok,)
        return (answer,)


R = Route
ROUTES = [
    # --- everyone: start page, language, health, static files, login, the pre-screen ------------------------------
    R("GET", "/", PUBLIC, 200),
    R("GET", "/healthz", PUBLIC, 200),
    R("GET", "/lang/en?next=/", PUBLIC, 302),
    R("GET", "/static/css/app.css", PUBLIC, 200),
    R("GET", "/login", PUBLIC, (200, 302)),  # staff already logged in go on to the start page
    R("POST", "/login", PUBLIC, (200, 302), {}),  # the empty form comes back with its errors
    R("POST", "/logout", PUBLIC, 302),
    R("GET", "/prescreen/", PUBLIC, 200),
    R("POST", "/prescreen/", PUBLIC, 200, {}),
    R("GET", "/prescreen/emergency", PUBLIC, 200),
    R("GET", "/prescreen/family", PUBLIC, 200),  # lists only the visits this browser opened
    R("GET", "/prescreen/lookup", PUBLIC, 200),
    R("POST", "/prescreen/lookup", PUBLIC, 200, {"reference": "{visit}", "phone": "13900000000"}),
    R("GET", "/prescreen/s/{token}", PUBLIC, 200),  # the secret link is the key: whoever holds it
    R("GET", "/board/fever?key={board_key}", PUBLIC, 200),  # the waiting-room screen: its key is its login
    R("GET", "/board/fever/partial?key={board_key}", PUBLIC, 200),
    R("GET", "/api/v1/openapi.json", PUBLIC, 200),
    R("GET", "/api/v1/vocabulary", PUBLIC, 200),
    R("GET", "/api/v1/slots?stream=general", PUBLIC, 200),
    R("POST", "/api/v1/assessments", PUBLIC, 422, {}),
    R("POST", "/api/v1/prescreenings", PUBLIC, 422, {}),
    # --- the patient's own visit: only the browser that opened its link (or looked it up) --------------------------
    R("GET", "/prescreen/v/{visit}", VISIT, 200),
    R("GET", "/prescreen/v/{visit}/pass", PATIENT, 200),
    R("GET", "/prescreen/v/{visit}/qr.svg", PATIENT, 200),
    R("GET", "/prescreen/v/{visit}/move", PATIENT, 200),
    R("POST", "/prescreen/v/{visit}/move", PATIENT, 422, {"slot": "not-a-slot"}),
    R("GET", "/prescreen/v/{visit}/cancel", PATIENT, 200),
    R("POST", "/prescreen/v/{visit}/cancel", PATIENT, 302),
    R("POST", "/prescreen/v/{visit}/callback", PATIENT, 409),  # booked: no callback needed
    R("POST", "/prescreen/v/{visit}/online", PATIENT, 409),  # not offered for this visit
    R("GET", "/api/v1/prescreenings/{visit}", HOLDER_API, 200),
    # --- every member of staff ----------------------------------------------------------------------------------
    R("GET", "/desk/", STAFF_PAGE, 200),
    R("GET", "/desk/lists", STAFF_PAGE, 200),
    R("POST", "/desk/check-in", STAFF_PAGE, 302, {"code": "{case}"}),
    R("POST", "/desk/walk-ins", STAFF_PAGE, 422, {}),
    R("GET", "/desk/{arrived}/triage", STAFF_PAGE, 200),
    R("POST", "/desk/{arrived}/triage", STAFF_PAGE, 422, {"temperature_c": "hot"}),
    R("POST", "/desk/{arrived}/preview", STAFF_PAGE, 200, {"temperature_c": "38.5"}),
    R("GET", "/desk/{waiting}/ticket", STAFF_PAGE, 200),
    R("GET", "/queues/", STAFF_PAGE, 200),
    R("GET", "/queues/general", STAFF_PAGE, 200),
    R("GET", "/queues/general/partial", STAFF_PAGE, 200),
    R("GET", "/queues/general/{waiting}", STAFF_PAGE, 200),
    R("POST", "/queues/general/{waiting}/call", STAFF_PAGE, 302),
    R("GET", "/board/fever", STAFF_PAGE, 200),  # without its key, a board needs a staff login
    R("GET", "/board/fever/partial", STAFF_PAGE, 200),
    R("GET", "/staff/contacts/", STAFF_PAGE, 200),
    R("GET", "/staff/contacts/{visit}", STAFF_PAGE, 200),
    R("POST", "/staff/contacts/{visit}/attempt", STAFF_PAGE, 422, {}),
    R("POST", "/staff/contacts/{visit}/move", STAFF_PAGE, 422, {}),
    R("POST", "/staff/contacts/{visit}/cancel", STAFF_PAGE, 422, {}),
    R("POST", "/staff/contacts/{visit}/online", STAFF_PAGE, 302),
    R("POST", "/staff/contacts/callbacks/{callback}/done", STAFF_PAGE, 302, {"outcome": "booked by phone"}),
    R("GET", "/api/v1/encounters/{waiting}", STAFF_API, 200),
    R("POST", "/api/v1/encounters/{case}/check-in", STAFF_API, 200),
    R("POST", "/api/v1/encounters/{arrived}/triage", STAFF_API, 422, {"temperature_c": "hot"}),
    R("POST", "/api/v1/walk-ins", STAFF_API, 422, {}),
    R("POST", "/api/v1/encounters/{waiting}/events/call", STAFF_API, 200, {}),
    R("GET", "/api/v1/queues/general", STAFF_API, 200),
    # --- supervisors and administrators -------------------------------------------------------------------------
    R("GET", "/board/", SUPERVISOR_PAGE, 200),
    R("GET", "/supervisor/", SUPERVISOR_PAGE, 200),
    R("GET", "/supervisor/live", SUPERVISOR_PAGE, 200),
    R("GET", "/supervisor/charts.json", SUPERVISOR_PAGE, 200),
    R("GET", "/supervisor/workflow", SUPERVISOR_PAGE, 200),
    R("GET", "/supervisor/quality", SUPERVISOR_PAGE, 200),
    R("GET", "/supervisor/policy", SUPERVISOR_PAGE, 200),
    R("POST", "/supervisor/policy", SUPERVISOR_PAGE, 200, {}),  # only shows the form again
    R("POST", "/supervisor/policy/preview", SUPERVISOR_PAGE, 422, {"capacity_general": "-1"}),
    R("POST", "/supervisor/policy/confirm", SUPERVISOR_PAGE, 422, {"capacity_general": "-1"}),
    R("GET", "/supervisor/audit", SUPERVISOR_PAGE, 200),
    R("GET", "/supervisor/audit/case?reference={waiting}", SUPERVISOR_PAGE, 302),
    R("GET", "/supervisor/audit/{waiting}", SUPERVISOR_PAGE, 200),
    R("GET", "/supervisor/reports", SUPERVISOR_PAGE, 200),
    R("GET", "/supervisor/reports/daily", SUPERVISOR_PAGE, 200),
    R("GET", "/supervisor/reports/daily.csv", SUPERVISOR_PAGE, 200),
    R("GET", "/supervisor/reports/weekly", SUPERVISOR_PAGE, 200),
    R("GET", "/supervisor/reports/weekly.csv", SUPERVISOR_PAGE, 200),
    # --- administrators -----------------------------------------------------------------------------------------
    R("GET", "/admin/staff", ADMIN_PAGE, 200),
    R("POST", "/admin/staff", ADMIN_PAGE, 422, {}),
    R("GET", "/admin/staff/{user}", ADMIN_PAGE, 200),
    R("POST", "/admin/staff/{user}/deactivate", ADMIN_PAGE, 302),
    R("POST", "/admin/staff/{user}/reactivate", ADMIN_PAGE, 302),
    R("POST", "/admin/staff/{user}/password", ADMIN_PAGE, 422, {}),
    R("POST", "/admin/staff/{user}/tokens", ADMIN_PAGE, 201, {"label": "ward system"}),
    R("POST", "/admin/staff/{user}/tokens/{user_token}/revoke", ADMIN_PAGE, 302),
    R("GET", "/admin/baselines", ADMIN_PAGE, 200),
    R("POST", "/admin/baselines", ADMIN_PAGE, 422, {}),
    R("POST", "/admin/baselines/{baseline}/delete", ADMIN_PAGE, 302),
]


# --- the world: one app and database for the module, logged-in browsers, tokens -----------------------------------


@dataclass
class World:
    """The app, each role's browser session and headers, and the SQL writes seen during a request."""

    app: Flask
    csrf_app: Flask  # the same database, with CSRF protection on
    day: str  # a day with free general-outpatient slots
    cookies: dict[str, str] = field(default_factory=dict)  # by role, or by status token for a patient
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)  # status tokens of the patients' own visits
    writes: list[str] = field(default_factory=list)
    shared: Targets = field(init=False)

    def __post_init__(self) -> None:
        self.shared = Targets(self)

    def browser(self, role: str, patient_token: str | None = None, app: Flask | None = None) -> FlaskClient:
        """A fresh browser in the role; a patient's has opened their status link."""
        client = (app or self.app).test_client()
        if role in ("patient", "other_patient"):
            token = self.links["other_patient"] if role == "other_patient" else patient_token or self.links["patient"]
            if token not in self.cookies:
                assert client.get(f"/prescreen/s/{token}").status_code == 200
                self.cookies[token] = self._cookie(client)
            client.set_cookie("session", self.cookies[token])
        elif role in self.cookies:
            client.set_cookie("session", self.cookies[role])
        return client

    @staticmethod
    def _cookie(client: FlaskClient) -> str:
        cookie = client.get_cookie("session")
        assert cookie is not None
        return cookie.value


_WRITE = re.compile(r"^\s*(INSERT|UPDATE|DELETE)\b", re.IGNORECASE)


def _fresh_database(folder: Path, pg_url: str | None) -> str:
    """An empty database, as tests/conftest.py's `database_url` makes one, but once for the module."""
    if pg_url:
        engine = create_engine(pg_url)
        tables = ", ".join(t.name for t in SQLModel.metadata.sorted_tables)
        with engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        engine.dispose()
        return pg_url
    url = f"sqlite:///{folder / 'access.db'}"
    engine = create_engine(url)
    SQLModel.metadata.create_all(engine)
    engine.dispose()
    return url


_phones = itertools.count(1)


def _visit(app: Flask, day: str) -> tuple[str, str]:
    """A visit booked through the JSON API, as a patient makes it: (reference, status token)."""
    phone = f"139{next(_phones):08d}"  # one patient per visit (a phone may hold only a few open visits)
    response = app.test_client().post("/api/v1/prescreenings", json=api_body(preferred_day=day, phone=phone))
    assert response.status_code == 201, response.json
    body: dict[str, Any] = response.json  # type: ignore[assignment]
    return body["reference"], body["status_token"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, _pg_schema: str | None) -> Iterator[World]:
    """One database for the whole table (made once: it is the slow part), with the roles' sessions."""
    folder = tmp_path_factory.mktemp("access")
    url = _fresh_database(folder, _pg_schema)
    app = open_app(url, folder)
    w = World(app=app, csrf_app=open_app(url, folder, WTF_CSRF_ENABLED=True), day=open_day(app).isoformat())
    with db(app) as s:
        for role in STAFF:
            user = create_user(s, username=f"matrix-{role}", password=PASSWORD, role=Role(role))
            w.headers[role] = {"Authorization": f"Bearer {issue_token(s, user=user, label='matrix')}"}
        admin = s.exec(select(StaffUser).where(StaffUser.username == "matrix-admin")).one()
        revoked = issue_token(s, user=admin, label="revoked")
        token_id = s.exec(select(ApiToken.id).where(ApiToken.label == "revoked")).one()
        revoke_token(s, user_id=admin.id or 0, token_id=token_id or 0)
    w.headers["revoked_token"] = {"Authorization": f"Bearer {revoked}"}
    w.headers["unknown_token"] = {"Authorization": f"Bearer trg_{secrets.token_urlsafe(32)}"}
    for role in STAFF:
        client = app.test_client()
        assert client.post("/login", data={"username": f"matrix-{role}", "password": PASSWORD}).status_code == 302
        w.cookies[role] = w._cookie(client)
    for role in ("patient", "other_patient"):
        w.links[role] = _visit(app, w.day)[1]
    for database in (app.extensions["triage.db"], w.csrf_app.extensions["triage.db"]):
        for engine in {database.engine, database.read_engine}:
            event.listen(engine, "before_cursor_execute", lambda _c, _cur, statement, *_a:
                         w.writes.append(statement) if _WRITE.match(statement) else None)
    yield w
    for application in (app, w.csrf_app):
        application.extensions["triage.db"].dispose()


_weeks = itertools.count(1)


class Targets(dict[str, str]):
    """The real objects a request names, each made on first use for this request only."""

    def __init__(self, world: World) -> None:
        super().__init__()
        self.world = world
        self.patient_token: str | None = None

    def __missing__(self, name: str) -> str:
        app = self.world.app
        value: object
        if name in ("visit", "token"):
            self["visit"], self.patient_token = _visit(app, self.world.day)
            self["token"] = self.patient_token
            return self[name]
        with db(app) as s:
            if name == "case":  # pre-screened for today, not yet checked in
                value = prescreened(s).reference
            elif name == "arrived":  # a walk-in awaiting triage
                value = onsite.register_walk_in(s, patient=onsite.WalkIn(age_years=30, name="王五"),
                                                policy=base_policy(), workflow=workflow(),
                                                actor=staff_actor(s)).reference
            elif name == "waiting":  # triaged, ticketed, waiting in the general queue
                value = ticketed(s, Stream.GENERAL).reference
            elif name == "callback":
                encounter = prescreened(s)
                request = CallbackRequest(encounter_id=encounter.id, stream="general")
                s.add(request)
                s.commit()
                value = request.id
            elif name in ("user", "user_token"):
                user = StaffUser(username=f"target-{secrets.token_hex(4)}", display_name="target", role="nurse",
                                 password_hash="scrypt:unused")
                s.add(user)
                s.commit()
                issue_token(s, user=user, label="target")
                self["user"] = str(user.id)
                self["user_token"] = str(s.exec(select(ApiToken.id).where(ApiToken.user_id == user.id)).one())
                return self[name]
            elif name == "baseline":
                year, week = divmod(next(_weeks), 52)
                value = baselines.save_baseline(s, week=f"{2000 + year}-W{week + 1:02d}", outpatient="1",
                                                emergency="1", other="1", actor_id=None).id
            elif name == "board_key":
                with app.test_request_context():
                    value = board_key("fever")
            else:
                raise KeyError(name)
        self[name] = str(value)
        return self[name]


def outcome(response: TestResponse) -> object:
    """What a response means for access: the login page, the look-up page, or its status code."""
    if response.status_code == 302:
        target = urlsplit(response.headers["Location"])
        if target.path == "/login" and "next=" in target.query:
            return LOGIN
        if target.path == "/prescreen/lookup":
            return LOOKUP
    return response.status_code


def _csrf_token(client: FlaskClient) -> str:
    """The CSRF token of this browser's session, as a form on a page carries it."""
    found = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', client.get("/prescreen/lookup").text)
    assert found is not None
    return found.group(1)


def send(world: World, route: Route, role: str, *, app: Flask | None = None,
         csrf: bool = False) -> tuple[TestResponse, str]:
    """Send the route's request as `role` (with the form's CSRF token if asked); returns the response and path."""
    # Requests that change nothing (GETs, and refused requests: checked below) share their objects; a request
    # that may act gets objects of its own.
    acts = route.method != "GET" and route.who[role] is OK
    targets = Targets(world) if acts else world.shared
    path = route.path.format_map(targets)
    data = {k: v.format_map(targets) if isinstance(v, str) else v for k, v in (route.body or {}).items()}
    browser = world.browser(role, targets.patient_token, app)
    if csrf:
        data["csrf_token"] = _csrf_token(browser)
    headers = dict(world.headers.get(role, {}))
    if role == "patient":
        headers["X-Status-Token"] = targets.patient_token or world.links[role]
    if role == "other_patient":
        headers["X-Status-Token"] = world.links[role]
    world.writes.clear()
    if path.startswith("/api/"):
        response = browser.open(path, method=route.method, headers=headers,
                                json=data if route.method == "POST" else None)
    else:
        response = browser.open(path, method=route.method, headers=headers, data=data)
    return response, path


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_each_role_gets_only_what_it_may(world: World, route: Route, role: str) -> None:
    response, path = send(world, route, role)
    expected = route.expected(role)
    assert outcome(response) in expected, f"{role} {route.method} {path}: {response.status_code} " \
                                         f"{response.headers.get('Location', '')}, expected {expected}"
    if route.who[role] is not OK:
        assert world.writes == [], f"{role} was refused {route.method} {path} but wrote {world.writes}"


# --- the table covers the app -------------------------------------------------------------------------------------


def _endpoint(app: Flask, route: Route) -> tuple[str, str]:
    """The (endpoint, method) a row's request is routed to."""
    path = re.sub(r"\{\w+\}", "1", route.path).split("?")[0]
    endpoint, _args = app.url_map.bind("localhost").match(path, method=route.method)
    return str(endpoint), route.method


def _classify() -> tuple[list[tuple[str, str]], dict[tuple[str, str], Route]]:
    """Every (endpoint, method) of the app, and the table's first row for each."""
    app = make_app("sqlite://")
    routes = sorted((rule.endpoint, method) for rule in app.url_map.iter_rules()
                    for method in (rule.methods or set()) - {"HEAD", "OPTIONS"})
    rows: dict[tuple[str, str], Route] = {}
    for route in ROUTES:
        rows.setdefault(_endpoint(app, route), route)
    return routes, rows


APP_ROUTES, ROW_OF = _classify()


def test_every_route_is_in_the_table() -> None:
    missing = set(APP_ROUTES) - set(ROW_OF)
    assert not missing, f"classify these routes in ROUTES (who may use them?): {sorted(missing)}"


# --- CSRF on every form ---------------------------------------------------------------------------------------------

POSTS = [endpoint for endpoint, method in APP_ROUTES if method == "POST"]


@pytest.mark.parametrize("endpoint", POSTS)
def test_every_form_needs_its_csrf_token(world: World, endpoint: str) -> None:
    route = ROW_OF.get((endpoint, "POST"))
    assert route is not None, f"{endpoint} is not in ROUTES"
    if route.path.startswith("/api/"):
        # The JSON API takes no CSRF token: a cookie opens nothing there, and a cross-site form cannot send JSON.
        response, path = send(world, route, "admin", app=world.csrf_app)
        assert outcome(response) in route.expected("admin")
        world.writes.clear()
        cookie_only = world.browser("admin", app=world.csrf_app).post(path, data={"reference": "x"})
        assert cookie_only.status_code in (401, 422) and world.writes == []
        return
    role = "patient" if route.who is PATIENT else "admin"  # a role that may use the form
    response, path = send(world, route, role, app=world.csrf_app)
    assert response.status_code == 400, f"POST {path} without a CSRF token: {response.status_code}"
    assert world.writes == [], f"POST {path} without a CSRF token wrote {world.writes}"
    # With its token, the same request reaches the view: the 400 above was for the missing token.
    response, path = send(world, route, role, app=world.csrf_app, csrf=True)
    assert outcome(response) in route.expected(role), f"POST {path} with its CSRF token: {response.status_code}"
