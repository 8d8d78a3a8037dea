"""The example API's OpenAPI document: generated from the routes, true to what they serve.

The app runs under a real uvicorn on loopback over the memory store; the document is read from
``GET /openapi.json`` as a client would.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema_rs
import pytest
from schemathesis.specs.openapi.definitions import OPENAPI_31
from starlette.routing import Route

from authcore.backends.memory import MemoryRateLimiter, MemoryStore
from authcore.ratelimit_fields import RateLimitHeaders
from authcore.service.api import create_app
from authcore.service.openapi import openapi_document, openapi_path
from authcore.service.portal_page import SECURITY_HEADERS
from authcore.testing import issue_root_key, make_workspace
from tests.service.servers import serve

METHODS = ("get", "head", "post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[str, Any, str]]:
    """The app on loopback, the app object, and a ``*`` key of its workspace."""
    store = MemoryStore()
    make_workspace(store, "ws_doc")
    _, key = issue_root_key(store, "ws_doc", ["*"], now=time.time())
    app = create_app(store, keyring=None, limiter=MemoryRateLimiter())
    with serve(app) as url:
        yield url, app, key.reveal()


@pytest.fixture(scope="module")
def document(world: tuple[str, Any, str]) -> dict[str, Any]:
    url, _, _ = world
    answer = httpx.get(f"{url}/openapi.json")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    doc: dict[str, Any] = answer.json()
    return doc


def _served(app: Any) -> set[tuple[str, str]]:
    return {
        (openapi_path(route.path), method.lower())
        for route in app.routes
        if isinstance(route, Route)
        for method in route.methods or ()
    }


def _documented(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (path, method)
        for path, item in document["paths"].items()
        for method in item
        if method in METHODS
    }


def test_every_served_route_and_method_is_documented_and_nothing_else(
    world: tuple[str, Any, str], document: dict[str, Any]
) -> None:
    _, app, _ = world
    assert _served(app) == _documented(document)
    assert ("/v1/identities/{external_id}", "patch") in _documented(document)
    assert ("/openapi.json", "head") in _documented(document)


def test_the_served_document_is_the_one_generated_from_the_route_table(
    world: tuple[str, Any, str], document: dict[str, Any]
) -> None:
    _, app, _ = world
    generated = openapi_document(
        app.routes, title="authcore serve", version=document["info"]["version"]
    )
    assert document["paths"] == generated["paths"]
    assert document["components"] == generated["components"]


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    jsonschema_rs.validator_for(OPENAPI_31).validate(document)
    # Each operation's id is unique (client generators name methods by it).
    ids = [
        item[method]["operationId"]
        for item in document["paths"].values()
        for method in item
        if method in METHODS
    ]
    assert len(ids) == len(set(ids))


def _links(document: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Each link of the document, with the response it is declared on."""
    return [
        (response, link)
        for item in document["paths"].values()
        for method in item
        if method in METHODS
        for response in item[method]["responses"].values()
        for link in response.get("links", {}).values()
    ]


def test_each_link_names_a_served_operation_its_parameters_and_a_member_of_the_answer(
    document: dict[str, Any],
) -> None:
    operations = {
        item[method]["operationId"]: item[method]
        for item in document["paths"].values()
        for method in item
        if method in METHODS
    }
    links = _links(document)
    targets = {link["operationId"] for _, link in links}
    # The made resources and what addresses them (Schemathesis' stateful phase follows these).
    assert {"revoke_key", "key_usage", "get_identity", "delete_identity"} <= targets
    for response, link in links:
        target = operations[link["operationId"]]
        names = {param["name"] for param in target.get("parameters", [])}
        for name, expression in link["parameters"].items():
            assert name in names, link
            member = expression.removeprefix("$response.body#/")
            schema = response["content"]["application/json"]["schema"]
            assert member in schema["required"], link


