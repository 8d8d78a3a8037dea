"""Pure ASGI middleware: authenticate and rate-limit before the app runs.

Works under any ASGI framework (Starlette, FastAPI, ...) and imports none. Per scope type:

- ``lifespan`` passes through untouched.
- ``http``: the ``Authorization`` field values (latin-1, repeated fields kept separate), the
  portal cookie and the Fetch Metadata / ``Origin`` headers go to the route group's
  :class:`~authcore.authenticator.Authenticator`. On success the principal is stored in the
  scope under :data:`authcore.binding.PRINCIPAL_KEY` (and nowhere else), bound to the
  log/metrics context for the request, and the rate-limit fields are added to the
  response. Any other outcome is answered with the problem document of
  :func:`authcore.responses.error_response` (or the ``on_error`` hook's response); a bug in
  the auth step is a safe 500.
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

from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any, Final

from typing_extensions import Unpack

from authcore.adapters._common import (
    GateOptions,
    GateSource,
    Lifecycle,
    lifecycle_of,
    make_gate,
)
from authcore.authenticator import Authenticator
from authcore.binding import PRINCIPAL_KEY, bind_principal, reset_principal
from authcore.binding import principal_from as _principal_in
from authcore.errors import AuthcoreError
from authcore.flow import Authenticated
from authcore.gate import Gate, rate_limit_field_bytes
from authcore.principal import Principal
from authcore.responses import HTTPResponse

__all__ = [
    "ASGIApp",
    "AuthMiddleware",
    "Receive",
    "Scope",
    "Send",
    "principal_from",
    "route_path",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def principal_from(scope: Scope) -> Principal:
    """Return the principal the middleware attached to this request's (or WebSocket's) scope.

    Raises:
        PrincipalMissingError: the middleware did not authenticate this request (500).
    """
    return _principal_in(scope)


# RFC 6455 §7.4.1: 1008 "policy violation", the generic refusal.
_WS_POLICY_VIOLATION: Final = 1008
_WS_DENIAL: Final = "websocket.http.response"

# The headers the gate reads, by the lowercase name ASGI delivers: one dict probe per header.
_AUTHORIZATION: Final = 0
_COOKIE: Final = 1
_SEC_FETCH_SITE: Final = 2
_ORIGIN: Final = 3
_HOST: Final = 4
_READ: Final = {
    b"authorization": _AUTHORIZATION,
    b"cookie": _COOKIE,
    b"sec-fetch-site": _SEC_FETCH_SITE,
    b"origin": _ORIGIN,
    b"host": _HOST,
}


def route_path(scope: Mapping[str, Any]) -> str:
    """Return the path relative to the app's mount point, as Starlette's router sees it."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    if not root or not path.startswith(root):
        return path
    if path == root:
        return ""
    return path[len(root) :] if path[len(root)] == "/" else path


def _encode(headers: tuple[tuple[str, str], ...]) -> list[tuple[bytes, bytes]]:
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]


async def _admit_with_cookie(
    gate: Gate, authenticator: Authenticator, scope: Scope, *, websocket: bool
) -> Authenticated | HTTPResponse:
    """Read the facts the gate needs off ``scope`` and ask it; nothing else is decoded.

    ASGI delivers header names lowercased and values as the raw bytes; latin-1 maps each byte
    to one character, so nothing is lost or invented before the core looks at it. (A route
    group without the portal cookie needs only the ``Authorization`` values: see
    :meth:`AuthMiddleware.__call__`.)
    """
    method: str = scope.get("method", "GET")
    facts: tuple[list[str], ...] = ([], [], [], [], [])
    for name, value in scope["headers"]:
        slot = _READ.get(name)
        if slot is not None:
            facts[slot].append(value.decode("latin-1"))
    authorization, cookie, sec_fetch_site, origin, host = facts
    scheme: str = scope.get("scheme", "ws" if websocket else "http")
    return await gate.aadmit(
        authenticator,
        method,
        authorization,
        cookie,
        sec_fetch_site,
        origin,
        scheme,
        host,
        websocket=websocket,
    )


