"""WSGI specifics: the handler reads the principal with the adapter's principal_from."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from authcore.adapters.wsgi import AuthMiddleware, principal_from
from authcore.errors import PrincipalMissingError
from authcore.testing import call_wsgi
from tests.adapters.world import make_world


def _app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    try:
        body = principal_from(environ).workspace_id.encode()
    except PrincipalMissingError:
        body = b"missing"
    start_response("200 OK", [("content-type", "text/plain")])
    return [body]


def test_principal_from_reads_what_the_middleware_attached() -> None:
    world = make_world()
    key = world.key("wsgi", "keys.read")
    app = AuthMiddleware(_app, world.api)
    response = call_wsgi(app, "GET", "/keys", [("Authorization", f"Bearer {key}")])
    assert (response.status, response.body) == (200, b"ws_wsgi")


def test_principal_from_without_the_middleware_fails_closed() -> None:
    assert call_wsgi(_app, "GET", "/keys").body == b"missing"
