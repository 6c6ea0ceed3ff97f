"""The waiting-room boards: full-screen, large type, called tickets and the next ones, names masked.

A board runs unattended on a screen in a public room, so it does not use a staff login (anyone could
walk up to a logged-in screen). It opens with a long board key in its link instead: an HMAC of the area
under TRIAGE_BOARD_KEY (default: derived from the secret key). The key is sent as a query parameter,
which the access log leaves out. Supervisors and administrators find the links on /board/; changing
TRIAGE_BOARD_KEY revokes every link at once. Logged-in staff may open any board without a key.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from flask import Blueprint, abort, current_app, render_template, request, url_for
from flask.blueprints import BlueprintSetupState
from flask_login import current_user
from werkzeug.wrappers import Response

from triage.db import get_session
from triage.domain.policy import Stream
from triage.services import onsite
from triage.web.access import SUPERVISORS, staff_required
from triage.web.desk import template_helpers
from triage.web.extensions import current_lang, live_cache, login_manager

bp = Blueprint("board", __name__, url_prefix="/board")
bp.context_processor(template_helpers)

REFRESH_SECONDS = 3
_AREA_LABELS = {
    "fever": ("发热门诊候诊区", "Fever clinic waiting area"),
    "emergency": ("急诊候诊区", "Emergency waiting area"),
    "outpatient": ("门诊候诊区", "Outpatient waiting area"),
}


@bp.record_once
def _configure(state: BlueprintSetupState) -> None:
    state.app.config.setdefault("BOARD_KEY", os.environ.get("TRIAGE_BOARD_KEY", ""))


def board_key(area: str) -> str:
    """The key in an area's board link (128 bits, hex)."""
    secret = current_app.config.get("BOARD_KEY") or current_app.config["SECRET_KEY"]
    return hmac.new(str(secret).encode(), f"triage-board:{area}".encode(), hashlib.sha256).hexdigest()[:32]


def area_label(area: str, lang: str) -> str:
    """The waiting area's name in the given language."""
    zh, en = _AREA_LABELS[area]
    return en if lang == "en" else zh


def _area(area: str) -> str:
    if area not in onsite.BOARD_AREAS:
        abort(404)
    return area


def _authorise(area: str) -> Response | None:
    """None when this request may see the board; otherwise the login page (no key) or a 403 (wrong key)."""
    key = request.args.get("key", "")
    if key and hmac.compare_digest(key.encode(), board_key(area).encode()):  # str would refuse non-ASCII keys
        return None
    if current_user.is_authenticated:
        return None
    if not key:
        response: Response = login_manager.unauthorized()
        return response
    abort(403)


def _context(area: str) -> dict[str, object]:
    view = onsite.read_board(get_session(), area=area)
    key = request.args.get("key")
    return {"board": view, "area": area, "area_label": area_label(area, current_lang()),
            "partial_url": url_for("board.partial", area=area, key=key or None),
            "refresh_seconds": REFRESH_SECONDS, "fever_area": Stream.FEVER in view.streams}


@bp.get("/")
@staff_required(*SUPERVISORS)
def links() -> str:
    """The board links to open on each waiting-room screen (supervisors and administrators)."""
    areas = [(area, area_label(area, current_lang()),
              url_for("board.show", area=area, key=board_key(area), _external=True)) for area in onsite.BOARD_AREAS]
    return render_template("board/links.html", areas=areas)


@bp.get("/<area>")
def show(area: str) -> Response | str:
    """A waiting-room board, full screen."""
    area = _area(area)
    refused = _authorise(area)
    if refused is not None:
        return refused
    return render_template("board/board.html", **_context(area))


@bp.get("/<area>/partial")
def partial(area: str) -> Response:
    """The board's content, polled every few seconds; 304 when nothing changed since the last poll."""
    area = _area(area)
    refused = _authorise(area)
    if refused is not None:
        return refused
    # Every screen of an area polls the same fragment: render it once per interval (per worker).
    key = ("board", area, current_lang(), bool(request.args.get("key")))
    html = live_cache().get(key, current_app.config["LIVE_CACHE_SECONDS"],
                            lambda: render_template("board/_board.html", **_context(area)))
    response = current_app.make_response(html)
    response.headers["Cache-Control"] = "no-cache"
    response.add_etag()
    return response.make_conditional(request)
