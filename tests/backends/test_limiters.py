"""Memory limiter exactness, and the limiter failure policy through the flow.

The failure-policy tests point a Redis limiter at a closed loopback port: a real refused
connection, no server needed.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from authcore.backends.cache import CachedStore
from authcore.backends.memory import MemoryRateLimiter
from authcore.backends.redis import AsyncRedisRateLimiter, RedisRateLimiter
from authcore.errors import RateLimitedError, UnavailableError
from authcore.flow import AsyncBackends, Authenticator, AuthSettings, Backends
from authcore.ratelimit import LimiterFailurePolicy, RateLimiter, RateLimitPolicy, key_bucket
from authcore.responses import error_response
from authcore.testing import MemoryStore, SettableClock, issue_root_key, make_workspace
from tests.backends.races import admitted_by_tasks, key_limited, race_requests, race_threads

LIMIT = RateLimitPolicy(limit=100, period=60)
FIXED_US = 1_800_000_000_000_000


def fixed_clock() -> int:
    return FIXED_US


def closed_port() -> int:
    """Return a loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize("round_", range(5))
def test_memory_limiter_admits_exactly_the_limit_under_32_threads(round_: int) -> None:
    limiter = MemoryRateLimiter(clock_us=fixed_clock)
    decisions = race_threads(limiter, LIMIT)

    allowed = [d for d in decisions if d.allowed]
    assert len(decisions) == 320
    assert len(allowed) == 100
    # Each slot was handed out once: remaining counts down through every value exactly once.
    assert sorted(d.remaining for d in allowed) == list(range(100))


@pytest.mark.parametrize("round_", range(3))
async def test_memory_limiter_admits_exactly_the_limit_under_1000_tasks(round_: int) -> None:
    limiter = MemoryRateLimiter(clock_us=fixed_clock)
    decisions = await asyncio.gather(*(limiter.ahit("ws_race", LIMIT) for _ in range(1000)))
    assert sum(d.allowed for d in decisions) == 100


def test_memory_limiter_keys_by_workspace_only() -> None:
    limiter = MemoryRateLimiter(clock_us=fixed_clock)
    for _ in range(3):
        limiter.hit("ws_a", RateLimitPolicy(limit=3, period=60))
    # A new policy keeps the state: no fresh burst for changing the limit.
    assert not limiter.hit("ws_a", RateLimitPolicy(limit=3, period=30)).allowed
    assert limiter.hit("ws_b", RateLimitPolicy(limit=3, period=60)).allowed


# --- a key's own limit and its workspace's: the combined check, through the flow ---------------


def sync_authenticator(store: MemoryStore | CachedStore, limiter: RateLimiter) -> Authenticator:
    return Authenticator(
        AuthSettings(), clock=SettableClock(), backends=Backends(store, limiter=limiter)
    )


@pytest.mark.parametrize("cached", [False, True], ids=["flow", "replay"])
@pytest.mark.parametrize(("workspace", "key"), [(100, 50), (40, 100)])
def test_a_key_and_its_workspace_admit_exactly_the_tighter_limit_under_32_threads(
    cached: bool, workspace: int, key: int
) -> None:
    store, headers, ids = key_limited(workspace, [key], cached=cached)
    limiter = MemoryRateLimiter(clock_us=fixed_clock)
    auth = sync_authenticator(store, limiter)
    admitted = race_requests(lambda header: auth.authenticate([header]), headers)
    tighter = min(workspace, key)
    assert sum(admitted.values()) == tighter
    # All or nothing: each bucket was charged exactly the admitted requests, never a refused
    # one, whichever level refused it.
    after = limiter.hit("ws_both", RateLimitPolicy(workspace, 86_400))
    assert after.remaining == max(0, workspace - tighter - 1)
    own = limiter.hit(key_bucket("ws_both", ids[0]), RateLimitPolicy(key, 86_400))
    assert own.allowed is (key > tighter)
    assert own.remaining == max(0, key - tighter - 1)


def test_two_keys_share_their_workspace_exactly_under_32_threads() -> None:
    store, headers, _ = key_limited(100, [60, 60])
    auth = sync_authenticator(store, MemoryRateLimiter(clock_us=fixed_clock))
    admitted = race_requests(lambda header: auth.authenticate([header]), headers)
    assert sum(admitted.values()) == 100
    assert all(count <= 60 for count in admitted.values())


