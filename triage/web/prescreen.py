"""Patient pages of the online pre-screen, and the staff pages for callbacks and rescheduling contacts.

Patient pages work on a small phone without JavaScript. A visit is reached by its secret status link
(`/prescreen/s/<token>`), or by its code and the phone number; either grants this browser access to the
visit in its (signed) session, which the change buttons then rely on. Nothing on these pages shows the
patient's answers.
"""

from __future__ import annotations

import io
from datetime import date
from typing import Any

import segno
from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from werkzeug.wrappers import Response as BaseResponse

from triage.db import get_db, get_session
from triage.domain.errors import Conflict, DomainError, InvalidInput, NotFound
from triage.domain.policy import Policy, Stream
from triage.domain.queue import mask_name, priority_label
from triage.domain.vocabulary import label as vocabulary_label
from triage.hospital import effective_policy, workflow
from triage.models import utcnow
from triage.notify import mask_phone, notifier_for
from triage.services import store
from triage.services.contacts import (
    CONTACT_CHANNELS,
    CONTACT_OUTCOMES,
    affected_bookings,
    callbacks_for,
    contact_attempts,
    handle_callback,
    label,
    open_callbacks,
    record_contact,
    staff_online_followup,
)
from triage.services.core import Actor, format_reference, normalize_reference
from triage.services.prescreen import (
    PrescreenRequest,
    VisitView,
    cancel_visit,
    check_prescreen,
    choose_online_followup,
    danger_signs,
    expire_if_stale,
    find_by_reference_and_phone,
    find_by_token,
    get_encounter,
    is_stale,
    move_visit,
    party_members,
    request_callback,
    submit_prescreen,
    visit_view,
)
from triage.services.slots import (
    SlotOffer,
    booking_window,
    day_parts,
    days_with_free_slots,
    describe_day,
    describe_slot,
    free_slots,
    is_bookable,
    next_free_slots,
)
from triage.services.store import ENCOUNTER, EncounterRecord
from triage.web.access import staff_required
from triage.web.extensions import current_lang, limiter
from triage.web.prescreen_forms import (
    ActionForm,
    CallbackDoneForm,
    ContactForm,
    LookupForm,
    PrescreenForm,
    SlotForm,
    StaffCancelForm,
    StaffMoveForm,
    choices,
)
from triage.web.ratelimit import DEFAULT_LIMITS, prescreen_budget

bp = Blueprint("prescreen", __name__, url_prefix="/prescreen")
staff_bp = Blueprint("contacts", __name__, url_prefix="/staff/contacts")

GRANTS = "prescreen_visits"  # session key: {reference: status token or ""}
MAX_GRANTS = 12
WAITING_STATES = ("arrived", "triaged", "waiting", "called")


def limit(name: str) -> Any:
    """A rate-limit string read from the config at request time (for Flask-Limiter decorators)."""
    return lambda: str(current_app.config.get(name, DEFAULT_LIMITS[name]))


def failed_lookup(_response: Response) -> bool:
    """Count a lookup against the guessing budget only when it failed."""
    return bool(g.get("lookup_failed"))


def _lookup_code_key() -> str:
    # Guessing phone numbers for one code from many addresses is limited too.
    return "lookup-code:" + normalize_reference(request.form.get("reference", ""))[:16]


# --- helpers ------------------------------------------------------------------------------------------------


def _policy() -> Policy:
    return effective_policy(get_session())


def _notifier() -> Any:
    return notifier_for(current_app)


def _grants() -> dict[str, str]:
    value = session.get(GRANTS)
    return dict(value) if isinstance(value, dict) else {}


def grant(reference: str, token: str | None = None) -> None:
    """Let this browser open and change the visit (after a status link, a lookup or a submission)."""
    grants = _grants()
    known = grants.pop(reference, "")
    grants[reference] = token or known
    while len(grants) > MAX_GRANTS:
        grants.pop(next(iter(grants)))
    session[GRANTS] = grants
    session.permanent = True


def _token_for(reference: str) -> str:
    return _grants().get(reference, "")


def visit_url(reference: str) -> str:
    """The best address of a visit page: its status link when this browser knows it."""
    token = _token_for(reference)
    if token:
        return url_for("prescreen.status", token=token)
    return url_for("prescreen.visit", reference=reference)


