"""An identity's limit, shared by all its keys, through the whole flow and the replay.

Two keys of one identity racing share exactly the identity's limit, on the memory limiter
(threads, tasks) and on Redis (threads, tasks; one round trip for the three levels). A change
to the identity reaches every conclusion built from it at once.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from authcore.authenticator import Authenticator
from authcore.backends.cache import CachedStore
from authcore.backends.memory import MemoryRateLimiter, MemoryStore
from authcore.backends.redis import AsyncRedisRateLimiter, RedisRateLimiter
from authcore.errors import InvalidCredentialError, RateLimitedError
from authcore.flow import AsyncBackends, AuthSettings, Backends
from authcore.ratelimit import RateLimitPolicy
from authcore.records import OPERATOR_ACTOR
from authcore.testing import SettableClock, add_identity, issue_root_key, make_workspace

from .races import admitted_by_tasks, identity_limited, race_requests

NOW = 1_800_000_000


def fixed_clock() -> int:
    return NOW * 1_000_000


@pytest.mark.parametrize("cached", [False, True], ids=["flow", "replay"])
def test_keys_of_one_identity_share_its_limit_exactly_under_32_threads(cached: bool) -> None:
    store, headers, _ = identity_limited(1000, 45, keys=2, cached=cached)
    auth = Authenticator(
        AuthSettings(),
        clock=SettableClock(NOW),
        backends=Backends(store, limiter=MemoryRateLimiter(clock_us=fixed_clock)),
    )
    admitted = race_requests(lambda header: auth.authenticate([header]), headers)
    # Exactly the identity's limit over both keys; how the threads split it is scheduling.
    assert sum(admitted.values()) == 45


async def test_keys_of_one_identity_share_its_limit_exactly_under_500_tasks() -> None:
    store, headers, _ = identity_limited(1000, 30, keys=2)
    auth = Authenticator(
        AuthSettings(),
        clock=SettableClock(NOW),
        abackends=AsyncBackends(store, limiter=MemoryRateLimiter(clock_us=fixed_clock)),
    )
    first = await admitted_by_tasks(auth, headers[0], 250)
    second = await admitted_by_tasks(auth, headers[1], 250)
    assert first + second == 30


def test_the_workspace_still_binds_an_identity_with_a_looser_limit() -> None:
    store, headers, _ = identity_limited(20, 1000, keys=2)
    auth = Authenticator(
        AuthSettings(),
        clock=SettableClock(NOW),
        backends=Backends(store, limiter=MemoryRateLimiter(clock_us=fixed_clock)),
    )
    admitted = race_requests(lambda header: auth.authenticate([header]), headers)
    assert sum(admitted.values()) == 20


def test_a_key_without_an_identity_is_not_held_by_anyones_identity_limit() -> None:
    store = MemoryStore()
    make_workspace(store, "ws_1", rate_limit=RateLimitPolicy(100, 60))
    owner = add_identity(store, "ws_1", "c", rate_limit=RateLimitPolicy(1, 60))
    _, of_identity = issue_root_key(store, "ws_1", [], identity_id=owner.id)
    _, own = issue_root_key(store, "ws_1", [])
    auth = Authenticator(
        AuthSettings(),
        clock=SettableClock(NOW),
        backends=Backends(store, limiter=MemoryRateLimiter(clock_us=fixed_clock)),
    )
    sent = auth.authenticate([f"Bearer {of_identity.reveal()}"]).rate_limit
    assert sent is not None
    assert (sent.limit, sent.remaining) == (1, 0)  # the identity's is the tightest
    with pytest.raises(RateLimitedError):
        auth.authenticate([f"Bearer {of_identity.reveal()}"])
    for _ in range(5):
        auth.authenticate([f"Bearer {own.reveal()}"])


def _cached_world() -> tuple[MemoryStore, CachedStore, Authenticator, str, SettableClock]:
    clock = SettableClock(NOW)
    store = MemoryStore()
    workspace = store.create_workspace("Acme", now=NOW, actor=OPERATOR_ACTOR)
    new = store.create_root_key(
        workspace.id, permissions=[], identity="customer", now=NOW, actor=OPERATOR_ACTOR
    )
    assert new is not None
    cache = CachedStore(store, clock=clock)
    auth = Authenticator(
        AuthSettings(),
        clock=clock,
        backends=Backends(cache, limiter=MemoryRateLimiter(clock_us=clock.us)),
    )
    return store, cache, auth, f"Bearer {new.key.reveal()}", clock


def test_an_identity_limit_set_through_the_cache_binds_the_next_replay() -> None:
    _, cache, auth, header, _ = _cached_world()
    auth.authenticate([header])
    assert auth.authenticate([header]).replayed  # a conclusion is kept...
    workspace_id = auth.authenticate([header]).principal.workspace_id
    cache.set_identity_rate_limit(
        workspace_id, "customer", RateLimitPolicy(1, 60), now=NOW, actor=OPERATOR_ACTOR
    )
    # ... and dropped by the change: the next request runs the flow and meets the new limit.
    result = auth.authenticate([header])
    assert not result.replayed
    assert result.rate_limit is not None
    assert result.rate_limit.limit == 1
    with pytest.raises(RateLimitedError):
        auth.authenticate([header])


def test_deleting_an_identity_with_its_keys_ends_a_replayed_key_at_once() -> None:
    _, cache, auth, header, _ = _cached_world()
    auth.authenticate([header])
    principal = auth.authenticate([header]).principal
    assert principal.identity_id is not None
    cache.delete_identity(
        principal.workspace_id, "customer", revoke_keys=True, now=NOW, actor=OPERATOR_ACTOR
    )
    with pytest.raises(InvalidCredentialError):
        auth.authenticate([header])


def test_an_identity_change_from_another_process_is_seen_through_an_invalidation() -> None:
    store, cache, auth, header, _ = _cached_world()
    auth.authenticate([header])
    principal = auth.authenticate([header]).principal
    # Another process changes the identity in the shared store (not through this cache) and
    # publishes what it touched; this process applies the message.
    changed = store.set_identity_rate_limit(
        principal.workspace_id, "customer", RateLimitPolicy(1, 60), now=NOW, actor=OPERATOR_ACTOR
    )
    assert changed is not None
    from authcore.backends.invalidation import Invalidation

    cache.apply(Invalidation("identity", changed.id))
    first = auth.authenticate([header])
    assert not first.replayed
    with pytest.raises(RateLimitedError):
        auth.authenticate([header])


@pytest.fixture
def namespace(redis_url: str) -> Iterator[str]:
    import redis

    prefix = f"authcore:test:{uuid.uuid4().hex}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        keys = [*client.scan_iter(match=prefix + "*"), *client.scan_iter(match="{" + prefix + "*")]
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def redis_limiter(redis_url: str, namespace: str) -> Iterator[RedisRateLimiter]:
    limiter = RedisRateLimiter.from_url(redis_url, namespace=namespace, timeout=5.0)
    yield limiter
    limiter.close()


@pytest.fixture
async def aredis_limiter(redis_url: str, namespace: str) -> AsyncIterator[AsyncRedisRateLimiter]:
    import redis.asyncio

    # A bounded pool: the tasks share 16 connections instead of opening one each.
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        redis_url, max_connections=16, timeout=10, socket_timeout=5.0, socket_connect_timeout=5.0
    )
    limiter = AsyncRedisRateLimiter(redis.asyncio.Redis(connection_pool=pool), namespace=namespace)
    yield limiter
    await limiter.aclose()
    await pool.aclose()


@pytest.mark.redis
def test_on_redis_keys_of_one_identity_share_its_limit_exactly_under_32_threads(
    redis_limiter: RedisRateLimiter,
) -> None:
    store, headers, _ = identity_limited(1000, 45, keys=2)
    auth = Authenticator(
        AuthSettings(), clock=SettableClock(NOW), backends=Backends(store, limiter=redis_limiter)
    )
    admitted = race_requests(lambda header: auth.authenticate([header]), headers)
    assert sum(admitted.values()) == 45


@pytest.mark.redis
async def test_on_redis_keys_of_one_identity_share_its_limit_exactly_under_300_tasks(
    aredis_limiter: AsyncRedisRateLimiter,
) -> None:
    store, headers, _ = identity_limited(1000, 25, keys=2)
    auth = Authenticator(
        AuthSettings(),
        clock=SettableClock(NOW),
        abackends=AsyncBackends(store, limiter=aredis_limiter),
    )
    first = await admitted_by_tasks(auth, headers[0], 150)
    second = await admitted_by_tasks(auth, headers[1], 150)
    assert first + second == 25
