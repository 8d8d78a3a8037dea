"""``authcore serve --metrics-port``: a real server process, real requests, a real scrape.

The store is set up with the command line (a workspace allowed 2 requests a minute and a key),
then ``python -m authcore serve`` runs with the metrics port; the test scrapes ``/metrics`` over
HTTP before and after a known set of requests and checks that each counter moved by exactly
what those requests mean.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from authcore.cli import main
from tests.adapters.world import UNKNOWN_KEY
from tests.service.ports import free_ports
from tests.service.servers import process_server

pytestmark = pytest.mark.e2e

START_TIMEOUT = 60.0

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _cli(capsys: pytest.CaptureFixture[str], db: str, *argv: str) -> dict[str, str]:
    assert main(["--db", db, *argv, "--json"]) == 0
    result: dict[str, str] = json.loads(capsys.readouterr().out)
    return result


@contextlib.contextmanager
def serving(
    db: str, tmp_path: Path, *extra: str, env: dict[str, str] | None = None
) -> Iterator[str]:
    """Run ``authcore serve`` with ``extra`` arguments; yield the API's base URL."""
    (port,) = free_ports(1)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AUTHCORE_")}
    argv = [sys.executable, "-m", "authcore", "--db", db, "serve", "--port", str(port), *extra]
    with process_server(
        argv, port, cwd=tmp_path, env={**clean, **(env or {})}, ready_path="/healthz",
        name="authcore serve", timeout=START_TIMEOUT,
    ) as server:  # fmt: skip
        yield server.url
    assert server.returncode == 0, server.stderr
    assert "Traceback" not in server.stderr


def scrape(url: str) -> Samples:
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if sample.name.startswith("authcore_") and not sample.name.endswith("_created")
    }


def moved(before: Samples, after: Samples) -> Samples:
    """Every series that changed, by how much (counters and histogram counts only)."""
    return {
        key: value - before.get(key, 0.0)
        for key, value in after.items()
        if value != before.get(key, 0.0) and not key[0].endswith(("_sum", "_bucket"))
    }


def test_serve_exposes_prometheus_metrics_that_count_real_requests(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"sqlite:///{tmp_path / 'authcore.db'}"
    workspace = _cli(capsys, db, "workspace", "create", "--name", "m", "--rate-limit", "2/60")
    key = _cli(
        capsys, db, "keys", "create", "--workspace", workspace["workspace_id"],
        "--permission", "keys.read",
    )["key"]  # fmt: skip
    (metrics_port,) = free_ports(1)
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    env = {"AUTHCORE_METRICS_PORT": str(metrics_port)}  # the flag's environment twin
    with serving(db, tmp_path, env=env) as api, httpx.Client(base_url=api, timeout=10) as client:
        before = scrape(metrics_url)
        auth = {"Authorization": f"Bearer {key}"}
        statuses = [
            client.get("/healthz").status_code,  # public: no auth step
            client.get("/v1/keys", headers=auth).status_code,  # full flow (cache miss)
            client.get("/v1/keys", headers=auth).status_code,  # replayed (cache hit)
            client.get("/v1/keys", headers=auth).status_code,  # third in a minute: 429
            client.get("/v1/keys").status_code,
            client.get("/v1/keys", headers={"Authorization": f"Bearer {UNKNOWN_KEY}"}).status_code,
        ]
        after = scrape(metrics_url)
        assert (
            httpx.get(metrics_url.removesuffix("metrics") + "other", timeout=10).status_code == 404
        )
    assert statuses == [200, 200, 200, 429, 401, 401]
    assert moved(before, after) == {
        ("authcore_auth_outcomes_total", (("code", "admitted"), ("source", "root_key"))): 2,
        ("authcore_auth_outcomes_total", (("code", "rate_limited"), ("source", "root_key"))): 1,
        ("authcore_auth_outcomes_total", (("code", "credential_missing"), ("source", ""))): 1,
        (
            "authcore_auth_outcomes_total",
            (("code", "credential_invalid"), ("source", "root_key")),
        ): 1,
        ("authcore_rate_limit_decisions_total", (("decision", "allowed"),)): 2,
        ("authcore_rate_limit_decisions_total", (("decision", "limited"),)): 1,
        ("authcore_verified_results_total", (("cache", "miss"),)): 1,
        ("authcore_verified_results_total", (("cache", "hit"),)): 1,
        ("authcore_auth_seconds_count", (("result", "admitted"),)): 2,
        ("authcore_auth_seconds_count", (("result", "refused"),)): 3,
        ("authcore_requests_total", (("status", "200"),)): 3,
        ("authcore_requests_total", (("status", "429"),)): 1,
        ("authcore_requests_total", (("status", "401"),)): 2,
        ("authcore_request_seconds_count", ()): 6,
    }
    # The API's own port serves no metrics; nothing in them names a workspace.
    assert not any("workspace" in dict(labels) for _, labels in after)


def test_serve_metrics_host_and_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = f"sqlite:///{tmp_path / 'authcore.db'}"
    _cli(capsys, db, "init")
    (metrics_port,) = free_ports(1)
    extra = ("--metrics-port", str(metrics_port), "--metrics-host", "localhost")
    with serving(db, tmp_path, *extra) as api:
        assert httpx.get(f"{api}/metrics", timeout=10).status_code == 401  # the API's port
        metrics = httpx.get(f"http://localhost:{metrics_port}/metrics", timeout=10)
    assert metrics.status_code == 200
    assert "authcore_auth_outcomes_total" in metrics.text


def test_metrics_without_prometheus_client_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "authcore.adapters.prometheus", raising=False)
    db = f"sqlite:///{tmp_path / 'authcore.db'}"
    assert main(["--db", db, "serve", "--port", "1", "--metrics-port", "2"]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert errors == [
        "authcore: error: authcore.adapters.prometheus needs prometheus_client, authcore's "
        "'prometheus' extra: in a clone of authcore, pip install -e '.[prometheus]' "
        "(authcore-auth is not on PyPI yet, and 'pip install authcore' is an unrelated project)"
    ]


def test_a_bad_metrics_port_in_the_environment_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTHCORE_METRICS_PORT", "99999")
    db = f"sqlite:///{tmp_path / 'authcore.db'}"
    assert main(["--db", db, "serve"]) == 2
    assert "TCP port" in capsys.readouterr().err
