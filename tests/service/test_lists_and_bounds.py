"""Bounds on what one tenant can pin, over real HTTP (issue 26, finding 3): grants per key and
per portal session, and cursor pages on every list.

One stack (uvicorn on loopback, a real SQLite file) for the module.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from authcore.plans import MAX_KEY_GRANT_BYTES, MAX_KEY_GRANTS
from authcore.records import OPERATOR_ACTOR
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
