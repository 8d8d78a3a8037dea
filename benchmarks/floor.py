"""The "floor": a hand-written minimal implementation of the job authcore does on a request.

``hashlib.sha256`` of the presented key, one ``dict`` lookup, a frozen principal, an inline
integer GCRA step in a ``dict``, and a ``set`` membership check for the permission. It keeps the
shape of the real job (a key that is not found, or a workspace over its limit, is refused) and
nothing more: no header grammar, no constant-time compare, no workspace record. With
``fields=True`` the middlewares also send what authcore sends on an admitted response, the
draft's two rate-limit fields (``RateLimit-Policy`` made once, ``RateLimit`` from the GCRA
step), so the comparison stays fair; without, they are the header-less floor (an info row).
authcore's figures are ratios against this floor, measured in the same run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FloorASGIMiddleware",
    "FloorDeniedError",
    "FloorPrincipal",
    "FloorWSGIMiddleware",
    "floor_authenticate",
    "floor_authenticate_levels",
    "floor_keys",
]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class FloorDeniedError(Exception):
    """The floor refused the request (unknown key or over the limit)."""


@dataclass(frozen=True, slots=True)
class FloorPrincipal:
    """The floor's principal: immutable, no secret."""

    workspace_id: str
    key_id: str
    permissions: frozenset[str]


# digest -> (workspace id, key id, permissions)
_Keys = dict[bytes, tuple[str, str, frozenset[str]]]


def floor_keys(
    raw_keys: Iterable[tuple[str, str, str, Iterable[str]]],
) -> _Keys:
    """Build the floor's key table from ``(raw key, workspace id, key id, permissions)``."""
    return {
        hashlib.sha256(raw.encode()).digest(): (ws, key_id, frozenset(perms))
        for raw, ws, key_id, perms in raw_keys
    }


def floor_authenticate(  # noqa: PLR0917 - positional on purpose: the floor is the plainest call
    token: str,
    keys: _Keys,
    tats: dict[str, int],
    now_us: int,
    interval_us: int,
    tau_us: int,
) -> FloorPrincipal:
    """Return the principal for ``token`` after one GCRA step for its workspace.

    Raises:
        FloorDeniedError: unknown key, or the workspace is over its limit.
    """
    record = keys.get(hashlib.sha256(token.encode()).digest())
    if record is None:
        raise FloorDeniedError
    workspace_id, key_id, permissions = record
    new_tat = max(tats.get(workspace_id, now_us), now_us) + interval_us
    if new_tat - now_us > tau_us:
        raise FloorDeniedError
    tats[workspace_id] = new_tat
    return FloorPrincipal(workspace_id, key_id, permissions)


def floor_authenticate_levels(  # noqa: PLR0917 - as floor_authenticate
    token: str,
    keys: _Keys,
    tats: dict[str, int],
    now_us: int,
    interval_us: int,
    tau_us: int,
) -> FloorPrincipal:
    """:func:`floor_authenticate` with three limits, all or nothing: the key's own, its
    identity's and its workspace's (the buckets named from the key and workspace ids, so
    nothing but the GCRA steps is added). One step per level, then the writes only when every
    level admits, as authcore's limiters do; no per-level state is kept for the fields.

    Raises:
        FloorDeniedError: unknown key, or a level is over its limit.
    """
    record = keys.get(hashlib.sha256(token.encode()).digest())
    if record is None:
        raise FloorDeniedError
    workspace_id, key_id, permissions = record
    buckets = (key_id, "identity:" + key_id, workspace_id)
    new_tats = []
    for bucket in buckets:
        new_tat = max(tats.get(bucket, now_us), now_us) + interval_us
        if new_tat - now_us > tau_us:
            raise FloorDeniedError
        new_tats.append(new_tat)
    tats.update(zip(buckets, new_tats, strict=True))
    return FloorPrincipal(workspace_id, key_id, permissions)


