"""The verified-result cache: an Authenticator replays the flow's conclusion from CachedStore.

A replay skips steps 1-3 but never re-decides: it checks the conclusion's ``valid_until``
against the clock, always takes a fresh rate-limit decision, and every change that could
alter the conclusion drops it. The property test at the end drives one random sequence of
requests and changes through a cached and an uncached authenticator and wants the same
answer at every step.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from authcore.backends.cache import CachedStore
from authcore.credentials import CredentialSettings
from authcore.errors import (
    DuplicateCredentialError,
    InvalidCredentialError,
    MissingCredentialError,
    RateLimitedError,
    UnavailableError,
    UnsupportedSchemeError,
    WorkspaceDisabledError,
)
from authcore.flow import AsyncBackends, Authenticated, Authenticator, AuthSettings, Backends
from authcore.gate import Gate
from authcore.keyring import Keyring, SigningSecret
from authcore.principal import Principal
from authcore.ratelimit import Level, LimiterFailurePolicy, RateLimitDecision, RateLimitPolicy
from authcore.records import (
    OPERATOR_ACTOR,
    IdentityRecord,
    PortalSessionRecord,
    RootKeyRecord,
    WorkspaceRecord,
)
from authcore.replay import ConclusionTable
from authcore.responses import HTTPResponse
from authcore.testing import (
    MemoryRateLimiter,
    MemoryStore,
    SettableClock,
    add_identity,
    issue_portal_session,
    issue_root_key,
    make_workspace,
)
from authcore.tokens import Secret

NOW = 1_800_000_000.0
WS = "ws_replay"
SECRETS = {kid: Secret(f"replay-secret-{kid}-" + "x" * 40) for kid in ("k1", "k2")}


class CountingStore(MemoryStore):
    """A real MemoryStore that counts the lookups verification makes."""

    def __init__(self) -> None:
        super().__init__()
        self.lookups = 0

    def find_root_key(self, digest: bytes, /) -> RootKeyRecord | None:
        self.lookups += 1
        return super().find_root_key(digest)

    def find_portal_session(self, digest: bytes, /) -> PortalSessionRecord | None:
        self.lookups += 1
        return super().find_portal_session(digest)

    def find_workspace(self, workspace_id: str, /) -> WorkspaceRecord | None:
        self.lookups += 1
        return super().find_workspace(workspace_id)


class CountingLimiter(MemoryRateLimiter):
    """A real memory limiter that counts its decisions."""

    def __init__(self, clock: SettableClock) -> None:
        super().__init__(clock_us=clock.us)
        self.decisions = 0
        self.failure: Exception | None = None

    def hit(self, bucket: str, policy: RateLimitPolicy) -> RateLimitDecision:
        self.decisions += 1
        if self.failure is not None:
            raise self.failure
        return super().hit(bucket, policy)

    def hit_levels(self, levels: Sequence[Level], /) -> tuple[RateLimitDecision, ...]:
        # One decision per level, all taken in one call.
        self.decisions += len(levels)
        if self.failure is not None:
            raise self.failure
        return super().hit_levels(levels)


def keyring(*kids: str) -> Keyring:
    return Keyring([SigningSecret(kid, SECRETS[kid]) for kid in kids], signing_kid=kids[0])


@attrs.define
class World:
    clock: SettableClock
    store: CountingStore
    cache: CachedStore
    limiter: CountingLimiter
    authenticator: Authenticator
    key: str
    key_id: str


def make_world(
    *,
    limit: RateLimitPolicy | None = None,
    expires_in: int | None = None,
    key_limit: RateLimitPolicy | None = None,
    **options: Any,
) -> World:
    clock = SettableClock(NOW)
    store = CountingStore()
    make_workspace(store, WS, rate_limit=limit or RateLimitPolicy(1000, 1))
    expires_at = None if expires_in is None else int(NOW) + expires_in
    record, secret = issue_root_key(
        store, WS, ["keys.read"], now=NOW, expires_at=expires_at, rate_limit=key_limit
    )
    cache = CachedStore(store, clock=clock)
    limiter = CountingLimiter(clock)
    authenticator = Authenticator(
        AuthSettings(keyring=keyring("k1"), **options),
        clock=clock,
        backends=Backends(store=cache, limiter=limiter),
        abackends=AsyncBackends(store=cache, limiter=limiter),
    )
    return World(clock, store, cache, limiter, authenticator, secret.reveal(), record.id)


def bearer(token: str) -> list[str]:
    return [f"Bearer {token}"]


def test_a_repeated_credential_replays_without_touching_the_store() -> None:
    world = make_world()
    first = world.authenticator.authenticate(bearer(world.key))
    lookups = world.store.lookups
    again = world.authenticator.authenticate(bearer(world.key))
    assert world.store.lookups == lookups
    assert again.principal == first.principal
    # Kept no longer than the workspace record it came from (workspace_ttl, 5 s).
    assert again.conclusion is not None
    assert again.conclusion.valid_until == NOW + 5


def test_every_replay_takes_its_own_rate_limit_decision() -> None:
    world = make_world(limit=RateLimitPolicy(3, 60))
    remaining = [world.authenticator.authenticate(bearer(world.key)) for _ in range(3)]
    assert [r.rate_limit.remaining for r in remaining if r.rate_limit] == [2, 1, 0]
    with pytest.raises(RateLimitedError):
        world.authenticator.authenticate(bearer(world.key))
    assert world.limiter.decisions == 4


def test_a_replay_never_outlives_the_keys_expiry() -> None:
    world = make_world(expires_in=10)
    world.authenticator.authenticate(bearer(world.key))
    world.clock.advance(9.5)
    world.authenticator.authenticate(bearer(world.key))
    world.clock.advance(0.5)  # exactly at expires_at: the full path says expired
    with pytest.raises(InvalidCredentialError):
        world.authenticator.authenticate(bearer(world.key))


def test_revocation_through_the_cache_ends_replay_at_once() -> None:
    world = make_world()
    world.authenticator.authenticate(bearer(world.key))
    world.cache.revoke_root_key(world.key_id, now=world.clock(), actor=OPERATOR_ACTOR)
    with pytest.raises(InvalidCredentialError):
        world.authenticator.authenticate(bearer(world.key))


def test_rotation_through_the_cache_shortens_the_replayed_key_at_once() -> None:
    world = make_world()
    world.authenticator.authenticate(bearer(world.key))
    world.cache.rotate_root_key(
        world.key_id, grace_seconds=5, now=world.clock(), actor=OPERATOR_ACTOR
    )
    world.clock.advance(5)
    with pytest.raises(InvalidCredentialError):
        world.authenticator.authenticate(bearer(world.key))


def test_disabling_the_workspace_ends_replay_at_once() -> None:
    world = make_world()
    world.authenticator.authenticate(bearer(world.key))
    world.cache.disable_workspace(WS, now=world.clock(), actor=OPERATOR_ACTOR)
    with pytest.raises(WorkspaceDisabledError):
        world.authenticator.authenticate(bearer(world.key))


def test_a_new_workspace_limit_applies_to_the_next_request() -> None:
    world = make_world(limit=RateLimitPolicy(100, 60))
    world.authenticator.authenticate(bearer(world.key))
    world.cache.set_rate_limit(WS, RateLimitPolicy(7, 60), now=world.clock(), actor=OPERATOR_ACTOR)
    result = world.authenticator.authenticate(bearer(world.key))
    assert result.rate_limit is not None
    assert result.rate_limit.limit == 7


def test_a_new_key_limit_applies_to_the_next_request_and_clearing_it_too() -> None:
    world = make_world(limit=RateLimitPolicy(100, 60))
    assert world.authenticator.authenticate(bearer(world.key)).rate_limit.limit == 100  # type: ignore[union-attr]
    assert world.authenticator.authenticate(bearer(world.key)).replayed
    world.cache.set_key_rate_limit(
        world.key_id, RateLimitPolicy(5, 60), now=world.clock(), actor=OPERATOR_ACTOR
    )
    limited = world.authenticator.authenticate(bearer(world.key))
    assert not limited.replayed  # the change dropped the key's conclusion
    assert limited.rate_limit is not None
    assert limited.rate_limit.limit == 5
    world.cache.set_key_rate_limit(world.key_id, None, now=world.clock(), actor=OPERATOR_ACTOR)
    cleared = world.authenticator.authenticate(bearer(world.key))
    assert cleared.rate_limit is not None
    assert cleared.rate_limit.limit == 100


def test_a_message_from_another_process_ends_replay() -> None:
    world = make_world()
    world.authenticator.authenticate(bearer(world.key))
    # What RedisInvalidator hands the cache when another process revoked the key there.
    world.store.revoke_root_key(world.key_id, now=world.clock(), actor=OPERATOR_ACTOR)
    world.cache.invalidate_root_key(world.key_id)
    with pytest.raises(InvalidCredentialError):
        world.authenticator.authenticate(bearer(world.key))


def test_a_change_behind_the_caches_back_is_seen_within_the_record_ttl() -> None:
    world = make_world()
    world.authenticator.authenticate(bearer(world.key))
    world.store.revoke_root_key(world.key_id, now=world.clock(), actor=OPERATOR_ACTOR)
    world.clock.advance(29)  # within the key's 30 s cache life; the workspace's 5 s are over
    world.authenticator.authenticate(bearer(world.key))
    world.clock.advance(1)
    with pytest.raises(InvalidCredentialError):
        world.authenticator.authenticate(bearer(world.key))


def test_a_replay_is_no_longer_than_the_records_it_came_from() -> None:
    world = make_world()
    world.authenticator.authenticate(bearer(world.key))
    world.clock.advance(29)
    world.authenticator.authenticate(bearer(world.key))  # concluded again at 29 s ...
    world.store.revoke_root_key(world.key_id, now=world.clock(), actor=OPERATOR_ACTOR)
    world.clock.advance(1.5)  # ... from a key record cached at 0 s: its 30 s bound holds
    with pytest.raises(InvalidCredentialError):
        world.authenticator.authenticate(bearer(world.key))


def test_a_conclusion_reached_while_something_was_invalidated_is_not_kept() -> None:
    world = make_world()
    table = world.authenticator._replay
    assert table is not None
    ticket = table.ticket()
    result = world.authenticator.authenticate(bearer(world.key))
    table_size = len(table)  # type: ignore[arg-type]  # the concrete table has a length
    world.cache.invalidate_workspace("ws_other")
    assert result.conclusion is not None
    table.put(b"\x00" * 32, result.conclusion, ticket, world.clock())
    assert len(table) == table_size  # type: ignore[arg-type]  # stale ticket: not stored


def test_jwt_replay_stops_when_its_secret_leaves_the_keyring() -> None:
    world = make_world()
    token = keyring("k1").mint(
        subject="dana", workspace_id=WS, permissions=["keys.read"], now=int(NOW), ttl=300
    )
    world.authenticator.authenticate(bearer(token.reveal()))
    rotated = Authenticator(
        AuthSettings(keyring=keyring("k2")),
        clock=world.clock,
        backends=Backends(store=world.cache, limiter=world.limiter),
    )
    with pytest.raises(InvalidCredentialError):
        rotated.authenticate(bearer(token.reveal()))


class SharedTable(CachedStore):
    """A CachedStore whose route groups share one table (CachedStore gives each its own)."""

    def __init__(self, store: MemoryStore, clock: SettableClock) -> None:
        super().__init__(store, clock=clock)
        self.table = super().verified_results()

    def verified_results(self) -> ConclusionTable:
        return self.table


def test_a_conclusion_whose_secret_this_authenticator_lacks_is_not_replayed() -> None:
    clock = SettableClock(NOW)
    store = MemoryStore()
    make_workspace(store, WS)
    shared = SharedTable(store, clock)
    limiter = MemoryRateLimiter(clock_us=clock.us)
    token = keyring("k1").mint(
        subject="dana", workspace_id=WS, permissions=["keys.read"], now=int(NOW), ttl=300
    )
    for kids in (("k1",), ("k1", "k2")):  # the conclusion is reached under k1, and shared
        Authenticator(
            AuthSettings(keyring=keyring(*kids)),
            clock=clock,
            backends=Backends(store=shared, limiter=limiter),
        ).authenticate(bearer(token.reveal()))
    assert len(shared.table) == 1  # type: ignore[arg-type]
    for lacking in (AuthSettings(keyring=keyring("k2")), AuthSettings()):
        other = Authenticator(
            lacking, clock=clock, backends=Backends(store=shared, limiter=limiter)
        )
        with pytest.raises(InvalidCredentialError):  # the whole flow's answer, not a replay
            other.authenticate(bearer(token.reveal()))


def test_a_request_without_exactly_one_credential_takes_the_whole_flow() -> None:
    world = make_world()
    record, session = issue_portal_session(world.store, WS, "end-user", ["keys.read"], now=NOW)
    portal = Authenticator(
        AuthSettings(credentials=CredentialSettings.portal(), realm="portal"),
        clock=world.clock,
        backends=Backends(store=world.cache, limiter=world.limiter),
        abackends=AsyncBackends(store=world.cache, limiter=world.limiter),
    )
    cookie = session.reveal()
    assert portal.authenticate([], cookie).principal.subject.id == record.identity_id
    assert portal.authenticate([], cookie).replayed
    with pytest.raises(DuplicateCredentialError):
        portal.authenticate(bearer(cookie), cookie)
    assert portal.replay_inline(bearer(cookie), cookie) is None
    world.authenticator.authenticate(bearer(world.key))
    with pytest.raises(UnsupportedSchemeError):
        world.authenticator.authenticate([f"Basic {world.key}"])
    with pytest.raises(MissingCredentialError):
        world.authenticator.authenticate([])
    assert world.authenticator.replay_inline([f"Basic {world.key}"]) is None
    assert world.authenticator.replay_inline([]) is None


def test_the_table_holds_digests_and_conclusions_never_the_key() -> None:
    world = make_world()
    world.authenticator.authenticate(bearer(world.key))
    table = world.authenticator._replay
    entries = table._entries  # type: ignore[union-attr]
    assert all(isinstance(key, bytes) and len(key) == 32 for key in entries)
    assert world.key not in repr(entries)
    assert world.key.encode() not in list(entries)


def test_the_table_is_bounded_by_the_caches_max_entries() -> None:
    clock = SettableClock(NOW)
    store = MemoryStore()
    make_workspace(store, WS)
    keys = [issue_root_key(store, WS, ["keys.read"], now=NOW)[1] for _ in range(12)]
    cache = CachedStore(store, clock=clock, max_entries=5)
    authenticator = Authenticator(
        AuthSettings(), clock=clock, backends=Backends(store=cache, limiter=MemoryRateLimiter())
    )
    for key in keys:
        authenticator.authenticate(bearer(key.reveal()))
    assert len(authenticator._replay) <= 5  # type: ignore[arg-type]


def test_unusual_spellings_take_the_full_path_and_get_its_answer() -> None:
    world = make_world()
    world.authenticator.authenticate(bearer(world.key))
    lookups = world.store.lookups
    # Lowercase scheme: the same credential, replayed.
    world.authenticator.authenticate([f"bearer {world.key}"])
    assert world.store.lookups == lookups
    # Two spaces: RFC 6750 allows it, the full path reads the same token (a fresh flow).
    result = world.authenticator.authenticate([f"Bearer  {world.key}"])
    assert result.principal.subject.id == world.key_id


def test_a_failing_limiter_on_a_replay_gets_the_flows_answer() -> None:
    world = make_world()
    world.authenticator.authenticate(bearer(world.key))
    world.limiter.failure = UnavailableError("down")
    with pytest.raises(UnavailableError):
        world.authenticator.authenticate(bearer(world.key))


def test_a_failing_limiter_on_a_replay_uses_the_local_fallback_when_configured() -> None:
    world = make_world(limiter_failure=LimiterFailurePolicy.LOCAL_FALLBACK)
    fallback = MemoryRateLimiter(clock_us=world.clock.us)
    authenticator = Authenticator(
        world.authenticator.settings,
        clock=world.clock,
        backends=Backends(store=world.cache, limiter=world.limiter, fallback_limiter=fallback),
        abackends=AsyncBackends(
            store=world.cache, limiter=world.limiter, fallback_limiter=fallback
        ),
    )
    authenticator.authenticate(bearer(world.key))
    world.limiter.failure = UnavailableError("down")
    assert authenticator.authenticate(bearer(world.key)).rate_limit is not None
    replayed = asyncio.run(authenticator.aauthenticate(bearer(world.key)))
    assert replayed.rate_limit is not None


def test_the_async_side_replays_inline_and_awaited_alike() -> None:
    world = make_world(limit=RateLimitPolicy(2, 60))
    asyncio.run(world.authenticator.aauthenticate(bearer(world.key)))
    inline = world.authenticator.replay_inline(bearer(world.key))
    assert isinstance(inline, Authenticated)
    with pytest.raises(RateLimitedError):
        world.authenticator.replay_inline(bearer(world.key))
    with pytest.raises(RateLimitedError):
        asyncio.run(world.authenticator.aauthenticate(bearer(world.key)))


def test_a_replayed_key_with_its_own_limit_takes_both_decisions() -> None:
    world = make_world(limit=RateLimitPolicy(1000, 60), key_limit=RateLimitPolicy(2, 60))
    first = world.authenticator.authenticate(bearer(world.key))
    second = world.authenticator.authenticate(bearer(world.key))
    assert (first.replayed, second.replayed) == (False, True)
    assert [r.rate_limit for r in (first, second)] == [
        RateLimitDecision(True, 2, 1, 30, 0),
        RateLimitDecision(True, 2, 0, 60, 0),
    ]
    with pytest.raises(RateLimitedError) as info:
        world.authenticator.authenticate(bearer(world.key))
    assert info.value.decision.limit == 2
    assert info.value.credential_id == world.key_id
    # Both levels in one call for every request, the refused one included.
    assert world.limiter.decisions == 2 + 2 + 2


def test_the_async_side_replays_a_key_limit_inline_and_awaited_alike() -> None:
    world = make_world(limit=RateLimitPolicy(1000, 60), key_limit=RateLimitPolicy(3, 60))
    asyncio.run(world.authenticator.aauthenticate(bearer(world.key)))
    inline = world.authenticator.replay_inline(bearer(world.key))
    assert isinstance(inline, Authenticated)
    assert inline.rate_limit == RateLimitDecision(True, 3, 1, 40, 0)
    awaited = asyncio.run(world.authenticator.aauthenticate(bearer(world.key)))
    assert awaited.replayed
    assert awaited.rate_limit == RateLimitDecision(True, 3, 0, 60, 0)
    with pytest.raises(RateLimitedError):
        world.authenticator.replay_inline(bearer(world.key))
    with pytest.raises(RateLimitedError):
        asyncio.run(world.authenticator.aauthenticate(bearer(world.key)))
    assert world.limiter.decisions == 5 * 2  # each request's call taken once, never again


def test_an_awaited_limiter_replays_a_key_limit() -> None:
    world = make_world(key_limit=RateLimitPolicy(1, 60))
    limiter = AwaitedLimiter(MemoryRateLimiter(clock_us=world.clock.us))
    authenticator = Authenticator(
        world.authenticator.settings,
        clock=world.clock,
        abackends=AsyncBackends(store=world.cache, limiter=limiter),
    )

    async def run() -> Authenticated:
        first = await authenticator.aauthenticate(bearer(world.key))
        with pytest.raises(RateLimitedError) as info:
            await authenticator.aauthenticate(bearer(world.key))
        assert info.value.decision.limit == 1
        return first

    first = asyncio.run(run())
    assert first.rate_limit is not None
    assert first.rate_limit.limit == 1


def test_an_in_process_limiter_failing_inline_sends_both_key_decisions_to_the_fallback() -> None:
    world = make_world(
        key_limit=RateLimitPolicy(1, 60), limiter_failure=LimiterFailurePolicy.LOCAL_FALLBACK
    )
    fallback = MemoryRateLimiter(clock_us=world.clock.us)
    authenticator = Authenticator(
        world.authenticator.settings,
        clock=world.clock,
        abackends=AsyncBackends(
            store=world.cache, limiter=world.limiter, fallback_limiter=fallback
        ),
    )
    asyncio.run(authenticator.aauthenticate(bearer(world.key)))
    world.limiter.failure = UnavailableError("down")
    decisions = world.limiter.decisions
    # The fallback's key bucket is fresh: admitted inline, no await needed.
    inline = authenticator.replay_inline(bearer(world.key))
    assert isinstance(inline, Authenticated)
    assert inline.rate_limit is not None
    assert inline.rate_limit.limit == 1
    # Asked once for both levels (counted per level), then the fallback for both.
    assert world.limiter.decisions == decisions + 2
    with pytest.raises(RateLimitedError):
        authenticator.replay_inline(bearer(world.key))


def test_replay_can_be_turned_off() -> None:
    world = make_world()
    authenticator = Authenticator(
        world.authenticator.settings,
        clock=world.clock,
        backends=Backends(store=world.cache, limiter=world.limiter),
        replay=False,
    )
    authenticator.authenticate(bearer(world.key))
    assert authenticator.replay_inline(bearer(world.key)) is None


# --- the property: the cached path and the uncached flow answer alike -------------------------


@attrs.define
class Side:
    """One authenticator setup: cached (CachedStore + replay) or plain (the flow every time)."""

    clock: SettableClock
    store: MemoryStore
    manage: Any  # where changes go: the CachedStore (cached side) or the store itself
    limiter: MemoryRateLimiter
    gate: Gate
    cached: bool

    def rebuild(self, kids: tuple[str, ...]) -> None:
        backends = Backends(store=self.manage, limiter=self.limiter)
        api = Authenticator(
            AuthSettings(keyring=keyring(*kids)),
            clock=self.clock,
            backends=backends,
            replay=self.cached,
        )
        portal = Authenticator(
            AuthSettings(credentials=CredentialSettings.portal(), realm="portal"),
            clock=self.clock,
            backends=backends,
            replay=self.cached,
        )
        self.gate = Gate.build(api, groups={"/portal/": portal})


@attrs.frozen
class Seed:
    """The credentials both sides hold: the same records, so the same raw tokens work."""

    identity: IdentityRecord
    keys: tuple[RootKeyRecord, ...]
    key_secrets: tuple[str, ...]
    sessions: tuple[PortalSessionRecord, ...]
    session_secrets: tuple[str, ...]
    jwts: tuple[str, ...]


def make_seed() -> Seed:
    source = MemoryStore()
    # One customer of ws_a, limited to 3 per 10 s across its two keys.
    identity = add_identity(source, "ws_a", "customer", rate_limit=RateLimitPolicy(3, 10), now=NOW)
    keys = [
        issue_root_key(source, "ws_a", ["keys.read"], now=NOW),
        issue_root_key(source, "ws_a", ["keys.*"], now=NOW, expires_at=int(NOW) + 20),
        issue_root_key(source, "ws_b", ["audit.read"], now=NOW),
        # Its own limit, tighter than ws_a's 4/10 (and looser than the 2/10 it may get).
        issue_root_key(source, "ws_a", ["keys.read"], now=NOW, rate_limit=RateLimitPolicy(3, 10)),
        issue_root_key(source, "ws_a", ["keys.read"], now=NOW, identity_id=identity.id),
        issue_root_key(
            source,
            "ws_a",
            ["keys.read"],
            now=NOW,
            identity_id=identity.id,
            rate_limit=RateLimitPolicy(2, 10),
        ),
    ]
    sessions = [
        issue_portal_session(source, "ws_a", "end-user-1", ["keys.read"], now=NOW, ttl=40),
        issue_portal_session(source, "ws_b", "end-user-2", ["keys.read"], now=NOW, ttl=3600),
        # Its own limit, tighter than ws_a's 4/10 (a session made by a limited key).
        issue_portal_session(
            source, "ws_a", "end-user-3", ["keys.read"], now=NOW, rate_limit=RateLimitPolicy(2, 10)
        ),
    ]
    jwts = [
        keyring(kid)
        .mint(subject="dana", workspace_id="ws_a", permissions=["keys.read"], now=int(NOW), ttl=60)
        .reveal()
        for kid in ("k1", "k2")
    ]
    return Seed(
        identity,
        tuple(record for record, _ in keys),
        tuple(secret.reveal() for _, secret in keys),
        tuple(record for record, _ in sessions),
        tuple(secret.reveal() for _, secret in sessions),
        tuple(jwts),
    )


def make_side(seed: Seed, *, cached: bool) -> Side:
    clock = SettableClock(NOW)
    store = MemoryStore()
    make_workspace(store, "ws_a", rate_limit=RateLimitPolicy(4, 10))
    make_workspace(store, "ws_b")  # no policy of its own: the default applies
    store.put_identity(seed.identity)
    for record in seed.keys:
        store.put_root_key(record)
    for session in seed.sessions:
        store.put_portal_session(session)
    manage: Any = CachedStore(store, clock=clock) if cached else store
    limiter = MemoryRateLimiter(clock_us=clock.us)
    side = Side(clock, store, manage, limiter, Gate.build(_unused()), cached)
    side.rebuild(("k1",))
    return side


def _unused() -> Authenticator:
    return Authenticator(AuthSettings(), clock=lambda: NOW, backends=Backends(store=MemoryStore()))


def outcome(result: Authenticated | HTTPResponse) -> tuple[Any, ...]:
    if isinstance(result, HTTPResponse):
        return (result.status, result.headers, result.body)
    principal: Principal = result.principal
    return (200, principal, result.rate_limit)


def present(side: Side, seed: Seed, which: tuple[str, int]) -> tuple[Any, ...]:
    kind, index = which
    cookie: list[str]
    if kind == "key":
        path, values, cookie = "/v1/keys", bearer(seed.key_secrets[index]), []
    elif kind == "jwt":
        path, values, cookie = "/v1/keys", bearer(seed.jwts[index]), []
    elif kind == "session":
        token = seed.session_secrets[index]
        path, values, cookie = "/portal/v1/keys", [], [f"authcore_portal={token}"]
    else:
        path, values, cookie = "/v1/keys", bearer("ak_" + "Z" * 43), []
    authenticator = side.gate.route(path)
    assert authenticator is not None
    return outcome(side.gate.admit(authenticator, "GET", values, cookie))


def apply(side: Side, seed: Seed, event: tuple[Any, ...]) -> tuple[Any, ...] | None:
    kind = event[0]
    now = side.clock()
    if kind == "request":
        return present(side, seed, event[1])
    if kind == "advance":
        side.clock.advance(event[1])
    elif kind == "revoke":
        side.manage.revoke_root_key(seed.keys[event[1]].id, now=now, actor=OPERATOR_ACTOR)
    elif kind == "rotate":
        side.manage.rotate_root_key(
            seed.keys[event[1]].id, grace_seconds=event[2], now=now, actor=OPERATOR_ACTOR
        )
    elif kind == "logout":
        side.manage.revoke_portal_session(seed.sessions[event[1]].id, now=now, actor=OPERATOR_ACTOR)
    elif kind == "disable":
        side.manage.disable_workspace(event[1], now=now, actor=OPERATOR_ACTOR)
    elif kind == "limit":
        side.manage.set_rate_limit(event[1], event[2], now=now, actor=OPERATOR_ACTOR)
    elif kind == "identity_limit":
        side.manage.set_identity_rate_limit(
            "ws_a", "customer", event[1], now=now, actor=OPERATOR_ACTOR
        )
    elif kind == "identity_delete":
        # Through the store, as in any process: its keys (and sessions) end with it.
        side.manage.delete_identity(
            "ws_a", "customer", revoke_keys=True, now=now, actor=OPERATOR_ACTOR
        )
    elif kind == "keyring":
        side.rebuild(event[1])
    return None


CREDENTIALS = [
    ("key", 0),
    ("key", 1),
    ("key", 2),
    ("key", 3),
    ("key", 4),
    ("key", 5),
    ("jwt", 0),
    ("jwt", 1),
    ("session", 0),
    ("session", 1),
    ("session", 2),
    ("unknown", 0),
]
# Every event as a value, requests three times over and the clock twice, so a sequence is
# mostly requests and time passing, with changes in between.
ALL_EVENTS: list[tuple[Any, ...]] = [
    *(("request", credential) for credential in CREDENTIALS * 3),
    *(("advance", seconds) for seconds in [0.5, 1.0, 4.9, 5.0, 10.0, 19.0, 30.0] * 2),
    *(("revoke", index) for index in range(6)),
    *(("rotate", index, grace) for index in range(6) for grace in (0, 5, 25)),
    *(("logout", index) for index in range(3)),
    *(("disable", workspace) for workspace in ("ws_a", "ws_b")),
    *(
        ("limit", workspace, policy)
        for workspace in ("ws_a", "ws_b")
        for policy in (None, RateLimitPolicy(2, 10), RateLimitPolicy(50, 1))
    ),
    *(("keyring", kids) for kids in [("k1",), ("k2",), ("k1", "k2"), ("k2", "k1")]),
    *(
        ("identity_limit", policy)
        for policy in (None, RateLimitPolicy(1, 10), RateLimitPolicy(50, 1))
    ),
    ("identity_delete",),
]
EVENTS = st.sampled_from(ALL_EVENTS)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(EVENTS, min_size=4, max_size=60))
# Sequences a random search may take long to hit, kept as fixed cases: a credential expiring
# between two replays (key, portal session, JWT), and a rotation's grace running out.
@example([("request", ("key", 1)), ("advance", 19.0), ("advance", 1.0), ("request", ("key", 1))])
@example([("request", ("session", 0)), *[("advance", 10.0)] * 4, ("request", ("session", 0))])
@example([("request", ("jwt", 0)), *[("advance", 30.0)] * 2, ("request", ("jwt", 0))])
@example([("request", ("key", 0)), ("rotate", 0, 5), ("advance", 5.0), ("request", ("key", 0))])
# A key refused by its own limit (3/10) while its workspace (4/10) still has room, which
# another credential of the workspace then gets.
@example([*[("request", ("key", 3))] * 4, ("request", ("jwt", 0)), ("request", ("key", 3))])
# Two keys of one identity sharing its 3/10; its limit tightened, then it is deleted.
@example([*[("request", ("key", 4)), ("request", ("key", 5))] * 2, ("request", ("key", 3))])
@example(
    [("request", ("key", 4)), ("identity_limit", RateLimitPolicy(1, 10)), ("request", ("key", 5))]
)
@example([("request", ("key", 4)), ("identity_delete",), ("request", ("key", 4))])
# A portal session refused by its own limit (2/10), then admitted once it has room again.
@example([*[("request", ("session", 2))] * 3, ("advance", 5.0), ("request", ("session", 2))])
def test_the_cached_path_answers_exactly_as_the_uncached_flow(events: list[Any]) -> None:
    seed = SEED
    cached, plain = make_side(seed, cached=True), make_side(seed, cached=False)
    for step, event in enumerate(events):
        expected = apply(plain, seed, event)
        actual = apply(cached, seed, event)
        assert actual == expected, f"step {step}: {event}"


SEED = make_seed()


def test_the_property_sees_replays_not_only_misses() -> None:
    # Guard against a vacuous property: the same events do replay on the cached side.
    side = make_side(SEED, cached=True)
    for _ in range(3):
        present(side, SEED, ("key", 0))
    assert len(side.gate.routes.default._replay) == 1  # type: ignore[arg-type]


# --- the less usual replays ---------------------------------------------------------------------


class AwaitedLimiter:
    """A limiter with only the async twin (as Redis is): the replay must await it."""

    def __init__(self, inner: MemoryRateLimiter) -> None:
        self.inner = inner
        self.failure: Exception | None = None

    async def ahit(self, bucket: str, policy: RateLimitPolicy) -> RateLimitDecision:
        if self.failure is not None:
            raise self.failure
        return self.inner.hit(bucket, policy)

    async def ahit_levels(self, levels: Sequence[Level], /) -> tuple[RateLimitDecision, ...]:
        if self.failure is not None:
            raise self.failure
        return self.inner.hit_levels(levels)


def awaited_world(**settings: Any) -> tuple[World, Authenticator, AwaitedLimiter]:
    world = make_world(limit=RateLimitPolicy(2, 60), **settings)
    limiter = AwaitedLimiter(MemoryRateLimiter(clock_us=world.clock.us))
    fallback = MemoryRateLimiter(clock_us=world.clock.us)
    authenticator = Authenticator(
        world.authenticator.settings,
        clock=world.clock,
        abackends=AsyncBackends(store=world.cache, limiter=limiter, fallback_limiter=fallback),
    )
    return world, authenticator, limiter


def test_an_awaited_limiter_decides_every_replay() -> None:
    world, authenticator, _ = awaited_world()

    async def run() -> list[Authenticated]:
        first = await authenticator.aauthenticate(bearer(world.key))
        second = await authenticator.aauthenticate(bearer(world.key))
        with pytest.raises(RateLimitedError):
            await authenticator.aauthenticate(bearer(world.key))
        return [first, second]

    first, second = asyncio.run(run())
    assert (first.replayed, second.replayed) == (False, True)
    assert authenticator.replay_inline(bearer(world.key)) is None  # no in-process limiter


def test_an_awaited_limiter_failing_is_503_or_the_fallback() -> None:
    for policy, fails in (
        (LimiterFailurePolicy.FAIL_CLOSED, True),
        (LimiterFailurePolicy.LOCAL_FALLBACK, False),
    ):
        world, authenticator, limiter = awaited_world(limiter_failure=policy)

        async def run(authenticator: Authenticator = authenticator, world: World = world) -> None:
            await authenticator.aauthenticate(bearer(world.key))
            await authenticator.aauthenticate(bearer(world.key))

        asyncio.run(run())
        limiter.failure = UnavailableError("down")
        replay = authenticator.aauthenticate(bearer(world.key))
        if fails:
            with pytest.raises(UnavailableError):
                asyncio.run(replay)
        else:
            assert asyncio.run(replay).replayed


def test_an_in_process_limiter_failing_inline_is_answered_inline_by_the_failure_policy() -> None:
    world = make_world()
    asyncio.run(world.authenticator.aauthenticate(bearer(world.key)))
    world.limiter.failure = UnavailableError("down")
    decisions = world.limiter.decisions
    with pytest.raises(UnavailableError):  # fail-closed, decided where the limiter was asked
        world.authenticator.replay_inline(bearer(world.key))
    assert world.limiter.decisions == decisions + 1  # asked once, never a second time
    with pytest.raises(UnavailableError):
        asyncio.run(world.authenticator.aauthenticate(bearer(world.key)))


def test_an_in_process_limiter_failing_inline_goes_to_the_fallback_inline() -> None:
    world = make_world(limiter_failure=LimiterFailurePolicy.LOCAL_FALLBACK)
    fallback = MemoryRateLimiter(clock_us=world.clock.us)
    authenticator = Authenticator(
        world.authenticator.settings,
        clock=world.clock,
        abackends=AsyncBackends(
            store=world.cache, limiter=world.limiter, fallback_limiter=fallback
        ),
    )
    asyncio.run(authenticator.aauthenticate(bearer(world.key)))
    world.limiter.failure = UnavailableError("down")
    decisions = world.limiter.decisions
    inline = authenticator.replay_inline(bearer(world.key))
    assert isinstance(inline, Authenticated)
    assert inline.replayed
    assert inline.rate_limit is not None
    assert inline.rate_limit.limit == 1000  # the workspace's policy, decided by the fallback
    assert world.limiter.decisions == decisions + 1


def test_an_unlimited_workspace_replays_without_a_decision() -> None:
    world = make_world(default_rate_limit=None)
    world.cache.set_rate_limit(WS, None, now=world.clock(), actor=OPERATOR_ACTOR)
    world.authenticator.authenticate(bearer(world.key))
    again = world.authenticator.authenticate(bearer(world.key))
    assert (again.rate_limit, again.replayed) == (None, True)
    asyncio.run(world.authenticator.aauthenticate(bearer(world.key)))  # the async side's own table
    inline = asyncio.run(world.authenticator.aauthenticate(bearer(world.key)))
    assert (inline.rate_limit, inline.replayed) == (None, True)
    assert world.limiter.decisions == 0


def test_two_credentials_never_replay() -> None:
    world = make_world()
    world.authenticator.authenticate(bearer(world.key))
    with pytest.raises(DuplicateCredentialError):
        world.authenticator.authenticate([*bearer(world.key), *bearer(world.key)])
    assert world.authenticator.replay_inline([*bearer(world.key), *bearer(world.key)]) is None
