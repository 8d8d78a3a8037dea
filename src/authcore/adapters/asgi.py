"""Pure ASGI middleware: authenticate and rate-limit before the app runs.

Works under any ASGI framework (Starlette, FastAPI, ...) and imports none. Per scope type:

- ``lifespan`` passes through untouched.
- ``http``: the ``Authorization`` field values (latin-1, repeated fields kept separate), the
  portal cookie and the Fetch Metadata / ``Origin`` headers go to the route group's
  :class:`~authcore.flow.Authenticator`. On success the principal is stored in the scope under
  :data:`authcore.session.PRINCIPAL_KEY` (and nowhere else), bound to the log/metrics context
  for the request, and the ``RateLimit-*`` headers are added to the response. Any other
  outcome is answered with the problem document of :func:`authcore.responses.error_response`
  (or the ``on_error`` hook's response); a bug in the auth step is a safe 500.
- ``websocket``: authenticated the same way before the app sees it. A refused handshake is
  answered through the ``websocket.http.response`` extension when the server offers it (the
  client gets the same status and problem document as over HTTP), else by closing with code
  1008 (policy violation) before accepting, which servers send as a 403.
- any other scope type is refused (``ValueError``): an unknown protocol is never let through
  unauthenticated.

An :class:`~authcore.errors.AuthcoreError` the app raises before it starts its response
(``PermissionDeniedError`` from ``principal.authorize``, ``PrincipalMissingError``) is answered
the same way, so handlers may simply raise.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import Any, Final

from authcore.adapters._common import (
    ErrorHook,
    RequestFacts,
    RouteTable,
    aauthenticate_request,
    log_unexpected,
    report_metrics,
    safe_response,
)
from authcore.adapters.logging import RequestMetrics
from authcore.credentials import request_origin
from authcore.errors import AuthcoreError
from authcore.flow import Authenticator
from authcore.principal import Principal
from authcore.ratelimit import RateLimitDecision
from authcore.responses import HTTPResponse
from authcore.session import (
    attach_principal,
    bind_principal,
    reset_principal,
    workspace_id_for_logs,
)

__all__ = ["ASGIApp", "AuthMiddleware", "Receive", "Scope", "Send", "route_path"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# RFC 6455 §7.4.1: 1008 "policy violation", the generic refusal.
_WS_POLICY_VIOLATION: Final = 1008
_WS_DENIAL: Final = "websocket.http.response"


def route_path(scope: Mapping[str, Any]) -> str:
    """Return the path relative to the app's mount point, as Starlette's router sees it."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    if not root or not path.startswith(root):
        return path
    if path == root:
        return ""
    return path[len(root) :] if path[len(root)] == "/" else path


def _facts(scope: Scope, websocket: bool) -> RequestFacts:
    authorization: list[str] = []
    cookie: list[str] = []
    sec_fetch_site: list[str] = []
    origin: list[str] = []
    host: list[str] = []
    # ASGI delivers header names lowercased and values as the raw bytes; latin-1 maps each
    # byte to one character, so nothing is lost or invented before the core looks at it.
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            authorization.append(value.decode("latin-1"))
        elif name == b"cookie":
            cookie.append(value.decode("latin-1"))
        elif name == b"sec-fetch-site":
            sec_fetch_site.append(value.decode("latin-1"))
        elif name == b"origin":
            origin.append(value.decode("latin-1"))
        elif name == b"host":
            host.append(value.decode("latin-1"))
    return RequestFacts(
        method=scope.get("method", "GET"),
        authorization=authorization,
        cookie=cookie,
        sec_fetch_site=sec_fetch_site,
        origin=origin,
        own_origin=request_origin(scope.get("scheme", "ws" if websocket else "http"), host),
        websocket=websocket,
    )


def _rate_limit_headers(decision: RateLimitDecision) -> list[tuple[bytes, bytes]]:
    # rate_limit_headers() encoded straight to bytes: this runs on every admitted request.
    return [
        (b"ratelimit-limit", b"%d" % decision.limit),
        (b"ratelimit-remaining", b"%d" % decision.remaining),
        (b"ratelimit-reset", b"%d" % decision.reset),
    ]


def _encode(headers: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]


