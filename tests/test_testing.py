"""authcore.testing's in-process request helpers, used the way a user's tests would."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any

from authcore.adapters.asgi import AuthMiddleware as ASGIAuth
from authcore.adapters.wsgi import AuthMiddleware as WSGIAuth
from authcore.binding import principal_from
from authcore.flow import AsyncBackends, Authenticator, AuthSettings, Backends
from authcore.testing import (
    MemoryRateLimiter,
    MemoryStore,
    SettableClock,
    call_asgi,
    call_wsgi,
    issue_root_key,
    make_workspace,
)


def world() -> tuple[Authenticator, str]:
    clock = SettableClock()
    store = MemoryStore()
    make_workspace(store, "ws_1")
    _, key = issue_root_key(store, "ws_1", ["keys.read"])
    limiter = MemoryRateLimiter(clock_us=clock.us)
    authenticator = Authenticator(
        AuthSettings(),
        clock=clock,
        backends=Backends(store, limiter),
        abackends=AsyncBackends(store, limiter),
    )
    return authenticator, key.reveal()


async def asgi_app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
    body = json.dumps(principal_from(scope).to_dict()).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(principal_from(environ).to_dict()).encode()]


def test_call_asgi_runs_the_middleware_and_the_app() -> None:
    authenticator, key = world()
    app = ASGIAuth(asgi_app, authenticator)
    ok = call_asgi(app, "GET", "/x?y=1", [("Authorization", f"Bearer {key}")])
    assert ok.status == 200
    assert ok.json()["workspace_id"] == "ws_1"
    assert ok.header("RateLimit-Policy") == '"workspace";q=600;w=60'
    assert ok.header("RateLimit") == '"workspace";r=599;t=1'
    denied = call_asgi(app, "GET", "/x")
    assert denied.status == 401
    assert denied.header("www-authenticate") == 'Bearer realm="api"'


def test_call_wsgi_runs_the_middleware_and_the_app() -> None:
    authenticator, key = world()
    app = WSGIAuth(wsgi_app, authenticator)
    ok = call_wsgi(app, "GET", "/x", [("Authorization", f"Bearer {key}")])
    assert ok.status == 200
    assert ok.json()["subject"]["type"] == "root_key"
    repeated = call_wsgi(
        app, "GET", "/x", [("Authorization", f"Bearer {key}"), ("Authorization", "Bearer b")]
    )
    assert repeated.status == 400
