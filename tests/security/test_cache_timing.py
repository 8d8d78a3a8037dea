"""Cache timing is no oracle: a once-valid credential is cached exactly like a made-up one.

The review's finding: found keys stayed cached 30 s and unknown ones 5 s, so priming a
candidate and timing a request 7 s later told revoked-or-expired from never-existed. Asserted
here without timing, by what the cache holds and when it asks the store again.
"""

from __future__ import annotations

import pytest

from authcore.backends.cache import CachedStore
from authcore.errors import InvalidCredentialError
from authcore.flow import Authenticator, AuthSettings, Backends
from authcore.records import PortalSessionRecord, RootKeyRecord
from authcore.testing import (
    MemoryRateLimiter,
    MemoryStore,
    SettableClock,
    issue_portal_session,
    issue_root_key,
    make_workspace,
)
from authcore.tokens import digest

NOW = 1_800_000_000.0
WS = "ws_timing"


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.reads: list[bytes] = []

    def find_root_key(self, key_digest: bytes, /) -> RootKeyRecord | None:
        self.reads.append(key_digest)
        return super().find_root_key(key_digest)

    def find_portal_session(self, session_digest: bytes, /) -> PortalSessionRecord | None:
        self.reads.append(session_digest)
        return super().find_portal_session(session_digest)


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock(NOW)


@pytest.fixture
def store() -> CountingStore:
    store = CountingStore()
    make_workspace(store, WS)
    return store


def candidates(store: CountingStore) -> dict[str, str]:
    """Raw keys: revoked, expired, never existed (and one valid key, for contrast)."""
    _, revoked = issue_root_key(store, WS, ["keys.read"], now=NOW - 100, revoked=True)
    _, expired = issue_root_key(store, WS, ["keys.read"], now=NOW - 100, expires_at=int(NOW) - 1)
    _, valid = issue_root_key(store, WS, ["keys.read"], now=NOW)
    return {
        "revoked": revoked.reveal(),
        "expired": expired.reveal(),
        "unknown": "ak_" + "N" * 43,
        "valid": valid.reveal(),
    }


def test_revoked_expired_and_unknown_keys_sit_in_the_same_table(
    store: CountingStore, clock: SettableClock
) -> None:
    keys = candidates(store)
    cache = CachedStore(store, ttl=30.0, negative_ttl=5.0, clock=clock)
    for name in ("revoked", "expired", "unknown"):
        cache.find_root_key(digest(keys[name]))
    assert (cache.size, cache.negative_size) == (0, 3)


def test_revoked_expired_and_unknown_keys_are_read_again_at_the_same_moment(
    store: CountingStore, clock: SettableClock
) -> None:
    keys = candidates(store)
    cache = CachedStore(store, ttl=30.0, negative_ttl=5.0, clock=clock)
    refused = [digest(keys[name]) for name in ("revoked", "expired", "unknown")]
    for key_digest in refused:
        cache.find_root_key(key_digest)
    store.reads.clear()
    clock.advance(4.9)
    for key_digest in refused:
        cache.find_root_key(key_digest)
    assert store.reads == []  # all three still cached
    clock.advance(0.1)
    for key_digest in refused:
        cache.find_root_key(key_digest)
    assert store.reads == refused  # all three read again, none kept longer


def test_a_key_that_expires_while_cached_leaves_the_cache_at_its_expiry(
    store: CountingStore, clock: SettableClock
) -> None:
    _, soon = issue_root_key(store, WS, ["keys.read"], now=NOW, expires_at=int(NOW) + 3)
    cache = CachedStore(store, ttl=30.0, negative_ttl=5.0, clock=clock)
    cache.find_root_key(digest(soon.reveal()))
    clock.advance(3)
    store.reads.clear()
    cache.find_root_key(digest(soon.reveal()))
    assert store.reads == [digest(soon.reveal())]
    assert cache.negative_size == 1  # and from now on it is a refusal like any other


def test_a_revoked_portal_session_is_cached_like_an_unknown_one(
    store: CountingStore, clock: SettableClock
) -> None:
    _, revoked = issue_portal_session(store, WS, "end-user", ["keys.read"], now=NOW, revoked=True)
    cache = CachedStore(store, ttl=30.0, negative_ttl=5.0, clock=clock)
    cache.find_portal_session(digest(revoked.reveal()))
    cache.find_portal_session(digest("pt_" + "N" * 43))
    assert (cache.size, cache.negative_size) == (0, 2)


def test_through_the_authenticator_every_refusal_is_treated_alike(
    store: CountingStore, clock: SettableClock
) -> None:
    keys = candidates(store)
    cache = CachedStore(store, ttl=30.0, negative_ttl=5.0, clock=clock)
    authenticator = Authenticator(
        AuthSettings(), clock=clock, backends=Backends(store=cache, limiter=MemoryRateLimiter())
    )
    for name in ("revoked", "expired", "unknown"):
        with pytest.raises(InvalidCredentialError) as refusal:
            authenticator.authenticate([f"Bearer {keys[name]}"])
        assert refusal.value.bearer_error == "invalid_token"
    assert cache.negative_size == 3
    authenticator.authenticate([f"Bearer {keys['valid']}"])
    assert cache.size == 2  # the valid key and its workspace; refusals never positive
