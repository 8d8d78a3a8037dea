"""The examples in examples/ (and so docs/frameworks.md) work as their docstrings say: each
runs under a real server on the database the command line writes, and admits a key that
``authcore keys create`` made (tests/adapters/example_servers.py)."""

from __future__ import annotations

import httpx
import pytest

from tests.adapters.example_servers import COMMANDS, Setup, make_setup, running

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    """One database for every example: each server process has its own rate limiter."""
    return make_setup(tmp_path_factory.mktemp("examples"))


def bearer(setup: Setup, name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {setup.keys[name]}"}


@pytest.mark.parametrize("example", sorted(COMMANDS))
def test_the_example_admits_a_key_the_command_line_made(example: str, setup: Setup) -> None:
    with running(example, setup) as server, httpx.Client(base_url=server.url, timeout=10) as http:
        health = http.get("/health")
        head = http.head("/health")
        anonymous = http.get("/keys")
        listed = http.get("/keys", headers=bearer(setup, "reader"))
        denied = http.get("/keys", headers=bearer(setup, "other"))
        limited = [http.get("/keys", headers=bearer(setup, "limited")) for _ in range(3)]
    assert health.json() == {"ok": True}
    assert "ratelimit-policy" not in health.headers
    assert head.status_code == 200
    assert head.content == b""
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == 'Bearer realm="api"'
    assert anonymous.headers["content-type"] == "application/problem+json"
    assert listed.status_code == 200
    assert listed.json() == {"workspace_id": setup.workspace}
    assert listed.headers["ratelimit-policy"] == '"workspace";q=600;w=60'
    assert denied.status_code == 403
    assert denied.json()["code"] == "permission_denied"
    assert 'error="insufficient_scope"' in denied.headers["www-authenticate"]
    assert [answer.status_code for answer in limited] == [200, 200, 429]
    assert limited[-1].json()["code"] == "rate_limited"
    assert int(limited[-1].headers["retry-after"]) > 0
    assert "Traceback" not in server.stderr
    assert not any(key in server.stderr for key in setup.keys.values())
    if not example.startswith("fastapi"):  # the Flask and Django examples log with the workspace
        assert f"INFO [{setup.workspace}] listing keys" in server.stderr.splitlines()


def test_the_fastapi_example_answers_like_the_rest_of_authcore(setup: Setup) -> None:
    reader = bearer(setup, "reader")
    with (
        running("fastapi-uvicorn", setup) as server,
        httpx.Client(base_url=server.url, timeout=10) as http,
    ):
        missing = http.get("/nowhere", headers=reader)
        wrong_method = http.post("/keys", headers=reader)
        public_wrong_method = http.delete("/health")
        head_anonymous = http.head("/keys")
        head = http.head("/keys", headers=reader)
        get = http.get("/keys", headers=reader)
        schema = http.get("/openapi.json").json()
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["code"] == "not_found"
    assert wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "GET, HEAD"
    assert wrong_method.json()["code"] == "method_not_allowed"
    assert wrong_method.headers["ratelimit-policy"] == '"workspace";q=600;w=60'  # admitted
    assert public_wrong_method.status_code == 405  # a public path's 405 needs no key
    assert public_wrong_method.json()["code"] == "method_not_allowed"
    assert head_anonymous.status_code == 401
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"]
    assert head.headers["ratelimit-policy"] == '"workspace";q=600;w=60'
    keys_ok = schema["paths"]["/keys"]["get"]["responses"]["200"]
    assert set(keys_ok["headers"]) == {"RateLimit-Policy", "RateLimit"}
    assert "headers" not in schema["paths"]["/health"]["get"]["responses"]["200"]


@pytest.mark.parametrize("example", ["django-uvicorn", "django-waitress"])
def test_the_django_example_checks_permissions_in_drf_views(example: str, setup: Setup) -> None:
    with running(example, setup) as server, httpx.Client(base_url=server.url, timeout=10) as http:
        counted = http.get("/api/key-count", headers=bearer(setup, "reader"))
        denied = http.get("/api/key-count", headers=bearer(setup, "narrow"))
        missing = http.get("/nowhere")
    assert counted.status_code == 200
    assert counted.json()["workspace_id"] == setup.workspace
    assert counted.json()["caller"].startswith("root_key:")
    assert denied.status_code == 403
    assert denied.json()["code"] == "permission_denied"
    assert missing.status_code == 401  # a 404 only for callers with a key
