"""FastAPI: authcore's credentials and refusals in the OpenAPI schema, the checks unchanged.

FastAPI builds ``/openapi.json`` (and the Authorize button of ``/docs``) from the dependencies
that are security schemes: instances of ``fastapi.security.base.SecurityBase`` carrying an
OpenAPI ``model`` and a ``scheme_name``, as its own ``HTTPBearer`` and ``APIKeyCookie`` are.
This module declares authcore's credentials that way:

- :func:`require` is :func:`authcore.adapters.starlette.require` (the same check, the same
  403) plus the schemes of the route group's :class:`~authcore.credentials.CredentialSettings`:
  ``Authorization: Bearer`` on API routes (root keys, dashboard JWTs); on portal routes the
  portal cookie, named by the settings, or the portal token as Bearer (either one).
- :func:`authenticated` declares the same schemes and returns the principal, with no
  permission of its own.
- :func:`problem_responses` documents the refusals (400, 401, 403, 429, 503) with their
  ``application/problem+json`` body and headers; :func:`secured` bundles a dependency and those
  responses as keyword arguments for a route decorator, an ``APIRouter`` or ``include_router``.

- :func:`install_auth` is :func:`authcore.adapters.starlette.install_auth` (the middleware and
  its error handlers) plus what a FastAPI app lacks to answer like the rest of authcore: its
  own refusals (no route 404, wrong method 405, any ``HTTPException``) as problem documents,
  ``HEAD`` answered as ``GET`` where FastAPI would refuse it, and the rate-limit headers of
  admitted requests in ``/openapi.json``.

Authentication stays with the ASGI middleware. The schemes read nothing from the request: they
only describe it. The dependency reads the
principal the middleware attached and checks the permission; on a route the middleware does
not cover it fails closed (500), exactly like the Starlette dependency.
"""

from __future__ import annotations

import copy
import http
import json
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Final, TypedDict

from authcore.adapters._common import missing_extra

try:
    from fastapi import Depends, FastAPI, params
    from fastapi.openapi.models import APIKey, APIKeyIn
    from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
    from fastapi.security.base import SecurityBase
except ImportError as error:
    raise ImportError(
        missing_extra("authcore.adapters.fastapi", "FastAPI", "fastapi"), name=error.name
    ) from error

from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from typing_extensions import Unpack

from authcore.adapters import starlette as _starlette
from authcore.adapters._common import GateOptions, GateSource
from authcore.credentials import DEFAULT_PORTAL_COOKIE, CredentialKind, CredentialSettings
from authcore.errors import (
    AuthcoreError,
    CredentialTooLargeError,
    CrossSiteRequestError,
    DuplicateCredentialError,
    InvalidCredentialError,
    MalformedCredentialError,
    MissingCredentialError,
    PermissionDeniedError,
    RateLimitedError,
    UnavailableError,
    UnsupportedSchemeError,
    WorkspaceDisabledError,
)
from authcore.flow import Authenticator
from authcore.gate import Gate
from authcore.permissions import Query
from authcore.principal import Principal
from authcore.ratelimit import RateLimitDecision
from authcore.ratelimit_fields import RateLimitHeaders, openapi_fields, rate_limit_headers_option
from authcore.responses import PROBLEM_CONTENT_TYPE, problem_body

__all__ = [
    "RouteOptions",
    "authenticated",
    "install_auth",
    "problem_responses",
    "require",
    "secured",
]

_Dependency = Callable[..., Awaitable[Principal]]

_API: Final = CredentialSettings.api()

# --- security schemes ---------------------------------------------------------------------------


class _BearerScheme(SecurityBase):
    """``Authorization: Bearer`` (OpenAPI ``http`` scheme ``bearer``). Reads nothing."""

    def __init__(self, *, scheme_name: str, description: str) -> None:
        self.model = HTTPBearerModel(description=description)
        self.scheme_name = scheme_name

    async def __call__(self) -> None:
        # The middleware found and verified the credential before FastAPI ran: a second
        # reading here could only disagree with it.
        return None


