"""triage: two-stage pre-examination triage for hospitals (online first, then on site)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from triage.config import ROOT, configure


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the triage application."""
    app = Flask(
        __name__,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "triage" / "static"),
        instance_path=str(ROOT / "instance"),
    )
    configure(app, config)
    register_logging(app)
    register_proxy(app)
    register_extensions(app)
    register_hospital_data(app)  # a broken workflow or policy file stops start-up here
    register_blueprints(app)
    register_error_handlers(app)
    register_commands(app)
    return app


def register_logging(app: Flask) -> None:
    """Mask phone numbers and secret tokens in every log line."""
    from triage import logs

    logs.install()


def register_proxy(app: Flask) -> None:
    """Behind a reverse proxy, take the client address, scheme and host from X-Forwarded-* headers."""
    hops = app.config["PROXY_HOPS"]
    if hops:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]


def register_extensions(app: Flask) -> None:
    """Database, CSRF, login, languages, rate limits, security headers."""
    from triage import db
    from triage.web import extensions, ratelimit

    db.init_app(app)
    extensions.init_app(app)
    ratelimit.init_app(app)  # a budget set to two windows stops start-up here


def register_hospital_data(app: Flask) -> None:
    """Load and validate the workflows and the policy."""
    from triage import hospital

    hospital.init_app(app)


def register_blueprints(app: Flask) -> None:
    """Mount the web and API blueprints."""
    from triage.web import register

    register(app)


def register_error_handlers(app: Flask) -> None:
    """Map domain errors and HTTP errors to pages or JSON in the user's language."""
    from triage.web import errors

    errors.init_app(app)


def register_commands(app: Flask) -> None:
    """Add the `flask` commands: db, users, assess, demo, workflows."""
    from triage import cli

    cli.init_app(app)
