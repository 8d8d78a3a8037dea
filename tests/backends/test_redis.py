"""Redis limiters and cache invalidation against the real Redis server (db 15).

Each test uses its own key namespace (and pub/sub channel) and deletes its keys afterwards.
"Redis stopped" is a loopback TCP relay in front of the real server that the test closes and
reopens on the same port; "slow" is ``CLIENT PAUSE WRITE`` from a second connection.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from urllib.parse import urlsplit

import pytest
import redis
import redis.asyncio

from authcore.backends import redis_clients
from authcore.backends.cache import CachedStore
from authcore.backends.redis import (
    AsyncRedisInvalidator,
    AsyncRedisRateLimiter,
    RedisInvalidator,
    RedisRateLimiter,
)
from authcore.backends.redis_clients import (
    AsyncLuaScript,
    AsyncPackedLuaScript,
    LuaScript,
    PackedLuaScript,
)
from authcore.errors import ConfigurationError, UnavailableError
from authcore.flow import AsyncBackends, Authenticator, AuthSettings, Backends
from authcore.ratelimit import RateLimitPolicy, decide, key_bucket, rate_limit_key
from authcore.records import OPERATOR_ACTOR
from authcore.testing import MemoryStore, SettableClock
from authcore.tokens import digest
from tests.backends.races import admitted_by_tasks, key_limited, race_requests, race_threads

pytestmark = pytest.mark.redis

# One slot per 864 s: no refill can happen while a test runs, so counts are exact.
LIMIT = RateLimitPolicy(limit=100, period=86_400)
NOW = 1_800_000_000.0


@pytest.fixture
def namespace(redis_url: str) -> Iterator[str]:
    prefix = f"authcore:test:{uuid.uuid4().hex}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        # A workspace's own key starts with the namespace; its keys' and identities' start with
        # "{" and the namespace (the Cluster hash tag, rate_limit_key).
        keys = [*client.scan_iter(match=prefix + "*"), *client.scan_iter(match="{" + prefix + "*")]
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def admin(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
    yield client
    client.close()


@pytest.fixture
def limiter(redis_url: str, namespace: str) -> Iterator[RedisRateLimiter]:
    limiter = RedisRateLimiter.from_url(redis_url, namespace=namespace, timeout=2.0)
    yield limiter
    limiter.close()


@pytest.fixture
async def alimiter(redis_url: str, namespace: str) -> AsyncIterator[AsyncRedisRateLimiter]:
    # A bounded pool: 1,000 tasks share 32 connections instead of opening 1,000 sockets.
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        redis_url, max_connections=32, timeout=10, socket_timeout=2.0, socket_connect_timeout=2.0
    )
    limiter = AsyncRedisRateLimiter(redis.asyncio.Redis(connection_pool=pool), namespace=namespace)
    yield limiter
    await limiter.aclose()
    await pool.aclose()


# --- a relay we can stop ---------------------------------------------------------------------


class Relay:
    """A loopback TCP relay to the real Redis that can be closed and reopened on its port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None

    def start(self) -> None:
        listener = socket.socket()
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.port))
            listener.listen(16)
        except OSError:
            listener.close()
            raise
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        if self._listener is not None:
            # shutdown() wakes the thread blocked in accept(); close() alone would not, and
            # the port would keep accepting.
            with _Quiet():
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            for sock in self._sockets:
                with _Quiet():
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target, timeout=5)
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()


class _Quiet:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return True


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        with _Quiet():
            sink.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def relay(redis_url: str) -> Iterator[Relay]:
    parts = urlsplit(redis_url)
    relay = Relay((parts.hostname or "127.0.0.1", parts.port or 6379))
    relay.start()
    yield relay
    relay.stop()


def _relayed(redis_url: str, relay: Relay) -> str:
    parts = urlsplit(redis_url)
    return parts._replace(netloc=f"127.0.0.1:{relay.port}").geturl()


