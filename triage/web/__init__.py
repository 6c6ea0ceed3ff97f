"""Web layer: thin views over the services; blueprints registered here."""

from __future__ import annotations

from typing import Any

from flask import Flask
from werkzeug.routing import IntegerConverter, Map

from triage.hospital import base_policy
from triage.models import Role
from triage.web.extensions import current_lang


class RowIdConverter(IntegerConverter):
    """`<int:...>` in our addresses is a row id: a number larger than an id column holds is a 404, not an overflow."""

    def __init__(self, url_map: Map, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", 2**31 - 1)  # PostgreSQL's integer; SQLite's is wider
        super().__init__(url_map, *args, **kwargs)


def register(app: Flask) -> None:
    """Register every blueprint."""
    app.url_map.converters["int"] = RowIdConverter  # before any route is added
    # api_prescreen and api_staff add their routes to api.bp: imported before it is registered.
    from triage.web import (  # noqa: F401
        admin,
        api,
        api_prescreen,
        api_staff,
        auth,
        board,
        desk,
        main,
        prescreen,
        queues,
        supervisor,
    )

    app.register_blueprint(main.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(desk.bp)
    app.register_blueprint(queues.bp)
    app.register_blueprint(board.bp)
    app.register_blueprint(supervisor.bp)
    app.register_blueprint(admin.bp)
    prescreen.register(app)

    @app.context_processor
    def _hospital_globals() -> dict[str, Any]:
        lang = current_lang()
        return {
            "hospital_name": base_policy().hospital_name(lang),
            "role_label": lambda role: Role(role).label(lang),
        }
