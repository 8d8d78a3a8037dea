"""The example API: how a real service uses authcore, built only on its public API.

Routes (see docs/concepts.md)::

    GET    /healthz                 public
    GET    /openapi.json, /docs     public: this list as OpenAPI 3.1, generated from the
                                    route table below (:mod:`authcore.service.operations`)
    GET    /v1/principal            any authenticated caller
    GET    /v1/keys                 keys.read     ?identity=EXT: that identity's keys only;
                                    every list: ?limit=N (default 100, at most 500)&cursor=C
                                    -> {..., "next" (link or null), "next_cursor"}
    POST   /v1/keys                 keys.create   {"name", "permissions", "expires_in"?,
                                    "rate_limit"? ("N/SECONDS", the key's own limit),
                                    "identity"? (external id, made on first use)} -> 201
    DELETE /v1/keys/{key_id}        keys.revoke   -> 204; another workspace's key: 404
    GET    /v1/keys/{key_id}/usage  usage.read    ?since=T&until=T&granularity=minute|hour|day
    GET    /v1/usage                usage.read    the same query, for the whole workspace, or
                                    with ?identity=EXT summed over that identity's keys
    GET    /v1/audit-logs           audit.read    ?limit=N&cursor=C (or the older before=)
    POST   /v1/identities           identities.create {"external_id", "meta"?, "rate_limit"?}
                                    -> 201; 409 when the external id is taken
    GET    /v1/identities           identities.read ?limit=N&cursor=C (or the older
                                    after=EXT) -> {"identities", "next", "next_cursor",
                                    "next_after"}
    GET    /v1/identities/{external_id}
                                    identities.read -> the identity and "keys" (live ones)
    PATCH  /v1/identities/{external_id}
                                    identities.update {"rate_limit"?, "meta"?} (null clears)
    DELETE /v1/identities/{external_id}
                                    identities.delete ?revoke_keys=true -> 204; 409 while
                                    keys of it still work and revoke_keys is not set
    POST   /v1/portal-sessions      portal.create_session {"identity", "permissions",
                                    "key_permissions"?, "ttl"?} -> 201 {"session_id",
                                    "identity_id", "code", "code_expires_at", "expires_at",
                                    "portal_url"}
    DELETE /v1/portal-sessions/{session_id}
                                    portal.revoke_session -> 204; another workspace's: 404
    POST   /portal/exchange         public: the one-time code (form or JSON body, never the
                                    URL: a code in the query is spent, 400) for the
                                    ``authcore_portal`` cookie
    POST   /portal/logout           portal sessions only: revoke the session, clear the cookie
    GET    /portal/v1/principal     portal sessions only (cookie ``authcore_portal`` or Bearer)
    GET    /portal/v1/identity      portal sessions only: the session's identity, its
                                    permissions and key_permissions
    GET    /portal/v1/keys          keys.read     the session's identity's keys, paged as above
    POST   /portal/v1/keys          keys.create   {"name", "permissions" (within the
                                    session's key_permissions), "expires_in"?} -> 201
    DELETE /portal/v1/keys/{key_id} keys.revoke   -> 204; any other key: 404
    GET    /portal/v1/usage         usage.read    the identity's usage (query as /v1/usage)
    GET    /portal/v1/keys/{key_id}/usage
                                    usage.read    one of the identity's keys

The portal page (``/portal/`` and ``/portal/static/*``) is not in this list: the page's own
module routes it, and ``portal_url`` links to it. A caller
bound to an identity (a portal session, a key of an identity) sees that identity only:
another identity's key answers exactly like an unknown one (:mod:`authcore.service._scope`).

The auth middleware does steps 1-4 (find, verify, normalize, rate-limit) for every route but
``/healthz`` and ``/portal/exchange``; each handler does step 5 (``principal.authorize``) before
it touches data, and every change goes through the store's mutation methods with the principal
as the audit actor, so the change and its audit event commit together. A caller can never grant
a permission it does not hold (403).

A portal session reaches the end user's browser without a long-lived token in any URL: the
customer's backend asks ``POST /v1/portal-sessions`` for a session and gets a code that works
once within 60 seconds, and the page's link with the code in its fragment; a page of this
origin posts the code to ``/portal/exchange``, which mints the session's token and sets it as
an HttpOnly, SameSite=Strict cookie (``Secure`` over TLS) for ``/portal``. Both the exchange
and the logout are writes a browser makes with this site's cookie, so both pass the one
cross-site rule (:func:`authcore.credentials.is_same_origin`).

Bad input is a 400 problem, never a 500: numbers in queries are ASCII digits, strings in bodies
are valid Unicode, names and ids pass :func:`authcore.names.check_name`. A path with a trailing
slash is a 404 (no redirect is built from the ``Host`` header), and a 405 carries ``Allow``.
This module wires the app; the handlers are :class:`authcore.service.management.ManagementRoutes`
(``/v1`` and the portal's key routes), :class:`authcore.service.identities.IdentityRoutes`,
:class:`authcore.service.portal.PortalRoutes` (exchange, logout, identity) and
:class:`authcore.service.usage_routes.UsageRoutes`.
"""