def _wait_for(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


# --- exactness -------------------------------------------------------------------------------


@pytest.mark.parametrize("round_", range(3))
def test_admits_exactly_the_limit_under_32_threads(limiter: RedisRateLimiter, round_: int) -> None:
    decisions = race_threads(limiter, LIMIT)
    allowed = [d for d in decisions if d.allowed]
    assert len(decisions) == 320
    assert len(allowed) == 100
    assert sorted(d.remaining for d in allowed) == list(range(100))
    limiter._client.delete(rate_limit_key("ws_race", limiter._namespace))


async def test_admits_exactly_the_limit_under_1000_tasks(
    alimiter: AsyncRedisRateLimiter,
) -> None:
    for round_ in range(2):
        workspace = f"ws_tasks_{round_}"
        decisions = await asyncio.gather(*(alimiter.ahit(workspace, LIMIT) for _ in range(1000)))
        assert sum(d.allowed for d in decisions) == 100


@pytest.mark.parametrize(("workspace", "key"), [(100, 50), (40, 100)])
def test_a_key_and_its_workspace_admit_exactly_the_tighter_limit_under_32_threads(
    limiter: RedisRateLimiter, admin: redis.Redis, workspace: int, key: int
) -> None:
    store, headers, ids = key_limited(workspace, [key], cached=True)
    auth = Authenticator(
        AuthSettings(), clock=SettableClock(), backends=Backends(store, limiter=limiter)
    )
    admitted = race_requests(lambda header: auth.authenticate([header]), headers)
    assert sum(admitted.values()) == min(workspace, key)
    # Two buckets, under the namespace: the key's never names the workspace's, and carries
    # the workspace's key as its hash tag (one Cluster slot for one script).
    namespace = limiter._namespace
    key_name = rate_limit_key(key_bucket("ws_both", ids[0]), namespace)
    assert key_name.startswith("{" + rate_limit_key("ws_both", namespace) + "}:")
    assert admin.exists(rate_limit_key("ws_both", namespace)) == 1
    assert admin.exists(key_name) == 1
    after = limiter.hit("ws_both", RateLimitPolicy(workspace, 86_400))
    assert after.remaining == max(0, workspace - min(workspace, key) - 1)


def test_two_keys_share_their_workspace_exactly_under_32_threads(
    limiter: RedisRateLimiter,
) -> None:
    store, headers, _ = key_limited(100, [60, 60])
    auth = Authenticator(
        AuthSettings(), clock=SettableClock(), backends=Backends(store, limiter=limiter)
    )
    admitted = race_requests(lambda header: auth.authenticate([header]), headers)
    assert sum(admitted.values()) == 100
    assert all(count <= 60 for count in admitted.values())


@pytest.mark.parametrize(("workspace", "key"), [(100, 50), (40, 100)])
async def test_a_key_and_its_workspace_admit_exactly_the_tighter_limit_under_1000_tasks(
    alimiter: AsyncRedisRateLimiter, workspace: int, key: int
) -> None:
    store, headers, _ = key_limited(workspace, [key], cached=True)
    auth = Authenticator(
        AuthSettings(), clock=SettableClock(), abackends=AsyncBackends(store, limiter=alimiter)
    )
    assert await admitted_by_tasks(auth, headers[0], 1000) == min(workspace, key)


def _process_hits(url: str, namespace: str, start: object, attempts: int) -> int:
    """Run in a spawned process: its own client, ``attempts`` hits after the barrier."""
    limiter = RedisRateLimiter.from_url(url, namespace=namespace, timeout=5.0)
    start.wait()  # type: ignore[attr-defined]  # a multiprocessing Barrier proxy
    admitted = sum(limiter.hit("ws_shared", LIMIT).allowed for _ in range(attempts))
    limiter.close()
    return admitted


def test_four_processes_share_one_limit_exactly(redis_url: str, namespace: str) -> None:
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        start = manager.Barrier(4)
        with context.Pool(4) as pool:
            counts = pool.starmap(
                _process_hits, [(redis_url, namespace, start, 60) for _ in range(4)]
            )
    assert sum(counts) == 100


def test_decisions_match_the_pure_algorithm_in_structure(limiter: RedisRateLimiter) -> None:
    policy = RateLimitPolicy(limit=5, period=10)
    tat: int | None = None
    expected = []
    now = 1_800_000_000_000_000
    for _ in range(7):
        decision, tat = decide(tat, now, policy)
        expected.append(decision)
    actual = [limiter.hit("ws_compare", policy) for _ in range(7)]
    for want, got in zip(expected, actual, strict=True):
        assert (got.allowed, got.limit, got.remaining) == (want.allowed, want.limit, want.remaining)
        # The server clock moves a little between calls; the pure run's clock does not.
        assert abs(got.reset - want.reset) <= 1
        assert abs(got.retry_after - want.retry_after) <= 1
    assert [d.allowed for d in actual] == [True] * 5 + [False] * 2
    assert [d.remaining for d in actual[:5]] == [4, 3, 2, 1, 0]
    assert all(d.retry_after >= 1 for d in actual[5:])


def test_keyed_by_workspace_id_only(limiter: RedisRateLimiter, admin: redis.Redis) -> None:
    limiter.hit("ws_key", RateLimitPolicy(limit=3, period=60))
    assert admin.exists(rate_limit_key("ws_key", limiter._namespace)) == 1
    limiter.hit("ws_key", RateLimitPolicy(limit=3, period=30))
    third = limiter.hit("ws_key", RateLimitPolicy(limit=3, period=60))
    assert third.remaining == 0  # a new policy kept the state: no fresh burst


# --- faults ----------------------------------------------------------------------------------


def test_redis_stopped_mid_test_is_unavailable_then_recovers(
    redis_url: str, namespace: str, relay: Relay
) -> None:
    limiter = RedisRateLimiter.from_url(
        _relayed(redis_url, relay), namespace=namespace, timeout=1.0
    )
    assert limiter.hit("ws_stop", LIMIT).allowed
    relay.stop()
    with pytest.raises(UnavailableError) as caught:
        limiter.hit("ws_stop", LIMIT)
    assert str(relay.port) not in str(caught.value)
    relay.start()
    assert limiter.hit("ws_stop", LIMIT).remaining == 98
    limiter.close()


async def test_async_redis_stopped_mid_test_is_unavailable_then_recovers(
    redis_url: str, namespace: str, relay: Relay
) -> None:
    limiter = AsyncRedisRateLimiter.from_url(
        _relayed(redis_url, relay), namespace=namespace, timeout=1.0
    )
    assert (await limiter.ahit("ws_stop", LIMIT)).allowed
    relay.stop()
    with pytest.raises(UnavailableError):
        await limiter.ahit("ws_stop", LIMIT)
    relay.start()
    assert (await limiter.ahit("ws_stop", LIMIT)).remaining == 98
    await limiter.aclose()


@pytest.fixture
def paused(admin: redis.Redis) -> Iterator[Callable[[], None]]:
    def pause() -> None:
        # WRITE pauses only commands that may write (the script), for at most 1.5 s; the
        # finally below ends it as soon as the test is done.
        admin.client_pause(1500, all=False)

    try:
        yield pause
    finally:
        admin.client_unpause()


def test_a_stalled_server_beyond_the_timeout_is_unavailable_then_recovers(
    redis_url: str, namespace: str, admin: redis.Redis, paused: Callable[[], None]
) -> None:
    limiter = RedisRateLimiter.from_url(redis_url, namespace=namespace, timeout=0.2)
    assert limiter.hit("ws_slow", LIMIT).allowed  # loads the script
    paused()
    try:
        with pytest.raises(UnavailableError):
            limiter.hit("ws_slow", LIMIT)
    finally:
        admin.client_unpause()
    # The timed-out reply never answers a later call: its connection was dropped, so another
    # bucket's decision is its own (a reused connection would hand back ws_slow's reply).
    assert limiter.hit("ws_other", LIMIT).remaining == 99
    assert limiter.hit("ws_slow", LIMIT).allowed
    limiter.close()


async def test_async_stalled_server_beyond_the_timeout_is_unavailable_then_recovers(
    redis_url: str, namespace: str, admin: redis.Redis, paused: Callable[[], None]
) -> None:
    limiter = AsyncRedisRateLimiter.from_url(redis_url, namespace=namespace, timeout=0.2)
    assert (await limiter.ahit("ws_slow", LIMIT)).allowed
    paused()
    try:
        with pytest.raises(UnavailableError):
            await limiter.ahit("ws_slow", LIMIT)
    finally:
        admin.client_unpause()
    # The cancelled call's connection was dropped: another bucket's answer is its own.
    assert (await limiter.ahit("ws_other", LIMIT)).remaining == 99
    assert (await limiter.ahit("ws_slow", LIMIT)).allowed
    await limiter.aclose()


@pytest.mark.parametrize("plant", ["hash", "text", "huge"])
def test_garbage_at_the_limiter_key_is_unavailable_then_recovers(
    limiter: RedisRateLimiter, admin: redis.Redis, plant: str
) -> None:
    key = rate_limit_key("ws_garbage", limiter._namespace)
    if plant == "hash":
        admin.hset(key, "field", "value")  # WRONGTYPE inside the script
    elif plant == "text":
        admin.set(key, "not a number")
    else:
        admin.set(key, str(2**60))  # a TAT far beyond any real one: corrupt state
    with pytest.raises(UnavailableError) as caught:
        limiter.hit("ws_garbage", LIMIT)
    assert "ws_garbage" not in str(caught.value)
    admin.delete(key)
    assert limiter.hit("ws_garbage", LIMIT).allowed


async def test_async_garbage_at_the_limiter_key_is_unavailable(
    alimiter: AsyncRedisRateLimiter, admin: redis.Redis
) -> None:
    key = rate_limit_key("ws_garbage", alimiter._namespace)
    admin.hset(key, "field", "value")
    with pytest.raises(UnavailableError):
        await alimiter.ahit("ws_garbage", LIMIT)
    admin.delete(key)
    assert (await alimiter.ahit("ws_garbage", LIMIT)).allowed


def test_a_limiter_from_a_url_sends_packed_commands_one_of_your_own_keeps_redis_py(
    redis_url: str, namespace: str
) -> None:
    built = RedisRateLimiter.from_url(redis_url, namespace=namespace)
    own = RedisRateLimiter(
        redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2),
        namespace=namespace,
    )
    try:
        assert isinstance(built._script, PackedLuaScript)
        assert isinstance(built._levels_script, PackedLuaScript)
        assert type(own._script) is LuaScript  # its retries and hooks stay redis-py's
        # One bucket, both paths: one count.
        assert built.hit("ws_paths", LIMIT).remaining == 99
        assert own.hit("ws_paths", LIMIT).remaining == 98
        assert built.hit("ws_paths", LIMIT).remaining == 97
        levels = [("ws_paths", LIMIT), ("ws_paths:key:k1", LIMIT)]
        assert [d.remaining for d in built.hit_levels(levels)] == [96, 99]
        assert [d.remaining for d in own.hit_levels(levels)] == [95, 98]
    finally:
        built.close()
        own.close()


