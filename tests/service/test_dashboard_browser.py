"""The dashboard in a real headless browser: Debian's chromium driven by Playwright.

API and dashboard run under uvicorn on 127.0.0.1 with a real SQLite store. The browser logs in
as a dashboard user, creates a key, sees it listed and audited with the user as actor, and
revokes it; and it reads back the usage charts after real requests with a real key.
Playwright only drives the system's ``/usr/bin/chromium``; nothing is downloaded.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest

from authcore.backends import Auth
from authcore.backends.sqlite import SQLiteStore
from authcore.config import Config
from authcore.passwords import hash_password
from authcore.ratelimit import RateLimitPolicy
from authcore.records import OPERATOR_ACTOR
from authcore.service.runner import API_PERMISSIONS, build_api, build_dashboard
from tests.browser import CHROMIUM_ARGS, chromium_or_skip
from tests.service.servers import serve

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
            row.get_by_role("button", name="Revoke").click()
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


# --- usage charts ----------------------------------------------------------------------------

#: The workspace's limit while the key spends it: three requests, then 429s.
TIGHT = RateLimitPolicy(3, 60)
#: Everything passes again (the longer period admits what TIGHT spent).
LOOSE = RateLimitPolicy(1_000_000, 3600)
#: What the page calls each series, by the API's outcome codes (refused: every other code).
SERIES_OF_STATUS = {200: "allowed", 403: "refused", 429: "rate_limited"}


@attrs.frozen
class UsageWorld:
    """The servers, and the API's Auth: its recorder flushes when the test says so."""

    api_url: str
    dashboard_url: str
    api_auth: Auth
    workspace_id: str


@pytest.fixture
def usage_world(store: SQLiteStore, config: Config) -> Iterator[UsageWorld]:
    now = time.time()
    workspace = store.create_workspace(
        "acme", org_id="org_acme", rate_limit=LOOSE, now=now, actor=OPERATOR_ACTOR
    )
    store.add_dashboard_user(USER_ID, "org_acme", hash_password(PASSWORD), list(API_PERMISSIONS))
    # Without its own lifecycle the API's recorder thread never starts: counts reach the store
    # only at the test's flushes, so the charts show exactly the requests flushed before.
    api_auth = Auth.wire(store, config)
    try:
        with serve(build_api(api_auth, own_lifecycle=False)) as api_url:
            dashboard = build_dashboard(Auth.wire(store, config), api_url)
            with serve(dashboard) as dashboard_url:
                yield UsageWorld(api_url, dashboard_url, api_auth, workspace.id)
    finally:
        api_auth.close()


def _spend(world: UsageWorld, key: str) -> dict[str, int]:
    """Requests with ``key``: allowed, rate limited, refused (workspace disabled), allowed.

    Returns the count of each series, from the statuses the API really answered.
    """
    store, now = world.api_auth.store, time.time()
    statuses: list[int] = []
    with httpx.Client(
        base_url=world.api_url, headers={"Authorization": f"Bearer {key}"}, timeout=10
    ) as client:
        store.set_rate_limit(world.workspace_id, TIGHT, now=now, actor=OPERATOR_ACTOR)
        statuses += [client.get("/v1/principal").status_code for _ in range(5)]
        store.set_rate_limit(world.workspace_id, LOOSE, now=now, actor=OPERATOR_ACTOR)
        store.disable_workspace(world.workspace_id, now=now, actor=OPERATOR_ACTOR)
        statuses += [client.get("/v1/principal").status_code for _ in range(2)]
        store.enable_workspace(world.workspace_id, now=now, actor=OPERATOR_ACTOR)
        statuses.append(client.get("/v1/principal").status_code)
    assert statuses == [200, 200, 200, 429, 429, 403, 403, 200]
    spent = dict.fromkeys(SERIES_OF_STATUS.values(), 0)
    for status in statuses:
        spent[SERIES_OF_STATUS[status]] += 1
    return spent


def _chart_sums(page: Any, selector: str) -> dict[str, int]:
    """The chart's bars read back from the DOM (their data-* attributes), summed per series."""
    bars: list[dict[str, str]] = page.eval_on_selector_all(
        f"{selector} svg g.bucket", "groups => groups.map(g => ({...g.dataset}))"
    )
    assert bars, f"no bars in {selector}"
    return {
        "allowed": sum(int(bar["allowed"]) for bar in bars),
        "refused": sum(int(bar["refused"]) for bar in bars),
        "rate_limited": sum(int(bar["rateLimited"]) for bar in bars),
    }


