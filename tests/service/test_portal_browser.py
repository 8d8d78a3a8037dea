"""The end user's portal page and the dashboard's identities view, in a real headless browser.

The example API and the dashboard run under uvicorn on 127.0.0.1 over a real SQLite store, and
Debian's ``/usr/bin/chromium`` (driven by Playwright, nothing downloaded) opens the portal link
an operator made for the identity ``customer-a``: the code leaves the address bar before any
request, the page shows only that identity's keys, makes a key that then works against the API
over real HTTP, revokes it (the key stops working) and logs out (the cookie stops working).
Another identity's key never shows. A link opened twice, or no link at all, shows one plain
sentence. The dashboard lists the identities and makes a portal link that works.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
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
from authcore.records import OPERATOR_ACTOR
from authcore.service.portal_page import SECURITY_HEADERS
from authcore.service.runner import API_PERMISSIONS, build_api, build_dashboard
from tests.browser import CHROMIUM_ARGS, chromium_or_skip
from tests.service.servers import authcore_env, serve

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

USER_ID = "olive"
PASSWORD = "a long operator password"
#: What the identities view reads besides what the demo's dashboard user holds.
IDENTITIES_READ = "identities.read"
#: The one sentence the page shows for a spent, expired or missing link.
EXPIRED = "This link has expired or was already used. Ask for a new one."
LOGGED_OUT = "You are logged out. To come back, ask for a new link."
#: What an end user may do in the portal, and what keys made there may hold.
PORTAL_PERMISSIONS = ["keys.read", "keys.create", "keys.revoke", "usage.read"]
KEY_PERMISSIONS = ["keys.read", "usage.read"]
#: Names no page of customer-a may ever show.
OTHER_KEY_NAME = "b-payroll-export"
#: Records every fetch the page makes with the address bar at that moment (added by the test
#: through the DevTools protocol, so the page's CSP does not apply to it).
RECORD_FETCHES = """
(() => {
  const original = window.fetch;
  window.__fetches = [];
  window.fetch = function (input, init) {
    window.__fetches.push({ url: String(input), location: window.location.href });
    return original.call(this, input, init);
  };
})();
"""


@attrs.frozen
class World:
    """The servers and what the test made in the store."""

    store: SQLiteStore
    #: The API's Auth: its usage recorder flushes when the test says so.
    api_auth: Auth
    api_url: str
    dashboard_url: str
    workspace_id: str
    admin_key: str = attrs.field(repr=False)
    identity_a: str
    key_a_id: str
    key_b_id: str

    def api(self) -> httpx.Client:
        """A client of the API with the operator's root key."""
        return httpx.Client(
            base_url=self.api_url,
            headers={"Authorization": f"Bearer {self.admin_key}"},
            timeout=10,
            trust_env=False,
        )

    def portal_link(self, identity: str = "customer-a") -> dict[str, Any]:
        """Ask the API for a portal session of ``identity``, as the operator's backend does."""
        with self.api() as client:
            answer = client.post(
                "/v1/portal-sessions",
                json={
                    "identity": identity,
                    "permissions": PORTAL_PERMISSIONS,
                    "key_permissions": KEY_PERMISSIONS,
                },
            )
        assert answer.status_code == 201, answer.text
        created: dict[str, Any] = answer.json()
        assert created["portal_url"] == f"{self.api_url}/portal/#code={created['code']}"
        return created

    def cli_portal_link(self, db: Path, identity: str = "customer-a") -> dict[str, Any]:
        """Make the link as an operator does: ``authcore portal create-session``, a process."""
        argv = [
            sys.executable, "-m", "authcore", "--db", f"sqlite:///{db}",
            "portal", "create-session", "--workspace", self.workspace_id,
            "--identity", identity, "--base-url", self.api_url, "--json",
            *(arg for p in PORTAL_PERMISSIONS for arg in ("--permission", p)),
            *(arg for p in KEY_PERMISSIONS for arg in ("--key-permission", p)),
        ]  # fmt: skip
        done = subprocess.run(
            argv, cwd=db.parent, env=authcore_env(), capture_output=True, text=True,
            timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        created: dict[str, Any] = json.loads(done.stdout)
        assert created["portal_url"] == f"{self.api_url}/portal/#code={created['code']}"
        return created


@pytest.fixture
def world(store: SQLiteStore, config: Config) -> Iterator[World]:
    now = time.time()
    workspace = store.create_workspace("acme", org_id="org_acme", now=now, actor=OPERATOR_ACTOR)
    admin = store.create_root_key(
        workspace.id, permissions=list(API_PERMISSIONS), name="admin", now=now, actor=OPERATOR_ACTOR
    )
    permissions = list(dict.fromkeys([*API_PERMISSIONS, IDENTITIES_READ]))
    store.add_dashboard_user(USER_ID, "org_acme", hash_password(PASSWORD), permissions)
    identity_a = store.create_identity(workspace.id, "customer-a", now=now, actor=OPERATOR_ACTOR)
    key_a = store.create_root_key(
        workspace.id,
        permissions=["keys.read"],
        name="a-reporting",
        identity="customer-a",
        now=now,
        actor=OPERATOR_ACTOR,
    )
    key_b = store.create_root_key(
        workspace.id,
        permissions=["keys.read"],
        name=OTHER_KEY_NAME,
        identity="customer-b",
        now=now,
        actor=OPERATOR_ACTOR,
    )
    assert admin is not None
    assert identity_a is not None
    assert key_a is not None
    assert key_b is not None
    # Without its own lifecycle the API's recorder thread never starts: counts reach the store
    # only at the test's flushes.
    api_auth = Auth.wire(store, config)
    try:
        with serve(build_api(api_auth, own_lifecycle=False)) as api_url:
            dashboard = build_dashboard(Auth.wire(store, config), api_url)
            with serve(dashboard) as dashboard_url:
                yield World(
                    store=store,
                    api_auth=api_auth,
                    api_url=api_url,
                    dashboard_url=dashboard_url,
                    workspace_id=workspace.id,
                    admin_key=admin.key.reveal(),
                    identity_a=identity_a.id,
                    key_a_id=key_a.record.id,
                    key_b_id=key_b.record.id,
                )
    finally:
        api_auth.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """A fresh headless chromium profile (no cookies); yields the Playwright context."""
    chromium = chromium_or_skip()
    sync_api = pytest.importorskip("playwright.sync_api")
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
            yield context
        finally:
            context.close()


def _expect() -> Any:
    return pytest.importorskip("playwright.sync_api").expect


def _watch(page: Any, *, failed_loads: bool = False) -> list[str]:
    """Collect what the page reports as broken: script errors, CSP violations (console errors)
    and, unless ``failed_loads`` says they are expected, answers with a 4xx or 5xx status."""
    problems: list[str] = []

    def on_console(message: Any) -> None:
        if message.type != "error":
            return
        if failed_loads and message.text.startswith("Failed to load resource"):
            return
        problems.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(str(error)))
    return problems


