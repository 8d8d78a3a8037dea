"""Per-request overhead of the ASGI and WSGI middleware over the bare app, called in-process.

No server: each variant is called directly with a synthetic scope/receive/send (ASGI) or
environ/start_response (WSGI). Every variant gets the same fresh request per call, so the cost
of building it cancels out when the bare app's time is subtracted. The handler behind each
middleware does the job's last step, the permission check, the way that stack offers it.
"""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from authcore.binding import principal_from
from authcore.flow import Authenticator
from benchmarks.floor import FloorASGIMiddleware, FloorWSGIMiddleware
from benchmarks.harness import Mode, RoundFn, Row, compare, not_measured
from benchmarks.world import PERMISSION, World, build_world, now_us

__all__ = [
    "asgi_round",
    "authcore_asgi_app",
    "authenticator_for",
    "bare_asgi_app",
    "cached_store",
    "http_scope",
    "run",
    "starlette_asgi_app",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]

_START: Message = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")],
}
_BODY: Message = {"type": "http.response.body", "body": b"ok"}
_PATH = "/v1/keys"


def http_scope(authorization: str) -> Scope:
    """Return an HTTP scope as uvicorn would build it for ``GET /v1/keys``."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": _PATH,
        "raw_path": _PATH.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"user-agent", b"bench"),
            (b"accept", b"*/*"),
            (b"authorization", authorization.encode("latin-1")),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def bare_asgi_app(scope: Scope, receive: Any, send: Any) -> None:
    """The bare app: one 200 response, no auth."""
    await send(_START)
    await send(_BODY)


def cached_store(world: World) -> Any:
    """Return ``CachedStore(world.store)`` if the cache exists, else the memory store."""
    try:
        cache = importlib.import_module("authcore.backends.cache")
    except ImportError:
        return world.store
    return cache.CachedStore(world.store)


def authenticator_for(world: World, *, replay: bool = True) -> Authenticator:
    """Return an Authenticator over the world's (cached) store and memory limiter."""
    from authcore.flow import AsyncBackends, Backends

    store = cached_store(world)
    return Authenticator(
        world.settings,
        clock=time.time,
        backends=Backends(store=store, limiter=world.limiter),
        abackends=AsyncBackends(store=store, limiter=world.limiter),
        replay=replay,
    )


def _middleware_class(module_name: str) -> type[Any] | None:
    try:
        module = importlib.import_module(f"authcore.adapters.{module_name}")
    except ImportError:
        return None
    for name in ("AuthMiddleware", "AuthcoreMiddleware", f"{module_name.upper()}AuthMiddleware"):
        cls = getattr(module, name, None)
        if isinstance(cls, type):
            return cls
    return None


def _wrap(cls: type[Any], app: Any, authenticator: Authenticator) -> Any:
    try:
        return cls(app, authenticator)
    except TypeError:
        return cls(app, authenticator=authenticator)


def _read_principal(holder: MutableMapping[str, Any]) -> Any:
    """Return the principal the middleware attached to the scope or environ."""
    return principal_from(holder)


