"""A small per-process cache of recent results, for pages that many screens poll at once.

Waiting-room boards and the supervisors' dashboard are read by every screen every few seconds; each screen
tolerates figures a second or two old (it is refreshed every few seconds anyway). Caching the result for
that long, in each worker, turns N screens' polls into one computation per worker per interval. Nothing
here is state: every worker and host computes its own from the database, and the entries expire.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class TTLCache(Generic[T]):
    """Values computed at most once per `seconds` per key in this process (0: no caching)."""

    def __init__(self, max_entries: int = 64) -> None:
        self._entries: dict[Hashable, tuple[float, T]] = {}
        self._locks: dict[Hashable, threading.Lock] = {}
        self._guard = threading.Lock()
        self._max = max_entries

    def get(self, key: Hashable, seconds: float, compute: Callable[[], T]) -> T:
        """The cached value of `key` if younger than `seconds`, else `compute()` (once, for concurrent callers)."""
        if seconds <= 0:
            return compute()
        hit = self._entries.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:  # one computation per key; the others wait for it and use it
            hit = self._entries.get(key)
            if hit is not None and hit[0] > time.monotonic():
                return hit[1]
            value = compute()
            with self._guard:
                if len(self._entries) >= self._max:
                    now = time.monotonic()
                    for stale in [k for k, (expires, _) in self._entries.items() if expires <= now]:
                        del self._entries[stale]
                    if len(self._entries) >= self._max:
                        self._entries.clear()
                self._entries[key] = (time.monotonic() + seconds, value)
            return value

    def clear(self) -> None:
        """Forget everything (tests)."""
        with self._guard:
            self._entries.clear()