class _CookieScheme(SecurityBase):
    """A cookie credential (OpenAPI ``apiKey`` in ``cookie``). Reads nothing."""

    def __init__(self, *, cookie: str, scheme_name: str, description: str) -> None:
        # "in" is a keyword in Python, so the model takes it by its alias only.
        fields: dict[str, Any] = {"in": APIKeyIn.cookie, "name": cookie, "description": description}
        self.model = APIKey(**fields)
        self.scheme_name = scheme_name

    async def __call__(self) -> None:
        return None


# Scheme names are derived from what the route accepts (FastAPI keeps one definition per name):
# the credential kinds for Bearer, the cookie's name for a cookie other than the default.
_BEARER_KINDS: Final = (
    (CredentialKind.ROOT_KEY, "RootKey", "a root key ({root}...)"),
    (CredentialKind.PORTAL_TOKEN, "PortalToken", "a portal session token ({portal}...)"),
    (CredentialKind.JWT, "JWT", "a JWT minted by the dashboard proxy"),
)
_BEARER_NAMES: Final = frozenset(name for _, name, _ in _BEARER_KINDS)


def _cookie_scheme_name(cookie: str) -> str:
    if cookie == DEFAULT_PORTAL_COOKIE:
        return "PortalCookie"
    # OpenAPI 3.1 §4.8.7.1: component names match ^[a-zA-Z0-9.\-_]+$.
    return "PortalCookie." + re.sub(r"[^A-Za-z0-9_-]", "-", cookie)


def _schemes(settings: CredentialSettings) -> tuple[_BearerScheme | _CookieScheme, ...]:
    """The schemes a route with ``settings`` accepts; alternatives, any one is enough."""
    accepted = [(name, what) for kind, name, what in _BEARER_KINDS if kind in settings.accepts]
    prefixes = {"root": settings.root_key_prefix, "portal": settings.portal_token_prefix}
    described = " or ".join(what.format(**prefixes) for _, what in accepted)
    schemes: list[_BearerScheme | _CookieScheme] = [
        _BearerScheme(
            scheme_name="Or".join(name for name, _ in accepted),
            description=f"`Authorization: Bearer <credential>`: {described}.",
        )
    ]
    if settings.portal_cookie is not None and CredentialKind.PORTAL_TOKEN in settings.accepts:
        schemes.append(
            _CookieScheme(
                cookie=settings.portal_cookie,
                scheme_name=_cookie_scheme_name(settings.portal_cookie),
                description=(
                    "The portal session cookie (HttpOnly), set by the portal's code exchange. "
                    "State-changing requests must be same-origin."
                ),
            )
        )
    return tuple(schemes)


# --- dependencies -------------------------------------------------------------------------------


def _declaring_schemes(
    check: Callable[[HTTPConnection], Awaitable[Principal]], settings: CredentialSettings
) -> _Dependency:
    # FastAPI finds security schemes among a dependency's sub-dependencies and lists each as
    # one alternative of the operation's `security`; the result is ``check``'s.
    schemes = _schemes(settings)
    if len(schemes) == 1:
        (bearer,) = schemes

        async def dependency(
            connection: HTTPConnection,
            _bearer: None = Depends(bearer),
        ) -> Principal:
            return await check(connection)

        return dependency

    bearer, cookie = schemes

    async def dependency_with_cookie(
        connection: HTTPConnection,
        _bearer: None = Depends(bearer),
        _cookie: None = Depends(cookie),
    ) -> Principal:
        return await check(connection)

    return dependency_with_cookie


def require(query: Query | str, *, credentials: CredentialSettings | None = None) -> _Dependency:
    """Return a FastAPI dependency that yields the principal if it satisfies ``query``, and
    declares the security schemes of ``credentials`` (default: ``CredentialSettings.api()``)
    in OpenAPI.

    Use as ``principal: Annotated[Principal, Depends(require("keys.read"))]``. The check is
    :func:`authcore.adapters.starlette.require`'s; the query is parsed now, so a typo fails at
    import time.

    Raises:
        InvalidPermissionError: ``query`` breaks the grammar (at once).
    """
    return _declaring_schemes(_starlette.require(query), credentials or _API)