def _granted_encounter(reference: str) -> EncounterRecord:
    code = normalize_reference(reference)
    if code not in _grants():
        # The same answer whether or not the code exists: the code alone proves nothing.
        raise NotFound("请先用编号和手机号查询您的预约。",
                       "Please look up your visit with its code and your phone number.")
    return get_encounter(get_session(), code)


def _expire_lazily(encounter: EncounterRecord, policy: Policy) -> EncounterRecord:
    """Expire a stale pre-screen in a write transaction, then read it again (GET sessions only read)."""
    now = utcnow()
    if not is_stale(encounter, policy, now):
        return encounter
    write = get_db().session()
    try:
        fresh = get_encounter(write, encounter.reference)
        expire_if_stale(write, fresh, policy, now, workflow=workflow())
    finally:
        write.close()
    read = get_session()
    read.rollback()
    return get_encounter(read, encounter.reference)


def _slot_text(offer: SlotOffer, policy: Policy, lang: str) -> str:
    start, end = policy.local(offer.starts_at), policy.local(offer.ends_at)
    return f"{start:%H:%M}–{end:%H:%M}"


def _places(offer: SlotOffer) -> str:
    return _("%(count)s places left", count=offer.free) if offer.free > 1 else _("1 place left")


def _register_template_helpers(app_or_bp: Blueprint) -> None:
    @app_or_bp.context_processor
    def _helpers() -> dict[str, Any]:
        lang = current_lang()
        policy = _policy()
        today = policy.local(utcnow()).date()
        return {
            "format_reference": format_reference,
            "mask_name": mask_name,
            "mask_phone": mask_phone,
            "stream_label": lambda code: Stream(code).label(lang) if code else "",
            "state_label": lambda state: workflow().state_label(state, lang),
            "slot_time": lambda start, end: describe_slot(start, end, policy, lang, today=today),
            # On a pass (it may be printed): the date itself, never "today"/"tomorrow".
            "pass_day": lambda day: describe_day(day, lang),
            "time_range": lambda start, end: f"{policy.local(start):%H:%M}–{policy.local(end):%H:%M}",
            "local_day": lambda at: policy.local(at).date(),
            "local_time": lambda at: policy.local(at).strftime("%H:%M") if at else "",
            "local_datetime": lambda at: (f"{describe_day(policy.local(at).date(), lang, today=today)} "
                                          f"{policy.local(at):%H:%M}") if at else "",
            "day_text": lambda day: describe_day(day, lang, today=today),
            "day_parts": lambda day: day_parts(day, lang, today=today),
            "daytime": lambda offer: policy.outpatient_hours.is_open(offer.local_start),
            "offer_time": lambda offer: _slot_text(offer, policy, lang),
            "offer_places": _places,
            "contact_channel": lambda code: label(CONTACT_CHANNELS, code, lang),
            "contact_outcome": lambda code: label(CONTACT_OUTCOMES, code, lang),
            "sign_label": lambda code: vocabulary_label(code, lang),
            "flag_label": lambda flag: priority_label(flag, lang),
        }


_register_template_helpers(bp)
_register_template_helpers(staff_bp)


@bp.record_once
def _check_notifier(state: Any) -> None:
    # A misconfigured notifier stops the app at start-up, not at the first patient's booking.
    app: Flask = state.app
    notifier_for(app)


# --- the questionnaire -------------------------------------------------------------------------------------------


def _form_days(policy: Policy) -> tuple[list[date], date]:
    first, last = booking_window(policy, utcnow())
    return [date.fromordinal(d) for d in range(first.toordinal(), last.toordinal() + 1)], first


def _first_clinic_day(policy: Policy, days: list[date]) -> date:
    """The first day the outpatient clinics still open (today only before closing time)."""
    now = policy.local(utcnow())
    for day in days:
        hours = policy.outpatient_hours
        if hours.is_open_on(day) and (day > now.date() or now.hour * 60 + now.minute < hours.closes_minutes - 30):
            return day
    return days[0]


