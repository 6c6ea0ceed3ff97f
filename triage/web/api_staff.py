"""Staff JSON API for integrations: check-in, on-site triage, walk-ins, queue events, cases and queues.

Bearer tokens (`flask --app wsgi users token NAME`); 401 without a valid token, 403 for a role that may
not, 404 unknown, 409 when the workflow does not allow the action now or the version is stale, 422 invalid.
Routes live on the shared `api.bp` (/api/v1); their OpenAPI description is added beside them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from flask import Response, g, jsonify, request, url_for

from triage.db import get_session
from triage.domain.errors import InvalidInput, NotFound
from triage.domain.policy import Stream
from triage.domain.queue import Wait
from triage.hospital import effective_policy, workflow
from triage.models import Assessment as AssessmentRecord
from triage.models import Role, TransitionLog
from triage.services import Actor, format_reference, normalize_reference, onsite
from triage.services.store import EncounterRecord
from triage.web.access import SUPERVISORS, api_role
from triage.web.api import bp, json_body
from triage.web.extensions import current_lang
from triage.web.openapi import PATHS, SCHEMAS, error_response, json_content

STAFF_ROLES = (Role.NURSE, Role.SUPERVISOR, Role.ADMIN)


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


def encounter_json(encounter: EncounterRecord, lang: str) -> dict[str, Any]:
    """A case as the staff API shows it (no phone number: integrations do not need it)."""
    wf = workflow()
    escort = onsite.escort_for(encounter) if encounter.ticket else None
    return {
        "reference": encounter.reference,
        "reference_display": format_reference(encounter.reference),
        "origin": encounter.origin,
        "state": encounter.state,
        "state_label": wf.state_label(encounter.state, lang),
        "version": encounter.version,
        "patient": {"name": encounter.patient_name, "age_years": encounter.age_years, "sex": encounter.sex},
        "provisional_stream": encounter.provisional_stream,
        "stream": encounter.stream,
        "cn_level": encounter.cn_level,
        "ticket": encounter.ticket,
        "priority_flags": encounter.flags,
        "isolation_required": encounter.isolation_required,
        "escort": None if escort is None else {"kind": escort.value, "message": escort.text(lang)},
        "visit_day": encounter.visit_day.isoformat() if encounter.visit_day else None,
        "slot_starts_at": _iso(encounter.slot_starts_at),
        "arrived_at": _iso(encounter.arrived_at),
        "triaged_at": _iso(encounter.triaged_at),
        "queued_at": _iso(encounter.queued_at),
        "called_at": _iso(encounter.called_at),
        "call_count": encounter.call_count,
        "started_at": _iso(encounter.started_at),
        "ended_at": _iso(encounter.ended_at),
        "disposition": encounter.disposition,
        "available_actions": list(onsite.queue_actions(wf, encounter.state)),
    }


def _result_json(result: Mapping[str, Any], lang: str) -> dict[str, Any]:
    body = {k: v for k, v in result.items() if k != "reasons_en"}
    body["reasons"] = onsite.localized_reasons(result, lang)
    return body


def assessment_json(record: AssessmentRecord, lang: str) -> dict[str, Any]:
    """A stored assessment (online or on site) with its inputs, result and the nurse's decision."""
    return {
        "id": record.id,
        "stage": record.stage,
        "created_at": _iso(record.created_at),
        "actor_id": record.actor_id,
        "inputs": record.inputs,
        "result": _result_json(record.result, lang),
        "recommended": {"stream": record.recommended_stream, "cn_level": record.recommended_level},
        "final": {"stream": record.final_stream, "cn_level": record.final_level},
        "overridden": record.overridden,
        "override_reason": record.override_reason,
        "policy_version": record.policy_version,
    }


def _log_json(row: TransitionLog) -> dict[str, Any]:
    return {"at": _iso(row.at), "trigger": row.trigger, "from": row.from_state, "to": row.to_state,
            "actor_id": row.actor_id, "actor_kind": row.actor_kind, "stream": row.stream, "reason": row.reason,
            "workflow_version": row.workflow_version, "policy_version": row.policy_version}


