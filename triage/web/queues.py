"""The clinics' queue screens: one per stream, waiting time against target, and only the actions allowed now.

Each action form carries the case's version: if someone else acted first, the action is refused with a
409 and the screen says so; nothing is silently overwritten. The queue refreshes itself by polling an
HTML fragment (htmx), so any worker on any host can serve it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from triage.db import get_session
from triage.domain.errors import DomainError
from triage.domain.policy import Stream
from triage.domain.queue import LIVE_STATES
from triage.hospital import effective_policy, workflow
from triage.models import utcnow
from triage.services import Actor, format_reference, onsite
from triage.web.access import staff_required
from triage.web.desk import form_version, template_helpers
from triage.web.extensions import csrf_token, current_lang

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


def _texts(lang: str) -> dict[str, Any]:
    """What every row needs in the request's language: row texts, action names, referral facilities."""
    wf = workflow()
    return {"L": _labels(lang), "T": {t: wf.trigger_label(t, lang) for t in onsite.QUEUE_TRIGGERS},
            "primary_actions": PRIMARY_ACTIONS}


def _context(stream: Stream, now: datetime | None = None) -> dict[str, Any]:
    session = get_session()
    policy = effective_policy(session)
    view = onsite.read_queue(session, stream=stream, policy=policy, workflow=workflow(), waiting_limit=QUEUE_HEAD,
                             now=now)
    return {"view": view, "stream": stream, "board_area": _board_area(stream), **_texts(current_lang())}


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


# A clinic's screen polls its list every few seconds, and a hospital has many screens on each queue: each worker
# keeps the last list it rendered for each stream and language, with the stream's queue version and the minute it
# was rendered for. A poll reads the version (one index probe): while no case has entered, moved in or left the
# queue, on any worker or host, and the minute is the same, the list is current and is sent again, with the
# screen's own CSRF token put in. A nurse never sees a patient she has just called as still waiting.
_TOKEN_SLOT = "\x00csrf\x00"  # a placeholder, never in rendered HTML (no NUL in text)  # noqa: S105  # nosec B105


@bp.get("/<stream>/partial")
@staff_required()
def partial(stream: str) -> str:
    """The queue as an HTML fragment, polled by the screen every few seconds."""
    queue = _stream(stream)
    session = get_session()
    minute = utcnow().replace(second=0, microsecond=0)
    key = (onsite.queue_version(session, queue), minute, effective_policy(session).version, workflow().version)
    lang = current_lang()
    rendered: dict[tuple[Stream, str], tuple[tuple[Any, ...], str]] = current_app.extensions.setdefault(
        "triage.queue_lists", {})
    cached = rendered.get((queue, lang))
    if cached is None or cached[0] != key:
        html = render_template("queues/_queue.html", problem=None, csrf=_TOKEN_SLOT, **_context(queue, minute))
        cached = rendered[(queue, lang)] = (key, html)
    return cached[1].replace(_TOKEN_SLOT, csrf_token())


@bp.get("/<stream>/<reference>")
@staff_required()
def case(stream: str, reference: str) -> Response | str:
    """One case of the queue with every action allowed now, the rarer ones (re-triage, refer, no-show, left) too."""
    page = _case_page(_stream(stream), reference, problem=None)
    return page if isinstance(page, Response) else page[0]


def _case_page(queue: Stream, reference: str, *, problem: dict[str, Any] | None, status: int = 200
               ) -> Response | tuple[str, int]:
    session = get_session()
    encounter = onsite.get_encounter(session, reference)
    if encounter.stream != queue.value or encounter.state not in LIVE_STATES:
        flash(_("%(ticket)s is no longer in this queue.", ticket=encounter.ticket or format_reference(reference)),
              "info")
        return redirect(url_for("queues.stream", stream=queue.value))
    lang = current_lang()
    policy = effective_policy(session)
    entry = onsite.queue_entry(encounter, policy=policy, workflow=workflow(), now=utcnow())
    return render_template("queues/case.html", e=entry, stream=queue, problem=problem,
                           facilities=[(f.code, f.name(lang)) for f in policy.referral_facilities],
                           **_texts(lang)), status


@bp.post("/<stream>/<reference>/<trigger>")
@staff_required()
def act(stream: str, reference: str, trigger: str) -> Response | tuple[str, int]:
    """Apply one queue action to one case, checked against the workflow and the case's version."""
    queue = _stream(stream)
    if trigger not in onsite.QUEUE_TRIGGERS:
        abort(404)
    session = get_session()
    policy = effective_policy(session)
    reason = request.form.get("reason")
    target = request.form.get("referral_target")
    try:
        encounter = onsite.queue_action(
            session, reference=reference, trigger=trigger, policy=policy, workflow=workflow(),
            actor=Actor.staff(g.staff), reason=reason, referral_target=target,
            expected_version=form_version(request.form.get("version")), stream=queue)
    except DomainError as exc:
        session.rollback()
        lang = current_lang()
        problem = {"reference": reference, "trigger": trigger, "message": exc.text(lang), "field": exc.field,
                   "reason": reason or "", "referral_target": target or "", "status": exc.status}
        if trigger not in PRIMARY_ACTIONS:  # sent from the case's page: show it again, with what was typed
            page = _case_page(queue, reference, problem=problem, status=exc.status)
            if not isinstance(page, Response):
                return page
        return render_template("queues/stream.html", problem=problem, **_context(queue)), exc.status
    label = workflow().trigger_label(trigger, current_lang())
    if trigger == "retriage":
        flash(_("%(ticket)s sent back to triage: record the new decision.", ticket=encounter.ticket), "info")
        return redirect(url_for("desk.triage_form", reference=encounter.reference))
    flash(_("%(ticket)s: %(action)s.", ticket=encounter.ticket, action=label), "success")
    return redirect(url_for("queues.stream", stream=queue.value))
