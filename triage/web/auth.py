"""Staff login and logout."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from triage.db import get_session
from triage.services import authenticate
from triage.services.staff import Staff
from triage.web.access import safe_next
from triage.web.extensions import LoginUser, limiter

bp = Blueprint("auth", __name__)


class LoginForm(FlaskForm):
    """Staff login."""

    username = StringField(_l("Username"), validators=[DataRequired(_l("Enter your username.")),
                                                        Length(max=64)])
    password = PasswordField(_l("Password"), validators=[DataRequired(_l("Enter your password.")),
                                                          Length(max=256)])


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit("10 per minute;50 per hour", methods=["POST"])
def login() -> Response | str:
    """Log a member of staff in."""
    if current_user.is_authenticated:
        return redirect(url_for("main.index"))
    form = LoginForm()
    if form.validate_on_submit():
        user = authenticate(get_session(), form.username.data or "", form.password.data or "")
        if user is None:
            form.password.errors = [_("Wrong username or password, or the account is deactivated.")]
        else:
            session.clear()
            session.permanent = True  # expires after PERMANENT_SESSION_LIFETIME without activity
            login_user(LoginUser(Staff.of(user)))
            flash(_("Welcome, %(name)s.", name=user.display_name), "success")
            return redirect(safe_next(request.args.get("next")) or url_for("main.index"))
    return render_template("auth/login.html", form=form)


@bp.route("/logout", methods=["POST"])
def logout() -> Response:
    """Log out (POST with CSRF, so a link cannot log someone out)."""
    logout_user()
    session.clear()
    flash(_("You are logged out."), "info")
    return redirect(url_for("auth.login"))
