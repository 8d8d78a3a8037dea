"""The example API's /v1 handlers below the app: the principal's JSON, rendered once."""

from __future__ import annotations

import gc
import json

from starlette.requests import Request

from authcore.binding import attach_principal
from authcore.permissions import PermissionSet
from authcore.principal import Principal, Source, Subject
from authcore.service.management import ManagementRoutes
from authcore.testing import MemoryStore


def _principal(workspace_id: str, grants: tuple[str, ...] = ("keys.read",)) -> Principal:
    subject = Subject("root_key", f"key_{workspace_id}")
    return Principal(workspace_id, subject, Source.ROOT_KEY, PermissionSet(grants))


async def _render(routes: ManagementRoutes, principal: Principal) -> dict[str, object]:
    scope: dict[str, object] = {"type": "http", "method": "GET", "path": "/v1/principal"}
    attach_principal(scope, principal)
    response = await routes.principal(Request(scope))
    body: dict[str, object] = json.loads(bytes(response.body))
    return body


async def test_each_principal_gets_its_own_json_even_after_the_last_one_is_collected() -> None:
    # Keyed by the principal, not id(principal): a new principal that lands on a collected
    # one's address must not be answered with the old one's JSON.
    routes = ManagementRoutes(MemoryStore(), lambda: 0.0, body_timeout=1.0)
    for n in range(50):
        principal = _principal(f"ws_{n}")
        assert (await _render(routes, principal))["workspace_id"] == f"ws_{n}"
        del principal
        gc.collect()


async def test_equal_principals_share_one_rendering() -> None:
    routes = ManagementRoutes(MemoryStore(), lambda: 0.0, body_timeout=1.0)
    first = await _render(routes, _principal("ws_1", ("keys.read", "audit.read")))
    second = await _render(routes, _principal("ws_1", ("audit.read", "keys.read")))
    assert first == second
    assert first["permissions"] == ["audit.read", "keys.read"]
    assert len(routes._rendered) == 1
