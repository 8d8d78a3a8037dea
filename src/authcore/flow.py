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

import re
from collections.abc import Awaitable, Callable, Generator, Sequence
from typing import Final, Protocol, TypeAlias, TypeVar

import attrs

from authcore.credentials import Credential, CredentialKind, CredentialPolicy, extract_credential
from authcore.errors import (
    AuthcoreError,
    ConfigurationError,
    InvalidCredentialError,
    MissingCredentialError,
    RateLimitedError,
    UnavailableError,
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
)
from authcore.store import (
    AsyncCredentialStore,
    CredentialStore,
    PortalSessionRecord,
    RootKeyRecord,
    WorkspaceRecord,
)
from authcore.tokens import digest

__all__ = [
    "AsyncBackends",
    "Authenticated",
    "Authenticator",
    "Backends",
    "CheckRateLimit",
    "Flow",
    "LookupPortalSession",
    "LookupRootKey",
    "LookupWorkspace",
    "Need",
    "Settings",
    "TokenCache",
    "UseFallbackLimiter",
    "arun_flow",
    "authentication_flow",
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
    """Need: one atomic limiter decision for ``workspace_id`` under ``policy``."""

    workspace_id: str
    policy: RateLimitPolicy


@attrs.frozen
class UseFallbackLimiter:
    """Need: the bounded local limiter's decision, after the shared limiter failed."""

    workspace_id: str
    policy: RateLimitPolicy


Need: TypeAlias = (
    LookupRootKey | LookupPortalSession | LookupWorkspace | CheckRateLimit | UseFallbackLimiter
)


@attrs.frozen
class Authenticated:
    """The flow's result: the principal and the limiter decision (None when unlimited)."""

    principal: Principal
    rate_limit: RateLimitDecision | None


Flow: TypeAlias = Generator[Need, object, Authenticated]


class TokenCache(Protocol):
    """A bounded cache of verified JWTs, keyed by the whole token, never used past ``exp``."""

    def get(self, token: str, now: float, /) -> VerifiedClaims | None: ...

    def put(self, token: str, claims: VerifiedClaims, /) -> None: ...


def _check_realm(instance: object, attribute: object, value: str) -> None:
    # The realm goes inside a quoted-string in WWW-Authenticate: keep it boring.
    if not _REALM.fullmatch(value):
        raise ConfigurationError("realm must be 1-64 letters, digits, spaces, '.', '_' or '-'")


@attrs.frozen
class Settings:
    """How one route group authenticates.

    ``default_rate_limit`` applies to workspaces with no policy of their own; ``None`` there
    and on the workspace means the workspace is not rate limited.
    """

    credentials: CredentialPolicy = attrs.field(factory=CredentialPolicy.api)
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


def _verify_jwt(token: str, settings: Settings, now: float) -> VerifiedClaims:
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


def authentication_flow(credential: Credential, settings: Settings, now: float) -> Flow:
    """Verify ``credential``, build the principal, and apply the workspace rate limit.

    Yields needs (see :data:`Need`) and returns :class:`Authenticated`.

    Raises:
        InvalidCredentialError: unknown, wrong, expired or revoked (one public answer).
        WorkspaceDisabledError: the principal's workspace is disabled.
        RateLimitedError: the workspace is over its limit.
        UnavailableError: a store or the limiter is down (per ``limiter_failure``).
    """
    if credential.kind not in settings.credentials.accepts:
        raise InvalidCredentialError(f"{credential.kind.value} not accepted on this route")
    token = credential.secret.reveal()
    if credential.kind is CredentialKind.ROOT_KEY:
        key_digest = digest(token)
        key_record = _expect((yield LookupRootKey(key_digest)), RootKeyRecord)
        principal = principal_from_root_key(key_record, key_digest, now)
    elif credential.kind is CredentialKind.PORTAL_TOKEN:
        session_digest = digest(token)
        session_record = _expect((yield LookupPortalSession(session_digest)), PortalSessionRecord)
        principal = principal_from_portal_session(session_record, session_digest, now)
    else:
        principal = principal_from_claims(_verify_jwt(token, settings, now))

    found = _expect((yield LookupWorkspace(principal.workspace_id)), WorkspaceRecord)
    workspace = check_workspace(found, principal.workspace_id)

    policy = workspace.rate_limit or settings.default_rate_limit
    if policy is None:
        return Authenticated(principal, None)
    try:
        decision = yield CheckRateLimit(principal.workspace_id, policy)
    except UnavailableError:
        if settings.limiter_failure is not LimiterFailurePolicy.LOCAL_FALLBACK:
            raise
        decision = yield UseFallbackLimiter(principal.workspace_id, policy)
    if not isinstance(decision, RateLimitDecision):
        raise UnavailableError("limiter returned an unexpected value")
    if not decision.allowed:
        raise RateLimitedError(decision)
    return Authenticated(principal, decision)


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


# --- the bundle adapters use ----------------------------------------------------------------


class Authenticator:
    """Steps 1-4 for one route group: find, verify, normalize, rate-limit.

    ``clock`` returns seconds since the epoch; adapters pass ``time.time`` and tests a
    settable clock (:class:`authcore.testing.SettableClock`).
    """

    __slots__ = ("_abackends", "_backends", "clock", "settings")

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float],
        backends: Backends | None = None,
        abackends: AsyncBackends | None = None,
    ) -> None:
        if backends is None and abackends is None:
            raise ConfigurationError("an Authenticator needs sync or async backends")
        self.settings = settings
        self.clock = clock
        self._backends = backends
        self._abackends = abackends

    def _start(self, authorization: Sequence[str], portal_cookie: str | None) -> Flow:
        credential = extract_credential(authorization, portal_cookie, self.settings.credentials)
        if credential is None:
            raise MissingCredentialError
        return authentication_flow(credential, self.settings, self.clock())

    def authenticate(
        self, authorization: Sequence[str], portal_cookie: str | None = None
    ) -> Authenticated:
        """Authenticate a request from its Authorization values and portal cookie.

        Raises:
            AuthcoreError: any outcome other than a principal (see DESIGN.md's table).
        """
        if self._backends is None:
            raise ConfigurationError("this Authenticator has no synchronous backends")
        return run_flow(self._start(authorization, portal_cookie), self._backends)

    async def aauthenticate(
        self, authorization: Sequence[str], portal_cookie: str | None = None
    ) -> Authenticated:
        """Asynchronous twin of :meth:`authenticate`.

        Raises:
            AuthcoreError: any outcome other than a principal.
        """
        if self._abackends is None:
            raise ConfigurationError("this Authenticator has no asynchronous backends")
        return await arun_flow(self._start(authorization, portal_cookie), self._abackends)