async def test_an_async_limiter_from_a_url_sends_packed_commands(
    redis_url: str, namespace: str, admin: redis.Redis
) -> None:
    built = AsyncRedisRateLimiter.from_url(redis_url, namespace=namespace, timeout=2.0)
    own = AsyncRedisRateLimiter(
        redis.asyncio.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2),
        namespace=namespace,
    )
    try:
        assert isinstance(built._script, AsyncPackedLuaScript)
        assert isinstance(built._levels_script, AsyncPackedLuaScript)
        assert type(own._script) is AsyncLuaScript
        assert (await built.ahit("ws_apaths", LIMIT)).remaining == 99
        assert (await own.ahit("ws_apaths", LIMIT)).remaining == 98
        levels = [("ws_apaths", LIMIT), ("ws_apaths:key:k1", LIMIT)]
        assert [d.remaining for d in await built.ahit_levels(levels)] == [97, 99]
        admin.script_flush()  # NOSCRIPT: loaded again, the decision made once
        assert (await built.ahit("ws_apaths", LIMIT)).remaining == 96
        assert [d.remaining for d in await own.ahit_levels(levels)] == [95, 98]
        # Many tasks at once share the pool's connections, each its own answer.
        decisions = await asyncio.gather(
            *(built.ahit(f"ws_apaths_{i % 4}", LIMIT) for i in range(40))
        )
        assert sorted(d.remaining for d in decisions) == sorted(list(range(90, 100)) * 4)
    finally:
        await built.aclose()
        await own.aclose()


