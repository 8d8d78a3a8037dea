"""Send one request through an adapter in process, and reduce the response to an Answer.

ASGI goes through ``httpx.ASGITransport`` (real ASGI messages, no socket), WSGI through
Werkzeug's test client, Flask through its own test client. Every sender is async so that one
test can drive all three.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from werkzeug.test import Client

from tests.adapters.world import Answer, Case, Headers, World, flask_app, starlette_app, wsgi_app

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


SENDERS: dict[str, Callable[[World], Any]] = {
    "asgi": asgi_sender,
    "wsgi": wsgi_sender,
    "flask": flask_sender,
}


async def run_case(send: Send, world: World, case: Case) -> Answer:
    """Send ``case`` ``case.repeat`` times and return the last answer."""
    headers = case.headers(world)
    answer = await send(case.method, case.path, headers)
    for _ in range(case.repeat - 1):
        answer = await send(case.method, case.path, headers)
    return answer
