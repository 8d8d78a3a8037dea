"""Headless chromium for browser tests: Debian's ``/usr/bin/chromium``, driven by Playwright.

Every browser test launches it from here (same flags, same rule): outside CI a missing
chromium skips with the reason; with ``CI=true`` it fails. Playwright only drives the system
browser; nothing is downloaded.
"""

from __future__ import annotations

import os
import shutil

import pytest

CHROMIUM = os.environ.get("AUTHCORE_TEST_CHROMIUM", "/usr/bin/chromium")
IN_CI = os.environ.get("CI", "").lower() == "true"
# Without the background-networking flags chromium keeps dialling out of this closed network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_or_skip() -> str:
    """Return the chromium executable; skip (outside CI) or fail (in CI) without one."""
    path = shutil.which(CHROMIUM) or (CHROMIUM if os.access(CHROMIUM, os.X_OK) else None)
    if path is None:
        reason = f"chromium not found at {CHROMIUM} (apt install chromium)"
        if IN_CI:
            pytest.fail(f"{reason}; with CI=true this is a failure, not a skip")
        pytest.skip(reason)
    return path
