"""The example API's router: a fixed path's route found by lookup is the one Starlette's walk
picks, and everything else (parameters, 405, 404, a mount prefix) is the walk's own answer."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Host, Match, Mount, Route, Router

from authcore.backends.memory import MemoryRateLimiter, MemoryStore
from authcore.service._routing import IndexedRouter, fixed_path_index
from authcore.service.api import create_app
from authcore.service.openapi import DocumentedRoute
from authcore.testing import call_asgi, issue_root_key, make_workspace

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _walk(routes: list[BaseRoute], path: str, method: str) -> BaseRoute | None:
    """The route Starlette's router serves ``method path`` with (its first full match)."""
    scope: Any = {"type": "http", "path": path, "root_path": "", "method": method}
    return next((r for r in routes if r.matches(scope)[0] is Match.FULL), None)


def _named(name: str) -> Any:
    async def endpoint(request: Request) -> Response:
        return PlainTextResponse(name)

    return endpoint


def _app(routes: list[BaseRoute]) -> Starlette:
    app = Starlette()
    app.router = IndexedRouter(routes, redirect_slashes=False)
    return app


def test_the_index_holds_what_the_walk_picks_for_every_route_of_the_service() -> None:
    app = create_app(MemoryStore(), keyring=None, limiter=MemoryRateLimiter())
    assert isinstance(app.router, IndexedRouter)
    routes = app.routes
    index = fixed_path_index(routes)
    # Every fixed path of the service with each method it serves (GET brings HEAD).
    fixed = [r for r in routes if isinstance(r, DocumentedRoute) and "{" not in r.path]
    expected = {(r.path, m) for r in fixed for m in r.methods or ()}
    assert set(index) == expected
    assert ("/v1/principal", "HEAD") in index
    for route in routes:
        assert isinstance(route, Route)
        for method in METHODS:
            picked = _walk(routes, route.path, method)
            if (route.path, method) in index:
                assert index[route.path, method] is picked


def test_an_earlier_route_with_a_parameter_keeps_a_fixed_path_it_matches() -> None:
    routes: list[BaseRoute] = [
        Route("/items/{name}", _named("by-name"), methods=["GET"]),
        Route("/items/new", _named("new"), methods=["GET", "POST"]),
        Route("/items/new", _named("second"), methods=["POST"]),
    ]
    index = fixed_path_index(routes)
    # GET and HEAD go to the parameter route first, as in Starlette; POST to the first
    # fixed route that serves it, never the second.
    assert set(index) == {("/items/new", "POST")}
    assert index["/items/new", "POST"] is routes[1]
    app = _app(routes)
    assert call_asgi(app, "GET", "/items/new").body == b"by-name"
    assert call_asgi(app, "POST", "/items/new").body == b"new"


def test_nothing_after_a_route_that_reads_more_than_the_path_is_indexed() -> None:
    admin = Router([Route("/status", _named("admin-status"), methods=["GET"])])
    routes: list[BaseRoute] = [
        Route("/ping", _named("ping"), methods=["GET"]),
        Host("admin.example", app=admin),
        Route("/status", _named("status"), methods=["GET"]),
    ]
    # The Host route matches by the Host header, which no probe has: /status stays unindexed.
    assert set(fixed_path_index(routes)) == {("/ping", "GET"), ("/ping", "HEAD")}
    app = _app(routes)
    on_admin = call_asgi(app, "GET", "/status", [("host", "admin.example")])
    assert on_admin.body == b"admin-status"
    assert call_asgi(app, "GET", "/status", [("host", "api.example")]).body == b"status"
    mounted: list[BaseRoute] = [
        Mount("/v1", routes=[Route("/status", _named("mounted"), methods=["GET"])]),
        Route("/v1/status", _named("shadowed"), methods=["GET"]),
    ]
    assert fixed_path_index(mounted) == {}
    assert call_asgi(_app(mounted), "GET", "/v1/status").body == b"mounted"


