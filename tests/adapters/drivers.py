"""Send one request through an adapter in process, and reduce the response to an Answer.

ASGI goes through ``httpx.ASGITransport`` (real ASGI messages, no socket), WSGI through
Werkzeug's test client, Flask through its own test client, Django through its test ``Client``
(the middleware in sync mode) and its ASGI handler (async mode). Every sender is async so that
one test can drive them all.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from django.core.handlers.asgi import ASGIHandler
from django.test import Client as DjangoClient
from werkzeug.test import Client

from tests.adapters.world import (
    Answer,
    Case,
    Headers,
    World,
    django_settings,
    flask_app,
    starlette_app,
    wsgi_app,
)

Send = Callable[[str, str, Headers], Awaitable[Answer]]


@asynccontextmanager
async def asgi_sender(world: World) -> AsyncIterator[Send]:
    transport = httpx.ASGITransport(app=starlette_app(world))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:

        async def send(method: str, path: str, headers: Headers) -> Answer:
            # Bytes, so hostile latin-1 values reach the app exactly as a server delivers them.
            raw = [(name.encode(), value.encode("latin-1")) for name, value in headers]
            response = await client.request(method, path, headers=raw)
            return Answer.of(response.status_code, response.headers.multi_items(), response.content)

        yield send


@asynccontextmanager
async def _werkzeug_sender(app: Any) -> AsyncIterator[Send]:
    # use_cookies=False: otherwise the client replaces our Cookie header with its jar.
    client = Client(app, use_cookies=False)

    async def send(method: str, path: str, headers: Headers) -> Answer:
        response = client.open(path, method=method, headers=headers)
        try:
            return Answer.of(response.status_code, response.headers.items(), response.get_data())
        finally:
            response.close()

    yield send


def wsgi_sender(world: World) -> Any:
    """Drive the plain WSGI app with Werkzeug's test client."""
    return _werkzeug_sender(wsgi_app(world))


def flask_sender(world: World) -> Any:
    """Drive the Flask app with Werkzeug's test client (what app.test_client() is)."""
    return _werkzeug_sender(flask_app(world).test_client().application)


def _wsgi_fields(headers: Headers) -> dict[str, str]:
    """Headers for Django's test client, which takes one value per field: a repeated field is
    joined with ", ", as WSGI servers fold it (RFC 9110 §5.3)."""
    fields: dict[str, str] = {}
    for name, value in headers:
        fields[name] = f"{fields[name]}, {value}" if name in fields else value
    return fields


@asynccontextmanager
async def django_sender(world: World) -> AsyncIterator[Send]:
    """Drive the Django app with django.test.Client: the middleware runs in sync mode."""
    with django_settings(world):
        client = DjangoClient()

        async def send(method: str, path: str, headers: Headers) -> Answer:
            # Off the event loop, as a WSGI server runs it: async views are run with
            # async_to_sync, which refuses a thread that has a running loop.
            response = await asyncio.to_thread(
                client.generic, method, path, headers=_wsgi_fields(headers)
            )
            return Answer.of(response.status_code, response.headers.items(), response.content)

        yield send


@asynccontextmanager
async def django_asgi_sender(world: World) -> AsyncIterator[Send]:
    """Drive Django's ASGI handler with real ASGI messages: the middleware runs in async mode.

    (Not django.test.AsyncClient: it adds a Cookie field of its own to every request, which
    Django's ASGI request then joins with ours.)
    """
    with django_settings(world):
        # Any: Django's handler is typed with dict scopes, httpx's callable with mutable mappings.
        handler: Any = ASGIHandler()
        transport = httpx.ASGITransport(app=handler)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:

            async def send(method: str, path: str, headers: Headers) -> Answer:
                raw = [(name.encode(), value.encode("latin-1")) for name, value in headers]
                response = await client.request(method, path, headers=raw)
                return Answer.of(
                    response.status_code, response.headers.multi_items(), response.content
                )

            yield send


SENDERS: dict[str, Callable[[World], Any]] = {
    "asgi": asgi_sender,
    "wsgi": wsgi_sender,
    "flask": flask_sender,
    "django": django_sender,
    "django_asgi": django_asgi_sender,
}


async def run_case(send: Send, world: World, case: Case) -> Answer:
    """Send ``case`` ``case.repeat`` times and return the last answer."""
    headers = case.headers(world)
    answer = await send(case.method, case.path, headers)
    for _ in range(case.repeat - 1):
        answer = await send(case.method, case.path, headers)
    return answer
