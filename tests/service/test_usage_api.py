"""The example API's usage routes over real HTTP: uvicorn on 127.0.0.1, a real SQLite file.

The API runs without its own lifecycle, so the usage recorder's thread never starts and counts
reach the store only when a test flushes them (``auth.recorder.flush()``): what a route shows is
exactly what was requested before the flush, whatever the wall clock does meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

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

#: The acme workspace's limit while the test spends it: three requests, then 429s.
TIGHT = RateLimitPolicy(3, 60)
#: A limit that lets everything through again (a longer period admits the spent allowance).
LOOSE = RateLimitPolicy(1_000_000, 3600)


@attrs.frozen
class World:
    """Two workspaces, their keys, the running API and the Auth whose recorder tests flush."""

    auth: Auth
    client: httpx.Client
    workspace: str
    other_workspace: str
    admin_key: str = attrs.field(repr=False)
    admin_key_id: str
    reader_key: str = attrs.field(repr=False)
    reader_key_id: str
    idle_key_id: str
    other_key: str = attrs.field(repr=False)
    other_key_id: str

    def flush(self) -> None:
        recorder = self.auth.recorder
        assert recorder is not None
        recorder.flush()


def _key(store: SQLiteStore, workspace: str, permissions: list[str], name: str) -> tuple[str, str]:
    created = store.create_root_key(
        workspace, permissions=permissions, name=name, now=time.time(), actor=OPERATOR_ACTOR
    )
    assert created is not None
    return created.record.id, created.key.reveal()


@pytest.fixture
def world(store: SQLiteStore, config: Config) -> Iterator[World]:
    now = time.time()
    acme = store.create_workspace(
        "acme", org_id="org_acme", rate_limit=LOOSE, now=now, actor=OPERATOR_ACTOR
    )
    globex = store.create_workspace("globex", rate_limit=LOOSE, now=now, actor=OPERATOR_ACTOR)
    admin_id, admin = _key(store, acme.id, list(API_PERMISSIONS), "admin")
    reader_id, reader = _key(store, acme.id, ["keys.read"], "reader")
    idle_id, _ = _key(store, acme.id, ["keys.read"], "idle")
    other_id, other = _key(store, globex.id, ["*"], "other")
    auth = Auth.wire(store, config)
    try:
        with (
            serve(build_api(auth, own_lifecycle=False)) as url,
            httpx.Client(base_url=url, timeout=10, trust_env=False) as client,
        ):
            yield World(
                auth, client, acme.id, globex.id, admin, admin_id, reader, reader_id, idle_id,
                other, other_id,
            )  # fmt: skip
    finally:
        auth.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code


def get_usage(world: World, path: str, key: str, **params: str) -> dict[str, Any]:
    response = world.client.get(path, params=params, headers=bearer(key))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def summed(body: dict[str, Any]) -> dict[str, int]:
    """The buckets' counts added up per outcome (what a chart draws)."""
    sums: dict[str, int] = {}
    for bucket in body["buckets"]:
        for outcome, count in bucket["outcomes"].items():
            sums[outcome] = sums.get(outcome, 0) + count
    return sums


def spend_reader(world: World) -> None:
    """Reader: 3 allowed, 2 rate limited, 1 refused (workspace disabled); asserted as sent."""
    store, now = world.auth.store, time.time()
    store.set_rate_limit(world.workspace, TIGHT, now=now, actor=OPERATOR_ACTOR)
    statuses = [
        world.client.get("/v1/keys", headers=bearer(world.reader_key)).status_code for _ in range(5)
    ]
    assert statuses == [200, 200, 200, 429, 429]
    store.set_rate_limit(world.workspace, LOOSE, now=now, actor=OPERATOR_ACTOR)
    store.disable_workspace(world.workspace, now=now, actor=OPERATOR_ACTOR)
    disabled = world.client.get("/v1/keys", headers=bearer(world.reader_key))
    assert_problem(disabled, 403, "workspace_disabled")
    store.enable_workspace(world.workspace, now=now, actor=OPERATOR_ACTOR)


