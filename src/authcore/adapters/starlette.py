"""Starlette and FastAPI helpers around the pure ASGI middleware.

- :func:`install_auth` adds :class:`~authcore.adapters.asgi.AuthMiddleware` with route-level
  :func:`public` markers honoured, and :func:`install_error_handlers`.
- :func:`principal_from` reads the principal from a request or WebSocket, failing closed.
- :func:`require` is a FastAPI dependency factory; :func:`requires_permission` a decorator for
  Starlette endpoints. Both check the permission query and raise
  :class:`~authcore.errors.PermissionDeniedError` (403 ``insufficient_scope``).

The principal lives in the ASGI scope under :data:`authcore.binding.PRINCIPAL_KEY` only. It is
deliberately not copied to ``request.state``: that namespace is shared with the app's
lifespan state and any middleware, and one place to look means one place to trust.
Nothing here imports FastAPI: the dependency is plain Starlette, which FastAPI injects.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Final, NamedTuple, Protocol, TypeVar, cast

from authcore.adapters._common import (
    ErrorHook,
    GateOptions,
    GateSource,
    is_marked_public,
    lifecycle_of,
    make_gate,
    missing_extra,
    public,
    safe_response,
)

try:
    from starlette.requests import HTTPConnection, Request
    from starlette.responses import Response
    from starlette.routing import BaseRoute, Host, Match
    from starlette.types import Scope
except ImportError as exc:
    raise ImportError(
        missing_extra("authcore.adapters.starlette", "Starlette", "asgi"), name=exc.name
    ) from exc

from typing_extensions import Unpack

from authcore import binding
from authcore.adapters.asgi import AuthMiddleware
from authcore.errors import AuthcoreError
from authcore.permissions import Query, as_query
from authcore.principal import Principal
from authcore.responses import HTTPResponse

__all__ = [
    "allowed_methods",
    "install_auth",
    "install_error_handlers",
    "principal_from",
    "public",
    "public_endpoints",
    "require",
    "requires_permission",
    "to_response",
]

F = TypeVar("F", bound=Callable[..., Any])


class _HasRoutes(Protocol):
    @property
    def routes(self) -> Sequence[BaseRoute]: ...


class _StarletteApp(_HasRoutes, Protocol):
    def add_middleware(self, middleware_class: Any, *args: Any, **kwargs: Any) -> None: ...

    def add_exception_handler(self, exc_class_or_status_code: Any, handler: Any) -> None: ...


def principal_from(connection: HTTPConnection) -> Principal:
    """Return the principal the middleware attached to this request or WebSocket.

    Raises:
        PrincipalMissingError: the middleware did not run for this route (500, safe body).
    """
    return binding.principal_from(connection.scope)


def to_response(response: HTTPResponse) -> Response:
    """Turn a framework-neutral response into a Starlette one."""
    return Response(response.body, status_code=response.status, headers=dict(response.headers))


def install_error_handlers(
    app: _StarletteApp, *, realm: str = "api", on_error: ErrorHook | None = None
) -> None:
    """Answer any :class:`~authcore.errors.AuthcoreError` a handler raises with its problem
    document, including on routes the middleware does not cover (the fail-closed 500)."""

    async def handle(_request: Request, exc: Exception) -> Response:
        error = exc if isinstance(exc, AuthcoreError) else None
        return to_response(safe_response(error, realm, on_error))

    app.add_exception_handler(AuthcoreError, handle)


def allowed_methods(routes: Iterable[BaseRoute], scope: Scope) -> str:
    """Return the ``Allow`` value for the request's path: every method some route serves there,
    and ``HEAD`` wherever ``GET`` is served.

    Starlette's own 405 names only the methods of the first route whose path matched; an app
    that registers one route per method on a path (as FastAPI does) would then under-report
    (RFC 9110 §15.5.6).
    """
    methods: set[str] = set()
    for route in routes:
        match, _child = route.matches(scope)
        if match is not Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    if "GET" in methods:
        methods.add("HEAD")  # RFC 9110 §9.3.2
    return ", ".join(sorted(methods))


def _marked(route: BaseRoute) -> bool:
    return is_marked_public(getattr(route, "endpoint", None)) or is_marked_public(
        getattr(route, "app", None)
    )


def _routes_public(routes: Sequence[BaseRoute], scope: Scope) -> bool:
    partial: BaseRoute | None = None
    for route in routes:
        match, child = route.matches(scope)
        if match is Match.PARTIAL and partial is None:
            partial = route
        if match is not Match.FULL:
            continue
        if _marked(route):
            return True
        inner = getattr(route, "routes", None)
        if inner:
            return _routes_public(inner, {**scope, **child})
        return False
    # Starlette routes to the first full match, else answers the first partial one (the path
    # matched, the method did not) with a 405: on a public route that 405 needs no credential.
    return partial is not None and _marked(partial)


def _has_host_routes(routes: Sequence[BaseRoute]) -> bool:
    return any(
        isinstance(route, Host) or _has_host_routes(getattr(route, "routes", None) or ())
        for route in routes
    )


def _has_public(routes: Sequence[BaseRoute]) -> bool:
    return any(
        is_marked_public(getattr(route, "endpoint", None))
        or is_marked_public(getattr(route, "app", None))
        or _has_public(getattr(route, "routes", None) or ())
        for route in routes
    )


#: How many (method, path) answers :func:`public_endpoints` remembers.
PUBLIC_MEMO_SIZE: Final = 4096


class _RouteSummary(NamedTuple):
    """What :func:`public_endpoints`' memo was filled from: the route list, and what it holds."""

    routes: Sequence[BaseRoute] | None
    length: int
    by_host: bool
    any_public: bool


