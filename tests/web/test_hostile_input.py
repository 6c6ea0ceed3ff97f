"""Hostile input on every write route: never a 500, always a clear message, nothing half-written.

Hypothesis sends each POST route of the app what a careless client, a broken integration or an attacker
would: wrong types, missing, repeated and extra fields, huge strings, emoji, right-to-left marks, NUL
bytes, lone surrogates (in JSON, the one place they can be written), digits int() cannot read ("²"),
negative and absurd numbers, bodies that are not JSON or are JSON arrays or null, wrong content types,
hostile query strings (a `next` that leaves the site), and hostile values in the address itself
(references, ids, streams, actions). The routes come from `app.url_map`: one missing from ROUTES fails
`test_every_write_route_is_fuzzed`, so a new endpoint must be added here. The answers must be:

- never a 5xx;
- from the JSON API, a 4xx is JSON {message, errors: [{field, message}]} with a message;
- from an HTML form, a 4xx page shows a message (beside a field, a flash, or the error page), a redirect
  stays on the site and lands on a page that works, and anything else is a page with something on it;
- nothing half-written: unless the route answered a redirect (Post/Redirect/Get: it was done) or, from
  the API, a 2xx, every row of every table is as it was before.

A body over MAX_CONTENT_LENGTH is refused with 413 by every write route, and a field just under the limit
is answered like any other bad input.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlmodel import SQLModel
from werkzeug.test import TestResponse

from tests.conftest import PASSWORD
from tests.onsite_support import (
    always_open_app,  # noqa: F401 - the `app` fixture of this module
    db,
    prescreened,
    staff_actor,
    ticketed,
)
from tests.web.prescreen_support import api_body, open_day
from triage.domain.policy import Stream
from triage.domain.vocabulary import CONDITIONS, EXPOSURES, NEEDS, SYMPTOMS
from triage.hospital import base_policy, effective_policy, workflow
from triage.models import ApiToken, CallbackRequest, Role, StaffUser, utcnow
from triage.services import baselines, create_user, issue_token, onsite

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH"})
EXAMPLES = 25  # per route; about 40 routes
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large, HealthCheck.large_base_example])

# --- hostile values -----------------------------------------------------------------------------------------------

NASTY = [
    "", " ", "\t\r\n", "\x00", "a\x00b", "²", "¹²³", "٣", "１２", "-1", "-0", "0", "00000000000000000001",
    "99999999999999999999999999", "-99999999999999999999", "1e308", "1e309", "-1e309", "NaN", "nan", "inf",
    "-Infinity", "0x1F", "1_000", "3.", ".5", "1,5", "37，5", "true", "null", "[]", "{}", "undefined",
    "\u202eevil\u202c", "مرحبا بالعالم", "שלום", "\ufeff", "\u200b", "😀", "👩‍👩‍👧‍👦", "🏳️‍🌈" * 30,
    "Z̷̡̛a̶͎̓l̸̰̋g̴̝̿o̵̧͗", "<script>alert(1)</script>", "\"><img src=x onerror=alert(1)>", "' OR 1=1 --",
    "{{7*7}}", "%(name)s", "%s%n", "../../etc/passwd", "%00", "2026-02-30", "2026-13-01", "0000-00-00",
    "9999-12-31", "2026-W99", "2026-W00", "K7P2-M9QX", "K7P2M9QX", "k7p2 m9qx", "+86 138 0013 8000",
    "A" * 65, "字" * 101, "x" * 257, "1" * 33, "emergency", "fever", "general", "chronic", "admin",
]


def texts() -> st.SearchStrategy[str]:
    """Text a form field or a JSON string may carry."""
    return st.one_of(
        st.sampled_from(NASTY),
        st.text(max_size=30),  # any code point but lone surrogates: emoji, RTL, combining marks, controls
        st.integers(min_value=-(10**30), max_value=10**30).map(str),
        st.floats().map(str),
        st.builds(lambda ch, n: ch * n, st.characters(exclude_categories=("Cs",)),  # forms cannot carry surrogates
                  st.integers(min_value=100, max_value=20_000)),
    )


def json_values() -> st.SearchStrategy[Any]:
    """Any JSON value, hostile ones included (NaN, lone surrogates, NUL, huge and negative numbers)."""
    scalars = st.one_of(
        st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), st.floats(), texts(),
        st.sampled_from(["\ud800", "a\udfffb", "x\x00y"]))
    return st.recursive(scalars, lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=12), inner, max_size=3)), max_leaves=6)


TEXTS = texts()
JSON_VALUES = json_values()


def one(*values: Any) -> st.SearchStrategy[Any]:
    """A plausible value."""
    return st.sampled_from(values)


def some(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A field's value: plausible or hostile (in a form, sometimes repeated)."""
    return st.one_of(strategy, strategy, TEXTS)


