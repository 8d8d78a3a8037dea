"""The portal acts on its session's identity only, over real HTTP.

Two identities of one workspace (and a third workspace's key) each hold keys; a portal session
of the first lists, makes, revokes and reads the usage of its identity's keys only. Another
identity's key id, another workspace's and an unknown one are answered exactly alike. A key made
in the portal holds at most the session's ``key_permissions``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import attrs
import httpx
import pytest

from authcore.records import OPERATOR_ACTOR
from tests.service.stack import SAME_ORIGIN, Stack, demo_stack

pytestmark = pytest.mark.e2e

#: What the operator lets the end user do in the portal, and give a key made there.
PORTAL_PERMISSIONS = ["keys.read", "keys.create", "keys.revoke", "usage.read"]
KEY_PERMISSIONS = ["keys.read", "usage.read"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with demo_stack(tmp_path_factory.mktemp("portal-identity")) as started:
        yield started


@attrs.frozen
class Customers:
    """Two identities' keys, a foreign workspace's key, and a portal session of ``mine``."""

    mine: str
    theirs: str
    my_keys: frozenset[str]
    their_key: dict[str, Any]
    foreign_key_id: str
    session: dict[str, Any]
    token: str = attrs.field(repr=False)


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def assert_problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code


def _key(api: httpx.Client, identity: str, name: str) -> dict[str, Any]:
    response = api.post(
        "/v1/keys", json={"name": name, "permissions": ["keys.read"], "identity": identity}
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _session(
    api: httpx.Client,
    identity: str,
    permissions: list[str] = PORTAL_PERMISSIONS,
    key_permissions: list[str] = KEY_PERMISSIONS,
) -> tuple[dict[str, Any], str]:
    """A portal session of ``identity``, exchanged as the portal page does: its token."""
    created = api.post(
        "/v1/portal-sessions",
        json={"identity": identity, "permissions": permissions, "key_permissions": key_permissions},
    )
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    with httpx.Client(base_url=str(api.base_url), timeout=10, trust_env=False) as browser:
        exchanged = browser.post(
            "/portal/exchange", json={"code": body["code"]}, headers=SAME_ORIGIN
        )
    assert exchanged.status_code == 200, exchanged.text
    return body, str(exchanged.cookies["authcore_portal"])


@pytest.fixture
def api(stack: Stack) -> Iterator[httpx.Client]:
    with stack.api() as client:
        yield client


@pytest.fixture
def customers(stack: Stack, api: httpx.Client) -> Customers:
    mine, theirs = f"mine-{secrets.token_hex(4)}", f"theirs-{secrets.token_hex(4)}"
    my_keys = frozenset(_key(api, mine, f"mine-{n}")["key_id"] for n in range(2))
    their_key = _key(api, theirs, "theirs")
    other = stack.store.create_workspace("elsewhere", now=time.time(), actor=OPERATOR_ACTOR)
    foreign = stack.store.create_root_key(
        other.id, permissions=["keys.read"], identity=mine, now=time.time(), actor=OPERATOR_ACTOR
    )
    assert foreign is not None
    session, token = _session(api, mine)
    return Customers(
        mine, theirs, my_keys, their_key, foreign.record.id, session, token
    )  # fmt: skip


@pytest.fixture
def portal(stack: Stack, customers: Customers) -> Iterator[httpx.Client]:
    """The end user's browser: the session cookie, same-origin fetches."""
    with httpx.Client(
        base_url=stack.api_url,
        headers={**SAME_ORIGIN, "Cookie": f"authcore_portal={customers.token}"},
        timeout=10,
        trust_env=False,
    ) as client:
        yield client


def test_the_key_list_holds_the_identitys_keys_only(
    customers: Customers, portal: httpx.Client
) -> None:
    response = portal.get("/portal/v1/keys")
    assert response.status_code == 200
    keys = response.json()["keys"]
    assert {key["key_id"] for key in keys} == customers.my_keys
    assert {key["identity"] for key in keys} == {customers.mine}
    assert {key["identity_id"] for key in keys} == {customers.session["identity_id"]}
    assert customers.their_key["key_id"] not in response.text
    assert customers.foreign_key_id not in response.text
    # Asking for another identity's keys finds none, as for an unknown one.
    theirs = portal.get("/portal/v1/keys", params={"identity": customers.theirs})
    assert theirs.json() == {"keys": [], "next": None, "next_cursor": None}


