"""The clinics' queue screens: one per stream, waiting time against target, and only the actions allowed now.

Each action form carries the case's version: if someone else acted first, the action is refused with a
409 and the screen says so; nothing is silently overwritten. The queue refreshes itself by polling an
HTML fragment (htmx), so any worker on any host can serve it.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from triage.db import get_session
from triage.domain.errors import DomainError
from triage.domain.policy import Stream
from triage.hospital import effective_policy, workflow
from triage.services import Actor, onsite
from triage.web.access import staff_required
from triage.web.desk import template_helpers
from triage.web.extensions import current_lang

bp = Blueprint("queues", __name__, url_prefix="/queues")
bp.context_processor(template_helpers)

# Shown as buttons on the row; the others sit behind "More actions" so a slip of the hand cannot end a visit.
PRIMARY_ACTIONS = ("call", "start", "complete")


def _stream(value: str) -> Stream:
    try:
        return Stream(value)
    except ValueError:
        abort(404)


_LABELS: dict[str, dict[str, str]] = {}


def _labels(lang: str) -> dict[str, str]:
    """The row texts, translated once per language: a queue of 100 rows would otherwise look each text up
    100 times on every poll (the fragment's main cost). Patterns keep their %(name)s placeholders."""
    cached = _LABELS.get(lang)
    if cached is not None:
        return cached
    _LABELS[lang] = labels = {
        "no_name": _("Name not given"), "age": _("%(age)s y"), "F": _("F"), "M": _("M"),
        "level": _("Level %(level)s"), "isolation": _("Isolation"), "minutes": _("%(minutes)s min"),
        "at_once": _("target: at once"), "target": _("target %(minutes)s min"), "overdue": _("Overdue"),
        "due_soon": _("Due soon"), "ticket_at": _("ticket %(time)s"), "slot_at": _("slot %(time)s"),
        "to_go": _("about %(minutes)s min to go"), "called_at": _("called %(time)s"),
        "calls": _("%(count)s calls"), "waited": _("waited %(minutes)s min"), "since": _("since %(time)s"),
        "call_again": _("Call again"), "more": _("More actions"), "retriage_reason": _("Reason for re-triage"),
        "refer_to": _("Refer to"), "choose": _("Choose…"), "online_followup": _("Online follow-up"),
    }
    return labels


# A clinic's screen shows the head of its waiting line (the counts cover all of it): the next patients are
# what a nurse calls, and a line of thousands would make every poll slow.
QUEUE_HEAD = 50


def _context(stream: Stream) -> dict[str, Any]:
    session = get_session()
    policy = effective_policy(session)
    wf = workflow()
    view = onsite.read_queue(session, stream=stream, policy=policy, workflow=wf, waiting_limit=QUEUE_HEAD)
    lang = current_lang()
    return {"view": view, "stream": stream, "policy": policy, "L": _labels(lang),
            "facilities": [(f.code, f.name(lang)) for f in policy.referral_facilities],
            "primary_actions": PRIMARY_ACTIONS, "board_area": _board_area(stream),
            "T": {t: wf.trigger_label(t, lang) for t in onsite.QUEUE_TRIGGERS}}


def _board_area(stream: Stream) -> str:
    return next(area for area, streams in onsite.BOARD_AREAS.items() if stream in streams)


@bp.get("/")
@staff_required()
def overview() -> str:
    """Every stream's counts, overdue waits and longest wait, with links to the queues."""
    session = get_session()
    policy = effective_policy(session)
    return render_template("queues/index.html", summary=onsite.queue_summary(session, policy=policy))


@bp.get("/<stream>")
@staff_required()
def stream(stream: str) -> str:
    """A clinic's queue screen."""
    return render_template("queues/stream.html", problem=None, **_context(_stream(stream)))


@bp.get("/<stream>/partial")
@staff_required()
def partial(stream: str) -> str:
    """The queue as an HTML fragment, polled by the screen every few seconds."""
    return render_template("queues/_queue.html", problem=None, **_context(_stream(stream)))


@bp.post("/<stream>/<reference>/<trigger>")
@staff_required()
def act(stream: str, reference: str, trigger: str) -> Response | tuple[str, int]:
    """Apply one queue action to one case, checked against the workflow and the case's version."""
    queue = _stream(stream)
    if trigger not in onsite.QUEUE_TRIGGERS:
        abort(404)
    session = get_session()
    policy = effective_policy(session)
    version_text = request.form.get("version", "")
    reason = request.form.get("reason")
    target = request.form.get("referral_target")
    try:
        encounter = onsite.queue_action(
            session, reference=reference, trigger=trigger, policy=policy, workflow=workflow(),
            actor=Actor.staff(g.staff), reason=reason, referral_target=target,
            expected_version=int(version_text) if version_text.isdecimal() else None)
    except DomainError as exc:
        session.rollback()
        lang = current_lang()
        problem = {"reference": reference, "trigger": trigger, "message": exc.text(lang), "field": exc.field,
                   "reason": reason or "", "referral_target": target or "", "status": exc.status}
        return render_template("queues/stream.html", problem=problem, **_context(queue)), exc.status
    label = workflow().trigger_label(trigger, current_lang())
    if trigger == "retriage":
        flash(_("%(ticket)s sent back to triage: record the new decision.", ticket=encounter.ticket), "info")
        return redirect(url_for("desk.triage_form", reference=encounter.reference))
    flash(_("%(ticket)s: %(action)s.", ticket=encounter.ticket, action=label), "success")
    return redirect(url_for("queues.stream", stream=queue.value))
