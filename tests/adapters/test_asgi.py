"""ASGI middleware specifics: scope types, WebSockets, hooks, bugs, context binding."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from authcore.adapters.asgi import AuthMiddleware, Message, Receive, Scope, Send, principal_from
from authcore.adapters.logging import WorkspaceLogFilter
from authcore.binding import PRINCIPAL_KEY, workspace_id_for_logs
from authcore.errors import AuthcoreError, ConfigurationError, UnavailableError
from authcore.responses import HTTPResponse
from tests.adapters.world import make_world


def _scope(
    kind: str, path: str = "/keys", headers: list[tuple[bytes, bytes]] | None = None
) -> Scope:
    return {
        "type": kind,
        "path": path,
        "root_path": "",
        "method": "GET",
        "headers": headers or [],
        "query_string": b"",
        "extensions": {},
    }


class Recorder:
    """The server side of one ASGI connection: scripted input, recorded output."""

    def __init__(self, incoming: list[Message]) -> None:
        self.incoming = incoming
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        return self.incoming.pop(0)

    async def send(self, message: Message) -> None:
        self.sent.append(message)


async def _echo_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 1000})
        return
    principal = principal_from(scope)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": principal.workspace_id.encode()})


async def test_lifespan_passes_through_untouched() -> None:
    seen: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)
        await send({"type": "lifespan.startup.complete"})

    recorder = Recorder([{"type": "lifespan.startup"}])
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}}
    await AuthMiddleware(app, make_world().api)(scope, recorder.receive, recorder.send)
    assert seen == [scope]
    assert PRINCIPAL_KEY not in scope
    assert recorder.sent == [{"type": "lifespan.startup.complete"}]


async def test_unknown_scope_type_is_refused() -> None:
    recorder = Recorder([])
    with pytest.raises(ValueError, match="unknown ASGI scope type"):
        await AuthMiddleware(_echo_app, make_world().api)(
            {"type": "webtransport"}, recorder.receive, recorder.send
        )


async def test_websocket_without_credential_is_closed_1008_before_accept() -> None:
    recorder = Recorder([{"type": "websocket.connect"}])
    await AuthMiddleware(_echo_app, make_world().api)(
        _scope("websocket"), recorder.receive, recorder.send
    )
    assert recorder.sent == [{"type": "websocket.close", "code": 1008}]


async def test_websocket_denial_extension_gets_the_problem_document() -> None:
    scope = _scope("websocket")
    scope["extensions"] = {"websocket.http.response": {}}
    recorder = Recorder([{"type": "websocket.connect"}])
    await AuthMiddleware(_echo_app, make_world().api)(scope, recorder.receive, recorder.send)
    start, body = recorder.sent
    assert start["type"] == "websocket.http.response.start"
    assert start["status"] == 401
    assert (b"www-authenticate", b'Bearer realm="api"') in start["headers"]
    assert body["type"] == "websocket.http.response.body"
    assert b'"code":"credential_missing"' in body["body"]


async def test_websocket_with_valid_key_is_accepted_with_rate_limit_headers() -> None:
    world = make_world()
    key = world.key("ws_ok", "keys.read")
    scope = _scope("websocket", headers=[(b"authorization", f"Bearer {key}".encode())])
    recorder = Recorder([{"type": "websocket.connect"}])
    await AuthMiddleware(_echo_app, world.api)(scope, recorder.receive, recorder.send)
    accept = recorder.sent[0]
    assert accept["type"] == "websocket.accept"
    assert (b"ratelimit-policy", b'"workspace";q=600;w=60') in accept["headers"]
    assert principal_from(scope).workspace_id == "ws_ws_ok"


async def test_portal_cookie_websocket_from_another_site_is_refused() -> None:
    world = make_world()
    token = world.portal_token("cswsh")
    headers = [
        (b"cookie", f"authcore_portal={token}".encode()),
        (b"origin", b"https://evil.example"),
    ]
    recorder = Recorder([{"type": "websocket.connect"}])
    await AuthMiddleware(_echo_app, world.portal)(
        _scope("websocket", headers=headers), recorder.receive, recorder.send
    )
    assert recorder.sent == [{"type": "websocket.close", "code": 1008}]


async def _get(
    app: Any, path: str = "/keys", headers: dict[str, str] | None = None
) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.get(path, headers=headers)


async def test_a_bug_in_the_auth_step_is_a_safe_500(caplog: pytest.LogCaptureFixture) -> None:
    world = make_world()

    sentinel = "".join(["ak_", "SENTI", "NEL"])  # built, so no source line quotes it

    class BrokenClock:
        def __call__(self) -> float:
            raise ZeroDivisionError(f"secret-looking text {sentinel}")

    world.api.clock = BrokenClock()
    key = world.key("bug", "keys.read")
    with caplog.at_level(logging.ERROR, "authcore.adapters"):
        response = await _get(
            AuthMiddleware(_echo_app, world.api), headers={"Authorization": f"Bearer {key}"}
        )
    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"
    assert "SENTINEL" not in response.text
    assert "ZeroDivisionError" in caplog.text
    assert "SENTINEL" not in caplog.text


async def test_on_error_hook_replaces_the_body_and_a_broken_hook_falls_back() -> None:
    def custom(error: AuthcoreError) -> HTTPResponse | None:
        return HTTPResponse(error.status, (("content-type", "text/plain"),), b"nope")

    def broken(error: AuthcoreError) -> HTTPResponse | None:
        raise RuntimeError("hook bug")

    world = make_world()
    replaced = await _get(AuthMiddleware(_echo_app, world.api, on_error=custom))
    fallback = await _get(AuthMiddleware(_echo_app, world.api, on_error=broken))
    assert (replaced.status_code, replaced.text) == (401, "nope")
    assert fallback.status_code == 401
    assert fallback.json()["code"] == "credential_missing"


async def test_metrics_hook_and_log_filter_see_the_principal_workspace() -> None:
    world = make_world()
    key = world.key("metrics", "keys.read")
    calls: list[tuple[int, str]] = []
    records: list[str | None] = []

    async def logging_app(scope: Scope, receive: Receive, send: Send) -> None:
        record = logging.LogRecord("t", logging.INFO, __file__, 1, "m", None, None)
        WorkspaceLogFilter().filter(record)
        records.append(getattr(record, "workspace_id", None))
        await _echo_app(scope, receive, send)

    def metrics(status: int, workspace_id: str, duration: float) -> None:
        assert duration >= 0
        calls.append((status, workspace_id))

    app = AuthMiddleware(logging_app, world.api, metrics=metrics)
    await _get(app, headers={"Authorization": f"Bearer {key}"})
    await _get(app)
    assert calls == [(200, "ws_metrics"), (401, "")]
    assert records == ["ws_metrics"]
    assert workspace_id_for_logs() == ""  # unbound after the request


async def test_unavailable_error_raised_by_the_app_is_answered_503() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise UnavailableError("db down", retry_after=7)

    response = await _get(AuthMiddleware(app, make_world().api, public_paths=["/keys"]))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "7"


def test_prefixes_must_end_at_a_segment_boundary() -> None:
    with pytest.raises(ConfigurationError):
        AuthMiddleware(_echo_app, make_world().api, public_prefixes=["/static"])


async def test_public_prefix_never_matches_a_dot_segment_path() -> None:
    app = AuthMiddleware(_echo_app, make_world().api, public_prefixes=["/static/"])
    response = await _get(app, "/static/../keys")
    assert response.status_code == 401
