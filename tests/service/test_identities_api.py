"""Identities through the example API over real HTTP: ``/v1/identities``, keys of an identity,
portal sessions of one, and what a key bound to an identity may do.

One stack (uvicorn on loopback, a real SQLite file) for the module; each test names its own
identities, so the tests do not see each other's.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from authcore.records import OPERATOR_ACTOR
from tests.service.stack import Stack, demo_stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with demo_stack(tmp_path_factory.mktemp("identities")) as started:
        yield started


@pytest.fixture
def api(stack: Stack) -> Iterator[httpx.Client]:
    with stack.api() as client:
        yield client


def _ext(label: str = "cust") -> str:
    return f"{label}-{secrets.token_hex(4)}"


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def assert_problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code


def _key(api: httpx.Client, identity: str | None, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": "k", "permissions": ["keys.read"], **fields}
    if identity is not None:
        body["identity"] = identity
    response = api.post("/v1/keys", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


# --- /v1/identities -----------------------------------------------------------------------


def test_create_returns_the_identity_and_a_taken_external_id_is_409(
    stack: Stack, api: httpx.Client
) -> None:
    ext = _ext()
    response = api.post(
        "/v1/identities",
        json={"external_id": ext, "meta": {"plan": "pro", "seats": 3}, "rate_limit": "10/60"},
    )
    assert response.status_code == 201
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["identity_id"].startswith("idt_")
    assert body["external_id"] == ext
    assert body["workspace_id"] == stack.workspace_id
    assert body["meta"] == {"plan": "pro", "seats": 3}
    assert body["rate_limit"] == "10/60"
    again = api.post("/v1/identities", json={"external_id": ext})
    assert_problem(again, 409, "conflict")
    assert "already exists" in again.json()["title"]
    event = api.get("/v1/audit-logs?limit=1").json()["events"][0]
    assert event["action"] == "identity.create"
    assert event["actor"]["id"] == stack.admin_key_id


def test_get_counts_live_keys_and_unknown_is_404(api: httpx.Client) -> None:
    ext = _ext()
    assert api.post("/v1/identities", json={"external_id": ext}).status_code == 201
    assert api.get(f"/v1/identities/{ext}").json()["keys"] == 0
    first = _key(api, ext)
    _key(api, ext)
    assert api.delete(f"/v1/keys/{first['key_id']}").status_code == 204
    body = api.get(f"/v1/identities/{ext}").json()
    assert body["keys"] == 1
    assert body["external_id"] == ext
    for unknown in ("nobody-here", "%E2%80%AE", "a%00b", "x" * 201):
        assert_problem(api.get(f"/v1/identities/{unknown}"), 404, "not_found")


def test_an_external_id_with_a_slash_is_reachable(api: httpx.Client) -> None:
    ext = f"org/{secrets.token_hex(4)}"
    assert api.post("/v1/identities", json={"external_id": ext}).status_code == 201
    response = api.get(f"/v1/identities/{ext.replace('/', '%2F')}")
    assert response.status_code == 200
    assert response.json()["external_id"] == ext


def test_list_pages_by_external_id(api: httpx.Client) -> None:
    prefix = _ext("page")
    made = sorted(f"{prefix}-{n}" for n in range(5))
    for ext in made:
        assert api.post("/v1/identities", json={"external_id": ext}).status_code == 201
    seen: list[str] = []
    after = f"{prefix}-"  # every one of them sorts after this
    while True:
        page = api.get("/v1/identities", params={"limit": "2", "after": after}).json()
        assert set(page) == {"identities", "next", "next_cursor", "next_after"}
        assert len(page["identities"]) <= 2
        seen += [item["external_id"] for item in page["identities"]]
        if page["next_after"] is None or not page["next_after"].startswith(prefix):
            break
        after = page["next_after"]
    assert [ext for ext in seen if ext.startswith(prefix)] == made
    default = api.get("/v1/identities").json()
    assert len(default["identities"]) <= 100


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=501",
        "limit=abc",
        "limit=%D9%A1",  # an Arabic-Indic one: ASCII digits only
        "limit=1&limit=2",
        "after=%00",
        "after=a%E2%80%AEb",
        "after=" + "x" * 201,
        "after=a&after=b",
    ],
)
def test_a_bad_list_query_is_400(api: httpx.Client, query: str) -> None:
    assert_problem(api.get(f"/v1/identities?{query}"), 400, "invalid_query")


def test_patch_sets_and_clears_the_limit_and_the_meta(api: httpx.Client) -> None:
    ext = _ext()
    assert api.post("/v1/identities", json={"external_id": ext}).status_code == 201
    set_both = api.patch(
        f"/v1/identities/{ext}", json={"rate_limit": "5/60", "meta": {"tier": "gold"}}
    )
    assert set_both.status_code == 200
    assert set_both.json()["rate_limit"] == "5/60"
    assert set_both.json()["meta"] == {"tier": "gold"}
    # A field left out is left alone.
    only_meta = api.patch(f"/v1/identities/{ext}", json={"meta": None})
    assert only_meta.json()["meta"] is None
    assert only_meta.json()["rate_limit"] == "5/60"
    cleared = api.patch(f"/v1/identities/{ext}", json={"rate_limit": None})
    assert cleared.json()["rate_limit"] is None
    assert api.get(f"/v1/identities/{ext}").json()["rate_limit"] is None
    assert_problem(api.patch("/v1/identities/nobody-here", json={"meta": {}}), 404, "not_found")


@pytest.mark.parametrize(
    "body",
    [
        b'{"meta": []}',
        b'{"meta": "text"}',
        b'{"meta": 5}',
        b'{"meta": {"big": "' + b"x" * 1100 + b'"}}',
        b'{"meta": {"n": 1e400}}',
        b'{"meta": {"\\ud800": 1}}',
        b'{"rate_limit": "0/60"}',
        b'{"rate_limit": 100}',
        b'{"rate_limit": "\\uff11/60"}',
        b'{"external_id": "renamed"}',
        b'{"end_user_id": "x"}',
        b"[]",
        b"{",
    ],
)
def test_a_bad_patch_is_400_and_changes_nothing(api: httpx.Client, body: bytes) -> None:
    ext = _ext()
    assert (
        api.post("/v1/identities", json={"external_id": ext, "meta": {"a": 1}}).status_code == 201
    )
    response = api.patch(
        f"/v1/identities/{ext}", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert api.get(f"/v1/identities/{ext}").json()["meta"] == {"a": 1}


@pytest.mark.parametrize(
    "body",
    [
        '{"external_id": "\\ud800"}',
        '{"external_id": "a\\udbffb"}',
        '{"external_id": "a\\u0000b"}',
        '{"external_id": "a\\u202eb"}',
        '{"external_id": "two\\u2028lines"}',
        '{"external_id": "esc\\u001b[2J"}',
        '{"external_id": ""}',
        '{"external_id": "   "}',
        '{"external_id": 42}',
        '{"external_id": null}',
        '{"external_id": "' + "x" * 201 + '"}',
        '{"external_id": "ok", "meta": ["not", "an", "object"]}',
        '{"external_id": "ok", "meta": {"huge": "' + "x" * 2000 + '"}}',
        '{"external_id": "ok", "rate_limit": "1/0"}',
        '{"external_id": "ok", "extra": 1}',
    ],
)
def test_hostile_identity_bodies_are_400(api: httpx.Client, body: str) -> None:
    response = api.post(
        "/v1/identities", content=body.encode(), headers={"Content-Type": "application/json"}
    )
    assert_problem(response, 400, "invalid_body")
    assert api.get("/v1/identities/ok").status_code == 404


def test_delete_is_409_while_keys_work_then_204_with_revoke_keys(api: httpx.Client) -> None:
    ext = _ext()
    created = _key(api, ext)
    refused = api.delete(f"/v1/identities/{ext}")
    assert_problem(refused, 409, "conflict")
    assert "?revoke_keys=true" in refused.json()["title"]
    assert api.get("/v1/principal", headers=_bearer(created["key"])).status_code == 200
    assert_problem(api.delete(f"/v1/identities/{ext}?revoke_keys=yes"), 400, "invalid_query")
    deleted = api.delete(f"/v1/identities/{ext}?revoke_keys=true")
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_problem(api.get(f"/v1/identities/{ext}"), 404, "not_found")
    gone = api.get("/v1/principal", headers=_bearer(created["key"]))
    assert_problem(gone, 401, "credential_invalid")
    actions = [event["action"] for event in api.get("/v1/audit-logs?limit=2").json()["events"]]
    assert actions == ["identity.delete", "key.revoke"]
    assert_problem(api.delete(f"/v1/identities/{ext}"), 404, "not_found")


def test_an_identity_whose_keys_are_revoked_deletes_without_the_flag(api: httpx.Client) -> None:
    ext = _ext()
    created = _key(api, ext)
    assert api.delete(f"/v1/keys/{created['key_id']}").status_code == 204
    assert api.delete(f"/v1/identities/{ext}?revoke_keys=false").status_code == 204


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/identities", {"external_id": "x"}),
        ("GET", "/v1/identities", None),
        ("GET", "/v1/identities/x", None),
        ("PATCH", "/v1/identities/x", {"meta": None}),
        ("DELETE", "/v1/identities/x", None),
    ],
)
def test_each_identity_route_needs_its_permission(
    api: httpx.Client, method: str, path: str, body: dict[str, Any] | None
) -> None:
    reader = _key(api, None, permissions=["keys.read"])["key"]
    response = api.request(method, path, json=body, headers=_bearer(reader))
    assert_problem(response, 403, "permission_denied")
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


# --- keys of an identity ------------------------------------------------------------------


def test_a_key_made_for_an_identity_creates_it_and_says_whose_it_is(api: httpx.Client) -> None:
    ext = _ext()
    created = _key(api, ext)
    assert created["identity"] == ext
    assert created["identity_id"].startswith("idt_")
    identity = api.get(f"/v1/identities/{ext}").json()
    assert identity["identity_id"] == created["identity_id"]
    assert identity["keys"] == 1
    principal = api.get("/v1/principal", headers=_bearer(created["key"])).json()
    assert principal["identity_id"] == created["identity_id"]
    listed = {key["key_id"]: key for key in api.get("/v1/keys").json()["keys"]}
    assert listed[created["key_id"]]["identity_id"] == created["identity_id"]
    assert listed[created["key_id"]]["identity"] == ext
    own = next(key for key in listed.values() if key["name"] == "admin")
    assert own["identity_id"] is None
    assert own["identity"] is None


def test_the_key_list_filters_by_identity(api: httpx.Client) -> None:
    mine, theirs = _ext("mine"), _ext("theirs")
    wanted = {_key(api, mine)["key_id"], _key(api, mine)["key_id"]}
    _key(api, theirs)
    response = api.get("/v1/keys", params={"identity": mine})
    assert response.status_code == 200
    keys = response.json()["keys"]
    assert {key["key_id"] for key in keys} == wanted
    assert {key["identity"] for key in keys} == {mine}
    # An unknown identity has no keys: an empty list, not a 404.
    assert api.get("/v1/keys", params={"identity": "nobody-at-all"}).json() == {
        "keys": [],
        "next": None,
        "next_cursor": None,
    }
    for bad in ("a\u202eb", "", "x" * 201):
        assert_problem(api.get("/v1/keys", params={"identity": bad}), 400, "invalid_query")
    assert_problem(api.get(f"/v1/keys?identity={mine}&identity={theirs}"), 400, "invalid_query")


@pytest.mark.parametrize(
    "identity", ["\ud800", "a\u0085b", "a\u202eb", "", 42, ["x"], {"external_id": "x"}]
)
def test_a_bad_identity_on_a_key_is_400(api: httpx.Client, identity: object) -> None:
    # ensure_ascii: a lone surrogate goes out as a "\ud800" escape, as an attacker sends it.
    body = json.dumps({"name": "k", "permissions": [], "identity": identity}).encode()
    response = api.post("/v1/keys", content=body, headers={"Content-Type": "application/json"})
    assert_problem(response, 400, "invalid_body")


def test_a_key_of_an_identity_acts_for_that_identity_only(stack: Stack, api: httpx.Client) -> None:
    mine, theirs = _ext("mine"), _ext("theirs")
    theirs_key = _key(api, theirs)
    bound = _key(
        api, mine, permissions=["keys.read", "keys.create", "keys.revoke", "identities.read"]
    )
    client = httpx.Client(
        base_url=stack.api_url, headers=_bearer(bound["key"]), timeout=10, trust_env=False
    )
    with client:
        # What it makes is its identity's, whether it says so or not.
        made = client.post("/v1/keys", json={"name": "child", "permissions": ["keys.read"]})
        assert made.status_code == 201
        assert made.json()["identity_id"] == bound["identity_id"]
        named = client.post(
            "/v1/keys", json={"name": "c", "permissions": ["keys.read"], "identity": mine}
        )
        assert named.status_code == 201
        other = client.post(
            "/v1/keys", json={"name": "c", "permissions": ["keys.read"], "identity": theirs}
        )
        assert_problem(other, 403, "permission_denied")
        # It sees its identity's keys only; another identity's key is like an unknown one.
        listed = client.get("/v1/keys").json()["keys"]
        assert {key["identity_id"] for key in listed} == {bound["identity_id"]}
        assert theirs_key["key_id"] not in client.get("/v1/keys").text
        assert client.get("/v1/keys", params={"identity": theirs}).json() == {
            "keys": [],
            "next": None,
            "next_cursor": None,
        }
        foreign = client.delete(f"/v1/keys/{theirs_key['key_id']}")
        unknown = client.delete("/v1/keys/key_000000000000000000000000")
        assert_problem(foreign, 404, "not_found")
        assert foreign.content == unknown.content
        # Identities are the operator's to manage.
        assert_problem(client.get(f"/v1/identities/{mine}"), 403, "permission_denied")
    assert api.get("/v1/principal", headers=_bearer(theirs_key["key"])).status_code == 200


# --- portal sessions of an identity -------------------------------------------------------


def test_a_portal_session_is_made_for_an_identity_on_first_use(
    stack: Stack, api: httpx.Client
) -> None:
    ext = _ext()
    response = api.post(
        "/v1/portal-sessions",
        json={"identity": ext, "permissions": ["keys.read"], "key_permissions": ["keys.read"]},
    )
    assert response.status_code == 201
    body = response.json()
    identity = api.get(f"/v1/identities/{ext}").json()
    assert body["identity_id"] == identity["identity_id"]
    assert body["portal_url"].startswith(f"{stack.api_url}/portal/#code=pc_")
    assert "?" not in body["portal_url"]
    record = stack.store.get_portal_session(body["session_id"])
    assert record is not None
    assert record.key_permissions == ("keys.read",)


@pytest.mark.parametrize(
    "fields",
    [
        {"key_permissions": "keys.read"},
        {"key_permissions": [1]},
        {"key_permissions": ["Keys.Read"]},
        {"identity": "a\u2028b"},
        {"ttl": 0},
    ],
)
def test_a_bad_portal_session_body_is_400(api: httpx.Client, fields: dict[str, Any]) -> None:
    body = {"identity": "c", "permissions": ["keys.read"], **fields}
    response = api.post("/v1/portal-sessions", json=body)
    assert response.status_code == 400, response.text


def test_a_portal_session_for_another_identity_by_a_bound_key_is_403(
    stack: Stack, api: httpx.Client
) -> None:
    mine = _ext("mine")
    bound = _key(api, mine, permissions=["portal.create_session", "keys.read"])
    body = {"permissions": ["keys.read"], "key_permissions": ["keys.read"]}
    own = api.post(
        "/v1/portal-sessions", json={"identity": mine, **body}, headers=_bearer(bound["key"])
    )
    assert own.status_code == 201
    other = api.post(
        "/v1/portal-sessions", json={"identity": "someone-else", **body},
        headers=_bearer(bound["key"]),
    )  # fmt: skip
    assert_problem(other, 403, "permission_denied")


def test_another_workspaces_identity_is_unknown(stack: Stack, api: httpx.Client) -> None:
    other = stack.store.create_workspace("other", now=time.time(), actor=OPERATOR_ACTOR)
    ext = _ext("elsewhere")
    stack.store.create_identity(other.id, ext, now=time.time(), actor=OPERATOR_ACTOR)
    assert_problem(api.get(f"/v1/identities/{ext}"), 404, "not_found")
    assert_problem(api.delete(f"/v1/identities/{ext}"), 404, "not_found")
    assert api.get("/v1/keys", params={"identity": ext}).json() == {
        "keys": [],
        "next": None,
        "next_cursor": None,
    }


def test_a_key_made_by_a_rate_limited_key_gets_at_most_its_limit(api: httpx.Client) -> None:
    # Outside review, finding 2: a 5/60 key with keys.create made a child that answered 200
    # twenty times. The child now inherits the maker's limit, and a looser one is refused.
    maker = _key(api, None, permissions=["keys.create", "keys.read"], rate_limit="5/60")["key"]
    made = api.post(
        "/v1/keys", json={"name": "child", "permissions": ["keys.read"]}, headers=_bearer(maker)
    )
    assert made.status_code == 201, made.text
    child = made.json()["key"]
    looser = api.post(
        "/v1/keys",
        json={"name": "looser", "permissions": ["keys.read"], "rate_limit": "1000000/1"},
        headers=_bearer(maker),
    )
    assert_problem(looser, 403, "permission_denied")
    statuses = [api.get("/v1/principal", headers=_bearer(child)).status_code for _ in range(7)]
    assert statuses[:5] == [200] * 5
    assert statuses[5:] == [429, 429]
