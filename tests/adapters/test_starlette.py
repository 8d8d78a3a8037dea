"""Starlette and FastAPI helpers: markers, the dependency, the decorator, error handlers."""

from __future__ import annotations

from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from authcore.adapters.starlette import (
    install_auth,
    install_error_handlers,
    principal_from,
    public,
    require,
    requires_permission,
)
from authcore.errors import InvalidPermissionError
from authcore.principal import Principal
from tests.adapters.world import make_world


async def _get(app: Any, path: str, key: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.get(path, headers=headers)


async def test_fastapi_dependency_requires_the_whole_query() -> None:
    world = make_world()
    app = FastAPI()

    @app.get("/keys")
    async def keys(
        principal: Annotated[Principal, Depends(require("keys.read AND keys.create"))],
    ) -> dict[str, str]:
        return {"workspace_id": principal.workspace_id}

    install_auth(app, world.api)
    both = await _get(app, "/keys", world.key("both", "keys.read", "keys.create"))
    one = await _get(app, "/keys", world.key("one", "keys.read"))
    assert both.status_code == 200
    assert one.status_code == 403
    assert one.headers["www-authenticate"] == 'Bearer realm="api", error="insufficient_scope"'
    assert one.headers["ratelimit"] == '"workspace";r=599;t=1'


async def test_route_without_middleware_fails_closed_with_a_safe_500() -> None:
    async def whoami(request: Request) -> JSONResponse:
        return JSONResponse({"workspace_id": principal_from(request).workspace_id})

    app = Starlette(routes=[Route("/whoami", whoami)])
    install_error_handlers(app)
    response = await _get(app, "/whoami")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "principal_missing"


async def test_public_marker_on_a_mounted_app_and_on_a_nested_endpoint() -> None:
    world = make_world()

    async def hello(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    async def secret(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    assets = Starlette(routes=[Route("/logo", hello)])
    app = Starlette(
        routes=[
            Mount("/assets", app=public(assets)),
            Mount("/v1", routes=[Route("/ping", public(hello)), Route("/secret", secret)]),
        ]
    )
    install_auth(app, world.api)
    assert (await _get(app, "/assets/logo")).status_code == 200
    assert (await _get(app, "/v1/ping")).status_code == 200
    assert (await _get(app, "/v1/secret")).status_code == 401


async def test_requires_permission_decorates_sync_endpoints_too() -> None:
    world = make_world()

    @requires_permission("keys.read")
    def sync_keys(request: Request) -> JSONResponse:
        return JSONResponse({"workspace_id": principal_from(request).workspace_id})

    app = Starlette(routes=[Route("/keys", sync_keys)])
    install_auth(app, world.api)
    assert (await _get(app, "/keys", world.key("sync", "keys.read"))).status_code == 200
    assert (await _get(app, "/keys", world.key("nosync", "billing.read"))).status_code == 403


def test_an_invalid_query_fails_at_import_time() -> None:
    with pytest.raises(InvalidPermissionError):
        require("keys.read and keys.create")
    with pytest.raises(InvalidPermissionError):
        requires_permission("keys.*")
