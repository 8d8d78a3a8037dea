"""The authentication flow, written once: credential -> verifier -> principal -> rate limit.

:func:`authentication_flow` is a generator that *yields* what it needs from the outside world
(the record for digest D, the workspace W, a rate-limit decision for W) and receives the
answers, like ``httpx``'s auth flow. :func:`run_flow` drives it synchronously (WSGI, Flask),
:func:`arun_flow` asynchronously (ASGI). Neither driver decides anything: they only perform the
I/O a need names, turning any failure of a backing system into
:class:`~authcore.errors.UnavailableError` thrown back into the flow.

:func:`rate_limit_step`, the flow's last part, is also all that a replayed
:class:`~authcore.replay.Conclusion` runs: :class:`~authcore.authenticator.Authenticator`
(which bundles settings, store, limiter and clock for adapters) drives it with
:func:`run_step` or :func:`arun_flow`, or takes its one decision in place and reads it with
:func:`admitted`, the step's own check.
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Final, NamedTuple, Protocol, TypeAlias, TypeVar

import attrs

from authcore.credentials import Credential, CredentialKind, CredentialSettings
from authcore.errors import (
    AuthcoreError,
    ConfigurationError,
    InvalidCredentialError,
    RateLimitedError,
    UnavailableError,
    WorkspaceDisabledError,
)
from authcore.keyring import Keyring, VerifiedClaims
from authcore.needs import (
    CheckRateLimit,
    CheckRateLimits,
    LimitNeed,
    LookupIdentity,
    LookupPortalSession,
    LookupRootKey,
    LookupWorkspace,
    Need,
    UseFallbackLimiter,
    UseFallbackLimiters,
)
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
    deciding,
)
from authcore.ratelimit_fields import RateLimitHeaders, rate_limit_headers_option
from authcore.records import IdentityRecord, PortalSessionRecord, RootKeyRecord, WorkspaceRecord
from authcore.replay import Conclusion, ConclusionSource, ConclusionTable
from authcore.store import AsyncCredentialStore, CredentialStore
from authcore.tokens import digest

if TYPE_CHECKING:
    from authcore.authenticator import Authenticator

# Conclusion, ConclusionSource, ConclusionTable (authcore.replay) and Authenticator
# (authcore.authenticator) lived here once, and are still importable from here.
__all__ = [
    "AsyncBackends",
    "AuthSettings",
    "Authenticated",
    "Authenticator",
    "Backends",
    "CheckRateLimit",
    "CheckRateLimits",
    "Conclusion",
    "ConclusionSource",
    "ConclusionTable",
    "Flow",
    "LimitFlow",
    "LimitNeed",
    "Limiters",
    "LookupIdentity",
    "LookupPortalSession",
    "LookupRootKey",
    "LookupWorkspace",
    "Need",
    "TokenCache",
    "UseFallbackLimiter",
    "UseFallbackLimiters",
    "admitted",
    "all_admitted",
    "arun_flow",
    "authentication_flow",
    "rate_limit_step",
    "run_flow",
    "run_step",
]

_Record = TypeVar("_Record", RootKeyRecord, PortalSessionRecord, WorkspaceRecord, IdentityRecord)
_DEFAULT_RATE_LIMIT: Final = RateLimitPolicy(limit=600, period=60)
_REALM: Final = re.compile(r"[A-Za-z0-9 ._-]{1,64}", re.ASCII)


# What the flow asks for: authcore.needs (re-exported here).


class Authenticated(NamedTuple):
    """The flow's result: the principal and the limiter decision (None when unlimited).

    With several limits (a root key's own, its identity's, its workspace's) ``rate_limit`` is
    the tightest decision (:func:`authcore.ratelimit.deciding`), the one the legacy fields
    describe, and ``decisions`` holds every level's, in the conclusion's level order (the
    draft's fields describe each); with one level ``decisions`` is empty.

    ``conclusion`` is what a verified-result cache may replay for the same credential;
    ``replayed`` says the answer came from that cache rather than from the whole flow. A named
    tuple (immutable, and cheap to build on every admitted request).
    """

    principal: Principal
    rate_limit: RateLimitDecision | None
    conclusion: Conclusion | None = None
    replayed: bool = False
    decisions: tuple[RateLimitDecision, ...] = ()


Flow: TypeAlias = Generator[Need, object, Authenticated]
#: A flow that asks only for rate-limit decisions: :func:`rate_limit_step`.
LimitFlow: TypeAlias = Generator[LimitNeed, object, Authenticated]


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
    and on the workspace means the workspace is not rate limited. ``rate_limit_headers`` says
    which rate-limit fields responses carry (:class:`~authcore.ratelimit_fields.RateLimitHeaders`
    or its name: ``"draft"``, the default, ``"legacy"``, ``"both"`` or ``"none"``).
    """

    credentials: CredentialSettings = attrs.field(factory=CredentialSettings.api)
    keyring: Keyring | None = None
    default_rate_limit: RateLimitPolicy | None = _DEFAULT_RATE_LIMIT
    limiter_failure: LimiterFailurePolicy = LimiterFailurePolicy.FAIL_CLOSED
    token_cache: TokenCache | None = None
    realm: str = attrs.field(default="api", validator=_check_realm)
    rate_limit_headers: RateLimitHeaders = attrs.field(
        default=RateLimitHeaders.DRAFT, converter=rate_limit_headers_option
    )


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


def _own_limit(record: RootKeyRecord | PortalSessionRecord | None) -> RateLimitPolicy | None:
    return None if record is None else record.rate_limit


def _lifetime(
    record: RootKeyRecord | PortalSessionRecord | None,
) -> tuple[str | None, float | None]:
    # The record's id and expiry; principal_from_* has already refused a missing record.
    return (None, None) if record is None else (record.id, record.expires_at)


def _identity_limit(principal: Principal) -> Generator[Need, object, RateLimitPolicy | None]:
    """The limit an identity shares among its keys and portal sessions (None: none, or no
    identity).

    Raises:
        InvalidCredentialError: the key or session names an identity that is gone, or of
            another workspace (one outliving its identity is revoked: a broken store).
    """
    identity_id = principal.identity_id
    if identity_id is None:
        return None
    identity = _expect((yield LookupIdentity(identity_id)), IdentityRecord)
    if identity is None or identity.workspace_id != principal.workspace_id:
        raise InvalidCredentialError("identity gone")
    return identity.rate_limit


_Stored: TypeAlias = tuple[
    Principal, str | None, float | None, RateLimitPolicy | None, RateLimitPolicy | None
]


def _stored_credential(
    kind: CredentialKind, token: str, now: float
) -> Generator[Need, object, _Stored]:
    """A root key's or portal session's principal, id, expiry, own limit and identity's limit.

    Both act for their identity, when they have one: its shared limit counts for each.
    """
    found_digest = digest(token)
    record: RootKeyRecord | PortalSessionRecord | None
    if kind is CredentialKind.ROOT_KEY:
        record = _expect((yield LookupRootKey(found_digest)), RootKeyRecord)
        principal = principal_from_root_key(record, found_digest, now)
    else:
        record = _expect((yield LookupPortalSession(found_digest)), PortalSessionRecord)
        principal = principal_from_portal_session(record, found_digest, now)
    credential_id, expires_at = _lifetime(record)
    identity_policy = yield from _identity_limit(principal)
    return principal, credential_id, expires_at, _own_limit(record), identity_policy


def authentication_flow(credential: Credential, settings: AuthSettings, now: float) -> Flow:
    """Verify ``credential``, build the principal, and apply the rate limits.

    Yields needs (see :data:`Need`) and returns :class:`Authenticated`.

    Raises:
        InvalidCredentialError: unknown, wrong, expired or revoked (one public answer).
        WorkspaceDisabledError: the principal's workspace is disabled.
        RateLimitedError: the workspace, the key's identity or the root key's or portal
            session's own limit is over its limit.
        UnavailableError: a store or the limiter is down (per ``limiter_failure``).
    """
    if credential.kind not in settings.credentials.accepts:
        raise InvalidCredentialError(f"{credential.kind.value} not accepted on this route")
    token = credential.secret.reveal()
    key_id: str | None = None
    expires_at: float | None
    own_policy: RateLimitPolicy | None = None
    identity_policy: RateLimitPolicy | None = None
    if credential.kind is CredentialKind.JWT:
        claims = _verify_jwt(token, settings, now)
        principal = principal_from_claims(claims)
        credential_id, expires_at, key_id = None, claims.expires_at, claims.key_id
    else:
        stored = yield from _stored_credential(credential.kind, token, now)
        principal, credential_id, expires_at, own_policy, identity_policy = stored

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
        own_policy,
        identity_policy,
        settings.rate_limit_headers,
    )
    return (yield from rate_limit_step(conclusion, settings))


def rate_limit_step(
    conclusion: Conclusion, settings: AuthSettings, *, replayed: bool = False
) -> LimitFlow:
    """Step 4's limits for a verified caller: every level that has one, decided together.

    The last part of :func:`authentication_flow`, and all that a replayed conclusion runs
    (``replayed`` is passed on to the result). The levels are the conclusion's
    (:attr:`~authcore.replay.Conclusion.levels`): a root key's or portal session's own limit,
    a key's identity's, its workspace's, each where it has one. Most callers have only the
    workspace's: one decision, one bucket. With more, one all-or-nothing decision over all of them
    (:func:`~authcore.ratelimit.decide_levels`, one round trip on Redis): the request is
    admitted only if every level admits it, and a refused request charges no level, so a key
    hammering past its own limit never spends what its identity's or workspace's other keys
    share, and a workspace over its limit never wears down a key's own allowance. The result
    carries the tightest decision (:func:`~authcore.ratelimit.deciding`). The limiter failure
    policy applies as for one decision.

    Raises:
        RateLimitedError: a level refuses (the longest wait among the refusing levels,
            attributed to the workspace and the credential).
        UnavailableError: the limiter is down and ``limiter_failure`` is fail-closed.
    """
    levels = conclusion.levels
    if not levels:
        return Authenticated(conclusion.principal, None, conclusion, replayed)
    one = len(levels) == 1
    try:
        decision = yield CheckRateLimit(*levels[0]) if one else CheckRateLimits(levels)
    except UnavailableError as exc:
        if settings.limiter_failure is not LimiterFailurePolicy.LOCAL_FALLBACK:
            raise exc.refused(conclusion.principal.workspace_id, conclusion.credential_id) from None
        decision = yield UseFallbackLimiter(*levels[0]) if one else UseFallbackLimiters(levels)
    principal = conclusion.principal
    if one:
        return Authenticated(principal, admitted(decision, conclusion), conclusion, replayed)
    sent = all_admitted(decision, conclusion)
    # all_admitted checked it: a tuple of decisions, one per level.
    return Authenticated(principal, sent, conclusion, replayed, decision)  # type: ignore[arg-type]


def all_admitted(decisions: object, conclusion: Conclusion) -> RateLimitDecision:
    """The decision to send if every level admits the request (one decision per level).

    How the step reads an answer over several levels; a replay that took it in place reads
    it with this too.

    Raises:
        UnavailableError: the answer is not one decision per level.
        RateLimitedError: a level refuses.
    """
    if type(decisions) is not tuple or len(decisions) != len(conclusion.levels):
        raise UnavailableError("limiter returned an unexpected value")
    # One pass: every member checked, and the tightest admitting one kept (deciding()'s
    # choice when all admit: the fewest remaining, then the longest reset, first among equals).
    sent = decisions[0]
    refused = False
    for decision in decisions:
        if type(decision) is not RateLimitDecision:
            raise UnavailableError("limiter returned an unexpected value")
        if not decision[0]:
            refused = True
        elif decision[2] < sent[2] or (decision[2] == sent[2] and decision[3] > sent[3]):
            sent = decision
    if refused:
        admitted(deciding(decisions), conclusion, decisions)  # raises: the one reading
    return sent  # type: ignore[no-any-return]  # checked above: a RateLimitDecision


def admitted(
    decision: object, conclusion: Conclusion, decisions: tuple[RateLimitDecision, ...] = ()
) -> RateLimitDecision:
    """``decision`` if it admits the request: how the step reads every decision it gets.

    A replay that took its decision in place reads an unusual one (anything but an admitting
    :class:`~authcore.ratelimit.RateLimitDecision`) with this too.

    Raises:
        UnavailableError: it is not a decision at all.
        RateLimitedError: it refuses (attributed to the workspace and the credential; with
            the conclusion's fields and every level's decision, ``decisions``, for the 429).
    """
    if not isinstance(decision, RateLimitDecision):
        raise UnavailableError("limiter returned an unexpected value")
    if not decision.allowed:
        error = RateLimitedError(decision, fields=conclusion.fields, decisions=decisions)
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


class Limiters(Protocol):
    """What answers a rate-limit step's needs: a limiter and the bounded local fallback.

    :class:`Backends` is one; so are the in-process limiters of async backends, which an
    :class:`~authcore.authenticator.Authenticator` asks in place (:func:`run_step`).
    """

    @property
    def limiter(self) -> RateLimiter | None: ...

    @property
    def fallback_limiter(self) -> RateLimiter | None: ...


def _no_limiter() -> UnavailableError:
    return UnavailableError("no rate limiter configured")


def _resolve(need: Need, backends: Backends) -> object:
    if isinstance(need, LookupRootKey):
        return backends.store.find_root_key(need.digest)
    if isinstance(need, LookupPortalSession):
        return backends.store.find_portal_session(need.digest)
    if isinstance(need, LookupWorkspace):
        return backends.store.find_workspace(need.workspace_id)
    if isinstance(need, LookupIdentity):
        return backends.store.find_identity(need.identity_id)
    return _decide(need, backends)


def _decide(need: LimitNeed, limiters: Limiters) -> object:
    shared = isinstance(need, CheckRateLimit | CheckRateLimits)
    limiter = limiters.limiter if shared else limiters.fallback_limiter
    if limiter is None:
        raise _no_limiter()
    if isinstance(need, CheckRateLimits | UseFallbackLimiters):
        return limiter.hit_levels(need.levels)
    return limiter.hit(need.bucket, need.policy)


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
    if isinstance(need, LookupIdentity):
        return backends.store.afind_identity(need.identity_id)
    if isinstance(need, UseFallbackLimiter | UseFallbackLimiters):
        # The fallback is in-process memory: no I/O, so its sync form is right here too.
        if backends.fallback_limiter is None:
            raise _no_limiter()
        if isinstance(need, UseFallbackLimiters):
            return _ready(backends.fallback_limiter.hit_levels(need.levels))
        return _ready(backends.fallback_limiter.hit(need.bucket, need.policy))
    if backends.limiter is None:
        raise _no_limiter()
    if isinstance(need, CheckRateLimits):
        return backends.limiter.ahit_levels(need.levels)
    return backends.limiter.ahit(need.bucket, need.policy)


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
    return _drive(flow, _resolve, backends, None)


def run_step(
    step: LimitFlow, limiters: Limiters, failure: Exception | None = None
) -> Authenticated:
    """Drive a rate-limit step synchronously against ``limiters`` alone.

    ``failure``: the step's first decision was asked already (a replay asks it in place) and
    failed. It is thrown in where the step asks for that decision, so that the step's own
    failure policy decides what it means, without asking the failed limiter a second time.

    Raises:
        AuthcoreError: whatever the step raises; limiter failures arrive as UnavailableError.
    """
    return _drive(step, _decide, limiters, failure)


_N = TypeVar("_N", bound=Need)
_B = TypeVar("_B")


def _drive(
    flow: Generator[_N, object, Authenticated],
    resolve: Callable[[_N, _B], object],
    backends: _B,
    failure: Exception | None,
) -> Authenticated:
    # The one synchronous driver: a whole flow on Backends, a rate-limit step on Limiters
    # (arun_flow is its asynchronous twin).
    try:
        need = next(flow)
        if failure is not None:
            need = flow.throw(_as_unavailable(failure))
        while True:
            try:
                answer = resolve(need, backends)
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


def __getattr__(name: str) -> object:
    # PEP 562. Authenticator moved to authcore.authenticator, which imports this module, so it
    # cannot be imported here at the top; ``from authcore.flow import Authenticator`` still works.
    if name == "Authenticator":
        from authcore.authenticator import Authenticator  # noqa: PLC0415 - see above

        return Authenticator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
