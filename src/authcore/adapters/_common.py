"""What every adapter shares: route selection, the auth step, and outcome -> response.

Nothing here decides who may do what: the decisions are the core's
(:class:`~authcore.flow.Authenticator`, :func:`~authcore.credentials.check_cross_site`,
:func:`~authcore.responses.error_response`). This module only picks which authenticator a
path belongs to, feeds it the plain data a framework request carries, and turns any outcome,
a bug included, into a safe :class:`~authcore.responses.HTTPResponse`.
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Final, TypeVar

import attrs

from authcore.adapters.logging import RequestMetrics
from authcore.credentials import check_cross_site, parse_cookie_header
from authcore.errors import AuthcoreError, ConfigurationError, ServerError
from authcore.flow import Authenticated, Authenticator
from authcore.responses import HTTPResponse, error_response

__all__ = [
    "PUBLIC_MARKER",
    "ErrorHook",
    "RequestFacts",
    "RouteTable",
    "aauthenticate_request",
    "authenticate_request",
    "is_marked_public",
    "log_unexpected",
    "public",
    "report_metrics",
    "safe_response",
]

logger = logging.getLogger("authcore.adapters")

#: The attribute :func:`public` sets on a view, endpoint or endpoint class.
PUBLIC_MARKER: Final = "__authcore_public__"

# A dot segment or an empty segment: such a path is never public by prefix (fail closed, as a
# proxy in front may normalise it to somewhere else).
_UNNORMALISED: Final = re.compile(r"(^|/)\.{1,2}(/|$)|//")

F = TypeVar("F")

#: ``on_error(error)`` returns a custom response, or None for the default problem document.
ErrorHook = Callable[[AuthcoreError], HTTPResponse | None]


def public(view: F) -> F:
    """Mark a view (function or endpoint class) as public: the middleware skips it."""
    setattr(view, PUBLIC_MARKER, True)
    return view


def is_marked_public(view: object) -> bool:
    """Return whether :func:`public` marked ``view``."""
    return getattr(view, PUBLIC_MARKER, False) is True


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


@attrs.frozen
class RequestFacts:
    """The plain data the auth step reads from a request; header values as sent."""

    method: str
    authorization: Sequence[str]
    cookie: Sequence[str] = ()
    sec_fetch_site: Sequence[str] = ()
    origin: Sequence[str] = ()
    #: The serving site's own origin (scheme and Host), for the cross-site rule.
    own_origin: str | None = None
    websocket: bool = False


def _prepare(authenticator: Authenticator, facts: RequestFacts) -> str | None:
    """Read the portal cookie and run the cross-site check; return the cookie value."""
    policy = authenticator.settings.credentials
    cookie = None
    if policy.portal_cookie is not None:
        cookie = parse_cookie_header(facts.cookie, policy.portal_cookie)
    check_cross_site(
        facts.method,
        facts.authorization,
        cookie,
        policy,
        sec_fetch_site=facts.sec_fetch_site,
        origin=facts.origin,
        own_origin=facts.own_origin,
        websocket=facts.websocket,
    )
    return cookie


def authenticate_request(authenticator: Authenticator, facts: RequestFacts) -> Authenticated:
    """Run steps 1-4 synchronously for one request.

    Raises:
        AuthcoreError: any outcome other than a principal.
    """
    cookie = _prepare(authenticator, facts)
    return authenticator.authenticate(facts.authorization, cookie)


async def aauthenticate_request(authenticator: Authenticator, facts: RequestFacts) -> Authenticated:
    """Asynchronous twin of :func:`authenticate_request`.

    Raises:
        AuthcoreError: any outcome other than a principal.
    """
    cookie = _prepare(authenticator, facts)
    return await authenticator.aauthenticate(facts.authorization, cookie)


def log_unexpected(exc: BaseException, where: str) -> None:
    """Log a bug without its message: a message may quote a request, and so a secret."""
    frames = "".join(traceback.format_tb(exc.__traceback__))
    logger.error("authcore: unexpected %s in %s\n%s", type(exc).__name__, where, frames)


def safe_response(
    error: AuthcoreError | None, realm: str, on_error: ErrorHook | None = None
) -> HTTPResponse:
    """Return the response for ``error`` (None: a bug, answered as a safe 500).

    The ``on_error`` hook may return a custom response; if it returns None the default
    problem document is used, and if it raises, the failure is logged and the default is used.
    A ``content-length`` header is added.
    """
    if error is None:
        error = ServerError("unexpected exception in the authentication step")
    response: HTTPResponse | None = None
    if on_error is not None:
        try:
            # Typed as returning HTTPResponse | None, but a hook is user code: check it.
            custom: object = on_error(error)
        except Exception as exc:  # noqa: BLE001 - a broken hook must not break the answer
            log_unexpected(exc, "the on_error hook")
            custom = None
        if isinstance(custom, HTTPResponse):
            response = custom
        elif custom is not None:
            logger.error("authcore: on_error returned %s", type(custom).__name__)
    if response is None:
        response = error_response(error, realm=realm)
    headers = tuple((name, value) for name, value in response.headers if name != "content-length")
    return attrs.evolve(response, headers=(*headers, ("content-length", str(len(response.body)))))


def report_metrics(
    metrics: RequestMetrics | None, status: int, workspace_id: str, duration: float
) -> None:
    """Call the metrics hook, if any; a failing hook is logged, never raised to the client."""
    if metrics is None:
        return
    try:
        metrics(status, workspace_id, duration)
    except Exception as exc:  # noqa: BLE001 - metrics must never change a response
        log_unexpected(exc, "the metrics hook")