def test_security_schemes_headers_and_the_shared_problem_are_declared(
    document: dict[str, Any],
) -> None:
    components = document["components"]
    schemes = components["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    assert schemes["portalCookie"]["in"] == "cookie"
    assert schemes["portalCookie"]["name"] == "authcore_portal"
    assert components["schemas"]["Problem"]["required"] == ["type", "title", "status", "code"]
    for status in (400, 401, 403, 404, 405, 409, 413, 415, 429, 503):
        response = components["responses"][f"Problem{status}"]
        assert response["content"]["application/problem+json"]["schema"] == {
            "$ref": "#/components/schemas/Problem"
        }
    assert set(components["responses"]["Problem429"]["headers"]) >= {
        "Retry-After",
        "RateLimit-Policy",
        "RateLimit",
    }
    assert "Retry-After" in components["responses"]["Problem503"]["headers"]
    assert "WWW-Authenticate" in components["responses"]["Problem401"]["headers"]
    keys = document["paths"]["/v1/keys"]["get"]
    assert keys["security"] == [{"bearer": []}]
    assert keys["x-permission"] == "keys.read"
    assert set(keys["responses"]["200"]["headers"]) >= {"RateLimit", "X-Request-Id"}
    assert document["paths"]["/portal/v1/keys"]["get"]["security"] == [
        {"portalCookie": []},
        {"bearer": []},
    ]


def test_the_rate_limit_fields_documented_are_the_ones_sent(
    world: tuple[str, Any, str], document: dict[str, Any]
) -> None:
    url, app, key = world
    answer = httpx.get(f"{url}/v1/principal", headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200
    sent = {name.lower() for name in answer.headers if name.lower().startswith("ratelimit")}
    documented = document["paths"]["/v1/principal"]["get"]["responses"]["200"]["headers"]
    assert sent == {name.lower() for name in documented if name.lower().startswith("ratelimit")}
    assert sent == {"ratelimit-policy", "ratelimit"}
    # The legacy option's fields, where the app is set to send those.
    legacy = openapi_document(app.routes, title="t", version="v", style=RateLimitHeaders.LEGACY)
    principal = legacy["paths"]["/v1/principal"]["get"]["responses"]["200"]["headers"]
    assert {"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} <= set(principal)
    assert "RateLimit-Policy" not in principal


def _concrete(path: str) -> str:
    # A path parameter of the right shape; the handlers answer 404 for one that names nothing.
    return re.sub(r"\{[a-z_]+\}", "nothing", path)


def test_public_operations_need_no_credential_and_the_others_refuse_without_one(
    world: tuple[str, Any, str], document: dict[str, Any]
) -> None:
    url, _, _ = world
    with httpx.Client(base_url=url) as client:
        for path, method in sorted(_documented(document)):
            operation = document["paths"][path][method]
            answer = client.request(method.upper(), _concrete(path))
            if operation["security"] == []:
                assert answer.status_code != 401, (method, path)
            else:
                assert answer.status_code == 401, (method, path)
                assert answer.headers["www-authenticate"].startswith("Bearer realm=")


def test_the_docs_page_and_its_files_are_public_and_served_under_the_strict_policy(
    world: tuple[str, Any, str],
) -> None:
    url, _, _ = world
    with httpx.Client(base_url=url) as client:
        page = client.get("/docs")
        script = client.get("/docs/static/docs.js")
        style = client.get("/docs/static/docs.css")
        missing = client.get("/docs/static/other.js")
        head = client.head("/openapi.json")
        trace = client.request("TRACE", "/docs/static/docs.js")
    assert page.status_code == 200
    assert 'src="docs/static/docs.js"' in page.text
    assert "http" not in page.text.replace('href="openapi.json"', "")  # nothing from elsewhere
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert 'fetch("openapi.json"' in script.text
    assert ".innerHTML" not in script.text  # text goes through textContent only
    assert style.headers["content-type"] == "text/css; charset=utf-8"
    for answer in (page, script, style, missing):
        assert (
            answer.headers["content-security-policy"] == SECURITY_HEADERS["content-security-policy"]
        )
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert head.status_code == 200
    assert head.content == b""
    # A method a public route does not serve is a 405 with Allow, not a demand for a key.
    assert trace.status_code == 405
    assert trace.headers["allow"] == "GET, HEAD"


def test_a_whole_number_written_with_a_fraction_is_the_integer_json_schema_says_it_is(
    world: tuple[str, Any, str],
) -> None:
    url, _, key = world
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, headers=auth) as client:
        whole = client.post("/v1/keys", json={"name": "n", "permissions": [], "expires_in": 60.0})
        fraction = client.post(
            "/v1/keys", json={"name": "n", "permissions": [], "expires_in": 60.5}
        )
    assert whole.status_code == 201
    assert fraction.status_code == 400
    assert fraction.json()["code"] == "invalid_body"