def authcore_asgi_app(world: World, *, replay: bool = True, usage: bool = False) -> ASGIApp | None:
    """Return AuthMiddleware around a handler that checks the permission (None if absent).

    With ``usage``, the gate counts every outcome into a usage counter (as ``connect()`` does).
    """
    cls = _middleware_class("asgi")
    if cls is None:
        return None

    async def handler(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            _read_principal(scope).authorize(PERMISSION)
        await bare_asgi_app(scope, receive, send)

    if usage:
        from authcore.backends.usage_recorder import UsageCounter
        from authcore.gate import Gate

        counter = UsageCounter()
        gate = Gate.build(authenticator_for(world, replay=replay), usage=counter)
        counted: ASGIApp = cls(handler, gate)
        return counted
    app: ASGIApp = _wrap(cls, handler, authenticator_for(world, replay=replay))
    return app


def floor_asgi_app(world: World, *, fields: bool = True) -> ASGIApp:
    """Return the floor middleware around a handler that checks the permission (with
    ``fields``, sending the draft's rate-limit fields as authcore does)."""

    async def handler(scope: Scope, receive: Any, send: Any) -> None:
        if PERMISSION not in scope["floor.principal"].permissions:
            raise PermissionError(PERMISSION)
        await bare_asgi_app(scope, receive, send)

    return FloorASGIMiddleware(
        handler, world.floor_keys, now_us, world.interval_us, world.tau_us, fields=fields
    )


def starlette_asgi_app(world: World) -> ASGIApp:
    """Return Starlette's AuthenticationMiddleware with a backend doing one dict lookup."""
    from starlette.authentication import (
        AuthCredentials,
        AuthenticationBackend,
        BaseUser,
        SimpleUser,
    )
    from starlette.middleware.authentication import AuthenticationMiddleware
    from starlette.requests import HTTPConnection

    tokens = {world.raw_key: (world.key_id, ["keys.read", "keys.create"])}

    class DictBackend(AuthenticationBackend):
        async def authenticate(
            self, conn: HTTPConnection
        ) -> tuple[AuthCredentials, BaseUser] | None:
            scheme, _, token = conn.headers.get("authorization", "").partition(" ")
            found = tokens.get(token) if scheme == "Bearer" else None
            if found is None:
                return None
            return AuthCredentials(found[1]), SimpleUser(found[0])

    async def handler(scope: Scope, receive: Any, send: Any) -> None:
        if PERMISSION not in scope["auth"].scopes:
            raise PermissionError(PERMISSION)
        await bare_asgi_app(scope, receive, send)

    app: ASGIApp = AuthenticationMiddleware(handler, backend=DictBackend())
    return app


class _Capture:
    """ASGI receive/send that remember the status, so wiring errors are caught up front."""

    def __init__(self) -> None:
        self.status = 0

    async def receive(self) -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]


def asgi_round(app: ASGIApp, authorization: str, loop: asyncio.AbstractEventLoop) -> RoundFn:
    """Return a round function calling ``app`` ``n`` times with a fresh scope each time."""
    template = http_scope(authorization)
    capture = _Capture()
    receive, send = capture.receive, capture.send

    async def once() -> int:
        await app({**template, "state": {}}, receive, send)
        return capture.status

    status = loop.run_until_complete(once())
    if status != 200:
        raise RuntimeError(f"ASGI variant answered {status}, expected 200")

    async def many(n: int) -> int:
        start = time.perf_counter_ns()
        for _ in range(n):
            await app({**template, "state": {}}, receive, send)
        return time.perf_counter_ns() - start

    return lambda n: loop.run_until_complete(many(n))


# --- WSGI -------------------------------------------------------------------------------------

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]
_WSGI_HEADERS = [("Content-Type", "text/plain"), ("Content-Length", "2")]


def _environ(authorization: str) -> Environ:
    return {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": _PATH,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_USER_AGENT": "bench",
        "HTTP_ACCEPT": "*/*",
        "HTTP_AUTHORIZATION": authorization,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }


def bare_wsgi_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """The bare WSGI app: one 200 response."""
    start_response("200 OK", _WSGI_HEADERS)
    return [b"ok"]


def _close(body: Iterable[bytes]) -> None:
    close = getattr(body, "close", None)
    if close is not None:
        close()