async def _principal(connection: HTTPConnection) -> Principal:
    return _starlette.principal_from(connection)


def authenticated(*, credentials: CredentialSettings | None = None) -> _Dependency:
    """Return a FastAPI dependency that yields the principal the middleware attached, and
    declares the security schemes of ``credentials`` (default: ``CredentialSettings.api()``)
    in OpenAPI.

    It checks no permission: for a router whose routes each :func:`require` their own, or whose
    handlers call ``principal.authorize``. Without the middleware it raises
    :class:`~authcore.errors.PrincipalMissingError` (500).
    """
    return _declaring_schemes(_principal, credentials or _API)


# --- responses ----------------------------------------------------------------------------------

_DECISION: Final = RateLimitDecision(allowed=False, limit=600, remaining=0, reset=60, retry_after=1)

# Every refusal the middleware and the permission check can answer, by status (the table in
# docs/architecture.md). Examples are the very documents the server sends
# (responses.problem_body), and a test checks that every error class with one of these statuses
# is listed.
_REFUSALS: Final[dict[int, tuple[str, tuple[AuthcoreError, ...]]]] = {
    400: (
        "Malformed credential, two credentials, or one over the size bound.",
        (MalformedCredentialError(), DuplicateCredentialError(), CredentialTooLargeError()),
    ),
    401: (
        "No credential, or one that is unknown, wrong, expired or revoked.",
        (MissingCredentialError(), UnsupportedSchemeError(), InvalidCredentialError()),
    ),
    403: (
        "The principal lacks the permission, its workspace is disabled, or a cookie request "
        "came from another site.",
        (PermissionDeniedError(), WorkspaceDisabledError(), CrossSiteRequestError()),
    ),
    429: (
        "Over a rate limit (the workspace's, the identity's or the key's).",
        (RateLimitedError(_DECISION),),
    ),
    503: ("A key store, session store or rate limiter is unavailable.", (UnavailableError(),)),
}

_STRING: Final = {"schema": {"type": "string"}}
_SECONDS: Final = {"schema": {"type": "integer", "minimum": 0}}
_CHALLENGE: Final = {
    "WWW-Authenticate": {"description": 'RFC 6750 §3: `Bearer realm="..."`', **_STRING}
}
_RETRY_AFTER: Final = {"Retry-After": {"description": "Seconds to wait.", **_SECONDS}}
_HEADERS: Final[dict[int, dict[str, Any]]] = {
    400: _CHALLENGE,
    401: _CHALLENGE,
    403: {
        "WWW-Authenticate": {
            "description": 'With `error="insufficient_scope"` when a permission is missing.',
            **_STRING,
        }
    },
    429: _RETRY_AFTER,
    503: _RETRY_AFTER,
}


def _problem_schema(status: int, errors: tuple[AuthcoreError, ...]) -> dict[str, Any]:
    # RFC 9457 §3.1 members, plus authcore's stable `code`; see authcore.responses.problem_body.
    return {
        "title": f"Problem{status}",
        "type": "object",
        "required": ["type", "title", "status", "code"],
        "properties": {
            "type": {
                "type": "string",
                "format": "uri",
                "description": "`urn:authcore:problem:` followed by the code.",
            },
            "title": {"type": "string", "description": "A fixed, safe message for the code."},
            "status": {"type": "integer", "enum": [status]},
            "code": {
                "type": "string",
                "enum": [error.code for error in errors],
                "description": "Stable and machine-readable.",
            },
        },
    }


