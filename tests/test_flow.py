"""The flow, written once, driven by the sync and the async driver on the same cases."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import pytest

import authcore.authenticator
import authcore.flow
import authcore.replay
from authcore.audit import audit_event
from authcore.credentials import CredentialSettings
from authcore.errors import (
    ConfigurationError,
    InvalidCredentialError,
    MalformedCredentialError,
    MissingCredentialError,
    RateLimitedError,
    UnavailableError,
    WorkspaceDisabledError,
)
from authcore.flow import (
    AsyncBackends,
    Authenticated,
    Authenticator,
    AuthSettings,
    Backends,
    CheckRateLimit,
    LookupRootKey,
    LookupWorkspace,
    authentication_flow,
)
from authcore.keyring import Keyring, SigningSecret, VerifiedClaims
from authcore.principal import Source
from authcore.ratelimit import (
    Level,
    LimiterFailurePolicy,
    RateLimitDecision,
    RateLimitPolicy,
    identity_bucket,
    key_bucket,
    session_bucket,
)
from authcore.records import IdentityRecord, PortalSessionRecord, RootKeyRecord, WorkspaceRecord
from authcore.testing import (
    MemoryRateLimiter,
    MemoryStore,
    SettableClock,
    issue_portal_session,
    issue_root_key,
    make_workspace,
)
from authcore.tokens import Secret

NOW = 1_800_000_000.0
SECRET = Secret("s" * 40)


class Harness:
    """A store, a limiter, a clock and a keyring, plus helpers to run either driver."""

    def __init__(self, **settings: Any) -> None:
        self.clock = SettableClock(NOW)
        self.store = MemoryStore()
        self.limiter = MemoryRateLimiter(clock_us=self.clock.us)
        self.keyring = Keyring([SigningSecret("k1", SECRET)], signing_kid="k1")
        settings.setdefault("keyring", self.keyring)
        self.settings = AuthSettings(**settings)
        make_workspace(self.store, "ws_1")

    def authenticator(self, store: Any = None, limiter: Any = None) -> Authenticator:
        # Any: the tests pass broken stores and limiters on purpose.
        store = store or self.store
        limiter = limiter or self.limiter
        fallback = MemoryRateLimiter(clock_us=self.clock.us)
        return Authenticator(
            self.settings,
            clock=self.clock,
            backends=Backends(store, limiter, fallback),
            abackends=AsyncBackends(store, limiter, fallback),
        )


def run_sync(auth: Authenticator, values: list[str], cookie: str | None = None) -> Authenticated:
    return auth.authenticate(values, cookie)


def run_async(auth: Authenticator, values: list[str], cookie: str | None = None) -> Authenticated:
    return asyncio.run(auth.aauthenticate(values, cookie))


Driver = Callable[[Authenticator, list[str], str | None], Authenticated]
drivers = pytest.mark.parametrize("drive", [run_sync, run_async], ids=["sync", "async"])


@drivers
def test_valid_root_key_gives_principal_and_decision(drive: Driver) -> None:
    h = Harness()
    record, key = issue_root_key(h.store, "ws_1", ["keys.read"], name="ci")
    result = drive(h.authenticator(), [f"Bearer {key.reveal()}"], None)
    assert result.principal.workspace_id == "ws_1"
    assert result.principal.subject.id == record.id
    assert result.principal.subject.type == "root_key"
    assert result.principal.source is Source.ROOT_KEY
    assert result.principal.can("keys.read")
    assert result.rate_limit is not None
    assert result.rate_limit.allowed


@drivers
def test_valid_portal_session_from_cookie(drive: Driver) -> None:
    h = Harness(credentials=CredentialSettings.portal())
    _, token = issue_portal_session(h.store, "ws_1", "end-user-7", ["keys.read"])
    result = drive(h.authenticator(), [], token.reveal())
    assert result.principal.subject.type == "identity"
    assert result.principal.subject.id == "end-user-7"
    assert result.principal.source is Source.PORTAL_SESSION


@drivers
def test_valid_jwt_gives_user_principal(drive: Driver) -> None:
    h = Harness()
    token = h.keyring.mint(
        subject="u1", workspace_id="ws_1", permissions=["keys.*"], now=int(NOW), name="Ada"
    )
    result = drive(h.authenticator(), [f"Bearer {token.reveal()}"], None)
    assert result.principal.subject.type == "user"
    assert result.principal.subject.name == "Ada"
    assert result.principal.source is Source.JWT
    assert result.principal.can("keys.create")


@drivers
def test_no_credential_is_missing(drive: Driver) -> None:
    with pytest.raises(MissingCredentialError):
        drive(Harness().authenticator(), [], None)


@drivers
def test_malformed_is_400(drive: Driver) -> None:
    with pytest.raises(MalformedCredentialError):
        drive(Harness().authenticator(), ["Bearer \x00"], None)


@drivers
@pytest.mark.parametrize("case", ["unknown", "revoked", "expired", "truncated", "extended"])
def test_every_invalid_root_key_looks_the_same(drive: Driver, case: str) -> None:
    h = Harness()
    if case == "unknown":
        value = "ak_" + "x" * 43
    else:
        _, key = issue_root_key(
            h.store,
            "ws_1",
            revoked=case == "revoked",
            expires_at=int(NOW) if case == "expired" else None,
        )
        value = {"truncated": key.reveal()[:-1], "extended": key.reveal() + "x"}.get(
            case, key.reveal()
        )
    with pytest.raises(InvalidCredentialError) as info:
        drive(h.authenticator(), [f"Bearer {value}"], None)
    assert info.value.message == InvalidCredentialError.message
    assert info.value.status == 401


@drivers
def test_key_expiring_one_second_later_still_works(drive: Driver) -> None:
    h = Harness()
    _, key = issue_root_key(h.store, "ws_1", expires_at=int(NOW) + 1)
    assert drive(h.authenticator(), [f"Bearer {key.reveal()}"], None).principal


@drivers
def test_expired_portal_session_is_invalid(drive: Driver) -> None:
    h = Harness(credentials=CredentialSettings.portal())
    _, token = issue_portal_session(h.store, "ws_1", "u", ttl=10)
    h.clock.advance(10)
    with pytest.raises(InvalidCredentialError):
        drive(h.authenticator(), [], token.reveal())


@drivers
def test_disabled_workspace_is_403(drive: Driver) -> None:
    h = Harness()
    make_workspace(h.store, "ws_off", disabled=True)
    _, key = issue_root_key(h.store, "ws_off")
    with pytest.raises(WorkspaceDisabledError) as info:
        drive(h.authenticator(), [f"Bearer {key.reveal()}"], None)
    assert info.value.status == 403


@drivers
def test_key_of_a_missing_workspace_is_invalid(drive: Driver) -> None:
    h = Harness()
    _, key = issue_root_key(h.store, "ws_gone")
    with pytest.raises(InvalidCredentialError):
        drive(h.authenticator(), [f"Bearer {key.reveal()}"], None)


@drivers
def test_rate_limit_uses_the_workspace_policy_then_denies(drive: Driver) -> None:
    h = Harness()
    make_workspace(h.store, "ws_small", rate_limit=RateLimitPolicy(limit=2, period=60))
    _, key = issue_root_key(h.store, "ws_small")
    auth = h.authenticator()
    header = [f"Bearer {key.reveal()}"]
    first = drive(auth, header, None)
    assert first.rate_limit is not None
    assert first.rate_limit.limit == 2
    assert first.rate_limit.remaining == 1
    drive(auth, header, None)
    with pytest.raises(RateLimitedError) as info:
        drive(auth, header, None)
    assert info.value.decision.retry_after >= 1


@drivers
def test_no_policy_anywhere_means_unlimited(drive: Driver) -> None:
    h = Harness(default_rate_limit=None)
    _, key = issue_root_key(h.store, "ws_1")
    assert drive(h.authenticator(), [f"Bearer {key.reveal()}"], None).rate_limit is None


class BrokenStore(MemoryStore):
    """A store whose backing system is down: every lookup raises a driver-level error."""

    def find_root_key(self, digest: bytes, /) -> RootKeyRecord | None:
        raise ConnectionError("db at 10.0.0.1 refused, password=hunter2")

    async def afind_root_key(self, digest: bytes, /) -> RootKeyRecord | None:
        raise ConnectionError("db at 10.0.0.1 refused, password=hunter2")


class GarbageStore(MemoryStore):
    """A store that answers with something that is not a record."""

    def find_root_key(self, digest: bytes, /) -> RootKeyRecord | None:
        return "garbage"  # type: ignore[return-value]  # the broken store under test

    async def afind_root_key(self, digest: bytes, /) -> RootKeyRecord | None:
        return "garbage"  # type: ignore[return-value]  # the broken store under test


@drivers
@pytest.mark.parametrize("store_class", [BrokenStore, GarbageStore])
def test_store_failure_is_unavailable_without_the_message(
    drive: Driver, store_class: type[MemoryStore]
) -> None:
    h = Harness()
    store = store_class()
    make_workspace(store, "ws_1")
    _, key = issue_root_key(store, "ws_1")
    with pytest.raises(UnavailableError) as info:
        drive(h.authenticator(store=store), [f"Bearer {key.reveal()}"], None)
    assert "hunter2" not in str(info.value)
    assert "hunter2" not in repr(info.value)


class DownLimiter:
    def hit(self, bucket: str, policy: RateLimitPolicy) -> RateLimitDecision:
        raise TimeoutError("redis timed out")

    async def ahit(self, bucket: str, policy: RateLimitPolicy) -> RateLimitDecision:
        raise TimeoutError("redis timed out")

    def hit_levels(self, levels: Sequence[Level], /) -> tuple[RateLimitDecision, ...]:
        raise TimeoutError("redis timed out")

    async def ahit_levels(self, levels: Sequence[Level], /) -> tuple[RateLimitDecision, ...]:
        raise TimeoutError("redis timed out")


@drivers
def test_limiter_down_fails_closed_by_default(drive: Driver) -> None:
    h = Harness()
    _, key = issue_root_key(h.store, "ws_1")
    with pytest.raises(UnavailableError):
        drive(h.authenticator(limiter=DownLimiter()), [f"Bearer {key.reveal()}"], None)


@drivers
def test_limiter_down_uses_bounded_local_fallback_when_configured(drive: Driver) -> None:
    h = Harness(
        limiter_failure=LimiterFailurePolicy.LOCAL_FALLBACK,
        default_rate_limit=RateLimitPolicy(limit=1, period=60),
    )
    _, key = issue_root_key(h.store, "ws_1")
    auth = h.authenticator(limiter=DownLimiter())
    assert drive(auth, [f"Bearer {key.reveal()}"], None).rate_limit is not None
    with pytest.raises(RateLimitedError):
        drive(auth, [f"Bearer {key.reveal()}"], None)


@drivers
def test_jwt_without_keyring_is_invalid(drive: Driver) -> None:
    h = Harness(keyring=None)
    token = h.keyring.mint(subject="u", workspace_id="ws_1", permissions=[], now=int(NOW))
    with pytest.raises(InvalidCredentialError):
        drive(h.authenticator(), [f"Bearer {token.reveal()}"], None)


class CountingTokenCache:
    def __init__(self) -> None:
        self.entries: dict[str, VerifiedClaims] = {}
        self.hits = 0

    def get(self, token: str, now: float, /) -> VerifiedClaims | None:
        claims = self.entries.get(token)
        if claims is not None and now < claims.expires_at:
            self.hits += 1
            return claims
        return None

    def put(self, token: str, claims: VerifiedClaims, /) -> None:
        self.entries[token] = claims


@drivers
def test_token_cache_is_consulted_before_verifying(drive: Driver) -> None:
    cache = CountingTokenCache()
    h = Harness(token_cache=cache)
    token = h.keyring.mint(subject="u", workspace_id="ws_1", permissions=[], now=int(NOW))
    auth = h.authenticator()
    drive(auth, [f"Bearer {token.reveal()}"], None)
    drive(auth, [f"Bearer {token.reveal()}"], None)
    assert cache.hits == 1


def test_flow_yields_its_needs_in_order() -> None:
    h = Harness()
    record, key = issue_root_key(h.store, "ws_1")
    credential = h.settings.credentials
    from authcore.credentials import extract_credential

    found = extract_credential([f"Bearer {key.reveal()}"], None, credential)
    assert found is not None
    flow = authentication_flow(found, h.settings, NOW)
    need = next(flow)
    assert isinstance(need, LookupRootKey)
    need = flow.send(record)
    assert need == LookupWorkspace("ws_1")
    need = flow.send(WorkspaceRecord(id="ws_1", name="w"))
    assert isinstance(need, CheckRateLimit)
    decision = RateLimitDecision(allowed=True, limit=600, remaining=599, reset=1, retry_after=0)
    with pytest.raises(StopIteration) as stop:
        flow.send(decision)
    assert stop.value.value.rate_limit == decision


def test_flow_rejects_a_credential_kind_the_settings_do_not_accept() -> None:
    h = Harness(credentials=CredentialSettings.portal())
    _, key = issue_root_key(h.store, "ws_1")
    from authcore.credentials import Credential, CredentialKind

    flow = authentication_flow(Credential(CredentialKind.ROOT_KEY, key), h.settings, NOW)
    with pytest.raises(InvalidCredentialError):
        next(flow)


def test_limiter_answering_garbage_is_unavailable() -> None:
    class Garbage:
        def hit(self, bucket: str, policy: RateLimitPolicy) -> object:
            return 42

    h = Harness()
    _, key = issue_root_key(h.store, "ws_1")
    with pytest.raises(UnavailableError):
        h.authenticator(limiter=Garbage()).authenticate([f"Bearer {key.reveal()}"])


def test_authenticator_needs_backends() -> None:
    with pytest.raises(ConfigurationError):
        Authenticator(AuthSettings(), clock=SettableClock())


def test_sync_only_authenticator_refuses_async_and_vice_versa() -> None:
    store = MemoryStore()
    sync_only = Authenticator(AuthSettings(), clock=SettableClock(), backends=Backends(store))
    async_only = Authenticator(
        AuthSettings(), clock=SettableClock(), abackends=AsyncBackends(store)
    )
    with pytest.raises(ConfigurationError):
        asyncio.run(sync_only.aauthenticate([]))
    with pytest.raises(ConfigurationError):
        async_only.authenticate([])


@drivers
def test_missing_limiter_is_unavailable(drive: Driver) -> None:
    h = Harness()
    _, key = issue_root_key(h.store, "ws_1")
    auth = Authenticator(
        h.settings,
        clock=h.clock,
        backends=Backends(h.store),
        abackends=AsyncBackends(h.store),
    )
    with pytest.raises(UnavailableError):
        drive(auth, [f"Bearer {key.reveal()}"], None)


@drivers
def test_missing_fallback_limiter_is_unavailable(drive: Driver) -> None:
    h = Harness(limiter_failure=LimiterFailurePolicy.LOCAL_FALLBACK)
    _, key = issue_root_key(h.store, "ws_1")
    down = DownLimiter()
    auth = Authenticator(
        h.settings,
        clock=h.clock,
        backends=Backends(h.store, down),
        abackends=AsyncBackends(h.store, down),
    )
    with pytest.raises(UnavailableError):
        drive(auth, [f"Bearer {key.reveal()}"], None)


def test_bad_realm_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        AuthSettings(realm='api", error="x')


@drivers
def test_portal_session_record_of_the_wrong_type_is_unavailable(drive: Driver) -> None:
    class WrongType(MemoryStore):
        def find_portal_session(self, digest: bytes, /) -> PortalSessionRecord | None:
            return WorkspaceRecord(id="x", name="x")  # type: ignore[return-value]  # wrong on purpose

        async def afind_portal_session(self, digest: bytes, /) -> PortalSessionRecord | None:
            return WorkspaceRecord(id="x", name="x")  # type: ignore[return-value]  # wrong on purpose

    h = Harness(credentials=CredentialSettings.portal())
    store = WrongType()
    make_workspace(store, "ws_1")
    with pytest.raises(UnavailableError):
        drive(h.authenticator(store=store), [], "pt_" + "a" * 43)


def test_audit_event_actor_is_the_principal_subject() -> None:
    h = Harness()
    _, key = issue_root_key(h.store, "ws_1", name="deploy")
    principal = h.authenticator().authenticate([f"Bearer {key.reveal()}"]).principal
    event = audit_event(principal, "key.create", [], now=NOW, request_id="req-1")
    assert event.actor == principal.subject
    assert event.workspace_id == "ws_1"
    assert event.source == "root_key"


@drivers
def test_cached_token_is_not_trusted_after_its_secret_is_removed(drive: Driver) -> None:
    cache = CountingTokenCache()
    old = Harness(token_cache=cache)
    token = old.keyring.mint(subject="u", workspace_id="ws_1", permissions=[], now=int(NOW))
    drive(old.authenticator(), [f"Bearer {token.reveal()}"], None)  # verified and cached
    rotated = Harness(token_cache=cache, keyring=Keyring([SigningSecret("k2", Secret("t" * 40))]))
    with pytest.raises(InvalidCredentialError):
        drive(rotated.authenticator(), [f"Bearer {token.reveal()}"], None)
    assert cache.hits == 1  # the cache answered; the flow refused what it answered


# --- a root key's own rate limit, on top of its workspace's ---------------------------------


class RecordingLimiter(MemoryRateLimiter):
    """A real memory limiter that records the buckets of each decision, in order."""

    def __init__(self, clock: SettableClock) -> None:
        super().__init__(clock_us=clock.us)
        self.buckets: list[tuple[str, ...]] = []

    def hit(self, bucket: str, policy: RateLimitPolicy) -> RateLimitDecision:
        self.buckets.append((bucket,))
        return super().hit(bucket, policy)

    def hit_levels(self, levels: Sequence[Level], /) -> tuple[RateLimitDecision, ...]:
        self.buckets.append(tuple(bucket for bucket, _ in levels))
        return super().hit_levels(levels)


def _limited(
    h: Harness, workspace: RateLimitPolicy | None, key: RateLimitPolicy | None
) -> tuple[RootKeyRecord, list[str]]:
    make_workspace(h.store, "ws_lim", rate_limit=workspace)
    record, secret = issue_root_key(h.store, "ws_lim", ["keys.read"], rate_limit=key)
    return record, [f"Bearer {secret.reveal()}"]


@drivers
def test_a_keys_own_limit_refuses_it_without_spending_the_workspaces_allowance(
    drive: Driver,
) -> None:
    h = Harness()
    record, header = _limited(h, RateLimitPolicy(10, 60), RateLimitPolicy(2, 60))
    _, other = issue_root_key(h.store, "ws_lim", ["keys.read"])
    auth = h.authenticator()
    admitted = [drive(auth, header, None).rate_limit for _ in range(2)]
    assert [(d.limit, d.remaining) for d in admitted if d is not None] == [(2, 1), (2, 0)]
    for _ in range(5):
        with pytest.raises(RateLimitedError) as info:
            drive(auth, header, None)
        # The key's own decision refused, attributed to the key for usage counting.
        assert info.value.decision.limit == 2
        assert (info.value.workspace_id, info.value.credential_id) == ("ws_lim", record.id)
    # The workspace saw the 2 admitted requests only: 10 - 2 - 1 left after this one.
    beside = drive(auth, [f"Bearer {other.reveal()}"], None).rate_limit
    assert beside is not None
    assert (beside.limit, beside.remaining) == (10, 7)


@drivers
def test_the_workspace_limit_still_binds_a_key_with_a_looser_own_limit(drive: Driver) -> None:
    h = Harness()
    record, header = _limited(h, RateLimitPolicy(2, 60), RateLimitPolicy(10, 60))
    auth = h.authenticator()
    drive(auth, header, None)
    drive(auth, header, None)
    with pytest.raises(RateLimitedError) as info:
        drive(auth, header, None)
    assert info.value.decision.limit == 2  # the workspace's decision refused
    assert (info.value.workspace_id, info.value.credential_id) == ("ws_lim", record.id)
    # All or nothing: the refused request charged no level, so the key spent only the 2
    # admitted requests (and this probe).
    left = h.limiter.hit(key_bucket("ws_lim", record.id), RateLimitPolicy(10, 60))
    assert left.remaining == 10 - 2 - 1


@drivers
@pytest.mark.parametrize(
    ("workspace", "key", "sent"),
    [
        # (limit, period) pairs; "sent" is which decision's headers go out.
        ((5, 60), (3, 60), "key"),  # the key has fewer remaining
        ((3, 60), (5, 60), "workspace"),  # the workspace has fewer remaining
        ((2, 60), (2, 10), "workspace"),  # a tie on remaining: the later reset (30 s vs 5 s)
        ((2, 10), (2, 60), "key"),
    ],
)
def test_the_tighter_decisions_headers_are_sent(
    drive: Driver, workspace: tuple[int, int], key: tuple[int, int], sent: str
) -> None:
    h = Harness()
    _, header = _limited(h, RateLimitPolicy(*workspace), RateLimitPolicy(*key))
    decision = drive(h.authenticator(), header, None).rate_limit
    assert decision is not None
    limit, period = workspace if sent == "workspace" else key
    assert (decision.limit, decision.remaining) == (limit, limit - 1)
    assert decision.reset == period // limit  # one emission interval until full again


@drivers
def test_a_key_limit_applies_in_a_workspace_without_one(drive: Driver) -> None:
    h = Harness(default_rate_limit=None)
    _, header = _limited(h, None, RateLimitPolicy(1, 60))
    auth = h.authenticator()
    decision = drive(auth, header, None).rate_limit
    assert decision is not None
    assert (decision.limit, decision.remaining) == (1, 0)
    with pytest.raises(RateLimitedError):
        drive(auth, header, None)


@drivers
def test_a_key_and_its_workspace_are_decided_in_one_call(drive: Driver) -> None:
    h = Harness()
    record, header = _limited(h, RateLimitPolicy(10, 60), RateLimitPolicy(1, 60))
    _, other = issue_root_key(h.store, "ws_lim", ["keys.read"])
    limiter = RecordingLimiter(h.clock)
    auth = h.authenticator(limiter=limiter)
    drive(auth, header, None)
    both = (key_bucket("ws_lim", record.id), "ws_lim")
    assert limiter.buckets == [both]
    with pytest.raises(RateLimitedError):
        drive(auth, header, None)
    assert limiter.buckets[1:] == [both]
    # Refused by the key: the workspace was not charged for it (10 - 1 - this one).
    beside = drive(auth, [f"Bearer {other.reveal()}"], None).rate_limit
    assert beside is not None
    assert beside.remaining == 10 - 1 - 1


@drivers
def test_jwts_portal_sessions_and_keys_without_a_limit_take_one_decision(drive: Driver) -> None:
    h = Harness(credentials=CredentialSettings.api())
    limiter = RecordingLimiter(h.clock)
    _, key = issue_root_key(h.store, "ws_1", ["keys.read"])
    token = h.keyring.mint(subject="u1", workspace_id="ws_1", permissions=[], now=int(NOW))
    for header in ([f"Bearer {key.reveal()}"], [f"Bearer {token.reveal()}"]):
        result = drive(h.authenticator(limiter=limiter), header, None)
        assert result.conclusion is not None
        assert result.conclusion.credential_policy is None
    portal = Harness(credentials=CredentialSettings.portal())
    _, session = issue_portal_session(portal.store, "ws_1", "end-user-7", ["keys.read"])
    portal_limiter = RecordingLimiter(portal.clock)
    result = drive(portal.authenticator(limiter=portal_limiter), [], session.reveal())
    assert result.conclusion is not None
    assert result.conclusion.credential_policy is None
    assert limiter.buckets == [("ws_1",), ("ws_1",)]
    assert portal_limiter.buckets == [("ws_1",)]


class CountingDownLimiter(DownLimiter):
    def __init__(self) -> None:
        self.calls = 0

    def hit(self, bucket: str, policy: RateLimitPolicy) -> RateLimitDecision:
        self.calls += 1
        return super().hit(bucket, policy)

    async def ahit(self, bucket: str, policy: RateLimitPolicy) -> RateLimitDecision:
        self.calls += 1
        return await super().ahit(bucket, policy)

    def hit_levels(self, levels: Sequence[Level], /) -> tuple[RateLimitDecision, ...]:
        self.calls += 1
        return super().hit_levels(levels)

    async def ahit_levels(self, levels: Sequence[Level], /) -> tuple[RateLimitDecision, ...]:
        self.calls += 1
        return await super().ahit_levels(levels)


@drivers
def test_a_limiter_outage_fails_a_key_with_its_own_limit_closed(drive: Driver) -> None:
    h = Harness()
    record, header = _limited(h, RateLimitPolicy(10, 60), RateLimitPolicy(2, 60))
    with pytest.raises(UnavailableError) as info:
        drive(h.authenticator(limiter=CountingDownLimiter()), header, None)
    assert (info.value.workspace_id, info.value.credential_id) == ("ws_lim", record.id)


@drivers
def test_a_limiter_outage_sends_both_decisions_to_the_fallback(drive: Driver) -> None:
    h = Harness(limiter_failure=LimiterFailurePolicy.LOCAL_FALLBACK)
    _, header = _limited(h, RateLimitPolicy(10, 60), RateLimitPolicy(2, 60))
    down = CountingDownLimiter()
    auth = h.authenticator(limiter=down)
    first = drive(auth, header, None).rate_limit
    assert first is not None
    assert (first.limit, first.remaining) == (2, 1)  # the fallback's key decision, tighter
    assert down.calls == 1  # one call for both levels, not asked again
    drive(auth, header, None)
    with pytest.raises(RateLimitedError) as info:
        drive(auth, header, None)
    assert info.value.decision.limit == 2


def test_the_names_that_moved_out_of_flow_are_still_importable_from_it() -> None:
    assert authcore.flow.Authenticator is authcore.authenticator.Authenticator
    for name in ("Conclusion", "ConclusionSource", "ConclusionTable"):
        assert getattr(authcore.flow, name) is getattr(authcore.replay, name)
    assert all(hasattr(authcore.flow, name) for name in authcore.flow.__all__)
    assert not hasattr(authcore.flow, "Authenticators")


@drivers
def test_a_portal_sessions_own_limit_is_a_level_of_its_own(drive: Driver) -> None:
    h = Harness(credentials=CredentialSettings.portal())
    record, session = issue_portal_session(
        h.store, "ws_1", "idt_1", ["keys.read"], rate_limit=RateLimitPolicy(3, 60)
    )
    limiter = RecordingLimiter(h.clock)
    auth = h.authenticator(limiter=limiter)
    for remaining in (2, 1, 0):
        decision = drive(auth, [], session.reveal()).rate_limit
        assert decision is not None
        assert (decision.limit, decision.remaining) == (3, remaining)
    with pytest.raises(RateLimitedError) as info:
        drive(auth, [], session.reveal())
    assert (info.value.workspace_id, info.value.credential_id) == ("ws_1", record.id)
    both = (session_bucket("ws_1", record.id), "ws_1")
    assert limiter.buckets == [both] * 4


@drivers
def test_a_portal_session_counts_against_its_identitys_shared_limit(drive: Driver) -> None:
    h = Harness(credentials=CredentialSettings.portal())
    h.store.put_identity(
        IdentityRecord(
            id="idt_2", workspace_id="ws_1", external_id="cust-2", rate_limit=RateLimitPolicy(2, 60)
        )
    )
    _, session = issue_portal_session(h.store, "ws_1", "idt_2", ["keys.read"])
    limiter = RecordingLimiter(h.clock)
    auth = h.authenticator(limiter=limiter)
    for remaining in (1, 0):
        decision = drive(auth, [], session.reveal()).rate_limit
        assert decision is not None
        assert (decision.limit, decision.remaining) == (2, remaining)
    with pytest.raises(RateLimitedError):
        drive(auth, [], session.reveal())
    assert limiter.buckets == [(identity_bucket("ws_1", "idt_2"), "ws_1")] * 3
