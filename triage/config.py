"""Configuration: defaults, then TRIAGE_* environment variables, then the test mapping."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask

ROOT = Path(__file__).resolve().parent.parent
DEV_SECRET = "dev-only-secret-do-not-use-in-production"  # noqa: S105 - refused outside debug/testing  # nosec B105


class ConfigError(RuntimeError):
    """The configuration cannot run safely; the message says what to set."""


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def configure(app: Flask, overrides: Mapping[str, Any] | None = None) -> None:
    """Load defaults, the TRIAGE_* environment and `overrides`; refuse a default secret in production."""
    instance = Path(app.instance_path)
    app.config.update(
        SECRET_KEY=os.environ.get("TRIAGE_SECRET_KEY", DEV_SECRET),
        DATABASE_URL=os.environ.get("TRIAGE_DATABASE_URL", f"sqlite:///{instance / 'triage.db'}"),
        POLICY_PATH=os.environ.get("TRIAGE_POLICY", str(ROOT / "workflows" / "policy.yaml")),
        WORKFLOWS_DIR=str(ROOT / "workflows"),
        RATELIMIT_STORAGE_URI=os.environ.get("TRIAGE_RATELIMIT_STORAGE_URI", "memory://"),
        # No X-RateLimit-* headers: they cost two more trips to the rate-limit storage on every limited request;
        # a refused request says when to try again (Retry-After, triage/web/errors.py).
        RATELIMIT_HEADERS_ENABLED=False,
        # Redis out of reach: each worker counts in its own memory meanwhile (logged), rather than answering 500.
        RATELIMIT_IN_MEMORY_FALLBACK_ENABLED=True,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=_env_bool("TRIAGE_SECURE_COOKIES", True),
        REMEMBER_COOKIE_SECURE=_env_bool("TRIAGE_SECURE_COOKIES", True),
        PERMANENT_SESSION_LIFETIME=timedelta(
            minutes=int(os.environ.get("TRIAGE_SESSION_MINUTES", str(12 * 60)))),
        WTF_CSRF_TIME_LIMIT=None,  # the session lifetime bounds the token
        BABEL_DEFAULT_LOCALE="zh",
        BABEL_TRANSLATION_DIRECTORIES=str(ROOT / "translations"),
        MAX_CONTENT_LENGTH=256 * 1024,
        # Boards and the dashboard, polled by many screens, are computed at most once per this many seconds
        # per worker (see triage/ttlcache.py); 0 computes every poll.
        LIVE_CACHE_SECONDS=float(os.environ.get("TRIAGE_LIVE_CACHE_SECONDS", "2")),
        # Staff accounts looked up are kept per worker; a change to any of them is seen within this many seconds.
        ACCOUNT_CACHE_SECONDS=float(os.environ.get("TRIAGE_ACCOUNT_CACHE_SECONDS", "2")),
        # Reverse proxies in front of the app (nginx...): trust this many X-Forwarded-* hops.
        PROXY_HOPS=int(os.environ.get("TRIAGE_PROXY_HOPS", "0")),
        TESTING=False,
    )
    if overrides:
        app.config.update(overrides)
    if app.config["SECRET_KEY"] == DEV_SECRET and not (app.debug or app.testing):
        raise ConfigError(
            "TRIAGE_SECRET_KEY is not set: refusing to run in production with the development secret. "
            "Set TRIAGE_SECRET_KEY to a long random value, for example: "
            "export TRIAGE_SECRET_KEY=$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
        )
    if app.config["DATABASE_URL"].startswith("sqlite:///"):
        instance.mkdir(parents=True, exist_ok=True)