def public_endpoints(app: _HasRoutes) -> Callable[[Scope], bool]:
    """Return an ``is_public(scope)`` for the middleware: true when the route ``app`` would
    pick for the request is marked with :func:`public` (an endpoint, or a mounted app).

    Matching every route on every request is most of a fast endpoint's cost, so answers are
    remembered per (scope type, method, path), and the Host header where the app routes by
    host, in a bounded memo. Routes are read at request time: the memo starts afresh whenever
    the app's route list changes length, so routes added after the middleware count (a route
    added inside an already-mounted sub-application is seen once the memo is refilled).
    """
    memo: dict[tuple[str, ...], bool] = {}
    summary = _RouteSummary(routes=None, length=-1, by_host=False, any_public=True)

    def is_public(scope: Scope) -> bool:
        nonlocal summary
        # One read of the summary: another thread may replace it meanwhile, never change it.
        routes, current = app.routes, summary
        if routes is not current.routes or len(routes) != current.length:
            memo.clear()
            current = summary = _RouteSummary(
                routes, len(routes), _has_host_routes(routes), _has_public(routes)
            )
        if not current.any_public:
            return False  # nothing is marked: no need to match anything
        key: tuple[str, ...] = (scope["type"], scope.get("method", ""), scope.get("path", ""))
        if current.by_host:
            host = [value for name, value in scope.get("headers", ()) if name == b"host"]
            key = (*key, repr(host))
        answer = memo.get(key)
        if answer is None:
            answer = _routes_public(routes, scope)
            if len(memo) >= PUBLIC_MEMO_SIZE:
                memo.clear()
            memo[key] = answer
        return answer

    return is_public


def install_auth(
    app: _StarletteApp,
    authenticator: GateSource,
    **options: Unpack[GateOptions],
) -> None:
    """Add the auth middleware to a Starlette or FastAPI ``app``, with its error handlers.

    Endpoints marked with :func:`public` skip authentication; the options are those of
    :class:`~authcore.adapters.asgi.AuthMiddleware`. An :class:`authcore.backends.Auth`
    starts and closes with the app's lifespan.

    Raises:
        ConfigurationError: an invalid prefix or authenticator.
    """
    # Validate now, at start-up, rather than when Starlette builds its middleware stack.
    gate = make_gate(authenticator, options)
    app.add_middleware(
        AuthMiddleware,
        authenticator=gate,
        is_public=public_endpoints(app),
        lifecycle=lifecycle_of(authenticator),
    )
    install_error_handlers(app, realm=gate.routes.default.settings.realm, on_error=gate.on_error)


def require(query: Query | str) -> Callable[[HTTPConnection], Awaitable[Principal]]:
    """Return a FastAPI dependency that yields the principal if it satisfies ``query``.

    Use as ``principal: Annotated[Principal, Depends(require("keys.read"))]``. The query is
    parsed now, so a typo fails at import time.

    Raises:
        InvalidPermissionError: ``query`` breaks the grammar (at once).
    """
    parsed = as_query(query)

    async def dependency(connection: HTTPConnection) -> Principal:
        principal = principal_from(connection)
        principal.authorize(parsed)
        return principal

    return dependency


def requires_permission(query: Query | str) -> Callable[[F], F]:
    """Decorate a Starlette endpoint ``f(request)`` so it runs only if the principal satisfies
    ``query``; otherwise :class:`~authcore.errors.PermissionDeniedError` (403).

    Raises:
        InvalidPermissionError: ``query`` breaks the grammar (at decoration time).
    """
    parsed = as_query(query)

    def decorate(endpoint: F) -> F:
        if inspect.iscoroutinefunction(endpoint):

            @functools.wraps(endpoint)
            async def async_wrapper(connection: HTTPConnection, /, *args: Any, **kw: Any) -> Any:
                principal_from(connection).authorize(parsed)
                return await endpoint(connection, *args, **kw)

            return cast("F", async_wrapper)

        @functools.wraps(endpoint)
        def wrapper(connection: HTTPConnection, /, *args: Any, **kw: Any) -> Any:
            principal_from(connection).authorize(parsed)
            return endpoint(connection, *args, **kw)

        return cast("F", wrapper)

    return decorate
