"""The start page and small shared routes."""

from __future__ import annotations

from flask import Blueprint, jsonify, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from triage.web.access import safe_next

bp = Blueprint("main", __name__)


@bp.route("/")
def index() -> str:
    """Start page: patients begin the pre-screen; staff see their work."""
    return render_template("main/index.html", staff=current_user if current_user.is_authenticated else None)


@bp.route("/lang/<code>")
def switch_language(code: str) -> Response:
    """Switch the interface language and go back to where the user was."""
    response = redirect(safe_next(request.args.get("next")) or url_for("main.index"))
    if code in ("zh", "en"):
        response.set_cookie("lang", code, max_age=365 * 24 * 3600, samesite="Lax", httponly=True)
    return response


@bp.route("/healthz")
def healthz() -> Response:
    """Liveness probe (and the benchmark's framework floor)."""
    return jsonify(status="ok")