def test_the_packed_commands_kept_are_bounded(
    limiter: RedisRateLimiter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_clients, "PACKED_COMMANDS", 3)
    for i in range(10):
        assert limiter.hit(f"ws_bound_{i}", LIMIT).remaining == 99
    script = limiter._script
    assert isinstance(script, PackedLuaScript)
    assert 0 < len(script._packed) <= 3
    # A bucket whose packed command was dropped is packed again and counts on.
    assert limiter.hit("ws_bound_0", LIMIT).remaining == 98


def test_a_killed_connection_is_replaced_and_counts_stay_exact(
    limiter: RedisRateLimiter, admin: redis.Redis
) -> None:
    assert limiter.hit("ws_kill", LIMIT).remaining == 99
    # The id of the limiter's pooled connection: its only one, as calls here are one at a time.
    client_id = limiter._client.client_id()
    assert admin.client_kill_filter(_id=str(client_id)) == 1
    outcomes: list[int | None] = []
    for _ in range(3):
        try:
            outcomes.append(limiter.hit("ws_kill", LIMIT).remaining)
        except UnavailableError:
            outcomes.append(None)
    # The dead connection fails at most the one decision sent on it (never retried: it may
    # have counted), and the next ones count on from where the server is.
    assert outcomes in ([None, 98, 97], [98, 97, 96]), outcomes


