"""Property over the whole pipeline, per adapter: any request ends in a principal or 4xx/503.

Hypothesis builds requests (methods, paths, header sets with repeated ``Authorization`` and
``Cookie`` fields, any latin-1 bytes, real and near-miss credentials) and hands them to each
adapter through a hand-built ASGI scope or WSGI environ, as a server would. The answer must be
200 (a principal), or one of 400/401/403/429/431/503 with a problem document; an app-level
404/405 may only follow a principal (the rate-limit fields prove the auth step passed),
but for the 405 of a route marked public.
Never a 500, never an exception out of the adapter.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from tests.adapters.world import (
    PORTAL_COOKIE,
    Answer,
    flask_app,
    make_world,
    starlette_app,
    wsgi_app,
)
from tests.security.support import Headers, on_the_wire, send_asgi_raw, send_wsgi_raw
from tests.strategies import pipeline_requests

AUTH_STATUSES = frozenset({200, 400, 401, 403, 429, 431, 503})
# Routing answers (not found, method not allowed, Starlette's trailing-slash redirect) come only
# after the auth step let the request through.
APP_STATUSES = frozenset({307, 404, 405})
EXAMPLES = 150


def wire(headers: Headers) -> Headers:
    """Header values as a server delivers them: text beyond latin-1 arrives as UTF-8 bytes."""
    return [
        (name, on_the_wire(value) if max(value, default="\0") > "\xff" else value)
        for name, value in headers
    ]


#: Routes public by their handler's marker: a method they do not serve is the router's 405,
#: which needs no credential (the marker covers the route, whatever the method).
MARKED_PUBLIC = frozenset({"/health"})


def check(answer: Answer, path: str = "") -> None:
    if answer.status == 405 and path in MARKED_PUBLIC:
        return
    if answer.status in APP_STATUSES:
        assert answer.header("ratelimit-policy") is not None, answer
        return
    assert answer.status in AUTH_STATUSES, answer
    if answer.status != 200 and answer.body:
        assert answer.header("content-type") == "application/problem+json", answer


def _world_and_credentials() -> tuple[Any, list[str]]:
    world = make_world()
    credentials = [
        world.key("prop", "keys.read"),
        world.key("prop_noperm", "billing.read"),
        world.key("prop_off", "keys.read", disabled=True),
        world.portal_token("prop_portal"),
        world.jwt("prop_jwt", "keys.read"),
    ]
    return world, credentials


SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def test_asgi_pipeline_answers_only_allowed_statuses() -> None:
    world, credentials = _world_and_credentials()
    app = starlette_app(world)
    loop = asyncio.new_event_loop()

    @SETTINGS
    @given(request=pipeline_requests(credentials, PORTAL_COOKIE))
    def run(request: tuple[str, str, Headers]) -> None:
        method, path, headers = request
        check(loop.run_until_complete(send_asgi_raw(app, method, path, wire(headers))), path)

    try:
        run()
    finally:
        loop.close()


@pytest.mark.parametrize("adapter", ["wsgi", "flask"])
def test_wsgi_pipeline_answers_only_allowed_statuses(adapter: str) -> None:
    world, credentials = _world_and_credentials()
    app = wsgi_app(world) if adapter == "wsgi" else flask_app(world)

    @SETTINGS
    @given(request=pipeline_requests(credentials, PORTAL_COOKIE))
    def run(request: tuple[str, str, Headers]) -> None:
        method, path, headers = request
        check(send_wsgi_raw(app, method, path, wire(headers)), path)

    run()


@pytest.mark.parametrize("adapter", ["asgi", "wsgi", "flask"])
def test_the_property_can_see_a_principal(adapter: str) -> None:
    # Guards the property against vacuity: the drivers do deliver a valid request.
    world, credentials = _world_and_credentials()
    headers = [("Authorization", f"Bearer {credentials[0]}")]
    if adapter == "asgi":
        answer = asyncio.run(send_asgi_raw(starlette_app(world), "GET", "/keys", headers))
    else:
        app = wsgi_app(world) if adapter == "wsgi" else flask_app(world)
        answer = send_wsgi_raw(app, "GET", "/keys", headers)
    assert answer.status == 200
    assert answer.header("ratelimit-policy") is not None