@bp.route("/", methods=["GET", "POST"])
@prescreen_budget
def start() -> BaseResponse | str | tuple[str, int]:
    """The questionnaire (also for another family member: ?family=<code of a member on this phone>)."""
    policy = _policy()
    lang = current_lang()
    days, today = _form_days(policy)
    form = PrescreenForm()
    form.setup(policy, lang, days, today)
    family_code = normalize_reference(form.family.data or request.args.get("family", ""))
    family = None
    if family_code and family_code in _grants():
        family = get_encounter(get_session(), family_code)
    if request.method == "GET":
        form.family.data = family.reference if family else ""
        if family is not None:
            form.phone.data = family.patient_phone
            form.preferred_day.data = family.visit_day.isoformat() if family.visit_day else today.isoformat()
        else:
            form.preferred_day.data = _first_clinic_day(policy, days).isoformat()
        return render_template("prescreen/form.html", form=form, hints=form.hints(lang), family=family,
                               other_errors=[])
    form.validate()
    answers = form.answers()
    prescreen = PrescreenRequest(
        name=form.name.data or "", phone=form.phone.data or "", answers=answers,
        preferred_day=form.day(), visit_reason=form.visit_reason.data or "", consent=bool(form.consent.data),
        family_of=family, lang=lang)
    decision, errors = check_prescreen(get_session(), request=prescreen, policy=policy)
    other = form.add_errors({key: (en if lang == "en" else zh) for key, (zh, en) in errors.items()})
    signs = danger_signs(answers["symptoms"], pregnant=answers.get("pregnancy_weeks") is not None)
    if form.has_errors or other:
        if signs or (decision.outcome == "route" and decision.emergency_now):
            # A danger sign stops the questionnaire even when a field is missing: never make someone with
            # chest pain correct a phone number first.
            return render_template("prescreen/emergency.html", signs=signs, hints=form.hints(lang))
        return render_template("prescreen/form.html", form=form, hints=form.hints(lang), family=family,
                               other_errors=other)
    try:
        outcome = submit_prescreen(
            get_session(), request=prescreen, workflow=workflow(), policy=policy, notifier=_notifier(),
            status_link=lambda token: url_for("prescreen.status", token=token, _external=True), checked=decision)
    except InvalidInput as exc:  # the phone's limit of live pre-screens, checked in the booking's transaction
        get_session().rollback()
        if signs or decision.emergency_now:
            return render_template("prescreen/emergency.html", signs=signs, hints=form.hints(lang))
        other = form.add_errors({key: (en if lang == "en" else zh) for key, (zh, en) in exc.errors.items()})
        return render_template("prescreen/form.html", form=form, hints=form.hints(lang), family=family,
                               other_errors=other)
    g.prescreen_created = True
    reference = outcome.encounter.reference
    grant(reference, outcome.status_token)
    if outcome.encounter.state != "directed_to_emergency":
        flash(_("Your pre-screen is saved."), "success")
    return redirect(url_for("prescreen.status", token=outcome.status_token))


@bp.get("/emergency")
def emergency() -> str:
    """Go to the emergency department now / call 120: the stop page, reachable without answering anything."""
    return render_template("prescreen/emergency.html", signs=(), hints={})


# --- a visit: status, pass, changes ---------------------------------------------------------------------------------


def _render_visit(encounter: EncounterRecord) -> str:
    policy = _policy()
    encounter = _expire_lazily(encounter, policy)
    now = utcnow()
    view = visit_view(get_session(), encounter, policy, now)
    offers: list[SlotOffer] = []
    if view.next_step == "choose_slot" and view.stream is not None and view.can_change:
        day = encounter.visit_day or policy.local(now).date()
        offers = free_slots(get_session(), policy, view.stream, day, now)[:12]
        if not offers:
            offers = next_free_slots(get_session(), policy, view.stream, after=day, now=now)
    form = SlotForm()
    form.slot.choices = choices((o.key, o.key) for o in offers)
    members = [m for m in party_members(get_session(), encounter) if m.reference in _grants()]
    token = _token_for(encounter.reference)
    return render_template(
        "prescreen/visit.html", view=view, e=encounter, offers=offers, form=form, action=ActionForm(),
        members=members, policy=policy,
        status_link=url_for("prescreen.status", token=token, _external=True) if token else "",
        refresh=encounter.state in WAITING_STATES)


@bp.get("/s/<token>")
@limiter.limit(limit("PRESCREEN_LOOKUP_LIMIT"), deduct_when=failed_lookup)
def status(token: str) -> str:
    """The status page behind the secret link (bookmark it; it was also sent by text message)."""
    try:
        encounter = find_by_token(get_session(), token)
    except NotFound:
        g.lookup_failed = True  # guessing links costs from the same budget as guessing codes
        raise
    grant(encounter.reference, token)
    return _render_visit(encounter)


