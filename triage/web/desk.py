"""The entrance desk: scan or type a pass, register walk-ins, triage on one keyboard-first screen, issue tickets.

A pre-screened patient takes one scan (the scanner types the code and Enter), the measurements, and one
Enter to confirm the engine's recommendation: the triage form's first submit button is "confirm".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import BooleanField, HiddenField, RadioField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length

from triage.db import get_db, get_session
from triage.domain.assessment import Assessment as EngineResult
from triage.domain.errors import Conflict, DomainError, InvalidInput
from triage.domain.policy import Stream
from triage.domain.queue import priority_label
from triage.domain.validation import read_number
from triage.domain.vocabulary import CONDITIONS, EXPOSURE_BY_CODE, EXPOSURES, INFECTION_SYMPTOMS, NEEDS, SYMPTOMS, label
from triage.hospital import base_policy, effective_policy, workflow
from triage.models import Assessment as AssessmentRecord
from triage.models import Origin, utcnow
from triage.services import Actor, format_reference, onsite
from triage.services.store import EncounterRecord
from triage.web.access import SUPERVISORS, staff_required
from triage.web.extensions import current_lang
from triage.web.prescreen_forms import MultiCheckboxField

bp = Blueprint("desk", __name__, url_prefix="/desk")

MEASUREMENTS = ("temperature_c", "heart_rate", "respiratory_rate", "sbp", "spo2", "gcs", "pain_nrs")
PATIENT_NUMBERS = ("age_years", "age_days", "pregnancy_weeks")
# Engine and service field names -> form field names.
FIELD_ALIASES = {"override.stream": "override_stream", "override.cn_level": "override_level",
                 "override.reason": "override_reason", "reference": "code"}


def opts(pairs: Iterable[tuple[str, Any]]) -> list[SelectChoice]:
    """Choices for a select, radio or checkbox list."""
    return [SelectChoice(value, label) for value, label in pairs]


def _choices(lang: str) -> dict[str, list[tuple[str, str]]]:
    return {
        "screen": [(s.code, s.en if lang == "en" else s.zh) for s in SYMPTOMS if s.code in INFECTION_SYMPTOMS],
        "other": [(s.code, s.en if lang == "en" else s.zh) for s in SYMPTOMS if s.code not in INFECTION_SYMPTOMS],
        "conditions": [(c.code, c.en if lang == "en" else c.zh) for c in CONDITIONS],
        "needs": [(n.code, n.en if lang == "en" else n.zh) for n in NEEDS],
    }


# Built once at start-up: the vocabulary does not change while the app runs.
CHOICES = {lang: _choices(lang) for lang in ("zh", "en")}


class ScanForm(FlaskForm):
    """The scan field: a USB scanner types the pass's code and Enter into it."""

    code = StringField(_l("Pass code"), validators=[Length(max=512)])


class WalkInForm(FlaskForm):
    """A patient without a pre-screen, registered at the entrance."""

    name = StringField(_l("Name"), validators=[Length(max=100)])
    age_years = StringField(_l("Age (years)"))
    sex = RadioField(_l("Sex"), choices=opts([("F", _l("Female")), ("M", _l("Male"))]), validate_choice=False)
    arrival_mode = SelectField(_l("Arrival"), choices=opts([
        ("walk_in", _l("Walked in")), ("ambulance", _l("By ambulance")), ("carried", _l("Carried in"))]),
        validate_choice=False)
    phone = StringField(_l("Phone (optional)"), validators=[Length(max=32)])


