"""The per-process caches are bounded in estimated bytes as well as entries (issue 26, finding 3).

Real parts: a MemoryStore behind a CachedStore, the Authenticator that fills its tables, a
settable clock. Each byte counter is read from the table itself and checked against a
recomputation of every held entry's cost.
"""

from __future__ import annotations

from typing import cast

import pytest

from authcore.backends._tables import (
    DEFAULT_MAX_BYTES,
    ENTRY_COST,
    GRANT_COST,
    STRING_COST,
    WILDCARD_GRANT_COST,
    Conclusions,
    LruTable,
    cost_of,
)
from authcore.backends.cache import CachedStore, VerifiedTokenCache
from authcore.errors import ConfigurationError
from authcore.flow import Authenticator, AuthSettings, Backends
from authcore.keyring import VerifiedClaims
from authcore.plans import MAX_KEY_GRANTS
from authcore.records import RootKeyRecord, WorkspaceRecord
from authcore.testing import (
    MemoryRateLimiter,
    MemoryStore,
    SettableClock,
    issue_root_key,
    make_workspace,
)

NOW = 1_800_000_000.0
WS = "ws_bounds"
MAX_BYTES = 256 * 1024


def _grants(n: int, tag: int) -> list[str]:
    return [f"r{tag:03d}_{i:03d}.action_long_name" for i in range(n)]  # 25 characters


def _recomputed(table: LruTable) -> int:
    return sum(cost_of(value) for _, value, _ in table.entries.values())


def _conclusions(authenticator: Authenticator) -> Conclusions:
    # The CachedStore's table (ConclusionTable is the protocol the Authenticator sees).
    table = cast("Conclusions", authenticator._replay)
    assert isinstance(table, Conclusions)
    return table


def _conclusions_recomputed(table: Conclusions) -> int:
    return sum(cost_of(conclusion) for conclusion in table._entries.values())


def _world(
    keys: int, *, max_bytes: int = MAX_BYTES
) -> tuple[CachedStore, Authenticator, list[str]]:
    clock = SettableClock(NOW)
    store = MemoryStore()
    make_workspace(store, WS)
    tokens = [
        issue_root_key(store, WS, _grants(MAX_KEY_GRANTS, tag), now=NOW)[1].reveal()
        for tag in range(keys)
    ]
    cache = CachedStore(store, clock=clock, max_bytes=max_bytes)
    authenticator = Authenticator(
        AuthSettings(default_rate_limit=None),
        clock=clock,
        backends=Backends(store=cache, limiter=MemoryRateLimiter()),
    )
    return cache, authenticator, tokens


def test_many_keys_with_the_most_grants_keep_the_record_cache_under_its_byte_bound() -> None:
    cache, authenticator, tokens = _world(60)
    one_key = None
    for token in tokens:
        authenticator.authenticate([f"Bearer {token}"])
        assert cache.byte_size <= MAX_BYTES
        if one_key is None:
            one_key = cache.byte_size
    assert one_key is not None
    # The entry bound (10,000) never bit: bytes did, and the cache is nearly full of them.
    assert cache.size < 60
    assert cache.byte_size > MAX_BYTES - 2 * one_key
    assert cache.byte_size == _recomputed(cache._positive)


def test_the_conclusion_table_keeps_under_its_byte_bound_with_a_true_counter() -> None:
    cache, authenticator, tokens = _world(60)
    for token in tokens:
        authenticator.authenticate([f"Bearer {token}"])
    table = _conclusions(authenticator)
    assert 0 < len(table) < 60
    assert 0 < table.byte_size <= MAX_BYTES
    assert table.byte_size == _conclusions_recomputed(table)
    # The newest conclusion is kept, the oldest went first: the last token replays.
    calls = cache.size
    authenticator.authenticate([f"Bearer {tokens[-1]}"])
    assert cache.size == calls


def test_a_record_costs_its_documented_estimate() -> None:
    grants = ["keys.read", "keys.*"]
    record = RootKeyRecord(
        id="key_1",
        workspace_id="ws_1",
        digest=bytes(32),
        start="ak_abcd",
        name=None,
        permissions=grants,
        created_at=0,
    )
    strings = 3 * STRING_COST + len("key_1") + len("ws_1") + len("ak_abcd")
    granted = GRANT_COST + len("keys.read") + WILDCARD_GRANT_COST + len("keys.*")
    assert cost_of(record) == ENTRY_COST + strings + 32 + granted
    # More grants cost more: the bound follows what an entry pins.
    bigger = RootKeyRecord(
        id="key_1",
        workspace_id="ws_1",
        digest=bytes(32),
        start="ak_abcd",
        name=None,
        permissions=_grants(MAX_KEY_GRANTS, 0),
        created_at=0,
    )
    assert cost_of(bigger) > 10 * cost_of(record)


