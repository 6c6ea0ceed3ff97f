"""Rate limits shared by every worker and host: Flask-Limiter's storage in Redis when configured.

In memory (the default) each gunicorn worker counts alone; with TRIAGE_RATELIMIT_STORAGE_URI=redis://...
every worker and host count in one place, so a password guesser gains nothing from many workers.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
import redis

from tests.conftest import make_app
from triage.models import Role, StaffUser

# Not database 15: the benchmark (and its smoke run, maybe at the same time in another test process) empties it.
REDIS_URL = "redis://127.0.0.1:6379/14"


@pytest.fixture
def store() -> redis.Redis:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.exceptions.ConnectionError:
        pytest.skip("no Redis server at 127.0.0.1:6379")
    return client


def test_login_attempts_are_counted_in_redis_across_workers(database_url: str, store: redis.Redis,
                                                           make_user: Callable[..., StaffUser]) -> None:
    prefix = f"triage-test-{uuid.uuid4().hex}"
    config = {"RATELIMIT_ENABLED": True, "RATELIMIT_STORAGE_URI": REDIS_URL, "RATELIMIT_KEY_PREFIX": prefix}
    make_user("wang", Role.NURSE)
    try:
        first_worker = make_app(database_url, **config).test_client()
        assert [first_worker.post("/login", data={"username": "wang", "password": "guess"}).status_code
                for _ in range(6)] == [200] * 6
        counters = [int(store.get(key) or 0) for key in store.scan_iter(f"*{prefix}*")]
        assert 6 in counters, counters  # the attempts are counted in Redis, not in this process

        second_worker = make_app(database_url, **config).test_client()  # its own connection to the storage
        statuses = [second_worker.post("/login", data={"username": "wang", "password": "guess"}).status_code
                    for _ in range(6)]
        assert statuses == [200] * 4 + [429, 429]  # 10 per minute, whichever worker answers
    finally:
        for key in store.scan_iter(f"*{prefix}*"):
            store.delete(key)
