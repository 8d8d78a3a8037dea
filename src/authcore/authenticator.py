"""Steps 1-4 for one route group, and the one replay path.

:class:`Authenticator` bundles settings, store, limiter and clock for adapters. A request runs
:func:`authcore.flow.authentication_flow`, unless the flow has already verified its credential:
then the flow's :class:`~authcore.replay.Conclusion` is replayed, which runs only the flow's
last part, its rate-limit step (:func:`authcore.flow.rate_limit_step`).

A replay, written once: the request's table key and the conclusion stored under it, if it still
holds (:meth:`Authenticator._lookup`); then the step. Where the limiter needs no await (the
sync limiters, or the async side's in-process one) the usual case, one decision, is taken in
place and read here (:meth:`Authenticator._replay_now`); an unusual answer, a failure, or a
conclusion with no decision or two to take goes to the step itself, with any answer already in
hand, so what they mean is written once, there. An awaited limiter (Redis) drives the step as
it is: one network round trip dwarfs what a generator costs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Final

import attrs

from authcore.credentials import extract_credential
from authcore.errors import ConfigurationError, MissingCredentialError
from authcore.flow import (
    AsyncBackends,
    Authenticated,
    AuthSettings,
    Backends,
    Flow,
    Limiters,
    LimitFlow,
    admitted,
    all_admitted,
    arun_flow,
    authentication_flow,
    rate_limit_step,
    run_flow,
    run_step,
)
from authcore.ratelimit import InProcessRateLimiter, RateLimitDecision, RateLimiter
from authcore.replay import Conclusion, ConclusionSource, ConclusionTable

__all__ = ["Authenticator"]

_sha256: Final = hashlib.sha256
# Authenticated's own __new__ is a Python function (namedtuple writes one), a frame more on
# every replayed request; tuple.__new__ builds the very same named tuple without it.
_new_tuple: Final = tuple.__new__


@attrs.frozen
class _InProcessLimiters:
    """The async backends' limiters, when their shared one is in-process: asked in place."""

    limiter: RateLimiter
    fallback_limiter: RateLimiter | None


