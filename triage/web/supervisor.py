"""Supervisors' pages: the live dashboard and its charts, the workflow diagram, the quality of triage, the
policy change (preview, then confirm), the audit trail and the reports (page, printable page, CSV).

Supervisors and administrators only. Views are thin: read the request, call one service, render. The
dashboard refreshes itself by polling an HTML fragment and a JSON document (no state in any process).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import Blueprint, Response, current_app, flash, g, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response as BaseResponse
from wtforms import HiddenField, RadioField, StringField, TextAreaField
from wtforms.validators import Length

from triage.db import get_session
from triage.domain.errors import Conflict, DomainError, InvalidInput
from triage.domain.policy import Policy, RiskLevel, Stream
from triage.domain.queue import mask_name
from triage.domain.reports import display_minutes, display_pct, percentile
from triage.hospital import base_policy, effective_policy, workflow
from triage.models import utcnow
from triage.services import Actor, format_reference, normalize_reference, oversight, policy_admin
from triage.services import audit as audit_service
from triage.services import reports as report_service
from triage.services.contacts import AffectedBooking
from triage.web.access import SUPERVISORS, staff_required
from triage.web.desk import template_helpers
from triage.web.extensions import current_lang, live_cache

bp = Blueprint("supervisor", __name__, url_prefix="/supervisor")
bp.context_processor(template_helpers)

POLL_SECONDS = 5
CHART_POLL_SECONDS = 30


@bp.context_processor
def _helpers() -> dict[str, Any]:
    lang = current_lang()
    policy = base_policy()
    return {
        "minutes": display_minutes,
        "pct": display_pct,
        "risk_label": lambda value: RiskLevel(value).label(lang),
        "decision_label": lambda code: report_service.decision_label(code, lang),
        "local_dt": lambda at: policy.local(at).strftime("%Y-%m-%d %H:%M") if at else "",
        "local_dts": lambda at: policy.local(at).strftime("%Y-%m-%d %H:%M:%S") if at else "",
        "fmt_ref": format_reference,
        "mask": mask_name,
        "streams": list(Stream),
    }


def _policy() -> Policy:
    return effective_policy(get_session())


# --- dashboard ---------------------------------------------------------------------------------------------


def _dashboard(policy: Policy) -> oversight.Dashboard:
    """Today's dashboard; every supervisor's screen polls it, so it is computed once per interval per worker."""
    return live_cache().get(("dashboard", policy.version), current_app.config["LIVE_CACHE_SECONDS"],
                            lambda: oversight.dashboard(get_session(), policy=policy, workflow=workflow()))


def _dashboard_context() -> dict[str, Any]:
    policy = _policy()
    return {"board": _dashboard(policy), "policy": policy, "wall": request.args.get("wall") == "1"}


@bp.get("/")
@staff_required(*SUPERVISORS)
def dashboard() -> str:
    """The live dashboard: every stream at a glance, who is over target, isolation cases, today's charts."""
    return render_template("supervisor/dashboard.html", poll=POLL_SECONDS, chart_poll=CHART_POLL_SECONDS,
                           **_dashboard_context())


@bp.get("/live")
@staff_required(*SUPERVISORS)
def live() -> str:
    """The dashboard's numbers as an HTML fragment, polled every few seconds."""
    return render_template("supervisor/_live.html", **_dashboard_context())


@bp.get("/charts.json")
@staff_required(*SUPERVISORS)
def charts() -> Response:
    """Today's chart data: arrivals against booked slots, waits over the day, stream mix, waits per acuity."""
    lang = current_lang()
    board = _dashboard(_policy())
    streams = [s for s in Stream]
    body = {
        "day": board.day.isoformat(),
        "hours": [f"{h:02d}" for h in range(24)],
        "arrivals": [{"key": s.value, "label": s.label(lang), "data": board.arrivals_by_hour[s.value]}
                     for s in streams]
                    + [{"key": "untriaged", "label": _("Not yet triaged"),
                        "data": board.arrivals_by_hour[oversight.UNTRIAGED]}],
        "booked": board.booked_total,
        "wait_by_hour": [None if m is None else round(m, 1) for m in board.wait_by_hour],
        "mix": [{"key": s.value, "label": s.label(lang),
                 "value": n.arrivals_online + n.arrivals_walk_in} for s, n in zip(streams, board.streams, strict=True)],
        "wait_groups": [{"key": g.key, "label": _group_label(g, lang), "count": len(g.waits),
                         "median": _round(g.median), "p90": _round(_p90(g.waits)), "target": g.target_minutes,
                         "over": g.over_target} for g in board.wait_groups],
        "labels": {
            "arrivals": _("Arrivals"), "booked": _("Booked into slots"), "median_wait": _("Median wait (min)"),
            "minutes": _("Minutes"), "patients": _("Patients"), "hour": _("Hour"), "target": _("Target"),
            "p90": _("90th percentile"), "median": _("Median"),
        },
    }
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _p90(values: tuple[float, ...]) -> float | None:
    return percentile(values, 90)


