"""Portal sessions that can end, over real HTTP: the exchange, revocation, logout.

- ``POST /v1/portal-sessions`` returns a one-time code (60 s), never a token, and the link to
  the portal page with the code in its fragment; ``POST /portal/exchange`` (code in the body)
  sets the HttpOnly, SameSite=Strict cookie once. A code seen twice, or in a URL, is spent and
  the session it started ends.
- ``DELETE /v1/portal-sessions/{id}`` (``portal.revoke_session``) and ``POST /portal/logout``
  revoke a session, audited with the caller as actor.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from authcore.backends.sqlite import SQLiteStore
from authcore.records import OPERATOR_ACTOR
from tests.service.servers import authcore_server
from tests.service.stack import SAME_ORIGIN, Stack, demo_stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with demo_stack(tmp_path_factory.mktemp("portal")) as started:
        yield started


@pytest.fixture
def api(stack: Stack) -> Iterator[httpx.Client]:
    with stack.api() as client:
        yield client


@pytest.fixture
def browser(stack: Stack) -> Iterator[httpx.Client]:
    """An end user's browser: no credential of its own, same-origin fetches."""
    with httpx.Client(base_url=stack.api_url, timeout=10, trust_env=False) as client:
        yield client


def _create(api: httpx.Client, identity: str = "customer-1", ttl: int = 600) -> dict[str, Any]:
    response = api.post(
        "/v1/portal-sessions",
        json={"identity": identity, "permissions": ["keys.read"], "ttl": ttl},
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _exchange(browser: httpx.Client, code: str, **kwargs: Any) -> httpx.Response:
    headers = kwargs.pop("headers", SAME_ORIGIN)
    response = browser.post("/portal/exchange", data={"code": code}, headers=headers, **kwargs)
    browser.cookies.clear()  # tests send the cookie explicitly
    return response


def _token(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    return str(response.cookies["authcore_portal"])


def _whoami(browser: httpx.Client, token: str) -> int:
    return browser.get(
        "/portal/v1/principal", headers={"Cookie": f"authcore_portal={token}"}
    ).status_code


def _events(api: httpx.Client) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = api.get("/v1/audit-logs").json()["events"]
    return events


# --- the exchange -------------------------------------------------------------------------


def test_the_exchange_sets_an_httponly_strict_cookie_for_the_portal_only(
    stack: Stack, api: httpx.Client, browser: httpx.Client
) -> None:
    created = _create(api)
    assert set(created) == {
        "session_id", "identity_id", "code", "code_expires_at", "expires_at", "rate_limit",
        "portal_url",
    }  # fmt: skip
    assert created["rate_limit"] is None  # the stack's operator key has no limit of its own
    assert created["identity_id"].startswith("idt_")
    # The link a customer's backend hands out: this service's portal page, the code in the
    # fragment (never sent to a server, so never in an access log).
    assert created["portal_url"] == f"{stack.api_url}/portal/#code={created['code']}"
    assert created["code_expires_at"] - time.time() <= 60
    response = _exchange(browser, created["code"])
    token = _token(response)
    attributes = [part.strip().lower() for part in response.headers["set-cookie"].split(";")]
    assert "httponly" in attributes
    assert "samesite=strict" in attributes
    assert "path=/portal" in attributes
    assert "secure" not in attributes  # plain http here; see the TLS test below
    max_age = next(int(a.split("=")[1]) for a in attributes if a.startswith("max-age="))
    assert 590 <= max_age <= 600
    assert token not in response.text
    assert response.json() == {
        "session_id": created["session_id"],
        "expires_at": created["expires_at"],
    }
    assert _whoami(browser, token) == 200


def test_a_json_body_works_too(api: httpx.Client, browser: httpx.Client) -> None:
    created = _create(api)
    response = browser.post("/portal/exchange", json={"code": created["code"]}, headers=SAME_ORIGIN)
    browser.cookies.clear()
    assert _whoami(browser, _token(response)) == 200


def test_a_code_works_once_and_its_replay_ends_the_session(
    stack: Stack, api: httpx.Client, browser: httpx.Client
) -> None:
    created = _create(api)
    first = _token(_exchange(browser, created["code"]))
    assert _whoami(browser, first) == 200
    again = _exchange(browser, created["code"])
    assert again.status_code == 400
    assert again.json()["code"] == "exchange_code_invalid"
    assert "set-cookie" not in again.headers
    # Whoever replays a code may hold the session it started: the session ends (RFC 6749
    # §4.1.2), audited with the reason.
    assert _whoami(browser, first) == 401
    event = _events(api)[0]
    assert event["action"] == "portal_session.revoke"
    assert event["targets"][0]["id"] == created["session_id"]
    assert event["context"] == {"reason": "exchange_code_replayed"}


@pytest.mark.parametrize("method", ["form", "json"])
def test_a_code_in_the_url_is_refused_and_spent(
    stack: Stack, api: httpx.Client, browser: httpx.Client, method: str
) -> None:
    # Regression: the code used to be refused in the URL but still worked from the body,
    # though a code in a URL is leaked (access logs, history, Referer).
    created = _create(api)
    in_url = browser.post(
        f"/portal/exchange?code={created['code']}",
        data={"code": created["code"]},
        headers=SAME_ORIGIN,
    )
    assert in_url.status_code == 400
    assert in_url.json()["code"] == "code_in_url"
    assert "set-cookie" not in in_url.headers
    browser.cookies.clear()
    if method == "form":
        later = _exchange(browser, created["code"])
    else:
        later = browser.post(
            "/portal/exchange", json={"code": created["code"]}, headers=SAME_ORIGIN
        )
    assert later.status_code == 400
    assert later.json()["code"] == "exchange_code_invalid"
    assert "set-cookie" not in later.headers
    # The session the code started (whose token nobody got) has ended.
    session = stack.store.get_portal_session(created["session_id"])
    assert session is not None
    assert session.revoked_at is not None


def test_a_used_code_seen_in_a_url_ends_the_session_it_started(
    api: httpx.Client, browser: httpx.Client
) -> None:
    created = _create(api)
    token = _token(_exchange(browser, created["code"]))
    in_url = browser.post(f"/portal/exchange?code={created['code']}", headers=SAME_ORIGIN)
    assert in_url.status_code == 400
    assert in_url.json()["code"] == "code_in_url"
    assert _whoami(browser, token) == 401


def test_a_code_in_the_url_is_spent_even_cross_site(
    stack: Stack, api: httpx.Client, browser: httpx.Client
) -> None:
    created = _create(api)
    leaked = browser.post(
        f"/portal/exchange?code={created['code']}", headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert leaked.status_code == 400
    assert leaked.json()["code"] == "code_in_url"
    assert _exchange(browser, created["code"]).status_code == 400


def test_any_query_is_refused_and_answers_alike(api: httpx.Client, browser: httpx.Client) -> None:
    created = _create(api)
    answers = [
        browser.post(f"/portal/exchange?{query}", headers=SAME_ORIGIN)
        for query in (
            "code=" + "pc_" + "A" * 43,
            "code=garbage",
            "other=1",
            f"x=1&code={created['code']}",
        )
    ]
    assert {(a.status_code, a.content) for a in answers} == {
        (answers[0].status_code, answers[0].content)
    }
    assert answers[0].json()["code"] == "code_in_url"
    assert _exchange(browser, created["code"]).status_code == 400


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "none"},
        {"Origin": "https://evil.example"},
        {},
    ],
    ids=["cross-site", "fetch-none", "evil-origin", "no-headers"],
)
def test_a_cross_site_exchange_is_refused_and_the_code_not_spent(
    api: httpx.Client, browser: httpx.Client, headers: dict[str, str]
) -> None:
    created = _create(api)
    refused = _exchange(browser, created["code"], headers=headers)
    assert refused.status_code == 403
    assert refused.json()["code"] == "cross_site_request"
    assert "set-cookie" not in refused.headers
    assert _exchange(browser, created["code"]).status_code == 200