@pytest.mark.parametrize(("workspace", "key"), [(100, 50), (40, 100)])
async def test_a_key_and_its_workspace_admit_exactly_the_tighter_limit_under_1000_tasks(
    workspace: int, key: int
) -> None:
    store, headers, _ = key_limited(workspace, [key], cached=True)
    limiter = MemoryRateLimiter(clock_us=fixed_clock)
    auth = Authenticator(
        AuthSettings(), clock=SettableClock(), abackends=AsyncBackends(store, limiter=limiter)
    )
    assert await admitted_by_tasks(auth, headers[0], 1000) == min(workspace, key)


# --- the failure policy, through the flow -----------------------------------------------------


def _setup(policy: LimiterFailurePolicy) -> tuple[MemoryStore, str, AuthSettings]:
    store = MemoryStore()
    make_workspace(store, "ws_fault", rate_limit=RateLimitPolicy(limit=2, period=60))
    _, key = issue_root_key(store, "ws_fault", ["keys.read"])
    return store, f"Bearer {key.reveal()}", AuthSettings(limiter_failure=policy)


def test_unreachable_redis_limiter_raises_unavailable_without_the_address() -> None:
    port = closed_port()
    limiter = RedisRateLimiter.from_url(f"redis://127.0.0.1:{port}/15")
    with pytest.raises(UnavailableError) as caught:
        limiter.hit("ws_fault", LIMIT)
    assert str(port) not in str(caught.value)
    assert "ws_fault" not in str(caught.value)


def test_fail_closed_gives_503_when_the_redis_limiter_is_unreachable() -> None:
    store, header, settings = _setup(LimiterFailurePolicy.FAIL_CLOSED)
    limiter = RedisRateLimiter.from_url(f"redis://127.0.0.1:{closed_port()}/15")
    fallback = MemoryRateLimiter(clock_us=fixed_clock)
    auth = Authenticator(
        settings,
        clock=SettableClock(),
        backends=Backends(store, limiter=limiter, fallback_limiter=fallback),
    )
    with pytest.raises(UnavailableError) as caught:
        auth.authenticate([header])
    assert error_response(caught.value).status == 503


def test_local_fallback_gives_the_fallback_decision_when_redis_is_unreachable() -> None:
    store, header, settings = _setup(LimiterFailurePolicy.LOCAL_FALLBACK)
    limiter = RedisRateLimiter.from_url(f"redis://127.0.0.1:{closed_port()}/15")
    fallback = MemoryRateLimiter(clock_us=fixed_clock)
    auth = Authenticator(
        settings,
        clock=SettableClock(),
        backends=Backends(store, limiter=limiter, fallback_limiter=fallback),
    )
    first = auth.authenticate([header]).rate_limit
    second = auth.authenticate([header]).rate_limit
    assert first is not None
    assert second is not None
    assert (first.allowed, first.remaining) == (True, 1)
    assert (second.allowed, second.remaining) == (True, 0)
    with pytest.raises(RateLimitedError) as caught:
        auth.authenticate([header])
    assert error_response(caught.value).status == 429


async def test_async_fail_closed_and_local_fallback_when_redis_is_unreachable() -> None:
    store, header, _ = _setup(LimiterFailurePolicy.FAIL_CLOSED)
    limiter = AsyncRedisRateLimiter.from_url(f"redis://127.0.0.1:{closed_port()}/15")
    fallback = MemoryRateLimiter(clock_us=fixed_clock)
    backends = AsyncBackends(store, limiter=limiter, fallback_limiter=fallback)
    closed = Authenticator(
        AuthSettings(limiter_failure=LimiterFailurePolicy.FAIL_CLOSED),
        clock=SettableClock(),
        abackends=backends,
    )
    with pytest.raises(UnavailableError):
        await closed.aauthenticate([header])
    falling_back = Authenticator(
        AuthSettings(limiter_failure=LimiterFailurePolicy.LOCAL_FALLBACK),
        clock=SettableClock(),
        abackends=backends,
    )
    decision = (await falling_back.aauthenticate([header])).rate_limit
    assert decision == fallback.hit("ws_other", RateLimitPolicy(limit=2, period=60))
    await limiter.aclose()
