"""The pre-screen's two budgets per client address, counted in one trip to the rate-limit store.

Every questionnaire sent counts against PRESCREEN_POST_LIMIT; one that creates a pre-screen also against
PRESCREEN_CREATE_LIMIT, a budget the form and the JSON API share. Flask-Limiter counts them in three trips to
Redis (the first budget's increment, the second's test before the view and its increment after it) and a
fifth of a pre-screen's CPU went there. Here one Lua script increments the first and reserves a place in
the second; a request that creates nothing (invalid answers, a full slot, an error) gives its place back,
a second trip only then. The reservation also keeps concurrent requests from overrunning the budget
between a test and an increment.

The counters are fixed windows in Flask-Limiter's store (`limiter.storage`: Redis shared by every worker and
host in production, each worker's memory otherwise). If the store cannot be reached, patients are let through
and the failure is logged: a hospital's pre-screening must not stop because its counters did.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import current_app, g, request
from limits import RateLimitItem, parse
from limits.storage import RedisStorage, Storage
from werkzeug.exceptions import TooManyRequests

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


class OverBudget(TooManyRequests):
    """429: one of the pre-screen's budgets is spent; `window` is when to try again, at the latest."""

    def __init__(self, window: int) -> None:
        super().__init__()
        self.window = window


def _limit(name: str) -> RateLimitItem:
    return parse(str(current_app.config.get(name, DEFAULT_LIMITS[name])))


def _keys(sent: RateLimitItem, created: RateLimitItem) -> tuple[str, str]:
    # The address in braces: a Redis cluster keeps both keys of one script in one slot.
    address = "{%s}" % (request.remote_addr or "")
    prefix = current_app.config.get("RATELIMIT_KEY_PREFIX", "")
    return (sent.key_for(prefix, "prescreen-sent", address), created.key_for(prefix, "prescreen-create", address))


def _reserve(storage: Storage, sent: RateLimitItem, created: RateLimitItem, keys: tuple[str, str]) -> int:
    """0 and a creation reserved, or the window of the budget that is spent."""
    if isinstance(storage, RedisStorage):
        script = getattr(storage, "triage_reserve", None)
        if script is None:
            script = storage.triage_reserve = storage.get_connection().register_script(_RESERVE)  # type: ignore
        return int(script([storage.prefixed_key(key) for key in keys],
                          [sent.amount, sent.get_expiry(), created.amount, created.get_expiry()]))
    if storage.incr(keys[0], sent.get_expiry()) > sent.amount:
        return sent.get_expiry()
    if storage.incr(keys[1], created.get_expiry()) > created.amount:
        storage.incr(keys[1], created.get_expiry(), amount=-1)
        return created.get_expiry()
    return 0


def prescreen_budget(view: Callable[..., Any]) -> Callable[..., Any]:
    """Count a POST to `view` against both budgets; 429 (OverBudget) when one is spent. The view sets
    `g.prescreen_created` when it created a pre-screen; otherwise the reserved creation is given back."""

    @wraps(view)
    def limited(*args: Any, **kwargs: Any) -> Any:
        if request.method != "POST" or not current_app.config.get("RATELIMIT_ENABLED", True):
            return view(*args, **kwargs)
        storage = limiter.storage
        sent, created = _limit("PRESCREEN_POST_LIMIT"), _limit("PRESCREEN_CREATE_LIMIT")
        keys = _keys(sent, created)
        try:
            window = _reserve(storage, sent, created, keys)
        except storage.base_exceptions:
            log.warning("rate-limit store unreachable: pre-screen let through uncounted", exc_info=True)
            return view(*args, **kwargs)
        if window:
            raise OverBudget(window)
        try:
            return view(*args, **kwargs)
        finally:
            if not g.get("prescreen_created"):
                try:
                    storage.incr(keys[1], created.get_expiry(), amount=-1)
                except storage.base_exceptions:
                    log.warning("rate-limit store unreachable: a reserved pre-screen not given back", exc_info=True)

    return limited
