"""Hostile Authorization headers through every adapter: 400/401/431, never a 500."""

from __future__ import annotations

import contextlib
import socket

import pytest
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.wsgi import WSGIHandler

from tests.adapters.drivers import SENDERS
from tests.adapters.servers import serve_asgi, serve_wsgi
from tests.adapters.world import (
    Headers,
    django_settings,
    flask_app,
    make_world,
    starlette_app,
    wsgi_app,
)

ONE_MIB = 1 << 20

HOSTILE: dict[str, Headers] = {
    "latin1_bytes": [("Authorization", "Bearer ak_\xe9\xff\xa0abc")],
    "nul_byte": [("Authorization", "Bearer ak_abc\x00def")],
    "control_byte": [("Authorization", "Bearer ak_abc\x1bdef")],
    "tab_separator": [("Authorization", "Bearer\tak_abc")],
    "nbsp_separator": [("Authorization", "Bearer\xa0ak_abc")],
    "one_mib": [("Authorization", "Bearer " + "a" * ONE_MIB)],
    "comma_joined": [("Authorization", "Bearer ak_abc, Bearer ak_def")],
    "repeated": [("Authorization", "Bearer ak_abc"), ("Authorization", "Bearer ak_def")],
    "empty_bearer": [("Authorization", "Bearer")],
    "portal_cookie_one_mib": [("Cookie", "authcore_portal=pt_" + "a" * ONE_MIB)],
}


@pytest.mark.parametrize("adapter", sorted(SENDERS))
@pytest.mark.parametrize("name", sorted(HOSTILE))
async def test_hostile_header_is_a_client_error_in_process(adapter: str, name: str) -> None:
    world = make_world()
    path = "/portal/profile" if name.startswith("portal") else "/keys"
    async with SENDERS[adapter](world) as send:
        answer = await send("GET", path, HOSTILE[name])
    assert answer.status == 400, answer
    assert answer.problem()["code"] in {
        "credential_malformed",
        "credential_ambiguous",
        "credential_too_large",
    }
    assert "ak_" not in answer.body.decode()


def _raw_request(base_url: str, header_line: bytes) -> bytes:
    host, port = base_url.removeprefix("http://").split(":")
    request = (
        b"GET /keys HTTP/1.1\r\nHost: test\r\n" + header_line + b"\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        # The server may answer and close before it has read a huge header.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            conn.sendall(request)
        chunks = []
        while True:
            try:
                chunk = conn.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


RAW: dict[str, bytes] = {
    "latin1_bytes": b"Authorization: Bearer ak_\xe9\xff",
    "nul_byte": b"Authorization: Bearer ak_a\x00b",
    "one_mib": b"Authorization: Bearer " + b"a" * ONE_MIB,
    "repeated": b"Authorization: Bearer ak_abc\r\nAuthorization: Bearer ak_def",
}


@pytest.mark.e2e
@pytest.mark.parametrize("adapter", ["asgi", "wsgi", "flask", "django_uvicorn", "django_waitress"])
def test_hostile_bytes_over_real_http_never_get_a_500(adapter: str) -> None:
    world = make_world()
    with contextlib.ExitStack() as stack:
        if adapter == "asgi":
            server = serve_asgi(starlette_app(world))
        elif adapter.startswith("django"):
            stack.enter_context(django_settings(world))
            uvicorn = adapter == "django_uvicorn"
            server = serve_asgi(ASGIHandler()) if uvicorn else serve_wsgi(WSGIHandler())
        else:
            server = serve_wsgi(wsgi_app(world) if adapter == "wsgi" else flask_app(world))
        base_url = stack.enter_context(server)
        for name, line in RAW.items():
            reply = _raw_request(base_url, line)
            status_line = reply.split(b"\r\n", 1)[0]
            # The server itself may refuse first (400 or 431); the adapter answers 400.
            assert status_line.split(b" ")[1] in {b"400", b"431"}, (name, status_line)