def problem_responses(
    statuses: Iterable[int] = (400, 401, 403, 429, 503),
    *,
    rate_limit_headers: RateLimitHeaders | str = RateLimitHeaders.DRAFT,
) -> dict[int | str, dict[str, Any]]:
    """Return FastAPI ``responses`` for authcore's refusals: each status with its description,
    headers and ``application/problem+json`` body (schema and one example per code).

    ``rate_limit_headers`` is the route group's option (``AuthSettings.rate_limit_headers``):
    the 429 documents the fields it sends besides ``Retry-After``.

    Raises:
        ValueError: a status authcore never answers with.
        ConfigurationError: ``rate_limit_headers`` is not an option.
    """
    fields = openapi_fields(rate_limit_headers_option(rate_limit_headers))
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        if status not in _REFUSALS:
            raise ValueError(f"authcore answers no refusal with status {status}")
        description, errors = _REFUSALS[status]
        examples = {
            error.code: {"summary": error.message, "value": json.loads(problem_body(error))}
            for error in errors
        }
        responses[status] = {
            "description": description,
            # Copies: the caller (or FastAPI) may edit what it gets.
            "headers": copy.deepcopy({**_HEADERS[status], **(fields if status == 429 else {})}),
            "content": {
                PROBLEM_CONTENT_TYPE: {
                    "schema": _problem_schema(status, errors),
                    "examples": examples,
                }
            },
        }
    return responses


class RouteOptions(TypedDict):
    """Keyword arguments for a FastAPI route decorator, ``APIRouter`` or ``include_router``."""

    dependencies: list[params.Depends]
    responses: dict[int | str, dict[str, Any]]


def secured(
    query: Query | str | None = None,
    *,
    credentials: CredentialSettings | None = None,
    rate_limit_headers: RateLimitHeaders | str = RateLimitHeaders.DRAFT,
) -> RouteOptions:
    """Return the options that put authcore on every route they are given to: the security
    schemes (and, with ``query``, the permission check of :func:`require`) as a dependency, and
    :func:`problem_responses` (its 429 with the ``rate_limit_headers`` fields).

    ``APIRouter(prefix="/keys", **secured("keys.read"))``, or
    ``app.include_router(router, **secured())``.

    Raises:
        InvalidPermissionError: ``query`` breaks the grammar (at once).
    """
    if query is None:
        dependency = authenticated(credentials=credentials)
    else:
        dependency = require(query, credentials=credentials)
    responses = problem_responses(rate_limit_headers=rate_limit_headers)
    return {"dependencies": [Depends(dependency)], "responses": responses}


# --- the app ------------------------------------------------------------------------------------

# The codes and titles of `authcore serve`'s own answers to the same refusals.
_HTTP_PROBLEMS: Final = {
    404: ("not_found", "No such resource."),
    405: ("method_not_allowed", "The method is not allowed here."),
}
_NO_BODY: Final = frozenset({204, 304})


def _http_problem(request: Request, exc: HTTPException) -> Response:
    """FastAPI's own refusals, and any ``HTTPException`` a handler raises, as a problem document.

    The ``detail`` a handler chose stays in the document's ``detail`` member (RFC 9457 §3.1.4),
    where a client of FastAPI's ``{"detail": ...}`` already looks; Starlette's default (the
    status phrase) is left out.
    """
    status = exc.status_code
    headers = {name.lower(): value for name, value in (exc.headers or {}).items()}
    if status == 405:
        headers["allow"] = _allow(request, headers.get("allow", ""))
    if status < 200 or status in _NO_BODY:
        return Response(status_code=status, headers=headers)
    code, title = _HTTP_PROBLEMS.get(status, ("http_error", "The request failed."))
    document: dict[str, Any] = {
        "type": f"urn:authcore:problem:{code}",
        "title": title,
        "status": status,
        "code": code,
    }
    if exc.detail != _phrase(status):
        document["detail"] = exc.detail
    body = json.dumps(document, separators=(",", ":"))
    return Response(body, status_code=status, headers=headers, media_type=PROBLEM_CONTENT_TYPE)


def _phrase(status: int) -> str:
    """The detail Starlette gives an ``HTTPException`` that was given none."""
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:  # a status the standard library does not name
        return ""