def test_the_identity_route_says_whose_portal_it_is(
    api: httpx.Client, customers: Customers, portal: httpx.Client
) -> None:
    api.patch(f"/v1/identities/{customers.mine}", json={"meta": {"plan": "pro"}})
    response = portal.get("/portal/v1/identity")
    assert response.status_code == 200
    assert response.json() == {
        "identity_id": customers.session["identity_id"],
        "external_id": customers.mine,
        "meta": {"plan": "pro"},
        "rate_limit": None,
        "permissions": sorted(PORTAL_PERMISSIONS),
        "key_permissions": sorted(KEY_PERMISSIONS),
    }
    principal = portal.get("/portal/v1/principal").json()
    assert principal["subject"] == {"type": "identity", "id": customers.session["identity_id"]}


def test_another_identitys_key_answers_exactly_like_an_unknown_one(
    api: httpx.Client, customers: Customers, portal: httpx.Client
) -> None:
    ids = {
        "theirs": customers.their_key["key_id"],
        "foreign": customers.foreign_key_id,
        "unknown": "key_000000000000000000000000",
        "malformed": "%E2%80%AE",
    }
    for path in ("/portal/v1/keys/{id}", "/portal/v1/keys/{id}/usage"):
        method = "DELETE" if path.endswith("{id}") else "GET"
        answers = {
            name: portal.request(method, path.format(id=key_id)) for name, key_id in ids.items()
        }
        for answer in answers.values():
            assert_problem(answer, 404, "not_found")
        assert len({answer.content for answer in answers.values()}) == 1, path
    # Their key still works.
    still = api.get("/v1/principal", headers=_bearer(customers.their_key["key"]))
    assert still.status_code == 200


def test_the_end_user_revokes_the_identitys_own_key(
    api: httpx.Client, customers: Customers, portal: httpx.Client
) -> None:
    made = portal.post("/portal/v1/keys", json={"name": "to-revoke", "permissions": []}).json()
    assert portal.delete(f"/portal/v1/keys/{made['key_id']}").status_code == 204
    gone = api.get("/v1/principal", headers=_bearer(made["key"]))
    assert_problem(gone, 401, "credential_invalid")
    event = api.get("/v1/audit-logs?limit=1").json()["events"][0]
    assert event["action"] == "key.revoke"
    assert event["actor"] == {"type": "identity", "id": customers.session["identity_id"]}


def test_a_key_made_in_the_portal_belongs_to_the_identity(
    stack: Stack, api: httpx.Client, customers: Customers, portal: httpx.Client
) -> None:
    response = portal.post(
        "/portal/v1/keys",
        json={"name": "from the portal", "permissions": ["keys.read"], "expires_in": 3600},
    )
    assert response.status_code == 201
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"key_id", "key", "identity_id", "identity"}
    assert body["identity_id"] == customers.session["identity_id"]
    assert body["identity"] == customers.mine
    principal = api.get("/v1/principal", headers=_bearer(body["key"])).json()
    assert principal["identity_id"] == customers.session["identity_id"]
    assert principal["permissions"] == ["keys.read"]
    listed = portal.get("/portal/v1/keys").json()["keys"]
    assert body["key_id"] in {key["key_id"] for key in listed}
    assert body["key"] not in portal.get("/portal/v1/keys").text
    # Audited with the identity as actor.
    event = api.get("/v1/audit-logs?limit=1").json()["events"][0]
    assert event["action"] == "key.create"
    assert event["actor"] == {"type": "identity", "id": customers.session["identity_id"]}
    assert event["source"] == "portal_session"
    record = stack.store.get_root_key(body["key_id"])
    assert record is not None
    assert record.expires_at is not None


@pytest.mark.parametrize(
    "grants",
    [["keys.create"], ["keys.*"], ["*"], ["keys.read", "audit.read"], ["portal.create_session"]],
)
def test_a_portal_key_cannot_exceed_the_sessions_key_permissions(
    customers: Customers, portal: httpx.Client, grants: list[str]
) -> None:
    # keys.create is the session's own permission, not one its keys may hold.
    response = portal.post("/portal/v1/keys", json={"name": "greedy", "permissions": grants})
    assert_problem(response, 403, "permission_denied")
    listed = portal.get("/portal/v1/keys").json()["keys"]
    assert "greedy" not in {key["name"] for key in listed}


