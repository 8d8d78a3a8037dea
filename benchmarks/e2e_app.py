"""The tiny apps uvicorn serves for the end-to-end row (``--factory``).

The root key comes from ``AUTHCORE_BENCH_KEY`` so that the load generator in the parent process
knows it; only its digest is stored.
"""

from __future__ import annotations

import os
import time
from collections.abc import MutableMapping
from typing import Any

from authcore.binding import principal_from
from authcore.flow import AsyncBackends, Authenticator, AuthSettings, Backends
from authcore.ratelimit import RateLimitPolicy
from authcore.records import RootKeyRecord
from authcore.testing import MemoryRateLimiter, MemoryStore, make_workspace
from authcore.tokens import digest

__all__ = ["authed", "bare", "floor", "floor_headers"]

_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")],
}
_BODY = {"type": "http.response.body", "body": b"ok"}


async def _bare(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send(_START)
    await send(_BODY)


def bare() -> Any:
    """Return the bare app."""
    return _bare


def authed() -> Any:
    """Return the bare app behind AuthMiddleware, with a handler-side permission check."""
    from authcore.adapters.asgi import AuthMiddleware
    from benchmarks.world import GRANTS, PERMISSION, POLICY, WORKSPACE

    raw = os.environ["AUTHCORE_BENCH_KEY"]
    store = MemoryStore()
    make_workspace(store, WORKSPACE, rate_limit=POLICY)
    store.put_root_key(
        RootKeyRecord(
            id="key_bench",
            workspace_id=WORKSPACE,
            digest=digest(raw),
            start=raw[:9],
            name=None,
            permissions=GRANTS,
            created_at=int(time.time()),
        )
    )
    try:
        from authcore.backends.cache import CachedStore

        cached: Any = CachedStore(store)
    except ImportError:
        cached = store
    limiter = MemoryRateLimiter()
    authenticator = Authenticator(
        AuthSettings(default_rate_limit=RateLimitPolicy(limit=1_000_000, period=1)),
        clock=time.time,
        backends=Backends(store=cached, limiter=limiter),
        abackends=AsyncBackends(store=cached, limiter=limiter),
    )

    async def handler(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            principal_from(scope).authorize(PERMISSION)
        await _bare(scope, receive, send)

    return AuthMiddleware(handler, authenticator)


def floor() -> Any:
    """Return the bare app behind the floor middleware (the reference for the ratio)."""
    from benchmarks.floor import FloorASGIMiddleware, floor_keys
    from benchmarks.world import GRANTS, PERMISSION, POLICY, WORKSPACE, now_us

    raw = os.environ["AUTHCORE_BENCH_KEY"]

    async def handler(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and PERMISSION not in scope["floor.principal"].permissions:
            raise PermissionError(PERMISSION)
        await _bare(scope, receive, send)

    return FloorASGIMiddleware(
        handler,
        floor_keys([(raw, WORKSPACE, "key_bench", GRANTS)]),
        now_us,
        POLICY.emission_interval_us,
        POLICY.burst_window_us,
    )


def floor_headers() -> Any:
    """The floor plus what docs/architecture.md asks of every admitted response and the floor skips:
    the draft's two rate-limit fields (``RateLimit-Policy``, ``RateLimit``), added by wrapping
    ``send`` (as any ASGI middleware must).

    It tells how much of the gap between authcore and the floor is those fields alone.
    """
    app = floor()
    extra = [
        (b"ratelimit-policy", b'"workspace";q=1000000;w=1'),
        (b"ratelimit", b'"workspace";r=999999;t=1'),
    ]

    async def with_headers(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def send_with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        await app(scope, receive, send_with_headers)

    return with_headers