def json_object(fields: Mapping[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """A JSON object with any of the fields (plausible or hostile values) and sometimes unknown ones."""
    known = st.fixed_dictionaries({}, optional={k: st.one_of(v, v, JSON_VALUES) for k, v in fields.items()})
    extra = st.dictionaries(st.text(max_size=12), JSON_VALUES, max_size=2)
    return st.tuples(known, st.one_of(st.just({}), extra)).map(lambda pair: {**pair[1], **pair[0]})


SYMPTOM_CODES = [s.code for s in SYMPTOMS]
EXPOSURE_CODES = [e.code for e in EXPOSURES]
CONDITION_CODES = [c.code for c in CONDITIONS]
NEED_CODES = [n.code for n in NEEDS]

ASSESSMENT: dict[str, st.SearchStrategy[Any]] = {
    "stage": one("online", "onsite"), "age_years": one(40, 0, 0.5, 120, 121, -1), "age_days": one(3, 20, 400),
    "sex": one("F", "M"), "pregnancy_weeks": one(32, 0, 50), "temperature_c": one(36.6, 38.4, 42.5, 20),
    "heart_rate": one(80, 130, 0, 400), "respiratory_rate": one(16, 30), "sbp": one(120, 85, 300),
    "spo2": one(98, 88, 101), "on_oxygen": one(True, False), "avpu": one("A", "C", "V", "P", "U"),
    "gcs": one(15, 8, 2), "pain_nrs": one(3, 10, 11), "glucose_mmol_l": one(5.5, 1.9),
    "potassium_mmol_l": one(4.0, 6.8), "anc_x10e9_l": one(0.4, 3.0),
    "symptoms": st.lists(st.sampled_from(SYMPTOM_CODES), max_size=3),
    "epi": st.fixed_dictionaries({code: st.booleans() for code in EXPOSURE_CODES}),
    "chronic_conditions": st.lists(st.sampled_from(CONDITION_CODES), max_size=2),
    "needs": st.lists(st.sampled_from(NEED_CODES), max_size=2), "requested_prescription_weeks": one(4, 12, 52),
    "arrival_mode": one("online", "walk_in", "ambulance", "carried"), "id": one("p-1", 7),
    "context": st.fixed_dictionaries({}, optional={
        "at": one("2026-11-23T09:00:00+08:00", "2026-11-23T23:00:00"), "outpatient_open": st.booleans(),
        "region_risk_level": one("low", "medium", "high")}),
}
OVERRIDE = {"stream": one("fever", "emergency", "general", "chronic", "dentistry"), "cn_level": one(1, 2, 3, 4, 5),
            "reason": one("re-measured", "")}
FACILITIES = one("cmty-east", "cmty-west", "infect-hosp", "online_followup")

TRIAGE_FORM = {
    "version": one("1", "2", "3"), "temperature_c": one("36.6", "38.4", "41"), "heart_rate": one("80", "130"),
    "respiratory_rate": one("16", "30"), "sbp": one("120", "85"), "spo2": one("98", "88"), "on_oxygen": one("y"),
    "avpu": one("A", "V", "U"), "gcs": one("15", "8"), "pain_nrs": one("3", "10"),
    "epi": st.sampled_from(EXPOSURE_CODES), "screen_symptoms": one("fever", "cough"),
    "other_symptoms": st.sampled_from(SYMPTOM_CODES), "age_years": one("40", "0", "90"), "age_days": one("20"),
    "sex": one("F", "M"), "pregnancy_weeks": one("32"), "arrival_mode": one("walk_in", "ambulance", "online"),
    "chronic_conditions": st.sampled_from(CONDITION_CODES), "needs": st.sampled_from(NEED_CODES),
    "override_stream": one("emergency", "general", ""), "override_level": one("1", "3", ""),
    "override_reason": one("re-measured"), "action": one("preview", "confirm"),
}
PRESCREEN_FORM = {
    "family": one("", "K7P2M9QX"), "name": one("张三明", "Ann"), "phone": one("138 0013 8000", "13800138000"),
    "age_years": one("40", "0", "80"), "age_days": one("20"), "sex": one("F", "M"), "pregnant": one("y"),
    "pregnancy_weeks": one("32"), "temperature_c": one("36.8", "39"), "danger": one("chest_pain", "seizure"),
    "common": one("fever", "cough"), "other": one("headache", "back_pain"),
    "epi": st.sampled_from([*EXPOSURE_CODES, "none"]), "conditions": st.sampled_from(CONDITION_CODES),
    "needs": st.sampled_from(NEED_CODES), "visit_reason": one("dermatology"), "consent": one("y"),
    "preferred_day": st.dates().map(str),
}
POLICY_FORM = {
    "region_risk_level": one("low", "medium", "high"), "capacity_fever": one("6", "0", "10000", "10001"),
    "capacity_emergency": one("3"), "capacity_general": one("2", "8"), "capacity_chronic": one("4"),
    "reason": one("the city raised the district to medium risk", "why"), "based_on": one("0", "1"),
}


# --- the routes ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """One write route: who sends it, its address (placeholders in braces), the fields it reads."""

    endpoint: str
    path: str
    who: str  # "anonymous", "patient" (holds a visit), "nurse", "supervisor", "admin", "bearer" (nurse's token)
    fields: Mapping[str, st.SearchStrategy[Any]] = field(default_factory=dict)
    api: bool = False

    def __str__(self) -> str:
        return self.endpoint


ROUTES = [
    Route("auth.login", "/login", "anonymous", {"username": one("nurse-user", "admin-user"),
                                                 "password": one(PASSWORD, "wrong")}),
    Route("auth.logout", "/logout", "nurse"),
    # patients
    Route("prescreen.start", "/prescreen/", "patient", PRESCREEN_FORM),
    Route("prescreen.lookup", "/prescreen/lookup", "anonymous",
          {"reference": one("K7P2-M9QX"), "phone": one("13800138000")}),
    Route("prescreen.move", "/prescreen/v/{visit}/move", "patient", {"slot": st.datetimes().map(str)}),
    Route("prescreen.cancel", "/prescreen/v/{visit}/cancel", "patient"),
    Route("prescreen.callback", "/prescreen/v/{visit}/callback", "patient"),
    Route("prescreen.online_followup", "/prescreen/v/{visit}/online", "patient"),
    # the desk, the queues, the contacts
    Route("desk.check_in", "/desk/check-in", "nurse", {"code": one("K7P2-M9QX")}),
    Route("desk.walk_in", "/desk/walk-ins", "nurse", {
        "name": one("王五"), "age_years": one("72", "0.5"), "sex": one("F", "M"),
        "arrival_mode": one("walk_in", "ambulance", "carried", "helicopter"), "phone": one("13900139000")}),
    Route("desk.triage_form", "/desk/{arrived}/triage", "nurse", TRIAGE_FORM),
    Route("desk.preview", "/desk/{arrived}/preview", "nurse", TRIAGE_FORM),
    Route("queues.act", "/queues/{stream}/{waiting}/{queue_trigger}", "nurse", {
        "version": one("1", "2", "3", "4"), "reason": one("worse pain"), "referral_target": FACILITIES}),
    Route("contacts.contact_attempt", "/staff/contacts/{visit}/attempt", "nurse", {
        "channel": one("phone", "sms"), "outcome": one("reached", "no_answer"), "note": one("called twice")}),
    Route("contacts.contact_move", "/staff/contacts/{visit}/move", "nurse",
          {"slot": st.datetimes().map(str), "channel": one("phone")}),
    Route("contacts.contact_cancel", "/staff/contacts/{visit}/cancel", "nurse", {"reason": one("moved away")}),
    Route("contacts.contact_online", "/staff/contacts/{visit}/online", "nurse"),
    Route("contacts.callback_done", "/staff/contacts/callbacks/{callback_id}/done", "nurse",
          {"outcome": one("booked for Monday"), "reference": one("K7P2M9QX")}),
    # supervisors and administrators
    Route("supervisor.policy", "/supervisor/policy", "supervisor", POLICY_FORM),
    Route("supervisor.policy_preview", "/supervisor/policy/preview", "supervisor", POLICY_FORM),
    Route("supervisor.policy_confirm", "/supervisor/policy/confirm", "supervisor", POLICY_FORM),
    Route("admin.create_user", "/admin/staff", "admin", {
        "username": one("new-nurse", "nurse-user"), "display_name": one("Nurse Li"),
        "role": one("nurse", "supervisor", "admin", "root"), "password": one("a-long-enough-password", "x")}),
    Route("admin.deactivate", "/admin/staff/{user_id}/deactivate", "admin"),
    Route("admin.reactivate", "/admin/staff/{user_id}/reactivate", "admin"),
    Route("admin.reset_password", "/admin/staff/{user_id}/password", "admin",
          {"password": one("another-long-password", "short")}),
    Route("admin.issue_token", "/admin/staff/{user_id}/tokens", "admin", {"label": one("lab system")}),
    Route("admin.revoke_token", "/admin/staff/{user_id}/tokens/{token_id}/revoke", "admin"),
    Route("admin.baseline_save", "/admin/baselines", "admin", {
        "week": one("2025-W47", "2025-W53"), "outpatient": one("1200", "1,200"), "emergency": one("300"),
        "other": one("50")}),
    Route("admin.baseline_delete", "/admin/baselines/{baseline_id}/delete", "admin"),
    # the JSON API
    Route("api.assessments", "/api/v1/assessments", "anonymous", ASSESSMENT, api=True),
    Route("api.create_prescreening", "/api/v1/prescreenings", "anonymous", {
        "name": one("张三明"), "phone": one("13800138000"), "preferred_day": st.dates().map(str),
        "visit_reason": one("dermatology"), "consent": one(True, False), "slot": st.datetimes().map(str),
        "accept_online_followup": st.booleans(), "assessment": json_object(ASSESSMENT),
        "family_of": json_object({"reference": one("K7P2M9QX"), "status_token": one("abc")})}, api=True),
    Route("api.api_check_in", "/api/v1/encounters/{prescreened}/check-in", "bearer", api=True),
    Route("api.api_triage", "/api/v1/encounters/{arrived}/triage", "bearer",
          {**ASSESSMENT, "override": json_object(OVERRIDE), "version": one(1, 2, 3)}, api=True),
    Route("api.api_walk_in", "/api/v1/walk-ins", "bearer", {
        "patient": json_object({"name": one("王五"), "phone": one("13900139000"), "age_years": one(72, "72", 0),
                                "sex": one("F", "M"), "arrival_mode": one("walk_in", "ambulance"),
                                "visit_reason": one("fall")}),
        "assessment": json_object(ASSESSMENT), "override": json_object(OVERRIDE)}, api=True),
    Route("api.api_event", "/api/v1/encounters/{waiting}/events/{trigger}", "bearer",
          {"reason": one("worse pain"), "referral_target": FACILITIES, "version": one(1, 2, 3)}, api=True),
]
BY_ENDPOINT = {r.endpoint: r for r in ROUTES}


def write_endpoints(app: Flask) -> set[str]:
    """Every endpoint of the app that accepts POST, PUT or PATCH."""
    return {rule.endpoint for rule in app.url_map.iter_rules() if WRITE_METHODS & (rule.methods or set())}


# --- the world each route is fuzzed in ----------------------------------------------------------------------------


class World:
    """A hospital with a case in every state the routes act on, and a client for each kind of sender.

    Built lazily: a route's test creates only what its address and sender need.
    """

    def __init__(self, app: Flask, login: Callable[[Role], FlaskClient]) -> None:
        self.app = app
        self._login = login
        self._clients: dict[str, FlaskClient] = {}

    def ready(self, route: Route) -> None:
        """Create the route's sender before anything is compared."""
        self.client(route.who)
        if route.who == "bearer":
            assert self.bearer

    def client(self, who: str) -> FlaskClient:
        """The client that sends as `who`."""
        if who not in self._clients:
            if who in ("anonymous", "bearer"):
                self._clients[who] = self.app.test_client()
            elif who == "patient":
                patient = self.app.test_client()
                for token in self._visit_tokens:  # opening the status link lets this browser change the visit
                    assert patient.get(f"/prescreen/s/{token}").status_code == 200
                self._clients[who] = patient
            else:
                self._clients[who] = self._login(Role(who))
        return self._clients[who]

    @cached_property
    def bearer(self) -> dict[str, str]:
        """A nurse's API token."""
        with db(self.app) as s:
            user = create_user(s, username="api-nurse", password=PASSWORD, role=Role.NURSE)
            return {"Authorization": f"Bearer {issue_token(s, user=user, label='fuzz')}"}

    @cached_property
    def _visits(self) -> list[dict[str, Any]]:
        day = open_day(self.app).isoformat()
        booker = self.app.test_client()
        made = []
        for i in range(2):
            response = booker.post("/api/v1/prescreenings", json=api_body(
                name=f"病人{i}", phone=f"1390000000{i}", preferred_day=day))
            assert response.status_code == 201, response.json
            made.append(response.json)
        return made

    @property
    def _visit_tokens(self) -> list[str]:
        return [v["status_token"] for v in self._visits]

    def address(self, route: Route) -> st.SearchStrategy[str]:
        """The route's address with its placeholders filled, mostly with real values."""
        parts = [segment(self.values[name], number=name.endswith("_id")) for name in PLACEHOLDER.findall(route.path)]
        return st.tuples(*parts).map(lambda filled: fill(route.path, filled))

    def real_address(self, route: Route) -> str:
        """The route's address with real values."""
        return fill(route.path, [self.values[name]()[0] for name in PLACEHOLDER.findall(route.path)])

    @cached_property
    def values(self) -> dict[str, Callable[[], list[str]]]:
        """Real values for each placeholder of an address, made on first use."""
        return {
            "visit": lambda: [v["reference"] for v in self._visits],
            "prescreened": self._cases("prescreened"), "arrived": self._cases("arrived"),
            "waiting": self._cases("waiting"), "stream": lambda: [s.value for s in Stream],
            "queue_trigger": lambda: list(onsite.QUEUE_TRIGGERS),
            "trigger": lambda: sorted({t.trigger for t in workflow_of(self.app).transitions}),
            "user_id": lambda: [str(self._colleague.id)], "token_id": lambda: [str(self._token_id)],
            "baseline_id": lambda: [str(self._baseline_id)], "callback_id": lambda: [str(self._callback_id)],
        }

    def _cases(self, state: str) -> Callable[[], list[str]]:
        made: list[str] = []

        def make() -> list[str]:
            if not made:
                with db(self.app) as s:
                    for i in range(2):
                        if state == "waiting":
                            made.append(ticketed(s, [Stream.GENERAL, Stream.FEVER][i]).reference)
                            continue
                        reference = prescreened(s, name=f"病人{state}{i}").reference
                        if state == "arrived":
                            onsite.check_in(s, code=reference, policy=effective_policy(s), workflow=workflow(),
                                            actor=staff_actor(s))
                        made.append(reference)
            return made

        return make

    @cached_property
    def _colleague(self) -> StaffUser:
        with db(self.app) as s:
            return create_user(s, username="colleague", password=PASSWORD, role=Role.NURSE)

    @cached_property
    def _token_id(self) -> int:
        with db(self.app) as s:
            issue_token(s, user=self._colleague, label="lab")
            row = s.execute(select(ApiToken.id).where(ApiToken.user_id == self._colleague.id)).scalar_one()
            return int(row)

    @cached_property
    def _baseline_id(self) -> int:
        with db(self.app) as s:
            return baselines.save_baseline(s, week="2025-W40", outpatient=1000, emergency=200, other=30,
                                           actor_id=None).id or 0

    @cached_property
    def _callback_id(self) -> int:
        with db(self.app) as s:
            encounter = prescreened(s, name="回电病人", state="callback_requested")
            row = CallbackRequest(encounter_id=encounter.id, stream=Stream.GENERAL.value,
                                  preferred_day=base_policy().local(utcnow()).date() + timedelta(days=1))
            s.add(row)
            s.commit()
            return row.id or 0


def workflow_of(app: Flask) -> Any:
    """The app's case workflow."""
    with app.app_context():
        return workflow()


@pytest.fixture
def world(app: Flask, login: Callable[[Role], FlaskClient]) -> World:
    """The hospital the routes are fuzzed in."""
    return World(app, login)


# --- requests -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    """What one example sends: the body, its content type, and the query string."""

    body: bytes | dict[str, Any]
    content_type: str | None
    query: str = ""


def segment(real: Callable[[], list[str]], *, number: bool) -> st.SearchStrategy[str]:
    """A path segment: mostly a real value (made on first use), sometimes hostile text or an absurd number."""
    made = st.integers(min_value=0, max_value=9).map(lambda i: real()[i % len(real())])
    hostile = TEXTS.filter(bool).map(lambda text: quote(text[:300], safe=""))
    if number:
        hostile = st.one_of(hostile, st.integers(min_value=0, max_value=10**25).map(str))
    return st.one_of(made, made, made, hostile)


QUERIES = st.one_of(st.just(""), st.just(""), st.dictionaries(
    st.sampled_from(["next", "lang", "family", "day", "arrival", "age_days", "x"]),
    st.one_of(TEXTS, one("//evil.example", "https://evil.example/", "/\\evil.example", "javascript:alert(1)", "en")),
    max_size=3).map(lambda query: "?" + urlencode(query) if query else ""))


def form_bodies(route: Route) -> st.SearchStrategy[Sent]:
    """A form: the route's fields (missing, plausible, hostile, repeated) and extra ones; or not a form at all."""
    fields = st.fixed_dictionaries({}, optional={
        name: st.one_of(some(strategy), st.lists(some(strategy), min_size=2, max_size=3))
        for name, strategy in route.fields.items()})
    extra = st.dictionaries(st.text(min_size=1, max_size=20), st.one_of(TEXTS, st.lists(TEXTS, max_size=3)),
                            max_size=2)
    form = st.builds(lambda known, more: {**more, **known}, fields, st.one_of(st.just({}), extra))
    return st.one_of(
        st.builds(Sent, form, one("application/x-www-form-urlencoded", "multipart/form-data"), QUERIES),
        st.builds(Sent, form.map(lambda data: json.dumps(data).encode()), one("application/json", "text/plain")),
        st.builds(Sent, st.one_of(st.binary(max_size=200), one(
            b"name=%ED%A0%80&phone=%FF%FE", b"a=1&a=2&&&=&%%%", b"\x00\x00", b"code=%00")),
            one("application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None)),
    )


def json_bodies(route: Route) -> st.SearchStrategy[Sent]:
    """A JSON body: an object of the route's fields (plausible or hostile) and extra ones, another JSON value,
    or bytes that are not JSON; with the right content type, or a wrong one."""
    as_json = st.one_of(json_object(route.fields), JSON_VALUES).map(lambda value: json.dumps(value).encode())
    raw = st.one_of(st.binary(max_size=200), one(
        b"", b"{", b"not json", b"[" * 5000 + b"]" * 5000, b'{"a":' * 2000 + b"1" + b"}" * 2000,
        b"\xff\xfe{}", b'{"age_years": NaN}', b'{"age_years": 1' + b"0" * 5000 + b"}",
        '{"name": "😀"}'.encode("utf-16"), b'{"name": "\\ud800"}', b'{"name": "a\\u0000b"}', b"null", b"[]"))
    types = one("application/json", "application/json", "application/json", "application/json; charset=utf-8",
                "text/plain", "application/x-www-form-urlencoded", "multipart/form-data", None)
    return st.builds(Sent, st.one_of(as_json, as_json, raw), types)


def fill(path: str, values: Sequence[str]) -> str:
    """The address with its placeholders replaced, in order, by `values`."""
    found = iter(values)
    return PLACEHOLDER.sub(lambda _match: next(found), path)


BODIES = {route.endpoint: json_bodies(route) if route.api else form_bodies(route) for route in ROUTES}
PLACEHOLDER = re.compile(r"\{(\w+)\}")


# --- what every answer must be -----------------------------------------------------------------------------------

ALERT = re.compile(r'<(p|div)\b([^>]*\brole="alert"[^>]*)>(.*?)</\1>', re.S)
FLASH = re.compile(r'<div class="flash flash-(?:error|warning|info)"[^>]*>(.*?)</div>', re.S)
LEAD = re.compile(r'class="card narrow error-page">.*?<p class="lead">(.*?)</p>', re.S)
TAGS = re.compile(r"<[^>]+>")


def visible(html: str) -> str:
    """The text of an HTML fragment without its tags."""
    return TAGS.sub(" ", html).strip()


def shows_a_message(html: str) -> bool:
    """Whether the page tells the user what went wrong: an alert beside a field, a flash, or the error page."""
    alerts = [m.group(3) for m in ALERT.finditer(html) if " hidden" not in m.group(2)]
    return any(visible(text) for text in [*alerts, *FLASH.findall(html), *LEAD.findall(html)])


def snapshot(app: Flask) -> dict[str, list[str]]:
    """Every row of every table (slots only where booked: reads create empty slots as they need them)."""
    rows: dict[str, list[str]] = {}
    with db(app) as s:
        for table in SQLModel.metadata.sorted_tables:
            query = select(table)
            if table.name == "slot":
                query = query.where(table.c.booked > 0)
            rows[table.name] = sorted(repr(tuple(row)) for row in s.execute(query))
    return rows


def check_api_answer(response: TestResponse) -> None:
    """A JSON API answer: JSON; a 4xx carries a message and a list of {field, message}."""
    assert response.status_code < 500, response.text
    assert response.is_json, (response.status_code, response.content_type, response.text[:300])
    body = response.get_json()
    if response.status_code >= 400:
        assert isinstance(body, dict) and isinstance(body.get("message"), str) and body["message"].strip(), body
        errors = body.get("errors")
        assert isinstance(errors, list), body
        for error in errors:
            assert isinstance(error, dict) and isinstance(error.get("field"), str), body
            assert isinstance(error.get("message"), str) and error["message"].strip(), body


def check_page_answer(response: TestResponse, client: FlaskClient) -> None:
    """An HTML answer: a 4xx shows a message; a redirect stays on the site and lands on a working page."""
    status = response.status_code
    assert status < 500, visible(response.text)[:500]
    if 300 <= status < 400:
        location = urlsplit(response.headers["Location"])
        assert location.netloc in ("", "localhost") and location.scheme in ("", "http"), response.headers["Location"]
        landing = client.get(response.headers["Location"])
        assert landing.status_code < 500 and visible(landing.text), landing.status_code
    elif status >= 400:
        assert shows_a_message(response.text), (status, visible(response.text)[:500])
    else:
        assert visible(response.text), status


def send(world: World, route: Route, path: str, sent: Sent) -> TestResponse:
    """Send one example as the route's sender would (the sender exists already: see World.ready)."""
    headers = {**(world.bearer if route.who == "bearer" else {}), "Accept-Language": "en"}
    kwargs: dict[str, Any] = {"headers": headers, "data": sent.body}
    if sent.content_type is not None:
        kwargs["content_type"] = sent.content_type
    return world.client(route.who).post(path + sent.query, **kwargs)


# --- the properties -----------------------------------------------------------------------------------------------


def test_every_write_route_is_fuzzed(app: Flask) -> None:
    missing = write_endpoints(app) - set(BY_ENDPOINT)
    assert not missing, f"add these write routes to ROUTES in {__name__}: {sorted(missing)}"
    assert not set(BY_ENDPOINT) - write_endpoints(app), "ROUTES names routes the app no longer has"


@pytest.mark.parametrize("route", ROUTES, ids=str)
@FUZZ
@given(data=st.data())
def test_hostile_input_is_answered_clearly_and_writes_nothing_half_way(world: World, route: Route,
                                                                       data: st.DataObject) -> None:
    path = data.draw(world.address(route), label="address")
    sent = data.draw(BODIES[route.endpoint], label="request")
    world.ready(route)
    before = snapshot(world.app)
    response = send(world, route, path, sent)
    after = snapshot(world.app)
    if route.api:
        check_api_answer(response)
        done = 200 <= response.status_code < 300
    else:
        check_page_answer(response, world.client(route.who))
        done = 300 <= response.status_code < 400 or response.status_code == 201
    if not done:
        assert after == before, f"answered {response.status_code}, yet the database changed"


def routes_in_a_safe_order() -> list[Route]:
    """Every route, logging out last (one world serves them all)."""
    return sorted(ROUTES, key=lambda route: route.endpoint == "auth.logout")


def test_a_body_over_the_limit_is_413_with_a_message_on_every_write_route(world: World) -> None:
    limit = world.app.config["MAX_CONTENT_LENGTH"]
    for route in routes_in_a_safe_order():
        if route.api:
            sent = Sent(json.dumps({"name": "a" * limit}).encode(), "application/json")
        else:
            sent = Sent({next(iter(route.fields), "name"): "字" * (limit // 3 + 1)}, None)
        path = world.real_address(route)
        world.ready(route)
        before = snapshot(world.app)
        response = send(world, route, path, sent)
        assert response.status_code == 413, route
        if route.api:
            check_api_answer(response)
        else:
            check_page_answer(response, world.client(route.who))
        assert snapshot(world.app) == before, route


def test_fields_just_under_the_limit_are_answered_like_any_bad_input_on_every_write_route(world: World) -> None:
    for route in routes_in_a_safe_order():
        names = list(route.fields) or ["name"]
        size = world.app.config["MAX_CONTENT_LENGTH"] // len(names) * 9 // 10
        if route.api:  # an emoji is 4 bytes; JSON writes it as 12 (two escaped surrogates)
            sent = Sent(json.dumps({name: "😀" * (size // 12) for name in names}).encode(), "application/json")
        else:
            sent = Sent({name: "x" * size for name in names}, None)
        path = world.real_address(route)
        world.ready(route)
        before = snapshot(world.app)
        response = send(world, route, path, sent)
        if route.api:
            check_api_answer(response)
            assert 200 <= response.status_code < 300 or snapshot(world.app) == before, route
        else:
            check_page_answer(response, world.client(route.who))
            assert 300 <= response.status_code < 400 or snapshot(world.app) == before, route
