"""The verification cache in front of a real MemoryStore, and the verified-JWT cache."""

from __future__ import annotations

import os

import attrs
import pytest

from authcore import plans, tokens
from authcore.backends.cache import CachedStore, Invalidation, VerifiedTokenCache
from authcore.errors import ConfigurationError, InvalidCredentialError, UnavailableError
from authcore.flow import Authenticator, AuthSettings, Backends
from authcore.keyring import VerifiedClaims
from authcore.records import OPERATOR_ACTOR, PortalSessionRecord, RootKeyRecord, WorkspaceRecord
from authcore.testing import MemoryStore, SettableClock
from authcore.tokens import DEFAULT_ROOT_KEY_PREFIX, digest

NOW = 1_800_000_000.0


class CountingStore(MemoryStore):
    """A real MemoryStore that counts lookups and can be told to fail."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.failure: Exception | None = None

    def _count(self) -> None:
        self.calls += 1
        if self.failure is not None:
            raise self.failure

    def find_root_key(self, digest: bytes, /) -> RootKeyRecord | None:
        self._count()
        return super().find_root_key(digest)

    def find_portal_session(self, digest: bytes, /) -> PortalSessionRecord | None:
        self._count()
        return super().find_portal_session(digest)

    def find_workspace(self, workspace_id: str, /) -> WorkspaceRecord | None:
        self._count()
        return super().find_workspace(workspace_id)

    async def afind_root_key(self, digest: bytes, /) -> RootKeyRecord | None:
        return self.find_root_key(digest)

    async def afind_workspace(self, workspace_id: str, /) -> WorkspaceRecord | None:
        return self.find_workspace(workspace_id)


@attrs.define
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store() -> CountingStore:
    return CountingStore()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cache(store: CountingStore, clock: Clock) -> CachedStore:
    return CachedStore(store, ttl=30.0, negative_ttl=5.0, workspace_ttl=5.0, clock=clock)


def _key(cache: CachedStore) -> tuple[RootKeyRecord, bytes]:
    workspace = cache.create_workspace("acme", now=NOW, actor=OPERATOR_ACTOR)
    created = cache.create_root_key(
        workspace.id, permissions=["keys.read"], now=NOW, actor=OPERATOR_ACTOR
    )
    assert created is not None
    return created.record, digest(created.key.reveal())


def test_hits_do_not_call_the_store(cache: CachedStore, store: CountingStore) -> None:
    record, key_digest = _key(cache)
    assert cache.find_root_key(key_digest) == record
    calls = store.calls
    for _ in range(5):
        assert cache.find_root_key(key_digest) == record
        assert cache.find_workspace(record.workspace_id) is not None
    assert store.calls == calls + 1  # the one workspace miss


async def test_async_hit_returns_without_suspending(
    cache: CachedStore, store: CountingStore
) -> None:
    record, key_digest = _key(cache)
    assert await cache.afind_root_key(key_digest) == record
    calls = store.calls
    coroutine = cache.afind_root_key(key_digest)
    # A coroutine that finishes on its first send never yielded to the loop.
    with pytest.raises(StopIteration) as done:
        coroutine.send(None)
    assert done.value.value == record
    assert store.calls == calls


def test_entries_expire_after_a_fresh_ttl_that_hits_do_not_extend(
    cache: CachedStore, store: CountingStore, clock: Clock
) -> None:
    _, key_digest = _key(cache)
    cache.find_root_key(key_digest)
    calls = store.calls
    clock.now += 29.9
    cache.find_root_key(key_digest)
    assert store.calls == calls
    clock.now += 0.1  # 30 s after the read, despite the hit at 29.9
    cache.find_root_key(key_digest)
    assert store.calls == calls + 1


def test_workspace_entries_use_the_workspace_ttl(
    cache: CachedStore, store: CountingStore, clock: Clock
) -> None:
    record, _ = _key(cache)
    assert cache.find_workspace(record.workspace_id) is not None
    # Disabled behind the library's back (another process without pub/sub): seen within 5 s.
    inner = store.find_workspace(record.workspace_id)
    assert inner is not None
    store.put_workspace(attrs.evolve(inner, disabled=True))
    cached = cache.find_workspace(record.workspace_id)
    assert cached is not None
    assert not cached.disabled
    clock.now += 5.0
    fresh = cache.find_workspace(record.workspace_id)
    assert fresh is not None
    assert fresh.disabled


def test_unknown_digests_are_cached_negatively_until_negative_ttl(
    cache: CachedStore, store: CountingStore, clock: Clock
) -> None:
    unknown = os.urandom(32)
    assert cache.find_root_key(unknown) is None
    calls = store.calls
    assert cache.find_root_key(unknown) is None
    assert store.calls == calls
    clock.now += 5.0
    assert cache.find_root_key(unknown) is None
    assert store.calls == calls + 1


def test_negative_entry_hides_a_key_stored_behind_the_library_for_at_most_negative_ttl(
    cache: CachedStore, store: CountingStore, clock: Clock
) -> None:
    record, _key_digest = _key(cache)
    other = attrs.evolve(record, id="key_other", digest=os.urandom(32))
    assert cache.find_root_key(other.digest) is None
    store.put_root_key(other)  # not through the library: no invalidation
    assert cache.find_root_key(other.digest) is None
    clock.now += 5.0
    assert cache.find_root_key(other.digest) == other


def test_creating_through_the_cache_drops_a_negative_entry_for_the_new_digest(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The next key is one the test has already seen, so it can be tried before it exists.
    issued = tokens.issue_token(DEFAULT_ROOT_KEY_PREFIX, "key")
    monkeypatch.setattr(plans, "issue_token", lambda prefix, kind: issued)
    planted = issued.digest

    cache = CachedStore(MemoryStore(), clock=clock)
    workspace = cache.create_workspace("acme", now=NOW, actor=OPERATOR_ACTOR)
    assert cache.find_root_key(planted) is None  # tried before it existed: cached negative
    assert cache.negative_size == 1
    created = cache.create_root_key(workspace.id, permissions=[], now=NOW, actor=OPERATOR_ACTOR)
    assert created is not None
    assert created.record.digest == planted
    assert cache.find_root_key(planted) == created.record


def test_create_root_key_through_the_cache_is_found_at_once(cache: CachedStore) -> None:
    record, key_digest = _key(cache)
    assert cache.find_root_key(key_digest) == record


def test_negative_entries_stay_bounded_under_100000_random_digests(
    store: CountingStore, clock: Clock
) -> None:
    cache = CachedStore(store, max_negative=10_000, clock=clock)
    for _ in range(100_000):
        assert cache.find_root_key(os.urandom(32)) is None
    assert cache.negative_size == 10_000
    assert cache.size == 0


def test_positive_entries_stay_bounded_and_evict_the_least_recently_used(
    store: CountingStore, clock: Clock
) -> None:
    cache = CachedStore(store, max_entries=100, clock=clock)
    workspace = cache.create_workspace("acme", now=NOW, actor=OPERATOR_ACTOR)
    digests = []
    for _ in range(300):
        created = cache.create_root_key(workspace.id, permissions=[], now=NOW, actor=OPERATOR_ACTOR)
        assert created is not None
        digests.append(created.record.digest)
    hot = digests[0]
    for key_digest in digests:
        cache.find_root_key(key_digest)
        cache.find_root_key(hot)
    assert cache.size == 100
    calls = store.calls
    cache.find_root_key(hot)
    assert store.calls == calls


def test_revoke_through_the_cache_takes_effect_at_once(cache: CachedStore) -> None:
    record, key_digest = _key(cache)
    assert cache.find_root_key(key_digest) == record
    cache.revoke_root_key(record.id, now=NOW + 1, actor=OPERATOR_ACTOR)
    revoked = cache.find_root_key(key_digest)
    assert revoked is not None
    assert revoked.revoked_at == int(NOW + 1)


def test_rotate_through_the_cache_shortens_the_old_key_at_once(cache: CachedStore) -> None:
    record, key_digest = _key(cache)
    cache.find_root_key(key_digest)
    new = cache.rotate_root_key(record.id, grace_seconds=60, now=NOW, actor=OPERATOR_ACTOR)
    assert new is not None
    old = cache.find_root_key(key_digest)
    assert old is not None
    assert old.expires_at == int(NOW) + 60
    assert cache.find_root_key(new.record.digest) == new.record


def test_disable_workspace_through_the_cache_takes_effect_at_once(cache: CachedStore) -> None:
    record, _ = _key(cache)
    assert cache.find_workspace(record.workspace_id) is not None
    cache.disable_workspace(record.workspace_id, now=NOW, actor=OPERATOR_ACTOR)
    workspace = cache.find_workspace(record.workspace_id)
    assert workspace is not None
    assert workspace.disabled


def test_revoke_portal_session_through_the_cache_takes_effect_at_once(cache: CachedStore) -> None:
    record, _ = _key(cache)
    created = cache.create_portal_session(
        record.workspace_id, "user_1", permissions=[], ttl=3600, now=NOW, actor=OPERATOR_ACTOR
    )
    assert created is not None
    session_digest = digest(created.token.reveal())
    assert cache.find_portal_session(session_digest) == created.record
    cache.revoke_portal_session(created.record.id, now=NOW, actor=OPERATOR_ACTOR)
    revoked = cache.find_portal_session(session_digest)
    assert revoked is not None
    assert revoked.revoked_at is not None


async def test_async_revoke_through_the_cache_takes_effect_at_once(cache: CachedStore) -> None:
    record, key_digest = _key(cache)
    assert await cache.afind_root_key(key_digest) == record
    await cache.arevoke_root_key(record.id, now=NOW, actor=OPERATOR_ACTOR)
    revoked = await cache.afind_root_key(key_digest)
    assert revoked is not None
    assert revoked.revoked_at is not None


def test_revocation_through_the_cache_gives_401_through_the_flow(cache: CachedStore) -> None:
    workspace = cache.create_workspace("acme", now=NOW, actor=OPERATOR_ACTOR)
    created = cache.create_root_key(workspace.id, permissions=[], now=NOW, actor=OPERATOR_ACTOR)
    assert created is not None
    auth = Authenticator(
        AuthSettings(default_rate_limit=None),
        clock=SettableClock(NOW + 1),
        backends=Backends(cache),
    )
    header = f"Bearer {created.key.reveal()}"
    assert auth.authenticate([header]).principal.workspace_id == workspace.id
    cache.revoke_root_key(created.record.id, now=NOW + 1, actor=OPERATOR_ACTOR)
    with pytest.raises(InvalidCredentialError):
        auth.authenticate([header])


def test_invalidate_workspace_drops_its_keys_and_itself(
    cache: CachedStore, store: CountingStore
) -> None:
    record, key_digest = _key(cache)
    cache.find_root_key(key_digest)
    cache.find_workspace(record.workspace_id)
    cache.invalidate_workspace(record.workspace_id)
    calls = store.calls
    cache.find_root_key(key_digest)
    cache.find_workspace(record.workspace_id)
    assert store.calls == calls + 2


def test_invalidate_digest_and_clear_drop_entries(cache: CachedStore, store: CountingStore) -> None:
    _, key_digest = _key(cache)
    cache.find_root_key(key_digest)
    cache.invalidate_digest(key_digest)
    calls = store.calls
    cache.find_root_key(key_digest)
    assert store.calls == calls + 1
    cache.clear()
    assert (cache.size, cache.negative_size) == (0, 0)


@pytest.mark.parametrize("failure", [RuntimeError("db at 10.0.0.1 down"), UnavailableError()])
def test_a_failing_lookup_is_unavailable_and_never_cached_as_negative(
    cache: CachedStore, store: CountingStore, failure: Exception
) -> None:
    record, key_digest = _key(cache)
    store.failure = failure
    with pytest.raises(UnavailableError) as caught:
        cache.find_root_key(key_digest)
    assert "10.0.0.1" not in str(caught.value)
    assert cache.negative_size == 0
    store.failure = None
    assert cache.find_root_key(key_digest) == record


async def test_an_async_failing_lookup_is_unavailable(
    cache: CachedStore, store: CountingStore
) -> None:
    _, key_digest = _key(cache)
    store.failure = OSError("reset")
    with pytest.raises(UnavailableError):
        await cache.afind_root_key(key_digest)
    assert cache.negative_size == 0


def test_a_garbage_answer_is_unavailable_and_not_cached(clock: Clock) -> None:
    class GarbageStore(MemoryStore):
        def find_root_key(self, digest: bytes, /) -> RootKeyRecord | None:
            return "not a record"  # type: ignore[return-value]  # the fault under test

    cache = CachedStore(GarbageStore(), clock=clock)
    with pytest.raises(UnavailableError):
        cache.find_root_key(b"\x00" * 32)
    assert (cache.size, cache.negative_size) == (0, 0)


def test_an_invalidation_during_a_lookup_keeps_its_result_out_of_the_cache(
    clock: Clock,
) -> None:
    class RacingStore(CountingStore):
        cache: CachedStore | None = None

        def find_root_key(self, digest: bytes, /) -> RootKeyRecord | None:
            found = super().find_root_key(digest)
            # A revocation lands while this (now stale) answer is on its way back.
            assert self.cache is not None
            self.cache.invalidate_digest(digest)
            return found

    store = RacingStore()
    cache = CachedStore(store, clock=clock)
    store.cache = cache
    cache.find_root_key(b"\x01" * 32)
    cache.find_root_key(b"\x01" * 32)
    assert store.calls == 2
    assert cache.negative_size == 0


def test_a_store_without_lookups_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        CachedStore(object())  # type: ignore[arg-type]  # the misuse under test


@pytest.mark.parametrize(
    "options", [{"ttl": 0}, {"negative_ttl": -1}, {"max_entries": 0}, {"max_negative": True}]
)
def test_out_of_range_options_are_configuration_errors(options: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        CachedStore(MemoryStore(), **options)  # type: ignore[arg-type]  # kwargs from a table


def test_repr_shows_no_digest(cache: CachedStore) -> None:
    _, key_digest = _key(cache)
    cache.find_root_key(key_digest)
    assert key_digest.hex() not in repr(cache)


@pytest.mark.parametrize(
    "invalidation",
    [
        Invalidation("digest", "ab" * 32),
        Invalidation("workspace", "ws_1"),
        Invalidation("root_key", "key_1"),
        Invalidation("portal_session", "ps_1"),
        Invalidation("all"),
    ],
)
def test_invalidation_messages_round_trip(invalidation: Invalidation) -> None:
    assert Invalidation.decode(invalidation.encode().encode()) == invalidation


def test_an_invalidation_repr_names_no_digest() -> None:
    value = digest("ak_" + "q" * 43).hex()
    invalidation = Invalidation("digest", value)
    assert value not in repr(invalidation)
    assert value in invalidation.encode()  # the wire form still carries it


@pytest.mark.parametrize("data", [b"", b"x:1", b"d:zz", b"w:", b"\xff:1", b"d" + b"a" * 600])
def test_malformed_invalidation_messages_are_ignored(data: bytes) -> None:
    assert Invalidation.decode(data) is None


# --- verified JWTs ---------------------------------------------------------------------------


def _claims(expires_at: int = 2000) -> VerifiedClaims:
    return VerifiedClaims(
        subject="user_1",
        workspace_id="ws_1",
        permissions=("keys.read",),
        issued_at=1000,
        expires_at=expires_at,
    )


def test_token_cache_never_returns_claims_at_or_past_exp() -> None:
    cache = VerifiedTokenCache()
    cache.put("a.b.c", _claims(expires_at=2000))
    assert cache.get("a.b.c", 1999.999) == _claims(expires_at=2000)
    assert cache.get("a.b.c", 2000) is None
    assert cache.get("a.b.c", 1999) is None  # dropped once seen expired
    assert len(cache) == 0


def test_token_cache_is_keyed_by_the_whole_token() -> None:
    cache = VerifiedTokenCache()
    cache.put("a.b.c", _claims())
    assert cache.get("a.b.d", 1500) is None
    assert cache.get("a.b.c", 1500) is not None


def test_token_cache_is_bounded() -> None:
    cache = VerifiedTokenCache(max_entries=100)
    for index in range(1000):
        cache.put(f"h.p{index}.s", _claims())
    assert len(cache) == 100
    assert cache.get("h.p999.s", 1500) is not None
    assert cache.get("h.p0.s", 1500) is None


def test_token_cache_repr_shows_no_token() -> None:
    cache = VerifiedTokenCache()
    cache.put("secret.jwt.value", _claims())
    assert "secret" not in repr(cache)