class _Response:
    """The ``send`` the app gets for one HTTP request: adds our headers, notes the start."""

    __slots__ = ("admitted", "send", "started", "status")

    def __init__(self, send: Send, admitted: Authenticated | None) -> None:
        self.send = send
        self.admitted = admitted
        self.started = False
        self.status = 0

    def __call__(self, message: Message) -> Awaitable[None]:
        # Not a coroutine: it returns the server's own awaitable, so each message the app
        # sends costs no coroutine frame of ours.
        if not self.started and message["type"] == "http.response.start":
            self.started = True
            self.status = message.get("status", 0)
            admitted = self.admitted
            if admitted is not None and admitted[1] is not None:
                # A copy: the app may reuse its message dict, which must not grow our headers.
                headers = [*message.get("headers", ()), *rate_limit_field_bytes(admitted)]
                message = {**message, "headers": headers}
        return self.send(message)

    async def answer(self, response: HTTPResponse) -> None:
        """Send ``response`` instead of the app's (which has not started)."""
        self.status = response.status
        self.started = True
        start = {
            "type": "http.response.start",
            "status": response.status,
            "headers": _encode(response.headers),
        }
        await self.send(start)
        await self.send({"type": "http.response.body", "body": response.body})


class _Handshake:
    """One WebSocket handshake: what the wrapped ``receive``/``send`` have seen."""

    __slots__ = ("connected", "extra", "receive", "scope", "send", "started", "status")

    def __init__(
        self, scope: Scope, receive: Receive, send: Send, extra: list[tuple[bytes, bytes]] | None
    ) -> None:
        self.scope = scope
        self.receive = receive
        self.send = send
        self.extra = extra
        self.started = False
        self.connected = False
        self.status = 0

    async def tracked_receive(self) -> Message:
        message = await self.receive()
        if message.get("type") == "websocket.connect":
            self.connected = True
        return message

    async def tracked_send(self, message: Message) -> None:
        kind = message.get("type")
        if kind == "websocket.accept":
            self.started = True
            self.status = 101
            if self.extra:
                message = {**message, "headers": [*message.get("headers", ()), *self.extra]}
        elif kind in ("websocket.close", "websocket.http.response.start"):
            if not self.started:
                self.status = message.get("status", 403)
            self.started = True
        await self.send(message)

    async def answer(self, response: HTTPResponse) -> None:
        """Refuse the handshake with ``response`` (or close with 1008 where it cannot)."""
        if not self.connected:
            # ASGI: the handshake's first event is websocket.connect; answer only after it.
            await self.tracked_receive()
        if _WS_DENIAL in (self.scope.get("extensions") or {}):
            start = {
                "type": "websocket.http.response.start",
                "status": response.status,
                "headers": _encode(response.headers),
            }
            await self.tracked_send(start)
            await self.send({"type": "websocket.http.response.body", "body": response.body})
        else:
            await self.tracked_send({"type": "websocket.close", "code": _WS_POLICY_VIOLATION})
        self.status = response.status


