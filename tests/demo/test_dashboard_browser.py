"""The dashboard in a real headless browser: Debian's chromium driven by Playwright.

API and dashboard run under uvicorn on 127.0.0.1 with a real SQLite store. The browser logs in
as a dashboard user, creates a key, sees it listed and audited with the user as actor, and
revokes it. Playwright only drives the system's ``/usr/bin/chromium``; nothing is downloaded.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from authcore.backends import Auth
from authcore.backends.sqlite import SQLiteStore
from authcore.config import Config
from authcore.demo.runner import API_PERMISSIONS, build_api, build_dashboard
from authcore.passwords import hash_password
from authcore.store import OPERATOR_ACTOR
from tests.browser import CHROMIUM_ARGS, chromium_or_skip
from tests.demo.servers import serve

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

USER_ID = "dana"
PASSWORD = "a long dashboard password"


@pytest.fixture
def servers(store: SQLiteStore, config: Config) -> Iterator[tuple[str, str]]:
    now = time.time()
    store.create_workspace("acme", org_id="org_acme", now=now, actor=OPERATOR_ACTOR)
    store.add_dashboard_user(USER_ID, "org_acme", hash_password(PASSWORD), list(API_PERMISSIONS))
    with serve(build_api(Auth.wire(store, config))) as api_url:
        dashboard = build_dashboard(Auth.wire(store, config), api_url)
        with serve(dashboard) as dashboard_url:
            yield api_url, dashboard_url


def test_login_create_list_audit_revoke(
    servers: tuple[str, str], tmp_path: Path, store: SQLiteStore
) -> None:
    chromium = chromium_or_skip()
    sync_api = pytest.importorskip("playwright.sync_api")
    _, dashboard_url = servers
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1200, "height": 900},
        )
        try:
            context.set_default_timeout(10_000)
            page = context.new_page()
            page.goto(dashboard_url)

            # Log in: the login form shows, then the app.
            page.fill("#login-user", USER_ID)
            page.fill("#login-password", "wrong password")
            page.click("#login-submit")
            sync_api.expect(page.locator("#login-error")).to_contain_text("wrong")
            page.fill("#login-password", PASSWORD)
            page.click("#login-submit")
            sync_api.expect(page.locator("#app-view")).to_be_visible()
            sync_api.expect(page.locator("#who-user")).to_have_text(USER_ID)

            cookies = {c["name"]: c for c in context.cookies()}
            session_cookie = cookies["authcore_dashboard"]
            assert session_cookie["httpOnly"] is True
            assert session_cookie["sameSite"] == "Strict"
            # HttpOnly: page scripts cannot read the session.
            assert "authcore_dashboard" not in page.evaluate("document.cookie")

            # Create a key through the proxy; it is shown once.
            page.fill("#create-name", "browser-key")
            page.fill("#create-permissions", "keys.read, audit.read")
            page.click("#create-submit")
            sync_api.expect(page.locator("#new-key")).to_be_visible()
            key_id = page.locator("#new-key-id").inner_text()
            key = page.locator("#new-key-value").inner_text()
            assert key_id.startswith("key_")
            assert key.startswith("ak_")

            # Listed, and audited with the dashboard user as the actor.
            row = page.locator(f'tr[data-key-id="{key_id}"]')
            sync_api.expect(row).to_contain_text("browser-key")
            sync_api.expect(row).to_contain_text("active")
            assert key not in page.locator("#keys-body").inner_text()
            audit = page.locator("#audit-body tr").first
            sync_api.expect(audit).to_contain_text("key.create")
            sync_api.expect(audit).to_contain_text(f"user:{USER_ID}")
            sync_api.expect(audit).to_contain_text(key_id)

            page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
            screenshot_dir = os.environ.get("AUTHCORE_SCREENSHOT_DIR")
            if screenshot_dir:
                shutil.copy(tmp_path / "dashboard.png", Path(screenshot_dir) / "dashboard.png")

            # Revoke it: the row says revoked and the audit log records who did it.
            row.locator("button").click()
            sync_api.expect(row).to_contain_text("revoked")
            sync_api.expect(page.locator("#audit-body tr").first).to_contain_text("key.revoke")
            sync_api.expect(page.locator("#audit-body tr").first).to_contain_text(f"user:{USER_ID}")

            # Log out: the proxy no longer answers for this browser.
            page.click("#logout")
            sync_api.expect(page.locator("#login-view")).to_be_visible()
            status = page.evaluate(
                "fetch('/proxy/v1/keys', {credentials: 'same-origin'}).then(r => r.status)"
            )
            assert status == 401
        finally:
            context.close()

    # The key really is revoked in the store, and the audit actor is the user.
    record = store.get_root_key(key_id)
    assert record is not None
    assert record.revoked_at is not None
    events = store.list_audit(record.workspace_id).events
    assert [(e.action, e.actor.type, e.actor.id) for e in events[:2]] == [
        ("key.revoke", "user", USER_ID),
        ("key.create", "user", USER_ID),
    ]


def test_login_refuses_cross_site_posts(servers: tuple[str, str]) -> None:
    _, dashboard_url = servers
    body = {"user_id": USER_ID, "password": PASSWORD}
    with httpx.Client(base_url=dashboard_url, timeout=10) as client:
        cross = client.post("/login", json=body, headers={"Sec-Fetch-Site": "cross-site"})
        assert cross.status_code == 403
        assert "set-cookie" not in cross.headers
        foreign = client.post("/login", json=body, headers={"Origin": "https://evil.example"})
        assert foreign.status_code == 403
        bare = client.post("/login", json=body)
        assert bare.status_code == 403
        same = client.post("/login", json=body, headers={"Sec-Fetch-Site": "same-origin"})
        assert same.status_code == 200
        cookie = same.headers["set-cookie"].lower()
        assert "httponly" in cookie
        assert "samesite=strict" in cookie
        assert "secure" not in cookie  # plain HTTP on loopback: Secure would drop the cookie


def test_login_failures_look_the_same(servers: tuple[str, str]) -> None:
    _, dashboard_url = servers
    headers = {"Sec-Fetch-Site": "same-origin"}
    with httpx.Client(base_url=dashboard_url, timeout=10) as client:
        unknown = client.post(
            "/login", json={"user_id": "nobody", "password": "x"}, headers=headers
        )
        wrong = client.post("/login", json={"user_id": USER_ID, "password": "x"}, headers=headers)
        assert unknown.status_code == wrong.status_code == 401
        assert unknown.json() == wrong.json()
        malformed = client.post(
            "/login", content=b"{", headers={**headers, "Content-Type": "application/json"}
        )
        assert malformed.status_code == 400


def test_login_attempts_are_throttled_per_user_before_any_hashing(
    servers: tuple[str, str],
) -> None:
    _, dashboard_url = servers
    headers = {"Sec-Fetch-Site": "same-origin"}
    wrong = {"user_id": USER_ID, "password": "guess"}
    with httpx.Client(base_url=dashboard_url, timeout=10) as client:
        statuses = [
            client.post("/login", json=wrong, headers=headers).status_code for _ in range(10)
        ]
        assert statuses == [401] * 10
        # The budget is spent: even the right password is refused now, without a session.
        right = client.post(
            "/login", json={"user_id": USER_ID, "password": PASSWORD}, headers=headers
        )
        assert right.status_code == 429
        assert right.json()["code"] == "too_many_login_attempts"
        assert int(right.headers["retry-after"]) >= 1
        assert "set-cookie" not in right.headers
        # Another user id from the same client still gets a normal answer.
        other = client.post("/login", json={"user_id": "erin", "password": "x"}, headers=headers)
        assert other.status_code == 401


def test_proxy_requires_a_session_and_refuses_caller_authorization(
    servers: tuple[str, str],
) -> None:
    _, dashboard_url = servers
    with httpx.Client(base_url=dashboard_url, timeout=10) as client:
        assert client.get("/proxy/v1/keys").status_code == 401
        login = client.post(
            "/login",
            json={"user_id": USER_ID, "password": PASSWORD},
            headers={"Sec-Fetch-Site": "same-origin"},
        )
        assert login.status_code == 200
        assert client.get("/proxy/v1/keys").status_code == 200
        smuggled = client.get("/proxy/v1/keys", headers={"Authorization": "Bearer ak_x"})
        assert smuggled.status_code == 400


def test_page_is_served_with_a_strict_content_security_policy(servers: tuple[str, str]) -> None:
    _, dashboard_url = servers
    with httpx.Client(base_url=dashboard_url, timeout=10) as client:
        page = client.get("/")
        assert page.status_code == 200
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert '<script src="/static/app.js"' in page.text
        assert client.get("/static/app.js").headers["content-type"].startswith("text/javascript")
        assert client.get("/static/../cli.py").status_code == 404
        assert client.get("/session").status_code == 401
