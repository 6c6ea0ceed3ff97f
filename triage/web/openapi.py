"""The OpenAPI 3.1 description of /api/v1, kept beside the routes it describes."""

from __future__ import annotations

from typing import Any

_ERROR = {
    "type": "object",
    "required": ["message", "errors"],
    "properties": {
        "message": {"type": "string"},
        "errors": {"type": "array", "items": {
            "type": "object", "required": ["field", "message"],
            "properties": {"field": {"type": "string"}, "message": {"type": "string"}}}},
    },
}

_NUM = {"type": ["number", "null"]}
_INT = {"type": ["integer", "null"]}

ASSESSMENT_INPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["stage", "age_years", "sex"],
    "properties": {
        "id": {"type": ["string", "integer"]},
        "stage": {"type": "string", "enum": ["online", "onsite"]},
        "age_years": {"type": "number", "minimum": 0, "maximum": 120},
        "age_days": _INT,
        "sex": {"type": "string", "enum": ["F", "M"]},
        "pregnancy_weeks": _INT,
        "temperature_c": _NUM,
        "heart_rate": _NUM,
        "respiratory_rate": _NUM,
        "sbp": _NUM,
        "spo2": _NUM,
        "on_oxygen": {"type": ["boolean", "null"]},
        "avpu": {"type": ["string", "null"], "enum": ["A", "C", "V", "P", "U", None]},
        "gcs": _INT,
        "pain_nrs": _NUM,
        "glucose_mmol_l": _NUM,
        "potassium_mmol_l": _NUM,
        "anc_x10e9_l": _NUM,
        "symptoms": {"type": ["array", "null"], "items": {"type": "string"}},
        "epi": {"type": ["object", "null"], "properties": {
            k: {"type": ["boolean", "null"]} for k in (
                "mid_high_risk_area_14d", "contact_case_14d",
                "contact_febrile_from_case_community_14d", "cluster_14d")}},
        "chronic_conditions": {"type": ["array", "null"], "items": {"type": "string"}},
        "needs": {"type": ["array", "null"], "items": {"type": "string"}},
        "requested_prescription_weeks": _INT,
        "arrival_mode": {"type": ["string", "null"], "enum": ["online", "walk_in", "ambulance", "carried", None]},
        "context": {"type": ["object", "null"], "properties": {
            "at": {"type": "string", "format": "date-time"},
            "outpatient_open": {"type": "boolean"},
            "region_risk_level": {"type": "string", "enum": ["low", "medium", "high"]}}},
    },
}

ASSESSMENT_RESULT: dict[str, Any] = {
    "type": "object",
    "required": ["outcome", "stream", "cn_level", "isolation_required", "priority_flags", "provisional",
                 "scores", "reasons", "errors", "policy_version"],
    "properties": {
        "outcome": {"type": "string", "enum": ["route", "reject"]},
        "stream": {"type": ["string", "null"], "enum": ["fever", "emergency", "general", "chronic", None]},
        "cn_level": {"type": ["integer", "null"]},
        "isolation_required": {"type": "boolean"},
        "priority_flags": {"type": "array", "items": {"type": "string"}},
        "max_prescription_weeks": {"type": ["integer", "null"]},
        "online_followup_eligible": {"type": ["boolean", "null"]},
        "provisional": {"type": "boolean"},
        "emergency_now": {"type": "boolean"},
        "scores": {"type": "object"},
        "reasons": {"type": "array", "items": {"type": "object", "properties": {
            "rule": {"type": "string"}, "message": {"type": "string"}}}},
        "errors": {"type": "array", "items": {"type": "object", "properties": {
            "field": {"type": "string"}, "message": {"type": "string"}}}},
        "policy_version": {"type": "string"},
    },
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, **_json({"$ref": "#/components/schemas/Error"})}


# Each API module adds the paths it serves, beside its routes: PATHS.update({...}).
PATHS: dict[str, Any] = {}
SCHEMAS: dict[str, Any] = {}


def error_response(description: str) -> dict[str, Any]:
    """An OpenAPI response object for an error."""
    return _error(description)


def json_content(schema: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI content object for a JSON schema."""
    return _json(schema)


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document served at /api/v1/openapi.json."""
    document = _document()
    for operations in document["paths"].values():
        for operation in operations.values():
            # Any request whose address or query carries text no database can hold (a NUL character) is refused.
            operation["responses"].setdefault("422", _error("Invalid input, with a message per field"))
    return document


def _document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "triage API",
            "version": "1",
            "description": "Two-stage pre-examination triage. Errors are JSON with a message per field. "
                           "Staff endpoints need `Authorization: Bearer <token>` "
                           "(`flask --app wsgi users token NAME`). Languages: send `Accept-Language: en` "
                           "or `zh` (default).",
        },
        "servers": [{"url": "/"}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": _ERROR, "AssessmentInput": ASSESSMENT_INPUT,
                        "AssessmentResult": ASSESSMENT_RESULT, **SCHEMAS},
        },
        "paths": {
            "/api/v1/assessments": {"post": {
                "summary": "Assess a patient (nothing is stored)",
                "operationId": "assess",
                "requestBody": {"required": True, **_json({"$ref": "#/components/schemas/AssessmentInput"})},
                "responses": {
                    "200": {"description": "The decision", **_json({"$ref": "#/components/schemas/AssessmentResult"})},
                    "422": {"description": "Invalid input: outcome 'reject' with field errors",
                            **_json({"type": "object"})},
                    "429": _error("Too many requests"),
                },
            }},
            "/api/v1/vocabulary": {"get": {
                "summary": "Codes for symptoms, chronic conditions and needs, with labels",
                "operationId": "vocabulary",
                "responses": {"200": {"description": "The vocabularies", **_json({"type": "object"})}},
            }},
            **PATHS,
        },
    }
