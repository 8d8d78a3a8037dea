"""The "floor": a hand-written minimal implementation of the job authcore does on a request.

``hashlib.sha256`` of the presented key, one ``dict`` lookup, a frozen principal, an inline
integer GCRA step in a ``dict``, and a ``set`` membership check for the permission. It keeps the
shape of the real job (a key that is not found, or a workspace over its limit, is refused) and
nothing more: no header grammar, no constant-time compare, no workspace record, no rate-limit
headers. authcore's figures are ratios against this floor, measured in the same run.
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


class FloorASGIMiddleware:
    """An equally minimal ASGI middleware around :func:`floor_authenticate`."""

    def __init__(
        self,
        app: ASGIApp,
        keys: _Keys,
        clock_us: Callable[[], int],
        interval_us: int,
        tau_us: int,
    ) -> None:
        self.app = app
        self.keys = keys
        self.tats: dict[str, int] = {}
        self.clock_us = clock_us
        self.interval_us = interval_us
        self.tau_us = tau_us

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
        try:
            if authorization is None or not authorization.startswith(b"Bearer "):
                raise FloorDeniedError  # noqa: TRY301 - one refusal path, as in the real thing
            principal = floor_authenticate(
                authorization[7:].decode("latin-1"),
                self.keys,
                self.tats,
                self.clock_us(),
                self.interval_us,
                self.tau_us,
            )
        except FloorDeniedError:
            await send({"type": "http.response.start", "status": 401, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        scope["floor.principal"] = principal
        await self.app(scope, receive, send)


class FloorWSGIMiddleware:
    """An equally minimal WSGI middleware around :func:`floor_authenticate`."""

    def __init__(
        self,
        app: WSGIApp,
        keys: _Keys,
        clock_us: Callable[[], int],
        interval_us: int,
        tau_us: int,
    ) -> None:
        self.app = app
        self.keys = keys
        self.tats: dict[str, int] = {}
        self.clock_us = clock_us
        self.interval_us = interval_us
        self.tau_us = tau_us

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Authenticate the request, then call the app."""
        authorization: str = environ.get("HTTP_AUTHORIZATION", "")
        try:
            if not authorization.startswith("Bearer "):
                raise FloorDeniedError  # noqa: TRY301 - one refusal path, as in the real thing
            principal = floor_authenticate(
                authorization[7:],
                self.keys,
                self.tats,
                self.clock_us(),
                self.interval_us,
                self.tau_us,
            )
        except FloorDeniedError:
            start_response("401 Unauthorized", [])
            return [b""]
        environ["floor.principal"] = principal
        return self.app(environ, start_response)
