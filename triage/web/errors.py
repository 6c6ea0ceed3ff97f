"""One error renderer: domain and HTTP errors as a page or JSON, in the user's language."""

from __future__ import annotations

import logging

from flask import Flask, Response, current_app, jsonify, make_response, render_template, request
from flask_babel import gettext as _
from flask_limiter.errors import RateLimitExceeded
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from triage.db import get_session
from triage.domain.errors import DomainError, InvalidInput
from triage.hospital import base_policy
from triage.web.extensions import current_lang, login_manager
from triage.web.ratelimit import OverBudget

log = logging.getLogger(__name__)


def wants_json() -> bool:
    """Whether the client should get JSON (the API, or an explicit Accept)."""
    if request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def _titles() -> dict[int, str]:
    return {
        400: _("Bad request"),
        401: _("Please log in"),
        403: _("You may not do this"),
        404: _("Not found"),
        405: _("Not allowed"),
        409: _("Conflict"),
        413: _("Too large"),
        422: _("Please check your input"),
        429: _("Too many requests"),
        500: _("Something went wrong"),
        503: _("Temporarily unavailable"),
    }


def render_error(status: int, message: str, errors: dict[str, str] | None = None) -> tuple[Response | str, int]:
    """Render an error as JSON {message, errors: [{field, message}]} or as the error page."""
    if wants_json():
        body = {"message": message,
                "errors": [{"field": f, "message": m} for f, m in (errors or {}).items()]}
        return jsonify(body), status
    title = _titles().get(status, _("Error"))
    context = {"status": status, "title": title, "message": message, "errors": errors or {}}
    try:
        return render_template("errors/error.html", **context), status
    except OperationalError:
        # The page around the message reads the database (who is logged in, the patient pages' live policy): with
        # the database out of reach that would fail in turn and leave a bare 500 instead of the "try again" page.
        # Render the template alone, without the context processors, as a visitor sees it.
        _rollback()
        lang = current_lang()
        page = current_app.jinja_env.get_template("errors/error.html").render(
            lang=lang, hospital_name=base_policy().hospital_name(lang), current_user=login_manager.anonymous_user(),
            **context)
        return page, status


def _bearer_challenge() -> str:
    """The WWW-Authenticate challenge of an API 401 (RFC 6750): a bearer token, and whether the one sent is no good."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return 'Bearer realm="triage", error="invalid_token"'
    return 'Bearer realm="triage"'


def _rollback() -> None:
    try:
        get_session().rollback()
    except Exception:
        log.warning("rollback after an error failed", exc_info=True)


def init_app(app: Flask) -> None:
    """Register the handlers."""

    @app.errorhandler(DomainError)
    def _domain(exc: DomainError) -> tuple[Response | str, int]:
        _rollback()
        lang = current_lang()
        errors = exc.messages(lang) if isinstance(exc, InvalidInput) else (
            {exc.field: exc.text(lang)} if exc.field else {})
        return render_error(exc.status, exc.text(lang), errors)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> tuple[Response | str, int] | HTTPException:
        status = exc.code or 500
        if status < 400:
            return exc
        messages = {
            400: _("The request could not be understood. Please reload the page and try again."),
            401: _("Please log in."),
            403: _("Your role does not allow this."),
            404: _("There is nothing at this address."),
            405: _("This address does not accept this kind of request."),
            413: _("What you sent is too large."),
            429: _("Too many attempts. Please wait a minute and try again."),
        }
        message = messages.get(status, exc.description or _("Error"))
        api_401 = status == 401 and request.path.startswith("/api/")
        if api_401:
            message = _("A valid API token is required (header Authorization: Bearer <token>).")
        if status == 400 and "CSRF" in (exc.description or ""):
            message = _("This form has expired. Please reload the page and submit it again.")
        if isinstance(exc, RateLimitExceeded | OverBudget):
            # When to try again, at the latest: the exceeded limit's window (its counter restarts within it).
            window = exc.window if isinstance(exc, OverBudget) else int(exc.limit.limit.get_expiry())
            if window > 60:
                message = _("Too many attempts. Please try again later (in at most %(minutes)d minutes).",
                            minutes=-(-window // 60))
            response = make_response(render_error(status, message))
            response.headers["Retry-After"] = str(window)
            return response, status
        response = make_response(render_error(status, message))
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)  # RFC 9110: a 405 names what is allowed
        if api_401:
            response.headers["WWW-Authenticate"] = _bearer_challenge()
        return response, status

    @app.errorhandler(OperationalError)
    def _database(exc: OperationalError) -> tuple[Response | str, int]:
        log.error("database unavailable: %s", type(exc.orig).__name__ if exc.orig else "error")
        _rollback()
        return render_error(503, _("The system is busy or briefly unavailable. Nothing was lost; "
                                   "please try again in a moment."))

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> tuple[Response | str, int]:
        log.exception("unhandled error on %s %s", request.method, request.path)
        _rollback()
        return render_error(500, _("Something went wrong on our side. Please try again; "
                                   "if it keeps happening, tell the staff."))