def _screenshot(page: Any, tmp_path: Path, name: str, selector: str | None = None) -> None:
    if selector is None:
        page.screenshot(path=str(tmp_path / name), full_page=True)
    else:
        page.locator(selector).screenshot(path=str(tmp_path / name))
    screenshot_dir = os.environ.get("AUTHCORE_SCREENSHOT_DIR")
    if screenshot_dir:
        shutil.copy(tmp_path / name, Path(screenshot_dir) / name)


def _portal_cookie(context: Any) -> dict[str, Any]:
    (cookie,) = [c for c in context.cookies() if c["name"] == "authcore_portal"]
    return dict(cookie)


def _status_with(api_url: str, key: str) -> int:
    with httpx.Client(base_url=api_url, timeout=10, trust_env=False) as client:
        return client.get("/v1/principal", headers={"Authorization": f"Bearer {key}"}).status_code


# --- the portal page ---------------------------------------------------------------------------


def test_end_user_manages_the_identitys_keys_in_the_portal(
    world: World, browser: Any, tmp_path: Path
) -> None:
    expect = _expect()
    # The operator makes the link on the command line, against the API's own database.
    link = world.cli_portal_link(tmp_path / "authcore.db")  # the store fixture's file
    page = browser.new_page()
    problems = _watch(page)
    exchanges: list[str] = []
    page.on(
        "request",
        lambda r: exchanges.append(r.url) if r.url.endswith("/portal/exchange") else None,
    )
    page.add_init_script(RECORD_FETCHES)
    page.goto(link["portal_url"])

    expect(page.locator("#app-view")).to_be_visible()
    expect(page.locator("#who-id")).to_have_text("customer-a")
    # The code left the address bar before the page's first request, and was never in a URL.
    assert page.url == f"{world.api_url}/portal/"
    fetches = page.evaluate("window.__fetches")
    assert fetches[0]["url"] == "exchange"
    assert all("#" not in fetch["location"] for fetch in fetches), fetches
    assert exchanges == [f"{world.api_url}/portal/exchange"]
    # The session is an HttpOnly, SameSite=Strict cookie for /portal; nothing in web storage.
    cookie = _portal_cookie(browser)
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/portal"
    assert "authcore_portal" not in page.evaluate("document.cookie")
    assert page.evaluate("localStorage.length + sessionStorage.length") == 0

    # The identity's own key is listed; the other identity's never is.
    existing = page.locator(f'tr[data-key-id="{world.key_a_id}"]')
    expect(existing).to_contain_text("a-reporting")
    expect(existing).to_contain_text("active")
    assert page.locator(f'tr[data-key-id="{world.key_b_id}"]').count() == 0
    assert OTHER_KEY_NAME not in page.content()

    # The form offers what the operator allowed for keys made here, all checked.
    boxes = page.locator('#create-permissions input[type="checkbox"]')
    assert boxes.evaluate_all("bs => bs.map(b => [b.value, b.checked])") == [
        [permission, True] for permission in KEY_PERMISSIONS
    ]
    page.fill("#create-name", "ci-server")
    page.click("#create-submit")
    expect(page.locator("#new-key")).to_be_visible()
    expect(page.locator("#new-key")).to_contain_text("you will not see this key again")
    key = page.locator("#new-key-value").inner_text()
    assert key.startswith("ak_")
    browser.grant_permissions(["clipboard-read", "clipboard-write"], origin=world.api_url)
    page.click("#new-key-copy")
    expect(page.locator("#new-key-copied")).to_have_text("Copied.")
    assert page.evaluate("navigator.clipboard.readText()") == key
    assert page.evaluate("localStorage.length + sessionStorage.length") == 0
    row = page.locator("#keys-body tr", has_text="ci-server")
    expect(row).to_contain_text("active")
    expect(row).to_contain_text(", ".join(KEY_PERMISSIONS))
    assert key not in page.locator("#keys-body").inner_text()

    # The new key works against the API, as the identity's key.
    with httpx.Client(base_url=world.api_url, timeout=10, trust_env=False) as client:
        answer = client.get("/v1/principal", headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["identity_id"] == world.identity_a
    new_key_id = row.get_attribute("data-key-id")
    assert new_key_id is not None
    record = world.store.get_root_key(new_key_id)
    assert record is not None
    assert record.identity_id == world.identity_a
    assert sorted(record.permissions) == sorted(KEY_PERMISSIONS)

    # Its use shows in the page once counted: its own chart, and the identity's.
    assert world.api_auth.recorder is not None
    world.api_auth.recorder.flush()
    page.click("#refresh")
    spark = page.locator(f'tr[data-key-id="{new_key_id}"] td.spark-cell')
    expect(spark).to_have_attribute("data-total", "1")
    expect(page.locator(f'tr[data-key-id="{world.key_a_id}"] td.spark-cell')).to_have_attribute(
        "data-total", "0"
    )
    expect(page.locator("#usage-chart .totals")).not_to_have_attribute("data-total", "0")
    _screenshot(page, tmp_path, "portal.png")

    # A reload keeps the session: the cookie is used, no second exchange.
    page.reload()
    expect(page.locator("#app-view")).to_be_visible()
    expect(page.locator("#keys-body tr", has_text="ci-server")).to_be_visible()
    assert len(exchanges) == 1
    expect(page.locator("#new-key")).to_be_hidden()  # the key was shown once, and is gone

    # Revoke it, after a confirmation: the key stops working.
    row = page.locator(f'tr[data-key-id="{new_key_id}"]')
    row.locator("button.revoke").click()
    expect(row).to_contain_text("Revoke this key?")
    assert _status_with(world.api_url, key) == 200  # not yet: only asked
    row.locator("button.confirm-revoke").click()
    expect(row.locator("td.status")).to_have_text("revoked")
    assert _status_with(world.api_url, key) == 401
    assert OTHER_KEY_NAME not in page.content()

    # Log out: the page says so, and the old cookie no longer opens anything.
    old_cookie = _portal_cookie(browser)["value"]
    page.click("#logout")
    expect(page.locator("#message")).to_have_text(LOGGED_OUT)
    expect(page.locator("#app-view")).to_be_hidden()
    with httpx.Client(base_url=world.api_url, timeout=10, trust_env=False) as client:
        after = client.get("/portal/v1/keys", headers={"Cookie": f"authcore_portal={old_cookie}"})
    assert after.status_code == 401
    assert not [c for c in browser.cookies() if c["name"] == "authcore_portal"]
    assert problems == []


def test_a_link_opened_a_second_time_shows_the_plain_expired_message(
    world: World, browser: Any, tmp_path: Path
) -> None:
    expect = _expect()
    link = world.portal_link()
    first = browser.new_page()
    first.goto(link["portal_url"])
    expect(first.locator("#app-view")).to_be_visible()
    first_cookie = _portal_cookie(browser)["value"]

    # The same link again, in a second tab: one sentence, nothing else.
    second = browser.new_page()
    second.goto(link["portal_url"])
    expect(second.locator("#message")).to_have_text(EXPIRED)
    assert second.url == f"{world.api_url}/portal/"
    assert second.locator("main").inner_text().strip() == EXPIRED
    expect(second.locator("#app-view")).to_be_hidden()
    expect(second.locator("#who")).to_be_hidden()
    _screenshot(second, tmp_path, "portal-expired.png")

    # A replayed code ends the session it made: the first tab's cookie is dead too.
    with httpx.Client(base_url=world.api_url, timeout=10, trust_env=False) as client:
        answer = client.get(
            "/portal/v1/keys", headers={"Cookie": f"authcore_portal={first_cookie}"}
        )
    assert answer.status_code == 401
    first.reload()
    expect(first.locator("#message")).to_have_text(EXPIRED)


def test_no_code_and_no_session_shows_the_plain_expired_message(world: World, browser: Any) -> None:
    expect = _expect()
    page = browser.new_page()
    # The 401 of the session check is expected (the browser reports it as a failed load).
    problems = _watch(page, failed_loads=True)
    page.goto(f"{world.api_url}/portal/")
    expect(page.locator("#message")).to_have_text(EXPIRED)
    assert page.locator("main").inner_text().strip() == EXPIRED
    assert problems == []


def test_an_unknown_code_leaves_the_address_bar_before_the_exchange_fails(
    world: World, browser: Any
) -> None:
    # Runs against the exchange the API already has: a well-formed code it never issued.
    expect = _expect()
    page = browser.new_page()
    page.add_init_script(RECORD_FETCHES)
    code = "pc_" + "A" * 43
    page.goto(f"{world.api_url}/portal/#code={code}")
    expect(page.locator("#message")).to_have_text(EXPIRED)
    assert page.url == f"{world.api_url}/portal/"
    fetches = page.evaluate("window.__fetches")
    # One request (the exchange, refused); no session check after a refused code.
    assert [fetch["url"] for fetch in fetches] == ["exchange"]
    assert all(code not in fetch["location"] for fetch in fetches)
    assert not [c for c in browser.cookies() if c["name"] == "authcore_portal"]


def test_the_portal_page_and_its_files_carry_a_strict_policy(world: World) -> None:
    with httpx.Client(base_url=world.api_url, timeout=10, trust_env=False) as client:
        page = client.get("/portal/")
        script = client.get("/portal/static/portal.js")
        style = client.get("/portal/static/portal.css")
        missing = [
            client.get(f"/portal/static/{name}")
            for name in ("index.html", "app.js", "style.css", "portal.js.map", "PORTAL.JS")
        ]
    assert page.status_code == script.status_code == style.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert style.headers["content-type"] == "text/css; charset=utf-8"
    for answer in (page, script, style, *missing):
        for name, value in SECURITY_HEADERS.items():
            assert answer.headers[name] == value, (answer.url, name)
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'self'" in policy
    assert "'unsafe-inline'" not in policy
    assert [answer.status_code for answer in missing] == [404] * len(missing)
    # No inline script or style anywhere in the page: only the two files.
    assert '<script src="static/portal.js" defer></script>' in page.text
    assert "<script>" not in page.text
    assert "style=" not in page.text
    assert "<style" not in page.text


# --- the dashboard's identities view -----------------------------------------------------------


def test_dashboard_lists_identities_and_makes_a_portal_link(
    world: World, browser: Any, tmp_path: Path
) -> None:
    expect = _expect()
    now = time.time()
    # More identities than one page holds: the view pages with next_after.
    for index in range(25):
        world.store.create_identity(
            world.workspace_id, f"customer-z{index:02d}", now=now, actor=OPERATOR_ACTOR
        )
    page = browser.new_page()
    # The dashboard asks for its session before the login: that 401 is expected.
    problems = _watch(page, failed_loads=True)
    page.goto(world.dashboard_url)
    page.fill("#login-user", USER_ID)
    page.fill("#login-password", PASSWORD)
    page.click("#login-submit")
    expect(page.locator("#app-view")).to_be_visible()

    identities = page.locator("#identities-body tr.identity")
    expect(identities).to_have_count(20)
    row = page.locator('#identities-body tr.identity[data-external-id="customer-a"]')
    expect(row.locator("td.external-id")).to_have_text("customer-a")
    expect(row.locator("td.identity-keys")).to_have_text("1")
    expect(row.locator("td.identity-usage")).to_have_text("0")
    page.click("#identities-more")
    expect(identities).to_have_count(27)
    expect(page.locator("#identities-more")).to_be_hidden()

    # Its keys, and only its keys.
    row.locator("button.identity-keys-toggle").click()
    keys = page.locator('tr.keys-row[data-detail-for="customer-a"]')
    expect(keys.locator(f'tr[data-key-id="{world.key_a_id}"]')).to_contain_text("a-reporting")
    assert keys.locator(f'tr[data-key-id="{world.key_b_id}"]').count() == 0

    # The portal link: keys made there may hold the operator's read permissions by default.
    checked = page.locator("#portal-key-permissions input").evaluate_all(
        "bs => bs.filter(b => b.checked).map(b => b.value)"
    )
    assert checked == KEY_PERMISSIONS
    row.locator("button.portal-link-button").click()
    url = page.locator('tr.link-row[data-detail-for="customer-a"] code.portal-url')
    expect(url).to_contain_text("/portal/#code=pc_")
    portal_url = url.inner_text()
    assert portal_url.startswith(f"{world.api_url}/portal/#code=")
    browser.grant_permissions(["clipboard-read", "clipboard-write"], origin=world.dashboard_url)
    link_row = page.locator('tr.link-row[data-detail-for="customer-a"]')
    link_row.locator(".copy-row button").click()
    expect(link_row.locator('.copy-row [role="status"]')).to_have_text("Copied.")
    assert page.evaluate("navigator.clipboard.readText()") == portal_url
    _screenshot(page, tmp_path, "identities.png", "#identities-card")
    assert problems == []

    # The link works once, for customer-a, in the end user's browser.
    portal = browser.new_page()
    portal.goto(portal_url)
    expect(portal.locator("#who-id")).to_have_text("customer-a")
    expect(portal.locator(f'tr[data-key-id="{world.key_a_id}"]')).to_be_visible()
    boxes = portal.locator('#create-permissions input[type="checkbox"]')
    assert boxes.evaluate_all("bs => bs.map(b => b.value)") == KEY_PERMISSIONS