def _group_label(group: oversight.WaitGroup, lang: str) -> str:
    if group.level is not None:
        return _("Emergency level %(level)s", level=group.level)
    return group.stream.label(lang)


@bp.get("/workflow")
@staff_required(*SUPERVISORS)
def workflow_diagram() -> str:
    """The case workflow as a diagram, with today's count in each state."""
    session = get_session()
    wf = workflow()
    counts = oversight.state_counts(session, workflow=wf, policy=_policy())
    source = oversight.localized_mermaid(wf, counts, current_lang())
    return render_template("supervisor/workflow.html", source=source, counts=counts, wf=wf)


# --- quality of triage -------------------------------------------------------------------------------------


@bp.get("/quality")
@staff_required(*SUPERVISORS)
def quality() -> tuple[str, int] | str:
    """How often the on-site decision differs from the online recommendation, and the overrides' reasons."""
    policy = _policy()
    today = policy.local(utcnow()).date()
    first_text, last_text = request.args.get("first", ""), request.args.get("last", "")
    try:
        first, last = oversight.parse_period(first_text, last_text, today=today)
    except InvalidInput as exc:
        return render_template("supervisor/quality.html", result=None, errors=exc.messages(current_lang()),
                               first=first_text, last=last_text), 422
    result = oversight.quality(get_session(), policy=policy, first=first, last=last)
    return render_template("supervisor/quality.html", result=result, errors={}, first=first.isoformat(),
                           last=last.isoformat())


# --- policy at hand ------------------------------------------------------------------------------------------


class PolicyForm(FlaskForm):
    """The supervisor's change of risk level and capacities."""

    region_risk_level = RadioField(_l("Regional risk level"), choices=[], validate_choice=False)
    capacity_fever = StringField(_l("Fever clinic"), validators=[Length(max=6)])
    capacity_emergency = StringField(_l("Emergency"), validators=[Length(max=6)])
    capacity_general = StringField(_l("General outpatient"), validators=[Length(max=6)])
    capacity_chronic = StringField(_l("Chronic care"), validators=[Length(max=6)])
    reason = TextAreaField(_l("Why (kept in the log)"), validators=[Length(max=policy_admin.REASON_MAX + 100)])
    based_on = HiddenField()


def _policy_form(policy: Policy, data: Any = None) -> PolicyForm:
    form = PolicyForm(formdata=data)
    lang = current_lang()
    form.region_risk_level.choices = [(level.value, level.label(lang)) for level in RiskLevel]
    if data is None:
        form.region_risk_level.data = policy.region_risk_level.value
        for stream in policy_admin.bookable_streams(policy):
            getattr(form, f"capacity_{stream.value}").data = str(policy.streams[stream].capacity_per_slot)
    for stream in Stream:
        field = getattr(form, f"capacity_{stream.value}")
        field.label.text = stream.label(lang)
    return form


def _policy_page(form: PolicyForm, status: int = 200) -> tuple[str, int]:
    session = get_session()
    base = base_policy()
    current = _policy()
    return render_template(
        "supervisor/policy.html", form=form, policy=current, base=base,
        bookable=policy_admin.bookable_streams(current),
        history=policy_admin.change_history(session, base=base)), status


def _proposal(form: PolicyForm, policy: Policy) -> policy_admin.Proposal:
    return policy_admin.parse_proposal(
        policy, region_risk_level=form.region_risk_level.data,
        capacities={s.value: getattr(form, f"capacity_{s.value}").data for s in Stream},
        reason=form.reason.data)


def _field_errors(form: PolicyForm, exc: InvalidInput) -> None:
    for name, message in exc.messages(current_lang()).items():
        field = getattr(form, name, None)
        if field is not None:
            field.errors = [*field.errors, message]