def test_the_own_origin_passes_without_fetch_metadata(
    stack: Stack, api: httpx.Client, browser: httpx.Client
) -> None:
    created = _create(api)
    response = _exchange(browser, created["code"], headers={"Origin": stack.api_url})
    assert response.status_code == 200


def test_unknown_malformed_and_expired_codes_answer_alike(
    stack: Stack, browser: httpx.Client
) -> None:
    expired = stack.store.create_portal_exchange(
        stack.workspace_id,
        "customer-late",
        permissions=[],
        ttl=3600,
        now=time.time() - 61,
        actor=OPERATOR_ACTOR,
    )
    assert expired is not None
    answers = [
        _exchange(browser, code)
        for code in (expired.code.reveal(), "pc_" + "A" * 43, "garbage", "pt_" + "A" * 43, "")
    ]
    assert {(a.status_code, a.content) for a in answers} == {
        (answers[0].status_code, answers[0].content)
    }
    assert answers[0].status_code == 400


def test_a_revoked_pending_session_cannot_be_exchanged(
    api: httpx.Client, browser: httpx.Client
) -> None:
    created = _create(api)
    assert api.delete(f"/v1/portal-sessions/{created['session_id']}").status_code == 204
    assert _exchange(browser, created["code"]).status_code == 400


def test_create_and_exchange_are_audited(
    stack: Stack, api: httpx.Client, browser: httpx.Client
) -> None:
    created = _create(api, identity="customer-audit")
    _token(_exchange(browser, created["code"]))
    exchange, create = _events(api)[:2]
    assert create["action"] == "portal_session.create"
    assert create["actor"]["id"] == stack.admin_key_id
    assert exchange["action"] == "portal_session.exchange"
    assert exchange["actor"] == {"type": "identity", "id": created["identity_id"]}
    assert exchange["targets"][0]["id"] == created["session_id"]


# --- revocation through the API -----------------------------------------------------------