def test_usage_charts_show_the_requests_made_with_a_key(
    usage_world: UsageWorld, tmp_path: Path, store: SQLiteStore
) -> None:
    chromium = chromium_or_skip()
    sync_api = pytest.importorskip("playwright.sync_api")
    now = time.time()
    created = store.create_root_key(
        usage_world.workspace_id,
        permissions=["keys.read"],
        name="busy-key",
        now=now,
        actor=OPERATOR_ACTOR,
    )
    idle = store.create_root_key(
        usage_world.workspace_id,
        permissions=["keys.read"],
        name="idle-key",
        now=now,
        actor=OPERATOR_ACTOR,
    )
    assert created is not None
    assert idle is not None
    key_id, idle_id = created.record.id, idle.record.id
    spent = _spend(usage_world, created.key.reveal())
    assert usage_world.api_auth.recorder is not None
    usage_world.api_auth.recorder.flush()
    last_used = store.last_used(usage_world.workspace_id)[key_id]

    problems: list[str] = []
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1200, "height": 1000},
        )
        try:
            context.set_default_timeout(10_000)
            page = context.new_page()
            # A CSP violation (inline style or script) is reported on the console as an error;
            # so are answers the page expects (the 401 of /session before logging in).
            page.on(
                "console",
                lambda m: (
                    problems.append(m.text)
                    if m.type == "error" and not m.text.startswith("Failed to load resource")
                    else None
                ),
            )
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.goto(usage_world.dashboard_url)
            page.fill("#login-user", USER_ID)
            page.fill("#login-password", PASSWORD)
            page.click("#login-submit")
            sync_api.expect(page.locator("#app-view")).to_be_visible()

            # The workspace chart: 24 hourly bars (25 when now is not on the hour), whose
            # numbers add up to the requests made. The dashboard's own calls are counted but
            # not flushed, so they are not in it.
            workspace_chart = page.locator("#usage-chart svg")
            sync_api.expect(workspace_chart).to_have_attribute("data-granularity", "hour")
            assert page.locator("#usage-chart g.bucket").count() in {24, 25}
            assert _chart_sums(page, "#usage-chart") == spent
            totals = page.locator("#usage-chart .totals")
            sync_api.expect(totals).to_have_text(
                f"Total: {spent['allowed']} allowed, {spent['refused']} refused, "
                f"{spent['rate_limited']} rate limited"
            )
            label = workspace_chart.get_attribute("aria-label")
            assert label is not None
            assert f"{spent['refused']} refused" in label
            # The bar holding the refusals names their code in its title (the tooltip).
            titles = page.eval_on_selector_all(
                "#usage-chart g.bucket[data-refused]:not([data-refused='0']) > title",
                "titles => titles.map(t => t.textContent)",
            )
            assert len(titles) >= 1
            assert any("workspace_disabled" in title for title in titles)
            # The visually hidden table has the same numbers for screen readers.
            hidden_rows = page.eval_on_selector_all(
                "#usage-chart table.visually-hidden tr",
                "rows => rows.slice(1).map(r => [...r.cells].slice(1).map(c => +c.textContent))",
            )
            assert [sum(column) for column in zip(*hidden_rows, strict=True)] == [
                spent["allowed"],
                spent["refused"],
                spent["rate_limited"],
            ]

            # The legend names every series in words and by pattern, not by colour alone.
            legend = page.locator("#usage-legend li")
            sync_api.expect(legend).to_have_text(
                ["Allowed (solid)", "Refused (striped)", "Rate limited (dotted)"]
            )

            # Last used: the busy key's minute, "never" for the idle one.
            row = page.locator(f'tr[data-key-id="{key_id}"]')
            used_cell = row.locator("td.last-used")
            sync_api.expect(used_cell).to_have_attribute("data-last-used", str(last_used))
            sync_api.expect(used_cell).not_to_have_text("never")
            iso = time.strftime("%Y-%m-%d %H:%M", time.gmtime(last_used))
            sync_api.expect(used_cell).to_have_text(iso)
            idle_cell = page.locator(f'tr[data-key-id="{idle_id}"] td.last-used')
            sync_api.expect(idle_cell).to_have_text("never")
            sync_api.expect(idle_cell).to_have_attribute("data-last-used", "")

            # The key's own chart, opened from its row.
            button = row.locator("button.usage-toggle")
            button.click()
            sync_api.expect(button).to_have_attribute("aria-expanded", "true")
            key_chart = f'tr.usage-row[data-usage-for="{key_id}"]'
            sync_api.expect(page.locator(f"{key_chart} svg")).to_be_visible()
            assert _chart_sums(page, key_chart) == spent
            idle_button = page.locator(f'tr[data-key-id="{idle_id}"] button.usage-toggle')
            idle_button.click()
            idle_chart = f'tr.usage-row[data-usage-for="{idle_id}"]'
            sync_api.expect(page.locator(f"{idle_chart} svg")).to_be_visible()
            assert _chart_sums(page, idle_chart) == dict.fromkeys(spent, 0)

            page.screenshot(path=str(tmp_path / "usage.png"), full_page=True)
            screenshot_dir = os.environ.get("AUTHCORE_SCREENSHOT_DIR")
            if screenshot_dir:
                shutil.copy(tmp_path / "usage.png", Path(screenshot_dir) / "usage.png")

            # The last hour by minute: the same requests, in minute bars, in both charts.
            page.click("#range-hour")
            sync_api.expect(page.locator("#range-hour")).to_have_attribute("aria-pressed", "true")
            sync_api.expect(workspace_chart).to_have_attribute("data-granularity", "minute")
            sync_api.expect(page.locator(f"{key_chart} svg")).to_have_attribute(
                "data-granularity", "minute"
            )
            assert page.locator("#usage-chart g.bucket").count() in {60, 61}
            assert _chart_sums(page, "#usage-chart") == spent
            assert _chart_sums(page, key_chart) == spent

            # A flush later, the dashboard's own (allowed, JWT) calls show on Refresh: the
            # workspace chart grows, the key's does not.
            usage_world.api_auth.recorder.flush()
            page.click("#refresh")
            sync_api.expect(page.locator("#usage-chart .totals")).not_to_have_attribute(
                "data-allowed", str(spent["allowed"])
            )
            assert _chart_sums(page, "#usage-chart")["allowed"] > spent["allowed"]
            sync_api.expect(page.locator(f"{key_chart} .totals")).to_have_attribute(
                "data-allowed", str(spent["allowed"])
            )
            assert _chart_sums(page, key_chart) == spent
        finally:
            context.close()
    assert problems == []
