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
from tests.web.prescreen_support import api_body, open_day
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


# --- the pre-screen's budgets: one trip per pre-screen (triage/web/ratelimit.py) -----------------------------


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The commands this process sends to Redis."""
    sent: list[bytes] = []
    original = redis.connection.AbstractConnection.send_packed_command

    def counted(self: redis.connection.AbstractConnection, command: object, check_health: bool = True) -> None:
        sent.append(bytes(command[0] if isinstance(command, list) else command)[:40])  # type: ignore[arg-type]
        original(self, command, check_health)  # type: ignore[arg-type]

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counted)
    return sent


def test_a_pre_screen_costs_one_trip_to_redis_and_the_budget_holds(database_url: str, store: redis.Redis,
                                                                   trips: list[bytes]) -> None:
    prefix = f"triage-test-{uuid.uuid4().hex}"
    app = make_app(database_url, RATELIMIT_ENABLED=True, RATELIMIT_STORAGE_URI=REDIS_URL, RATELIMIT_KEY_PREFIX=prefix,
                   PRESCREEN_CREATE_LIMIT="3 per minute")
    client = app.test_client()
    day = open_day(app).isoformat()
    try:
        # The first of each loads its script into Redis.
        client.post("/api/v1/prescreenings", json=api_body(preferred_day=day, phone="13900000000"))
        client.post("/api/v1/prescreenings", json=api_body(preferred_day=day, name=""))
        trips.clear()
        assert client.post("/api/v1/prescreenings", json=api_body(preferred_day=day, phone="13900000001")
                           ).status_code == 201
        assert len(trips) == 1, trips
        trips.clear()
        # Invalid answers create nothing: the reserved place goes back (a second trip, only then).
        assert client.post("/api/v1/prescreenings", json=api_body(preferred_day=day, name="")).status_code == 422
        assert len(trips) == 2, trips
        assert client.post("/api/v1/prescreenings", json=api_body(preferred_day=day, phone="13900000002")
                           ).status_code == 201
        refused = client.post("/api/v1/prescreenings", json=api_body(preferred_day=day, phone="13900000003"))
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "60"
        counters = {key.decode(): int(store.get(key) or 0) for key in store.scan_iter(f"*{prefix}*")}
        assert sorted(counters.values()) == [3, 6], counters  # created (3 of 3), sent (6 of 30)
    finally:
        for key in store.scan_iter(f"*{prefix}*"):
            store.delete(key)
        app.extensions["triage.db"].dispose()


def test_concurrent_reservations_never_overrun_the_budget(store: redis.Redis) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from limits import parse
    from limits.storage import RedisStorage

    from triage.web.ratelimit import _reserve

    storage = RedisStorage(REDIS_URL)
    keys = (f"triage-test-{uuid.uuid4().hex}-sent", f"triage-test-{uuid.uuid4().hex}-created")
    try:
        with ThreadPoolExecutor(8) as pool:
            windows = list(pool.map(lambda _: _reserve(storage, parse("100 per minute"), parse("5 per hour"), keys),
                                    range(40)))
        assert windows.count(0) == 5 and set(windows) == {0, 3600}
        assert int(store.get(storage.prefixed_key(keys[1])) or 0) == 5
        assert int(store.get(storage.prefixed_key(keys[0])) or 0) == 40
    finally:
        store.delete(*(storage.prefixed_key(key) for key in keys))


def test_out_of_reach_counters_are_kept_in_each_workers_memory_meanwhile(
        database_url: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    from limits.storage import MemoryStorage

    from triage.web import ratelimit

    monkeypatch.setattr(ratelimit, "_fallback", MemoryStorage())
    monkeypatch.setattr(ratelimit, "_store_down_until", 0.0)
    app = make_app(database_url, RATELIMIT_ENABLED=True, RATELIMIT_STORAGE_URI="redis://127.0.0.1:9/0",
                   PRESCREEN_CREATE_LIMIT="1 per minute")
    client = app.test_client()
    day = open_day(app).isoformat()
    try:
        assert client.post("/api/v1/prescreenings", json=api_body(preferred_day=day)).status_code == 201
        assert "pre-screens counted in this worker's memory" in caplog.text
        # Not unlimited meanwhile: the budget holds in memory.
        assert client.post("/api/v1/prescreenings", json=api_body(preferred_day=day, phone="13900000009")
                           ).status_code == 429
        # Flask-Limiter's own limits (status look-ups) fall back to memory too: no 500.
        assert client.get("/api/v1/prescreenings/ZZZZZZZZ", headers={"X-Patient-Phone": "1"}).status_code == 404
    finally:
        app.extensions["triage.db"].dispose()


def test_a_place_given_back_after_its_window_ended_opens_nothing_in_the_next(store: redis.Redis) -> None:
    from limits.storage import MemoryStorage, RedisStorage

    from triage.web.ratelimit import _give_back

    storage = RedisStorage(REDIS_URL)
    key = f"triage-test-{uuid.uuid4().hex}"
    _give_back(storage, key)  # the window (and its key) ended while the request ran
    assert store.get(storage.prefixed_key(key)) is None
    memory = MemoryStorage()
    _give_back(memory, key)
    assert memory.get(key) == 0


def test_a_budget_of_two_windows_stops_start_up(database_url: str) -> None:
    from triage.config import ConfigError

    with pytest.raises(ConfigError, match="PRESCREEN_CREATE_LIMIT"):
        make_app(database_url, PRESCREEN_CREATE_LIMIT="30 per minute;100 per hour")