class TriageForm(FlaskForm):
    """The on-site triage: measurements, re-asked questions, and the nurse's decision."""

    version = HiddenField()
    temperature_c = StringField(_l("Temperature"))
    heart_rate = StringField(_l("Heart rate"))
    respiratory_rate = StringField(_l("Breathing rate"))
    sbp = StringField(_l("Systolic BP"))
    spo2 = StringField(_l("SpO2"))
    on_oxygen = BooleanField(_l("On oxygen"))
    avpu = SelectField(_l("Consciousness (AVPU)"), choices=opts([
        ("", _l("Not recorded")), ("A", _l("A: alert")), ("C", _l("C: new confusion")),
        ("V", _l("V: responds to voice")), ("P", _l("P: responds to pain")), ("U", _l("U: unresponsive"))]),
        validate_choice=False)
    gcs = StringField(_l("GCS (3-15)"))
    pain_nrs = StringField(_l("Pain (0-10)"))
    epi = MultiCheckboxField(_l("Epidemiological history"), validate_choice=False)
    screen_symptoms = MultiCheckboxField(_l("Fever-clinic screening symptoms"), validate_choice=False)
    other_symptoms = MultiCheckboxField(_l("Other symptoms"), validate_choice=False)
    age_years = StringField(_l("Age (years)"))
    age_days = StringField(_l("Age in days (under one year)"))
    sex = SelectField(_l("Sex"), choices=opts([("", _l("Not recorded")), ("F", _l("Female")), ("M", _l("Male"))]),
                      validate_choice=False)
    pregnancy_weeks = StringField(_l("Pregnancy (weeks)"))
    arrival_mode = SelectField(_l("Arrival"), choices=opts([
        ("online", _l("Pre-screened online")), ("walk_in", _l("Walked in")), ("ambulance", _l("By ambulance")),
        ("carried", _l("Carried in"))]), validate_choice=False)
    chronic_conditions = MultiCheckboxField(_l("Chronic conditions"), validate_choice=False)
    needs = MultiCheckboxField(_l("Needs"), validate_choice=False)
    override_stream = SelectField(_l("Stream"), choices=opts([
        ("", _l("As recommended")), ("fever", _l("Fever clinic")), ("emergency", _l("Emergency")),
        ("general", _l("General outpatient")), ("chronic", _l("Chronic care"))]), validate_choice=False)
    override_level = SelectField(_l("Emergency level"), choices=opts([
        ("", _l("As recommended")), ("1", _l("Level 1 (critical)")), ("2", _l("Level 2 (emergent)")),
        ("3", _l("Level 3 (urgent)")), ("4", _l("Level 4 (non-urgent)"))]), validate_choice=False)
    override_reason = StringField(_l("Reason for the change"), validators=[Length(max=500)])

    def set_choices(self, lang: str) -> None:
        """The vocabulary's labels in the user's language."""
        choices = CHOICES[lang]
        self.epi.choices = opts((e.code, _epi_label(e.code, lang)) for e in EXPOSURES)
        self.screen_symptoms.choices = opts(choices["screen"])
        self.other_symptoms.choices = opts(choices["other"])
        self.chronic_conditions.choices = opts(choices["conditions"])
        self.needs.choices = opts(choices["needs"])

    def engine_input(self) -> tuple[dict[str, Any], dict[str, str]]:
        """The engine's input from the form, and the fields whose numbers could not be read."""
        data: dict[str, Any] = {}
        errors: dict[str, str] = {}
        for name in (*MEASUREMENTS, *PATIENT_NUMBERS):
            text = getattr(self, name).data
            value = parse_number(text)
            if value is None and (text or "").strip():
                errors[name] = _("Enter a number, for example %(example)s.", example=EXAMPLES[name])
            elif value is not None:
                data[name] = value
        if self.on_oxygen.data:
            data["on_oxygen"] = True
        for name in ("avpu", "sex", "arrival_mode"):
            if getattr(self, name).data:
                data[name] = getattr(self, name).data
        known = {code for code, _label in CHOICES["en"]["screen"] + CHOICES["en"]["other"]}
        data["symptoms"] = [c for c in (self.screen_symptoms.data or []) + (self.other_symptoms.data or [])
                            if c in known]
        chosen = set(self.epi.data or [])
        data["epi"] = {e.code: e.code in chosen for e in EXPOSURES}
        data["chronic_conditions"] = [c for c in self.chronic_conditions.data or [] if c in _CONDITION_CODES]
        data["needs"] = [c for c in self.needs.data or [] if c in _NEED_CODES]
        return data, errors

    def override(self) -> onsite.Override:
        """The nurse's override (raises InvalidInput when incomplete)."""
        return onsite.Override.parse(self.override_stream.data, self.override_level.data, self.override_reason.data)


EXAMPLES = {"temperature_c": "36.8", "heart_rate": "80", "respiratory_rate": "16", "sbp": "120", "spo2": "98",
            "gcs": "15", "pain_nrs": "3", "age_years": "45", "age_days": "20", "pregnancy_weeks": "32"}
