"""The dashboard proxy's request builder: a browser request in, the API request (or an error) out.

Browser code calls the dashboard, never the API. The proxy verifies the dashboard session,
maps the user's organization to a workspace, mints a short-lived JWT and forwards the request
to the API with that JWT as the bearer. This package is the pure part: it takes plain values
(the request, the verified session, the resolved workspace, ``now``) and returns a frozen
:class:`UpstreamRequest` or raises one of authcore's errors. Sockets, cookies parsing of the
dashboard's own session and the HTTP client live in :mod:`authcore.adapters.proxy`.

Upstream headers are *built*, never filtered: the only request headers copied are those in
:attr:`ProxySettings.allowed_headers` (a configuration that names a header which must never cross,
such as ``cookie`` or ``x-forwarded-for``, is refused when it is built), and then the proxy adds
``host``, ``authorization`` and, for a body, ``content-length``. So a header the allow-list does
not name, however spelled (case, underscores, Unicode look-alikes), never reaches the API.

The errors it raises are part of authcore's one tree, drawn in :mod:`authcore.errors`: each
derives from :class:`~authcore.errors.ProxyError` and from the branch that says who is at fault
(:class:`~authcore.errors.ProxyRequestError` and its subclasses, 400-431, for the request;
:class:`~authcore.errors.DashboardSessionRequiredError`, 401;
:class:`~authcore.errors.WorkspaceUnavailableError`, 403;
:class:`~authcore.errors.SigningUnavailableError`, 503; :class:`~authcore.errors.UpstreamError`
and its subclasses, 502 and 504, for the API's answer).

A missing or disabled workspace is a 403, never a 401: a dashboard logs its user out on 401,
and the user's dashboard session is fine.

The parts, each a module of this package (import everything from ``authcore.proxy``):
``_rules`` (the header sets and the grammar of paths and values), ``_settings``
(:class:`ProxySettings`), ``_request`` (:func:`prepare_request`: every check that needs only
the request), ``_identity`` (the dashboard session, the injected lookups, :func:`check_identity`),
``_upstream`` (minting or reusing the JWT, :func:`build_upstream_request`) and ``_response``
(:func:`filter_response_headers`).
"""

from __future__ import annotations

from authcore.proxy._identity import (
    AsyncDashboardSessionVerifier,
    AsyncWorkspaceResolver,
    DashboardSession,
    DashboardSessionVerifier,
    WorkspaceResolver,
    check_identity,
)
from authcore.proxy._request import IncomingRequest, PreparedRequest, prepare_request
from authcore.proxy._response import filter_response_headers
from authcore.proxy._rules import (
    DEFAULT_ALLOWED_HEADERS,
    HOP_BY_HOP_HEADERS,
    NEVER_FORWARDED_HEADERS,
    PROXY_OWN_HEADERS,
)
from authcore.proxy._settings import ProxySettings
from authcore.proxy._upstream import (
    TokenMinter,
    TokenReuseCache,
    UpstreamRequest,
    build_upstream_request,
)

__all__ = [
    "DEFAULT_ALLOWED_HEADERS",
    "HOP_BY_HOP_HEADERS",
    "NEVER_FORWARDED_HEADERS",
    "PROXY_OWN_HEADERS",
    "AsyncDashboardSessionVerifier",
    "AsyncWorkspaceResolver",
    "DashboardSession",
    "DashboardSessionVerifier",
    "IncomingRequest",
    "PreparedRequest",
    "ProxySettings",
    "TokenMinter",
    "TokenReuseCache",
    "UpstreamRequest",
    "WorkspaceResolver",
    "build_upstream_request",
    "check_identity",
    "filter_response_headers",
    "prepare_request",
]
