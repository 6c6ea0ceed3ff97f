"""JSON API of the online pre-screen: create one, read its status, list free slots.

`POST /api/v1/prescreenings` takes the same answers as the HTML questionnaire and applies the same
validation and rate limits (the creation budget is shared with the form). `GET
/api/v1/prescreenings/<reference>` returns the status only to a caller that proves it may see it: the
status token (header `X-Status-Token`, or `?token=`), the phone number given (header
`X-Patient-Phone`; digits are compared), or a staff bearer token. Anything else gets the same 404 as
an unknown code, so the code alone reveals nothing, not even that the visit exists. The status never
contains the patient's answers.
"""

from __future__ import annotations

import hmac
from datetime import date
from typing import Any

from flask import Response, current_app, g, jsonify, request, url_for
from flask_babel import gettext as _

from triage.db import get_db, get_session
from triage.domain.errors import InvalidInput, NotFound
from triage.domain.policy import Policy, Stream
from triage.hospital import effective_policy, workflow
from triage.models import utcnow
from triage.notify import notifier_for
from triage.services.core import format_reference, normalize_reference
from triage.services.prescreen import (
    PrescreenRequest,
    VisitView,
    check_prescreen,
    danger_signs,
    expire_if_stale,
    find_by_token,
    get_encounter,
    is_stale,
    normalize_phone,
    submit_prescreen,
    visit_view,
)
from triage.services.slots import SlotOffer, aware, booking_window, free_slots, is_bookable
from triage.services.staff import digest
from triage.services.store import EncounterRecord, SlotRecord
from triage.web.access import bearer_user
from triage.web.api import bp, json_body
from triage.web.extensions import current_lang, limiter
from triage.web.openapi import PATHS, SCHEMAS, error_response, json_content
from triage.web.prescreen import failed_lookup, limit
from triage.web.ratelimit import prescreen_budget

TOP_LEVEL = {"name", "phone", "preferred_day", "visit_reason", "consent", "slot", "accept_online_followup",
             "family_of", "assessment"}
CONTACT_FIELDS = {"name", "phone", "preferred_day", "visit_reason", "consent", "slot", "family_of"}


def _t(zh: str, en: str) -> tuple[str, str]:
    return zh, en


def _parse(body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, tuple[str, str]]]:
    """Types of the top-level fields; the service checks the values."""
    errors: dict[str, tuple[str, str]] = {}
    for key in body:
        if key not in TOP_LEVEL:
            errors[str(key)[:40]] = _t(f"无法识别的字段“{str(key)[:40]}”。", f"Unknown field “{str(key)[:40]}”.")
    clean: dict[str, Any] = {}
    for key in ("name", "phone", "visit_reason", "slot"):
        value = body.get(key)
        if value is not None and not isinstance(value, str):
            errors[key] = _t("应为文字。", "Must be text.")
        clean[key] = value if isinstance(value, str) else ""
    day = body.get("preferred_day")
    clean["preferred_day"] = None
    if isinstance(day, str):
        try:
            clean["preferred_day"] = date.fromisoformat(day)
        except ValueError:
            errors["preferred_day"] = _t("日期格式应为 2026-11-23。", "The date must look like 2026-11-23.")
    elif day is not None:
        errors["preferred_day"] = _t("日期格式应为 2026-11-23。", "The date must look like 2026-11-23.")
    for key in ("consent", "accept_online_followup"):
        value = body.get(key)
        if value is not None and not isinstance(value, bool):
            errors[key] = _t("应为 true 或 false。", "Must be true or false.")
        clean[key] = value if isinstance(value, bool) else None
    answers = body.get("assessment")
    if not isinstance(answers, dict):
        errors["assessment"] = _t("assessment 应为评估输入对象（见 AssessmentInput）。",
                                  "assessment must be an object (see AssessmentInput).")
        answers = {}
    elif answers.get("stage") not in (None, "online"):
        errors["assessment.stage"] = _t("线上预检的 stage 只能是 online。", "A pre-screen's stage can only be online.")
    clean["answers"] = {k: v for k, v in answers.items() if k != "stage"}
    clean["family_of"] = None
    family = body.get("family_of")
    if family is not None:
        try:
            clean["family_of"] = _family_member(family)
        except NotFound:
            errors["family_of"] = _t("家人的编号或状态令牌不正确。",
                                     "The family member's code or status token is not right.")
    return clean, errors


