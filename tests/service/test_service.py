"""The example API end to end over real HTTP: uvicorn on 127.0.0.1, a real SQLite file."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import attrs
import httpx
import pytest

from authcore.backends import Auth
from authcore.backends.sqlite import SQLiteStore
from authcore.config import Config
from authcore.ratelimit import RateLimitPolicy
from authcore.records import OPERATOR_ACTOR
from authcore.service.runner import API_PERMISSIONS, build_api
from tests.service.servers import serve

pytestmark = pytest.mark.e2e


@attrs.frozen
class World:
    """Two workspaces, keys with various permissions, and a client for the running API."""

    client: httpx.Client
    config: Config
    workspace: str
    other_workspace: str
    admin_key: str
    admin_key_id: str
    reader_key: str
    other_key_id: str


def _key(store: SQLiteStore, workspace: str, permissions: list[str], name: str) -> tuple[str, str]:
    created = store.create_root_key(
        workspace, permissions=permissions, name=name, now=time.time(), actor=OPERATOR_ACTOR
    )
    assert created is not None
    return created.record.id, created.key.reveal()


@pytest.fixture
def world(store: SQLiteStore, config: Config) -> Iterator[World]:
    now = time.time()
    workspace = store.create_workspace("acme", org_id="org_acme", now=now, actor=OPERATOR_ACTOR)
    other = store.create_workspace("globex", now=now, actor=OPERATOR_ACTOR)
    admin_id, admin = _key(store, workspace.id, list(API_PERMISSIONS), "admin")
    _, reader = _key(store, workspace.id, ["keys.read"], "reader")
    other_id, _ = _key(store, other.id, ["*"], "other")
    with (
        serve(build_api(Auth.wire(store, config))) as url,
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        yield World(client, config, workspace.id, other.id, admin, admin_id, reader, other_id)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code


def assert_rate_limited_headers(response: httpx.Response) -> None:
    # draft-ietf-httpapi-ratelimit-headers-11, the service's default: the draft's two fields.
    assert re.fullmatch(r'"workspace";q=[0-9]+;w=[0-9]+', response.headers["ratelimit-policy"])
    assert re.fullmatch(r'"workspace";r=[0-9]+;t=[0-9]+', response.headers["ratelimit"])
    assert "ratelimit-limit" not in response.headers


def test_healthz_is_public(world: World) -> None:
    response = world.client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "ratelimit-policy" not in response.headers


def test_no_credential_is_401_with_a_bare_challenge(world: World) -> None:
    response = world.client.get("/v1/principal")
    assert_problem(response, 401, "credential_missing")
    assert response.headers["www-authenticate"] == 'Bearer realm="api"'


def test_malformed_credential_is_400_invalid_request(world: World) -> None:
    response = world.client.get("/v1/principal", headers={"Authorization": "Bearer a b"})
    assert_problem(response, 400, "credential_malformed")
    assert 'error="invalid_request"' in response.headers["www-authenticate"]


def test_unknown_key_is_401_invalid_token(world: World) -> None:
    response = world.client.get("/v1/principal", headers=bearer("ak_" + "x" * 43))
    assert_problem(response, 401, "credential_invalid")
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_principal_of_a_root_key(world: World) -> None:
    response = world.client.get("/v1/principal", headers=bearer(world.admin_key))
    assert response.status_code == 200
    assert_rate_limited_headers(response)
    body = response.json()
    assert set(body) == {"workspace_id", "subject", "source", "permissions"}
    assert body["workspace_id"] == world.workspace
    assert body["subject"]["type"] == "root_key"
    assert body["subject"]["id"] == world.admin_key_id
    assert body["source"] == "root_key"
    assert sorted(body["permissions"]) == sorted(API_PERMISSIONS)


def test_principal_of_a_jwt(world: World) -> None:
    token = world.config.jwt.signing_keyring().mint(
        subject="alice",
        workspace_id=world.workspace,
        permissions=["keys.read"],
        now=int(time.time()),
    )
    response = world.client.get("/v1/principal", headers=bearer(token.reveal()))
    assert response.status_code == 200
    body = response.json()
    assert body["source"] == "jwt"
    assert body["subject"] == {"type": "user", "id": "alice"}


def test_jwt_signed_with_an_unknown_secret_is_401(world: World) -> None:
    from authcore.keyring import Keyring, SigningSecret
    from authcore.tokens import Secret

    stranger = Keyring([SigningSecret("k1", Secret("z" * 40))], signing_kid="k1")
    token = stranger.mint(
        subject="mallory", workspace_id=world.workspace, permissions=["*"], now=int(time.time())
    )
    response = world.client.get("/v1/principal", headers=bearer(token.reveal()))
    assert_problem(response, 401, "credential_invalid")


def test_list_keys_never_shows_a_secret(world: World) -> None:
    response = world.client.get("/v1/keys", headers=bearer(world.reader_key))
    assert response.status_code == 200
    keys = response.json()["keys"]
    assert {key["name"] for key in keys} == {"admin", "reader"}
    assert world.admin_key not in response.text
    assert world.reader_key not in response.text
    assert all("digest" not in key and "key" not in key for key in keys)


def test_list_keys_without_keys_read_is_403(world: World, store: SQLiteStore) -> None:
    _, audit_only = _key(store, world.workspace, ["audit.read"], "auditor")
    response = world.client.get("/v1/keys", headers=bearer(audit_only))
    assert_problem(response, 403, "permission_denied")
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


def test_create_key_returns_it_once_and_it_works(world: World) -> None:
    response = world.client.post(
        "/v1/keys",
        headers=bearer(world.admin_key),
        json={"name": "ci", "permissions": ["keys.read"], "expires_in": 3600},
    )
    assert response.status_code == 201
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"key_id", "key", "identity_id", "identity"}
    assert body["identity_id"] is None
    assert body["identity"] is None
    principal = world.client.get("/v1/principal", headers=bearer(body["key"])).json()
    assert principal["subject"]["id"] == body["key_id"]
    assert principal["permissions"] == ["keys.read"]


def test_a_key_created_with_a_rate_limit_is_held_to_it(world: World) -> None:
    response = world.client.post(
        "/v1/keys",
        headers=bearer(world.admin_key),
        json={"name": "metered", "permissions": ["keys.read"], "rate_limit": "2/60"},
    )
    assert response.status_code == 201
    created = response.json()
    for remaining in ("1", "0"):
        admitted = world.client.get("/v1/principal", headers=bearer(created["key"]))
        assert admitted.status_code == 200
        # Both levels are described, the key's own first.
        policy = admitted.headers["ratelimit-policy"]
        assert policy == '"key";q=2;w=60, "workspace";q=600;w=60'
        assert admitted.headers["ratelimit"].startswith(f'"key";r={remaining};t=')
        assert ', "workspace";r=' in admitted.headers["ratelimit"]
    refused = world.client.get("/v1/principal", headers=bearer(created["key"]))
    assert_problem(refused, 429, "rate_limited")
    assert refused.headers["ratelimit-policy"] == '"key";q=2;w=60, "workspace";q=600;w=60'
    assert refused.headers["ratelimit"].startswith('"key";r=0;t=')
    assert int(refused.headers["retry-after"]) >= 1
    # The other keys of the workspace are not held to it.
    assert world.client.get("/v1/principal", headers=bearer(world.reader_key)).status_code == 200
    listed = world.client.get("/v1/keys", headers=bearer(world.admin_key)).json()["keys"]
    limits = {key["key_id"]: key["rate_limit"] for key in listed}
    assert limits[created["key_id"]] == "2/60"
    assert limits[world.admin_key_id] is None


def test_create_key_cannot_grant_more_than_the_caller_holds(world: World) -> None:
    for grants in (["*"], ["keys.*"], ["keys.read", "workspaces.delete"]):
        response = world.client.post(
            "/v1/keys", headers=bearer(world.admin_key), json={"name": "x", "permissions": grants}
        )
        assert_problem(response, 403, "permission_denied")


def test_create_key_without_keys_create_is_403(world: World) -> None:
    response = world.client.post(
        "/v1/keys", headers=bearer(world.reader_key), json={"name": "x", "permissions": []}
    )
    assert_problem(response, 403, "permission_denied")


@pytest.mark.parametrize(
    ("content", "status"),
    [
        (b"{", 400),
        (b"[]", 400),
        (b'{"name": "x", "name": "y", "permissions": []}', 400),
        (b'{"name": 5, "permissions": []}', 400),
        (b'{"name": "x", "permissions": "keys.read"}', 400),
        (b'{"name": "x", "permissions": [1]}', 400),
        (b'{"name": "x", "permissions": [], "expires_in": true}', 400),
        (b'{"name": "x", "permissions": [], "expires_in": -1}', 400),
        (b'{"name": "x", "permissions": [], "expires": 60}', 400),
        (b'{"name": "x", "permissions": ["Keys.Read"]}', 400),
        (b'{"name": "x", "permissions": [], "expires_in": NaN}', 400),
        (b'{"name": "x", "permissions": [], "rate_limit": "0/60"}', 400),
        (b'{"name": "x", "permissions": [], "rate_limit": "100/60 "}', 400),
        (b'{"name": "x", "permissions": [], "rate_limit": 100}', 400),
        (b'{"name": "x", "permissions": [], "rate_limit": {"limit": 1, "period": 1}}', 400),
        ('{"name": "x", "permissions": [], "rate_limit": "\uff11/60"}'.encode(), 400),
        (b'{"name": "x", "permissions": [], "rate_limit": "\\ud800/60"}', 400),
        (b"\xff\xfe", 400),
    ],
)
def test_bad_bodies_are_400_never_500(world: World, content: bytes, status: int) -> None:
    response = world.client.post(
        "/v1/keys",
        headers={**bearer(world.admin_key), "Content-Type": "application/json"},
        content=content,
    )
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"


def test_non_json_body_is_415(world: World) -> None:
    response = world.client.post(
        "/v1/keys", headers=bearer(world.admin_key), data={"name": "x", "permissions": "a"}
    )
    assert_problem(response, 415, "unsupported_media_type")


def test_huge_body_is_413(world: World) -> None:
    response = world.client.post(
        "/v1/keys",
        headers={**bearer(world.admin_key), "Content-Type": "application/json"},
        content=b'{"name": "' + b"x" * 100_000 + b'"}',
    )
    assert_problem(response, 413, "body_too_large")


def test_revoke_key_of_another_workspace_is_404(world: World) -> None:
    response = world.client.delete(
        f"/v1/keys/{world.other_key_id}", headers=bearer(world.admin_key)
    )
    assert_problem(response, 404, "not_found")
    unknown = world.client.delete(
        "/v1/keys/key_000000000000000000000000", headers=bearer(world.admin_key)
    )
    assert_problem(unknown, 404, "not_found")


def test_revoke_key_is_204_and_the_key_stops_working(world: World) -> None:
    created = world.client.post(
        "/v1/keys",
        headers=bearer(world.admin_key),
        json={"name": "tmp", "permissions": ["keys.read"]},
    ).json()
    assert world.client.get("/v1/keys", headers=bearer(created["key"])).status_code == 200
    response = world.client.delete(f"/v1/keys/{created['key_id']}", headers=bearer(world.admin_key))
    assert response.status_code == 204
    after = world.client.get("/v1/keys", headers=bearer(created["key"]))
    assert_problem(after, 401, "credential_invalid")


def test_revoke_without_keys_revoke_is_403_before_any_lookup(world: World) -> None:
    response = world.client.delete(
        f"/v1/keys/{world.other_key_id}", headers=bearer(world.reader_key)
    )
    assert_problem(response, 403, "permission_denied")


def test_audit_log_records_the_key_as_actor(world: World) -> None:
    created = world.client.post(
        "/v1/keys",
        headers=bearer(world.admin_key),
        json={"name": "ci", "permissions": ["keys.read"]},
    ).json()
    world.client.delete(f"/v1/keys/{created['key_id']}", headers=bearer(world.admin_key))
    response = world.client.get("/v1/audit-logs", headers=bearer(world.admin_key))
    assert response.status_code == 200
    events = response.json()["events"]
    revoke, create = events[0], events[1]
    assert revoke["action"] == "key.revoke"
    assert create["action"] == "key.create"
    for event in (revoke, create):
        assert {"action", "actor", "workspace_id", "targets", "time"} <= set(event)
        assert event["actor"]["type"] == "root_key"
        assert event["actor"]["id"] == world.admin_key_id
        assert event["workspace_id"] == world.workspace
        assert event["targets"][0]["id"] == created["key_id"]
    assert created["key"] not in response.text


def test_audit_log_needs_audit_read_and_validates_its_query(world: World) -> None:
    assert_problem(
        world.client.get("/v1/audit-logs", headers=bearer(world.reader_key)),
        403,
        "permission_denied",
    )
    bad_limit = world.client.get("/v1/audit-logs?limit=0", headers=bearer(world.admin_key))
    assert_problem(bad_limit, 400, "invalid_query")
    bad_cursor = world.client.get(
        "/v1/audit-logs?before=yesterday", headers=bearer(world.admin_key)
    )
    assert bad_cursor.status_code == 400


def test_audit_log_pages_with_a_cursor(world: World) -> None:
    first = world.client.get("/v1/audit-logs?limit=1", headers=bearer(world.admin_key)).json()
    assert len(first["events"]) == 1
    assert first["next_cursor"] is not None
    second = world.client.get(
        f"/v1/audit-logs?limit=1&before={first['next_cursor']}", headers=bearer(world.admin_key)
    ).json()
    assert second["events"][0]["id"] != first["events"][0]["id"]


def portal_token(world: World, identity: str = "customer-7", ttl: int = 600) -> str:
    """Create a portal session through the API and exchange its code, as a browser would."""
    created = world.client.post(
        "/v1/portal-sessions",
        headers=bearer(world.admin_key),
        json={"identity": identity, "permissions": ["keys.read"], "ttl": ttl},
    )
    assert created.status_code == 201
    exchanged = world.client.post(
        "/portal/exchange",
        data={"code": created.json()["code"]},
        headers={"Sec-Fetch-Site": "same-origin"},
    )
    assert exchanged.status_code == 200
    token = exchanged.cookies["authcore_portal"]
    world.client.cookies.clear()  # each test sends the cookie explicitly
    return token


def test_portal_session_flow(world: World) -> None:
    response = world.client.post(
        "/v1/portal-sessions",
        headers=bearer(world.admin_key),
        json={"identity": "customer-7", "permissions": ["keys.read"], "ttl": 600},
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {
        "session_id", "identity_id", "code", "code_expires_at", "expires_at", "rate_limit",
        "portal_url",
    }  # fmt: skip
    assert body["rate_limit"] is None  # the admin key has no limit of its own to pass on
    assert body["code"].startswith("pc_")
    exchanged = world.client.post(
        "/portal/exchange", data={"code": body["code"]}, headers={"Sec-Fetch-Site": "same-origin"}
    )
    assert exchanged.status_code == 200
    assert exchanged.json() == {"session_id": body["session_id"], "expires_at": body["expires_at"]}
    token = exchanged.cookies["authcore_portal"]
    world.client.cookies.clear()
    assert token.startswith("pt_")
    assert token not in exchanged.text

    by_cookie = world.client.get(
        "/portal/v1/principal", headers={"Cookie": f"authcore_portal={token}"}
    )
    assert by_cookie.status_code == 200
    assert by_cookie.json()["source"] == "portal_session"
    assert by_cookie.json()["subject"] == {"type": "identity", "id": body["identity_id"]}
    assert by_cookie.json()["identity_id"] == body["identity_id"]
    assert_rate_limited_headers(by_cookie)

    by_bearer = world.client.get("/portal/v1/keys", headers=bearer(token))
    assert by_bearer.status_code == 200
    assert token not in by_bearer.text

    audit = world.client.get("/v1/audit-logs", headers=bearer(world.admin_key)).json()["events"]
    assert [event["action"] for event in audit[:2]] == [
        "portal_session.exchange",
        "portal_session.create",
    ]
    assert audit[1]["actor"]["id"] == world.admin_key_id
    assert audit[0]["actor"] == {"type": "identity", "id": body["identity_id"]}


def test_portal_session_cannot_escalate(world: World) -> None:
    response = world.client.post(
        "/v1/portal-sessions",
        headers=bearer(world.admin_key),
        json={"identity": "c", "permissions": ["billing.write"]},
    )
    assert_problem(response, 403, "permission_denied")
    # Nor hand a key made in the portal more than the caller holds.
    response = world.client.post(
        "/v1/portal-sessions",
        headers=bearer(world.admin_key),
        json={"identity": "c", "permissions": ["keys.create"], "key_permissions": ["billing.*"]},
    )
    assert_problem(response, 403, "permission_denied")


def test_portal_sessions_take_an_identity_not_an_end_user_id(world: World) -> None:
    response = world.client.post(
        "/v1/portal-sessions",
        headers=bearer(world.admin_key),
        json={"end_user_id": "c", "permissions": ["keys.read"]},
    )
    assert_problem(response, 400, "invalid_body")
    missing = world.client.post(
        "/v1/portal-sessions", headers=bearer(world.admin_key), json={"permissions": []}
    )
    assert_problem(missing, 400, "invalid_body")


def test_portal_routes_refuse_root_keys_and_api_routes_refuse_portal_tokens(world: World) -> None:
    token = portal_token(world, "c")
    root_on_portal = world.client.get("/portal/v1/principal", headers=bearer(world.admin_key))
    assert_problem(root_on_portal, 401, "credential_invalid")
    portal_on_api = world.client.get("/v1/principal", headers=bearer(token))
    assert_problem(portal_on_api, 401, "credential_invalid")
    no_credential = world.client.get("/portal/v1/principal")
    assert no_credential.headers["www-authenticate"] == 'Bearer realm="portal"'


def test_rate_limit_is_per_workspace_with_429(world: World, store: SQLiteStore) -> None:
    # A fresh workspace with a small limit (the cache keeps workspace records a few seconds).
    limited = store.create_workspace(
        "limited", rate_limit=RateLimitPolicy(3, 3600), now=time.time(), actor=OPERATOR_ACTOR
    )
    _, key = _key(store, limited.id, ["keys.read"], "k")
    statuses = [world.client.get("/v1/principal", headers=bearer(key)) for _ in range(4)]
    assert [r.status_code for r in statuses] == [200, 200, 200, 429]
    denied = statuses[-1]
    assert_problem(denied, 429, "rate_limited")
    assert int(denied.headers["retry-after"]) >= 1
    assert denied.headers["ratelimit-policy"] == '"workspace";q=3;w=3600'
    assert denied.headers["ratelimit"].startswith('"workspace";r=0;t=')
    # Another workspace is not affected.
    assert world.client.get("/v1/principal", headers=bearer(world.reader_key)).status_code == 200


def test_disabled_workspace_is_403(world: World, store: SQLiteStore) -> None:
    disabled = store.create_workspace("gone", now=time.time(), actor=OPERATOR_ACTOR)
    _, key = _key(store, disabled.id, ["keys.read"], "k")
    store.disable_workspace(disabled.id, now=time.time(), actor=OPERATOR_ACTOR)
    response = world.client.get("/v1/principal", headers=bearer(key))
    assert_problem(response, 403, "workspace_disabled")


def test_unknown_route_and_wrong_method_are_problems(world: World) -> None:
    assert_problem(
        world.client.get("/v1/nothing", headers=bearer(world.admin_key)), 404, "not_found"
    )
    assert_problem(
        world.client.put("/v1/keys", headers=bearer(world.admin_key)), 405, "method_not_allowed"
    )


def test_every_response_carries_a_request_id(world: World) -> None:
    response = world.client.get("/v1/principal", headers=bearer(world.admin_key))
    assert response.headers["x-request-id"].startswith("req_")