def test_eviction_is_least_recently_used() -> None:
    one = cost_of(WorkspaceRecord(id="ws_0", name="n"))
    table = LruTable(max_entries=100, max_bytes=4096)
    table.max_bytes = 3 * one  # three workspaces fit, by bytes alone
    for i in range(3):
        table.put(f"ws_{i}", WorkspaceRecord(id=f"ws_{i}", name="n"), NOW + 60, NOW)
    assert table.get("ws_0", NOW) is not None  # ws_0 is now the most recently used
    table.put("ws_3", WorkspaceRecord(id="ws_3", name="n"), NOW + 60, NOW)
    assert list(table.entries) == ["ws_2", "ws_0", "ws_3"]  # ws_1 went: least recently used
    assert table.byte_size == _recomputed(table) == 3 * one


def test_an_entry_bigger_than_the_whole_bound_is_not_kept_and_evicts_nothing() -> None:
    table = LruTable(max_entries=100, max_bytes=4096)
    table.put("ws_0", WorkspaceRecord(id="ws_0", name="n"), NOW + 60, NOW)
    table.put("ws_big", WorkspaceRecord(id="ws_big", name="n" * 8192), NOW + 60, NOW)
    assert list(table.entries) == ["ws_0"]
    assert table.byte_size == _recomputed(table)


def test_an_expired_entry_is_gone_after_an_insert_sweeps(clock: SettableClock) -> None:
    store = MemoryStore()
    for i in range(3):
        make_workspace(store, f"ws_{i}")
    cache = CachedStore(store, clock=clock, workspace_ttl=5.0)
    cache.find_workspace("ws_0")
    cache.find_workspace("ws_1")
    assert cache.size == 2
    clock.advance(6.0)
    # Nothing touched ws_0 or ws_1 again: the next insert sweeps them out.
    cache.find_workspace("ws_2")
    assert cache.size == 1
    assert cache.byte_size == _recomputed(cache._positive)


def test_an_expired_conclusion_is_gone_after_an_insert_sweeps(clock: SettableClock) -> None:
    store = MemoryStore()
    make_workspace(store, WS)
    tokens = [issue_root_key(store, WS, ["keys.read"], now=NOW)[1].reveal() for _ in range(3)]
    cache = CachedStore(store, clock=clock)
    authenticator = Authenticator(
        AuthSettings(), clock=clock, backends=Backends(store=cache, limiter=MemoryRateLimiter())
    )
    authenticator.authenticate([f"Bearer {tokens[0]}"])
    authenticator.authenticate([f"Bearer {tokens[1]}"])
    table = _conclusions(authenticator)
    assert len(table) == 2
    clock.advance(31.0)  # past every conclusion's valid_until (the workspace's 5 s TTL)
    authenticator.authenticate([f"Bearer {tokens[2]}"])
    assert len(table) == 1
    assert table.byte_size == _conclusions_recomputed(table)


def test_the_token_cache_keeps_under_its_byte_bound_and_sweeps_expired_claims() -> None:
    cache = VerifiedTokenCache(max_bytes=64 * 1024)
    for i in range(100):
        claims = VerifiedClaims(
            subject=f"user_{i}",
            workspace_id=WS,
            permissions=tuple(_grants(100, i)),
            issued_at=int(NOW),
            expires_at=int(NOW) + 60 + (i % 2) * 600,
            key_id="k1",
        )
        cache.put(f"token-{i}", claims)
        assert cache.byte_size <= 64 * 1024
    held = len(cache)
    assert 0 < held < 100
    assert cache.byte_size == _recomputed(cache._table)
    cache.get("token-0", NOW + 120)  # a read at this time lets the next inserts sweep
    for _ in range(held):
        fresh = VerifiedClaims(
            subject="u", workspace_id=WS, permissions=(), issued_at=int(NOW), expires_at=int(NOW)
        )
        cache.put("token-fresh", fresh)
    # Every claim that expired at NOW + 60 is swept; those valid until NOW + 660 stay.
    held_until = [entry[0] for entry in cache._table.entries.values()]
    assert held_until
    assert all(until > NOW + 120 for until in held_until if until != int(NOW))


@pytest.mark.parametrize("bad", [0, 4095, -1, 1 << 41, 1.5, True, "64MiB", None])
def test_a_bad_max_bytes_is_a_configuration_error(bad: object) -> None:
    store = MemoryStore()
    with pytest.raises(ConfigurationError, match="max_bytes"):
        CachedStore(store, max_bytes=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="max_negative_bytes"):
        CachedStore(store, max_negative_bytes=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="max_bytes"):
        VerifiedTokenCache(max_bytes=bad)  # type: ignore[arg-type]


def test_the_default_byte_bound_is_64_mib() -> None:
    assert DEFAULT_MAX_BYTES == 64 * 1024 * 1024
    assert CachedStore(MemoryStore())._positive.max_bytes == DEFAULT_MAX_BYTES


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock(NOW)
