"""The example API: how a real service uses authcore, built only on its public API.

Routes (see docs/concepts.md)::

    GET    /healthz                 public
    GET    /v1/principal            any authenticated caller
    GET    /v1/keys                 keys.read
    POST   /v1/keys                 keys.create   {"name", "permissions", "expires_in"?} -> 201
    DELETE /v1/keys/{key_id}        keys.revoke   -> 204; another workspace's key: 404
    GET    /v1/audit-logs           audit.read    ?limit=N&before=CURSOR
    POST   /v1/portal-sessions      portal.create_session {"end_user_id", "permissions", "ttl"?}
    GET    /portal/v1/principal     portal sessions only (cookie ``authcore_portal`` or Bearer)
    GET    /portal/v1/keys          portal sessions only, keys.read

The auth middleware does steps 1-4 (find, verify, normalize, rate-limit) for every route but
``/healthz``; each handler does step 5 (``principal.authorize``) before it touches data, and
every change goes through the store's mutation methods with the principal as the audit actor,
so the change and its audit event commit together. A caller can never grant a permission it
does not hold (403).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from authcore.adapters.starlette import install_auth, principal_from
from authcore.credentials import CredentialPolicy
from authcore.demo._http import (
    ProblemError,
    json_body,
    json_bytes_response,
    json_response,
    problem_response,
    read_json_object,
)
from authcore.errors import PermissionDeniedError
from authcore.flow import AsyncBackends, Authenticator, Settings
from authcore.gate import AuthObserver, RequestMetrics
from authcore.keyring import Keyring
from authcore.permissions import MAX_GRANTS, PermissionSet
from authcore.principal import Principal
from authcore.ratelimit import AsyncRateLimiter, RateLimitPolicy
from authcore.store import (
    MAX_AUDIT_PAGE,
    MAX_PORTAL_TTL,
    Actor,
    AsyncStore,
    AuditCursor,
)
from authcore.tokens import generate_id

__all__ = ["PORTAL_PREFIX", "create_app"]

_MAX_RENDERED: Final = 1024

PORTAL_PREFIX: Final = "/portal/"
#: Longest root-key lifetime a caller may ask for: ten years.
MAX_KEY_LIFETIME: Final = 10 * 365 * 86_400
_MAX_NAME: Final = 200
#: The limit for workspaces without their own policy (requests per minute).
DEFAULT_RATE_LIMIT: Final = RateLimitPolicy(600, 60)

_Handler = Callable[[Request], Awaitable[Response]]


def _bad_field(name: str, what: str) -> ProblemError:
    return ProblemError(400, "invalid_body", f"The field {name!r} must be {what}.")


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip() or len(value) > _MAX_NAME:
        raise _bad_field(name, f"a non-empty string of at most {_MAX_NAME} characters")
    return value


def _int(body: dict[str, Any], name: str, high: int) -> int | None:
    if name not in body or body[name] is None:
        return None
    value = body[name]
    if type(value) is not int or not 1 <= value <= high:
        raise _bad_field(name, f"an integer in 1..{high}")
    return value


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

    def __init__(self, store: AsyncStore, clock: Callable[[], float]) -> None:
        self.store = store
        self.clock = clock
        # id(principal) -> (the principal, kept alive so the id stays its own; its JSON).
        self._rendered: dict[int, tuple[Principal, bytes]] = {}

    @staticmethod
    def _actor(request: Request, principal: Principal) -> Actor:
        return Actor(principal=principal, request_id=request.state.request_id)

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
        return json_response({"keys": [record.to_dict() for record in records]})

    async def create_key(self, request: Request) -> Response:
        principal = principal_from(request)
        principal.authorize("keys.create")
        body = await read_json_object(request)
        _only(body, ("name", "permissions", "expires_in"))
        name = _text(body, "name")
        grants = _grants(body)
        expires_in = _int(body, "expires_in", MAX_KEY_LIFETIME)
        _check_grantable(principal, grants)
        now = self.clock()
        created = await self.store.acreate_root_key(
            principal.workspace_id,
            permissions=grants,
            name=name,
            expires_at=None if expires_in is None else int(now) + expires_in,
            now=now,
            actor=self._actor(request, principal),
        )
        if created is None:
            raise ProblemError(404, "not_found", "The workspace does not exist.")
        return json_response({"key_id": created.record.id, "key": created.key.reveal()}, 201)

    async def revoke_key(self, request: Request) -> Response:
        principal = principal_from(request)
        principal.authorize("keys.revoke")
        key_id = request.path_params["key_id"]
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
        limit_text = request.query_params.get("limit", "50")
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_AUDIT_PAGE:
            raise ProblemError(400, "invalid_query", f"limit must be in 1..{MAX_AUDIT_PAGE}.")
        before_text = request.query_params.get("before")
        before = None if before_text is None else AuditCursor.parse(before_text)
        page = await self.store.alist_audit(
            principal.workspace_id, limit=int(limit_text), before=before
        )
        return json_response(
            {
                "events": [event.to_dict() for event in page.events],
                "next_cursor": None if page.next_cursor is None else str(page.next_cursor),
            }
        )

    async def create_portal_session(self, request: Request) -> Response:
        principal = principal_from(request)
        principal.authorize("portal.create_session")
        body = await read_json_object(request)
        _only(body, ("end_user_id", "permissions", "ttl"))
        end_user_id = _text(body, "end_user_id")
        grants = _grants(body)
        ttl = _int(body, "ttl", MAX_PORTAL_TTL) or 3600
        _check_grantable(principal, grants)
        created = await self.store.acreate_portal_session(
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
            {"session_id": created.record.id, "token": created.token.reveal()}, 201
        )


async def _on_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemError)  # noqa: S101 - registered for ProblemError only
    return problem_response(exc.status, exc.code, exc.title)


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)  # noqa: S101 - registered for HTTPException only
    if exc.status_code == 404:
        return problem_response(404, "not_found", "No such resource.")
    if exc.status_code == 405:
        return problem_response(405, "method_not_allowed", "The method is not allowed here.")
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
    observer: AuthObserver | None = None,
    metrics: RequestMetrics | None = None,
) -> Starlette:
    """Return the example API as an ASGI app.

    ``store`` serves lookups and management (wrap it in
    :class:`authcore.backends.cache.CachedStore` to keep lookups off the database);
    ``keyring`` verifies dashboard JWTs (None: JWTs are refused); ``limiter`` is shared by
    both route groups, keyed by workspace. ``observer`` and ``metrics`` are the gate's hooks
    (a metrics exporter's).

    Raises:
        ConfigurationError: an invalid setting.
    """
    backends = AsyncBackends(store=store, limiter=limiter)
    api = Authenticator(
        Settings(
            credentials=CredentialPolicy.api(),
            keyring=keyring,
            token_cache=token_cache,
            default_rate_limit=default_rate_limit,
            realm="api",
        ),
        clock=clock,
        abackends=backends,
    )
    portal = Authenticator(
        Settings(
            credentials=CredentialPolicy.portal(),
            default_rate_limit=default_rate_limit,
            realm="portal",
        ),
        clock=clock,
        abackends=backends,
    )
    service = _Service(store, clock)
    app = Starlette(
        routes=[
            Route("/healthz", service.healthz, methods=["GET"]),
            Route("/v1/principal", service.principal, methods=["GET"]),
            Route("/v1/keys", service.list_keys, methods=["GET"]),
            Route("/v1/keys", service.create_key, methods=["POST"]),
            Route("/v1/keys/{key_id}", service.revoke_key, methods=["DELETE"]),
            Route("/v1/audit-logs", service.audit_logs, methods=["GET"]),
            Route("/v1/portal-sessions", service.create_portal_session, methods=["POST"]),
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
    # Steps 1-4 for every route but the public one; the portal group accepts only portal
    # sessions, the rest only root keys and JWTs. Also answers AuthcoreErrors from handlers.
    install_auth(
        app,
        api,
        groups={PORTAL_PREFIX: portal},
        public_paths=["/healthz"],
        observer=observer,
        metrics=metrics,
    )
    return app
