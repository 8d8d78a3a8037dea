"""Tests for authcore.ratelimit: the pure GCRA core, its Lua twin and the reply checks."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from types import GenericAlias, ModuleType
from typing import TYPE_CHECKING, Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings

import authcore.ratelimit as ratelimit_module
from authcore.errors import ConfigurationError, UnavailableError
from authcore.ratelimit import (
    GCRA_LUA,
    MAX_TIME_US,
    AsyncRateLimiter,
    Level,
    LimiterFailurePolicy,
    RateLimitDecision,
    RateLimiter,
    RateLimitPolicy,
    decide,
    decide_levels,
    decision_from_reply,
    identity_bucket,
    key_bucket,
    rate_limit_key,
    session_bucket,
    tighter,
)
from tests.strategies import (
    NOW_US,
    SECOND,
    lua_cases,
    policies,
    policy_and_state,
    policy_and_times,
)

if TYPE_CHECKING:
    import redis

# --------------------------------------------------------------------------------------------
# Helpers (the strategies live in tests/strategies.py)


def run(policy: RateLimitPolicy, times: list[int]) -> list[tuple[RateLimitDecision, int]]:
    """Drive decide() over a run of request times, threading the stored TAT."""
    tat: int | None = None
    results = []
    for now in times:
        decision, tat = decide(tat, now, policy)
        results.append((decision, tat))
    return results


def burst(policy: RateLimitPolicy, now: int, count: int) -> tuple[list[RateLimitDecision], int]:
    tat: int | None = None
    decisions = []
    for _ in range(count):
        decision, tat = decide(tat, now, policy)
        decisions.append(decision)
    assert tat is not None
    return decisions, tat


def as_reply(decision: RateLimitDecision) -> list[int]:
    return [int(decision.allowed), decision.limit, decision.remaining, decision.reset,
            decision.retry_after]  # fmt: skip


# --------------------------------------------------------------------------------------------
# RateLimitPolicy


@pytest.mark.parametrize(
    ("limit", "period", "valid"),
    [
        (1, 1, True),
        (1_000_000, 86_400, True),
        (100, 60, True),
        (0, 60, False),
        (-1, 60, False),
        (1_000_001, 60, False),
        (100, 0, False),
        (100, 86_401, False),
        (True, 60, False),
        (100, True, False),
        (1.0, 60, False),
        ("100", 60, False),
        (100, None, False),
    ],
)
def test_policy_validates_limit_and_period(limit: Any, period: Any, valid: bool) -> None:
    if valid:
        assert RateLimitPolicy(limit, period).limit == limit
    else:
        with pytest.raises(ConfigurationError):
            RateLimitPolicy(limit, period)


@pytest.mark.parametrize(
    ("policy", "interval"),
    [
        (RateLimitPolicy(100, 60), 600_000),
        (RateLimitPolicy(3, 1), 333_334),  # 333_333.3 rounded up, never down
        (RateLimitPolicy(1, 86_400), 86_400 * SECOND),
        (RateLimitPolicy(1_000_000, 1), 1),
        (RateLimitPolicy(1_000_000, 86_400), 86_400),
    ],
)
def test_emission_interval_is_rounded_up(policy: RateLimitPolicy, interval: int) -> None:
    assert policy.emission_interval_us == interval
    assert policy.burst_window_us == policy.limit * interval


@given(policies)
def test_emission_interval_never_admits_more_than_the_policy(policy: RateLimitPolicy) -> None:
    # limit requests at the steady rate take at least the whole period.
    assert policy.burst_window_us >= policy.period * SECOND
    assert policy.burst_window_us - policy.period * SECOND < policy.limit


def test_policy_str_is_n_slash_seconds() -> None:
    assert str(RateLimitPolicy(100, 60)) == "100/60"


@given(policies)
def test_parse_round_trips_str(policy: RateLimitPolicy) -> None:
    assert RateLimitPolicy.parse(str(policy)) == policy


def test_parse_reads_the_cli_form() -> None:
    assert RateLimitPolicy.parse("100/60") == RateLimitPolicy(limit=100, period=60)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "100",
        "100/",
        "/60",
        "100/60/1",
        " 100/60",
        "100/60 ",
        "100/60\n",
        "100 / 60",
        "+100/60",
        "-1/60",
        "1e3/60",
        "100/1.5",
        "100/60s",
        "0x10/60",
        "\u0661\u0660\u0660/60",  # Arabic-Indic digits: \d would take them, we do not
        "1" * 100 + "/60",
        "0/60",
        "100/0",
        "1000001/60",
        "100/86401",
    ],
)
def test_parse_rejects_bad_strings(text: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        RateLimitPolicy.parse(text)
    assert info.value.detail
    assert len(info.value.detail) < 200  # a long input is cut, not echoed whole


@pytest.mark.parametrize("value", [None, 100, b"100/60"])
def test_parse_rejects_non_strings(value: Any) -> None:
    with pytest.raises(ConfigurationError):
        RateLimitPolicy.parse(value)


def test_policy_is_frozen() -> None:
    policy = RateLimitPolicy(100, 60)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        policy.limit = 5  # type: ignore[misc]  # the point: assignment must fail


# --------------------------------------------------------------------------------------------
# decide: exact behaviour


def test_fresh_workspace_gets_its_whole_limit_in_a_burst_then_is_denied() -> None:
    policy = RateLimitPolicy(5, 60)
    decisions, _ = burst(policy, NOW_US, 6)
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0, 0]
    assert all(d.limit == 5 for d in decisions)


def test_never_seen_workspace_starts_full() -> None:
    decision, tat = decide(None, NOW_US, RateLimitPolicy(5, 60))
    assert decision == RateLimitDecision(allowed=True, limit=5, remaining=4, reset=12,
                                         retry_after=0)  # fmt: skip
    assert tat == NOW_US + 12 * SECOND


def test_old_tat_counts_as_a_full_bucket() -> None:
    policy = RateLimitPolicy(5, 60)
    assert decide(NOW_US - 10**12, NOW_US, policy) == decide(None, NOW_US, policy)


def test_one_request_is_refilled_per_emission_interval() -> None:
    policy = RateLimitPolicy(5, 60)  # T = 12 s
    _, tat = burst(policy, NOW_US, 5)
    decision, tat = decide(tat, NOW_US + 12 * SECOND, policy)
    assert decision.allowed
    assert decision.remaining == 0
    denied, _ = decide(tat, NOW_US + 12 * SECOND, policy)
    assert not denied.allowed


def test_request_one_microsecond_before_refill_is_denied_with_retry_after_1() -> None:
    policy = RateLimitPolicy(2, 2)  # T = 1 s, tau = 2 s
    _, tat = burst(policy, NOW_US, 2)
    decision, _ = decide(tat, NOW_US + SECOND - 1, policy)
    assert decision == RateLimitDecision(allowed=False, limit=2, remaining=0, reset=2,
                                         retry_after=1)  # fmt: skip


def test_request_exactly_at_refill_is_allowed_with_nothing_remaining() -> None:
    policy = RateLimitPolicy(2, 2)
    _, tat = burst(policy, NOW_US, 2)
    decision, new_tat = decide(tat, NOW_US + SECOND, policy)
    assert decision == RateLimitDecision(allowed=True, limit=2, remaining=0, reset=2,
                                         retry_after=0)  # fmt: skip
    assert new_tat == NOW_US + 3 * SECOND


def test_request_just_after_refill_rounds_reset_up() -> None:
    policy = RateLimitPolicy(2, 2)
    _, tat = burst(policy, NOW_US, 2)
    decision, _ = decide(tat, NOW_US + SECOND + 1, policy)
    # the bucket is full 2 s - 1 µs later: reset is whole seconds, rounded up
    assert decision == RateLimitDecision(allowed=True, limit=2, remaining=0, reset=2,
                                         retry_after=0)  # fmt: skip


def test_remaining_grows_only_when_a_whole_interval_has_refilled() -> None:
    policy = RateLimitPolicy(2, 2)
    _, tat = burst(policy, NOW_US, 2)  # tat = now + 2 s
    before, _ = decide(tat, NOW_US + 2 * SECOND - 1, policy)
    at, _ = decide(tat, NOW_US + 2 * SECOND, policy)
    assert (before.remaining, before.reset) == (0, 2)  # the bucket lacks 1 µs
    assert (at.remaining, at.reset) == (1, 1)  # full again: as a fresh workspace


def test_retry_after_is_rounded_up_to_whole_seconds() -> None:
    policy = RateLimitPolicy(3, 1)  # T = 333_334 µs
    decisions, _ = burst(policy, NOW_US, 4)
    assert decisions[-1].retry_after == 1
    assert decisions[-1].reset == 2  # 3 * 333_334 µs = 1.000002 s


def test_denied_call_leaves_tat_unchanged() -> None:
    policy = RateLimitPolicy(1, 60)
    _, tat = decide(None, NOW_US, policy)
    for now in (NOW_US, NOW_US + 1, NOW_US + 59 * SECOND):
        decision, stored = decide(tat, now, policy)
        assert not decision.allowed
        assert stored == tat


def test_changing_the_policy_keeps_the_state() -> None:
    _, tat = burst(RateLimitPolicy(2, 60), NOW_US, 2)  # tat = now + 60 s
    faster = RateLimitPolicy(4, 60)  # T = 15 s, tau = 60 s
    kept, _ = decide(tat, NOW_US, faster)
    fresh, _ = decide(None, NOW_US, faster)
    assert not kept.allowed  # the spent burst is still spent under the new limit
    assert kept.retry_after == 15
    assert fresh.allowed


def test_no_second_burst_at_a_fixed_window_edge() -> None:
    # A fixed 60 s window would admit 10 just before second 60 and 10 more just after.
    policy = RateLimitPolicy(10, 60)
    _, tat = burst(policy, NOW_US + 59_999_000, 10)
    after_edge, _ = decide(tat, NOW_US + 60_001_000, policy)
    assert not after_edge.allowed


def test_burst_then_steady_rate_is_the_documented_worst_case_per_period() -> None:
    # A full burst, then one per T: 2 * limit - 1 within the half-open period [0, period).
    policy = RateLimitPolicy(4, 4)  # T = 1 s
    interval = policy.emission_interval_us
    times = [NOW_US] * 4 + [NOW_US + k * interval for k in range(1, 4)]
    assert all(decision.allowed for decision, _ in run(policy, times))
    assert len(times) == 2 * policy.limit - 1


def test_intermediates_stay_below_2_53_at_the_extremes() -> None:
    slowest = RateLimitPolicy(1, 86_400)
    widest = RateLimitPolicy(1_000_000, 86_400)
    for policy in (slowest, widest):
        for tat in (None, MAX_TIME_US + 2**37):
            _, stored = decide(tat, MAX_TIME_US, policy)
            assert stored + policy.emission_interval_us < 2**53


@pytest.mark.parametrize("now", [-1, MAX_TIME_US + 1])
def test_decide_rejects_a_clock_out_of_range(now: int) -> None:
    with pytest.raises(ValueError, match="now_us"):
        decide(None, now, RateLimitPolicy(1, 1))


@pytest.mark.parametrize("tat", [-1, MAX_TIME_US + 2**37 + 1])
def test_decide_rejects_a_corrupt_stored_tat(tat: int) -> None:
    with pytest.raises(UnavailableError):
        decide(tat, NOW_US, RateLimitPolicy(1, 1))


# --------------------------------------------------------------------------------------------
# decide: properties


@given(policy_and_times())
def test_admits_at_most_limit_plus_elapsed_intervals_in_any_interval(
    case: tuple[RateLimitPolicy, list[int]],
) -> None:
    # GCRA conformance: in any [a, b], admitted <= limit + floor((b - a) / T). So at most
    # `limit` within any interval shorter than T (no 2x at an edge), and never more than the
    # policy's long-run rate. Intervals ending on admitted requests are the tightest ones.
    policy, times = case
    interval = policy.emission_interval_us
    admitted = [now for now, (decision, _) in zip(times, run(policy, times), strict=True)
                if decision.allowed]  # fmt: skip
    for i, start in enumerate(admitted):
        for j in range(i, len(admitted)):
            assert j - i + 1 <= policy.limit + (admitted[j] - start) // interval


@given(policy_and_times())
def test_decisions_are_deterministic(case: tuple[RateLimitPolicy, list[int]]) -> None:
    policy, times = case
    assert run(policy, times) == run(policy, times)


@given(policy_and_state())
def test_decision_fields_are_consistent(case: tuple[RateLimitPolicy, int | None, int]) -> None:
    policy, tat, now = case
    decision, stored = decide(tat, now, policy)
    assert decision.limit == policy.limit
    if decision.allowed:
        assert decision.retry_after == 0
        assert 0 <= decision.remaining < policy.limit
        assert 1 <= decision.reset <= -(-policy.burst_window_us // SECOND)
        assert stored - now <= policy.burst_window_us
    else:
        assert decision.remaining == 0
        assert 1 <= decision.retry_after <= decision.reset
        assert stored == tat
    assert stored < 2**53


@given(policy_and_state())
def test_retry_after_is_when_the_next_request_fits(
    case: tuple[RateLimitPolicy, int | None, int],
) -> None:
    policy, tat, now = case
    decision, stored = decide(tat, now, policy)
    if not decision.allowed:
        later = now + decision.retry_after * SECOND
        earlier = now + (decision.retry_after - 1) * SECOND
        if later <= MAX_TIME_US:
            assert decide(stored, later, policy)[0].allowed
        # Near the end of representable time even a second less can be past it.
        if earlier <= MAX_TIME_US:
            assert not decide(stored, earlier, policy)[0].allowed


@given(policy_and_state())
def test_decision_round_trips_through_the_reply_form(
    case: tuple[RateLimitPolicy, int | None, int],
) -> None:
    policy, tat, now = case
    decision, _ = decide(tat, now, policy)
    assert decision_from_reply(as_reply(decision), policy) == decision


# --------------------------------------------------------------------------------------------
# decision_from_reply


def test_decision_from_reply_reads_a_valid_reply() -> None:
    policy = RateLimitPolicy(5, 60)
    assert decision_from_reply([1, 5, 4, 12, 0], policy) == RateLimitDecision(True, 5, 4, 12, 0)
    assert decision_from_reply((0, 5, 0, 60, 12), policy) == RateLimitDecision(False, 5, 0, 60, 12)


@pytest.mark.parametrize(
    "reply",
    [
        None,
        5,
        "10000",
        b"\x01\x05\x04\x0c\x00",
        [],
        [1, 5, 4, 12],
        [1, 5, 4, 12, 0, 0],
        [True, 5, 4, 12, 0],
        [1, 5, 4, 12.0, 0],
        [b"1", b"5", b"4", b"12", b"0"],
        [1, 5, 4, 12, None],
        [1, 6, 4, 12, 0],  # another policy's limit
        [2, 5, 4, 12, 0],  # allowed is 0 or 1
        [1, 5, 5, 12, 0],  # remaining can never reach the limit after a hit
        [1, 5, -1, 12, 0],
        [1, 5, 4, 12, 3],  # allowed with a retry-after
        [0, 5, 1, 12, 3],  # denied with requests remaining
        [0, 5, 0, 12, 0],  # denied with no retry-after
        [0, 5, 0, 12, 13],  # retry-after beyond the full reset
        [1, 5, 4, -1, 0],
        [1, 5, 4, 86_402, 0],  # longer than any policy's window
    ],
)
def test_decision_from_reply_rejects_garbage(reply: object) -> None:
    with pytest.raises(UnavailableError) as info:
        decision_from_reply(reply, RateLimitPolicy(5, 60))
    assert info.value.detail == "limiter returned garbage"


# --------------------------------------------------------------------------------------------
# Keys, failure policy, protocols, exports


def test_rate_limit_key_is_the_workspace_id_under_a_namespace() -> None:
    assert rate_limit_key("ws_123") == "authcore:rl:ws_123"
    assert rate_limit_key("ws_123", namespace="app:") == "app:ws_123"


def test_failure_policy_has_no_unlimited_option() -> None:
    assert {p.value for p in LimiterFailurePolicy} == {"fail_closed", "local_fallback"}


@attrs.define
class DictLimiter:
    """The smallest limiter: shows that decide() alone satisfies both protocols."""

    now_us: int
    tats: dict[str, int] = attrs.field(factory=dict)

    def hit(self, bucket: str, policy: RateLimitPolicy) -> RateLimitDecision:
        key = rate_limit_key(bucket)
        decision, self.tats[key] = decide(self.tats.get(key), self.now_us, policy)
        return decision

    async def ahit(self, bucket: str, policy: RateLimitPolicy) -> RateLimitDecision:
        return self.hit(bucket, policy)

    def hit_levels(self, levels: Sequence[Level], /) -> tuple[RateLimitDecision, ...]:
        keys = [rate_limit_key(bucket) for bucket, _ in levels]
        tats = [self.tats.get(key) for key in keys]
        decisions, new = decide_levels(tats, self.now_us, [policy for _, policy in levels])
        if new is not None:
            self.tats.update(zip(keys, new, strict=True))
        return decisions

    async def ahit_levels(self, levels: Sequence[Level], /) -> tuple[RateLimitDecision, ...]:
        return self.hit_levels(levels)


def test_limiters_are_keyed_by_workspace_only() -> None:
    limiter: RateLimiter = DictLimiter(NOW_US)
    assert limiter.hit("a", RateLimitPolicy(1, 60)).allowed
    assert not limiter.hit("a", RateLimitPolicy(2, 60)).allowed  # same bucket, new policy
    assert limiter.hit("b", RateLimitPolicy(1, 60)).allowed


async def test_async_limiter_protocol_is_satisfied_by_an_ahit_method() -> None:
    limiter: AsyncRateLimiter = DictLimiter(NOW_US)
    assert (await limiter.ahit("a", RateLimitPolicy(1, 60))).allowed
    assert not (await limiter.ahit("a", RateLimitPolicy(1, 60))).allowed


def test_all_is_sorted_and_lists_every_public_name() -> None:
    def is_public(name: str, value: object) -> bool:
        if name.startswith("_") or isinstance(value, ModuleType):
            return False
        if isinstance(value, GenericAlias):  # a type alias defined here (Level)
            return name[0].isupper()
        if callable(value):  # classes and functions: only those defined here
            return getattr(value, "__module__", None) == ratelimit_module.__name__
        return name.isupper()  # constants

    public = {name for name, value in vars(ratelimit_module).items() if is_public(name, value)}

    # ruff RUF022 ("isort-style"): CONSTANTS, then Classes, then functions, each alphabetical.
    def group(name: str) -> tuple[int, str]:
        return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)

    assert ratelimit_module.__all__ == sorted(ratelimit_module.__all__, key=group)
    assert set(ratelimit_module.__all__) == public


# --------------------------------------------------------------------------------------------
# GCRA_LUA against a real Redis 7


@pytest.fixture(scope="module")
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    # redis_url (tests/conftest.py) skips outside CI and fails with CI=true when unreachable.
    import redis as redis_lib

    client = redis_lib.Redis.from_url(redis_url, socket_connect_timeout=1, socket_timeout=5)
    yield client
    client.close()


@pytest.fixture
def key(redis_client: redis.Redis) -> Iterator[str]:
    name = rate_limit_key(f"test-{uuid.uuid4().hex}", namespace="authcore:test:rl:")
    yield name
    redis_client.delete(name)


def gcra(client: redis.Redis, key: str, policy: RateLimitPolicy, *extra: int) -> Any:
    return client.eval(GCRA_LUA, 1, key, policy.limit, policy.emission_interval_us, 60, *extra)


# The same script with its one clock read replaced by a time the test passes in, so its
# decisions can be compared exactly with decide() at the same `now`.
_CLOCK_READ = "redis.call('TIME')"
FIXED_CLOCK_LUA = GCRA_LUA.replace(_CLOCK_READ, "{ARGV[4], ARGV[5]}")


def test_lua_reads_the_clock_exactly_once() -> None:
    assert GCRA_LUA.count(_CLOCK_READ) == 1
    assert FIXED_CLOCK_LUA.count("redis.call('TIME')") == 0


@pytest.mark.redis
def test_lua_burst_counts_down_then_denies(redis_client: redis.Redis, key: str) -> None:
    policy = RateLimitPolicy(5, 3600)  # T = 720 s: no refill while the test runs
    replies = [gcra(redis_client, key, policy) for _ in range(6)]
    decisions = [decision_from_reply(reply, policy) for reply in replies]
    # Same as decide() with a frozen clock: the server clock moves by far less than a second.
    expected, _ = burst(policy, NOW_US, 6)
    assert decisions == expected
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0, 0]
    assert decisions[-1].retry_after >= 1


@pytest.mark.redis
def test_lua_stores_an_exact_integer_tat_that_expires(redis_client: redis.Redis, key: str) -> None:
    policy = RateLimitPolicy(1, 3600)
    gcra(redis_client, key, policy)
    stored = redis_client.get(key)
    assert stored is not None
    assert stored.isdigit()  # "%.0f", not tostring's 1.8e+15
    assert 0 < redis_client.pttl(key) <= 3600 * 1000  # until the bucket is full again


@pytest.mark.redis
def test_lua_key_lives_at_least_the_given_ttl(redis_client: redis.Redis, key: str) -> None:
    policy = RateLimitPolicy(1_000_000, 1)  # the bucket is full again after 1 µs
    gcra(redis_client, key, policy)
    assert 59_000 < redis_client.pttl(key) <= 60_000


@pytest.mark.redis
def test_lua_denied_call_leaves_the_key_untouched(redis_client: redis.Redis, key: str) -> None:
    policy = RateLimitPolicy(1, 3600)
    gcra(redis_client, key, policy)
    redis_client.pexpire(key, 10_000_000)
    stored = redis_client.get(key)
    reply = gcra(redis_client, key, policy)
    assert decision_from_reply(reply, policy).allowed is False
    assert redis_client.get(key) == stored
    assert redis_client.pttl(key) > 9_000_000


@pytest.mark.redis
def test_lua_rejects_a_corrupt_state(redis_client: redis.Redis, key: str) -> None:
    import redis as redis_lib

    redis_client.set(key, "1.8e+15x")
    with pytest.raises(redis_lib.ResponseError, match="corrupt state"):
        gcra(redis_client, key, RateLimitPolicy(1, 1))


@pytest.mark.redis
@pytest.mark.parametrize("args", [(0, 1, 60), (1, 0, 60), (1, 1, 0), (1.5, 1, 60), ("x", 1, 60)])
def test_lua_rejects_bad_arguments(
    redis_client: redis.Redis, key: str, args: tuple[int | float | str, ...]
) -> None:
    import redis as redis_lib

    with pytest.raises(redis_lib.ResponseError, match="bad arguments"):
        redis_client.eval(GCRA_LUA, 1, key, *args)


@pytest.mark.redis
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=lua_cases())
def test_lua_makes_exactly_the_decisions_of_decide(
    redis_client: redis.Redis, case: tuple[RateLimitPolicy, int | None, list[int]]
) -> None:
    policy, tat, times = case
    name = f"authcore:test:rl:{uuid.uuid4().hex}"
    try:
        if tat is not None:
            redis_client.set(name, str(tat))
        for now in times:
            decision, tat = decide(tat, now, policy)
            reply = redis_client.eval(
                FIXED_CLOCK_LUA, 1, name, policy.limit, policy.emission_interval_us, 60,
                now // SECOND, now % SECOND,
            )  # fmt: skip
            assert decision_from_reply(reply, policy) == decision
            assert int(redis_client.get(name) or b"-1") == tat
    finally:
        redis_client.delete(name)


def test_a_keys_sessions_or_identitys_bucket_never_names_a_workspace_or_each_other() -> None:
    from authcore.tokens import generate_id

    assert key_bucket("ws_1", "key_abc") == "ws_1:key:key_abc"
    assert identity_bucket("ws_1", "idt_abc") == "ws_1:identity:idt_abc"
    assert session_bucket("ws_1", "ps_abc") == "ws_1:session:ps_abc"
    # Workspace ids are generated ws_<hex>: never a colon, so never a key's bucket.
    assert all(":" not in generate_id("ws") for _ in range(100))
    buckets = {
        key_bucket("ws_1", "key_abc"),
        key_bucket("ws_1", "key_abd"),
        key_bucket("ws_2", "key_abc"),
        identity_bucket("ws_1", "key_abc"),
        session_bucket("ws_1", "key_abc"),
        "ws_1",
    }
    assert len(buckets) == 6


def test_a_requests_redis_keys_share_the_workspaces_hash_slot() -> None:
    # Redis Cluster hashes only what is inside the first {...}: the workspace's own key,
    # which has no braces, hashes whole; every other bucket of it names that key as its tag.
    workspace = rate_limit_key("ws_1", "rl:")
    assert workspace == "rl:ws_1"
    for bucket in (
        key_bucket("ws_1", "key_a"),
        identity_bucket("ws_1", "idt_a"),
        session_bucket("ws_1", "ps_a"),
    ):
        name = rate_limit_key(bucket, "rl:")
        assert name.startswith("{rl:ws_1}:")
        assert name[1 : name.index("}")] == workspace


def test_tighter_prefers_fewer_remaining_then_the_later_reset_then_the_first() -> None:
    few = RateLimitDecision(True, 10, 1, 5, 0)
    many = RateLimitDecision(True, 10, 8, 60, 0)
    late = RateLimitDecision(True, 3, 1, 50, 0)
    assert tighter(few, many) is few
    assert tighter(many, few) is few
    assert tighter(few, late) is late
    assert tighter(late, few) is late
    twin = RateLimitDecision(True, 7, 1, 5, 0)
    assert tighter(few, twin) is few
    assert tighter(twin, few) is twin
