"""docs/frameworks.md: every Python sample runs, in order, in one namespace."""

from __future__ import annotations

import re
import types
from pathlib import Path
from typing import Any

import httpx
from django.test import Client as DjangoClient
from django.test import override_settings
from werkzeug.test import Client

from authcore.testing import call_asgi, issue_root_key, make_workspace

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "frameworks.md"
_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def _run_samples() -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "frameworks_guide"}
    blocks = _BLOCK.findall(GUIDE.read_text())
    assert len(blocks) >= 6
    for block in blocks:
        exec(compile(block, str(GUIDE), "exec"), namespace)  # noqa: S102 - our own documentation
    return namespace


async def test_guide_samples_build_working_apps() -> None:
    ns = _run_samples()
    make_workspace(ns["store"], "ws_docs")
    _, key = issue_root_key(
        ns["store"], "ws_docs", ["keys.read", "keys.create"], now=ns["time"].time()
    )
    auth = {"Authorization": f"Bearer {key.reveal()}"}

    for app in (ns["app"], ns["fastapi_app"], ns["asgi_app"]):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://docs") as client:
            assert (await client.get("/keys")).status_code == 401
            allowed = await client.get("/keys", headers=auth)
            assert allowed.status_code == 200, app
            assert "ws_docs" in allowed.text

    # A public path answers without a credential: the guide's apps never read a principal
    # there (one that did would answer 500 principal_missing).
    for app in (ns["app"], ns["fastapi_app"], ns["asgi_app"], ns["same_app"]):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://docs") as client:
            assert (await client.get("/health")).status_code == 200, app

    transport = httpx.ASGITransport(app=ns["fastapi_app"])
    async with httpx.AsyncClient(transport=transport, base_url="http://docs") as client:
        schema = (await client.get("/openapi.json")).json()
        assert (await client.get("/docs")).status_code == 200
    keys, profile = schema["paths"]["/keys"]["get"], schema["paths"]["/portal/profile"]["get"]
    assert keys["security"] == [{"RootKeyOrJWT": []}]
    assert profile["security"] == [{"PortalToken": []}, {"PortalCookie": []}]
    assert schema["components"]["securitySchemes"]["PortalCookie"]["name"] == "authcore_portal"
    for operation in (keys, profile):
        assert {"401", "403", "429"} <= set(operation["responses"])

    for wsgi in (ns["wsgi_app"], ns["flask_app"]):
        test_client = Client(wsgi)
        assert test_client.get("/keys").status_code == 401
        response = test_client.get("/keys", headers=auth)
        assert response.status_code == 200
        assert b"ws_docs" in response.get_data()
    assert Client(ns["flask_app"]).get("/health").status_code == 200


def test_guide_django_and_prometheus_samples_work() -> None:
    ns = _run_samples()
    make_workspace(ns["store"], "ws_docs")
    _, key = issue_root_key(
        ns["store"], "ws_docs", ["keys.read", "keys.create"], now=ns["time"].time()
    )
    auth = {"Authorization": f"Bearer {key.reveal()}"}

    urls = types.ModuleType("frameworks_guide_urls")
    urls.urlpatterns = ns["urlpatterns"]  # type: ignore[attr-defined]  # the guide's urls.py
    with override_settings(
        MIDDLEWARE=ns["MIDDLEWARE"],
        AUTHCORE=ns["AUTHCORE"],
        REST_FRAMEWORK=ns["REST_FRAMEWORK"],
        ROOT_URLCONF=urls,
    ):
        client = DjangoClient()
        assert client.get("/health").status_code == 200
        assert client.get("/keys").status_code == 401
        for path in ("/keys", "/api/keys"):
            response = client.get(path, headers=auth)
            assert response.status_code == 200, response.content
            assert response.json() == {"workspace_id": "ws_docs"}

    call_asgi(ns["metered_app"], "GET", "/keys", list(auth.items()))
    scraped = call_asgi(ns["scrape_app"], "GET", "/metrics")
    assert scraped.status == 200
    assert b'authcore_auth_outcomes_total{code="admitted",source="root_key"} 1.0' in scraped.body
