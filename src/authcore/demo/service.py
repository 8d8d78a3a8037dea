"""The example API: how a real service uses authcore, built only on its public API.

Routes (see docs/concepts.md)::

    GET    /healthz                 public
    GET    /v1/principal            any authenticated caller
    GET    /v1/keys                 keys.read
    POST   /v1/keys                 keys.create   {"name", "permissions", "expires_in"?,
                                    "rate_limit"? ("N/SECONDS", the key's own limit)} -> 201
    DELETE /v1/keys/{key_id}        keys.revoke   -> 204; another workspace's key: 404
    GET    /v1/audit-logs           audit.read    ?limit=N&before=CURSOR
    POST   /v1/portal-sessions      portal.create_session {"end_user_id", "permissions", "ttl"?}
                                    -> 201 {"session_id", "code", "code_expires_at", ...}
    DELETE /v1/portal-sessions/{session_id}
                                    portal.revoke_session -> 204; another workspace's: 404
    POST   /portal/exchange         public: the one-time code (form or JSON body, never the
                                    URL) for the ``authcore_portal`` cookie
    POST   /portal/logout           portal sessions only: revoke the session, clear the cookie
    GET    /portal/v1/principal     portal sessions only (cookie ``authcore_portal`` or Bearer)
    GET    /portal/v1/keys          portal sessions only, keys.read

The auth middleware does steps 1-4 (find, verify, normalize, rate-limit) for every route but
``/healthz`` and ``/portal/exchange``; each handler does step 5 (``principal.authorize``) before
it touches data, and every change goes through the store's mutation methods with the principal
as the audit actor, so the change and its audit event commit together. A caller can never grant
a permission it does not hold (403).

A portal session reaches the end user's browser without a long-lived token in any URL: the
customer's backend asks ``POST /v1/portal-sessions`` for a session and gets a code that works
once within 60 seconds; a page of this origin posts the code to ``/portal/exchange``, which
mints the session's token and sets it as an HttpOnly, SameSite=Strict cookie (``Secure`` over
TLS) for ``/portal``. Both the exchange and the logout are writes a browser makes with this
site's cookie, so both pass the one cross-site rule (:func:`authcore.credentials.is_same_origin`).

Bad input is a 400 problem, never a 500: numbers in queries are ASCII digits, strings in bodies
are valid Unicode, names and ids pass :func:`authcore.names.check_name`. A path with a trailing
slash is a 404 (no redirect is built from the ``Host`` header), and a 405 carries ``Allow``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final

import attrs
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from authcore.adapters.starlette import install_auth, principal_from
from authcore.backends import Auth
from authcore.credentials import (
    DEFAULT_PORTAL_COOKIE,
    CredentialSettings,
    authorization_values,
    extract_credential,
    is_same_origin,
    parse_cookie_header,
    request_origin,
)
from authcore.demo._http import (
    BODY_TIMEOUT,
    ProblemError,
    allowed_methods,
    json_body,
    json_bytes_response,
    json_response,
    path_id,
    problem_response,
    query_int,
    read_fields,
    read_json_object,
)
from authcore.demo.usage import UsageRoutes
from authcore.errors import (
    ClientError,
    ConfigurationError,
    CrossSiteRequestError,
    PermissionDeniedError,
)
from authcore.flow import AsyncBackends, Authenticator, AuthSettings
from authcore.gate import AuthObserver, RequestMetrics, RouteGroups
from authcore.keyring import Keyring
from authcore.names import check_name
from authcore.permissions import MAX_GRANTS, PermissionSet
from authcore.principal import Principal
from authcore.ratelimit import AsyncRateLimiter, RateLimitPolicy
from authcore.records import (
    MAX_AUDIT_PAGE,
    MAX_PORTAL_TTL,
    PORTAL_EXCHANGE_CODE_PREFIX,
    Actor,
    AuditCursor,
)
from authcore.store import AsyncStore
from authcore.tokens import digest, generate_id
from authcore.usage import UsageSink

__all__ = ["PORTAL_COOKIE_PATH", "PORTAL_PREFIX", "app_for", "create_app"]

_MAX_RENDERED: Final = 1024

PORTAL_PREFIX: Final = "/portal/"
#: The portal cookie is sent to the portal routes only.
PORTAL_COOKIE_PATH: Final = "/portal"
#: Longest root-key lifetime a caller may ask for: ten years.
MAX_KEY_LIFETIME: Final = 10 * 365 * 86_400
_MAX_NAME: Final = 200
#: Ids in paths are short; anything longer cannot name a record.
#: The limit for workspaces without their own policy (requests per minute).
DEFAULT_RATE_LIMIT: Final = RateLimitPolicy(600, 60)
# What issue_token makes for an exchange code: the prefix and 43 base64url characters.
_EXCHANGE_CODE: Final = re.compile(
    re.escape(PORTAL_EXCHANGE_CODE_PREFIX) + r"[A-Za-z0-9_-]{43}", re.ASCII
)

_Handler = Callable[[Request], Awaitable[Response]]


def _bad_field(name: str, what: str) -> ProblemError:
    return ProblemError(400, "invalid_body", f"The field {name!r} must be {what}.")


def _text(body: dict[str, Any], name: str) -> str:
    try:
        return check_name(body.get(name), name, max_length=_MAX_NAME)
    except ClientError:
        raise _bad_field(
            name,
            f"a non-empty string of at most {_MAX_NAME} characters, without control, format or"
            " line-separator characters",
        ) from None


def _int(body: dict[str, Any], name: str, high: int) -> int | None:
    if name not in body or body[name] is None:
        return None
    value = body[name]
    if type(value) is not int or not 1 <= value <= high:
        raise _bad_field(name, f"an integer in 1..{high}")
    return value


def _rate_limit(body: dict[str, Any], name: str) -> RateLimitPolicy | None:
    # The form the key list shows and the CLI takes: "N/SECONDS", ASCII digits only.
    value = body.get(name)
    if value is None:
        return None
    try:
        return RateLimitPolicy.parse(value)
    except ConfigurationError:
        raise _bad_field(
            name, 'a string "N/SECONDS" (e.g. "100/60"), N in 1..1000000 and SECONDS in 1..86400'
        ) from None


def _grants(body: dict[str, Any]) -> list[str]:
    value = body.get("permissions")
    if not isinstance(value, list) or len(value) > MAX_GRANTS:
        raise _bad_field("permissions", "a list of permission strings")
    if not all(isinstance(item, str) for item in value):
        raise _bad_field("permissions", "a list of permission strings")
    return value


def _only(body: dict[str, Any], allowed: Sequence[str]) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        # A misspelt "expires_in" must not silently create a key that never expires.
        raise ProblemError(400, "invalid_body", "The body has an unknown field.")


def _check_grantable(principal: Principal, grants: list[str]) -> None:
    """A caller may hand out only what it holds itself (no privilege escalation).

    Raises:
        InvalidPermissionError: a grant breaks the grammar (400).
        PermissionDeniedError: the caller's permissions do not cover every grant (403).
    """
    if not principal.permissions.covers(PermissionSet(grants)):
        raise PermissionDeniedError("cannot grant a permission the caller does not hold")


class _Service:
    """The handlers, bound to one store and clock."""

    def __init__(
        self,
        store: AsyncStore,
        clock: Callable[[], float],
        *,
        portal_credentials: CredentialSettings,
        secure_cookies: bool | None,
        body_timeout: float,
    ) -> None:
        self.store = store
        self.clock = clock
        # id(principal) -> (the principal, kept alive so the id stays its own; its JSON).
        self._rendered: dict[int, tuple[Principal, bytes]] = {}

        self.portal_credentials = portal_credentials
        self.secure_cookies = secure_cookies
        self.body_timeout = body_timeout

    @staticmethod
    def _actor(request: Request, principal: Principal) -> Actor:
        return Actor(principal=principal, request_id=request.state.request_id)

    def _secure(self, request: Request) -> bool:
        if self.secure_cookies is not None:
            return self.secure_cookies
        return request.url.scheme == "https"

    async def healthz(self, request: Request) -> Response:
        return json_response({"status": "ok"})

    async def principal(self, request: Request) -> Response:
        principal = principal_from(request)
        # Principals are immutable and shared per record: render each one's JSON once.
        cached = self._rendered.get(id(principal))
        if cached is None or cached[0] is not principal:
            if len(self._rendered) >= _MAX_RENDERED:
                self._rendered.clear()
            cached = (principal, json_body(principal.to_dict()))
            self._rendered[id(principal)] = cached
        return json_bytes_response(cached[1])

    async def list_keys(self, request: Request) -> Response:
        principal = principal_from(request)
        principal.authorize("keys.read")
        records = await self.store.alist_root_keys(principal.workspace_id)
        used = await self.store.alast_used(principal.workspace_id)
        keys = [{**record.to_dict(), "last_used_at": used.get(record.id)} for record in records]
        return json_response({"keys": keys})

    async def create_key(self, request: Request) -> Response:
        principal = principal_from(request)
        principal.authorize("keys.create")
        body = await read_json_object(request, time_limit=self.body_timeout)
        _only(body, ("name", "permissions", "expires_in", "rate_limit"))
        name = _text(body, "name")
        grants = _grants(body)
        expires_in = _int(body, "expires_in", MAX_KEY_LIFETIME)
        rate_limit = _rate_limit(body, "rate_limit")
        _check_grantable(principal, grants)
        now = self.clock()
        created = await self.store.acreate_root_key(
            principal.workspace_id,
            permissions=grants,
            name=name,
            expires_at=None if expires_in is None else int(now) + expires_in,
            now=now,
            actor=self._actor(request, principal),
            rate_limit=rate_limit,
        )
        if created is None:
            raise ProblemError(404, "not_found", "The workspace does not exist.")
        return json_response({"key_id": created.record.id, "key": created.key.reveal()}, 201)

    async def revoke_key(self, request: Request) -> Response:
        principal = principal_from(request)
        principal.authorize("keys.revoke")
        key_id = path_id(request, "key_id", "key")
        record = await self.store.aget_root_key(key_id)
        # Another workspace's key is "not found": its existence is not this caller's business.
        if record is None or record.workspace_id != principal.workspace_id:
            raise ProblemError(404, "not_found", "No such key.")
        await self.store.arevoke_root_key(
            key_id, now=self.clock(), actor=self._actor(request, principal)
        )
        return Response(status_code=204, headers={"cache-control": "no-store"})

    async def audit_logs(self, request: Request) -> Response:
        principal = principal_from(request)
        principal.authorize("audit.read")
        limit = query_int(request, "limit", default=50, low=1, high=MAX_AUDIT_PAGE)
        before_values = request.query_params.getlist("before")
        if len(before_values) > 1:
            raise ProblemError(400, "invalid_query", "before may be given once.")
        before = AuditCursor.parse(before_values[0]) if before_values else None
        page = await self.store.alist_audit(principal.workspace_id, limit=limit, before=before)
        return json_response(
            {
                "events": [event.to_dict() for event in page.events],
                "next_cursor": None if page.next_cursor is None else str(page.next_cursor),
            }
        )

    async def create_portal_session(self, request: Request) -> Response:
        principal = principal_from(request)
        principal.authorize("portal.create_session")
        body = await read_json_object(request, time_limit=self.body_timeout)
        _only(body, ("end_user_id", "permissions", "ttl"))
        end_user_id = _text(body, "end_user_id")
        grants = _grants(body)
        ttl = _int(body, "ttl", MAX_PORTAL_TTL) or 3600
        _check_grantable(principal, grants)
        created = await self.store.acreate_portal_exchange(
            principal.workspace_id,
            end_user_id,
            permissions=grants,
            ttl=ttl,
            now=self.clock(),
            actor=self._actor(request, principal),
        )
        if created is None:
            raise ProblemError(404, "not_found", "The workspace does not exist.")
        return json_response(
            {
                "session_id": created.record.id,
                "code": created.code.reveal(),
                "code_expires_at": created.code_expires_at,
                "expires_at": created.record.expires_at,
            },
            201,
        )

    async def revoke_portal_session(self, request: Request) -> Response:
        principal = principal_from(request)
        principal.authorize("portal.revoke_session")
        session_id = path_id(request, "session_id", "portal session")
        record = await self.store.aget_portal_session(session_id)
        # As for keys: another workspace's session is "not found".
        if record is None or record.workspace_id != principal.workspace_id:
            raise ProblemError(404, "not_found", "No such portal session.")
        await self.store.arevoke_portal_session(
            session_id, now=self.clock(), actor=self._actor(request, principal)
        )
        return Response(status_code=204, headers={"cache-control": "no-store"})

    def _check_same_origin(self, request: Request) -> None:
        """The one cross-site rule, for a portal write the middleware does not see.

        Raises:
            CrossSiteRequestError: not ``Sec-Fetch-Site: same-origin``, nor (without that
                header) an ``Origin`` equal to this site's or a configured one (403).
        """
        headers = request.headers
        if not is_same_origin(
            headers.getlist("sec-fetch-site"),
            headers.getlist("origin"),
            own_origin=request_origin(request.url.scheme, headers.getlist("host")),
            allowed_origins=self.portal_credentials.allowed_origins,
        ):
            raise CrossSiteRequestError("portal exchange from another site")

    async def exchange(self, request: Request) -> Response:
        # Refused before the body is read: a page of another site cannot plant its own
        # session in this browser (login CSRF), and a code in a URL is never accepted.
        self._check_same_origin(request)
        if request.url.query:
            raise ProblemError(
                400, "code_in_url", "The exchange code goes in the request body, never the URL."
            )
        fields = await read_fields(request, time_limit=self.body_timeout)
        _only(fields, ("code",))
        code = fields.get("code")
        # Unknown, malformed, used and expired codes all answer the same.
        invalid = ProblemError(400, "exchange_code_invalid", "The exchange code is not valid.")
        if not isinstance(code, str) or not _EXCHANGE_CODE.fullmatch(code):
            raise invalid
        now = self.clock()
        started = await self.store.aexchange_portal_code(digest(code), now=now)
        if started is None:
            raise invalid
        record = started.record
        response = json_response({"session_id": record.id, "expires_at": record.expires_at})
        response.set_cookie(
            DEFAULT_PORTAL_COOKIE,
            started.token.reveal(),
            max_age=max(1, record.expires_at - int(now)),
            path=PORTAL_COOKIE_PATH,
            secure=self._secure(request),
            httponly=True,
            samesite="strict",
        )
        return response

    async def logout(self, request: Request) -> Response:
        principal = principal_from(request)
        # Which session to end: the credential the middleware just verified (cookie or
        # Bearer), read with the same core parser, found by its digest.
        credential = extract_credential(
            authorization_values(request.headers),
            parse_cookie_header(request.headers.getlist("cookie"), DEFAULT_PORTAL_COOKIE),
            self.portal_credentials,
        )
        if credential is not None:
            record = await self.store.afind_portal_session(digest(credential.secret.reveal()))
            if record is not None and record.workspace_id == principal.workspace_id:
                await self.store.arevoke_portal_session(
                    record.id, now=self.clock(), actor=self._actor(request, principal)
                )
        response = Response(status_code=204, headers={"cache-control": "no-store"})
        response.delete_cookie(
            DEFAULT_PORTAL_COOKIE,
            path=PORTAL_COOKIE_PATH,
            secure=self._secure(request),
            httponly=True,
            samesite="strict",
        )
        return response


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
    service = _Service(
        store,
        api.clock,
        portal_credentials=portal.settings.credentials,
        secure_cookies=secure_cookies,
        body_timeout=body_timeout,
    )
    usage = UsageRoutes(store, api.clock)
    app = Starlette(
        routes=[
            Route("/healthz", service.healthz, methods=["GET"]),
            Route("/v1/principal", service.principal, methods=["GET"]),
            Route("/v1/keys", service.list_keys, methods=["GET"]),
            Route("/v1/keys", service.create_key, methods=["POST"]),
            Route("/v1/keys/{key_id}", service.revoke_key, methods=["DELETE"]),
            Route("/v1/keys/{key_id}/usage", usage.key, methods=["GET"]),
            Route("/v1/usage", usage.workspace, methods=["GET"]),
            Route("/v1/audit-logs", service.audit_logs, methods=["GET"]),
            Route("/v1/portal-sessions", service.create_portal_session, methods=["POST"]),
            Route(
                "/v1/portal-sessions/{session_id}",
                service.revoke_portal_session,
                methods=["DELETE"],
            ),
            Route("/portal/exchange", service.exchange, methods=["POST"]),
            Route("/portal/logout", service.logout, methods=["POST"]),
            Route("/portal/v1/principal", service.principal, methods=["GET"]),
            Route("/portal/v1/keys", service.list_keys, methods=["GET"]),
        ],
        middleware=[Middleware(_RequestId)],
        exception_handlers={
            ProblemError: _on_problem,
            HTTPException: _on_http_error,
            Exception: _on_bug,
        },
    )
    # "/v1/keys/" is a 404, not a redirect: Starlette would build the redirect's Location from
    # the request's Host header, and through a proxy that points the browser at the API.
    app.router.redirect_slashes = False
    # Steps 1-4 for every route but the public ones; the portal group accepts only portal
    # sessions, the rest only root keys and JWTs. Also answers AuthcoreErrors from handlers.
    public = ["/healthz", "/portal/exchange"]
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