def _decision_json(decision: onsite.Decision, lang: str) -> dict[str, Any]:
    return {
        "reference": decision.encounter.reference,
        "ticket": decision.encounter.ticket,
        "decision": {
            "recommended": {"stream": decision.record.recommended_stream,
                            "cn_level": decision.record.recommended_level},
            "final": {"stream": decision.record.final_stream, "cn_level": decision.record.final_level},
            "overridden": decision.record.overridden,
            "override_reason": decision.record.override_reason,
            "isolation_required": decision.encounter.isolation_required,
            "assessment": decision.result.to_dict(lang),
        },
        "escort": None if decision.escort is None else {"kind": decision.escort.value,
                                                         "message": decision.escort.text(lang)},
        "encounter": encounter_json(decision.encounter, lang),
    }


def _object(value: Any, field: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInput({field: (f"{field} 应为 JSON 对象。", f"{field} must be a JSON object.")})
    return dict(value)


def _override(value: Any) -> onsite.Override:
    data = _object(value, "override")
    unknown = sorted(set(data) - {"stream", "cn_level", "reason"})
    if unknown:
        raise InvalidInput({f"override.{unknown[0]}": ("无法识别的字段：请使用 stream、cn_level、reason。",
                                                       "Unknown field; use stream, cn_level and reason.")})
    level = data.get("cn_level")
    # The desk form sends "1" as text; JSON has numbers, and the OpenAPI document promises an integer.
    if level is not None and (isinstance(level, bool) or not isinstance(level, int)):
        raise InvalidInput({"override.cn_level": (
            "override.cn_level 应为 JSON 数字 1、2、3 或 4（不是文字，也不是 true/false）。",
            "override.cn_level must be a JSON number: 1, 2, 3 or 4 (not text, not true/false).")})
    return onsite.Override.parse(data.get("stream"), level, data.get("reason"))


def _version(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput({"version": ("version 应为正整数。", "version must be a positive whole number.")})
    return value


def _text(value: Any, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput({field: (f"{field} 应为文字。", f"{field} must be text.")})
    return value


def _assessment_input(body: dict[str, Any]) -> dict[str, Any]:
    stage = body.pop("stage", "onsite")
    if stage != "onsite":
        raise InvalidInput({"stage": ("此接口只接受现场分诊：stage 应为 onsite 或省略。",
                                      "This endpoint takes the on-site assessment: stage must be onsite or omitted.")})
    if body.get("context") is not None:
        # A stored decision is taken at the hospital's time under its policy: a caller's clock, opening hours or
        # risk level would change the recommendation without an override and its reason in the audit.
        raise InvalidInput({"context": ("现场分诊按医院的时间和策略评估，不接受 context"
                                        "（仅用于 POST /api/v1/assessments 试算）。",
                                        "On-site triage is assessed at the hospital's time under its policy: context "
                                        "is only for what-if assessments (POST /api/v1/assessments).")})
    return body


def _may_lower_critical() -> bool:
    return g.staff.role in {r.value for r in SUPERVISORS}


@bp.post("/encounters/<reference>/check-in")
@api_role(*STAFF_ROLES)
def api_check_in(reference: str) -> Response:
    """Check a pre-screened patient in by reference code."""
    session = get_session()
    encounter = onsite.check_in(session, code=reference, policy=effective_policy(session), workflow=workflow(),
                                actor=Actor.staff(g.staff))
    return jsonify(encounter=encounter_json(encounter, current_lang()))


@bp.post("/encounters/<reference>/triage")
@api_role(*STAFF_ROLES)
def api_triage(reference: str) -> Response:
    """On-site triage of a checked-in case: the assessment input plus an optional override; issues the ticket."""
    body = json_body()
    override = _override(body.pop("override", None))
    version = _version(body.pop("version", None))
    data = _assessment_input(body)
    session = get_session()
    decision = onsite.triage(session, reference=normalize_reference(reference), data=data, override=override,
                             policy=effective_policy(session), workflow=workflow(), actor=Actor.staff(g.staff),
                             may_lower_critical=_may_lower_critical(), expected_version=version)
    return jsonify(_decision_json(decision, current_lang()))


@bp.post("/walk-ins")
@api_role(*STAFF_ROLES)
def api_walk_in() -> tuple[Response, int, dict[str, str]]:
    """Register a walk-in and triage them in one step: 201 with the reference and the ticket."""
    body = json_body()
    unknown = sorted(set(body) - {"patient", "assessment", "override"})
    if unknown:
        raise InvalidInput({unknown[0]: ("无法识别的字段：请使用 patient、assessment、override。",
                                         "Unknown field; use patient, assessment and override.")})
    patient_data = _object(body.get("patient"), "patient")
    allowed = {"name", "phone", "age_years", "sex", "arrival_mode", "visit_reason"}
    extra = sorted(set(patient_data) - allowed)
    if extra:
        raise InvalidInput({f"patient.{extra[0]}": ("无法识别的字段：可用 " + "、".join(sorted(allowed)) + "。",
                                                    "Unknown field; use " + ", ".join(sorted(allowed)) + ".")})
    for key in ("name", "phone", "sex", "arrival_mode", "visit_reason"):
        _text(patient_data.get(key), f"patient.{key}")
    patient = onsite.WalkIn(
        age_years=patient_data.get("age_years"), name=patient_data.get("name"), phone=patient_data.get("phone"),
        sex=patient_data.get("sex"), arrival_mode=patient_data.get("arrival_mode") or "walk_in",
        visit_reason=patient_data.get("visit_reason"))
    data = _assessment_input(_object(body.get("assessment"), "assessment"))
    session = get_session()
    try:
        decision = onsite.admit_walk_in(
            session, patient=patient, data=data, override=_override(body.get("override")),
            policy=effective_policy(session), workflow=workflow(), actor=Actor.staff(g.staff),
            may_lower_critical=_may_lower_critical())
    except InvalidInput as exc:
        raise InvalidInput({(f"patient.{k}" if k in allowed else k): v for k, v in exc.errors.items()}) from None
    location = url_for("api.api_encounter", reference=decision.encounter.reference)
    return jsonify(_decision_json(decision, current_lang())), 201, {"Location": location}


@bp.post("/encounters/<reference>/events/<trigger>")
@api_role(*STAFF_ROLES)
def api_event(reference: str, trigger: str) -> Response:
    """A queue action (call, start, complete, retriage, mark_no_show, leave, refer) with optional reason.

    404 for an action this endpoint does not offer, even one the workflow has elsewhere (check-in, triage and
    booking have their own endpoints); 409 for an action offered here that the case's state does not allow now.
    """
    wf = workflow()
    if trigger not in onsite.QUEUE_TRIGGERS:
        raise NotFound("没有这个队列操作：可用 " + "、".join(onsite.QUEUE_TRIGGERS) + "。",
                       "There is no such queue action; use one of " + ", ".join(onsite.QUEUE_TRIGGERS) + ".",
                       field="trigger")
    body: dict[str, Any] = {}
    if request.get_data():
        body = json_body()
    unknown = sorted(set(body) - {"reason", "referral_target", "version"})
    if unknown:
        raise InvalidInput({unknown[0]: ("无法识别的字段：请使用 reason、referral_target、version。",
                                         "Unknown field; use reason, referral_target and version.")})
    session = get_session()
    encounter = onsite.queue_action(
        session, reference=normalize_reference(reference), trigger=trigger, policy=effective_policy(session),
        workflow=wf, actor=Actor.staff(g.staff), reason=_text(body.get("reason"), "reason"),
        referral_target=_text(body.get("referral_target"), "referral_target"),
        expected_version=_version(body.get("version")))
    return jsonify(encounter=encounter_json(encounter, current_lang()))


@bp.get("/encounters/<reference>")
@api_role(*STAFF_ROLES)
def api_encounter(reference: str) -> Response:
    """A case with its assessments (online and on site) and its history."""
    encounter, records, log = onsite.encounter_detail(get_session(), reference)
    lang = current_lang()
    return jsonify(encounter=encounter_json(encounter, lang),
                   assessments=[assessment_json(r, lang) for r in records],
                   history=[_log_json(row) for row in log])


def _wait_json(wait: Wait) -> dict[str, Any]:
    return {"waited_minutes": wait.waited_minutes, "target_minutes": wait.target_minutes,
            "status": wait.status.value, "overdue": wait.overdue}


@bp.get("/queues/<stream>")
@api_role(*STAFF_ROLES)
def api_queue(stream: str) -> Response:
    """A stream's live queue in queue order: called, waiting (with position and estimate), in consultation."""
    try:
        chosen = Stream(stream)
    except ValueError:
        raise NotFound("没有这个分流。", "There is no such stream: use fever, emergency, general or chronic.",
                       field="stream") from None
    session = get_session()
    view = onsite.read_queue(session, stream=chosen, policy=effective_policy(session), workflow=workflow())
    lang = current_lang()

    def entry(e: onsite.QueueEntry) -> dict[str, Any]:
        """One queue entry as JSON."""
        return {"encounter": encounter_json(e.encounter, lang), "wait": _wait_json(e.wait),
                "position": e.position, "estimated_minutes": e.estimated_minutes}

    return jsonify(stream=chosen.value, overdue=view.overdue, called=[entry(e) for e in view.called],
                   waiting=[entry(e) for e in view.waiting],
                   in_consultation=[entry(e) for e in view.in_consultation])


# --- OpenAPI ---------------------------------------------------------------------------------------------

_REF = {"name": "reference", "in": "path", "required": True, "schema": {"type": "string"},
        "description": "Reference code, with or without the dash (K7P2-M9QX)"}
_SECURITY: list[dict[str, list[str]]] = [{"bearer": []}]
_AUTH_ERRORS = {"401": error_response("No valid bearer token"),
                "403": error_response("The token's role may not do this")}
_DECISION_REF = {"$ref": "#/components/schemas/TriageDecision"}
_ENCOUNTER_REF = {"$ref": "#/components/schemas/Encounter"}
_OVERRIDE = {"type": "object", "additionalProperties": False, "properties": {
    "stream": {"type": ["string", "null"], "enum": ["fever", "emergency", "general", "chronic", None]},
    "cn_level": {"type": ["integer", "null"], "minimum": 1, "maximum": 4},
    "reason": {"type": "string", "maxLength": 500,
               "description": "Required when the stream or level differs from the recommendation"}}}

SCHEMAS.update({
    "Encounter": {"type": "object", "properties": {
        "reference": {"type": "string"}, "reference_display": {"type": "string"},
        "origin": {"type": "string", "enum": ["online", "walk_in"]}, "state": {"type": "string"},
        "state_label": {"type": "string"}, "version": {"type": "integer"},
        "patient": {"type": "object"}, "provisional_stream": {"type": ["string", "null"]},
        "stream": {"type": ["string", "null"]}, "cn_level": {"type": ["integer", "null"]},
        "ticket": {"type": ["string", "null"]}, "priority_flags": {"type": "array", "items": {"type": "string"}},
        "isolation_required": {"type": "boolean"}, "escort": {"type": ["object", "null"]},
        "available_actions": {"type": "array", "items": {"type": "string"}}}},
    "TriageDecision": {"type": "object", "required": ["reference", "ticket", "decision", "encounter"], "properties": {
        "reference": {"type": "string"}, "ticket": {"type": "string", "examples": ["F-012"]},
        "decision": {"type": "object", "properties": {
            "recommended": {"type": "object"}, "final": {"type": "object"}, "overridden": {"type": "boolean"},
            "override_reason": {"type": ["string", "null"]}, "isolation_required": {"type": "boolean"},
            "assessment": {"$ref": "#/components/schemas/AssessmentResult"}}},
        "escort": {"type": ["object", "null"], "description": "Escort instruction for fever and isolation cases"},
        "encounter": _ENCOUNTER_REF}},
    "OnsiteTriageInput": {"allOf": [{"$ref": "#/components/schemas/AssessmentInput"}, {"type": "object", "properties": {
        "override": _OVERRIDE, "version": {"type": "integer", "description": "The case's version (optimistic lock)"}}}],
        "description": "The on-site assessment (stage onsite or omitted; age and sex default to the case's; "
                       "no context: the hospital's time and policy apply)."},
})

PATHS.update({
    "/api/v1/encounters/{reference}/check-in": {"post": {
        "summary": "Check in a pre-screened patient", "operationId": "checkIn", "security": _SECURITY,
        "parameters": [_REF],
        "responses": {"200": {"description": "Checked in", **json_content({"type": "object", "properties": {
            "encounter": _ENCOUNTER_REF}})}, **_AUTH_ERRORS,
            "404": error_response("Unknown reference"),
            "409": error_response("Cancelled, closed, for another day, or already checked in"),
            "422": error_response("Not a reference code")}}},
    "/api/v1/encounters/{reference}/triage": {"post": {
        "summary": "On-site triage: confirm or override the engine's recommendation and issue the ticket",
        "operationId": "triage", "security": _SECURITY, "parameters": [_REF],
        "requestBody": {"required": True, **json_content({"$ref": "#/components/schemas/OnsiteTriageInput"})},
        "responses": {"200": {"description": "Ticket issued", **json_content(_DECISION_REF)}, **_AUTH_ERRORS,
                      "403": error_response("The role may not lower the urgency of a level 1-2 recommendation"),
                      "404": error_response("Unknown reference"),
                      "409": error_response("Not awaiting triage, or the version is stale"),
                      "422": error_response("Invalid assessment or override")}}},
    "/api/v1/walk-ins": {"post": {
        "summary": "Register a walk-in and triage them in one step", "operationId": "walkIn",
        "security": _SECURITY,
        "requestBody": {"required": True, **json_content({"type": "object", "required": ["patient", "assessment"],
                                                          "properties": {
            "patient": {"type": "object", "required": ["age_years"], "properties": {
                "name": {"type": "string"}, "phone": {"type": "string"}, "age_years": {"type": "number"},
                "sex": {"type": "string", "enum": ["F", "M"]},
                "arrival_mode": {"type": "string", "enum": ["walk_in", "ambulance", "carried"]},
                "visit_reason": {"type": "string"}}},
            "assessment": {"$ref": "#/components/schemas/AssessmentInput"}, "override": _OVERRIDE}})},
        "responses": {"201": {"description": "Registered and ticketed", **json_content(_DECISION_REF)},
                      **_AUTH_ERRORS, "422": error_response("Invalid patient details or assessment")}}},
    "/api/v1/encounters/{reference}/events/{trigger}": {"post": {
        "summary": "A queue action: call, start, complete, retriage, mark_no_show, leave, refer",
        "operationId": "event", "security": _SECURITY,
        "parameters": [_REF, {"name": "trigger", "in": "path", "required": True, "schema": {
            "type": "string", "enum": list(onsite.QUEUE_TRIGGERS)}}],
        "requestBody": {"required": False, **json_content({"type": "object", "additionalProperties": False,
                                                           "properties": {
            "reason": {"type": "string", "description": "Required for retriage"},
            "referral_target": {"type": "string", "description": "refer: a facility code or online_followup"},
            "version": {"type": "integer"}}})},
        "responses": {"200": {"description": "Done", **json_content({"type": "object", "properties": {
            "encounter": _ENCOUNTER_REF}})}, **_AUTH_ERRORS,
            "404": error_response("Unknown reference, or an action not listed here (check-in and triage have "
                                  "their own endpoints)"),
            "409": error_response("The workflow does not allow this action now, or the version is stale"),
            "422": error_response("Missing reason or referral target, or an unknown field")}}},
    "/api/v1/encounters/{reference}": {"get": {
        "summary": "A case with its assessments and history", "operationId": "encounter", "security": _SECURITY,
        "parameters": [_REF],
        "responses": {"200": {"description": "The case", **json_content({"type": "object", "properties": {
            "encounter": _ENCOUNTER_REF, "assessments": {"type": "array", "items": {"type": "object"}},
            "history": {"type": "array", "items": {"type": "object"}}}})}, **_AUTH_ERRORS,
            "404": error_response("Unknown reference")}}},
    "/api/v1/queues/{stream}": {"get": {
        "summary": "A stream's live queue in queue order", "operationId": "queue", "security": _SECURITY,
        "parameters": [{"name": "stream", "in": "path", "required": True, "schema": {
            "type": "string", "enum": [s.value for s in Stream]}}],
        "responses": {"200": {"description": "The queue", **json_content({"type": "object"})}, **_AUTH_ERRORS,
                      "404": error_response("Unknown stream")}}},
})