def test_the_script_is_reloaded_after_a_script_flush(
    limiter: RedisRateLimiter, admin: redis.Redis
) -> None:
    assert limiter.hit("ws_flush", LIMIT).allowed
    admin.script_flush()
    assert limiter.hit("ws_flush", LIMIT).remaining == 98
    # The several-level script too: loaded again on NOSCRIPT, the decision made once.
    levels = [("ws_flush_levels", LIMIT), ("ws_flush_levels:key:k1", LIMIT)]
    assert [d.remaining for d in limiter.hit_levels(levels)] == [99, 99]
    admin.script_flush()
    assert [d.remaining for d in limiter.hit_levels(levels)] == [98, 98]


async def test_the_async_script_is_reloaded_after_a_script_flush(
    alimiter: AsyncRedisRateLimiter, admin: redis.Redis
) -> None:
    assert (await alimiter.ahit("ws_aflush", LIMIT)).allowed
    admin.script_flush()
    assert (await alimiter.ahit("ws_aflush", LIMIT)).remaining == 98
    levels = [("ws_aflush_levels", LIMIT), ("ws_aflush_levels:key:k1", LIMIT)]
    assert [d.remaining for d in await alimiter.ahit_levels(levels)] == [99, 99]
    admin.script_flush()
    assert [d.remaining for d in await alimiter.ahit_levels(levels)] == [98, 98]


def test_a_client_with_unbounded_timeouts_is_refused(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)  # socket_timeout=None: could wait forever
    with pytest.raises(ConfigurationError):
        RedisRateLimiter(client)
    client.close()


def test_an_invalid_url_is_a_configuration_error_without_the_password() -> None:
    with pytest.raises(ConfigurationError) as caught:
        RedisRateLimiter.from_url("rediss+bogus://user:hunter2@127.0.0.1:1/0")
    assert "hunter2" not in str(caught.value)