class _Exchange:
    """One request in flight: its ASGI callables and what the wrapped ``send`` has seen."""

    __slots__ = (
        "connected",
        "extra_headers",
        "receive",
        "scope",
        "send",
        "started",
        "status",
        "websocket",
    )

    def __init__(self, scope: Scope, receive: Receive, send: Send, *, websocket: bool) -> None:
        self.scope = scope
        self.receive = receive
        self.send = send
        self.websocket = websocket
        self.started = False
        self.connected = False
        self.status = 0
        self.extra_headers: list[tuple[bytes, bytes]] = []

    async def tracked_receive(self) -> Message:
        message = await self.receive()
        if message.get("type") == "websocket.connect":
            self.connected = True
        return message

    async def tracked_send(self, message: Message) -> None:
        kind = message.get("type")
        if kind in ("http.response.start", "websocket.accept"):
            self.started = True
            self.status = message.get("status", 101)
            if self.extra_headers:
                headers = [*message.get("headers", ()), *self.extra_headers]
                message = {**message, "headers": headers}
        elif kind in ("websocket.close", "websocket.http.response.start"):
            if not self.started:
                self.status = message.get("status", 403)
            self.started = True
        await self.send(message)

    async def deny(self, response: HTTPResponse) -> None:
        """Answer with ``response`` instead of the app (a refused WebSocket handshake too)."""
        self.status = response.status
        headers = _encode(response.headers)
        if not self.websocket:
            start = {"type": "http.response.start", "status": response.status, "headers": headers}
            await self.tracked_send(start)
            await self.send({"type": "http.response.body", "body": response.body})
            return
        if not self.connected:
            # ASGI: the handshake's first event is websocket.connect; answer only after it.
            await self.tracked_receive()
        if _WS_DENIAL in (self.scope.get("extensions") or {}):
            start = {
                "type": "websocket.http.response.start",
                "status": response.status,
                "headers": headers,
            }
            await self.tracked_send(start)
            await self.send({"type": "websocket.http.response.body", "body": response.body})
        else:
            await self.tracked_send({"type": "websocket.close", "code": _WS_POLICY_VIOLATION})
        self.status = response.status


class AuthMiddleware:
    """Authenticate every ``http`` and ``websocket`` request before ``app`` sees it.

    ``groups`` maps path prefixes (``"/portal/"``) to other authenticators (route groups);
    ``public_paths`` (exact) and ``public_prefixes`` (ending in ``/``) skip authentication, as
    does any request for which ``is_public(scope)`` is true (the Starlette helpers use it for
    route-level :func:`~authcore.adapters.starlette.public` markers). ``on_error(error)`` may
    return a custom :class:`~authcore.responses.HTTPResponse`; ``metrics`` is called once per
    request.

    Raises:
        ConfigurationError: an invalid prefix or authenticator (at construction).
    """

    def __init__(
        self,
        app: ASGIApp,
        authenticator: Authenticator,
        *,
        groups: Mapping[str, Authenticator] | None = None,
        public_paths: Iterable[str] = (),
        public_prefixes: Iterable[str] = (),
        is_public: Callable[[Scope], bool] | None = None,
        on_error: ErrorHook | None = None,
        metrics: RequestMetrics | None = None,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.app = app
        self.routes = RouteTable.build(
            authenticator,
            groups=groups,
            public_paths=public_paths,
            public_prefixes=public_prefixes,
        )
        self._is_public = is_public
        self._on_error = on_error
        self._metrics = metrics
        self._timer = timer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run one ASGI connection.

        Raises:
            ValueError: the scope type is neither ``http``, ``websocket`` nor ``lifespan``.
        """
        kind = scope["type"]
        if kind == "http":
            await self._handle(scope, receive, send, websocket=False)
        elif kind == "websocket":
            await self._handle(scope, receive, send, websocket=True)
        elif kind == "lifespan":
            await self.app(scope, receive, send)
        else:
            raise ValueError(f"authcore: refusing unknown ASGI scope type {kind!r}")

    def _public(self, scope: Scope, path: str) -> bool:
        if self.routes.is_public(path):
            return True
        return self._is_public is not None and self._is_public(scope)

    async def _handle(self, scope: Scope, receive: Receive, send: Send, *, websocket: bool) -> None:
        started_at = self._timer()
        path = route_path(scope)
        authenticator = self.routes.authenticator_for(path)
        realm = authenticator.settings.realm
        principal: Principal | None = None
        exchange = _Exchange(scope, receive, send, websocket=websocket)
        try:
            if not self._public(scope, path):
                try:
                    result = await aauthenticate_request(authenticator, _facts(scope, websocket))
                except AuthcoreError as exc:
                    await exchange.deny(safe_response(exc, realm, self._on_error))
                    return
                except Exception as exc:  # noqa: BLE001 - a bug here must be a safe 500
                    log_unexpected(exc, "the authentication step")
                    await exchange.deny(safe_response(None, realm, self._on_error))
                    return
                principal = result.principal
                attach_principal(scope, principal)
                if result.rate_limit is not None:
                    exchange.extra_headers = _rate_limit_headers(result.rate_limit)
            # Always bind, so a request never logs under the previous request's workspace.
            token = bind_principal(principal)
            try:
                await self.app(scope, exchange.tracked_receive, exchange.tracked_send)
            except AuthcoreError as exc:
                # A handler's authorize() or principal_from(): answer it, unless too late.
                if exchange.started:
                    raise
                await exchange.deny(safe_response(exc, realm, self._on_error))
            finally:
                reset_principal(token)
        finally:
            if self._metrics is not None:
                duration = self._timer() - started_at
                workspace_id = workspace_id_for_logs(principal)
                report_metrics(self._metrics, exchange.status or 500, workspace_id, duration)
