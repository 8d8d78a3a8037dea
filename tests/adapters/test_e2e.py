"""The behaviour matrix end to end: uvicorn and waitress on 127.0.0.1, driven by httpx.

Django runs both ways: its ASGI handler under uvicorn (the middleware in async mode) and its
WSGI handler under waitress (sync mode).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import httpx
import pytest
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.wsgi import WSGIHandler

from tests.adapters.drivers import SENDERS, run_case
from tests.adapters.servers import serve_asgi, serve_wsgi
from tests.adapters.world import (
    CASES,
    Answer,
    Headers,
    World,
    check,
    django_settings,
    flask_app,
    make_world,
    starlette_app,
    wsgi_app,
)

pytestmark = pytest.mark.e2e


def _built(make_app: Callable[[World], Any]) -> Callable[[World], AbstractContextManager[Any]]:
    @contextmanager
    def build(world: World) -> Iterator[Any]:
        yield make_app(world)

    return build


@contextmanager
def _django(world: World, handler: type[ASGIHandler | WSGIHandler]) -> Iterator[Any]:
    # The world's settings stay in force while the server runs: Django reads them per request.
    with django_settings(world):
        yield handler()


AppFactory = Callable[[World], AbstractContextManager[Any]]
Serve = Callable[[Any], AbstractContextManager[str]]

#: adapter -> (its app, the server, the in-process sender it must agree with)
SERVED: dict[str, tuple[AppFactory, Serve, str]] = {
    "asgi": (_built(starlette_app), serve_asgi, "asgi"),
    "wsgi": (_built(wsgi_app), serve_wsgi, "wsgi"),
    "flask": (_built(flask_app), serve_wsgi, "flask"),
    "django_uvicorn": (lambda world: _django(world, ASGIHandler), serve_asgi, "django_asgi"),
    "django_waitress": (lambda world: _django(world, WSGIHandler), serve_wsgi, "django"),
}


@pytest.fixture(scope="module", params=sorted(SERVED))
def served(request: pytest.FixtureRequest) -> Iterator[tuple[str, World, httpx.Client]]:
    """One server per adapter for the whole module; every case uses its own workspace."""
    adapter = request.param
    make_app, serve, _ = SERVED[adapter]
    world = make_world()
    with (
        make_app(world) as app,
        serve(app) as base_url,
        httpx.Client(base_url=base_url, timeout=10) as client,
    ):
        yield adapter, world, client


def _http_sender(client: httpx.Client) -> Callable[[str, str, Headers], Any]:
    async def send(method: str, path: str, headers: Headers) -> Answer:
        # Blocking is fine here: the server runs in its own thread.
        response = client.request(method, path, headers=headers)  # noqa: ASYNC212 - see above
        return Answer.of(response.status_code, response.headers.multi_items(), response.content)

    return send


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
async def test_case_over_real_http(served: tuple[str, World, httpx.Client], case: Any) -> None:
    adapter, world, client = served
    answer = await run_case(_http_sender(client), world, case)
    check(case, answer)
    # Over the wire and in process each adapter answers the same, and in process all three
    # adapters answer the same (test_matrix), so all three answer the same over the wire.
    in_process_world = make_world()
    async with SENDERS[SERVED[adapter][2]](in_process_world) as send:
        expected = await run_case(send, in_process_world, case)
    assert answer.comparable() == expected.comparable()
