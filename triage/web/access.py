"""Access checks in one place: who may use which view or API endpoint."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import abort, g, request
from flask_login import current_user, login_required

from triage.db import reading
from triage.models import Role
from triage.services import user_for_token
from triage.services.staff import Staff
from triage.web.extensions import account_cache

F = TypeVar("F", bound=Callable[..., Any])

STAFF = (Role.NURSE, Role.SUPERVISOR, Role.ADMIN)
SUPERVISORS = (Role.SUPERVISOR, Role.ADMIN)
ADMINS = (Role.ADMIN,)


def safe_next(target: str | None) -> str | None:
    """`target` when it is a path of this site to go back to, else None. Browsers drop tabs and newlines from a
    URL and read a backslash as a slash, so a tab or a backslash after the first slash would lead off the site;
    and a newline in a Location header is refused by the server (a 500)."""
    if not target or not target.startswith("/") or "\\" in target \
            or any(ord(char) < 0x20 or ord(char) == 0x7F for char in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or target.startswith("//"):
        return None
    return target


def staff_required(*roles: Role) -> Callable[[F], F]:
    """A page for logged-in staff with one of `roles` (login page if anonymous, 403 if the role may not)."""
    allowed = {r.value for r in (roles or STAFF)}

    def decorate(view: F) -> F:
        @wraps(view)
        @login_required
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if current_user.role not in allowed:
                abort(403)
            g.staff = current_user.user
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorate


def api_role(*roles: Role) -> Callable[[F], F]:
    """An API endpoint for a bearer token of a user with one of `roles` (401 without, 403 if not allowed)."""
    allowed = {r.value for r in (roles or STAFF)}

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            user = bearer_user()
            if user is None:
                abort(401)
            if user.role not in allowed:
                abort(403)
            g.staff = user
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorate


def bearer_user() -> Staff | None:
    """The staff user of the request's valid bearer token, if any."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    with reading() as connection:
        return user_for_token(connection, token.strip(), account_cache())