_CONDITION_CODES = frozenset(c.code for c in CONDITIONS)
_NEED_CODES = frozenset(n.code for n in NEEDS)
_SCREEN_CODES = frozenset(INFECTION_SYMPTOMS)


def parse_number(text: str | None) -> int | float | None:
    """A number typed by a nurse (see read_number); None when blank or not a number."""
    try:
        return read_number(text)
    except ValueError:
        return None


def form_version(text: str | None) -> int | None:
    """The case version a form sent back (None when it sent none); InvalidInput when it is not a version."""
    value = (text or "").strip()
    if not value:
        return None
    # ASCII digits only, and few of them: int() refuses a string of more than 4,300 digits with a ValueError.
    if not (value.isascii() and value.isdecimal() and len(value) <= 18):
        raise InvalidInput({"version": ("页面上的病例版本无效，请刷新后再操作。",
                                        "The page's case version is not valid; reload the page and try again.")})
    return int(value)


def apply_errors(form: FlaskForm, exc: DomainError, lang: str) -> list[str]:
    """Put a domain error's messages beside their fields; returns the ones no field shows."""
    messages = exc.messages(lang) if isinstance(exc, InvalidInput) else (
        {exc.field or "": exc.text(lang)})
    loose = []
    for name, message in messages.items():
        target = FIELD_ALIASES.get(name, name)
        if target.startswith("epi."):
            target = "epi"
        if target == "symptoms":
            target = "screen_symptoms"
        field = getattr(form, target, None) if target else None
        if field is not None and hasattr(field, "errors") and target != "version":
            field.errors = [*list(field.errors or []), message]
        else:
            loose.append(message)
    return loose


def _epi_label(code: str, lang: str) -> str:
    exposure = EXPOSURE_BY_CODE.get(code)
    if exposure is None:
        return code
    return (exposure.en if lang == "en" else exposure.zh).format(days=base_policy().clinical.exposure_window_days)


def template_helpers() -> dict[str, Any]:
    """Formatting helpers for the desk, queue and board templates, in the request's language."""
    lang = current_lang()
    timezone = base_policy().timezone
    wf = workflow()

    def local_hm(at: datetime | None) -> str:
        """A time as HH:MM in the hospital's time zone."""
        return at.astimezone(timezone).strftime("%H:%M") if at else ""

    def stream_label(value: str | Stream | None) -> str:
        """A stream's name in the request's language."""
        try:
            return Stream(value).label(lang) if value else ""
        except ValueError:
            return str(value)

    return {
        "fmt_ref": format_reference,
        "local_hm": local_hm,
        "stream_label": stream_label,
        "state_label": lambda state: wf.state_label(state, lang),
        "trigger_label": lambda trigger: wf.trigger_label(trigger, lang),
        "flag_label": lambda flag: priority_label(flag, lang),
        "vocab_label": lambda code: label(code, lang),
        "epi_label": lambda code: _epi_label(code, lang),
        "reason_texts": lambda result: onsite.reason_texts(result, lang),
        "isolation_needed": onsite.isolation_needed,
        "now_utc": utcnow,
    }


bp.context_processor(template_helpers)


def _actor() -> Actor:
    return Actor.staff(g.staff)


def _may_lower_critical() -> bool:
    # Under-triage of a level 1-2 patient is the error that harms most: only supervisors may lower it.
    return g.staff.role in {r.value for r in SUPERVISORS}


# --- the desk screen ---------------------------------------------------------------------------------------


def _render_desk(scan: ScanForm, walk_in: WalkInForm, status: int = 200) -> tuple[str, int]:
    session = get_session()
    policy = effective_policy(session)
    return render_template(
        "desk/index.html", scan=scan, walk_in=walk_in, awaiting=onsite.awaiting_triage(session),
        recent=onsite.recent_tickets(session, policy=policy), policy=policy,
    ), status


@bp.get("/")
@staff_required()
def index() -> tuple[str, int]:
    """The desk: scan field (focused), walk-in registration, and the patients awaiting triage."""
    return _render_desk(ScanForm(formdata=None), WalkInForm(formdata=None))


@bp.get("/lists")
@staff_required()
def lists() -> str:
    """The desk's side lists (awaiting triage, recent tickets), polled to stay current."""
    session = get_session()
    policy = effective_policy(session)
    return render_template("desk/_lists.html", awaiting=onsite.awaiting_triage(session),
                           recent=onsite.recent_tickets(session, policy=policy), policy=policy)