@bp.get("/v/<reference>")
def visit(reference: str) -> BaseResponse | str:
    """The status page for a browser that has opened the link or looked the visit up."""
    code = normalize_reference(reference)
    if code not in _grants():
        return redirect(url_for("prescreen.lookup", reference=format_reference(code)))
    return _render_visit(get_encounter(get_session(), code))


@bp.get("/v/<reference>/pass")
def pass_page(reference: str) -> str:
    """The pass: large code, stream colour with its name, the time and a QR code; printable."""
    encounter = _granted_encounter(reference)
    policy = _policy()
    encounter = _expire_lazily(encounter, policy)
    view = visit_view(get_session(), encounter, policy)
    return render_template("prescreen/pass.html", view=view, e=encounter)


@bp.get("/v/<reference>/qr.svg")
def qr_code(reference: str) -> Response:
    """The pass's QR code (SVG), encoding only the reference code the entrance scanner types in."""
    encounter = _granted_encounter(reference)
    qr = segno.make(encounter.reference, error="m", micro=False)
    buffer = io.BytesIO()
    qr.save(buffer, kind="svg", scale=10, border=4, xmldecl=False, svgclass=None, lineclass=None,
            title=format_reference(encounter.reference))
    response = Response(buffer.getvalue(), mimetype="image/svg+xml")
    response.headers["Cache-Control"] = "private, max-age=86400"
    return response


@bp.route("/v/<reference>/move", methods=["GET", "POST"])
def move(reference: str) -> BaseResponse | str | tuple[str, int]:
    """Choose another time (or a first time when none was free)."""
    encounter = _granted_encounter(reference)
    policy = _policy()
    now = utcnow()
    stream = Stream(encounter.provisional_stream or Stream.GENERAL.value)
    form = SlotForm()
    status_code = 200
    if request.method == "POST" and not form.validate():
        status_code = 422
    elif request.method == "POST":
        try:
            move_visit(get_session(), reference=encounter.reference, slot_key=form.slot.data or "",
                       workflow=workflow(), policy=policy, notifier=_notifier())
        except (Conflict, InvalidInput) as exc:
            get_session().rollback()
            encounter = get_encounter(get_session(), encounter.reference)
            if encounter.state not in ("prescreened", "booked"):
                flash(exc.text(current_lang()), "error")  # expired or checked in meanwhile
                return redirect(visit_url(encounter.reference))
            form.slot.errors = [exc.text(current_lang())]
            status_code = exc.status
        else:
            flash(_("Your time is changed. Your pass shows the new time."), "success")
            return redirect(visit_url(encounter.reference))
    if request.method == "GET":
        encounter = _expire_lazily(encounter, policy)
    if encounter.state not in ("prescreened", "booked") or not is_bookable(policy, stream):
        return redirect(visit_url(encounter.reference))
    days = days_with_free_slots(get_session(), policy, stream, now)
    day: date | None
    try:
        day = date.fromisoformat(request.args.get("day", ""))
    except ValueError:
        day = encounter.visit_day if encounter.visit_day in days else (days[0] if days else None)
    offers = free_slots(get_session(), policy, stream, day, now) if day else []
    form.slot.choices = choices((o.key, o.key) for o in offers)
    return render_template("prescreen/move.html", e=encounter, form=form, days=days, day=day, offers=offers,
                           stream=stream, back=visit_url(encounter.reference),
                           current=encounter.slot_starts_at if encounter.slot_id else None), status_code


@bp.route("/v/<reference>/cancel", methods=["GET", "POST"])
def cancel(reference: str) -> BaseResponse | str:
    """Confirm, then cancel the visit."""
    encounter = _granted_encounter(reference)
    form = ActionForm()
    if request.method == "POST" and form.validate():
        cancel_visit(get_session(), reference=encounter.reference, workflow=workflow(), policy=_policy(),
                     notifier=_notifier())
        flash(_("Your visit is cancelled. The time is free for someone else."), "info")
        return redirect(visit_url(encounter.reference))
    return render_template("prescreen/cancel.html", e=encounter, form=form, back=visit_url(encounter.reference))


@bp.post("/v/<reference>/callback")
def callback(reference: str) -> BaseResponse:
    """Ask the hospital to call back (no free time)."""
    encounter = _granted_encounter(reference)
    if ActionForm().validate():
        request_callback(get_session(), reference=encounter.reference, workflow=workflow(), policy=_policy(),
                         notifier=_notifier())
        flash(_("We will call you at %(phone)s.", phone=mask_phone(encounter.patient_phone)), "success")
    return redirect(visit_url(encounter.reference))