def test_revoking_through_the_api_ends_the_session_at_once(
    stack: Stack, api: httpx.Client, browser: httpx.Client
) -> None:
    created = _create(api)
    token = _token(_exchange(browser, created["code"]))
    assert _whoami(browser, token) == 200
    response = api.delete(f"/v1/portal-sessions/{created['session_id']}")
    assert response.status_code == 204
    assert _whoami(browser, token) == 401
    event = _events(api)[0]
    assert event["action"] == "portal_session.revoke"
    assert event["actor"]["id"] == stack.admin_key_id
    assert event["targets"][0]["id"] == created["session_id"]


def test_another_workspaces_session_is_404_and_lives_on(
    stack: Stack, api: httpx.Client, browser: httpx.Client
) -> None:
    other = stack.store.create_workspace("other", now=time.time(), actor=OPERATOR_ACTOR)
    theirs = stack.store.create_portal_session(
        other.id, "theirs", permissions=[], ttl=600, now=time.time(), actor=OPERATOR_ACTOR
    )
    assert theirs is not None
    for session_id in (theirs.record.id, "ps_000000000000000000000000", "x" * 65):
        response = api.delete(f"/v1/portal-sessions/{session_id}")
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
    assert _whoami(browser, theirs.token.reveal()) == 200


def test_revoking_needs_portal_revoke_session(
    stack: Stack, api: httpx.Client, browser: httpx.Client
) -> None:
    created = _create(api)
    key = api.post(
        "/v1/keys", json={"name": "creator", "permissions": ["portal.create_session"]}
    ).json()["key"]
    response = browser.delete(
        f"/v1/portal-sessions/{created['session_id']}", headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"


# --- logout -------------------------------------------------------------------------------


def test_logout_revokes_the_session_and_clears_the_cookie(
    api: httpx.Client, browser: httpx.Client
) -> None:
    created = _create(api, identity="customer-out")
    token = _token(_exchange(browser, created["code"]))
    response = browser.post(
        "/portal/logout", headers={**SAME_ORIGIN, "Cookie": f"authcore_portal={token}"}
    )
    assert response.status_code == 204
    cleared = [part.strip().lower() for part in response.headers["set-cookie"].split(";")]
    assert cleared[0] in {'authcore_portal=""', "authcore_portal="}
    assert "max-age=0" in cleared
    assert "path=/portal" in cleared
    assert _whoami(browser, token) == 401
    event = _events(api)[0]
    assert event["action"] == "portal_session.revoke"
    assert event["actor"] == {"type": "identity", "id": created["identity_id"]}
    assert event["targets"][0]["id"] == created["session_id"]


@pytest.mark.parametrize("headers", [{"Sec-Fetch-Site": "cross-site"}, {}], ids=["cross", "none"])
def test_a_cross_site_logout_is_refused_and_the_session_lives(
    api: httpx.Client, browser: httpx.Client, headers: dict[str, str]
) -> None:
    token = _token(_exchange(browser, _create(api)["code"]))
    response = browser.post(
        "/portal/logout", headers={**headers, "Cookie": f"authcore_portal={token}"}
    )
    assert response.status_code == 403
    assert _whoami(browser, token) == 200


def test_logout_with_the_token_as_bearer(api: httpx.Client, browser: httpx.Client) -> None:
    token = _token(_exchange(browser, _create(api)["code"]))
    response = browser.post("/portal/logout", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 204
    assert _whoami(browser, token) == 401


def test_logout_without_a_session_is_401(browser: httpx.Client) -> None:
    assert browser.post("/portal/logout", headers=SAME_ORIGIN).status_code == 401


# --- Secure over TLS ----------------------------------------------------------------------


@pytest.mark.parametrize(("proto", "secure"), [("https", True), (None, False)])
def test_the_cookie_is_secure_when_served_over_tls(
    tmp_path: Path, proto: str | None, secure: bool
) -> None:
    # TLS ends at a reverse proxy that says so with X-Forwarded-Proto; the API believes it
    # because it was told to trust that proxy.
    db = tmp_path / "tls.db"
    with SQLiteStore(db) as store:
        workspace = store.create_workspace("tls", now=time.time(), actor=OPERATOR_ACTOR)
        pending = store.create_portal_exchange(
            workspace.id, "u", permissions=[], ttl=600, now=time.time(), actor=OPERATOR_ACTOR
        )
        assert pending is not None
    headers = {"Sec-Fetch-Site": "same-origin"}
    if proto is not None:
        headers["X-Forwarded-Proto"] = proto
    args = ["--trusted-proxy", "127.0.0.1"]
    with authcore_server(db, "serve", args, ready_path="/healthz") as url:
        response = httpx.post(
            url + "/portal/exchange", data={"code": pending.code.reveal()}, headers=headers
        )
    assert response.status_code == 200
    attributes = [part.strip().lower() for part in response.headers["set-cookie"].split(";")]
    assert ("secure" in attributes) is secure