@bp.route("/policy", methods=["GET", "POST"])
@staff_required(*SUPERVISORS)
def policy() -> tuple[str, int]:
    """The current risk level and capacities, the change form and the history of changes.

    POST only re-shows the form with the values sent (the preview's "change" button): nothing is changed.
    """
    current = _policy()
    form = _policy_form(current, request.form if request.method == "POST" else None)
    return _policy_page(form)


@bp.post("/policy/preview")
@staff_required(*SUPERVISORS)
def policy_preview() -> tuple[str, int]:
    """Show the effect of the change (bookings beyond the new capacity, patients to contact) before confirming."""
    current = _policy()
    form = _policy_form(current, request.form)
    if not form.validate():
        return _policy_page(form, 422)
    try:
        proposal = _proposal(form, current)
    except InvalidInput as exc:
        _field_errors(form, exc)
        return _policy_page(form, 422)
    preview = policy_admin.preview_change(get_session(), base=base_policy(), current=current, proposal=proposal)
    return _preview_page(form, preview)


def _preview_page(form: PolicyForm, preview: policy_admin.Preview, problem: str | None = None,
                  status: int = 200) -> tuple[str, int]:
    form.based_on.data = str(preview.based_on)
    return render_template("supervisor/policy_preview.html", form=form, preview=preview, problem=problem,
                           affected=_affected_rows(preview.affected)), status


def _affected_rows(affected: list[AffectedBooking]) -> list[AffectedBooking]:
    return sorted(affected, key=lambda a: (a.encounter.slot_starts_at or utcnow(), a.encounter.id or 0))


@bp.post("/policy/confirm")
@staff_required(*SUPERVISORS)
def policy_confirm() -> BaseResponse | tuple[str, int]:
    """Apply the previewed change: versioned, logged with who and why; future slots take the new capacities."""
    session = get_session()
    current = _policy()
    form = _policy_form(current, request.form)
    if not form.validate():
        return _policy_page(form, 422)
    text = form.based_on.data or ""
    based_on = int(text) if text.isdecimal() and len(text) <= 18 else -1  # Python refuses int() of 4,301 digits
    try:
        proposal = _proposal(form, current)
    except InvalidInput as exc:
        _field_errors(form, exc)
        try:
            # Read against a policy changed since the preview (perhaps into this very proposal), the input may look
            # wrong: the change is what the supervisor needs to hear about.
            if based_on >= 0:
                policy_admin.check_based_on(session, based_on)
        except Conflict as stale:
            flash(stale.text(current_lang()), "error")
            return _policy_page(form, 409)
        return _policy_page(form, 422)
    try:
        change = policy_admin.apply_proposal(session, base=base_policy(), proposal=proposal,
                                             actor=Actor.staff(g.staff), based_on=based_on)
    except Conflict as exc:
        session.rollback()
        fresh = effective_policy(session)
        preview = policy_admin.preview_change(session, base=base_policy(), current=fresh, proposal=proposal)
        return _preview_page(form, preview, problem=exc.text(current_lang()), status=409)
    version = policy_admin.version_of(base_policy(), change)
    flash(_("The policy is changed (version %(version)s). Contact the patients listed under Patient contacts.",
            version=version), "success")
    return redirect(url_for("supervisor.policy"))


# --- audit ---------------------------------------------------------------------------------------------------


@bp.get("/audit")
@staff_required(*SUPERVISORS)
def audit() -> tuple[str, int] | str:
    """The audit log, newest first, filtered by staff member, stream and day."""
    session = get_session()
    args = request.args
    values = {k: args.get(k, "") for k in ("staff", "stream", "day")}
    try:
        where = audit_service.parse_log_filter(staff=values["staff"], stream=values["stream"], day=values["day"],
                                               before=args.get("before"))
    except InvalidInput as exc:
        return render_template("supervisor/audit.html", page=None, values=values,
                               errors=exc.messages(current_lang()),
                               staff=audit_service.staff_choices(session)), 422
    page = audit_service.audit_log(session, policy=_policy(), where=where, limit=audit_service.PAGE_SIZE)
    return render_template("supervisor/audit.html", page=page, values=values, errors={}, where=where,
                           staff=audit_service.staff_choices(session))


