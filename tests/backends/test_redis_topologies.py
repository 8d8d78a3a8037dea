"""The Redis backends on the deployments people run: Redis Cluster and Sentinel, for real.

The GCRA script touches one key per decision, so a Cluster routes each decision to the node
owning the workspace's key and exactness holds; pub/sub messages reach subscribers on every
node. Sentinel clients find the master through the sentinels.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from authcore.backends.cache import CachedStore
from authcore.backends.redis import (
    AsyncRedisInvalidator,
    AsyncRedisRateLimiter,
    RedisInvalidator,
    RedisRateLimiter,
    client_from_url,
    close_client,
)
from authcore.errors import ConfigurationError, InvalidCredentialError
from authcore.flow import Authenticator, AuthSettings, Backends
from authcore.ratelimit import RateLimitPolicy
from authcore.records import OPERATOR_ACTOR
from authcore.testing import MemoryStore, issue_root_key, make_workspace
from tests.backends.races import race_threads
from tests.backends.redis_topologies import redis_cluster, redis_sentinel

pytestmark = pytest.mark.redis

LIMIT = RateLimitPolicy(100, 3600)


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_cluster(tmp_path_factory.mktemp("cluster")) as ports:
        yield "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in ports)


@pytest.fixture(scope="module")
def sentinel_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_sentinel(tmp_path_factory.mktemp("sentinel")) as (_, _, sentinel):
        yield f"redis+sentinel://127.0.0.1:{sentinel}/authcore/2"


@pytest.fixture(params=["cluster", "sentinel"])
def url(request: pytest.FixtureRequest) -> str:
    value: str = request.getfixturevalue(f"{request.param}_url")
    return value


def test_the_limiter_admits_exactly_the_limit_under_32_threads(url: str) -> None:
    limiter = RedisRateLimiter.from_url(url, namespace=f"authcore:test:{threading.get_ident()}:")
    try:
        decisions = race_threads(limiter, LIMIT, threads=32, attempts=10)
    finally:
        limiter.close()
    assert sum(decision.allowed for decision in decisions) == 100
    assert len(decisions) == 320


def test_the_async_limiter_admits_exactly_the_limit_under_400_tasks(url: str) -> None:
    # 400 tasks, 64 in flight at a time: what a busy server process has open. (redis-py's
    # asyncio Sentinel client asks the sentinel for the master on every new connection, and
    # hundreds of those at once can time out: a client limit, not a limiter one.)
    async def race() -> int:
        # A generous timeout: this counts admissions; latency is measured in benchmarks/.
        limiter = AsyncRedisRateLimiter.from_url(url, namespace="authcore:test:async:", timeout=2.0)
        in_flight = asyncio.Semaphore(64)

        async def decide() -> bool:
            async with in_flight:
                return (await limiter.ahit("ws_async_race", LIMIT)).allowed

        try:
            allowed = await asyncio.gather(*(decide() for _ in range(400)))
        finally:
            await limiter.aclose()
        return sum(allowed)

    assert asyncio.run(race()) == 100


def test_workspaces_land_on_their_own_keys(url: str) -> None:
    limiter = RedisRateLimiter.from_url(url, namespace="authcore:test:keys:")
    try:
        tight = RateLimitPolicy(1, 3600)
        assert limiter.hit("ws_one", tight).allowed
        assert not limiter.hit("ws_one", tight).allowed
        assert limiter.hit("ws_two", tight).allowed  # another key, maybe another node
    finally:
        limiter.close()


def _world(url: str, store: MemoryStore) -> tuple[CachedStore, RedisInvalidator]:
    cache = CachedStore(store, ttl=3600, workspace_ttl=3600)
    invalidator = RedisInvalidator.from_url(url, channel="authcore:test:topology")
    invalidator.attach(cache)
    assert invalidator.wait_ready(10)
    return cache, invalidator


def test_a_revocation_reaches_another_process_cache(url: str) -> None:
    store = MemoryStore()
    make_workspace(store, "ws_topology")
    record, key = issue_root_key(store, "ws_topology", ["keys.read"], now=1.8e9)
    first, first_invalidator = _world(url, store)
    second, second_invalidator = _world(url, store)
    try:
        reader = Authenticator(
            AuthSettings(default_rate_limit=None),
            clock=lambda: 1.8e9,
            backends=Backends(store=second),
        )
        reader.authenticate([f"Bearer {key.reveal()}"])  # cached (for an hour) and replayed
        first.revoke_root_key(record.id, now=1.8e9, actor=OPERATOR_ACTOR)
        refused = threading.Event()
        for _ in range(200):  # at most 10 s, far below the hour the cache would keep it
            try:
                reader.authenticate([f"Bearer {key.reveal()}"])
            except InvalidCredentialError:
                refused.set()
                break
            refused.wait(0.05)
        assert refused.is_set()
    finally:
        first_invalidator.close()
        second_invalidator.close()


def test_the_sentinel_client_talks_to_the_master(sentinel_url: str) -> None:
    client = client_from_url(sentinel_url)
    try:
        assert client.set("authcore:test:sentinel", b"1")
        role = client.execute_command("ROLE")
        assert role[0] == b"master"
    finally:
        close_client(client)


def test_the_async_invalidator_refuses_cluster(cluster_url: str) -> None:
    with pytest.raises(ConfigurationError):
        AsyncRedisInvalidator.from_url(cluster_url)


@pytest.mark.parametrize(
    "bad",
    [
        "redis+sentinel://127.0.0.1:26379",  # no service name
        "redis+sentinel://127.0.0.1:abc/authcore",
        "redis+cluster://127.0.0.1:7000/3",  # Cluster has only database 0
        "redis+cluster://:7000",
        "redis+sentinel://user:s3cret@127.0.0.1:x/authcore",
    ],
)
def test_malformed_urls_are_configuration_errors_that_quote_nothing(bad: str) -> None:
    with pytest.raises(ConfigurationError) as error:
        client_from_url(bad)
    assert "s3cret" not in str(error.value.detail)
    assert "127.0.0.1" not in str(error.value.detail)