# --- cross-process invalidation --------------------------------------------------------------


def _seeded_caches() -> tuple[MemoryStore, CachedStore, CachedStore, str, bytes]:
    # Two caches over one store stand for two API processes over one database.
    store = MemoryStore()
    first, second = CachedStore(store, ttl=3600), CachedStore(store, ttl=3600)
    workspace = first.create_workspace("acme", now=NOW, actor=OPERATOR_ACTOR)
    created = first.create_root_key(workspace.id, permissions=[], now=NOW, actor=OPERATOR_ACTOR)
    assert created is not None
    return store, first, second, created.record.id, digest(created.key.reveal())


def test_revocation_reaches_another_cache_through_pub_sub(redis_url: str) -> None:
    channel = f"authcore:test:{uuid.uuid4().hex}"
    _, first, second, key_id, key_digest = _seeded_caches()
    publisher = RedisInvalidator.from_url(redis_url, channel=channel, timeout=2.0)
    subscriber = RedisInvalidator.from_url(redis_url, channel=channel, timeout=2.0)
    publisher.attach(first)
    subscriber.attach(second)
    try:
        assert subscriber.wait_ready(5.0)
        cached = second.find_root_key(key_digest)
        assert cached is not None
        assert cached.revoked_at is None
        first.revoke_root_key(key_id, now=NOW, actor=OPERATOR_ACTOR)

        def revoked_in_second() -> bool:
            record = second.find_root_key(key_digest)
            return record is not None and record.revoked_at is not None

        assert _wait_for(revoked_in_second)
    finally:
        publisher.close()
        subscriber.close()


async def test_async_revocation_reaches_another_cache_through_pub_sub(redis_url: str) -> None:
    channel = f"authcore:test:{uuid.uuid4().hex}"
    _, first, second, key_id, key_digest = _seeded_caches()
    publisher = AsyncRedisInvalidator.from_url(redis_url, channel=channel, timeout=2.0)
    subscriber = AsyncRedisInvalidator.from_url(redis_url, channel=channel, timeout=2.0)
    await publisher.attach(first)
    await subscriber.attach(second)
    try:
        async with asyncio.timeout(5.0):
            await subscriber.wait_ready()
        assert await second.afind_root_key(key_digest) is not None
        await first.arevoke_root_key(key_id, now=NOW, actor=OPERATOR_ACTOR)
        async with asyncio.timeout(5.0):
            while True:
                record = await second.afind_root_key(key_digest)
                if record is not None and record.revoked_at is not None:
                    break
                await asyncio.sleep(0.01)
    finally:
        await publisher.aclose()
        await subscriber.aclose()


def test_a_resubscription_after_a_disconnect_clears_the_cache(redis_url: str, relay: Relay) -> None:
    channel = f"authcore:test:{uuid.uuid4().hex}"
    _, _, second, _, key_digest = _seeded_caches()
    subscriber = RedisInvalidator.from_url(_relayed(redis_url, relay), channel=channel)
    subscriber.attach(second)
    try:
        assert subscriber.wait_ready(5.0)
        second.find_root_key(key_digest)
        assert second.size == 1
        relay.stop()  # messages published now would be lost
        assert _wait_for(lambda: not subscriber.wait_ready(0))
        relay.start()
        assert subscriber.wait_ready(10.0)
        assert second.size == 0
    finally:
        subscriber.close()


def test_a_failed_publish_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture, relay: Relay, redis_url: str
) -> None:
    _, first, _, key_id, key_digest = _seeded_caches()
    publisher = RedisInvalidator.from_url(_relayed(redis_url, relay), timeout=0.5)
    first.publisher = publisher
    relay.stop()
    first.revoke_root_key(key_id, now=NOW, actor=OPERATOR_ACTOR)
    record = first.find_root_key(key_digest)
    assert record is not None
    assert record.revoked_at is not None
    assert "publish failed" in caplog.text
    assert key_digest.hex() not in caplog.text
    publisher.close()
