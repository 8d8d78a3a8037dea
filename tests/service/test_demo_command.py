"""``authcore demo`` (what ``make demo`` runs) as a user sees it: a real process, real ports.

The test starts ``python -m authcore demo`` on a temporary SQLite database, reads the banner,
runs its ready-to-paste ``curl`` lines, logs in to the dashboard with the printed password,
and stops the process with Ctrl-C (SIGINT), which must end it cleanly.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from tests.service.ports import free_ports

pytestmark = pytest.mark.e2e

BANNER_END = "Press Ctrl-C to stop."


def _read_banner(process: subprocess.Popen[str], timeout: float) -> str:
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    banner: list[str] = []
    while True:
        line = lines.get(timeout=timeout)
        if line is None:
            raise AssertionError("authcore demo exited early:\n" + "".join(banner))
        banner.append(line)
        if BANNER_END in line:
            return "".join(banner)


def test_demo_prints_working_curl_lines_and_login(tmp_path: Path) -> None:
    api_port, dashboard_port = free_ports(2)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHCORE_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    process = subprocess.Popen(
        [
            sys.executable, "-m", "authcore", "--db", f"sqlite:///{tmp_path / 'demo.db'}",
            "demo", "--api-port", str(api_port), "--dashboard-port", str(dashboard_port),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        banner = _read_banner(process, timeout=30)
        key = re.search(r"export AUTHCORE_KEY='([^']+)'", banner)
        user = re.search(r"user id:\s+(\S+)", banner)
        password = re.search(r"password:\s+(\S+)", banner)
        assert key is not None, banner
        assert user is not None, banner
        assert password is not None, banner

        # The curl lines, exactly as printed (the "no credential" one must say 401).
        curl_block = banner[banner.index("export AUTHCORE_KEY") : banner.index("Dashboard:")]
        result = subprocess.run(
            ["bash", "-c", "set -euo pipefail\n" + curl_block],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert '"status":"ok"' in result.stdout
        assert '"source":"root_key"' in result.stdout
        assert '"key_id"' in result.stdout
        assert "HTTP/1.1 401" in result.stdout

        dashboard = f"http://127.0.0.1:{dashboard_port}"
        with httpx.Client(base_url=dashboard, timeout=10) as client:
            login = client.post(
                "/login",
                json={"user_id": user[1], "password": password[1]},
                headers={"Sec-Fetch-Site": "same-origin"},
            )
            assert login.status_code == 200
            audit = client.get("/proxy/v1/audit-logs").json()["events"]
            assert audit[0]["action"] == "key.create"  # the key the curl lines created

        _check_portal_and_docs(banner, env, tmp_path / "demo.db")
    finally:
        process.send_signal(signal.SIGINT)
        try:
            _, err = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            _, err = process.communicate()
    assert process.returncode == 0, err
    assert "Traceback" not in err
    assert key[1] not in err


def _check_portal_and_docs(banner: str, env: dict[str, str], db: Path) -> None:
    """The banner's portal command, as printed, gives a link whose code opens a session on
    the customer's own key; the API reference it names is served."""
    command = banner[banner.index("authcore portal create-session") : banner.index("API reference")]
    made = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + command],
        capture_output=True,
        text=True,
        env={**env, "AUTHCORE_DB": f"sqlite:///{db}"},
        timeout=60,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    link = re.search(r"portal link: (http://\S+)/portal/#code=(\S+)", made.stdout)
    assert link is not None, made.stdout
    with httpx.Client(base_url=link[1], timeout=10) as browser:
        exchanged = browser.post(
            "/portal/exchange", json={"code": link[2]}, headers={"Sec-Fetch-Site": "same-origin"}
        )
        assert exchanged.status_code == 200, exchanged.text
        keys = browser.get("/portal/v1/keys").json()["keys"]
        assert [key["name"] for key in keys] == ["customer-1's first key"]
        docs = re.search(r"API reference: (http://\S+)", banner)
        assert docs is not None, banner
        assert browser.get(docs[1]).status_code == 200
