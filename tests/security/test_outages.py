"""Outages end to end through an adapter: 503 (or the configured limiter policy), never a 500,
never an unchecked admission, and recovery without a restart. Audit: nothing committed is
left without its event.

Real backends only: an SQLite file with a second connection holding ``BEGIN EXCLUSIVE``; Redis
behind a loopback relay we close and reopen, on a closed port, and stalled by ``CLIENT
PAUSE``; PostgreSQL on a closed port and behind the same relay.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import secrets
import socket
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs
import httpx
import pytest
import redis

from authcore.backends.redis import AsyncRedisRateLimiter, RedisRateLimiter
from authcore.backends.sqlite import SQLiteStore
from authcore.errors import UnavailableError
from authcore.flow import AsyncBackends, Authenticator, Backends
from authcore.ratelimit import LimiterFailurePolicy, RateLimitPolicy
from authcore.records import OPERATOR_ACTOR
from authcore.service.api import create_app
from authcore.testing import MemoryRateLimiter
from tests.adapters.world import Answer, World, make_world, starlette_app, wsgi_app
from tests.backends.test_redis import Relay
from tests.security.support import send_asgi_raw, send_wsgi_raw

NOW = 1_800_000_000.0
RECOVERY_ATTEMPTS = 100  # x 50 ms: the service must come back within this many requests


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# One event loop per test module run: an async Redis client must stay on the loop it was
# first used on.
LOOP = asyncio.new_event_loop()


def ask(adapter: str, world: World, key: str, path: str = "/keys") -> Answer:
    headers = [("Authorization", f"Bearer {key}")]
    if adapter == "asgi":
        return LOOP.run_until_complete(send_asgi_raw(starlette_app(world), "GET", path, headers))
    return send_wsgi_raw(wsgi_app(world), "GET", path, headers)


def close(limiter: Any) -> None:
    if isinstance(limiter, AsyncRedisRateLimiter):
        LOOP.run_until_complete(limiter.aclose())
    else:
        limiter.close()


@pytest.fixture(scope="module", autouse=True)
def _close_loop() -> Iterator[None]:
    yield
    LOOP.close()


def recover(adapter: str, world: World, key: str) -> list[int]:
    """Ask until a 200; return every status seen (the last one is the 200)."""
    statuses: list[int] = []
    for _ in range(RECOVERY_ATTEMPTS):
        statuses.append(ask(adapter, world, key).status)
        if statuses[-1] == 200:
            break
        threading.Event().wait(0.05)
    return statuses


def with_api(world: World, store: Any, limiter: Any, **settings: Any) -> World:
    fallback = settings.pop("fallback", None)
    api = Authenticator(
        attrs.evolve(world.api.settings, **settings),
        clock=world.clock,
        backends=Backends(store, limiter, fallback),
        abackends=AsyncBackends(store, limiter, fallback),
    )
    return attrs.evolve(world, api=api)


# --- SQLite locked --------------------------------------------------------------------------


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SQLiteStore]:
    with SQLiteStore(tmp_path / "outage.db", timeout=0.2) as store:
        yield store


def _service_key(store: SQLiteStore) -> tuple[str, str]:
    workspace = store.create_workspace("outage", now=NOW, actor=OPERATOR_ACTOR)
    created = store.create_root_key(
        workspace.id,
        permissions=["keys.read", "keys.create", "audit.read"],
        now=NOW,
        actor=OPERATOR_ACTOR,
    )
    assert created is not None
    return workspace.id, created.key.reveal()


async def test_sqlite_locked_a_write_through_the_service_is_503_then_recovers(
    sqlite_store: SQLiteStore, tmp_path: Path
) -> None:
    workspace_id, key = _service_key(sqlite_store)
    store: Any = sqlite_store
    app = create_app(store, keyring=None, limiter=MemoryRateLimiter(), clock=lambda: NOW)
    auth = {"Authorization": f"Bearer {key}"}
    body = {"name": "during-lock", "permissions": ["keys.read"]}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        with exclusive_lock(tmp_path / "outage.db"):
            # WAL: verification and reads go on while a writer holds the lock ...
            assert (await client.get("/v1/keys", headers=auth)).status_code == 200
            # ... and a write waits at most the store's timeout, then is "unavailable".
            refused = await client.post("/v1/keys", headers=auth, json=body)
            assert refused.status_code == 503, refused.text
            assert refused.headers["content-type"].startswith("application/problem+json")
            assert refused.headers.get("retry-after") is not None
        created = await client.post("/v1/keys", headers=auth, json={**body, "name": "after"})
        assert created.status_code == 201, created.text
    names = [record.name for record in sqlite_store.list_root_keys(workspace_id)]
    assert sorted(n for n in names if n) == ["after"]
    creates = [e for e in sqlite_store.list_audit(workspace_id).events if e.action == "key.create"]
    assert len(creates) == 2  # the operator's key and "after"; none for the refused write


@pytest.mark.parametrize("adapter", ["asgi", "wsgi"])
def test_sqlite_locked_verification_is_never_a_500(
    adapter: str, sqlite_store: SQLiteStore, tmp_path: Path
) -> None:
    _, key = _service_key(sqlite_store)
    world = with_api(make_world(), sqlite_store, MemoryRateLimiter())
    with exclusive_lock(tmp_path / "outage.db"):
        assert ask(adapter, world, key).status == 200
    assert ask(adapter, world, key).status == 200


# --- Redis ----------------------------------------------------------------------------------


@pytest.fixture
def namespace(redis_url: str) -> Iterator[str]:
    prefix = f"authcore:sec:{uuid.uuid4().hex}:"
    yield prefix
    client = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
    try:
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def redis_limiter(adapter: str, url: str, namespace: str, timeout: float = 0.2) -> Any:
    if adapter == "asgi":
        return AsyncRedisRateLimiter.from_url(url, namespace=namespace, timeout=timeout)
    return RedisRateLimiter.from_url(url, namespace=namespace, timeout=timeout)


@pytest.mark.redis
@pytest.mark.parametrize("adapter", ["asgi", "wsgi"])
def test_redis_on_a_closed_port_is_503_by_default(adapter: str, namespace: str) -> None:
    world = make_world()
    key = world.key("redis_closed", "keys.read")
    limiter = redis_limiter(adapter, f"redis://127.0.0.1:{closed_port()}/15", namespace)
    try:
        answer = ask(adapter, with_api(world, world.store, limiter), key)
    finally:
        close(limiter)
    assert answer.status == 503, answer
    assert answer.header("retry-after") is not None


@pytest.mark.parametrize("adapter", ["asgi", "wsgi"])
def test_redis_down_with_local_fallback_is_bounded_never_unlimited(
    adapter: str, namespace: str
) -> None:
    world = make_world()
    key = world.key("redis_fb", "keys.read", rate_limit=RateLimitPolicy(2, 3600))
    limiter = redis_limiter(adapter, f"redis://127.0.0.1:{closed_port()}/15", namespace)
    world = with_api(
        world,
        world.store,
        limiter,
        limiter_failure=LimiterFailurePolicy.LOCAL_FALLBACK,
        fallback=MemoryRateLimiter(clock_us=world.clock.us),
    )
    try:
        statuses = [ask(adapter, world, key).status for _ in range(4)]
    finally:
        close(limiter)
    assert statuses == [200, 200, 429, 429]


@pytest.mark.redis
@pytest.mark.parametrize("adapter", ["asgi", "wsgi"])
def test_redis_stopped_is_503_and_recovers_without_a_restart(
    adapter: str, redis_url: str, namespace: str
) -> None:
    parts = urlsplit(redis_url)
    relay = Relay((parts.hostname or "127.0.0.1", parts.port or 6379))
    relay.start()
    try:
        url = parts._replace(netloc=f"127.0.0.1:{relay.port}").geturl()
        world = make_world()
        key = world.key("redis_stop", "keys.read")
        limiter = redis_limiter(adapter, url, namespace)
        world = with_api(world, world.store, limiter)
        assert ask(adapter, world, key).status == 200
        relay.stop()
        assert ask(adapter, world, key).status == 503
        relay.start()
        statuses = recover(adapter, world, key)
        assert statuses[-1] == 200, statuses
        assert set(statuses[:-1]) <= {503}, statuses
        close(limiter)
    finally:
        relay.stop()


@pytest.mark.redis
@pytest.mark.parametrize("adapter", ["asgi", "wsgi"])
def test_redis_stalled_beyond_the_timeout_is_503_then_recovers(
    adapter: str, redis_url: str, namespace: str
) -> None:
    admin = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
    world = make_world()
    key = world.key("redis_slow", "keys.read")
    limiter = redis_limiter(adapter, redis_url, namespace)
    world = with_api(world, world.store, limiter)
    try:
        assert ask(adapter, world, key).status == 200  # loads the script
        # WRITE pauses only commands that may write (the limiter's script), at most 1.5 s.
        admin.client_pause(1500, all=False)
        assert ask(adapter, world, key).status == 503
    finally:
        admin.client_unpause()
        admin.close()
    statuses = recover(adapter, world, key)
    close(limiter)
    assert statuses[-1] == 200, statuses
    assert set(statuses[:-1]) <= {503}, statuses


# --- PostgreSQL -----------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize("adapter", ["wsgi"])
def test_postgres_on_a_closed_port_is_503(adapter: str) -> None:
    from authcore.backends.postgres import PostgresStore

    world = make_world()
    key = world.key("pg_closed", "keys.read")
    url = f"postgresql://postgres@127.0.0.1:{closed_port()}/test"
    store = PostgresStore(url, migrate=False, timeout=0.3, connect_timeout=1, min_size=0)
    try:
        answer = ask(adapter, with_api(world, store, MemoryRateLimiter()), key)
        assert answer.status == 503, answer
    finally:
        store.close()


@pytest.mark.postgres
def test_postgres_stopped_is_503_and_recovers_without_a_restart(postgres_url: str) -> None:
    import psycopg

    from authcore.backends.postgres import PostgresStore

    parts = urlsplit(postgres_url)
    relay = Relay((parts.hostname or "127.0.0.1", parts.port or 5432))
    relay.start()
    schema = f"authcore_sec_{secrets.token_hex(6)}"
    url = parts._replace(netloc=f"postgres@127.0.0.1:{relay.port}").geturl()
    store = PostgresStore(url, schema=schema, timeout=0.5, connect_timeout=1, min_size=1)
    try:
        workspace = store.create_workspace("pg", now=NOW, actor=OPERATOR_ACTOR)
        created = store.create_root_key(
            workspace.id, permissions=["keys.read"], now=NOW, actor=OPERATOR_ACTOR
        )
        assert created is not None
        key = created.key.reveal()
        world = with_api(make_world(), store, MemoryRateLimiter())
        assert ask("wsgi", world, key).status == 200
        relay.stop()
        assert ask("wsgi", world, key).status == 503
        relay.start()
        statuses = recover("wsgi", world, key)
        assert statuses[-1] == 200, statuses
        assert set(statuses[:-1]) <= {503}, statuses
    finally:
        relay.stop()
        store.close()
        with psycopg.connect(postgres_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.mark.postgres
def test_async_postgres_stopped_through_asgi_is_503_and_recovers(postgres_url: str) -> None:
    import psycopg

    from authcore.backends.postgres import AsyncPostgresStore

    parts = urlsplit(postgres_url)
    relay = Relay((parts.hostname or "127.0.0.1", parts.port or 5432))
    relay.start()
    schema = f"authcore_sec_{secrets.token_hex(6)}"
    url = parts._replace(netloc=f"postgres@127.0.0.1:{relay.port}").geturl()
    store = AsyncPostgresStore(url, schema=schema, timeout=0.5, connect_timeout=1, min_size=1)
    try:
        LOOP.run_until_complete(store.open())
        workspace = LOOP.run_until_complete(
            store.acreate_workspace("pg", now=NOW, actor=OPERATOR_ACTOR)
        )
        created = LOOP.run_until_complete(
            store.acreate_root_key(
                workspace.id, permissions=["keys.read"], now=NOW, actor=OPERATOR_ACTOR
            )
        )
        assert created is not None
        key = created.key.reveal()
        world = with_api(make_world(), store, MemoryRateLimiter())
        assert ask("asgi", world, key).status == 200
        relay.stop()
        assert ask("asgi", world, key).status == 503
        relay.start()
        statuses = recover("asgi", world, key)
        assert statuses[-1] == 200, statuses
        assert set(statuses[:-1]) <= {503}, statuses
    finally:
        relay.stop()
        LOOP.run_until_complete(store.aclose())
        with psycopg.connect(postgres_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


# --- audit: nothing committed without its event ----------------------------------------------


ROUNDS = ("lock", "audit-down", "healthy", "audit-down", "lock", "healthy")
WORKERS = 6
KEYS_PER_WORKER = 3


def test_no_committed_key_is_left_without_exactly_one_audit_event(tmp_path: Path) -> None:
    """Six threads create keys through rounds of injected faults; nothing is half-written.

    Each round fixes the fault before the writers start, so the outcome of every attempt is
    known (no race decides it): with the write lock held elsewhere or with audit inserts
    failing, every attempt is refused (503) and leaves nothing; when healthy, every attempt
    commits its key together with exactly one ``key.create`` event.
    """
    path = tmp_path / "audit.db"
    # 0.5 s: long enough that six healthy writers never time out on each other's commits on a
    # busy machine, short enough that a round with the lock held elsewhere refuses quickly.
    store = SQLiteStore(path, timeout=0.5)
    workspace = store.create_workspace("audit", now=NOW, actor=OPERATOR_ACTOR)
    chaos = sqlite3.connect(path, isolation_level=None, timeout=5)
    committed: list[str] = []
    refused: collections.Counter[str] = collections.Counter()
    failures: list[BaseException] = []
    lock = threading.Lock()

    def create(round_name: str, worker: int) -> None:
        for attempt in range(KEYS_PER_WORKER):
            try:
                new = store.create_root_key(
                    workspace.id,
                    permissions=["keys.read"],
                    name=f"{round_name}-w{worker}-{attempt}",
                    now=NOW,
                    actor=OPERATOR_ACTOR,
                )
            except UnavailableError:
                with lock:
                    refused[round_name] += 1
                continue
            except BaseException as exc:
                with lock:
                    failures.append(exc)
                continue
            assert new is not None
            with lock:
                committed.append(new.record.id)

    try:
        for number, round_name in enumerate(ROUNDS):
            if round_name == "lock":
                chaos.execute("BEGIN EXCLUSIVE")
            elif round_name == "audit-down":
                chaos.execute(
                    "CREATE TRIGGER fail_audit BEFORE INSERT ON audit_events"
                    " BEGIN SELECT RAISE(ABORT, 'audit is down'); END"
                )
            workers = [
                threading.Thread(target=create, args=(f"{number}-{round_name}", n))
                for n in range(WORKERS)
            ]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join(60)
            if round_name == "lock":
                chaos.execute("COMMIT")
            elif round_name == "audit-down":
                chaos.execute("DROP TRIGGER fail_audit")
    finally:
        chaos.close()
    assert not failures, failures
    stored = {record.id for record in store.list_root_keys(workspace.id)}
    events: list[Any] = []
    page = store.list_audit(workspace.id, limit=500)
    events.extend(page.events)
    while page.next_cursor is not None:
        page = store.list_audit(workspace.id, limit=500, before=page.next_cursor)
        events.extend(page.events)
    audited = [
        target.id for event in events if event.action == "key.create" for target in event.targets
    ]
    store.close()
    per_round = WORKERS * KEYS_PER_WORKER
    faulty = [f"{n}-{name}" for n, name in enumerate(ROUNDS) if name != "healthy"]
    assert refused == dict.fromkeys(faulty, per_round)
    assert len(committed) == per_round * ROUNDS.count("healthy")
    assert stored == set(committed)
    assert sorted(audited) == sorted(committed)  # exactly one event per committed key
