"""Administrators' pages: staff accounts (create, deactivate, reactivate, reset password, API tokens) and the
weekly baseline figures for the period before the system was used.

Administrators only. A new API token is shown once, in the response to the POST that issued it (never
stored, never put in a cookie or a redirect); the page is sent with Cache-Control: no-store.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, g, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Length

from triage.db import get_session
from triage.domain.errors import Conflict, DomainError, InvalidInput, NotFound
from triage.hospital import base_policy
from triage.models import Role
from triage.services import baselines, staff
from triage.web.access import ADMINS, staff_required
from triage.web.extensions import current_lang

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.context_processor
def _helpers() -> dict[str, Any]:
    policy = base_policy()
    return {"local_dt": lambda at: policy.local(at).strftime("%Y-%m-%d %H:%M") if at else ""}


class CreateUserForm(FlaskForm):
    """A new staff account."""

    username = StringField(_l("Username"), validators=[DataRequired(_l("Enter a username.")), Length(max=64)])
    display_name = StringField(_l("Name shown to colleagues"), validators=[Length(max=100)])
    role = SelectField(_l("Role"), choices=[])
    password = PasswordField(_l("First password"), validators=[DataRequired(_l("Enter a password.")),
                                                                Length(max=256)])


class PasswordForm(FlaskForm):
    """A new password set by an administrator."""

    password = PasswordField(_l("New password"), validators=[DataRequired(_l("Enter a password.")), Length(max=256)])


class TokenForm(FlaskForm):
    """A new API token."""

    label = StringField(_l("What the token is for"), validators=[DataRequired(_l("Say what the token is for.")),
                                                                 Length(max=100)])


class BaselineForm(FlaskForm):
    """A week's volumes from before the system was used."""

    week = StringField(_l("ISO week"), validators=[DataRequired(_l("Enter a week like 2025-W47.")), Length(max=10)])
    outpatient = StringField(_l("Outpatient visits"), validators=[Length(max=9)])
    emergency = StringField(_l("Emergency visits"), validators=[Length(max=9)])
    other = StringField(_l("Other visits"), validators=[Length(max=9)])


def _roles() -> list[tuple[str, str]]:
    lang = current_lang()
    return [(role.value, role.label(lang)) for role in Role]


def _create_form(data: Any = None) -> CreateUserForm:
    form = CreateUserForm(formdata=data)
    form.role.choices = _roles()
    return form


def _apply_errors(form: FlaskForm, exc: DomainError) -> None:
    messages = exc.messages(current_lang()) if isinstance(exc, InvalidInput) else (
        {exc.field: exc.text(current_lang())} if exc.field else {})
    placed = False
    for name, message in messages.items():
        field = getattr(form, name, None)
        if field is not None:
            field.errors = [*field.errors, message]
            placed = True
    if not placed:
        flash(exc.text(current_lang()), "error")


# --- staff ---------------------------------------------------------------------------------------------------


def _users_page(form: CreateUserForm, status: int = 200) -> tuple[str, int]:
    return render_template("admin/users.html", form=form, users=staff.list_users(get_session())), status


@bp.get("/staff")
@staff_required(*ADMINS)
def users() -> tuple[str, int]:
    """Every staff account, and the form to create one."""
    return _users_page(_create_form())


@bp.post("/staff")
@staff_required(*ADMINS)
def create_user() -> Response | tuple[str, int]:
    """Create a staff account."""
    form = _create_form(request.form)
    if not form.validate():
        return _users_page(form, 422)
    try:
        role = Role(form.role.data or "")
    except ValueError:
        form.role.errors = [_("Choose a role.")]
        return _users_page(form, 422)
    session = get_session()
    try:
        user = staff.create_user(session, username=form.username.data or "", password=form.password.data or "",
                                 role=role, display_name=(form.display_name.data or "").strip() or None)
    except DomainError as exc:
        session.rollback()
        _apply_errors(form, exc)
        return _users_page(form, exc.status)
    flash(_("Account %(username)s created.", username=user.username), "success")
    return redirect(url_for("admin.user", user_id=user.id))


def _user_page(user_id: int, *, password_form: PasswordForm | None = None, token_form: TokenForm | None = None,
               new_token: str | None = None, status: int = 200) -> Response:
    session = get_session()
    user = staff.user_by_id(session, user_id)
    body = render_template("admin/user.html", user=user, tokens=staff.list_tokens(session, user_id=user_id),
                           password_form=password_form or PasswordForm(formdata=None),
                           token_form=token_form or TokenForm(formdata=None), new_token=new_token,
                           is_self=user.id == g.staff.id)
    response = make_response(body, status)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/staff/<int:user_id>")
@staff_required(*ADMINS)
def user(user_id: int) -> Response:
    """One account: status, password reset, API tokens."""
    return _user_page(user_id)


