"""The pre-screen's two budgets per client address, counted in one trip to the rate-limit store.

Every questionnaire sent counts against PRESCREEN_POST_LIMIT; one that creates a pre-screen also against
PRESCREEN_CREATE_LIMIT, a budget the form and the JSON API share. Flask-Limiter counts them in three trips to
Redis (the first budget's increment, the second's test before the view and its increment after it) and a
fifth of a pre-screen's CPU went there. Here one Lua script increments the first and reserves a place in
the second; a request that creates nothing (invalid answers, a full slot, an error) gives its place back,
a second trip only then. The reservation also keeps concurrent requests from overrunning the budget
between a test and an increment.

The counters are fixed windows in Flask-Limiter's store (`limiter.storage`: Redis shared by every worker and
host in production, each worker's memory otherwise). If the store cannot be reached, each worker counts in its own
memory for the next few seconds and tries the store again after them (as Flask-Limiter's in-memory fallback does
for the other limits): a hospital's pre-screening must not stop because its counters did, nor go unlimited.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Flask, current_app, g, request
from limits import RateLimitItem, parse_many
from limits.errors import StorageError
from limits.storage import MemoryStorage, RedisStorage, Storage
from werkzeug.exceptions import TooManyRequests

from triage.config import ConfigError
from triage.web.extensions import limiter

log = logging.getLogger(__name__)

# Rate limits (Flask-Limiter syntax), overridable in the app config. One window each: every window is one more
# trip to the shared counter (Redis) on every patient's request.
DEFAULT_LIMITS = {
    "PRESCREEN_CREATE_LIMIT": "30 per hour",
    "PRESCREEN_POST_LIMIT": "30 per minute",
    "PRESCREEN_LOOKUP_LIMIT": "30 per hour",
    "PRESCREEN_LOOKUP_PER_CODE_LIMIT": "10 per hour",
}

# KEYS: the submissions' window, the creations' window. ARGV: their amounts and lengths in seconds.
# Returns 0 when both have room (a creation reserved), else the length of the exceeded window.
_RESERVE = """
local sent = redis.call('INCR', KEYS[1])
if sent == 1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
if sent > tonumber(ARGV[1]) then return tonumber(ARGV[2]) end
local created = redis.call('INCR', KEYS[2])
if created == 1 then redis.call('EXPIRE', KEYS[2], ARGV[4]) end
if created > tonumber(ARGV[3]) then
  redis.call('DECR', KEYS[2])
  return tonumber(ARGV[4])
end
return 0
"""
# KEYS: the creations' window. A place given back after its window ended would open the next window one short.
_GIVE_BACK = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('DECR', KEYS[1]) end
"""
RETRY_STORE_SECONDS = 5.0
_fallback = MemoryStorage()
_store_down_until = 0.0


class OverBudget(TooManyRequests):
    """429: one of the pre-screen's budgets is spent; `window` is when to try again, at the latest."""

    def __init__(self, window: int) -> None:
        super().__init__()
        self.window = window


def one_window(name: str, text: str) -> RateLimitItem:
    """The single window of a budget's setting ("30 per hour"); ValueError naming the setting otherwise."""
    try:
        windows = parse_many(text)
    except ValueError:
        windows = []
    if len(windows) != 1:
        raise ValueError(f"{name} must be one rate limit such as '30 per hour', not {text!r}")
    return windows[0]


def init_app(app: Flask) -> None:
    """Read the two budgets once; a budget that is not one window stops start-up (ConfigError naming it)."""
    budgets = []
    for name in ("PRESCREEN_POST_LIMIT", "PRESCREEN_CREATE_LIMIT"):
        try:
            budgets.append(one_window(name, str(app.config.get(name, DEFAULT_LIMITS[name]))))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    app.extensions["triage.prescreen_budgets"] = tuple(budgets)


def _script(storage: RedisStorage, name: str, source: str) -> Any:
    script = getattr(storage, name, None)
    if script is None:
        script = storage.get_connection().register_script(source.encode())
        setattr(storage, name, script)
    return script


def _keys(sent: RateLimitItem, created: RateLimitItem) -> tuple[str, str]:
    # The address in braces: a Redis cluster keeps both keys of one script in one slot.
    address = "{%s}" % (request.remote_addr or "")
    prefix = current_app.config.get("RATELIMIT_KEY_PREFIX", "")
    return (sent.key_for(prefix, "prescreen-sent", address), created.key_for(prefix, "prescreen-create", address))


def _reserve(storage: Storage, sent: RateLimitItem, created: RateLimitItem, keys: tuple[str, str]) -> int:
    """0 and a creation reserved, or the window of the budget that is spent."""
    if isinstance(storage, RedisStorage):
        return int(_script(storage, "triage_reserve", _RESERVE)(
            [storage.prefixed_key(key) for key in keys],
            [sent.amount, sent.get_expiry(), created.amount, created.get_expiry()]))
    if storage.incr(keys[0], sent.get_expiry()) > sent.amount:
        return sent.get_expiry()
    if storage.incr(keys[1], created.get_expiry()) > created.amount:
        _give_back(storage, keys[1])
        return created.get_expiry()
    return 0


def _give_back(storage: Storage, key: str) -> None:
    if isinstance(storage, RedisStorage):
        _script(storage, "triage_give_back", _GIVE_BACK)([storage.prefixed_key(key)])
    elif isinstance(storage, MemoryStorage):
        storage.decr(key)  # not below 0, and the window's end stays
    else:
        storage.incr(key, 1, amount=-1)


def _errors(storage: Storage) -> tuple[type[Exception], ...]:
    """What the store raises when out of reach (its client's errors, or limits' own when it wraps them)."""
    errors = storage.base_exceptions
    return (*(errors if isinstance(errors, tuple) else (errors,)), StorageError)


def _store(storage: Storage) -> Storage:
    """The configured store, or this worker's memory while the store is out of reach."""
    return _fallback if time.monotonic() < _store_down_until else storage


def _down(exc: Exception) -> None:
    global _store_down_until
    _store_down_until = time.monotonic() + RETRY_STORE_SECONDS
    log.warning("rate-limit store unreachable (%s): pre-screens counted in this worker's memory for %.0f s",
                type(exc).__name__, RETRY_STORE_SECONDS)


def prescreen_budget(view: Callable[..., Any]) -> Callable[..., Any]:
    """Count a POST to `view` against both budgets; 429 (OverBudget) when one is spent. The view sets
    `g.prescreen_created` when it created a pre-screen; otherwise the reserved creation is given back."""

    @wraps(view)
    def limited(*args: Any, **kwargs: Any) -> Any:
        if request.method != "POST" or not current_app.config.get("RATELIMIT_ENABLED", True):
            return view(*args, **kwargs)
        sent, created = current_app.extensions["triage.prescreen_budgets"]
        keys = _keys(sent, created)
        storage = _store(limiter.storage)
        try:
            window = _reserve(storage, sent, created, keys)
        except _errors(storage) as exc:
            _down(exc)
            storage = _fallback
            window = _reserve(storage, sent, created, keys)
        if window:
            raise OverBudget(window)
        try:
            return view(*args, **kwargs)
        finally:
            if not g.get("prescreen_created"):
                try:
                    _give_back(storage, keys[1])
                except _errors(storage) as exc:
                    _down(exc)

    return limited
