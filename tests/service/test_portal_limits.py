"""A portal session holds no more quota than the key that made it, over real HTTP.

Outside review, issue 26 finding 2: "A 3/60 key made a portal session that then got 15 of 15
answers." A session made by a key with a limit of its own now carries that limit (or a tighter
one it is given; a looser one is 403), its requests are charged against it, and a key made in
the portal by such a session gets at most it too. One stack (uvicorn on loopback, a real
SQLite file) for the module; each test makes its own keys and sessions.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from authcore.ratelimit import RateLimitPolicy
from tests.service.stack import SAME_ORIGIN, Stack, demo_stack

pytestmark = pytest.mark.e2e

#: What the maker lends the session, and what the session may give a key made in the portal.
PORTAL_PERMISSIONS = ["keys.read", "keys.create"]
KEY_PERMISSIONS = ["keys.read"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with demo_stack(tmp_path_factory.mktemp("portal-limits")) as started:
        yield started


@pytest.fixture
def api(stack: Stack) -> Iterator[httpx.Client]:
    with stack.api() as client:
        yield client


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _maker(api: httpx.Client, rate_limit: str | None) -> str:
    """A key that may make portal sessions, with ``rate_limit`` of its own (or none)."""
    body: dict[str, Any] = {
        "name": "maker",
        "permissions": ["portal.create_session", *PORTAL_PERMISSIONS],
        "rate_limit": rate_limit,
    }
    response = api.post("/v1/keys", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


def _create_session(api: httpx.Client, maker: str, **fields: Any) -> httpx.Response:
    body = {
        "identity": f"cust-{secrets.token_hex(4)}",
        "permissions": PORTAL_PERMISSIONS,
        "key_permissions": KEY_PERMISSIONS,
        **fields,
    }
    return api.post("/v1/portal-sessions", json=body, headers=_bearer(maker))


def _started(api: httpx.Client, created: httpx.Response) -> str:
    """The session's token, from its exchange code, as the portal page gets it."""
    assert created.status_code == 201, created.text
    with httpx.Client(base_url=str(api.base_url), timeout=10, trust_env=False) as browser:
        exchanged = browser.post(
            "/portal/exchange", json={"code": created.json()["code"]}, headers=SAME_ORIGIN
        )
    assert exchanged.status_code == 200, exchanged.text
    return str(exchanged.cookies["authcore_portal"])


@pytest.fixture
def browser(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=stack.api_url, headers=SAME_ORIGIN, timeout=10, trust_env=False
    ) as client:
        yield client


def _principal_statuses(browser: httpx.Client, token: str, count: int) -> list[int]:
    cookie = {"Cookie": f"authcore_portal={token}"}
    return [browser.get("/portal/v1/principal", headers=cookie).status_code for _ in range(count)]


def test_a_session_made_by_a_3_per_60_key_gets_3_answers_then_429(
    api: httpx.Client, browser: httpx.Client
) -> None:
    created = _create_session(api, _maker(api, "3/60"))
    assert created.json()["rate_limit"] == "3/60"  # inherited: none was asked
    token = _started(api, created)
    assert _principal_statuses(browser, token, 5) == [200, 200, 200, 429, 429]
    # The limit is the session's, however the token travels.
    refused = browser.get("/portal/v1/principal", headers=_bearer(token))
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert int(refused.headers["retry-after"]) >= 1
    # The fields name the session's level (most specific first), then the workspace's.
    policy = refused.headers["ratelimit-policy"]
    assert policy.startswith('"session";q=3;w=60, "workspace";'), policy


def test_a_session_made_by_an_unlimited_key_is_unaffected(
    api: httpx.Client, browser: httpx.Client
) -> None:
    created = _create_session(api, _maker(api, None))
    assert created.json()["rate_limit"] is None
    token = _started(api, created)
    assert _principal_statuses(browser, token, 8) == [200] * 8


def test_a_limited_key_may_give_a_session_a_tighter_limit_never_a_looser_one(
    api: httpx.Client, browser: httpx.Client
) -> None:
    maker = _maker(api, "3/60")
    looser = _create_session(api, maker, rate_limit="1000000/1")
    assert looser.status_code == 403, looser.text
    assert looser.headers["content-type"] == "application/problem+json"
    assert looser.json()["code"] == "permission_denied"
    tighter = _create_session(api, maker, rate_limit="1/60")
    assert tighter.json()["rate_limit"] == "1/60"
    assert _principal_statuses(browser, _started(api, tighter), 2) == [200, 429]


def test_a_bad_rate_limit_is_a_400_problem(api: httpx.Client) -> None:
    maker = _maker(api, None)
    for value in ("3/0", "fast", 3, "\u0663/60"):
        response = _create_session(api, maker, rate_limit=value)
        assert response.status_code == 400, (value, response.text)
        assert response.headers["content-type"] == "application/problem+json"


def test_a_key_made_in_the_portal_gets_at_most_the_sessions_limit(
    stack: Stack, api: httpx.Client, browser: httpx.Client
) -> None:
    token = _started(api, _create_session(api, _maker(api, "3/60")))
    cookie = {"Cookie": f"authcore_portal={token}"}
    made = browser.post(
        "/portal/v1/keys",
        json={"name": "portal key", "permissions": KEY_PERMISSIONS},
        headers=cookie,
    )
    # The portal's key body has no rate_limit field: the key inherits the session's.
    assert made.status_code == 201, made.text
    record = stack.store.get_root_key(made.json()["key_id"])
    assert record is not None
    assert record.rate_limit == RateLimitPolicy(3, 60)
    key = made.json()["key"]
    statuses = [api.get("/v1/principal", headers=_bearer(key)).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


def test_a_session_and_a_key_of_one_identity_share_its_limit(
    api: httpx.Client, browser: httpx.Client
) -> None:
    external = f"shared-{secrets.token_hex(4)}"
    made = api.post("/v1/identities", json={"external_id": external, "rate_limit": "3/60"})
    assert made.status_code == 201, made.text
    key = api.post(
        "/v1/keys", json={"name": "k", "permissions": ["keys.read"], "identity": external}
    )
    assert key.status_code == 201, key.text
    assert api.get("/v1/principal", headers=_bearer(key.json()["key"])).status_code == 200
    # The session made by an unlimited key still acts for the identity: two requests are left.
    token = _started(api, _create_session(api, _maker(api, None), identity=external))
    assert _principal_statuses(browser, token, 3) == [200, 200, 429]
    refused = browser.get("/portal/v1/principal", headers={"Cookie": f"authcore_portal={token}"})
    assert refused.headers["ratelimit-policy"].startswith('"identity";q=3;w=60, "workspace";')
    assert api.get("/v1/principal", headers=_bearer(key.json()["key"])).status_code == 429
