"""Finding 3: the per-client login budget trusted ``X-Forwarded-For``.

uvicorn believes ``X-Forwarded-For`` and ``X-Forwarded-Proto`` on connections from 127.0.0.1
unless told otherwise, so rotating the header reset the dashboard's budget of 30 login attempts
per client address. The servers of the command line now believe those headers only from the
proxies named with ``--trusted-proxy`` (or ``AUTHCORE_TRUSTED_PROXIES``). These tests run
``authcore dashboard`` as a real process and talk to it over HTTP.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from authcore.service.runner import server_config
from tests.service.servers import authcore_env, authcore_server

pytestmark = pytest.mark.e2e

PER_CLIENT_BUDGET = 30  # dashboard.py: _LOGIN_PER_CLIENT
SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}


@contextmanager
def dashboard(
    tmp_path: Path, args: Sequence[str] = (), env: dict[str, str] | None = None
) -> Iterator[str]:
    """Run ``authcore dashboard`` as a process; yield its URL."""
    with authcore_server(tmp_path / "fwd.db", "dashboard", args, env=env) as url:
        yield url


def _attempt(client: httpx.Client, number: int, forwarded_for: str) -> int:
    # A new user id each time: only the per-client budget (not the per-user one) can refuse.
    response = client.post(
        "/login",
        json={"user_id": f"nobody-{number}", "password": "guess"},
        headers={**SAME_ORIGIN, "X-Forwarded-For": forwarded_for},
    )
    return response.status_code


def _until_refused(client: httpx.Client, forwarded_for: Callable[[int], str]) -> list[int]:
    """Attempt logins until one is refused with 429; a few more than the budget at most.

    The budget refills one attempt every two seconds, so a slow run may need a few extra.
    """
    statuses: list[int] = []
    for number in range(PER_CLIENT_BUDGET + 15):
        statuses.append(_attempt(client, number, forwarded_for(number)))
        if statuses[-1] == 429:
            break
    return statuses


def test_finding_3_rotating_x_forwarded_for_does_not_reset_the_budget(tmp_path: Path) -> None:
    with dashboard(tmp_path) as url, httpx.Client(base_url=url, timeout=10) as client:
        statuses = _until_refused(client, lambda n: f"203.0.113.{n}")
    assert statuses[-1] == 429
    assert statuses.count(401) >= PER_CLIENT_BUDGET


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--trusted-proxy", "127.0.0.1"], None),
        ([], {"AUTHCORE_TRUSTED_PROXIES": "10.9.9.9, 127.0.0.0/8"}),
    ],
    ids=["flag", "environment"],
)
def test_finding_3_a_named_proxy_is_believed(
    tmp_path: Path, args: list[str], env: dict[str, str] | None
) -> None:
    with dashboard(tmp_path, args, env) as url, httpx.Client(base_url=url, timeout=10) as client:
        # The client the proxy names spends its own budget ...
        statuses = _until_refused(client, lambda _: "203.0.113.7")
        # ... and another client behind the same proxy still has all of its own.
        other = _attempt(client, 1000, "198.51.100.8")
    assert statuses[-1] == 429
    assert other == 401


def _add_user(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable, "-m", "authcore", "--db", f"sqlite:///{tmp_path / 'fwd.db'}",
            "dashboard-user", "add", "--user-id", "alice", "--org", "org_a",
            "--password-stdin", "--permission", "keys.read",
        ],
        input="a long passphrase\n",
        cwd=tmp_path,
        env=authcore_env(),
        check=True,
        capture_output=True,
        text=True,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "secure"), [([], False), (["--trusted-proxy", "127.0.0.1"], True)]
)
def test_x_forwarded_proto_is_believed_only_from_a_named_proxy(
    tmp_path: Path, args: list[str], secure: bool
) -> None:
    _add_user(tmp_path)
    with dashboard(tmp_path, args) as url, httpx.Client(base_url=url, timeout=10) as client:
        response = client.post(
            "/login",
            json={"user_id": "alice", "password": "a long passphrase"},
            headers={**SAME_ORIGIN, "X-Forwarded-Proto": "https"},
        )
    assert response.status_code == 200
    cookie = response.headers["set-cookie"].lower()
    assert ("; secure" in cookie) is secure


def test_the_servers_trust_no_proxy_headers_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "*")  # uvicorn's own knob must not matter
    plain = server_config(Starlette())
    assert plain.proxy_headers is False
    trusting = server_config(Starlette(), ["10.0.0.0/8"])
    assert trusting.proxy_headers is True
    assert trusting.forwarded_allow_ips == ["10.0.0.0/8"]


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["dashboard", "--trusted-proxy", "proxy.example"], {}),
        (["serve", "--trusted-proxy", "10.0.0.300"], {}),
        (["demo"], {"AUTHCORE_TRUSTED_PROXIES": "10.0.0.1,nonsense"}),
    ],
)
def test_a_trusted_proxy_that_is_not_an_address_is_a_usage_error(
    tmp_path: Path, args: list[str], env: dict[str, str]
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "authcore", "--db", f"sqlite:///{tmp_path / 'x.db'}", *args],
        cwd=tmp_path,
        env=authcore_env(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("authcore: ")