@bp.get("/audit/case")
@staff_required(*SUPERVISORS)
def audit_lookup() -> BaseResponse:
    """Find a case by its reference code (typed or scanned)."""
    reference = (request.args.get("reference") or "").strip()
    if not reference:
        flash(_("Enter a reference code."), "error")
        return redirect(url_for("supervisor.audit"))
    return redirect(url_for("supervisor.audit_case", reference=normalize_reference(reference)))


@bp.get("/audit/<reference>")
@staff_required(*SUPERVISORS)
def audit_case(reference: str) -> str:
    """A case's full history: assessments, every transition with actor, time and reason, contacts."""
    history = audit_service.case_history(get_session(), reference)
    return render_template("supervisor/case.html", history=history)


# --- reports --------------------------------------------------------------------------------------------------


def _today() -> date:
    return _policy().local(utcnow()).date()


@bp.get("/reports")
@staff_required(*SUPERVISORS)
def reports() -> str:
    """Choose a daily or weekly report."""
    today = _today()
    return render_template("supervisor/reports.html", today=today.isoformat(),
                           last_week=str(report_service.parse_week("", today=today)), errors={})


def _daily() -> tuple[report_service.DailyReport, list[report_service.Table], str]:
    policy = _policy()
    lang = current_lang()
    day = report_service.parse_day(request.args.get("day"), today=_today())
    report = report_service.daily_report(get_session(), policy=policy, day=day)
    return report, report_service.daily_tables(report, lang), report_service.daily_title(
        report, policy.hospital_name(lang), lang)


def _weekly() -> tuple[report_service.WeeklyReport, list[report_service.Table], str]:
    policy = _policy()
    lang = current_lang()
    week = report_service.parse_week(request.args.get("week"), today=_today())
    report = report_service.weekly_report(get_session(), policy=policy, week=week)
    return report, report_service.weekly_tables(report, lang), report_service.weekly_title(
        report, policy.hospital_name(lang), lang)


def _report_error(kind: str, exc: DomainError) -> tuple[str, int]:
    today = _today()
    errors = exc.messages(current_lang()) if isinstance(exc, InvalidInput) else {kind: exc.text(current_lang())}
    return render_template("supervisor/reports.html", today=today.isoformat(),
                           last_week=str(report_service.parse_week("", today=today)), errors=errors,
                           day_value=request.args.get("day", ""), week_value=request.args.get("week", "")), 422


@bp.get("/reports/daily")
@staff_required(*SUPERVISORS)
def daily() -> tuple[str, int] | str:
    """The daily report (add print=1 for the printable page)."""
    try:
        report, tables, title = _daily()
    except InvalidInput as exc:
        return _report_error("day", exc)
    return render_template("supervisor/report.html", title=title, tables=tables, kind="daily",
                           key=report.day.isoformat(), printable=request.args.get("print") == "1",
                           generated=report.generated_at, prev=(report.day.fromordinal(report.day.toordinal() - 1)),
                           next=(report.day.fromordinal(report.day.toordinal() + 1)))


@bp.get("/reports/daily.csv")
@staff_required(*SUPERVISORS)
def daily_csv() -> Response | tuple[str, int]:
    """The daily report as CSV (UTF-8 with BOM, so spreadsheets read Chinese correctly)."""
    try:
        report, tables, title = _daily()
    except InvalidInput as exc:
        return _report_error("day", exc)
    return _csv(report_service.tables_csv(title, tables), f"daily-report-{report.day.isoformat()}.csv")


@bp.get("/reports/weekly")
@staff_required(*SUPERVISORS)
def weekly() -> tuple[str, int] | str:
    """The weekly restoration report (add print=1 for the printable page)."""
    try:
        report, tables, title = _weekly()
    except InvalidInput as exc:
        return _report_error("week", exc)
    return render_template("supervisor/report.html", title=title, tables=tables, kind="weekly", key=str(report.week),
                           printable=request.args.get("print") == "1", generated=report.generated_at,
                           prev=str(report.week.shifted(-1)), next=str(report.week.shifted(1)), weekly=report)


@bp.get("/reports/weekly.csv")
@staff_required(*SUPERVISORS)
def weekly_csv() -> Response | tuple[str, int]:
    """The weekly restoration report as CSV."""
    try:
        report, tables, title = _weekly()
    except InvalidInput as exc:
        return _report_error("week", exc)
    return _csv(report_service.tables_csv(title, tables), f"weekly-report-{report.week}.csv")


def _csv(body: str, filename: str) -> Response:
    response = Response("\ufeff" + body, mimetype="text/csv; charset=utf-8")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response