@bp.post("/check-in")
@staff_required()
def check_in() -> Response | tuple[str, int]:
    """Check in the scanned or typed pass, then open its triage form."""
    scan = ScanForm()
    if not scan.validate_on_submit():
        return _render_desk(scan, WalkInForm(formdata=None), 422)
    session = get_session()
    policy = effective_policy(session)
    try:
        encounter = onsite.check_in(session, code=scan.code.data or "", policy=policy, workflow=workflow(),
                                    actor=_actor())
    except onsite.AlreadyCheckedIn as exc:
        if exc.state == "arrived":
            flash(_("%(reference)s is already checked in: continue the triage.",
                    reference=format_reference(exc.reference)), "info")
            return redirect(url_for("desk.triage_form", reference=exc.reference))
        scan.code.errors = [exc.text(current_lang())]
        return _render_desk(scan, WalkInForm(formdata=None), exc.status)
    except DomainError as exc:
        scan.code.errors = [exc.text(current_lang())]
        return _render_desk(scan, WalkInForm(formdata=None), exc.status)
    flash(_("%(reference)s checked in.", reference=format_reference(encounter.reference)), "success")
    return redirect(url_for("desk.triage_form", reference=encounter.reference))


@bp.post("/walk-ins")
@staff_required()
def walk_in() -> Response | tuple[str, int]:
    """Register a walk-in and open the triage form."""
    form = WalkInForm()
    if not form.validate_on_submit():
        return _render_desk(ScanForm(formdata=None), form, 422)
    session = get_session()
    age = parse_number(form.age_years.data)
    patient = onsite.WalkIn(age_years=form.age_years.data if age is None else age, name=form.name.data,
                            phone=form.phone.data, sex=form.sex.data, arrival_mode=form.arrival_mode.data or "walk_in")
    try:
        encounter = onsite.register_walk_in(session, patient=patient, policy=effective_policy(session),
                                            workflow=workflow(), actor=_actor())
    except DomainError as exc:
        loose = apply_errors(form, exc, current_lang())
        for message in loose:
            flash(message, "error")
        return _render_desk(ScanForm(formdata=None), form, exc.status)
    flash(_("Walk-in registered: %(reference)s.", reference=format_reference(encounter.reference)), "success")
    return redirect(url_for("desk.triage_form", reference=encounter.reference, arrival=patient.arrival_mode))


# --- triage ------------------------------------------------------------------------------------------------


def _prefill(form: TriageForm, encounter: EncounterRecord, records: list[AssessmentRecord]) -> None:
    """Fill the re-asked questions from the latest assessment (online answers, or the last on-site one)."""
    latest = records[-1].inputs if records else {}
    symptoms = [c for c in latest.get("symptoms") or [] if isinstance(c, str)]
    form.screen_symptoms.data = [c for c in symptoms if c in _SCREEN_CODES]
    form.other_symptoms.data = [c for c in symptoms if c not in _SCREEN_CODES]
    epi = latest.get("epi") or {}
    form.epi.data = [code for code, answer in epi.items() if answer is True] if isinstance(epi, Mapping) else []
    form.chronic_conditions.data = [c for c in latest.get("chronic_conditions") or [] if c in _CONDITION_CODES]
    form.needs.data = [c for c in latest.get("needs") or [] if c in _NEED_CODES]
    age = latest.get("age_years", encounter.age_years)
    form.age_years.data = "" if age is None else f"{age:g}" if isinstance(age, float) else str(age)
    days = latest.get("age_days") or request.args.get("age_days")
    form.age_days.data = "" if days is None else str(days)
    weeks = latest.get("pregnancy_weeks")
    form.pregnancy_weeks.data = "" if weeks is None else str(weeks)
    form.sex.data = encounter.sex or latest.get("sex") or ""
    arrival = request.args.get("arrival") or latest.get("arrival_mode")
    if encounter.origin == Origin.ONLINE.value:
        arrival = "online"
    form.arrival_mode.data = arrival if arrival in ("online", "walk_in", "ambulance", "carried") else "walk_in"
    form.version.data = str(encounter.version)