def test_what_the_index_does_not_hold_gets_the_walks_answer() -> None:
    routes: list[BaseRoute] = [
        Route("/ping", _named("ping"), methods=["GET"]),
        Route("/things/{thing_id}", _named("thing"), methods=["GET"]),
    ]
    app = _app(routes)
    assert call_asgi(app, "GET", "/ping").body == b"ping"
    assert call_asgi(app, "HEAD", "/ping").status == 200
    assert call_asgi(app, "GET", "/things/7").body == b"thing"
    refused = call_asgi(app, "DELETE", "/ping")
    assert refused.status == 405
    assert set(str(refused.header("allow")).split(", ")) == {"GET", "HEAD"}
    assert call_asgi(app, "GET", "/pong").status == 404
    assert call_asgi(app, "GET", "/ping/").status == 404  # no redirect, as configured


@pytest.mark.parametrize("indexed", [True, False])
def test_a_route_gets_the_same_scope_either_way(indexed: bool) -> None:
    seen: list[dict[str, Any]] = []

    async def endpoint(request: Request) -> Response:
        seen.append(dict(request.scope))
        return PlainTextResponse("ok")

    routes: list[BaseRoute] = [Route("/here", endpoint, methods=["GET"])]
    app = Starlette()
    app.router = (
        IndexedRouter(routes, redirect_slashes=False)
        if indexed
        else Router(routes, redirect_slashes=False)
    )
    assert call_asgi(app, "GET", "/here").status == 200
    (scope,) = seen
    assert scope["route"] is routes[0]
    assert scope["endpoint"] is endpoint
    assert scope["path_params"] == {}
    assert scope["router"] is app.router


def test_routes_added_later_count_in_their_order() -> None:
    routes: list[BaseRoute] = [Route("/a", _named("a"), methods=["GET"])]
    app = _app(routes)
    assert call_asgi(app, "GET", "/a").body == b"a"
    assert call_asgi(app, "GET", "/b").status == 404
    app.router.routes.append(Route("/b", _named("b"), methods=["GET"]))
    assert call_asgi(app, "GET", "/b").body == b"b"
    # Put in front: the index is rebuilt from the new order, as the walk would read it.
    app.router.routes.insert(0, Route("/{any}", _named("any"), methods=["GET"]))
    assert call_asgi(app, "GET", "/a").body == b"any"


def test_under_a_mount_prefix_the_walk_decides() -> None:
    routes: list[BaseRoute] = [Route("/ping", _named("ping"), methods=["GET"])]
    router = IndexedRouter(routes, redirect_slashes=False)
    sent: list[Any] = []

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    scope: Any = {
        "type": "http",
        "method": "GET",
        "path": "/api/ping",
        "root_path": "/api",
        "headers": [],
        "query_string": b"",
    }
    asyncio.run(router(scope, receive, send))
    assert sent[0]["status"] == 200
    assert sent[1]["body"] == b"ping"


def test_the_service_answers_fixed_paths_through_the_index() -> None:
    store = MemoryStore()
    make_workspace(store, "ws_route")
    _, key = issue_root_key(store, "ws_route", ["keys.read"], now=time.time())
    app = create_app(store, keyring=None, limiter=MemoryRateLimiter())
    bearer = [("authorization", f"Bearer {key.reveal()}")]
    first = call_asgi(app, "GET", "/v1/principal", bearer)
    assert first.status == 200
    assert first.json()["workspace_id"] == "ws_route"
    # The answer is built once per principal and sent as built: the same body, and each
    # response its own header list (the rate-limit fields differ from one to the next).
    second = call_asgi(app, "GET", "/v1/principal", bearer)
    assert second.body == first.body
    assert second.header("content-length") == str(len(first.body))
    assert second.header("cache-control") == "no-store"
    names = [name for name, _ in second.headers]
    assert names.count("ratelimit") == names.count("x-request-id") == 1
    assert first.header("x-request-id") != second.header("x-request-id")
    assert call_asgi(app, "POST", "/v1/principal", bearer).status == 405
    assert call_asgi(app, "GET", "/v1/principal").status == 401
