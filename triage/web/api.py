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
from triage.web.extensions import csrf, current_lang, limiter, usable_text
from triage.web.openapi import openapi_document

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)  # bearer tokens, never cookies: no cross-site request can carry them


MAX_JSON_DEPTH = 16
_TOO_DEEP = (f"JSON 最多嵌套 {MAX_JSON_DEPTH} 层。",
             f"The JSON is nested too deeply (at most {MAX_JSON_DEPTH} levels).")
_UNUSABLE_TEXT = ("文字不能含有空字符（NUL）或不成对的代理项。",
                  "Text cannot contain a NUL character or an unpaired surrogate.")


def json_body() -> dict[str, Any]:
    """The request's JSON object, or a 422 that says what is wrong with it."""
    try:
        data = request.get_json(silent=True)
    except RecursionError:  # nested deeper than the parser goes
        data = None
    if not isinstance(data, dict):
        raise InvalidInput({"body": ("请求体必须是 JSON 对象（Content-Type: application/json）。",
                                     "The body must be a JSON object (Content-Type: application/json).")})
    problem = _unusable_part(data)
    if problem is not None:
        raise InvalidInput(dict([problem]))
    return data


def _unusable_part(data: dict[str, Any]) -> tuple[str, tuple[str, str]] | None:
    """The first part of a JSON body that cannot be used (too deep, or unusable text), as (field, message)."""
    stack: list[tuple[str, Any, int]] = [("", data, 1)]
    while stack:
        path, value, depth = stack.pop()
        if isinstance(value, (dict, list)) and depth > MAX_JSON_DEPTH:
            return path or "body", _TOO_DEEP
        if isinstance(value, str) and not usable_text(value):
            return path or "body", _UNUSABLE_TEXT
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        for key, child in items:
            if isinstance(key, str) and not usable_text(key):
                return path or "body", _UNUSABLE_TEXT
            stack.append((f"{path}.{key}" if path else str(key), child, depth + 1))
    return None


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
