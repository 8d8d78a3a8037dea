"""Usage counts in every store: memory, SQLite, PostgreSQL, sync and async, alike."""

from __future__ import annotations

import secrets

import pytest

from authcore.errors import ClientError
from authcore.records import UsageCount

from .conftest import StoreUnderTest

HOUR = 3600
# A whole hour, far enough in the past to roll up and recent enough to keep.
T0 = 1_800_000_000 - 1_800_000_000 % HOUR


def _ws(backend: StoreUnderTest) -> str:
    # Usage rows have no foreign key: a fresh id keeps runs on a shared schema apart.
    return f"ws_{backend.kind}_{int(backend.is_async)}_{secrets.token_hex(4)}"


def _count(ws: str, cred: str, outcome: str, bucket: int, count: int) -> UsageCount:
    return UsageCount(ws, cred, outcome, bucket, count)


async def test_counts_add_up_across_flushes_and_read_per_bucket(backend: StoreUnderTest) -> None:
    ws = _ws(backend)
    first = [
        _count(ws, "key_a", "allowed", T0, 3),
        _count(ws, "key_a", "rate_limited", T0, 1),
        _count(ws, "key_b", "allowed", T0 + 60, 2),
    ]
    await backend.call("record_usage", first, used_at=T0 + 60)
    # A second process flushing the same minute adds to it.
    await backend.call("record_usage", [_count(ws, "key_a", "allowed", T0, 4)], used_at=T0 + 30)

    minutes = await backend.call("usage", ws, since=T0, until=T0 + 120, granularity="minute")
    assert [(u.bucket, u.outcome, u.count, u.span) for u in minutes] == [
        (T0, "allowed", 7, 60),
        (T0, "rate_limited", 1, 60),
        (T0 + 60, "allowed", 2, 60),
    ]
    key_a = await backend.call(
        "usage", ws, credential_id="key_a", since=T0, until=T0 + HOUR, granularity="hour"
    )
    assert [(u.credential_id, u.outcome, u.count) for u in key_a] == [
        ("key_a", "allowed", 7),
        ("key_a", "rate_limited", 1),
    ]
    other = await backend.call("usage", _ws(backend), since=T0, until=T0 + HOUR)
    assert other == []
    # Last use: the later flush time wins, whatever order the flushes arrive in.
    assert await backend.call("last_used", ws) == {"key_a": T0 + 60, "key_b": T0 + 60}


async def test_rolling_up_keeps_the_totals_and_retention_forgets(backend: StoreUnderTest) -> None:
    ws = _ws(backend)
    counts = [_count(ws, "key_a", "allowed", T0 + i * 60, i + 1) for i in range(5)]
    counts.append(_count(ws, "", "credential_invalid", T0 + HOUR, 9))
    await backend.call("record_usage", counts, used_at=T0 + 300)
    before = await backend.call("usage", ws, since=T0, until=T0 + 2 * HOUR, granularity="day")
    # Two days later: the minute rows of those hours roll up into hours.
    await backend.call("prune_usage", now=T0 + 2 * 86_400)
    minutes = await backend.call("usage", ws, since=T0, until=T0 + 2 * HOUR, granularity="minute")
    assert {(u.bucket, u.count) for u in minutes} == {(T0, 15), (T0 + HOUR, 9)}
    after = await backend.call("usage", ws, since=T0, until=T0 + 2 * HOUR, granularity="day")
    assert after == before
    assert [(u.outcome, u.count) for u in after] == [("allowed", 15), ("credential_invalid", 9)]
    # Past the retention, nothing is left.
    await backend.call("prune_usage", now=T0 + 40 * 86_400)
    assert await backend.call("usage", ws, since=T0, until=T0 + 2 * HOUR, granularity="day") == []


@pytest.mark.parametrize(
    ("since", "until", "granularity"),
    [
        (T0, T0 + 60, "week"),
        (T0 + 60, T0, "minute"),
        # Reversed or empty within one bucket: refused, not rounded out into that bucket.
        (T0 + 60, T0, "hour"),
        (T0, T0, "day"),
        (T0, T0 + 30 * 86_400, "minute"),
    ],
)
async def test_bad_reads_are_client_errors(
    backend: StoreUnderTest, since: int, until: int, granularity: str
) -> None:
    with pytest.raises(ClientError):
        await backend.call("usage", "ws_1", since=since, until=until, granularity=granularity)
