"""The examples in examples/ (and so the samples in docs/frameworks.md) really work."""

from __future__ import annotations

import io
import logging
import time

import httpx
from examples import fastapi_app, flask_app

from authcore.testing import issue_root_key, make_workspace


async def test_fastapi_example_serves_health_publicly_and_keys_to_keys_read() -> None:
    make_workspace(fastapi_app.store, "ws_fastapi")
    _, reader = issue_root_key(fastapi_app.store, "ws_fastapi", ["keys.read"], now=time.time())
    _, other = issue_root_key(fastapi_app.store, "ws_fastapi", ["billing.read"], now=time.time())
    transport = httpx.ASGITransport(app=fastapi_app.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://example") as client:
        health = await client.get("/health")
        anonymous = await client.get("/keys")
        allowed = await client.get("/keys", headers={"Authorization": f"Bearer {reader.reveal()}"})
        denied = await client.get("/keys", headers={"Authorization": f"Bearer {other.reveal()}"})
    assert health.status_code == 200
    assert "ratelimit-policy" not in health.headers
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == 'Bearer realm="api"'
    assert allowed.status_code == 200
    assert allowed.json() == {"workspace_id": "ws_fastapi"}
    assert allowed.headers["ratelimit-policy"] == '"workspace";q=600;w=60'
    assert denied.status_code == 403
    assert denied.headers["content-type"] == "application/problem+json"
    assert 'error="insufficient_scope"' in denied.headers["www-authenticate"]


async def test_fastapi_example_documents_the_bearer_scheme_and_refusals() -> None:
    transport = httpx.ASGITransport(app=fastapi_app.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://example") as client:
        docs = await client.get("/docs")
        schema = (await client.get("/openapi.json")).json()
    assert docs.status_code == 200
    assert schema["components"]["securitySchemes"]["RootKeyOrJWT"]["scheme"] == "bearer"
    keys = schema["paths"]["/keys"]["get"]
    assert keys["security"] == [{"RootKeyOrJWT": []}]
    assert {"401", "403", "429"} <= set(keys["responses"])
    assert "security" not in schema["paths"]["/health"]["get"]


def test_flask_example_serves_health_publicly_and_keys_to_keys_read() -> None:
    make_workspace(flask_app.store, "ws_flask")
    _, reader = issue_root_key(flask_app.store, "ws_flask", ["keys.read"], now=time.time())
    _, other = issue_root_key(flask_app.store, "ws_flask", ["billing.read"], now=time.time())
    stream = io.StringIO()
    handler = flask_app.configure_logging(stream)
    flask_app.log.addHandler(handler)
    flask_app.log.setLevel(logging.INFO)
    try:
        client = flask_app.app.test_client()
        health = client.get("/health")
        anonymous = client.get("/keys")
        allowed = client.get("/keys", headers={"Authorization": f"Bearer {reader.reveal()}"})
        denied = client.get("/keys", headers={"Authorization": f"Bearer {other.reveal()}"})
    finally:
        flask_app.log.removeHandler(handler)
    assert health.status_code == 200
    assert anonymous.status_code == 401
    assert allowed.status_code == 200
    assert allowed.get_json() == {"workspace_id": "ws_flask"}
    assert allowed.headers["RateLimit-Policy"] == '"workspace";q=600;w=60'
    assert denied.status_code == 403
    assert denied.mimetype == "application/problem+json"
    assert stream.getvalue() == "INFO [ws_flask] listing keys\n"