@bp.post("/v/<reference>/online")
def online_followup(reference: str) -> BaseResponse:
    """Take online follow-up instead of coming in."""
    encounter = _granted_encounter(reference)
    if ActionForm().validate():
        choose_online_followup(get_session(), reference=encounter.reference, workflow=workflow(),
                               policy=_policy(), notifier=_notifier())
        flash(_("You chose online follow-up. The hospital's online clinic will call you."), "success")
    return redirect(visit_url(encounter.reference))


@bp.get("/family")
def family() -> str:
    """Every visit this browser has opened, grouped: a family's passes in one place."""
    references = list(_grants())
    encounters = store.fetch(get_session(), store.select_all().where(ENCOUNTER.c.reference.in_(references))
                             .order_by(ENCOUNTER.c.id)) if references else []
    policy = _policy()
    views = [visit_view(get_session(), e, policy) for e in encounters]
    return render_template("prescreen/family.html", views=views)


@bp.route("/lookup", methods=["GET", "POST"])
@limiter.limit(limit("PRESCREEN_LOOKUP_LIMIT"), methods=["POST"], deduct_when=failed_lookup)
@limiter.limit(limit("PRESCREEN_LOOKUP_PER_CODE_LIMIT"), key_func=_lookup_code_key, methods=["POST"],
               deduct_when=failed_lookup)
def lookup() -> BaseResponse | str:
    """Find a visit with its code and the phone number given."""
    form = LookupForm()
    if request.method == "GET" and request.args.get("reference"):
        form.reference.data = request.args["reference"][:20]
    if form.validate_on_submit():
        try:
            encounter = find_by_reference_and_phone(get_session(), form.reference.data or "", form.phone.data or "")
        except NotFound as exc:
            g.lookup_failed = True
            form.reference.errors = [exc.text(current_lang())]
        else:
            grant(encounter.reference)
            return redirect(url_for("prescreen.visit", reference=encounter.reference))
    return render_template("prescreen/lookup.html", form=form)


# --- staff: callbacks and rescheduling contacts ------------------------------------------------------------------


def _staff_actor() -> Actor:
    return Actor.staff(g.staff)


@staff_bp.get("/")
@staff_required()
def contacts_index() -> str:
    """Callback requests, online follow-up requests and bookings a policy change affects."""
    policy = _policy()
    callbacks = open_callbacks(get_session())
    affected = affected_bookings(get_session(), policy)
    return render_template("contacts/index.html", callbacks=callbacks, affected=affected, policy=policy,
                           now=utcnow())


def _staff_case(reference: str, *, contact: ContactForm | None = None, move_form: StaffMoveForm | None = None,
                cancel_form: StaffCancelForm | None = None, status_code: int = 200) -> tuple[str, int]:
    policy = _policy()
    now = utcnow()
    encounter = get_encounter(get_session(), reference)
    lang = current_lang()
    view: VisitView = visit_view(get_session(), encounter, policy, now)
    stream = Stream(encounter.provisional_stream) if encounter.provisional_stream else None
    reasons = next((a.reason_texts(lang) for a in affected_bookings(get_session(), policy, now)
                    if a.encounter.id == encounter.id), [])
    offers: list[SlotOffer] = []
    day: date | None = None
    days: list[date] = []
    if stream is not None and view.can_change and is_bookable(policy, stream):
        days = days_with_free_slots(get_session(), policy, stream, now)
        try:
            day = date.fromisoformat(request.args.get("day", ""))
        except ValueError:
            day = days[0] if days else None
        offers = free_slots(get_session(), policy, stream, day, now) if day else []
    contact = contact or ContactForm()
    contact.setup(lang)
    move_form = move_form or StaffMoveForm()
    move_form.slot.choices = choices((o.key, o.key) for o in offers)
    move_form.channel.choices = choices((code, label(CONTACT_CHANNELS, code, lang)) for code in CONTACT_CHANNELS)
    return render_template(
        "contacts/case.html", e=encounter, view=view, reasons=reasons, offers=offers, days=days, day=day,
        attempts=contact_attempts(get_session(), encounter), callbacks=callbacks_for(get_session(), encounter),
        contact=contact, move_form=move_form, cancel_form=cancel_form or StaffCancelForm(),
        done_form=CallbackDoneForm(), action=ActionForm()), status_code