def test_key_counts_appear_after_a_flush_and_not_before(world: World) -> None:
    spend_reader(world)
    path = f"/v1/keys/{world.reader_key_id}/usage"

    before = get_usage(world, path, world.admin_key)
    assert before["totals"] == {}
    assert before["buckets"] == []
    assert before["last_used_at"] is None

    world.flush()
    body = get_usage(world, path, world.admin_key, granularity="minute")
    expected = {"allowed": 3, "rate_limited": 2, "workspace_disabled": 1}
    assert body["totals"] == expected
    assert summed(body) == expected
    assert body["key_id"] == world.reader_key_id
    assert body["workspace_id"] == world.workspace
    assert body["granularity"] == "minute"
    starts = [bucket["start"] for bucket in body["buckets"]]
    assert starts == sorted(starts)
    assert all(start % 60 == 0 and body["since"] - 60 < start < body["until"] for start in starts)
    assert isinstance(body["last_used_at"], int)
    assert body["last_used_at"] % 60 == 0


def test_workspace_counts_every_key_of_the_workspace_only(world: World) -> None:
    spend_reader(world)
    # A credential nobody issued is refused before any workspace is known: counted nowhere.
    unknown = world.client.get("/v1/keys", headers=bearer("ak_" + "x" * 43))
    assert_problem(unknown, 401, "credential_invalid")
    # Another workspace's traffic.
    for _ in range(4):
        assert world.client.get("/v1/keys", headers=bearer(world.other_key)).status_code == 200
    world.flush()

    # The read itself is counted, but only flushed later: it is not in its own answer.
    body = get_usage(world, "/v1/usage", world.admin_key)
    expected = {"allowed": 3, "rate_limited": 2, "workspace_disabled": 1}
    assert body["totals"] == expected
    assert summed(body) == expected
    assert body["workspace_id"] == world.workspace
    assert body["granularity"] == "hour"
    assert body["until"] - body["since"] == 86_400

    world.flush()
    again = get_usage(world, "/v1/usage", world.admin_key, granularity="day")
    assert again["totals"] == {**expected, "allowed": 4}  # + the admin's first read

    theirs = get_usage(world, "/v1/usage", world.other_key)
    assert theirs["workspace_id"] == world.other_workspace
    assert theirs["totals"] == {"allowed": 4}


def test_key_list_says_when_each_key_was_last_used(world: World) -> None:
    spend_reader(world)
    world.flush()
    response = world.client.get("/v1/keys", headers=bearer(world.admin_key))
    assert response.status_code == 200
    used = {key["key_id"]: key["last_used_at"] for key in response.json()["keys"]}
    assert used[world.idle_key_id] is None
    assert used[world.admin_key_id] is None  # its requests are not flushed yet
    reader_used = used[world.reader_key_id]
    assert isinstance(reader_used, int)
    assert time.time() - 3 * 60 < reader_used <= time.time()


@pytest.mark.parametrize("path", ["/v1/usage", "/v1/keys/{reader}/usage"])
def test_usage_without_usage_read_is_403(world: World, path: str) -> None:
    response = world.client.get(
        path.format(reader=world.reader_key_id), headers=bearer(world.reader_key)
    )
    assert_problem(response, 403, "permission_denied")
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


def test_another_workspaces_key_is_404_like_an_unknown_one(world: World) -> None:
    for _ in range(2):
        assert world.client.get("/v1/keys", headers=bearer(world.other_key)).status_code == 200
    world.flush()
    foreign = world.client.get(
        f"/v1/keys/{world.other_key_id}/usage", headers=bearer(world.admin_key)
    )
    unknown = world.client.get("/v1/keys/key_nosuchkey/usage", headers=bearer(world.admin_key))
    malformed = world.client.get("/v1/keys/%E2%80%AE/usage", headers=bearer(world.admin_key))
    for response in (foreign, unknown, malformed):
        assert_problem(response, 404, "not_found")
    assert foreign.json() == unknown.json() == malformed.json()
    # The owner sees the same key's counts.
    own = get_usage(world, f"/v1/keys/{world.other_key_id}/usage", world.other_key)
    assert own["totals"] == {"allowed": 2}


@pytest.mark.parametrize(
    "query",
    [
        "granularity=week",
        "granularity=",
        "granularity=hour&granularity=day",
        "since=abc",
        "since=-1",
        "since=1e3",
        "since=12345678901234567",  # digits beyond any epoch time
        "until=0",
        "until=%EF%BC%91",  # a fullwidth digit one: ASCII digits only
        "since=2000&until=1000",
        "since=1000&until=1000",
        "granularity=minute&since=0",  # far more buckets than one read may span
    ],
)
@pytest.mark.parametrize("path", ["/v1/usage", "/v1/keys/{admin}/usage"])
def test_a_bad_window_is_400(world: World, path: str, query: str) -> None:
    url = path.format(admin=world.admin_key_id) + "?" + query
    response = world.client.get(url, headers=bearer(world.admin_key))
    assert_problem(response, 400, "invalid_query")