def _policy_field(interval_us: int, tau_us: int) -> tuple[bytes, bytes]:
    limit = tau_us // interval_us
    return (b"ratelimit-policy", b'"workspace";q=%d;w=%d' % (limit, -(-tau_us // 1_000_000)))


def _limit_field(tat: int, now_us: int, interval_us: int, tau_us: int) -> tuple[bytes, bytes]:
    remaining = (tau_us - (tat - now_us)) // interval_us
    reset = -((now_us - tat) // 1_000_000)
    return (b"ratelimit", b'"workspace";r=%d;t=%d' % (remaining, reset))


class FloorASGIMiddleware:
    """An equally minimal ASGI middleware around :func:`floor_authenticate` (with ``fields``,
    the rate-limit fields added through a ``send`` wrapper, as any ASGI middleware must)."""

    def __init__(
        self,
        app: ASGIApp,
        keys: _Keys,
        clock_us: Callable[[], int],
        interval_us: int,
        tau_us: int,
        *,
        fields: bool = True,
    ) -> None:
        self.app = app
        self.keys = keys
        self.tats: dict[str, int] = {}
        self.clock_us = clock_us
        self.interval_us = interval_us
        self.tau_us = tau_us
        self.fields = fields
        self.policy_field = _policy_field(interval_us, tau_us)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Authenticate HTTP requests, pass everything else through."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        authorization = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
                break
        now = self.clock_us()
        try:
            if authorization is None or not authorization.startswith(b"Bearer "):
                raise FloorDeniedError  # noqa: TRY301 - one refusal path, as in the real thing
            principal = floor_authenticate(
                authorization[7:].decode("latin-1"),
                self.keys,
                self.tats,
                now,
                self.interval_us,
                self.tau_us,
            )
        except FloorDeniedError:
            await send({"type": "http.response.start", "status": 401, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        scope["floor.principal"] = principal
        if not self.fields:
            await self.app(scope, receive, send)
            return
        tat = self.tats[principal.workspace_id]
        extra = (self.policy_field, _limit_field(tat, now, self.interval_us, self.tau_us))

        def send_with_fields(message: MutableMapping[str, Any]) -> Awaitable[None]:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            return send(message)

        await self.app(scope, receive, send_with_fields)


class FloorWSGIMiddleware:
    """An equally minimal WSGI middleware around :func:`floor_authenticate` (with ``fields``,
    the rate-limit fields added through a ``start_response`` wrapper)."""

    def __init__(
        self,
        app: WSGIApp,
        keys: _Keys,
        clock_us: Callable[[], int],
        interval_us: int,
        tau_us: int,
        *,
        fields: bool = True,
    ) -> None:
        self.app = app
        self.keys = keys
        self.tats: dict[str, int] = {}
        self.clock_us = clock_us
        self.interval_us = interval_us
        self.tau_us = tau_us
        self.fields = fields
        name, value = _policy_field(interval_us, tau_us)
        self.policy_field = (name.decode(), value.decode())

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Authenticate the request, then call the app."""
        authorization: str = environ.get("HTTP_AUTHORIZATION", "")
        now = self.clock_us()
        try:
            if not authorization.startswith("Bearer "):
                raise FloorDeniedError  # noqa: TRY301 - one refusal path, as in the real thing
            principal = floor_authenticate(
                authorization[7:],
                self.keys,
                self.tats,
                now,
                self.interval_us,
                self.tau_us,
            )
        except FloorDeniedError:
            start_response("401 Unauthorized", [])
            return [b""]
        environ["floor.principal"] = principal
        if not self.fields:
            return self.app(environ, start_response)
        tat = self.tats[principal.workspace_id]
        name, value = _limit_field(tat, now, self.interval_us, self.tau_us)
        extra = [self.policy_field, (name.decode(), value.decode())]

        def start_with_fields(status: str, headers: list[Any], exc_info: Any = None) -> Any:
            return start_response(status, [*headers, *extra], exc_info)

        return self.app(environ, start_with_fields)
