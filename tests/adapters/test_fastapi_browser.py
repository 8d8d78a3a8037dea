"""FastAPI's /docs in a real headless browser: Authorize with a root key, then "Try it out".

The example service (examples/fastapi_app.py) runs under uvicorn on 127.0.0.1 as its docstring
says, with a key the command line made (tests/adapters/example_servers.py). Swagger UI's page
loads its script and stylesheet from a CDN; the browser gets the same Swagger UI 5 files from
the fastapi-offline package instead, and every other address off this machine is refused, so
the test needs no network.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.adapters.example_servers import make_setup, running
from tests.browser import CHROMIUM_ARGS, chromium_or_skip

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

SWAGGER_UI = Path(str(files("fastapi_offline") / "static"))
SWAGGER_FILES = {"swagger-ui-bundle.js", "swagger-ui.css"}
OPERATION = "#operations-default-list_keys_keys_get"


def test_authorize_with_a_root_key_then_try_it_out_gets_200(tmp_path: Path) -> None:
    chromium = chromium_or_skip()
    sync_api = pytest.importorskip("playwright.sync_api")
    setup = make_setup(tmp_path)
    refused: list[str] = []

    def offline(route: Any) -> None:
        url = urlsplit(route.request.url)
        name = url.path.rsplit("/", 1)[-1]
        if url.hostname == "127.0.0.1":
            route.continue_()
        elif url.path.startswith("/npm/swagger-ui-dist@5/") and name in SWAGGER_FILES:
            route.fulfill(path=str(SWAGGER_UI / name))
        else:
            refused.append(route.request.url)
            route.abort()

    with (
        running("fastapi-uvicorn", setup) as server,
        sync_api.sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = browser.new_context(viewport={"width": 1200, "height": 1000})
            context.set_default_timeout(10_000)
            context.route("**/*", offline)
            page = context.new_page()
            page.goto(f"{server.url}/docs")
            operation = page.locator(OPERATION)
            status = operation.locator(".live-responses-table tbody .response-col_status").first

            # Without authorizing, "Try it out" gets the middleware's 401.
            operation.locator(".opblock-summary").click()
            operation.locator("button.try-out__btn").click()
            operation.locator("button.execute").click()
            sync_api.expect(status).to_have_text("401")

            # Authorize: the dialog offers the Bearer scheme the dependency declared.
            page.locator(".auth-wrapper button.authorize").click()
            dialog = page.locator(".modal-ux")
            sync_api.expect(dialog).to_contain_text("RootKeyOrJWT")
            dialog.locator("input").fill(setup.keys["reader"])
            dialog.locator("button.authorize").click()
            dialog.locator("button.btn-done").click()

            operation.locator("button.execute").click()
            sync_api.expect(status).to_have_text("200")
            body = operation.locator(".live-responses-table tbody .response-col_description").first
            sync_api.expect(body).to_contain_text(setup.workspace)
            page.screenshot(path=str(tmp_path / "docs.png"), full_page=True)
        finally:
            browser.close()
    assert all(urlsplit(url).hostname != "127.0.0.1" for url in refused)
