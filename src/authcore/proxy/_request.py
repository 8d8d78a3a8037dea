"""The request side: the browser's request, and every check that needs nothing but it.

:func:`prepare_request` runs before any I/O (session lookup, workspace lookup), so a request
it refuses costs none; what it returns is what would be forwarded.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import attrs

from authcore.credentials import SAFE_METHODS, is_same_origin, request_origin
from authcore.errors import (
    BodyTooLargeError,
    CallerAuthorizationError,
    CrossSiteRequestError,
    HeadersTooLargeError,
    MethodNotAllowedError,
    PathNotProxiedError,
    ProxyRequestError,
)
from authcore.proxy._rules import HEADER_VALUE, HOP_BY_HOP_HEADERS, QUERY, ascii_lower, path_problem
from authcore.proxy._settings import ProxySettings

__all__ = ["IncomingRequest", "PreparedRequest", "prepare_request"]


def _header_pairs(value: Iterable[object]) -> tuple[tuple[str, str], ...]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ProxyRequestError("headers are (name, value) pairs of str")
    pairs = tuple(value)
    for pair in pairs:
        if (
            not isinstance(pair, tuple)
            or len(pair) != 2
            or not isinstance(pair[0], str)
            or not isinstance(pair[1], str)
        ):
            raise ProxyRequestError("headers are (name, value) pairs of str")
    return pairs  # type: ignore[return-value]  # every element was checked just above


@attrs.frozen
class IncomingRequest:
    """The browser's request as the proxy received it.

    ``path`` is the raw (still percent-encoded) path *after* the proxy's mount, ``query`` the
    raw query string without ``?``, ``headers`` every field in order with repeats kept (names
    as sent; ASGI hands bytes over, decode them as latin-1). ``scheme`` is how the request
    reached the dashboard (``http`` or ``https``); with ``Host`` it is the dashboard's own
    origin for the cross-site rule.

    Raises:
        ProxyRequestError: ``headers`` is not a collection of (name, value) pairs of str.
    """

    method: str
    path: str
    query: str = ""
    headers: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_header_pairs)
    body: bytes = attrs.field(default=b"", repr=False)
    scheme: str = "http"


@attrs.frozen
class PreparedRequest:
    """A request that passed every check that does not need the session (see prepare_request)."""

    method: str
    path: str
    query: str
    headers: tuple[tuple[str, str], ...]
    body: bytes = attrs.field(repr=False)


def _check_cross_site(
    method: str, scheme: str, headers: Sequence[tuple[str, str]], settings: ProxySettings
) -> None:
    """Apply the one cross-site rule of the core to a state-changing request.

    Every proxied request is carried by the dashboard's session cookie, so every method that
    is not safe must come from the dashboard's own pages.

    Raises:
        CrossSiteRequestError: not ``Sec-Fetch-Site: same-origin``, nor (without that header)
            an ``Origin`` equal to the dashboard's own or one of ``settings.trusted_origins``.
    """
    if method in SAFE_METHODS:
        return
    fetch_site: list[str] = []
    origin: list[str] = []
    host: list[str] = []
    for name, value in headers:
        lowered = ascii_lower(name)
        if lowered == "sec-fetch-site":
            fetch_site.append(value)
        elif lowered == "origin":
            origin.append(value)
        elif lowered == "host":
            host.append(value)
    if not is_same_origin(
        fetch_site,
        origin,
        own_origin=request_origin(scheme, host),
        allowed_origins=settings.trusted_origins,
    ):
        raise CrossSiteRequestError("state-changing request from another site")


def _check_target(request: IncomingRequest, settings: ProxySettings) -> None:
    """Check the method, path, query and body size (what :func:`prepare_request` checks second).

    Raises:
        MethodNotAllowedError: a method the proxy does not forward (405, with ``Allow``).
        ProxyRequestError: an unsafe path or query.
        PathNotProxiedError: the path is under no allowed prefix.
        BodyTooLargeError: the body is over ``max_body_bytes``.
    """
    if request.method not in settings.methods:
        raise MethodNotAllowedError(settings.methods)
    if len(request.path) > settings.max_path_length:
        raise ProxyRequestError("path too long")
    problem = path_problem(request.path)
    if problem is not None:
        raise ProxyRequestError(problem)
    if not any(request.path.startswith(prefix) for prefix in settings.path_prefixes):
        raise PathNotProxiedError
    if len(request.query) > settings.max_query_length:
        raise ProxyRequestError("query too long")
    if not QUERY.fullmatch(request.query):
        raise ProxyRequestError("query has a control, space, '#' or non-ASCII character")
    if len(request.body) > settings.max_body_bytes:
        raise BodyTooLargeError


def _copied_headers(
    headers: Sequence[tuple[str, str]], settings: ProxySettings
) -> tuple[tuple[str, str], ...]:
    """Return the allowed request headers, lowercased and trimmed, in order.

    Raises:
        ProxyRequestError: an allowed header's value is too long or not printable ASCII.
    """
    # RFC 9110 §7.6.1: a header named in Connection is hop-by-hop too, so it is not copied.
    hop_by_hop = set(HOP_BY_HOP_HEADERS)
    for name, value in headers:
        if ascii_lower(name) == "connection":
            hop_by_hop.update(option.strip(" \t").lower() for option in value.split(","))

    copied: list[tuple[str, str]] = []
    for name, value in headers:
        lowered = ascii_lower(name)
        if lowered is None or lowered not in settings.allowed_headers or lowered in hop_by_hop:
            continue
        # RFC 9110 §5.5: leading and trailing whitespace is not part of the value.
        value = value.strip(" \t")  # noqa: PLW2901 - the stripped value is the value
        if len(value) > settings.max_header_value_length:
            raise ProxyRequestError(f"header {lowered} too long")
        if not HEADER_VALUE.fullmatch(value):
            raise ProxyRequestError(f"header {lowered} has a control or non-ASCII character")
        copied.append((lowered, value))
    return tuple(copied)


def prepare_request(request: IncomingRequest, settings: ProxySettings) -> PreparedRequest:
    """Apply every rule that needs only the request; return what would be forwarded.

    Call it before any I/O (session lookup, workspace lookup): a request it refuses costs none.

    Raises:
        CallerAuthorizationError: an ``Authorization`` header in any letter case, even empty.
        HeadersTooLargeError: more than ``max_headers`` fields.
        MethodNotAllowedError: a method the proxy does not forward (405, with ``Allow``).
        ProxyRequestError: an unsafe path, query or header value.
        PathNotProxiedError: the path is under no allowed prefix.
        BodyTooLargeError: the body is over ``max_body_bytes``.
        CrossSiteRequestError: a state-changing request from another site.
    """
    headers = request.headers
    if len(headers) > settings.max_headers:
        raise HeadersTooLargeError
    # First, before anything else is looked at: a caller-supplied Authorization is refused in
    # any spelling (RFC 9110 §5.1: names are case-insensitive), however many times, even empty.
    if any(name.strip(" \t").lower() == "authorization" for name, _value in headers):
        raise CallerAuthorizationError
    _check_target(request, settings)
    copied = _copied_headers(headers, settings)
    _check_cross_site(request.method, request.scheme, headers, settings)
    return PreparedRequest(
        method=request.method,
        path=request.path,
        query=request.query,
        headers=copied,
        body=request.body,
    )