@pytest.mark.parametrize(
    "body",
    [
        {"name": "k", "permissions": [], "identity": "someone-else"},
        {"name": "k", "permissions": [], "rate_limit": "1000000/1"},
        {"name": "k", "permissions": [], "expires_in": 0},
        {"name": "k\u202e", "permissions": []},
        {"name": "k", "permissions": ["Keys.Read"]},
        {"permissions": []},
    ],
)
def test_a_bad_portal_key_body_is_400(portal: httpx.Client, body: dict[str, Any]) -> None:
    response = portal.post("/portal/v1/keys", json=body)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/portal/v1/keys"), ("DELETE", "/portal/v1/keys/{mine}")]
)
@pytest.mark.parametrize("headers", [{"Sec-Fetch-Site": "cross-site"}, {}], ids=["cross", "none"])
def test_a_cross_site_portal_write_is_refused(
    stack: Stack, customers: Customers, method: str, path: str, headers: dict[str, str]
) -> None:
    key_id = sorted(customers.my_keys)[0]
    with httpx.Client(base_url=stack.api_url, timeout=10, trust_env=False) as browser:
        response = browser.request(
            method,
            path.format(mine=key_id),
            json={"name": "csrf", "permissions": []} if method == "POST" else None,
            headers={**headers, "Cookie": f"authcore_portal={customers.token}"},
        )
    assert_problem(response, 403, "cross_site_request")
    record = stack.store.get_root_key(key_id)
    assert record is not None
    assert record.revoked_at is None


def test_each_portal_route_needs_its_permission(
    stack: Stack, api: httpx.Client, customers: Customers
) -> None:
    _, token = _session(api, customers.mine, permissions=[], key_permissions=["keys.read"])
    key_id = sorted(customers.my_keys)[0]
    with httpx.Client(
        base_url=stack.api_url,
        headers={**SAME_ORIGIN, "Cookie": f"authcore_portal={token}"},
        timeout=10,
        trust_env=False,
    ) as portal:
        for method, path in [
            ("GET", "/portal/v1/keys"),
            ("POST", "/portal/v1/keys"),
            ("DELETE", f"/portal/v1/keys/{key_id}"),
            ("GET", "/portal/v1/usage"),
            ("GET", f"/portal/v1/keys/{key_id}/usage"),
        ]:
            body = {"name": "k", "permissions": []} if method == "POST" else None
            assert_problem(portal.request(method, path, json=body), 403, "permission_denied")
        # What needs no permission: who it is.
        assert portal.get("/portal/v1/identity").status_code == 200
        assert portal.get("/portal/v1/principal").status_code == 200


def test_portal_usage_is_the_identitys(customers: Customers, portal: httpx.Client) -> None:
    response = portal.get("/portal/v1/usage", params={"granularity": "day"})
    assert response.status_code == 200
    body = response.json()
    assert body["identity"] == customers.mine
    assert body["identity_id"] == customers.session["identity_id"]
    assert body["granularity"] == "day"
    key_id = sorted(customers.my_keys)[0]
    one = portal.get(f"/portal/v1/keys/{key_id}/usage")
    assert one.status_code == 200
    assert one.json()["key_id"] == key_id
    assert_problem(portal.get("/portal/v1/usage?granularity=week"), 400, "invalid_query")
    # Another identity's usage is none of its business: nothing, as for an unknown one.
    theirs = portal.get("/portal/v1/usage", params={"identity": customers.theirs}).json()
    assert theirs["totals"] == {}
    assert theirs["identity_id"] is None


def test_a_root_key_is_refused_on_portal_routes(
    stack: Stack, api: httpx.Client, customers: Customers
) -> None:
    for method, path in [("GET", "/portal/v1/identity"), ("POST", "/portal/v1/keys")]:
        response = api.request(method, path, json={"name": "k", "permissions": []})
        assert_problem(response, 401, "credential_invalid")


def test_a_deleted_identitys_session_stops_working(
    api: httpx.Client, customers: Customers, portal: httpx.Client
) -> None:
    assert portal.get("/portal/v1/keys").status_code == 200
    deleted = api.delete(f"/v1/identities/{customers.mine}?revoke_keys=true")
    assert deleted.status_code == 204
    assert_problem(portal.get("/portal/v1/keys"), 401, "credential_invalid")