class Authenticator:
    """Steps 1-4 for one route group: find, verify, normalize, rate-limit.

    ``clock`` returns seconds since the epoch; adapters pass ``time.time`` and tests a
    settable clock (:class:`authcore.testing.SettableClock`).

    When the store keeps conclusions (a :class:`~authcore.replay.ConclusionSource` such as
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
        "_in_process",
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
        self._in_process = _in_process_limiters(abackends)

    @property
    def settings(self) -> AuthSettings:
        """How this route group authenticates (fixed: what is derived from it is kept)."""
        return self._settings

    def authenticate(
        self, authorization: Sequence[str], portal_cookie: str | None = None
    ) -> Authenticated:
        """Authenticate a request from its Authorization values and portal cookie.

        Raises:
            AuthcoreError: any outcome other than a principal (see the outcome table in
                ``docs/architecture.md``).
        """
        backends = self._backends
        if backends is None:
            raise ConfigurationError("this Authenticator has no synchronous backends")
        now = self.clock()
        table = self._replay
        if table is None:
            return run_flow(self._start(authorization, portal_cookie, now), backends)
        found = self._lookup(table, authorization, portal_cookie, now)
        if isinstance(found, Conclusion):
            return self._replay_now(found, backends)
        ticket = table.ticket()
        result = run_flow(self._start(authorization, portal_cookie, now), backends)
        if found is not None and result.conclusion is not None:
            table.put(found, result.conclusion, ticket, now)
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
        found = self._lookup(table, authorization, portal_cookie, now)
        if isinstance(found, Conclusion):
            if self._in_process is not None:
                return self._replay_now(found, self._in_process)
            return await arun_flow(self._step(found), backends)
        ticket = table.ticket()
        result = await arun_flow(self._start(authorization, portal_cookie, now), backends)
        if found is not None and result.conclusion is not None:
            table.put(found, result.conclusion, ticket, now)
        return result

    def replay_inline(
        self, authorization: Sequence[str], portal_cookie: str | None = None
    ) -> Authenticated | None:
        """The async side's replay when it needs no await, else None.

        For an async caller's hot path (:meth:`authcore.gate.Gate.admit_inline`): a replay
        whose limiter runs in this process needs no I/O, so no coroutine. None means "await
        :meth:`aauthenticate`": nothing to replay, or a limiter that must be awaited.

        Raises:
            RateLimitedError: the replayed credential's workspace (or key) is over its limit.
            UnavailableError: the limiter failed (or answered something that is not a
                decision) and the policy is fail-closed.
        """
        table, limiters = self._areplay, self._in_process
        if table is None or limiters is None:
            return None
        found = self._lookup(table, authorization, portal_cookie, self.clock())
        if not isinstance(found, Conclusion):
            return None
        return self._replay_now(found, limiters)

    def _lookup(
        self,
        table: ConclusionTable,
        authorization: Sequence[str],
        portal_cookie: str | None,
        now: float,
    ) -> Conclusion | bytes | None:
        """The conclusion stored for the one credential a request carries, if it still holds
        at ``now``; else the table key a conclusion the whole flow reaches is kept under.

        None: the request carries two credentials, or none (the whole flow says what is
        wrong). One value rather than a (key, conclusion) pair: building and unpacking a pair
        on every replay costs more than telling a key from a conclusion. No grammar check is
        needed here: a key only ever finds a conclusion if its token is exactly one the whole
        flow extracted and verified before. A value the flow would read differently (extra
        spaces, another scheme) yields another token, so another key, misses, and takes the
        whole flow.
        """
        if portal_cookie is not None and self.reads_cookie:
            if authorization:
                return None
            token = portal_cookie
        elif len(authorization) == 1:
            value = authorization[0]
            # RFC 9110 §11.1: the scheme is case-insensitive; "Bearer " is the usual spelling.
            if value[:7] != "Bearer " and value[:7].lower() != "bearer ":
                return None
            token = value[7:]
        else:
            return None
        key = _sha256(token.encode()).digest()
        conclusion = table.get(key)
        if conclusion is None or now >= conclusion.valid_until:
            return key
        key_id = conclusion.key_id
        if key_id is not None:
            # A JWT verified by a secret that has since left the keyring is not trusted.
            keyring = self._settings.keyring
            if keyring is None or key_id not in keyring.kids:
                return key
        return conclusion

    def _replay_now(self, conclusion: Conclusion, limiters: Limiters) -> Authenticated:
        """Replay ``conclusion`` with its decisions taken in place on ``limiters``.

        Raises:
            RateLimitedError: the workspace (or the key) is over its limit.
            UnavailableError: the limiter failed and the policy is fail-closed, or answered
                something that is not a decision.
        """
        levels, limiter = conclusion.levels, limiters.limiter
        if limiter is None or not levels:
            return run_step(self._step(conclusion), limiters)
        if len(levels) == 1:
            bucket, policy = levels[0]
            try:
                decision = limiter.hit(bucket, policy)
            except Exception as exc:  # noqa: BLE001 - the flow's step decides what it means
                return run_step(self._step(conclusion), limiters, exc)
            if type(decision) is not RateLimitDecision or not decision.allowed:
                decision = admitted(decision, conclusion)  # the step's own reading: it raises
            return _new_tuple(Authenticated, (conclusion.principal, decision, conclusion, True, ()))
        try:
            decisions = limiter.hit_levels(levels)
        except Exception as exc:  # noqa: BLE001 - the flow's step decides what it means
            return run_step(self._step(conclusion), limiters, exc)
        decision = all_admitted(decisions, conclusion)  # the step's own reading
        return _new_tuple(
            Authenticated, (conclusion.principal, decision, conclusion, True, decisions)
        )

    def _start(self, authorization: Sequence[str], portal_cookie: str | None, now: float) -> Flow:
        credential = extract_credential(authorization, portal_cookie, self._settings.credentials)
        if credential is None:
            raise MissingCredentialError
        return authentication_flow(credential, self._settings, now)

    def _step(self, conclusion: Conclusion) -> LimitFlow:
        return rate_limit_step(conclusion, self._settings, replayed=True)


def _replay_table(
    backends: Backends | AsyncBackends | None, enabled: bool
) -> ConclusionTable | None:
    if not enabled or backends is None or not isinstance(backends.store, ConclusionSource):
        return None
    return backends.store.verified_results()


def _in_process_limiters(backends: AsyncBackends | None) -> Limiters | None:
    # An in-process limiter (memory) is asked in place on the async side: no await, no
    # coroutine for a decision that has nothing to wait for.
    limiter = None if backends is None else backends.limiter
    if backends is None or not isinstance(limiter, InProcessRateLimiter) or not limiter.in_process:
        return None
    return _InProcessLimiters(limiter, backends.fallback_limiter)