def test_an_explicit_window_reads_only_its_buckets(world: World) -> None:
    spend_reader(world)
    world.flush()
    now = int(time.time())
    path = f"/v1/keys/{world.reader_key_id}/usage"
    inside = get_usage(
        world, path, world.admin_key, since=str(now - 3600), until=str(now + 60),
        granularity="minute",
    )  # fmt: skip
    assert inside["totals"]["allowed"] == 3
    long_ago = get_usage(world, path, world.admin_key, since="0", until="86400")
    assert long_ago["totals"] == {}
    assert (long_ago["since"], long_ago["until"]) == (0, 86_400)


# --- per identity -------------------------------------------------------------------------


def _identity_key(world: World, identity: str, permissions: list[str]) -> str:
    created = world.auth.store.create_root_key(
        world.workspace, permissions=permissions, name=identity, identity=identity,
        now=time.time(), actor=OPERATOR_ACTOR,
    )  # fmt: skip
    assert created is not None
    return created.key.reveal()


def test_identity_usage_sums_that_identitys_keys_only(world: World) -> None:
    first = _identity_key(world, "cust-a", ["keys.read"])
    second = _identity_key(world, "cust-a", ["keys.read", "usage.read"])
    theirs = _identity_key(world, "cust-b", ["keys.read"])
    for key, times in ((first, 2), (second, 3), (theirs, 4), (world.reader_key, 5)):
        for _ in range(times):
            assert world.client.get("/v1/keys", headers=bearer(key)).status_code == 200
    refused = world.client.get("/v1/audit-logs", headers=bearer(first))
    assert_problem(refused, 403, "permission_denied")  # counted as allowed: the key was fine
    world.flush()

    body = get_usage(world, "/v1/usage", world.admin_key, identity="cust-a")
    assert body["totals"] == {"allowed": 6}
    assert summed(body) == {"allowed": 6}
    assert body["identity"] == "cust-a"
    assert body["identity_id"].startswith("idt_")
    assert body["workspace_id"] == world.workspace
    assert get_usage(world, "/v1/usage", world.admin_key, identity="cust-b")["totals"] == {
        "allowed": 4
    }
    # An unknown identity has no keys, so no usage: not a 404.
    unknown = get_usage(world, "/v1/usage", world.admin_key, identity="cust-z")
    assert unknown["totals"] == {}
    assert unknown["buckets"] == []
    assert (unknown["identity"], unknown["identity_id"]) == ("cust-z", None)
    # A key of an identity reads its identity's usage only, wherever it asks.
    assert get_usage(world, "/v1/usage", second)["totals"] == {"allowed": 6}
    assert get_usage(world, "/v1/usage", second, identity="cust-b")["totals"] == {}
    keys = world.client.get("/v1/keys", headers=bearer(world.admin_key)).json()["keys"]
    their_id = next(key["key_id"] for key in keys if key["name"] == "cust-b")
    foreign = world.client.get(f"/v1/keys/{their_id}/usage", headers=bearer(second))
    unknown_key = world.client.get("/v1/keys/key_nosuchkey/usage", headers=bearer(second))
    assert_problem(foreign, 404, "not_found")
    assert foreign.content == unknown_key.content


def test_the_portal_reads_its_identitys_usage(world: World) -> None:
    key = _identity_key(world, "cust-p", ["keys.read"])
    for _ in range(3):
        assert world.client.get("/v1/keys", headers=bearer(key)).status_code == 200
    session = world.auth.store.create_portal_session(
        world.workspace, "cust-p", permissions=["usage.read"], ttl=600, now=time.time(),
        actor=OPERATOR_ACTOR,
    )  # fmt: skip
    assert session is not None
    token = session.token.reveal()
    world.flush()
    body = get_usage(world, "/portal/v1/usage", token)
    assert body["totals"] == {"allowed": 3}
    assert body["identity"] == "cust-p"


@pytest.mark.parametrize(
    "query",
    ["identity=", "identity=a%E2%80%AEb", "identity=a%00b", "identity=a&identity=b"],
)
def test_a_bad_identity_filter_is_400(world: World, query: str) -> None:
    response = world.client.get(f"/v1/usage?{query}", headers=bearer(world.admin_key))
    assert_problem(response, 400, "invalid_query")


def test_an_unknown_identitys_window_is_still_checked(world: World) -> None:
    response = world.client.get(
        "/v1/usage?identity=nobody&since=2000&until=1000", headers=bearer(world.admin_key)
    )
    assert_problem(response, 400, "invalid_query")