class AuthMiddleware:
    """Authenticate every ``http`` and ``websocket`` request before ``app`` sees it.

    ``authenticator`` is the default route group's :class:`~authcore.authenticator.Authenticator`
    with the keyword options of :class:`~authcore.adapters._common.GateOptions`, an
    :class:`authcore.backends.Auth` (its route groups; it is started and closed with the
    app's lifespan), or a ready :class:`~authcore.gate.Gate`. Requests for which
    ``is_public(scope)`` is true skip authentication too (the Starlette helpers use it for
    route-level :func:`~authcore.adapters.starlette.public` markers).

    Raises:
        ConfigurationError: an invalid prefix or authenticator (at construction).
    """

    def __init__(
        self,
        app: ASGIApp,
        authenticator: GateSource,
        *,
        is_public: Callable[[Scope], bool] | None = None,
        lifecycle: Lifecycle | None = None,
        **options: Unpack[GateOptions],
    ) -> None:
        self.app = app
        self.gate = make_gate(authenticator, options)
        self._is_public = is_public
        # An Auth from authcore.backends.connect() starts and closes with the app's lifespan.
        self._lifecycle = lifecycle if lifecycle is not None else lifecycle_of(authenticator)

    @property
    def routes(self) -> Any:
        """The gate's route table."""
        return self.gate.routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run one ASGI connection.

        Raises:
            ValueError: the scope type is neither ``http``, ``websocket`` nor ``lifespan``.
        """
        if scope["type"] != "http":
            await self._not_http(scope, receive, send)
            return
        # HTTP, the hot path: written out here, with no coroutine of its own per step.
        gate = self.gate
        timer = gate.timer if gate.metrics is not None else None
        started_at = 0.0 if timer is None else timer()
        path = route_path(scope) if scope.get("root_path") else scope.get("path", "")
        authenticator = gate.route(path)
        if authenticator is not None and self._is_public is not None and self._is_public(scope):
            authenticator = None
        principal: Principal | None = None
        admitted: Authenticated | None = None
        if authenticator is not None:
            outcome: Authenticated | HTTPResponse | None = None
            if not authenticator.reads_cookie:
                authorization = []
                # A loop, not a comprehension: on Python 3.11 a comprehension is a call with a
                # frame of its own (3.12 inlines it, PEP 709), on a path every request takes.
                for name, value in scope["headers"]:
                    if name == b"authorization":
                        authorization.append(value.decode("latin-1"))
                outcome = gate.admit_inline(authenticator, authorization)
                if outcome is None:
                    method = scope.get("method", "GET")
                    outcome = await gate.aadmit(authenticator, method, authorization)
            else:
                outcome = await _admit_with_cookie(gate, authenticator, scope, websocket=False)
            if isinstance(outcome, HTTPResponse):
                response = _Response(send, None)
                await response.answer(outcome)
                if timer is not None:
                    gate.report(response.status, None, started_at)
                return
            admitted = outcome
            principal = outcome[0]
            scope[PRINCIPAL_KEY] = principal
        response = _Response(send, admitted)
        # Always bind, so a request never logs under the previous request's workspace.
        token = bind_principal(principal)
        try:
            await self.app(scope, receive, response)
        except AuthcoreError as exc:
            # A handler's authorize() or principal_from(): answer it, unless too late.
            if response.started:
                raise
            await response.answer(gate.answer(exc, authenticator))
        finally:
            reset_principal(token)
            if timer is not None:
                gate.report(response.status or 500, principal, started_at)

    async def _not_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind == "lifespan":
            if self._lifecycle is None:
                await self.app(scope, receive, send)
            else:
                await self._lifespan(self._lifecycle, scope, receive, send)
        else:
            raise ValueError(f"authcore: refusing unknown ASGI scope type {kind!r}")

    async def _lifespan(
        self, lifecycle: Lifecycle, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Start ``lifecycle`` before the app's startup, close it after the app's shutdown."""

        async def receive_starting() -> Message:
            message = await receive()
            if message.get("type") == "lifespan.startup":
                await lifecycle.astart()
            return message

        async def send_closing(message: Message) -> None:
            if message.get("type") in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                await lifecycle.aclose()
            await send(message)

        await self.app(scope, receive_starting, send_closing)

    def _authenticator(self, scope: Scope) -> Authenticator | None:
        authenticator = self.gate.route(
            scope["path"] if not scope.get("root_path") else route_path(scope)
        )
        if authenticator is not None and self._is_public is not None and self._is_public(scope):
            return None
        return authenticator

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        gate = self.gate
        timer = gate.timer if gate.metrics is not None else None
        started_at = 0.0 if timer is None else timer()
        authenticator = self._authenticator(scope)
        principal: Principal | None = None
        extra = None
        handshake = _Handshake(scope, receive, send, None)
        try:
            if authenticator is not None:
                outcome = await _admit_with_cookie(gate, authenticator, scope, websocket=True)
                if isinstance(outcome, HTTPResponse):
                    await handshake.answer(outcome)
                    return
                principal = outcome.principal
                scope[PRINCIPAL_KEY] = principal
                extra = rate_limit_field_bytes(outcome)
            handshake.extra = extra
            token = bind_principal(principal)
            try:
                await self.app(scope, handshake.tracked_receive, handshake.tracked_send)
            except AuthcoreError as exc:
                if handshake.started:
                    raise
                await handshake.answer(gate.answer(exc, authenticator))
            finally:
                reset_principal(token)
        finally:
            if timer is not None:
                gate.report(handshake.status or 500, principal, started_at)
