"""JSON API v1: assessments and vocabulary (public), staff endpoints with bearer tokens."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request
from flask_babel import gettext as _

from triage.db import get_session
from triage.domain.assessment import assess
from triage.domain.errors import InvalidInput
from triage.domain.vocabulary import vocabulary_document
from triage.hospital import effective_policy
from triage.web.extensions import csrf, current_lang, limiter
from triage.web.openapi import openapi_document

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)  # bearer tokens, never cookies: no cross-site request can carry them


def json_body() -> dict[str, Any]:
    """The request's JSON object, or a 422 that says what is wrong with it."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise InvalidInput({"body": ("请求体必须是 JSON 对象（Content-Type: application/json）。",
                                     "The body must be a JSON object (Content-Type: application/json).")})
    return data


@bp.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI description of this API."""
    return jsonify(openapi_document())


@bp.get("/vocabulary")
def vocabulary() -> Response:
    """Symptom, chronic-condition and need codes with Chinese and English labels."""
    return jsonify(vocabulary_document())


@bp.post("/assessments")
@limiter.limit("600 per minute")
def assessments() -> tuple[Response, int]:
    """Assess one patient under the hospital's policy; nothing is stored."""
    result = assess(json_body(), effective_policy(get_session()))
    body = result.to_dict(current_lang())
    if result.outcome == "reject":
        body["message"] = _("Please check your input")
        return jsonify(body), 422
    return jsonify(body), 200
