"""What the outside review found in ``authcore dashboard`` and its proxy, over real HTTP.

The dashboard and the example API run under uvicorn on loopback, built as the command line
builds them (tests/service/stack.py). Each test is named for the finding it holds:

- finding 1: the proxy read up to 1 MiB of body (with no time limit) before it looked at the
  session, so anonymous clients could make it buffer; now it answers before the body;
- finding 4: a state-changing proxied request with no ``Sec-Fetch-Site`` passed the cross-site
  check (with ``Origin: https://evil.example``, or with neither header);
- finding 8: the proxy relayed the API's redirects (``/proxy/v1/keys/`` -> 307 to the API).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from authcore.service._http import MAX_BODY_BYTES
from tests.service.stack import SAME_ORIGIN, Stack, demo_stack, send_partial

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with demo_stack(tmp_path_factory.mktemp("stack")) as started:
        yield started


def _key_names(stack: Stack) -> list[str]:
    with stack.api() as api:
        return [key["name"] for key in api.get("/v1/keys").json()["keys"]]


# --- finding 1: the session is checked before any body is read ----------------------------


def test_finding_1_no_session_is_401_before_the_body_arrives(stack: Stack) -> None:
    # Headers announce a body within the cap; not one byte of it is ever sent.
    answer = send_partial(
        stack.dashboard_url,
        "POST",
        "/proxy/v1/keys",
        {
            "Content-Type": "application/json",
            "Content-Length": str(MAX_BODY_BYTES - 1),
            **SAME_ORIGIN,
        },
    )
    assert answer.status == 401
    assert answer.headers["connection"] == "close"
    assert b"dashboard_session_required" in answer.body


def test_finding_1_a_cross_site_write_is_403_before_the_body_arrives(stack: Stack) -> None:
    answer = send_partial(
        stack.dashboard_url,
        "POST",
        "/proxy/v1/keys",
        {"Content-Type": "application/json", "Content-Length": str(MAX_BODY_BYTES - 1)},
    )
    assert answer.status == 403
    assert answer.headers["connection"] == "close"


def test_finding_1_a_wrong_session_is_401_before_the_body_arrives(stack: Stack) -> None:
    answer = send_partial(
        stack.dashboard_url,
        "POST",
        "/proxy/v1/keys",
        {
            "Cookie": "authcore_dashboard=forged",
            "Content-Type": "application/json",
            "Content-Length": "1000",
            **SAME_ORIGIN,
        },
        body=b'{"name": "x"',
    )
    assert answer.status == 401


def test_a_refusal_without_a_body_owed_keeps_the_connection(stack: Stack) -> None:
    with stack.dashboard(logged_in=False) as client:
        response = client.get("/proxy/v1/keys")
    assert response.status_code == 401
    assert "connection" not in response.headers


def test_finding_1_a_body_over_what_the_api_accepts_is_413_unread(stack: Stack) -> None:
    answer = send_partial(
        stack.dashboard_url,
        "POST",
        "/proxy/v1/keys",
        {
            "Cookie": stack.session_cookie(),
            "Content-Type": "application/json",
            "Content-Length": str(MAX_BODY_BYTES + 1),
            **SAME_ORIGIN,
        },
    )
    assert answer.status == 413
    assert answer.headers["connection"] == "close"


def test_finding_1_a_body_within_the_cap_still_crosses(stack: Stack) -> None:
    with stack.dashboard() as dashboard:
        response = dashboard.post(
            "/proxy/v1/keys",
            json={"name": "via-proxy", "permissions": ["keys.read"], "pad": "x" * 100},
            headers=SAME_ORIGIN,
        )
    # The API's own answer (an unknown field), so the body reached it whole.
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_body"


# --- finding 4: the one cross-site rule ---------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {},
        {"Sec-Fetch-Site": "none"},
        {"Sec-Fetch-Site": "same-site"},
        {"Sec-Fetch-Site": "cross-site", "Origin": "SELF"},
        {"Origin": "null"},
    ],
    ids=["evil-origin", "no-headers", "fetch-none", "same-site", "cross-site", "origin-null"],
)
def test_finding_4_a_cookie_write_not_from_the_dashboard_is_403(
    stack: Stack, headers: dict[str, str]
) -> None:
    headers = {k: stack.dashboard_url if v == "SELF" else v for k, v in headers.items()}
    with stack.dashboard() as dashboard:
        response = dashboard.post(
            "/proxy/v1/keys", json={"name": "csrf", "permissions": []}, headers=headers
        )
        deleted = dashboard.delete(f"/proxy/v1/keys/{stack.admin_key_id}", headers=headers)
    assert response.status_code == 403
    assert response.json()["code"] == "cross_site_request"
    assert deleted.status_code == 403
    assert "csrf" not in _key_names(stack)
    with stack.api() as api:
        assert api.get("/v1/principal").status_code == 200  # the key was not revoked


@pytest.mark.parametrize(
    "headers",
    [{"Sec-Fetch-Site": "same-origin"}, {"Origin": "SELF"}],
    ids=["fetch-same-origin", "own-origin-without-fetch-metadata"],
)
def test_finding_4_a_write_from_the_dashboard_itself_passes(
    stack: Stack, headers: dict[str, str]
) -> None:
    headers = {k: stack.dashboard_url if v == "SELF" else v for k, v in headers.items()}
    with stack.dashboard() as dashboard:
        response = dashboard.post(
            "/proxy/v1/keys", json={"name": "mine", "permissions": []}, headers=headers
        )
    assert response.status_code == 201
    assert "mine" in _key_names(stack)


@pytest.mark.parametrize("site", ["none", "cross-site", None])
def test_finding_4_the_dashboard_login_follows_the_same_rule(
    stack: Stack, site: str | None
) -> None:
    headers = {} if site is None else {"Sec-Fetch-Site": site}
    with stack.dashboard(logged_in=False) as client:
        response = client.post(
            "/login", json={"user_id": stack.user_id, "password": "x"}, headers=headers
        )
        logout = client.post("/logout", headers=headers)
    assert response.status_code == 403
    assert logout.status_code == 403


# --- finding 8: no redirect ever reaches the browser --------------------------------------


def test_finding_8_a_trailing_slash_through_the_proxy_is_not_a_redirect(stack: Stack) -> None:
    with stack.dashboard() as dashboard:
        response = dashboard.get("/proxy/v1/keys/")
    assert not 300 <= response.status_code < 400
    assert "location" not in response.headers
    assert stack.api_url not in response.text


def test_finding_8_the_api_answers_a_trailing_slash_with_a_404_problem(stack: Stack) -> None:
    with stack.api() as api:
        response = api.get("/v1/keys/", headers={"Host": "evil.example"})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert "location" not in response.headers


def test_finding_8_the_dashboard_answers_a_trailing_slash_with_a_404(stack: Stack) -> None:
    with stack.dashboard(logged_in=False) as client:
        response = client.get("/session/", headers={"Host": "evil.example"})
    assert response.status_code == 404
    assert "location" not in response.headers


# --- 405 answers carry Allow --------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/v1/keys", "GET, HEAD, POST"),
        ("GET", "/v1/keys/key_x", "DELETE"),
        ("POST", "/v1/audit-logs", "GET, HEAD"),
        ("GET", "/v1/portal-sessions", "POST"),
        ("GET", "/portal/exchange", "POST"),
    ],
)
def test_a_405_from_the_api_names_what_is_allowed(
    stack: Stack, method: str, path: str, allow: str
) -> None:
    with stack.api() as api:
        response = api.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    assert response.json()["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [("GET", "/login", "POST"), ("DELETE", "/session", "GET, HEAD"), ("POST", "/", "GET, HEAD")],
)
def test_a_405_from_the_dashboard_names_what_is_allowed(
    stack: Stack, method: str, path: str, allow: str
) -> None:
    with stack.dashboard(logged_in=False) as client:
        response = client.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allow