def _allow(request: Request, first_route: str) -> str:
    """RFC 9110 §15.5.6: every method the path serves, not only those of the first route that
    matched it (all that FastAPI's 405 names). An included router's routes are seen through
    that first route only."""
    served = _starlette.allowed_methods(request.app.routes, request.scope)
    methods = {method.strip() for allow in (first_route, served) for method in allow.split(",")}
    methods.discard("")
    if "GET" in methods:
        methods.add("HEAD")  # answered as GET by _HeadAsGet
    return ", ".join(sorted(methods))


class _HeadAsGet:
    """Answer ``HEAD`` as ``GET`` without the body, where a route serves ``GET`` and none
    serves ``HEAD`` (RFC 9110 §9.3.2). Starlette's routes do this themselves; FastAPI's do not.

    It runs inside the auth middleware, which so sees the request's own method.
    """

    def __init__(self, app: ASGIApp, *, routes: FastAPI) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        as_get = {**scope, "method": "GET"}
        if _served(self.routes.routes, scope) or not _served(self.routes.routes, as_get):
            await self.app(scope, receive, send)
            return

        async def without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app(as_get, receive, without_body)


def _served(routes: Sequence[BaseRoute], scope: Scope) -> bool:
    return any(route.matches(scope)[0] is Match.FULL for route in routes)


def _is_authcore_scheme(name: str) -> bool:
    """Whether ``name`` is one :func:`_schemes` makes (FastAPI keeps one scheme per name)."""
    if name == "PortalCookie" or name.startswith("PortalCookie."):
        return True
    return all(kind in _BEARER_NAMES for kind in name.split("Or"))


def _fields_of(source: GateSource) -> dict[str, Any]:
    """The OpenAPI headers of the rate-limit fields ``source``'s default route group sends."""
    if isinstance(source, Authenticator):
        authenticator = source
    elif isinstance(source, Gate):
        authenticator = source.routes.default
    else:
        authenticator = source.authenticator
    return openapi_fields(authenticator.settings.rate_limit_headers)


def _document_rate_limits(app: FastAPI, fields: dict[str, Any]) -> None:
    """Describe the rate-limit headers on every 2xx answer of each operation that declares an
    authcore credential (:func:`require`, :func:`authenticated`, :func:`secured`): the
    middleware puts them on every admitted request's answer."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        document = build()  # FastAPI keeps it; adding the same headers again changes nothing
        for item in document.get("paths", {}).values():
            for operation in item.values():
                requirements = operation.get("security", ()) if isinstance(operation, dict) else ()
                if not any(_is_authcore_scheme(name) for names in requirements for name in names):
                    continue
                for status, response in operation.get("responses", {}).items():
                    if str(status).startswith("2"):
                        response.setdefault("headers", {}).update(copy.deepcopy(fields))
        return document

    # FastAPI's documented way to change the schema is to replace this method.
    app.openapi = openapi  # type: ignore[method-assign]


def install_auth(app: FastAPI, authenticator: GateSource, **options: Unpack[GateOptions]) -> None:
    """Add the auth middleware to a FastAPI ``app`` (see
    :func:`authcore.adapters.starlette.install_auth`, whose options it takes), and make the
    app answer like the rest of authcore:

    - no route (404), a wrong method (405, ``Allow`` naming every method of the path) and any
      ``HTTPException`` are ``application/problem+json``;
    - ``HEAD`` is answered as ``GET`` (without a body) on routes that serve ``GET``, public
      ones without a credential like their ``GET``;
    - ``/openapi.json`` lists the rate-limit fields (those the default route group's
      ``rate_limit_headers`` option sends) on the 2xx answers of operations that declare an
      authcore credential.

    Raises:
        ConfigurationError: an invalid prefix or authenticator.
    """
    # Added first, so it runs inside the auth middleware (the last added is the outermost).
    app.add_middleware(_HeadAsGet, routes=app)
    _starlette.install_auth(app, authenticator, **options)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)  # noqa: S101 - registered for HTTPException only
        return _http_problem(request, exc)

    app.add_exception_handler(HTTPException, on_http_error)
    _document_rate_limits(app, _fields_of(authenticator))
