"""Bounds on what one tenant can pin, over real HTTP (issue 26, finding 3): grants per key and
per portal session, and cursor pages on every list.

One stack (uvicorn on loopback, a real SQLite file) for the module.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from authcore.cursors import audit_cursor, identity_cursor, key_cursor, parse_audit_cursor
from authcore.plans import MAX_KEY_GRANT_BYTES, MAX_KEY_GRANTS
from authcore.records import (
    DEFAULT_LIST_PAGE,
    MAX_LIST_PAGE,
    OPERATOR_ACTOR,
    AuditCursor,
    KeyCursor,
)
from tests.service.stack import Stack, demo_stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with demo_stack(tmp_path_factory.mktemp("bounds")) as started:
        yield started


@pytest.fixture(scope="module")
def star(stack: Stack) -> Iterator[httpx.Client]:
    """A client with a ``*`` key: it may grant anything, so only the bounds refuse."""
    created = stack.store.create_root_key(
        stack.workspace_id, permissions=["*"], name="star", now=time.time(), actor=OPERATOR_ACTOR
    )
    assert created is not None
    with httpx.Client(
        base_url=stack.api_url,
        headers={"Authorization": f"Bearer {created.key.reveal()}"},
        timeout=10,
        trust_env=False,
    ) as client:
        yield client


def _grants(count: int, width: int = 8) -> list[str]:
    return [f"g{n:0{width - 1}d}" for n in range(count)]


def assert_problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code


# --- grants per key and per portal session -------------------------------------------------


def test_a_key_with_the_most_grants_is_made_and_one_more_is_a_400(star: httpx.Client) -> None:
    made = star.post("/v1/keys", json={"name": "wide", "permissions": _grants(MAX_KEY_GRANTS)})
    assert made.status_code == 201, made.text
    over = star.post("/v1/keys", json={"name": "w", "permissions": _grants(MAX_KEY_GRANTS + 1)})
    assert_problem(over, 400, "too_many_grants")


def test_too_many_bytes_of_grants_is_a_400(star: httpx.Client) -> None:
    long = _grants(100, width=100)
    assert sum(map(len, long)) > MAX_KEY_GRANT_BYTES
    assert_problem(
        star.post("/v1/keys", json={"name": "long", "permissions": long}), 400, "too_many_grants"
    )


def test_a_caller_without_star_gets_the_400_before_its_grants_are_checked(
    stack: Stack,
) -> None:
    with stack.api() as api:
        over = api.post("/v1/keys", json={"name": "w", "permissions": _grants(MAX_KEY_GRANTS + 1)})
    assert_problem(over, 400, "too_many_grants")


@pytest.mark.parametrize("where", ["permissions", "key_permissions"])
def test_a_portal_session_over_the_bound_is_a_400(star: httpx.Client, where: str) -> None:
    body = {"identity": "bounded", "permissions": ["keys.read"], where: _grants(300)}
    assert_problem(star.post("/v1/portal-sessions", json=body), 400, "too_many_grants")
    body[where] = _grants(100, width=100)
    assert_problem(star.post("/v1/portal-sessions", json=body), 400, "too_many_grants")


# --- cursor pages -------------------------------------------------------------------------


def _follow(client: httpx.Client, first: str, items: str) -> tuple[list[dict[str, Any]], int]:
    """Follow ``next`` from ``first``; return every item and how many pages there were."""
    seen: list[dict[str, Any]] = []
    link: str | None = first
    pages = 0
    while link is not None:
        response = client.get(link)
        assert response.status_code == 200, response.text
        body = response.json()
        seen += body[items]
        pages += 1
        link = body["next"]
        assert (link is None) == (body["next_cursor"] is None)
    return seen, pages


def _created(keys: list[dict[str, Any]], key_id: str) -> int:
    return next(int(key["created_at"]) for key in keys if key["key_id"] == key_id)


def test_the_keys_of_an_identity_page_by_next_links(stack: Stack, star: httpx.Client) -> None:
    ext = f"pager-{secrets.token_hex(4)}"
    made = [
        star.post("/v1/keys", json={"name": f"k{n}", "permissions": [], "identity": ext}).json()
        for n in range(7)
    ]
    seen, pages = _follow(star, f"/v1/keys?limit=3&identity={ext}", "keys")
    # Made within a second or two: oldest first, ids ordering keys of the same second.
    assert [key["key_id"] for key in seen] == sorted(
        (key["key_id"] for key in made), key=lambda key_id: (_created(seen, key_id), key_id)
    )
    assert pages == 3
    second = star.get(f"/v1/keys?limit=3&identity={ext}").json()["next"]
    assert second.startswith("/v1/keys?")
    assert f"identity={ext}" in second
    assert "limit=3" in second


def test_a_list_holds_100_by_default_and_500_at_most(stack: Stack, star: httpx.Client) -> None:
    for n in range(101):
        stack.store.create_root_key(
            stack.workspace_id, permissions=[], name=f"bulk{n}", now=time.time(),
            actor=OPERATOR_ACTOR,
        )  # fmt: skip
    page = star.get("/v1/keys").json()
    assert len(page["keys"]) == DEFAULT_LIST_PAGE
    assert page["next"] is not None
    assert len(star.get("/v1/keys?limit=500").json()["keys"]) > DEFAULT_LIST_PAGE
    assert_problem(star.get(f"/v1/keys?limit={MAX_LIST_PAGE + 1}"), 400, "invalid_query")
    everything, _ = _follow(star, "/v1/keys?limit=40", "keys")
    assert len({key["key_id"] for key in everything}) == len(everything) > 101


@pytest.mark.parametrize("path", ["/v1/keys", "/v1/identities", "/v1/audit-logs"])
def test_a_bad_cursor_is_a_400(star: httpx.Client, path: str) -> None:
    foreign = {
        "/v1/keys": audit_cursor(AuditCursor(1, 1)),
        "/v1/identities": key_cursor(KeyCursor(1, "key_1")),
        "/v1/audit-logs": identity_cursor("someone"),
    }[path]
    for cursor in ["not a cursor", "AAAA", foreign]:
        assert_problem(star.get(path, params={"cursor": cursor}), 400, "invalid_query")
    assert_problem(star.get(f"{path}?cursor=a&cursor=b"), 400, "invalid_query")


def test_identities_and_audit_logs_page_by_next_links(star: httpx.Client) -> None:
    prefix = f"page-{secrets.token_hex(4)}"
    for n in range(5):
        assert star.post("/v1/identities", json={"external_id": f"{prefix}-{n}"}).is_success
    seen, _ = _follow(star, "/v1/identities?limit=2", "identities")
    ours = [item["external_id"] for item in seen if item["external_id"].startswith(prefix)]
    assert ours == [f"{prefix}-{n}" for n in range(5)]
    assert_problem(star.get("/v1/identities?cursor=x&after=y"), 400, "invalid_query")
    events, pages = _follow(star, "/v1/audit-logs?limit=50", "events")
    assert pages > 1
    assert len({event["id"] for event in events}) == len(events)
    times = [event["time"] for event in events]
    assert times == sorted(times, reverse=True)


def test_the_legacy_audit_before_still_pages(star: httpx.Client) -> None:
    first = star.get("/v1/audit-logs?limit=1").json()
    legacy = str(parse_audit_cursor(first["next_cursor"]))  # "<time>.<seq>"
    for before in (legacy, first["next_cursor"]):
        second = star.get("/v1/audit-logs", params={"limit": 1, "before": before}).json()
        assert second["events"][0]["id"] != first["events"][0]["id"]
