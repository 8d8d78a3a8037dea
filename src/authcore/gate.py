"""The request gate: one entry point from a request's plain facts to a principal or an answer.

Every adapter (ASGI, WSGI, Flask, Django) reads the same few facts off its framework's request
(the method, the ``Authorization`` field values, and for routes that take the portal cookie
the ``Cookie``, ``Sec-Fetch-Site``, ``Origin`` and ``Host`` values and the scheme) and hands
them to :meth:`Gate.admit` (or :meth:`Gate.aadmit`). The gate picks the route group, runs
step 1 (exactly one credential, the cross-site rule for cookie writes) and steps 2-4 through
the group's :class:`~authcore.authenticator.Authenticator`, and returns either
:class:`~authcore.flow.Authenticated` (the principal and its rate-limit decision, whose
headers go on the response) or the :class:`~authcore.responses.HTTPResponse` to send instead.
It never raises: a bug in the step is reported to ``on_bug`` and answered as a safe 500.

So adapters only translate. The options they all take (route groups, public paths and
prefixes, the ``on_error`` hook, the metrics hook and its timer) live here, once, in one
frozen value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Final, NamedTuple, Protocol, runtime_checkable

import attrs

from authcore.authenticator import Authenticator
from authcore.credentials import (
    SAFE_METHODS,
    CredentialKind,
    check_cross_site,
    classify_token,
    parse_cookie_header,
    request_origin,
)
from authcore.errors import AuthcoreError, ConfigurationError, RateLimitedError, ServerError
from authcore.flow import Authenticated
from authcore.principal import Principal
from authcore.ratelimit import RateLimitDecision
from authcore.ratelimit_fields import LimitFields
from authcore.responses import HTTPResponse, error_response
from authcore.usage import ALLOWED, UsageSink

__all__ = [
    "AuthObserver",
    "AuthOutcome",
    "BugHook",
    "ErrorHook",
    "Gate",
    "RequestMetrics",
    "RouteGroups",
    "RouteTable",
    "answer_error",
    "rate_limit_field_bytes",
    "rate_limit_fields",
    "rate_limit_header_bytes",
]

#: ``on_error(error)`` returns a custom response, or None for the default problem document.
ErrorHook = Callable[[AuthcoreError], HTTPResponse | None]

#: ``on_bug(exception, where)`` hears of an exception that is a bug (adapters log it).
BugHook = Callable[[BaseException, str], None]


class RequestMetrics(Protocol):
    """A metrics hook the adapters call once per request.

    Called with the response status, the principal's workspace id (``""`` without one) and
    the request's duration in seconds. It must not raise; if it does, the failure is
    reported as a bug and the response is unchanged.
    """

    def __call__(self, status: int, workspace_id: str, duration: float, /) -> None: ...


class AuthOutcome(NamedTuple):
    """What the auth step of one request came to, for an observer (metrics exporters).

    ``code`` is ``"admitted"`` or the refusal's stable error code (``credential_invalid``,
    ``rate_limited``, ``unavailable``, ...); ``source`` the credential source (``root_key``,
    ``portal_session``, ``jwt``) as far as it is known, else ``""``; ``workspace_id`` the
    principal's (``""`` for a refusal); ``replayed`` whether the verified-result cache answered;
    ``decision`` the rate-limit decision taken (None: none was); ``seconds`` the step's time.
    Never a credential, a digest or a token.
    """

    status: int
    code: str
    source: str
    workspace_id: str
    replayed: bool
    decision: RateLimitDecision | None
    seconds: float


class AuthObserver(Protocol):
    """Hears of every auth step's outcome (see :class:`AuthOutcome`). It must not raise; if
    it does, the failure is reported as a bug and the response is unchanged."""

    def __call__(self, outcome: AuthOutcome, /) -> None: ...


#: Credential kinds as the principal's source names them.
_SOURCE_OF_KIND: Final = {
    CredentialKind.ROOT_KEY: "root_key",
    CredentialKind.PORTAL_TOKEN: "portal_session",
    CredentialKind.JWT: "jwt",
}


@runtime_checkable
class RouteGroups(Protocol):
    """What knows a service's route groups: the default authenticator and the others by
    path prefix (:class:`authcore.backends.Auth`). Adapters accept it where they take an
    authenticator."""

    @property
    def authenticator(self) -> Authenticator: ...

    @property
    def groups(self) -> Mapping[str, Authenticator]: ...


# A dot segment or an empty segment: such a path is never public by prefix (fail closed, as a
# proxy in front may normalise it to somewhere else).
_UNNORMALISED: Final = re.compile(r"(^|/)\.{1,2}(/|$)|//")


def _check_prefix(prefix: str) -> str:
    if not isinstance(prefix, str) or not prefix.startswith("/") or not prefix.endswith("/"):
        # "/pub" would also match "/publish-keys": prefixes end at a segment boundary.
        raise ConfigurationError("path prefixes start and end with '/', e.g. '/static/'")
    return prefix


@attrs.frozen
class RouteTable:
    """Which paths are public, and which authenticator each other path uses.

    ``groups`` maps a path prefix (``"/portal/"``) to the authenticator of that route group;
    the longest matching prefix wins and every other path uses ``default``. Public paths are
    exact; public prefixes end in ``/`` and never match a path with dot or empty segments.

    Raises:
        ConfigurationError: a prefix that does not start and end with ``/``.
    """

    default: Authenticator
    groups: tuple[tuple[str, Authenticator], ...] = ()
    public_paths: frozenset[str] = frozenset()
    public_prefixes: tuple[str, ...] = ()

    @classmethod
    def build(
        cls,
        authenticator: Authenticator,
        *,
        groups: Mapping[str, Authenticator] | None = None,
        public_paths: Iterable[str] = (),
        public_prefixes: Iterable[str] = (),
    ) -> RouteTable:
        """Validate and normalise the adapter's configuration.

        Raises:
            ConfigurationError: a malformed prefix or a value that is not an Authenticator.
        """
        ordered = sorted(
            ((_check_prefix(prefix), auth) for prefix, auth in (groups or {}).items()),
            key=lambda item: len(item[0]),
            reverse=True,
        )
        for auth in [authenticator, *(auth for _, auth in ordered)]:
            if not isinstance(auth, Authenticator):
                raise ConfigurationError("expected an authcore.flow.Authenticator")
        if isinstance(public_paths, str) or isinstance(public_prefixes, str):
            raise ConfigurationError("public paths and prefixes are collections of strings")
        return cls(
            authenticator,
            tuple(ordered),
            frozenset(public_paths),
            tuple(_check_prefix(prefix) for prefix in public_prefixes),
        )

    def is_public(self, path: str) -> bool:
        """Return whether ``path`` is configured public."""
        if path in self.public_paths:
            return True
        if not self.public_prefixes or _UNNORMALISED.search(path):
            return False
        return path.startswith(self.public_prefixes)

    def authenticator_for(self, path: str) -> Authenticator:
        """Return the authenticator of the route group ``path`` belongs to."""
        for prefix, authenticator in self.groups:
            if path.startswith(prefix):
                return authenticator
        return self.default


def rate_limit_field_bytes(result: Authenticated) -> list[tuple[bytes, bytes]]:
    """The rate-limit fields an admitted request's response carries, as ASGI wants them.

    Those of the route group's style (:class:`~authcore.ratelimit_fields.RateLimitHeaders`),
    made by the conclusion's :class:`~authcore.ratelimit_fields.LimitFields`; none for an
    unlimited request.
    """
    sent = result[1]
    if sent is None:
        return []
    conclusion = result[2]
    fields = None if conclusion is None else conclusion.fields
    if fields is None:
        fields = LimitFields.for_decision(sent)
    return fields.header_bytes(sent, result[4])


def rate_limit_fields(result: Authenticated) -> list[tuple[str, str]]:
    """:func:`rate_limit_field_bytes` as ``str`` pairs (WSGI, Flask, Django)."""
    sent = result[1]
    if sent is None:
        return []
    conclusion = result[2]
    fields = None if conclusion is None else conclusion.fields
    if fields is None:
        fields = LimitFields.for_decision(sent)
    return fields.headers(sent, result[4])


def rate_limit_header_bytes(decision: RateLimitDecision) -> list[tuple[bytes, bytes]]:
    """The legacy ``RateLimit-*`` fields of :func:`~authcore.responses.rate_limit_headers`,
    as bytes."""
    return [
        (b"ratelimit-limit", b"%d" % decision.limit),
        (b"ratelimit-remaining", b"%d" % decision.remaining),
        (b"ratelimit-reset", b"%d" % decision.reset),
    ]


def _count_admitted(usage: UsageSink, result: Authenticated) -> None:
    conclusion = result.conclusion
    if conclusion is not None:
        usage.count(conclusion.usage_key)
    else:
        usage.count((result.principal.workspace_id, "", ALLOWED))


def _with_length(response: HTTPResponse) -> HTTPResponse:
    headers = tuple((name, value) for name, value in response.headers if name != "content-length")
    return HTTPResponse(
        response.status, (*headers, ("content-length", str(len(response.body)))), response.body
    )


@attrs.frozen
class Gate:
    """The one request gate, with every option an adapter takes (see the module docstring).

    Build it with :meth:`build`; adapters accept a ``Gate`` or an ``Authenticator`` plus the
    same keyword options. ``timer`` is read only when ``metrics`` or ``observer`` is set.
    """

    routes: RouteTable
    on_error: ErrorHook | None = None
    metrics: RequestMetrics | None = None
    timer: Callable[[], float] | None = None
    on_bug: BugHook | None = None
    observer: AuthObserver | None = None
    usage: UsageSink | None = None

    @classmethod
    def build(
        cls,
        authenticator: Authenticator,
        *,
        groups: Mapping[str, Authenticator] | None = None,
        public_paths: Iterable[str] = (),
        public_prefixes: Iterable[str] = (),
        on_error: ErrorHook | None = None,
        metrics: RequestMetrics | None = None,
        timer: Callable[[], float] | None = None,
        on_bug: BugHook | None = None,
        observer: AuthObserver | None = None,
        usage: UsageSink | None = None,
    ) -> Gate:
        """Validate the options and return the gate.

        ``usage`` counts every outcome per workspace, credential and outcome (one dictionary
        increment per request; see :mod:`authcore.usage`).

        Raises:
            ConfigurationError: an invalid prefix or authenticator, or metrics or an observer
                with no timer.
        """
        if (metrics is not None or observer is not None) and timer is None:
            raise ConfigurationError("metrics need a timer (e.g. time.perf_counter)")
        routes = RouteTable.build(
            authenticator,
            groups=groups,
            public_paths=public_paths,
            public_prefixes=public_prefixes,
        )
        return cls(routes, on_error, metrics, timer, on_bug, observer, usage)

    def route(self, path: str) -> Authenticator | None:
        """Return the authenticator of ``path``'s route group, or None for a public path."""
        routes = self.routes
        if path in routes.public_paths or (routes.public_prefixes and routes.is_public(path)):
            return None
        if not routes.groups:
            return routes.default
        return routes.authenticator_for(path)

    def admit(  # noqa: PLR0917 - positional on purpose: adapters call it on every request
        self,
        authenticator: Authenticator,
        method: str,
        authorization: Sequence[str],
        cookie: Sequence[str] = (),
        sec_fetch_site: Sequence[str] = (),
        origin: Sequence[str] = (),
        scheme: str = "http",
        host: Sequence[str] = (),
        *,
        websocket: bool = False,
    ) -> Authenticated | HTTPResponse:
        """Run steps 1-4 for one request; return the principal or the answer to send.

        Header values are as sent (latin-1 text, repeated fields kept apart). ``cookie`` and
        the values after it matter only on a route group that takes the portal cookie.
        """
        started = 0.0 if self.observer is None else self._started()
        try:
            portal_cookie = None if not cookie else _portal_cookie(
                authenticator, method, authorization, cookie, sec_fetch_site, origin,
                scheme, host, websocket,
            )  # fmt: skip
            result = authenticator.authenticate(authorization, portal_cookie)
        except Exception as exc:  # noqa: BLE001 - every outcome is an answer, a bug a safe 500
            return self._refuse(exc, authenticator, authorization, cookie, started)
        if self.usage is not None:
            _count_admitted(self.usage, result)
        return result if self.observer is None else self._admitted(result, started)

    async def aadmit(  # noqa: PLR0917 - as admit
        self,
        authenticator: Authenticator,
        method: str,
        authorization: Sequence[str],
        cookie: Sequence[str] = (),
        sec_fetch_site: Sequence[str] = (),
        origin: Sequence[str] = (),
        scheme: str = "http",
        host: Sequence[str] = (),
        *,
        websocket: bool = False,
    ) -> Authenticated | HTTPResponse:
        """Asynchronous twin of :meth:`admit`."""
        started = 0.0 if self.observer is None else self._started()
        try:
            portal_cookie = None if not cookie else _portal_cookie(
                authenticator, method, authorization, cookie, sec_fetch_site, origin,
                scheme, host, websocket,
            )  # fmt: skip
            result = await authenticator.aauthenticate(authorization, portal_cookie)
        except Exception as exc:  # noqa: BLE001 - every outcome is an answer, a bug a safe 500
            return self._refuse(exc, authenticator, authorization, cookie, started)
        if self.usage is not None:
            _count_admitted(self.usage, result)
        return result if self.observer is None else self._admitted(result, started)

    def admit_inline(
        self, authenticator: Authenticator, authorization: Sequence[str]
    ) -> Authenticated | HTTPResponse | None:
        """:meth:`aadmit` for a route group without the portal cookie, when it needs no await.

        An async adapter's hot path: a replayed credential whose limiter runs in this process
        (:meth:`~authcore.authenticator.Authenticator.replay_inline`). None means "await
        :meth:`aadmit`", which gives the same answer for everything else.
        """
        if self.observer is not None:
            return self._observed_inline(authenticator, authorization)
        try:
            result = authenticator.replay_inline(authorization)
        except Exception as exc:  # noqa: BLE001 - every outcome is an answer, a bug a safe 500
            return self._refuse(exc, authenticator, authorization, (), 0.0)
        usage = self.usage
        if usage is not None and result is not None:
            # Every replayed request's path: the key was built once, with the conclusion.
            conclusion = result.conclusion
            if conclusion is not None:
                usage.count(conclusion.usage_key)
            else:
                _count_admitted(usage, result)
        return result

    def _observed_inline(
        self, authenticator: Authenticator, authorization: Sequence[str]
    ) -> Authenticated | HTTPResponse | None:
        # admit_inline with an observer: timed, and every answer reported.
        started = self._started()
        try:
            result = authenticator.replay_inline(authorization)
        except Exception as exc:  # noqa: BLE001 - every outcome is an answer, a bug a safe 500
            return self._refuse(exc, authenticator, authorization, (), started)
        if result is None:
            return None
        if self.usage is not None:
            _count_admitted(self.usage, result)
        return self._admitted(result, started)

    def _refuse(
        self,
        exc: Exception,
        authenticator: Authenticator,
        authorization: Sequence[str],
        cookie: Sequence[str],
        started: float,
    ) -> HTTPResponse:
        # The one catch-and-answer: our errors are answered, anything else is a bug (a 500).
        if isinstance(exc, AuthcoreError):
            error: AuthcoreError = exc
            response = self.answer(exc, authenticator)
        else:
            self.bug(exc, "the authentication step")
            error = ServerError("unexpected exception in the authentication step")
            response = self.answer(None, authenticator)
        if self.usage is not None:
            # Who was refused is known only once the credential was verified (a disabled
            # workspace, a rate limit, a limiter outage); everything else is "unknown".
            self.usage.count((error.workspace_id or "", error.credential_id or "", error.code))
        if self.observer is not None:
            source = _source(authenticator, authorization, cookie)
            decision = error.decision if isinstance(error, RateLimitedError) else None
            outcome = AuthOutcome(response.status, error.code, source, "", False, decision, 0.0)
            self._observe(outcome, started)
        return response

    def _started(self) -> float:
        timer = self.timer
        return timer() if self.observer is not None and timer is not None else 0.0

    def _admitted(self, result: Authenticated, started: float) -> Authenticated:
        if self.observer is not None:
            self._observe_admitted(result, started)
        return result

    def _observe_admitted(self, result: Authenticated, started: float) -> None:
        principal = result.principal
        outcome = AuthOutcome(
            200,
            "admitted",
            principal.source.value,
            principal.workspace_id,
            result.replayed,
            result.rate_limit,
            0.0,
        )
        self._observe(outcome, started)

    def _observe(self, outcome: AuthOutcome, started: float) -> None:
        observer, timer = self.observer, self.timer
        if observer is None or timer is None:
            return
        try:
            observer(outcome._replace(seconds=timer() - started))
        except Exception as exc:  # noqa: BLE001 - an observer must never change a response
            self.bug(exc, "the auth observer")

    def answer(
        self, error: AuthcoreError | None, authenticator: Authenticator | None = None
    ) -> HTTPResponse:
        """Return the response for ``error`` (None: a bug, answered as a safe 500).

        Used for refusals of the auth step and for the library's errors a handler raises
        (``authorize``, ``principal_from``); see :func:`answer_error`.
        """
        realm = (authenticator or self.routes.default).settings.realm
        return answer_error(error, realm=realm, on_error=self.on_error, on_bug=self.on_bug)

    def report(self, status: int, principal: Principal | None, started_at: float) -> None:
        """Call the metrics hook, if any, for a request that began at ``started_at``.

        A failing hook is reported as a bug, never raised to the client.
        """
        metrics, timer = self.metrics, self.timer
        if metrics is None or timer is None:
            return
        try:
            metrics(
                status, "" if principal is None else principal.workspace_id, timer() - started_at
            )
        except Exception as exc:  # noqa: BLE001 - metrics must never change a response
            self.bug(exc, "the metrics hook")

    def bug(self, exc: BaseException, where: str) -> None:
        """Tell ``on_bug`` about an exception that should not have happened."""
        if self.on_bug is not None:
            self.on_bug(exc, where)