def _render_triage(form: TriageForm, encounter: EncounterRecord, records: list[AssessmentRecord],
                   result: EngineResult | None, status: int = 200, loose: list[str] | None = None
                   ) -> tuple[str, int]:
    online = next((r for r in records if r.stage == "online"), None)
    previous = next((r for r in reversed(records) if r.stage == "onsite"), None)
    return render_template(
        "desk/triage.html", form=form, encounter=encounter, online=online, previous=previous, result=result,
        loose=loose or [], may_lower_critical=_may_lower_critical(),
        retriage_reason=onsite.retriage_reason(get_session(), encounter),
    ), status


@bp.route("/<reference>/triage", methods=["GET", "POST"])
@staff_required()
def triage_form(reference: str) -> Response | tuple[str, int]:
    """The triage screen: measurements, re-asked questions, live recommendation, confirm or override."""
    session = get_session()
    policy = effective_policy(session)
    encounter = onsite.get_encounter(session, reference)
    lang = current_lang()
    records = onsite.assessments_of(session, encounter)
    form = TriageForm()
    form.set_choices(lang)
    if request.method == "GET":
        if encounter.state != "arrived":
            if encounter.ticket and encounter.state in onsite.TICKETED_STATES:
                return redirect(url_for("desk.ticket", reference=encounter.reference))
            flash(_("%(reference)s is not awaiting triage (%(state)s): scan the pass to check the patient in.",
                    reference=format_reference(encounter.reference),
                    state=workflow().state_label(encounter.state, lang)), "warning")
            return redirect(url_for("desk.index"))
        form = TriageForm(formdata=None)
        form.set_choices(lang)
        _prefill(form, encounter, records)
        data, _errors = form.engine_input()
        return _render_triage(form, encounter, records, onsite.preview(encounter, data, policy=policy))

    if not form.validate_on_submit():
        return _render_triage(form, encounter, records, None, 422)
    data, number_errors = form.engine_input()
    for name, message in number_errors.items():
        getattr(form, name).errors = [message]
    if number_errors:
        return _render_triage(form, encounter, records, None, 422)
    if request.form.get("action") == "preview":
        return _render_triage(form, encounter, records, onsite.preview(encounter, data, policy=policy))
    try:
        override = form.override()
        version = form_version(form.version.data)
        decision = onsite.triage(session, reference=encounter.reference, data=data, override=override,
                                 policy=policy, workflow=workflow(), actor=_actor(),
                                 may_lower_critical=_may_lower_critical(), expected_version=version)
    except DomainError as exc:
        session.rollback()
        loose = apply_errors(form, exc, lang)
        encounter = onsite.get_encounter(session, reference)
        if isinstance(exc, Conflict):
            form.version.data = str(encounter.version)
        return _render_triage(form, encounter, records, onsite.preview(encounter, data, policy=policy),
                              exc.status, loose)
    flash(_("Ticket %(ticket)s issued.", ticket=decision.encounter.ticket), "success")
    return redirect(url_for("desk.ticket", reference=encounter.reference))


@bp.post("/<reference>/preview")
@staff_required()
def preview(reference: str) -> str:
    """The engine's recommendation for the form as typed so far (an HTML fragment; nothing stored)."""
    form = TriageForm()
    form.set_choices(current_lang())
    if not form.validate_on_submit():
        abort(400)
    data, errors = form.engine_input()
    # A read-only session: the preview runs on every pause in typing and must never take SQLite's write lock.
    with get_db().session(readonly=True) as session:
        policy = effective_policy(session)
        encounter = onsite.get_encounter(session, reference)
        result = None if errors else onsite.preview(encounter, data, policy=policy)
        return render_template("desk/_recommendation.html", result=result, number_errors=errors,
                               encounter=encounter, live=True)


@bp.get("/<reference>/ticket")
@staff_required()
def ticket(reference: str) -> str:
    """The ticket just issued, with the escort instruction for fever and isolation cases."""
    session = get_session()
    encounter = onsite.get_encounter(session, reference)
    if not encounter.ticket:
        abort(404)
    records = onsite.assessments_of(session, encounter)
    decision = next((r for r in reversed(records) if r.stage == "onsite"), None)
    return render_template("desk/ticket.html", encounter=encounter, decision=decision,
                           escort=onsite.escort_for(encounter))