from __future__ import annotations

import importlib.metadata
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import attrs
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response

from authcore.adapters.starlette import install_auth
from authcore.backends import Auth
from authcore.credentials import CredentialSettings
from authcore.flow import AsyncBackends, Authenticator, AuthSettings
from authcore.gate import AuthObserver, RequestMetrics, RouteGroups
from authcore.keyring import Keyring
from authcore.ratelimit import AsyncRateLimiter, RateLimitPolicy
from authcore.ratelimit_fields import RateLimitHeaders
from authcore.service import operations as ops
from authcore.service._http import (
    BODY_TIMEOUT,
    ProblemError,
    allowed_methods,
    json_response,
    problem_response,
)
from authcore.service._routing import IndexedRouter
from authcore.service.docs_page import DOCS_PATH, OPENAPI_PATH, DocsRoutes
from authcore.service.identities import IdentityRoutes
from authcore.service.management import ManagementRoutes
from authcore.service.openapi import Access, DocumentedRoute
from authcore.service.portal import PORTAL_COOKIE_PATH, PortalRoutes
from authcore.service.portal_page import portal_page, portal_static
from authcore.service.usage_routes import UsageRoutes
from authcore.store import AsyncStore
from authcore.tokens import generate_id
from authcore.usage import UsageSink

__all__ = ["PORTAL_COOKIE_PATH", "PORTAL_PREFIX", "app_for", "create_app"]

PORTAL_PREFIX: Final = "/portal/"
_IDENTITY_PATH: Final = "/v1/identities/{external_id:path}"
_SESSIONS_PATH: Final = "/v1/portal-sessions"
_SESSION_PATH: Final = "/v1/portal-sessions/{session_id}"
#: The limit for workspaces without their own policy (requests per minute).
DEFAULT_RATE_LIMIT: Final = RateLimitPolicy(600, 60)


async def _healthz(request: Request) -> Response:
    return json_response({"status": "ok"})


async def _on_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemError)  # noqa: S101 - registered for ProblemError only
    return problem_response(exc.status, exc.code, exc.title, headers=exc.headers)


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)  # noqa: S101 - registered for HTTPException only
    if exc.status_code == 404:
        return problem_response(404, "not_found", "No such resource.")
    if exc.status_code == 405:
        # RFC 9110 §15.5.6: a 405 names the methods the resource does support.
        allow = allowed_methods(request.app.routes, request.scope)
        return problem_response(
            405, "method_not_allowed", "The method is not allowed here.", headers={"allow": allow}
        )
    return problem_response(exc.status_code, "http_error", "The request failed.")


async def _on_bug(request: Request, exc: Exception) -> Response:
    # Only reached for a bug: a fixed body, never str(exc).
    return problem_response(500, "internal_error", "The server could not complete the request.")


