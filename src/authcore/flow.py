"""The authentication flow, written once: credential -> verifier -> principal -> rate limit.

:func:`authentication_flow` is a generator that *yields* what it needs from the outside world
(the record for digest D, the workspace W, a rate-limit decision for W) and receives the
answers, like ``httpx``'s auth flow. :func:`run_flow` drives it synchronously (WSGI, Flask),
:func:`arun_flow` asynchronously (ASGI). Neither driver decides anything: they only perform the
I/O a need names, turning any failure of a backing system into
:class:`~authcore.errors.UnavailableError` thrown back into the flow.

:class:`Authenticator` bundles settings, store, limiter and clock for adapters.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Awaitable, Callable, Generator, Sequence
from typing import Final, NamedTuple, Protocol, TypeAlias, TypeVar, cast, runtime_checkable

import attrs

from authcore.credentials import Credential, CredentialKind, CredentialSettings, extract_credential
from authcore.errors import (
    AuthcoreError,
    ConfigurationError,
    InvalidCredentialError,
    MissingCredentialError,
    RateLimitedError,
    UnavailableError,
    WorkspaceDisabledError,
)
from authcore.keyring import Keyring, VerifiedClaims
from authcore.principal import (
    Principal,
    check_workspace,
    principal_from_claims,
    principal_from_portal_session,
    principal_from_root_key,
)
from authcore.ratelimit import (
    AsyncRateLimiter,
    LimiterFailurePolicy,
    RateLimitDecision,
    RateLimiter,
    RateLimitPolicy,
    key_bucket,
    tighter,
)
from authcore.records import PortalSessionRecord, RootKeyRecord, WorkspaceRecord
from authcore.store import AsyncCredentialStore, CredentialStore
from authcore.tokens import digest
from authcore.usage import ALLOWED

__all__ = [
    "AsyncBackends",
    "AuthSettings",
    "Authenticated",
    "Authenticator",
    "Backends",
    "CheckRateLimit",
    "Conclusion",
    "Flow",
    "LookupPortalSession",
    "LookupRootKey",
    "LookupWorkspace",
    "Need",
    "ReplaySource",
    "TokenCache",
    "UseFallbackLimiter",
    "VerifiedResults",
    "arun_flow",
    "authentication_flow",
    "rate_limit_step",
    "run_flow",
]

_Record = TypeVar("_Record", RootKeyRecord, PortalSessionRecord, WorkspaceRecord)
_DEFAULT_RATE_LIMIT: Final = RateLimitPolicy(limit=600, period=60)
_REALM: Final = re.compile(r"[A-Za-z0-9 ._-]{1,64}", re.ASCII)


# --- what the flow asks for -------------------------------------------------------------


@attrs.frozen
class LookupRootKey:
    """Need: the root-key record stored under ``digest`` (or None)."""

    digest: bytes = attrs.field(repr=False)


@attrs.frozen
class LookupPortalSession:
    """Need: the portal-session record stored under ``digest`` (or None)."""

    digest: bytes = attrs.field(repr=False)


@attrs.frozen
class LookupWorkspace:
    """Need: the workspace record for ``workspace_id`` (or None)."""

    workspace_id: str


@attrs.frozen
class CheckRateLimit:
    """Need: one atomic limiter decision for ``workspace_id`` under ``policy``.

    ``workspace_id`` names the limiter's bucket: the workspace's id, or for a root key's own
    limit :func:`authcore.ratelimit.key_bucket` of the key's id (which no workspace id equals).
    """

    workspace_id: str
    policy: RateLimitPolicy


@attrs.frozen
class UseFallbackLimiter:
    """Need: the bounded local limiter's decision, after the shared limiter failed.

    ``workspace_id`` names the bucket, as in :class:`CheckRateLimit`.
    """

    workspace_id: str
    policy: RateLimitPolicy


Need: TypeAlias = (
    LookupRootKey | LookupPortalSession | LookupWorkspace | CheckRateLimit | UseFallbackLimiter
)


@attrs.frozen
class Conclusion:
    """What the flow concluded about one credential, replayable until ``valid_until``.

    Everything a later request with the same credential needs in order to skip steps 1-3:
    the principal, the workspace's rate-limit policy (None: unlimited), and the moment the
    conclusion stops being true on its own (the key's or session's expiry, the JWT's ``exp``;
    infinity when it never expires). ``key_id`` is the kid of the secret that verified a JWT
    (a replay checks it is still in the keyring); ``credential_id`` is the root key's or
    portal session's id, by which revocation and rotation find it. ``key_policy`` is a root
    key's own limit (None for a key without one, and always for portal sessions and JWTs); it
    is only ever set together with ``credential_id``. It never holds a secret.
    ``usage_key`` is what an admitted request with this credential counts as in usage
    (workspace id, credential id, ``"allowed"``), built once here rather than per request.
    """

    principal: Principal
    policy: RateLimitPolicy | None
    valid_until: float
    key_id: str | None = None
    credential_id: str | None = None
    key_policy: RateLimitPolicy | None = None
    usage_key: tuple[str, str, str] = attrs.field(init=False, eq=False, repr=False)

    @usage_key.default
    def _usage_key(self) -> tuple[str, str, str]:
        return (self.principal.workspace_id, self.credential_id or "", ALLOWED)


class Authenticated(NamedTuple):
    """The flow's result: the principal and the limiter decision (None when unlimited).

    With two limits (a root key's own and its workspace's) ``rate_limit`` is the tighter
    of the two decisions (:func:`authcore.ratelimit.tighter`), whose headers are sent.

    ``conclusion`` is what a verified-result cache may replay for the same credential;
    ``replayed`` says the answer came from that cache rather than from the whole flow. A named
    tuple (immutable, and cheap to build on every admitted request).
    """

    principal: Principal
    rate_limit: RateLimitDecision | None
    conclusion: Conclusion | None = None
    replayed: bool = False


Flow: TypeAlias = Generator[Need, object, Authenticated]


class VerifiedResults(Protocol):
    """A bounded table of conclusions, kept true by its owner's invalidations.

    Keyed by the SHA-256 digest of the credential's token (the stored digest for root keys
    and portal sessions). ``get`` is a plain read: the caller checks ``valid_until`` against
    its clock. A conclusion is stored only under a ``ticket`` taken before the flow started,
    so one reached from a record that was invalidated meanwhile is never stored; the owner
    also shortens ``valid_until`` to what its own caches promise (their TTLs).
    """

    def get(self, key: bytes, /) -> Conclusion | None: ...

    def ticket(self) -> int: ...

    def put(self, key: bytes, conclusion: Conclusion, ticket: int, now: float, /) -> None: ...


@runtime_checkable
class ReplaySource(Protocol):
    """A store that can keep conclusions (``CachedStore``): one table per authenticator."""

    def verified_results(self) -> VerifiedResults: ...


class TokenCache(Protocol):
    """A bounded cache of verified JWTs, keyed by the whole token, never used past ``exp``."""

    def get(self, token: str, now: float, /) -> VerifiedClaims | None: ...

    def put(self, token: str, claims: VerifiedClaims, /) -> None: ...


def _check_realm(instance: object, attribute: object, value: str) -> None:
    # The realm goes inside a quoted-string in WWW-Authenticate: keep it boring.
    if not _REALM.fullmatch(value):
        raise ConfigurationError("realm must be 1-64 letters, digits, spaces, '.', '_' or '-'")


@attrs.frozen
class AuthSettings:
    """How one route group authenticates.

    ``default_rate_limit`` applies to workspaces with no policy of their own; ``None`` there
    and on the workspace means the workspace is not rate limited.
    """

    credentials: CredentialSettings = attrs.field(factory=CredentialSettings.api)
    keyring: Keyring | None = None
    default_rate_limit: RateLimitPolicy | None = _DEFAULT_RATE_LIMIT
    limiter_failure: LimiterFailurePolicy = LimiterFailurePolicy.FAIL_CLOSED
    token_cache: TokenCache | None = None
    realm: str = attrs.field(default="api", validator=_check_realm)


# --- the flow -----------------------------------------------------------------------------


def _expect(answer: object, kind: type[_Record]) -> _Record | None:
    # A backend that returns something that is neither a record nor None is broken: that is
    # "unavailable", never an admitted request.
    if answer is None or isinstance(answer, kind):
        return answer
    raise UnavailableError("backend returned an unexpected value")


def _verify_jwt(token: str, settings: AuthSettings, now: float) -> VerifiedClaims:
    if settings.keyring is None:
        raise InvalidCredentialError("no JWT keyring configured")
    cache = settings.token_cache
    if cache is not None:
        cached = cache.get(token, now)
        # A token verified by a secret that has since been removed is not trusted any more.
        if cached is not None and cached.key_id in settings.keyring.kids:
            return cached
    claims = settings.keyring.verify(token, now)
    if cache is not None:
        cache.put(token, claims)
    return claims


def _lifetime(
    record: RootKeyRecord | PortalSessionRecord | None,
) -> tuple[str | None, float | None]:
    # The record's id and expiry; principal_from_* has already refused a missing record.
    return (None, None) if record is None else (record.id, record.expires_at)


def _key_policy(record: RootKeyRecord | None) -> RateLimitPolicy | None:
    return None if record is None else record.rate_limit


def authentication_flow(credential: Credential, settings: AuthSettings, now: float) -> Flow:
    """Verify ``credential``, build the principal, and apply the rate limits.

    Yields needs (see :data:`Need`) and returns :class:`Authenticated`.

    Raises:
        InvalidCredentialError: unknown, wrong, expired or revoked (one public answer).
        WorkspaceDisabledError: the principal's workspace is disabled.
        RateLimitedError: the workspace, or the root key's own limit, is over its limit.
        UnavailableError: a store or the limiter is down (per ``limiter_failure``).
    """
    if credential.kind not in settings.credentials.accepts:
        raise InvalidCredentialError(f"{credential.kind.value} not accepted on this route")
    token = credential.secret.reveal()
    key_id: str | None = None
    key_policy: RateLimitPolicy | None = None
    if credential.kind is CredentialKind.ROOT_KEY:
        key_digest = digest(token)
        key_record = _expect((yield LookupRootKey(key_digest)), RootKeyRecord)
        principal = principal_from_root_key(key_record, key_digest, now)
        credential_id, expires_at = _lifetime(key_record)
        key_policy = _key_policy(key_record)
    elif credential.kind is CredentialKind.PORTAL_TOKEN:
        session_digest = digest(token)
        session_record = _expect((yield LookupPortalSession(session_digest)), PortalSessionRecord)
        principal = principal_from_portal_session(session_record, session_digest, now)
        credential_id, expires_at = _lifetime(session_record)
    else:
        claims = _verify_jwt(token, settings, now)
        principal = principal_from_claims(claims)
        credential_id, expires_at, key_id = None, claims.expires_at, claims.key_id

    found = _expect((yield LookupWorkspace(principal.workspace_id)), WorkspaceRecord)
    try:
        workspace = check_workspace(found, principal.workspace_id)
    except WorkspaceDisabledError as exc:
        raise exc.refused(principal.workspace_id, credential_id) from None

    conclusion = Conclusion(
        principal,
        workspace.rate_limit or settings.default_rate_limit,
        math.inf if expires_at is None else expires_at,
        key_id,
        credential_id,
        key_policy,
    )
    return (yield from rate_limit_step(conclusion, settings))


def rate_limit_step(
    conclusion: Conclusion, settings: AuthSettings, *, replayed: bool = False
) -> Flow:
    """Step 4's limits for a verified caller: its key's own limit, if any, then its workspace's.

    The last part of :func:`authentication_flow`, and all that a replayed conclusion runs
    (``replayed`` is passed on to the result). A caller without a limit of its own (most root
    keys, every portal session and JWT) gets one decision, for its workspace.

    A root key with a limit of its own gets two, in this order: its own bucket
    (:func:`~authcore.ratelimit.key_bucket`) first, then the workspace's. A request passes
    only if both admit it, and the result carries the tighter decision
    (:func:`~authcore.ratelimit.tighter`). Why the key first: a key its own limit refuses
    never reaches the workspace's bucket, so a key hammering past its limit cannot spend the
    allowance its workspace's other keys share, which is what a per-key limit is for. The
    price is the other way round: when the key admits and the workspace refuses, the key's
    slot stays spent (limiters count atomically and have no "undo"), so a key in a workspace
    over its limit wears down its own allowance too; it only ever spends its own, never
    another caller's. The limiter failure policy applies to each decision; once the shared
    limiter has failed for the key, the workspace's decision goes straight to the fallback
    rather than waiting on the failed limiter a second time.

    Raises:
        RateLimitedError: the key's own limit or the workspace's refuses (the refusing
            decision, attributed to the workspace and the credential).
        UnavailableError: the limiter is down and ``limiter_failure`` is fail-closed.
    """
    principal, policy = conclusion.principal, conclusion.policy
    key_decision: RateLimitDecision | None = None
    shared = True  # whether the shared limiter is asked (not after it failed for the key)
    if conclusion.key_policy is not None:
        key_decision, shared = yield from _key_limit(conclusion, conclusion.key_policy, settings)
    if policy is None:
        return Authenticated(principal, key_decision, conclusion, replayed)
    try:
        if shared:
            decision = yield CheckRateLimit(principal.workspace_id, policy)
        else:
            decision = yield UseFallbackLimiter(principal.workspace_id, policy)
    except UnavailableError as exc:
        if not shared or settings.limiter_failure is not LimiterFailurePolicy.LOCAL_FALLBACK:
            raise exc.refused(principal.workspace_id, conclusion.credential_id) from None
        decision = yield UseFallbackLimiter(principal.workspace_id, policy)
    admitted = _admitted(decision, conclusion)
    if key_decision is not None:
        admitted = tighter(admitted, key_decision)
    return Authenticated(principal, admitted, conclusion, replayed)


def _key_limit(
    conclusion: Conclusion, policy: RateLimitPolicy, settings: AuthSettings
) -> Generator[Need, object, tuple[RateLimitDecision, bool]]:
    """The root key's own decision, and whether the shared limiter answered it.

    Raises:
        RateLimitedError: the key is over its own limit.
        UnavailableError: the limiter is down and ``limiter_failure`` is fail-closed.
    """
    # For a root key the subject id is the key id; credential_id is set with key_policy.
    bucket = key_bucket(conclusion.credential_id or conclusion.principal.subject.id)
    try:
        decision = yield CheckRateLimit(bucket, policy)
    except UnavailableError as exc:
        if settings.limiter_failure is not LimiterFailurePolicy.LOCAL_FALLBACK:
            workspace_id = conclusion.principal.workspace_id
            raise exc.refused(workspace_id, conclusion.credential_id) from None
        return _admitted((yield UseFallbackLimiter(bucket, policy)), conclusion), False
    return _admitted(decision, conclusion), True


def _admitted(decision: object, conclusion: Conclusion) -> RateLimitDecision:
    """``decision`` if it admits the request.

    Raises:
        UnavailableError: it is not a decision at all.
        RateLimitedError: it refuses (attributed to the workspace and the credential).
    """
    if not isinstance(decision, RateLimitDecision):
        raise UnavailableError("limiter returned an unexpected value")
    if not decision.allowed:
        error = RateLimitedError(decision)
        raise error.refused(conclusion.principal.workspace_id, conclusion.credential_id)
    return decision


# --- drivers ------------------------------------------------------------------------------


@attrs.frozen
class Backends:
    """What the synchronous driver talks to."""

    store: CredentialStore
    limiter: RateLimiter | None = None
    fallback_limiter: RateLimiter | None = None


@attrs.frozen
class AsyncBackends:
    """What the asynchronous driver talks to."""

    store: AsyncCredentialStore
    limiter: AsyncRateLimiter | None = None
    fallback_limiter: RateLimiter | None = None


def _no_limiter() -> UnavailableError:
    return UnavailableError("no rate limiter configured")


def _resolve(need: Need, backends: Backends) -> object:
    if isinstance(need, LookupRootKey):
        return backends.store.find_root_key(need.digest)
    if isinstance(need, LookupPortalSession):
        return backends.store.find_portal_session(need.digest)
    if isinstance(need, LookupWorkspace):
        return backends.store.find_workspace(need.workspace_id)
    limiter = backends.limiter if isinstance(need, CheckRateLimit) else backends.fallback_limiter
    if limiter is None:
        raise _no_limiter()
    return limiter.hit(need.workspace_id, need.policy)


def _aresolve(need: Need, backends: AsyncBackends) -> Awaitable[object]:
    # Returns the backend's own awaitable rather than being a coroutine itself: one coroutine
    # frame less per need, on a path every request takes three times. Errors raised here
    # (no limiter) surface inside arun_flow's try like any backend failure.
    if isinstance(need, LookupRootKey):
        return backends.store.afind_root_key(need.digest)
    if isinstance(need, LookupPortalSession):
        return backends.store.afind_portal_session(need.digest)
    if isinstance(need, LookupWorkspace):
        return backends.store.afind_workspace(need.workspace_id)
    if isinstance(need, UseFallbackLimiter):
        # The fallback is in-process memory: no I/O, so its sync form is right here too.
        if backends.fallback_limiter is None:
            raise _no_limiter()
        return _ready(backends.fallback_limiter.hit(need.workspace_id, need.policy))
    if backends.limiter is None:
        raise _no_limiter()
    return backends.limiter.ahit(need.workspace_id, need.policy)


async def _ready(value: object) -> object:
    return value


def _as_unavailable(exc: Exception) -> AuthcoreError:
    if isinstance(exc, AuthcoreError):
        return exc
    # Only the exception's type: a driver's message may quote a query or a connection string.
    return UnavailableError(f"backend failed: {type(exc).__name__}")


def run_flow(flow: Flow, backends: Backends) -> Authenticated:
    """Drive ``flow`` synchronously against ``backends``.

    Raises:
        AuthcoreError: whatever the flow raises; backend failures arrive as UnavailableError.
    """
    try:
        need = next(flow)
    except StopIteration as stop:
        result: Authenticated = stop.value
        return result
    return _drive(flow, need, backends)


def _drive(flow: Flow, need: Need, backends: Backends) -> Authenticated:
    try:
        while True:
            try:
                answer = _resolve(need, backends)
            except Exception as exc:  # noqa: BLE001 - any backend failure means "unavailable"
                need = flow.throw(_as_unavailable(exc))
            else:
                need = flow.send(answer)
    except StopIteration as stop:
        result: Authenticated = stop.value
        return result


async def arun_flow(flow: Flow, backends: AsyncBackends) -> Authenticated:
    """Drive ``flow`` asynchronously against ``backends``.

    Raises:
        AuthcoreError: whatever the flow raises; backend failures arrive as UnavailableError.
    """
    try:
        need = next(flow)
    except StopIteration as stop:
        result: Authenticated = stop.value
        return result
    return await _adrive(flow, need, backends)


async def _adrive(flow: Flow, need: Need, backends: AsyncBackends) -> Authenticated:
    try:
        while True:
            try:
                answer = await _aresolve(need, backends)
            except Exception as exc:  # noqa: BLE001 - any backend failure means "unavailable"
                need = flow.throw(_as_unavailable(exc))
            else:
                need = flow.send(answer)
    except StopIteration as stop:
        result: Authenticated = stop.value
        return result


def _answered(flow: Flow, answer: object, error: Exception | None) -> Need | Authenticated:
    """Start ``flow`` and give its first need the answer already obtained (or the failure).

    Returns the next need, or the result if the flow is done.
    """
    try:
        next(flow)
        if error is not None:
            return flow.throw(_as_unavailable(error))
        return flow.send(answer)
    except StopIteration as stop:
        result: Authenticated = stop.value
        return result


# --- the bundle adapters use ----------------------------------------------------------------

_sha256: Final = hashlib.sha256
# The named tuples built on the replay path, without their own __new__ frame.
_new: Final = tuple.__new__


class Authenticator:
    """Steps 1-4 for one route group: find, verify, normalize, rate-limit.

    ``clock`` returns seconds since the epoch; adapters pass ``time.time`` and tests a
    settable clock (:class:`authcore.testing.SettableClock`).

    When the store keeps conclusions (a :class:`ReplaySource` such as
    :class:`authcore.backends.cache.CachedStore`), a request whose credential the flow has
    already verified replays that conclusion: it skips steps 1-3, still checks the
    conclusion's ``valid_until`` (and a JWT's secret) against now, and always takes a fresh
    rate-limit decision. Anything else runs the whole flow, which may store its conclusion.
    ``replay=False`` turns this off.
    """

    __slots__ = (
        "_abackends",
        "_areplay",
        "_backends",
        "_inline_backends",
        "_inline_limiter",
        "_replay",
        "_settings",
        "clock",
        "reads_cookie",
    )

    def __init__(
        self,
        settings: AuthSettings,
        *,
        clock: Callable[[], float],
        backends: Backends | None = None,
        abackends: AsyncBackends | None = None,
        replay: bool = True,
    ) -> None:
        if backends is None and abackends is None:
            raise ConfigurationError("an Authenticator needs sync or async backends")
        self._settings = settings
        self.clock = clock
        self._backends = backends
        self._abackends = abackends
        #: Whether this route group takes the portal cookie (and so the cross-site rule).
        self.reads_cookie = settings.credentials.portal_cookie is not None
        self._replay = _replay_table(backends, replay)
        self._areplay = _replay_table(abackends, replay)
        # An in-process limiter (memory) is called without an await on the async path.
        limiter = None if abackends is None else abackends.limiter
        self._inline_limiter: RateLimiter | None = (
            limiter if getattr(limiter, "in_process", False) is True else None  # type: ignore[assignment]  # it says it has hit()
        )
        # The same limiters as sync backends, for a replay of a key with a limit of its own
        # (two decisions) on the async side. A rate-limit step asks no store: none is given.
        self._inline_backends: Backends | None = None
        if abackends is not None and self._inline_limiter is not None:
            self._inline_backends = Backends(
                cast(CredentialStore, None), self._inline_limiter, abackends.fallback_limiter
            )

    @property
    def settings(self) -> AuthSettings:
        """How this route group authenticates (fixed: what is derived from it is kept)."""
        return self._settings

    def _replay_key(self, authorization: Sequence[str], portal_cookie: str | None) -> bytes | None:
        """The table key of the one credential a request carries (None: two, or none).

        No grammar check is needed here: a key only ever finds a conclusion if its token is
        exactly one the full path extracted and verified before. A value the full path would
        read differently (extra spaces, trailing whitespace, another scheme) yields another
        token, so another key, misses, and takes the full path, which says what is wrong.
        """
        if self._settings.credentials.portal_cookie is None:
            portal_cookie = None
        if authorization:
            if len(authorization) != 1 or portal_cookie is not None:
                return None
            value = authorization[0]
            # RFC 9110 §11.1: the scheme is case-insensitive; "Bearer " is the usual spelling.
            if not (value.startswith("Bearer ") or value[:7].lower() == "bearer "):
                return None
            token = value[7:]
        elif portal_cookie is not None:
            token = portal_cookie
        else:
            return None
        return _sha256(token.encode()).digest()

    def _conclusion(self, table: VerifiedResults, key: bytes, now: float) -> Conclusion | None:
        """The conclusion stored for ``key``, if it still holds at ``now``."""
        conclusion = table.get(key)
        if conclusion is None or now >= conclusion.valid_until:
            return None
        if conclusion.key_id is not None and not self._trusts(conclusion.key_id):
            return None
        return conclusion

    def _trusts(self, key_id: str) -> bool:
        # A JWT verified by a secret that has since left the keyring is not trusted.
        keyring = self._settings.keyring
        return keyring is not None and key_id in keyring.kids

    def _start(self, authorization: Sequence[str], portal_cookie: str | None, now: float) -> Flow:
        credential = extract_credential(authorization, portal_cookie, self._settings.credentials)
        if credential is None:
            raise MissingCredentialError
        return authentication_flow(credential, self._settings, now)

    def authenticate(
        self, authorization: Sequence[str], portal_cookie: str | None = None
    ) -> Authenticated:
        """Authenticate a request from its Authorization values and portal cookie.

        Raises:
            AuthcoreError: any outcome other than a principal (see DESIGN.md's table).
        """
        backends = self._backends
        if backends is None:
            raise ConfigurationError("this Authenticator has no synchronous backends")
        now = self.clock()
        table = self._replay
        if table is None:
            return run_flow(self._start(authorization, portal_cookie, now), backends)
        if portal_cookie is None and len(authorization) == 1 and authorization[0][:7] == "Bearer ":
            # The usual request, keyed here without a call; _replay_key does the same.
            key: bytes | None = _sha256(authorization[0][7:].encode()).digest()
        else:
            key = self._replay_key(authorization, portal_cookie)
        if key is not None:
            conclusion = self._conclusion(table, key, now)
            if conclusion is not None:
                replayed = self._replay_now(conclusion, backends.limiter, backends)
                if replayed is not None:
                    return replayed
        ticket = table.ticket()
        result = run_flow(self._start(authorization, portal_cookie, now), backends)
        if key is not None and result.conclusion is not None:
            table.put(key, result.conclusion, ticket, now)
        return result

    async def aauthenticate(
        self, authorization: Sequence[str], portal_cookie: str | None = None
    ) -> Authenticated:
        """Asynchronous twin of :meth:`authenticate`.

        Raises:
            AuthcoreError: any outcome other than a principal.
        """
        backends = self._abackends
        if backends is None:
            raise ConfigurationError("this Authenticator has no asynchronous backends")
        now = self.clock()
        table = self._areplay
        if table is None:
            return await arun_flow(self._start(authorization, portal_cookie, now), backends)
        key = self._replay_key(authorization, portal_cookie)
        if key is not None:
            conclusion = self._conclusion(table, key, now)
            if conclusion is not None:
                if self._inline_limiter is not None:
                    result = self._replay_now(conclusion, self._inline_limiter, None)
                    if result is not None:
                        return result
                return await self._areplay_limit(conclusion, backends)
        ticket = table.ticket()
        result = await arun_flow(self._start(authorization, portal_cookie, now), backends)
        if key is not None and result.conclusion is not None:
            table.put(key, result.conclusion, ticket, now)
        return result

    def replay_inline(
        self, authorization: Sequence[str], portal_cookie: str | None = None
    ) -> Authenticated | None:
        """The async side's replay when it needs no await, else None.

        For an async caller's hot path (:meth:`authcore.gate.Gate.admit_inline`): a replay
        whose limiter runs in this process needs no I/O, so no coroutine. None means "await
        :meth:`aauthenticate`": not a replay, or anything but a plain decision.

        Raises:
            RateLimitedError: the replayed credential's workspace (or key) is over its limit.
            UnavailableError: the limiter answered something that is not a decision (or,
                for a key with a limit of its own, failed and the policy is fail-closed).
        """
        table, limiter = self._areplay, self._inline_limiter
        if table is None or limiter is None:
            return None
        if portal_cookie is None and len(authorization) == 1 and authorization[0][:7] == "Bearer ":
            # The usual request, keyed here without a call; _replay_key does the same.
            key: bytes | None = _sha256(authorization[0][7:].encode()).digest()
        else:
            key = self._replay_key(authorization, portal_cookie)
        if key is None:
            return None
        # _conclusion(), written out for the hot path.
        conclusion = table.get(key)
        if (
            conclusion is None
            or self.clock() >= conclusion.valid_until
            or (conclusion.key_id is not None and not self._trusts(conclusion.key_id))
        ):
            return None
        if conclusion.key_policy is not None:
            return self._replay_now(conclusion, limiter, None)
        policy = conclusion.policy
        if policy is not None:
            # _replay_now's usual case, written out: one frame less on the hot path.
            try:
                decision = limiter.hit(conclusion.principal.workspace_id, policy)
            except Exception:  # noqa: BLE001 - the awaited path asks again and decides
                return None
            if type(decision) is RateLimitDecision and decision[0]:  # allowed
                return _new(Authenticated, (conclusion.principal, decision, conclusion, True))
            step = _answered(
                rate_limit_step(conclusion, self._settings, replayed=True), decision, None
            )
            return step if isinstance(step, Authenticated) else None
        return self._replay_now(conclusion, limiter, None)

    # A replay takes the limiter decision itself and handles only the usual answer, one that
    # admits. A refusal, a failure or anything odd goes to the flow's own rate-limit step with
    # the answer already in hand, so what those mean is written once, there.

    def _replay_now(
        self, conclusion: Conclusion, limiter: RateLimiter | None, backends: Backends | None
    ) -> Authenticated | None:
        """Replay with a limiter called in place.

        With ``backends`` None (an in-process limiter on the async side) a limiter failure
        returns None, for the awaited path to ask the limiter again and decide. A key with a
        limit of its own takes two decisions: the flow's step runs them all, on ``backends``
        or on the in-process limiters (so a decision taken is never taken again).
        """
        if conclusion.key_policy is not None:
            backends = backends or self._inline_backends
            if backends is None:
                return None
            return run_flow(rate_limit_step(conclusion, self._settings, replayed=True), backends)
        policy = conclusion.policy
        if policy is None or limiter is None:
            if backends is None:
                return None
            return run_flow(rate_limit_step(conclusion, self._settings, replayed=True), backends)
        try:
            decision = limiter.hit(conclusion.principal.workspace_id, policy)
        except Exception as exc:  # noqa: BLE001 - the flow's step decides what it means
            if backends is None:
                return None
            flow = rate_limit_step(conclusion, self._settings, replayed=True)
            step = _answered(flow, None, exc)
            return step if isinstance(step, Authenticated) else _drive(flow, step, backends)
        if type(decision) is RateLimitDecision and decision[0]:  # allowed
            return _new(Authenticated, (conclusion.principal, decision, conclusion, True))
        # A refusal, or not a decision at all: the step raises what it means.
        step = _answered(rate_limit_step(conclusion, self._settings, replayed=True), decision, None)
        return step if isinstance(step, Authenticated) else None

    async def _areplay_limit(
        self, conclusion: Conclusion, backends: AsyncBackends
    ) -> Authenticated:
        """Replay with the awaited limiter of the async backends."""
        policy, limiter = conclusion.policy, backends.limiter
        if policy is None or limiter is None or conclusion.key_policy is not None:
            return await arun_flow(
                rate_limit_step(conclusion, self._settings, replayed=True), backends
            )
        error: Exception | None = None
        decision: object = None
        try:
            decision = await limiter.ahit(conclusion.principal.workspace_id, policy)
        except Exception as exc:  # noqa: BLE001 - the flow's step decides what it means
            error = exc
        else:
            if type(decision) is RateLimitDecision and decision[0]:  # allowed
                return _new(Authenticated, (conclusion.principal, decision, conclusion, True))
        flow = rate_limit_step(conclusion, self._settings, replayed=True)
        step = _answered(flow, decision, error)
        return step if isinstance(step, Authenticated) else await _adrive(flow, step, backends)


def _replay_table(
    backends: Backends | AsyncBackends | None, enabled: bool
) -> VerifiedResults | None:
    if not enabled or backends is None or not isinstance(backends.store, ReplaySource):
        return None
    return backends.store.verified_results()