def _source(
    authenticator: Authenticator, authorization: Sequence[str], cookie: Sequence[str]
) -> str:
    """Best effort, for a refusal's metrics only: which source the credential would be."""
    if len(authorization) == 1:
        value = authorization[0].strip(" \t")
        if value[:7].lower() == "bearer ":
            try:
                kind = classify_token(value[7:].strip(" "), authenticator.settings.credentials)
            except AuthcoreError:
                return ""
            return _SOURCE_OF_KIND[kind]
        return ""
    return "portal_session" if cookie and authenticator.reads_cookie and not authorization else ""


def _portal_cookie(  # noqa: PLR0917 - the request's facts, in admit's order
    authenticator: Authenticator,
    method: str,
    authorization: Sequence[str],
    cookie: Sequence[str],
    sec_fetch_site: Sequence[str],
    origin: Sequence[str],
    scheme: str,
    host: Sequence[str],
    websocket: bool,
) -> str | None:
    """Read the portal cookie and apply the cross-site rule to a cookie-borne write."""
    credentials = authenticator.settings.credentials
    if not cookie or credentials.portal_cookie is None:
        return None
    value = parse_cookie_header(cookie, credentials.portal_cookie)
    if value is not None and not authorization and (websocket or method not in SAFE_METHODS):
        check_cross_site(
            method,
            authorization,
            value,
            credentials,
            sec_fetch_site=sec_fetch_site,
            origin=origin,
            own_origin=request_origin(scheme, host),
            websocket=websocket,
        )
    return value


def answer_error(
    error: AuthcoreError | None,
    *,
    realm: str = "api",
    on_error: ErrorHook | None = None,
    on_bug: BugHook | None = None,
) -> HTTPResponse:
    """Return the response for ``error`` (None: a bug, answered as a safe 500).

    The ``on_error`` hook may return a custom response; if it returns None the default
    problem document is used, and if it raises or returns something else, ``on_bug`` hears
    of it and the default is used. A ``content-length`` header is always set.
    """
    if error is None:
        error = ServerError("unexpected exception in the authentication step")
    if on_error is not None:
        try:
            # Typed as returning HTTPResponse | None, but a hook is user code: check it.
            custom: object = on_error(error)
        except Exception as exc:  # noqa: BLE001 - a broken hook must not break the answer
            if on_bug is not None:
                on_bug(exc, "the on_error hook")
            custom = None
        if isinstance(custom, HTTPResponse):
            return _with_length(custom)
        if custom is not None and on_bug is not None:
            on_bug(TypeError(f"on_error returned {type(custom).__name__}"), "the on_error hook")
    return _with_length(error_response(error, realm=realm))