@staff_bp.get("/<reference>")
@staff_required()
def contact_case(reference: str) -> tuple[str, int]:
    """One patient to contact: who, why, attempts so far, and the actions."""
    return _staff_case(reference)


@staff_bp.post("/<reference>/attempt")
@staff_required()
def contact_attempt(reference: str) -> BaseResponse | tuple[str, int]:
    """Record an attempt to reach the patient."""
    form = ContactForm()
    form.setup(current_lang())
    if not form.validate():
        return _staff_case(reference, contact=form, status_code=422)
    encounter = get_encounter(get_session(), reference)
    record_contact(get_session(), reference=encounter.reference, actor=_staff_actor(),
                   channel=form.channel.data or "", outcome=form.outcome.data or "", note=form.note.data)
    flash(_("Contact attempt recorded."), "success")
    return redirect(url_for("contacts.contact_case", reference=encounter.reference))


@staff_bp.post("/<reference>/move")
@staff_required()
def contact_move(reference: str) -> BaseResponse | tuple[str, int]:
    """Move (or book) the visit on the patient's behalf, after talking to them."""
    form = StaffMoveForm()
    if not form.validate():
        return _staff_case(reference, move_form=form, status_code=422)
    encounter = get_encounter(get_session(), reference)
    try:
        move_visit(get_session(), reference=encounter.reference, slot_key=form.slot.data or "",
                   workflow=workflow(), policy=_policy(), notifier=_notifier(), actor=_staff_actor(),
                   channel=form.channel.data or "phone")
    except (Conflict, InvalidInput) as exc:
        get_session().rollback()
        form.slot.errors = [exc.text(current_lang())]
        return _staff_case(reference, move_form=form, status_code=exc.status)
    flash(_("The visit is moved and the patient is told by text message."), "success")
    return redirect(url_for("contacts.contact_case", reference=encounter.reference))


@staff_bp.post("/<reference>/cancel")
@staff_required()
def contact_cancel(reference: str) -> BaseResponse | tuple[str, int]:
    """Cancel the visit on the patient's behalf, with the reason."""
    form = StaffCancelForm()
    if not form.validate():
        return _staff_case(reference, cancel_form=form, status_code=422)
    encounter = get_encounter(get_session(), reference)
    cancel_visit(get_session(), reference=encounter.reference, workflow=workflow(), policy=_policy(),
                 notifier=_notifier(), actor=_staff_actor(), reason=form.reason.data)
    flash(_("The visit is cancelled and the patient is told by text message."), "info")
    return redirect(url_for("contacts.contact_case", reference=encounter.reference))


@staff_bp.post("/<reference>/online")
@staff_required()
def contact_online(reference: str) -> BaseResponse:
    """Switch the visit to online follow-up, as agreed with the patient."""
    encounter = get_encounter(get_session(), reference)
    if ActionForm().validate():
        staff_online_followup(get_session(), reference=encounter.reference, workflow=workflow(),
                              policy=_policy(), notifier=_notifier(), actor=_staff_actor())
        flash(_("The visit is now an online follow-up."), "success")
    return redirect(url_for("contacts.contact_case", reference=encounter.reference))


@staff_bp.post("/callbacks/<int:callback_id>/done")
@staff_required()
def callback_done(callback_id: int) -> BaseResponse | tuple[str, int]:
    """Close a callback request with what was agreed."""
    form = CallbackDoneForm()
    target = request.form.get("reference", "")
    if not form.validate():
        flash(" ".join(str(e) for e in form.outcome.errors) or _("Write down what was agreed."), "error")
    else:
        try:
            handle_callback(get_session(), callback_id=callback_id, actor=_staff_actor(),
                            outcome=form.outcome.data or "")
        except DomainError as exc:
            get_session().rollback()
            flash(exc.text(current_lang()), "error")
        else:
            flash(_("Callback request closed."), "success")
    code = normalize_reference(target)
    if code:
        return redirect(url_for("contacts.contact_case", reference=code))
    return redirect(url_for("contacts.contacts_index"))


def register(app: Flask) -> None:
    """Register the patient and staff blueprints."""
    app.register_blueprint(bp)
    app.register_blueprint(staff_bp)


__all__ = ["bp", "grant", "register", "staff_bp", "visit_url"]