def _family_member(family: Any) -> EncounterRecord:
    if not isinstance(family, dict) or not isinstance(family.get("reference"), str) \
            or not isinstance(family.get("status_token"), str):
        raise NotFound("", "")
    member = find_by_token(get_session(), family["status_token"])
    if member.reference != normalize_reference(family["reference"]):
        raise NotFound("", "")
    return member


def _field(key: str) -> str:
    return key if key in CONTACT_FIELDS or key.startswith("assessment") else f"assessment.{key}"


def slot_json(offer_or_slot: SlotOffer | SlotRecord, policy: Policy) -> dict[str, Any]:
    """A slot as JSON: UTC and local times, and places left for an offer."""
    starts, ends = aware(offer_or_slot.starts_at), aware(offer_or_slot.ends_at)
    body: dict[str, Any] = {
        "stream": offer_or_slot.stream if isinstance(offer_or_slot.stream, str) else offer_or_slot.stream.value,
        "day": offer_or_slot.day.isoformat(),
        "starts_at": starts.isoformat(),
        "ends_at": ends.isoformat(),
        "local_start": policy.local(starts).isoformat(),
        "local_end": policy.local(ends).isoformat(),
    }
    if isinstance(offer_or_slot, SlotOffer):
        body["free"] = offer_or_slot.free
    return body


def status_json(view: VisitView, policy: Policy, lang: str) -> dict[str, Any]:
    """The status of a visit, without any of the patient's answers."""
    e = view.encounter
    slot = None
    if view.slot_start is not None and view.slot_end is not None:
        slot = {"starts_at": view.slot_start.isoformat(), "ends_at": view.slot_end.isoformat(),
                "local_start": policy.local(view.slot_start).isoformat(),
                "local_end": policy.local(view.slot_end).isoformat()}
    return {
        "reference": e.reference,
        "reference_display": format_reference(e.reference),
        "state": e.state,
        "state_label": workflow().state_label(e.state, lang),
        "next_step": view.next_step,
        "stream": view.stream.value if view.stream else None,
        "stream_label": view.stream.label(lang) if view.stream else None,
        "provisional": e.stream is None,
        "reason": view.reason(lang) or None,
        "visit_day": e.visit_day.isoformat() if e.visit_day else None,
        "slot": slot,
        "queue_position": view.queue_position,
        "estimated_wait_minutes": view.estimated_wait_minutes,
        "ticket": e.ticket,
        "disposition": e.disposition,
        "can_change": view.can_change,
        "online_followup_offered": view.online_followup_offered,
    }


def _refused(errors: dict[str, tuple[str, str]], answers: dict[str, Any], decision: Any, lang: str
             ) -> tuple[Response, int]:
    """422 with every field's message; a danger sign says "go to the emergency department now" all the same."""
    symptoms = answers.get("symptoms")
    signs = danger_signs(symptoms if isinstance(symptoms, list) else [])
    urgent = bool(signs) or (decision.outcome == "route" and decision.emergency_now)
    message = _("Please check your input")
    if urgent:
        message = _("Danger sign: go to the emergency department now or call 120. Do not wait for a slot.")
    return jsonify({
        "message": message, "emergency_now": urgent,
        "errors": [{"field": f, "message": en if lang == "en" else zh} for f, (zh, en) in errors.items()],
    }), 422