@bp.post("/staff/<int:user_id>/deactivate")
@staff_required(*ADMINS)
def deactivate(user_id: int) -> Response:
    """Deactivate an account: its sessions end at once, its tokens stop working."""
    session = get_session()
    try:
        user = staff.deactivate_user(session, user_id=user_id, actor_id=g.staff.id)
    except Conflict as exc:
        session.rollback()
        flash(exc.text(current_lang()), "error")
        return redirect(url_for("admin.user", user_id=user_id))
    flash(_("%(username)s is deactivated and logged out everywhere.", username=user.username), "success")
    return redirect(url_for("admin.user", user_id=user_id))


@bp.post("/staff/<int:user_id>/reactivate")
@staff_required(*ADMINS)
def reactivate(user_id: int) -> Response:
    """Let a deactivated account log in again."""
    session = get_session()
    try:
        user = staff.reactivate_user(session, user_id=user_id)
    except Conflict as exc:
        session.rollback()
        flash(exc.text(current_lang()), "error")
        return redirect(url_for("admin.user", user_id=user_id))
    flash(_("%(username)s can log in again.", username=user.username), "success")
    return redirect(url_for("admin.user", user_id=user_id))


@bp.post("/staff/<int:user_id>/password")
@staff_required(*ADMINS)
def reset_password(user_id: int) -> Response:
    """Set a new password; the account's existing sessions end."""
    form = PasswordForm()
    if not form.validate():
        return _user_page(user_id, password_form=form, status=422)
    session = get_session()
    try:
        user = staff.reset_password(session, user_id=user_id, password=form.password.data or "")
    except DomainError as exc:
        session.rollback()
        _apply_errors(form, exc)
        return _user_page(user_id, password_form=form, status=exc.status)
    flash(_("New password set for %(username)s; their old sessions have ended.", username=user.username),
          "success")
    return redirect(url_for("admin.user", user_id=user_id))


@bp.post("/staff/<int:user_id>/tokens")
@staff_required(*ADMINS)
def issue_token(user_id: int) -> Response:
    """Issue an API token and show it once, in this response."""
    form = TokenForm()
    if not form.validate():
        return _user_page(user_id, token_form=form, status=422)
    session = get_session()
    user = staff.user_by_id(session, user_id)
    if not user.active:
        flash(_("Reactivate the account before issuing it a token."), "error")
        return _user_page(user_id, token_form=form, status=409)
    secret = staff.issue_token(session, user=user, label=(form.label.data or "").strip())
    return _user_page(user_id, new_token=secret, status=201)


@bp.post("/staff/<int:user_id>/tokens/<int:token_id>/revoke")
@staff_required(*ADMINS)
def revoke_token(user_id: int, token_id: int) -> Response:
    """Revoke an API token: it stops working at once."""
    session = get_session()
    try:
        staff.revoke_token(session, user_id=user_id, token_id=token_id)
    except (Conflict, NotFound) as exc:
        session.rollback()
        flash(exc.text(current_lang()), "error")
        return redirect(url_for("admin.user", user_id=user_id))
    flash(_("The token is revoked."), "success")
    return redirect(url_for("admin.user", user_id=user_id))


# --- weekly baselines ------------------------------------------------------------------------------------------


def _baselines_page(form: BaselineForm, status: int = 200) -> tuple[str, int]:
    return render_template("admin/baselines.html", form=form,
                           rows=baselines.list_baselines(get_session())), status


@bp.get("/baselines")
@staff_required(*ADMINS)
def baseline_list() -> tuple[str, int]:
    """The weekly baseline figures entered so far, and the form to enter or correct one."""
    form = BaselineForm(formdata=None)
    week = request.args.get("week")
    if week:
        found = baselines.find(get_session(), week)
        form.week.data = week
        if found is not None:
            form.outpatient.data, form.emergency.data, form.other.data = (
                str(found.outpatient), str(found.emergency), str(found.other))
    return _baselines_page(form)


@bp.post("/baselines")
@staff_required(*ADMINS)
def baseline_save() -> Response | tuple[str, int]:
    """Enter (or correct) one week's baseline figures."""
    form = BaselineForm()
    if not form.validate():
        return _baselines_page(form, 422)
    session = get_session()
    try:
        row = baselines.save_baseline(session, week=form.week.data or "", outpatient=form.outpatient.data,
                                      emergency=form.emergency.data, other=form.other.data, actor_id=g.staff.id)
    except DomainError as exc:
        session.rollback()
        _apply_errors(form, exc)
        return _baselines_page(form, exc.status)
    flash(_("Baseline for %(week)s saved.", week=f"{row.iso_year}-W{row.iso_week:02d}"), "success")
    return redirect(url_for("admin.baseline_list"))


@bp.post("/baselines/<int:baseline_id>/delete")
@staff_required(*ADMINS)
def baseline_delete(baseline_id: int) -> Response:
    """Remove a week's baseline (the report then uses the records, if any)."""
    session = get_session()
    try:
        baselines.delete_baseline(session, baseline_id=baseline_id)
    except NotFound as exc:
        session.rollback()
        flash(exc.text(current_lang()), "error")
    else:
        flash(_("Baseline removed."), "success")
    return redirect(url_for("admin.baseline_list"))