class _RequestId:
    """Give every request an id for its audit events (and echo it as ``X-Request-Id``)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = generate_id("req")
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", ()), (b"x-request-id", request_id.encode())]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_id)


def create_app(
    store: AsyncStore,
    *,
    keyring: Keyring | None,
    limiter: AsyncRateLimiter,
    token_cache: Any = None,
    default_rate_limit: RateLimitPolicy | None = DEFAULT_RATE_LIMIT,
    clock: Callable[[], float] = time.time,
    portal_origins: Sequence[str] = (),
    secure_cookies: bool | None = None,
    body_timeout: float = BODY_TIMEOUT,
    observer: AuthObserver | None = None,
    metrics: RequestMetrics | None = None,
) -> Starlette:
    """Return the example API as an ASGI app.

    ``store`` serves lookups and management (wrap it in
    :class:`authcore.backends.cache.CachedStore` to keep lookups off the database);
    ``keyring`` verifies dashboard JWTs (None: JWTs are refused); ``limiter`` is shared by
    both route groups, keyed by workspace. ``portal_origins`` are origins (besides this
    site's own) whose portal writes are accepted from browsers that send no
    ``Sec-Fetch-Site``; ``secure_cookies=None`` marks the portal cookie ``Secure`` exactly
    when the request came over TLS. ``body_timeout`` bounds the time a request body may take.
    ``observer`` and ``metrics`` are the gate's hooks (a metrics exporter's).

    Raises:
        ConfigurationError: an invalid setting.
    """
    backends = AsyncBackends(store=store, limiter=limiter)
    api = Authenticator(
        AuthSettings(
            credentials=CredentialSettings.api(),
            keyring=keyring,
            token_cache=token_cache,
            default_rate_limit=default_rate_limit,
            realm="api",
        ),
        clock=clock,
        abackends=backends,
    )
    portal = Authenticator(
        AuthSettings(
            credentials=CredentialSettings.portal(allowed_origins=portal_origins),
            default_rate_limit=default_rate_limit,
            realm="portal",
        ),
        clock=clock,
        abackends=backends,
    )
    return _build(
        store,
        api,
        portal,
        gate_source=None,
        secure_cookies=secure_cookies,
        body_timeout=body_timeout,
        hooks=_Hooks(observer, metrics),
    )


def app_for(
    auth: Auth,
    *,
    secure_cookies: bool | None = None,
    body_timeout: float = BODY_TIMEOUT,
    own_lifecycle: bool = True,
    observer: AuthObserver | None = None,
    metrics: RequestMetrics | None = None,
) -> Starlette:
    """Return the example API wired by :func:`authcore.backends.connect` (what ``authcore
    serve`` runs): its store, route groups and limiter. With ``own_lifecycle`` the app starts
    and closes ``auth`` with its lifespan; without, the caller does (several apps, one Auth).
    ``observer`` and ``metrics`` are the gate's hooks (a metrics exporter's).

    Raises:
        ConfigurationError: an invalid setting.
    """
    return _build(
        auth.store,
        auth.api,
        auth.portal,
        gate_source=auth if own_lifecycle else _Groups(auth.api, auth.groups, auth.usage),
        secure_cookies=secure_cookies,
        body_timeout=body_timeout,
        hooks=_Hooks(observer, metrics),
    )


@attrs.frozen
class _Hooks:
    """The gate's metrics hooks, passed through (None: none)."""

    observer: AuthObserver | None = None
    metrics: RequestMetrics | None = None


@attrs.frozen
class _Groups:
    """Route groups without a lifecycle (the caller starts and closes the Auth), still
    counting usage into the Auth's counter (the adapter reads ``usage`` as it does off an Auth).
    """

    authenticator: Authenticator
    groups: Mapping[str, Authenticator]
    usage: UsageSink | None = None