@bp.post("/prescreenings")
@prescreen_budget
def create_prescreening() -> tuple[Response, int]:
    """Pre-screen one patient: assess (online), store, route and book; 201 with the code and status link."""
    body = json_body()
    lang = current_lang()
    policy = effective_policy(get_session())
    clean, errors = _parse(body)
    prescreen = PrescreenRequest(
        name=clean["name"], phone=clean["phone"], answers=clean["answers"], preferred_day=clean["preferred_day"],
        visit_reason=clean["visit_reason"], consent=bool(clean["consent"]), slot_key=clean["slot"] or None,
        accept_online_followup=clean["accept_online_followup"], family_of=clean["family_of"], lang=lang)
    decision, more = check_prescreen(get_session(), request=prescreen, policy=policy)
    for key, message in more.items():
        errors.setdefault(_field(key), message)
    if errors:
        return _refused(errors, clean["answers"], decision, lang)
    links: dict[str, str] = {}

    def status_link(token: str) -> str:
        links[token] = url_for("prescreen.status", token=token, _external=True)
        return links[token]

    try:
        outcome = submit_prescreen(
            get_session(), request=prescreen, workflow=workflow(), policy=policy,
            notifier=notifier_for(current_app), status_link=status_link, checked=decision)
    except InvalidInput as exc:
        get_session().rollback()
        return _refused({_field(k): v for k, v in exc.errors.items()}, clean["answers"], decision, lang)
    g.prescreen_created = True
    e = outcome.encounter
    result = status_json(outcome.view, policy, lang)
    result.update({
        "status_url": links.get(outcome.status_token) or status_link(outcome.status_token),
        "status_token": outcome.status_token,
        "assessment": outcome.decision.to_dict(lang),
        "slot": slot_json(outcome.slot, policy) if outcome.slot is not None else None,
        "alternatives": [slot_json(o, policy) for o in outcome.alternatives],
    })
    response = jsonify(result)
    response.headers["Location"] = url_for("api.read_prescreening", reference=e.reference)
    response.headers["Cache-Control"] = "no-store"
    return response, 201


def _authorized(encounter: EncounterRecord) -> bool:
    token = request.headers.get("X-Status-Token") or request.args.get("token") or ""
    if token and encounter.status_token_hash and hmac.compare_digest(digest(token.strip()),
                                                                     encounter.status_token_hash):
        return True
    phone = normalize_phone(request.headers.get("X-Patient-Phone"))
    if phone and encounter.patient_phone and hmac.compare_digest(phone.encode(),
                                                                 normalize_phone(encounter.patient_phone).encode()):
        return True
    return request.headers.get("Authorization", "").lower().startswith("bearer ") and bearer_user() is not None


@bp.get("/prescreenings/<reference>")
@limiter.limit(limit("PRESCREEN_LOOKUP_LIMIT"), deduct_when=failed_lookup)
def read_prescreening(reference: str) -> Response:
    """The status of a pre-screen, for its holder (status token, phone number) or staff."""
    policy = effective_policy(get_session())
    try:
        encounter = get_encounter(get_session(), reference)
    except NotFound:
        encounter = None
    if encounter is None or encounter.purged_at is not None or not _authorized(encounter):
        g.lookup_failed = True
        raise NotFound("找不到此预约，或凭证不正确。", "No such visit, or the proof of access is not right.")
    now = utcnow()
    if is_stale(encounter, policy, now):
        write = get_db().session()
        try:
            expire_if_stale(write, get_encounter(write, encounter.reference), policy, now, workflow=workflow())
        finally:
            write.close()
        get_session().rollback()
        encounter = get_encounter(get_session(), encounter.reference)
    response = jsonify(status_json(visit_view(get_session(), encounter, policy, now), policy, current_lang()))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/slots")
