"""The per-process cache of polled pages: computed once per interval, expired after it, off at 0 s."""

from __future__ import annotations

import threading
import time

from triage.ttlcache import TTLCache


def test_a_value_is_computed_once_per_interval_and_again_after_it() -> None:
    cache: TTLCache[int] = TTLCache()
    calls: list[int] = []

    def compute() -> int:
        calls.append(1)
        return len(calls)

    assert cache.get("k", 0.2, compute) == 1
    assert cache.get("k", 0.2, compute) == 1
    assert cache.get("other", 0.2, compute) == 2
    time.sleep(0.25)
    assert cache.get("k", 0.2, compute) == 3


def test_zero_seconds_means_no_caching() -> None:
    cache: TTLCache[int] = TTLCache()
    values = iter(range(10))
    assert [cache.get("k", 0, lambda: next(values)) for _ in range(3)] == [0, 1, 2]


def test_concurrent_callers_share_one_computation() -> None:
    cache: TTLCache[str] = TTLCache()
    calls: list[int] = []

    def slow() -> str:
        calls.append(1)
        time.sleep(0.1)
        return "value"

    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get("k", 5, slow))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["value"] * 8 and len(calls) == 1


def test_the_cache_stays_bounded() -> None:
    cache: TTLCache[int] = TTLCache(max_entries=4)
    for i in range(20):
        cache.get(i, 60, lambda i=i: i)  # type: ignore[misc]
    assert len(cache._entries) <= 4
