"""Flask extensions: CSRF, login sessions, languages, rate limits and security headers."""

from __future__ import annotations

import io
from typing import Any

from flask import Flask, Request, Response, abort, current_app, g, request, session
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface, SessionMixin
from flask_babel import Babel, get_translations
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect, generate_csrf
from itsdangerous import BadSignature, TimestampSigner

from triage.db import reading
from triage.domain.errors import InvalidInput
from triage.services.staff import AccountCache, Staff, staff_by_id
from triage.ttlcache import TTLCache

LANGUAGES = ("zh", "en")

csrf = CSRFProtect()
babel = Babel()
login_manager = LoginManager()
limiter = Limiter(key_func=get_remote_address, default_limits=[])


def current_lang() -> str:
    """The language of this request: ?lang=, then the cookie, then the browser, then Chinese."""
    if "lang" in g:
        lang: str = g.lang
        return lang
    # `in` before reading: werkzeug's get() raises and catches a KeyError for every absent key.
    choice = request.args["lang"] if "lang" in request.args else None  # noqa: SIM401
    if choice not in LANGUAGES and "lang" in request.cookies:
        choice = request.cookies["lang"]
    if choice not in LANGUAGES:
        choice = (request.accept_languages.best_match(LANGUAGES, default="zh")
                  if "Accept-Language" in request.headers else "zh")
    g.lang = choice
    return choice or "zh"


def _locale() -> str:
    return current_lang()


def _translations() -> Any:
    """The request's translations, looked up once per locale: Flask-Babel finds them again for every string, and a
    polled page with a few dozen strings spent a seventh of its time there."""
    ctx = g.get("_flask_babel")
    locale = getattr(ctx, "babel_locale", None)
    cached = getattr(ctx, "triage_translations", None)
    if ctx is not None and locale is not None and cached is not None and cached[0] is locale:
        return cached[1]
    translations = get_translations()
    ctx = g.get("_flask_babel")
    if ctx is not None:
        ctx.triage_translations = (getattr(ctx, "babel_locale", None), translations)
    return translations


class LoginUser:
    """The Flask-Login view of a staff account; the session id includes the account's epoch."""

    is_authenticated = True
    is_anonymous = False

    def __init__(self, user: Staff) -> None:
        self.user = user
        self.id = user.id
        self.username = user.username
        self.display_name = user.display_name
        self.role = user.role

    @property
    def is_active(self) -> bool:
        """Deactivated accounts cannot log in."""
        return self.user.active

    def get_id(self) -> str:
        """Session identity; a password reset or deactivation changes it and ends old sessions."""
        return f"{self.user.id}:{self.user.session_epoch}"


@login_manager.user_loader
def _load_user(identity: str) -> LoginUser | None:
    try:
        user_id, epoch = (int(part) for part in identity.split(":"))
    except ValueError:
        return None
    with reading() as connection:
        user = staff_by_id(connection, user_id, account_cache())
    if user is None or not user.active or user.session_epoch != epoch:
        return None
    return LoginUser(user)


CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)


def _security_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Permissions-Policy", "camera=(self), microphone=(), geolocation=()")
    if "lang" in request.args and request.args["lang"] in LANGUAGES:
        response.set_cookie("lang", request.args["lang"], max_age=365 * 24 * 3600, samesite="Lax",
                            httponly=True)
    return response


def usable_text(text: str) -> bool:
    """Whether text can be stored and shown: no NUL (PostgreSQL refuses it) and no lone surrogate (not encodable)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _refuse_unusable_requests() -> None:
    """Before any view: a body over MAX_CONTENT_LENGTH is 413 even where the view would not read it, and text that
    no database column can hold (in the address, the query or a form) is 422 naming the field."""
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if limit is not None and (request.content_length or 0) > limit:
        abort(413)
    # The JSON API reads its bodies through api.json_body, which checks them the same way.
    form = request.form.items(multi=True) if not request.path.startswith("/api/") else ()
    for key, value in (*(request.view_args or {}).items(), *request.args.items(multi=True), *form):
        if not all(usable_text(text) for text in (key, value) if isinstance(text, str)):
            field = key if isinstance(key, str) and usable_text(key) else "body"
            raise InvalidInput({field: ("文字不能含有空字符（NUL）。", "Text cannot contain a NUL character.")})
    # No form here takes a file: a field sent as one would reach validators that expect text.
    for key in request.files if form else ():
        field = key if usable_text(key) else "body"
        raise InvalidInput({field: ("这里不能上传文件，请填写文字。",
                                    "Files cannot be sent here: type the answer as text.")})


class SizedBodies:
    """WSGI middleware: a body sent in chunks (no Content-Length) is read here, up to one byte more than the limit, and
    handed on with its length. Werkzeug would stop reading such a body at MAX_CONTENT_LENGTH and give the view the
    part it read (a form or JSON cut short, processed as if whole) where a body over the limit must be a 413."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower() and not environ.get("CONTENT_LENGTH"):
            body = environ["wsgi.input"].read(self.limit + 1)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))  # over the limit: refused with 413 before any view reads it
            # The server has taken the chunks apart already: what goes on is a body of a known length.
            environ.pop("HTTP_TRANSFER_ENCODING")
            environ.pop("wsgi.input_terminated", None)
        return self.app(environ, start_response)


_CLOCK = TimestampSigner(b"-")  # its clock only: the session's timestamps, in itsdangerous's seconds


class SlidingSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, sent again once a minute of use rather than with every response.

    A session still expires PERMANENT_SESSION_LIFETIME after its last use (to the minute), but a screen polled
    every few seconds no longer verifies, re-signs and re-sends its cookie on every poll.
    """

    refresh_seconds = 60
    # Cookies this worker has verified, while they are within their lifetime: a screen polls with the same cookie
    # for a minute, and verifying and decoding it cost each poll ~90 us (a kept one: 16 us). The same string carries
    # the same signature; each request gets its own copy of the data.
    verified_max = 2048

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        """The session of the request's cookie, with the time it was signed."""
        if not app.secret_key:
            return None
        value = request.cookies.get(self.get_cookie_name(app))
        if not value:
            return self.session_class()
        lifetime = int(app.permanent_session_lifetime.total_seconds())
        now = _CLOCK.get_timestamp()
        verified: dict[tuple[Any, str], tuple[Any, int]] = app.extensions.setdefault("triage.verified_sessions", {})
        key = (app.secret_key, value)
        seen = verified.get(key)
        if seen is not None and 0 <= now - seen[1] <= lifetime:
            data, signed_at = _copied(seen[0]), seen[1]
        else:
            serializer = self.get_signing_serializer(app)
            assert serializer is not None
            try:
                data, signed = serializer.loads(value, max_age=lifetime, return_timestamp=True)
            except BadSignature:
                verified.pop(key, None)
                return self.session_class()
            signed_at = int(signed.timestamp())
            try:
                kept = _copied(data)
            except TypeError:
                pass
            else:
                if len(verified) >= self.verified_max:
                    verified.clear()
                verified[key] = (kept, signed_at)
        opened = self.session_class(data)
        opened.signed_at = signed_at  # type: ignore[attr-defined]
        opened.signed_now = now  # type: ignore[attr-defined]
        return opened

    def should_set_cookie(self, app: Flask, session: SessionMixin) -> bool:
        """A changed session, or a permanent one signed more than a minute ago."""
        if session.modified:
            return True
        if not session.permanent:
            return False
        signed_at, now = getattr(session, "signed_at", None), getattr(session, "signed_now", None)
        return signed_at is None or now is None or now - signed_at >= self.refresh_seconds


def _copied(value: Any) -> Any:
    """A copy of JSON-like session data that shares nothing a request could change in place (flashed messages are a
    list); TypeError for anything else (such a session is not kept)."""
    if value is None or isinstance(value, (str, int, float)):
        return value
    if isinstance(value, list):
        return [_copied(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_copied(item) for item in value)
    if isinstance(value, dict):
        return {key: _copied(item) for key, item in value.items()}
    raise TypeError(type(value).__name__)


def csrf_token() -> str:
    """The session's CSRF token as Flask-WTF signs it, signed once per worker and session. With no time limit
    (WTF_CSRF_TIME_LIMIT None: the session's lifetime bounds it) the signature's timestamp is never checked, so a
    token signed earlier for the same session and key is as good as a new one; a screen polled every few seconds no
    longer signs it anew at every poll."""
    raw = session.get("csrf_token")
    if current_app.config.get("WTF_CSRF_TIME_LIMIT") is not None or not isinstance(raw, str) or "csrf_token" in g:
        return str(generate_csrf())
    signed: dict[tuple[Any, str], str] = current_app.extensions.setdefault("triage.csrf_tokens", {})
    key = (current_app.config.get("WTF_CSRF_SECRET_KEY") or current_app.secret_key, raw)
    token = signed.get(key)
    if token is None:
        if len(signed) >= SlidingSessionInterface.verified_max:
            signed.clear()
        token = signed[key] = str(generate_csrf())
    g.csrf_token = token  # what Flask-WTF's own calls return for the rest of the request (a form's hidden field)
    return token


def _keep_session_fresh() -> None:
    # Sessions expire after PERMANENT_SESSION_LIFETIME without activity: a session with content is permanent,
    # and Flask sends a permanent session's cookie again with every response (SESSION_REFRESH_EACH_REQUEST).
    # An empty one (a phone calling the API, a waiting-room board) costs no cookie at all.
    if session and not session.permanent:
        session.permanent = True


def init_app(app: Flask) -> None:
    """Attach the extensions to `app`."""
    app.session_interface = SlidingSessionInterface()
    if app.config.get("MAX_CONTENT_LENGTH") is not None:
        app.wsgi_app = SizedBodies(app.wsgi_app, app.config["MAX_CONTENT_LENGTH"])  # type: ignore[method-assign]
    csrf.init_app(app)
    app.jinja_env.globals["csrf_token"] = csrf_token
    babel.init_app(app, locale_selector=_locale)
    app.jinja_env.install_gettext_callables(  # type: ignore[attr-defined]
        gettext=lambda s: _translations().ugettext(s),
        ngettext=lambda s, p, n: _translations().ungettext(s, p, n),
        newstyle=True,
        pgettext=lambda c, s: _translations().upgettext(c, s),
        npgettext=lambda c, s, p, n: _translations().unpgettext(c, s, p, n),
    )
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.session_protection = "basic"
    limiter.init_app(app)
    app.before_request(_refuse_unusable_requests)
    app.before_request(_keep_session_fresh)
    app.after_request(_security_headers)

    @app.context_processor
    def _template_globals() -> dict[str, Any]:
        return {"lang": current_lang(), "LANGUAGES": LANGUAGES}


def account_cache() -> AccountCache:
    """This worker's staff accounts, kept while the staff stamp holds (triage/services/staff.py)."""
    cache: AccountCache | None = current_app.extensions.get("triage.accounts")
    if cache is None:
        cache = current_app.extensions["triage.accounts"] = AccountCache(current_app.config["ACCOUNT_CACHE_SECONDS"])
    return cache


def live_cache() -> TTLCache[Any]:
    """The application's cache of polled pages (boards, dashboard)."""
    cache: TTLCache[Any] = current_app.extensions.setdefault("triage.live_cache", TTLCache())
    return cache