@limiter.limit("120 per minute")
def list_slots() -> Response:
    """Free slots of a stream (?stream=general), on one day (?day=2026-11-23) or the whole booking window."""
    policy = effective_policy(get_session())
    now = utcnow()
    try:
        stream = Stream(request.args.get("stream", ""))
    except ValueError:
        raise InvalidInput({"stream": ("stream 应为 fever、general、chronic 或 emergency。",
                                       "stream must be fever, general, chronic or emergency.")}) from None
    first, last = booking_window(policy, now)
    days = [first.fromordinal(d) for d in range(first.toordinal(), last.toordinal() + 1)]
    if "day" in request.args:  # present but empty is a malformed day, not "any day"
        try:
            days = [date.fromisoformat(request.args["day"])]
        except ValueError:
            raise InvalidInput({"day": ("日期格式应为 2026-11-23。", "The date must look like 2026-11-23.")}) from None
    offers = [o for day in days for o in free_slots(get_session(), policy, stream, day, now)]
    return jsonify({"stream": stream.value, "bookable_online": is_bookable(policy, stream),
                    "slots": [slot_json(o, policy) for o in offers]})


# --- OpenAPI ------------------------------------------------------------------------------------------------------

_SLOT = {
    "type": "object",
    "required": ["stream", "day", "starts_at", "ends_at", "local_start", "local_end"],
    "properties": {
        "stream": {"type": "string", "enum": ["fever", "general", "chronic"]},
        "day": {"type": "string", "format": "date", "description": "The hospital's local date"},
        "starts_at": {"type": "string", "format": "date-time", "description": "UTC"},
        "ends_at": {"type": "string", "format": "date-time"},
        "local_start": {"type": "string", "format": "date-time",
                        "description": "In the hospital's time zone; send it back as `slot` to book it"},
        "local_end": {"type": "string", "format": "date-time"},
        "free": {"type": "integer", "description": "Places left (slot lists only)"},
    },
}
_STATUS = {
    "type": "object",
    "required": ["reference", "reference_display", "state", "state_label", "next_step"],
    "properties": {
        "reference": {"type": "string", "example": "K7P2M9QX"},
        "reference_display": {"type": "string", "example": "K7P2-M9QX"},
        "state": {"type": "string"},
        "state_label": {"type": "string"},
        "next_step": {"type": "string", "enum": ["go_to_emergency_now", "online_followup", "come_at_slot",
                                                 "come_without_appointment", "choose_slot", "closed", "on_site"]},
        "stream": {"type": ["string", "null"]},
        "stream_label": {"type": ["string", "null"]},
        "provisional": {"type": "boolean", "description": "True until a nurse triages the patient on site"},
        "reason": {"type": ["string", "null"], "description": "One line: why this stream"},
        "visit_day": {"type": ["string", "null"], "format": "date"},
        "slot": {"type": ["object", "null"]},
        "queue_position": {"type": ["integer", "null"]},
        "estimated_wait_minutes": {"type": ["integer", "null"]},
        "ticket": {"type": ["string", "null"]},
        "disposition": {"type": ["string", "null"]},
        "can_change": {"type": "boolean"},
        "online_followup_offered": {"type": "boolean"},
    },
}
SCHEMAS.update({
    "PrescreeningInput": {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "phone", "preferred_day", "consent", "assessment"],
        "properties": {
            "name": {"type": "string", "maxLength": 50},
            "phone": {"type": "string", "description": "Digits are compared; +86 is dropped from mainland mobiles"},
            "preferred_day": {"type": "string", "format": "date",
                              "description": "From today up to the policy's booking_days_ahead"},
            "visit_reason": {"type": "string", "maxLength": 200,
                             "description": "Department or reason; required when no symptom or need is given"},
            "consent": {"type": "boolean", "const": True},
            "slot": {"type": "string", "format": "date-time",
                     "description": "A free slot's local_start (GET /api/v1/slots); default: the first free slot "
                                    "of the provisional stream on preferred_day. A full slot gets 409 and "
                                    "nothing is stored."},
            "accept_online_followup": {"type": ["boolean", "null"],
                                       "description": "true: take online follow-up when the assessment offers it"},
            "family_of": {"type": "object", "required": ["reference", "status_token"],
                          "description": "Book together with this family member (same party)",
                          "properties": {"reference": {"type": "string"}, "status_token": {"type": "string"}}},
            "assessment": {"$ref": "#/components/schemas/AssessmentInput",
                           "description": "stage is online (may be left out); every epi question answered; "
                                          "sex required"},
        },
    },
    "Prescreening": {"allOf": [{"$ref": "#/components/schemas/PrescreeningStatus"}, {
        "type": "object",
        "required": ["status_url", "status_token", "assessment", "slot", "alternatives"],
        "properties": {
            "status_url": {"type": "string", "format": "uri",
                           "description": "The patient's secret status page; give it to the patient only"},
            "status_token": {"type": "string", "description": "Shown once; only its SHA-256 is stored"},
            "assessment": {"$ref": "#/components/schemas/AssessmentResult"},
            "slot": {"oneOf": [{"$ref": "#/components/schemas/Slot"}, {"type": "null"}]},
            "alternatives": {"type": "array", "items": {"$ref": "#/components/schemas/Slot"},
                             "description": "Free slots on the next days when none was free on preferred_day"},
        }}]},
    "PrescreeningStatus": _STATUS,
    "Slot": _SLOT,
})
PATHS.update({
    "/api/v1/prescreenings": {"post": {
        "summary": "Pre-screen a patient online: assess, store, and book a slot",
        "description": "Same validation and rate limits as the web questionnaire (pre-screens created per "
                       "client address are limited, shared with the form). A danger sign stops it: 201 with "
                       "next_step go_to_emergency_now and no slot; if other fields are invalid, 422 with "
                       "emergency_now true.",
        "operationId": "createPrescreening",
        "requestBody": {"required": True, **json_content({"$ref": "#/components/schemas/PrescreeningInput"})},
        "responses": {
            "201": {"description": "Created; Location is the status resource",
                    **json_content({"$ref": "#/components/schemas/Prescreening"})},
            "409": error_response("The chosen slot was filled meanwhile (nothing stored)"),
            "422": {"description": "Invalid input: field errors (assessment fields as assessment.<name>) and "
                                   "emergency_now",
                    **json_content({"type": "object", "properties": {
                        "message": {"type": "string"}, "emergency_now": {"type": "boolean"},
                        "errors": {"type": "array"}}})},
            "429": error_response("Too many pre-screens from this address"),
        },
    }},
    "/api/v1/prescreenings/{reference}": {"get": {
        "summary": "Status of a pre-screen (never the patient's answers)",
        "description": "Prove access with one of: header X-Status-Token (or query token) with the status token; "
                       "header X-Patient-Phone with the phone number given; a staff bearer token. Without "
                       "proof the answer is 404, as for an unknown code. Failed attempts are rate-limited.",
        "operationId": "readPrescreening",
        "parameters": [
            {"name": "reference", "in": "path", "required": True, "schema": {"type": "string"}},
            {"name": "token", "in": "query", "required": False, "schema": {"type": "string"}},
            {"name": "X-Status-Token", "in": "header", "required": False, "schema": {"type": "string"}},
            {"name": "X-Patient-Phone", "in": "header", "required": False, "schema": {"type": "string"}},
        ],
        "responses": {
            "200": {"description": "The status", **json_content({"$ref": "#/components/schemas/PrescreeningStatus"})},
            "404": error_response("Unknown code, or no valid proof of access"),
            "429": error_response("Too many failed attempts"),
        },
    }},
    "/api/v1/slots": {"get": {
        "summary": "Free online slots of a stream",
        "operationId": "listSlots",
        "parameters": [
            {"name": "stream", "in": "query", "required": True,
             "schema": {"type": "string", "enum": ["fever", "general", "chronic", "emergency"]}},
            {"name": "day", "in": "query", "required": False, "schema": {"type": "string", "format": "date"}},
        ],
        "responses": {
            "200": {"description": "Free slots (none for emergency: it takes patients at once, without booking)",
                    **json_content({"type": "object", "properties": {
                        "stream": {"type": "string"}, "bookable_online": {"type": "boolean"},
                        "slots": {"type": "array", "items": {"$ref": "#/components/schemas/Slot"}}}})},
            "422": error_response("Unknown stream or malformed day"),
        },
    }},
})