def wsgi_round(app: WSGIApp, authorization: str) -> RoundFn:
    """Return a round function calling ``app`` ``n`` times with a fresh environ each time."""
    template = _environ(authorization)
    statuses: list[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        statuses.append(status)
        return None

    body = app(dict(template), start_response)
    b"".join(body)
    _close(body)
    if not statuses or not statuses[0].startswith("200"):
        raise RuntimeError(f"WSGI variant answered {statuses[:1]}, expected 200")

    def run(n: int) -> int:
        start = time.perf_counter_ns()
        for _ in range(n):
            body = app(dict(template), start_response)
            for _chunk in body:
                pass
            _close(body)  # as a server does (PEP 3333): the middleware cleans up here
        elapsed = time.perf_counter_ns() - start
        statuses.clear()
        return elapsed

    return run


def _asgi_rows(mode: Mode) -> list[Row]:
    names = ("asgi.overhead", "asgi.vs_starlette")
    world = build_world()
    authcore_app = authcore_asgi_app(world)
    if authcore_app is None:
        why = "authcore.adapters.asgi.AuthMiddleware not written yet"
        return [
            not_measured(names[0], "ASGI middleware overhead vs the floor's", why, target=1.5),
            not_measured(names[1], "ASGI middleware overhead vs Starlette's", why, target=1.5),
        ]
    loop = asyncio.new_event_loop()
    try:
        header = world.header
        subject = asgi_round(authcore_app, header, loop)
        bare = asgi_round(bare_asgi_app, header, loop)
        floor = asgi_round(floor_asgi_app(world), header, loop)
        starlette = asgi_round(starlette_asgi_app(world), header, loop)
        return [
            compare(
                names[0],
                "ASGI AuthMiddleware (CachedStore over memory, memory limiter) + authorize: "
                "overhead over the bare ASGI app",
                subject=subject,
                baseline=floor,
                baseline_what="floor ASGI middleware overhead (with the two rate-limit fields)",
                bare=bare,
                mode=mode,
                target=1.5,
            ),
            compare(
                "asgi.floor_fields",
                "floor ASGI middleware sending the draft's two rate-limit fields, as authcore "
                "does: overhead over the bare ASGI app (info: what the fields cost the floor)",
                subject=floor,
                baseline=asgi_round(floor_asgi_app(world, fields=False), header, loop),
                baseline_what="the header-less floor's overhead",
                bare=bare,
                mode=mode,
                target=None,
            ),
            compare(
                names[1],
                "ASGI AuthMiddleware full pipeline: overhead over the bare ASGI app",
                subject=subject,
                baseline=starlette,
                baseline_what="Starlette AuthenticationMiddleware (dict lookup) overhead",
                bare=bare,
                mode=mode,
                target=1.5,
                note="asgi.floor_vs_starlette: where the floor itself stands against it",
            ),
            compare(
                "asgi.floor_vs_starlette",
                "floor ASGI middleware (sha256, GCRA, the two rate-limit fields): overhead over "
                "the bare ASGI app (info: the least asgi.vs_starlette can be)",
                subject=floor,
                baseline=starlette,
                baseline_what="Starlette AuthenticationMiddleware (dict lookup) overhead",
                bare=bare,
                mode=mode,
                target=None,
            ),
        ]
    finally:
        loop.close()


def _usage_rows(mode: Mode) -> list[Row]:
    name = "usage.count"
    world = build_world()
    counted = authcore_asgi_app(world, usage=True)
    plain = authcore_asgi_app(world)
    if counted is None or plain is None:
        return [not_measured(name, "usage counting", "no ASGI middleware", target=1.05)]
    loop = asyncio.new_event_loop()
    try:
        header = world.header
        return [
            compare(
                name,
                "ASGI AuthMiddleware hit path (CachedStore over memory, memory limiter, "
                "authorize) with every outcome counted into a UsageCounter: the whole request",
                subject=asgi_round(counted, header, loop),
                baseline=asgi_round(plain, header, loop),
                baseline_what="the same without counting",
                mode=mode,
                target=1.05,
            )
        ]
    finally:
        loop.close()


def _wsgi_rows(mode: Mode) -> list[Row]:
    name = "wsgi.overhead"
    world = build_world()
    cls = _middleware_class("wsgi")
    if cls is None:
        why = "authcore.adapters.wsgi middleware not written yet"
        return [not_measured(name, "WSGI middleware overhead vs the floor's", why, target=1.5)]

    def handler(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        _read_principal(environ).authorize(PERMISSION)
        return bare_wsgi_app(environ, start_response)

    def floor_handler(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if PERMISSION not in environ["floor.principal"].permissions:
            raise PermissionError(PERMISSION)
        return bare_wsgi_app(environ, start_response)

    authcore_app = _wrap(cls, handler, authenticator_for(world))
    floor_app = FloorWSGIMiddleware(
        floor_handler, world.floor_keys, now_us, world.interval_us, world.tau_us
    )
    headerless = FloorWSGIMiddleware(
        floor_handler, world.floor_keys, now_us, world.interval_us, world.tau_us, fields=False
    )
    header = world.header
    bare = wsgi_round(bare_wsgi_app, header)
    floor = wsgi_round(floor_app, header)
    return [
        compare(
            name,
            "WSGI middleware (CachedStore over memory, memory limiter) + authorize: overhead "
            "over the bare WSGI app",
            subject=wsgi_round(authcore_app, header),
            baseline=floor,
            baseline_what="floor WSGI middleware overhead (with the two rate-limit fields)",
            bare=bare,
            mode=mode,
            target=1.5,
        ),
        compare(
            "wsgi.floor_fields",
            "floor WSGI middleware sending the draft's two rate-limit fields, as authcore does: "
            "overhead over the bare WSGI app (info: what the fields cost the floor)",
            subject=floor,
            baseline=wsgi_round(headerless, header),
            baseline_what="the header-less floor's overhead",
            bare=bare,
            mode=mode,
            target=None,
        ),
    ]


def _flask_apps(world: World) -> tuple[WSGIApp, WSGIApp, WSGIApp]:
    """Three Flask apps serving ``GET /v1/keys``: bare, behind AuthCore, behind the floor."""
    from flask import Flask, g

    from authcore.adapters.flask import AuthCore, current_principal
    from benchmarks.floor import FloorDeniedError, floor_authenticate

    def app_with(view: Callable[[], str]) -> Flask:
        app = Flask("bench")
        app.add_url_rule(_PATH, "keys", view)
        return app

    bare = app_with(lambda: "ok")

    def authcore_view() -> str:
        current_principal.authorize(PERMISSION)
        return "ok"

    authed = app_with(authcore_view)
    AuthCore(authed, authenticator_for(world))

    def floor_view() -> str:
        if PERMISSION not in g.floor_principal.permissions:
            raise PermissionError(PERMISSION)
        return "ok"

    floor = app_with(floor_view)
    tats: dict[str, int] = {}

    @floor.before_request
    def floor_authenticate_request() -> tuple[str, int] | None:
        from flask import request

        header = request.headers.get("Authorization", "")
        try:
            if not header.startswith("Bearer "):
                raise FloorDeniedError  # noqa: TRY301 - one refusal path, as in the real thing
            g.floor_principal = floor_authenticate(
                header[7:], world.floor_keys, tats, now_us(), world.interval_us, world.tau_us
            )
        except FloorDeniedError:
            return "", 401
        return None

    return bare, authed, floor


def _flask_rows(mode: Mode) -> list[Row]:
    name = "flask.overhead"
    try:
        importlib.import_module("flask")
    except ImportError:
        return [not_measured(name, "Flask extension overhead", "flask is not installed")]
    world = build_world()
    bare, authed, floor = _flask_apps(world)
    header = world.header
    return [
        compare(
            name,
            "Flask AuthCore extension (CachedStore over memory, memory limiter) + "
            "current_principal.authorize: overhead over the bare Flask app",
            subject=wsgi_round(authed, header),
            baseline=wsgi_round(floor, header),
            baseline_what="the floor in a before_request hook, overhead",
            bare=wsgi_round(bare, header),
            mode=mode,
            target=None,
            note="info: the Flask hit path; Flask's own request handling is most of a request",
        )
    ]


def run(mode: Mode) -> list[Row]:
    """Return the adapter rows."""
    return [*_asgi_rows(mode), *_usage_rows(mode), *_wsgi_rows(mode), *_flask_rows(mode)]