def _routes(
    store: AsyncStore,
    clock: Callable[[], float],
    *,
    portal_credentials: CredentialSettings,
    secure_cookies: bool | None,
    body_timeout: float,
    rate_limit_headers: RateLimitHeaders,
) -> list[DocumentedRoute]:
    """Return the route table, its handlers bound to ``store`` and ``clock``, each route with
    the operation it serves (:mod:`authcore.service.operations`): the OpenAPI document's source.
    """
    management = ManagementRoutes(store, clock, body_timeout=body_timeout)
    identities = IdentityRoutes(store, clock, body_timeout=body_timeout)
    portal = PortalRoutes(
        store,
        clock,
        portal_credentials=portal_credentials,
        secure_cookies=secure_cookies,
        body_timeout=body_timeout,
    )
    usage = UsageRoutes(store, clock)
    docs = DocsRoutes(title="authcore serve", version=_version(), style=rate_limit_headers)
    route = DocumentedRoute
    return [
        route("/healthz", _healthz, "GET", ops.HEALTHZ),
        route(OPENAPI_PATH, docs.openapi, "GET", ops.OPENAPI),
        route(DOCS_PATH, docs.page, "GET", ops.DOCS_PAGE),
        route("/docs/static/{name}", docs.static, "GET", ops.DOCS_STATIC),
        route("/v1/principal", management.principal, "GET", ops.PRINCIPAL_OP),
        route("/v1/keys", management.list_keys, "GET", ops.LIST_KEYS),
        route("/v1/keys", management.create_key, "POST", ops.CREATE_KEY),
        route("/v1/keys/{key_id}", management.revoke_key, "DELETE", ops.REVOKE_KEY),
        route("/v1/keys/{key_id}/usage", usage.key, "GET", ops.KEY_USAGE_OP),
        route("/v1/usage", usage.workspace, "GET", ops.WORKSPACE_USAGE),
        route("/v1/audit-logs", management.audit_logs, "GET", ops.AUDIT_LOGS),
        route("/v1/identities", identities.create_identity, "POST", ops.CREATE_IDENTITY),
        route("/v1/identities", identities.list_identities, "GET", ops.LIST_IDENTITIES),
        # ":path": an external id is the operator's own and may hold a "/".
        route(_IDENTITY_PATH, identities.get_identity, "GET", ops.GET_IDENTITY),
        route(_IDENTITY_PATH, identities.update_identity, "PATCH", ops.UPDATE_IDENTITY),
        route(_IDENTITY_PATH, identities.delete_identity, "DELETE", ops.DELETE_IDENTITY),
        route(_SESSIONS_PATH, management.create_portal_session, "POST", ops.CREATE_PORTAL_SESSION),
        route(_SESSION_PATH, management.revoke_portal_session, "DELETE", ops.REVOKE_PORTAL_SESSION),
        route("/portal/", portal_page, "GET", ops.PORTAL_PAGE),
        route("/portal/static/{name}", portal_static, "GET", ops.PORTAL_STATIC),
        route("/portal/exchange", portal.exchange, "POST", ops.PORTAL_EXCHANGE),
        route("/portal/logout", portal.logout, "POST", ops.PORTAL_LOGOUT),
        route("/portal/v1/principal", management.principal, "GET", ops.PORTAL_PRINCIPAL),
        route("/portal/v1/identity", portal.identity, "GET", ops.PORTAL_IDENTITY),
        route("/portal/v1/keys", management.list_keys, "GET", ops.PORTAL_LIST_KEYS),
        route("/portal/v1/keys", management.create_portal_key, "POST", ops.PORTAL_CREATE_KEY),
        route("/portal/v1/keys/{key_id}", management.revoke_key, "DELETE", ops.PORTAL_REVOKE_KEY),
        route("/portal/v1/usage", usage.workspace, "GET", ops.PORTAL_USAGE),
        route("/portal/v1/keys/{key_id}/usage", usage.key, "GET", ops.PORTAL_KEY_USAGE),
    ]


def _version() -> str:
    try:
        return importlib.metadata.version("authcore-auth")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - run from a source tree
        return "0"


def _build(
    store: AsyncStore,
    api: Authenticator,
    portal: Authenticator,
    *,
    gate_source: RouteGroups | None,
    secure_cookies: bool | None,
    body_timeout: float,
    hooks: _Hooks,
) -> Starlette:
    routes = _routes(
        store,
        api.clock,
        portal_credentials=portal.settings.credentials,
        secure_cookies=secure_cookies,
        body_timeout=body_timeout,
        rate_limit_headers=api.settings.rate_limit_headers,
    )
    app = Starlette(
        routes=routes,
        middleware=[Middleware(_RequestId)],
        exception_handlers={
            ProblemError: _on_problem,
            HTTPException: _on_http_error,
            Exception: _on_bug,
        },
    )
    # Fixed paths found by one lookup (the same route Starlette's walk would pick), and
    # "/v1/keys/" a 404, not a redirect: Starlette would build the redirect's Location from
    # the request's Host header, and through a proxy that points the browser at the API.
    app.router = IndexedRouter(routes, redirect_slashes=False)
    # Steps 1-4 for every route but the public ones; the portal group accepts only portal
    # sessions, the rest only root keys and JWTs. Also answers AuthcoreErrors from handlers.
    # Public: the routes whose operation says so (those with a path parameter, the pages'
    # static files, are marked @public on their handler).
    public = [
        route.path
        for route in routes
        if route.operation.access is Access.PUBLIC and "{" not in route.path
    ]
    observer, metrics = hooks.observer, hooks.metrics
    if gate_source is None:
        install_auth(
            app,
            api,
            groups={PORTAL_PREFIX: portal},
            public_paths=public,
            observer=observer,
            metrics=metrics,
        )
    else:
        install_auth(app, gate_source, public_paths=public, observer=observer, metrics=metrics)
    return app
