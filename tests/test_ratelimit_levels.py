"""Several limits at once (a key's, its identity's, its workspace's): all or nothing.

The pure algorithm (:func:`authcore.ratelimit.decide_levels`), the memory limiter, and the Redis
script (:data:`authcore.ratelimit.GCRA_LEVELS_LUA`, with its one clock read replaced by a time
the test passes in) are driven with the same requests and must agree exactly.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence

import pytest
import redis
from hypothesis import given, settings

from authcore.backends.memory import MemoryRateLimiter
from authcore.errors import UnavailableError
from authcore.ratelimit import (
    GCRA_LEVELS_LUA,
    RateLimitDecision,
    RateLimitPolicy,
    decide,
    decide_levels,
    deciding,
    decisions_from_reply,
    rate_limit_key,
)

from .strategies import NOW_US, SECOND, levels_and_times

_CLOCK_READ = "redis.call('TIME')"
# ARGV after the levels: the fixed time's seconds and microseconds.
FIXED_CLOCK_LEVELS_LUA = GCRA_LEVELS_LUA.replace(
    _CLOCK_READ, "{ARGV[#ARGV - 1], ARGV[#ARGV]}"
).replace("#ARGV ~= 1 + 2 * n", "#ARGV ~= 3 + 2 * n")


def _simulate(
    policies: Sequence[RateLimitPolicy], times: Sequence[int]
) -> list[tuple[tuple[RateLimitDecision, ...], list[int | None]]]:
    tats: list[int | None] = [None] * len(policies)
    out = []
    for now in times:
        decisions, new = decide_levels(tats, now, policies)
        if new is not None:
            tats = list(new)
        out.append((decisions, list(tats)))
    return out


def test_the_fixed_clock_script_reads_no_clock() -> None:
    assert GCRA_LEVELS_LUA.count(_CLOCK_READ) == 1
    assert FIXED_CLOCK_LEVELS_LUA.count(_CLOCK_READ) == 0


@given(levels_and_times())
@settings(max_examples=200)
def test_never_more_admitted_than_the_tightest_level_allows(
    case: tuple[list[RateLimitPolicy], list[int]],
) -> None:
    policies, times = case
    admitted = [t for t, (decisions, _) in zip(times, _simulate(policies, times), strict=True)
                if all(d.allowed for d in decisions)]  # fmt: skip
    # Each level alone, fed only the admitted requests, admits every one of them: so no level
    # was ever exceeded, and the count is within what the tightest level allows alone.
    for policy in policies:
        tat = None
        for now in admitted:
            decision, tat = decide(tat, now, policy)
            assert decision.allowed
    # And never more than any level would admit of the same requests on its own.
    for policy in policies:
        assert len(admitted) <= sum(1 for _ in _alone(policy, times))


def _alone(policy: RateLimitPolicy, times: Sequence[int]) -> Iterator[int]:
    tat = None
    for now in times:
        decision, new = decide(tat, now, policy)
        if decision.allowed:
            tat = new
            yield now


def _admissible_now(tat: int | None, now: int, policy: RateLimitPolicy) -> int:
    # How many requests the level alone would admit at ``now``, counted one by one.
    count = 0
    while True:
        decision, tat = decide(tat, now, policy)
        if not decision.allowed:
            return count
        count += 1


@given(levels_and_times())
@settings(max_examples=200)
def test_a_refused_request_charges_no_level(
    case: tuple[list[RateLimitPolicy], list[int]],
) -> None:
    policies, times = case
    tats: list[int | None] = [None] * len(policies)
    for now in times:
        decisions, new = decide_levels(tats, now, policies)
        if all(d.allowed for d in decisions):
            assert new is not None
            tats = list(new)
            continue
        assert new is None  # state untouched: every level keeps its allowance
        refusal = deciding(decisions)
        assert not refusal.allowed
        assert refusal.retry_after == max(d.retry_after for d in decisions if not d.allowed)
        # A 429's RateLimit field names every level: one that would have admitted the request
        # was not charged, so it reports what it still admits and when it is full, as it stands.
        for tat, policy, decision in zip(tats, policies, decisions, strict=True):
            if decision.allowed:
                held = now if tat is None else max(tat, now)
                assert decision.remaining == _admissible_now(tat, now, policy) >= 1
                assert decision.reset == -((now - held) // SECOND)
                assert decision.retry_after == 0


def test_a_refusal_by_the_key_leaves_the_workspace_s_count_as_it_was() -> None:
    key, workspace = RateLimitPolicy(1, 60), RateLimitPolicy(10, 60)
    limiter = MemoryRateLimiter(clock_us=lambda: NOW_US)
    levels = [("ws_1:key:k", key), ("ws_1", workspace)]
    first = limiter.hit_levels(levels)
    assert [d.remaining for d in first] == [0, 9]
    refused = limiter.hit_levels(levels)
    assert [d.allowed for d in refused] == [False, True]
    assert refused[1].remaining == 9  # not 8: the refused request took nothing
    assert refused[1].reset == first[1].reset
    assert limiter.hit("ws_1", workspace).remaining == 8


def test_the_tightest_admitting_level_is_the_one_sent() -> None:
    key, workspace = RateLimitPolicy(3, 60), RateLimitPolicy(10, 60)
    decisions, _ = decide_levels([None, None], NOW_US, [key, workspace])
    assert deciding(decisions) == decisions[0]  # 2 remaining beats 9
    with pytest.raises(ValueError, match="one TAT per policy"):
        decide_levels([None], NOW_US, [key, workspace])
    with pytest.raises(ValueError, match="one TAT per policy"):
        decide_levels([], NOW_US, [])


@given(levels_and_times())
@settings(max_examples=100)
def test_the_memory_limiter_agrees_with_the_algorithm(
    case: tuple[list[RateLimitPolicy], list[int]],
) -> None:
    policies, times = case
    clock = iter(times)
    limiter = MemoryRateLimiter(clock_us=lambda: next(clock))
    levels = [(f"ws_1:level:{i}", policy) for i, policy in enumerate(policies)]
    expected = [decisions for decisions, _ in _simulate(policies, times)]
    assert [limiter.hit_levels(levels) for _ in times] == expected


@given(levels_and_times())
@settings(max_examples=100)
def test_the_memory_limiters_one_level_agrees_with_decide(
    case: tuple[list[RateLimitPolicy], list[int]],
) -> None:
    # hit() writes decide()'s admitting path out inline; a refusal is decide()'s own.
    policy, times = case[0][0], case[1]
    clock = iter(times)
    limiter = MemoryRateLimiter(clock_us=lambda: next(clock))
    expected, tat = [], None
    for now in times:
        decision, new = decide(tat, now, policy)
        tat = new if decision.allowed else tat
        expected.append(decision)
    assert [limiter.hit("ws_1", policy) for _ in times] == expected


@pytest.mark.parametrize("now", [-1, 2**52 + 1])
def test_a_clock_out_of_range_is_refused_and_writes_nothing(now: int) -> None:
    policy = RateLimitPolicy(5, 60)
    times = iter([NOW_US, now, now, NOW_US])
    limiter = MemoryRateLimiter(clock_us=lambda: next(times))
    first = limiter.hit("ws_1", policy)
    with pytest.raises(ValueError, match="now_us must be in"):
        limiter.hit("ws_1", policy)
    with pytest.raises(ValueError, match="now_us must be in"):
        limiter.hit_levels([("ws_1:key:k", policy), ("ws_1", policy)])
    # The bucket holds what the first request left, no more: one request taken, not three.
    assert limiter.hit("ws_1", policy).remaining == first.remaining - 1


def test_a_reply_of_the_wrong_shape_is_unavailable() -> None:
    policy = RateLimitPolicy(5, 60)
    with pytest.raises(UnavailableError):
        decisions_from_reply([1, 5, 4, 12], [policy])
    with pytest.raises(UnavailableError):
        decisions_from_reply("garbage", [policy])
    with pytest.raises(UnavailableError):
        decisions_from_reply([1, 5, 4, 12, 0, 1, 5, 4, 12, 0], [policy])


@pytest.fixture(scope="module")
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    # redis_url (tests/conftest.py) skips outside CI and fails with CI=true when unreachable.
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=1, socket_timeout=5)
    yield client
    client.close()


@pytest.fixture(scope="module")
def level_keys(redis_client: redis.Redis) -> Iterator[list[str]]:
    workspace = f"ws_{uuid.uuid4().hex}"
    names = [
        rate_limit_key(bucket, "authcore:test:rl:")
        for bucket in (f"{workspace}:key:k", f"{workspace}:identity:i", workspace)
    ]
    yield names
    redis_client.delete(*names)


@pytest.mark.redis
@given(case=levels_and_times())
@settings(max_examples=40, deadline=None)
def test_the_redis_script_agrees_with_the_algorithm(
    redis_client: redis.Redis,
    level_keys: list[str],
    case: tuple[list[RateLimitPolicy], list[int]],
) -> None:
    policies, times = case
    names = level_keys[-len(policies) :]
    redis_client.delete(*names)
    expected = _simulate(policies, times)
    for now, (decisions, tats) in zip(times, expected, strict=True):
        args: list[int] = [max(p.period for p in policies)]
        for policy in policies:
            args += (policy.limit, policy.emission_interval_us)
        reply = redis_client.eval(
            FIXED_CLOCK_LEVELS_LUA, len(names), *names, *args, now // SECOND, now % SECOND
        )
        assert decisions_from_reply(reply, policies) == decisions
        stored = [redis_client.get(name) for name in names]
        assert [None if s is None else int(s) for s in stored] == tats


@pytest.mark.redis
def test_the_script_refuses_bad_arguments(redis_client: redis.Redis, level_keys: list[str]) -> None:
    with pytest.raises(redis.ResponseError, match="bad arguments"):
        redis_client.eval(GCRA_LEVELS_LUA, 2, *level_keys[:2], 60, 5, 1000)  # one level short
    with pytest.raises(redis.ResponseError, match="bad arguments"):
        redis_client.eval(GCRA_LEVELS_LUA, 1, level_keys[0], 60, 0, 1000)
