"""examples/django_app as its users run it: a real uvicorn or waitress process on loopback.

The test writes two root keys into a fresh SQLite file with the store's own API, starts the
example project on its ASGI or WSGI entry point in a subprocess, and asks it what a client
would: the public health check, a refusal, an admitted request with its rate-limit headers
and its log line, and the DRF view's permission check.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from authcore.backends.sqlite import SQLiteStore
from authcore.records import OPERATOR_ACTOR
from tests.service.ports import free_ports
from tests.service.servers import process_server

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0

#: server -> how to run it on a port
COMMANDS = {
    "uvicorn": lambda port: [
        *("-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"),
        "examples.django_app.asgi:application",
    ],
    "waitress": lambda port: [
        *("-m", "waitress", f"--listen=127.0.0.1:{port}"),
        "examples.django_app.wsgi:application",
    ],
}


def _keys(path: Path) -> dict[str, str]:
    with SQLiteStore(path) as store:
        now = time.time()
        workspace = store.create_workspace("example", now=now, actor=OPERATOR_ACTOR)
        keys = {}
        for name, permissions in {
            "full": ["keys.read", "audit.read"],
            "keys": ["keys.read"],
        }.items():
            created = store.create_root_key(
                workspace.id, permissions=permissions, name=name, now=now, actor=OPERATOR_ACTOR
            )
            assert created is not None
            keys[name] = created.key.reveal()
        keys["workspace"] = workspace.id
        return keys


@contextmanager
def running(server: str, db: Path, output: list[str]) -> Iterator[str]:
    """Run the example under ``server``; yield its base URL; put its stderr in ``output``."""
    (port,) = free_ports(1)
    env = {**os.environ, "AUTHCORE_DB_PATH": str(db)}
    env.pop("DJANGO_SETTINGS_MODULE", None)  # the entry point names the example's own
    argv = [sys.executable, *COMMANDS[server](port)]
    started = None
    try:
        with process_server(
            argv, port, cwd=ROOT, env=env, ready_path="/health", name="the example",
            timeout=START_TIMEOUT,
        ) as started:  # fmt: skip
            yield started.url
    finally:
        if started is not None:
            output.append(started.stderr)


@pytest.mark.parametrize("server", sorted(COMMANDS))
def test_django_example_serves_plain_and_drf_views_behind_the_gate(
    server: str, tmp_path: Path
) -> None:
    keys = _keys(tmp_path / "authcore.db")
    full = {"Authorization": f"Bearer {keys['full']}"}
    narrow = {"Authorization": f"Bearer {keys['keys']}"}
    output: list[str] = []
    with (
        running(server, tmp_path / "authcore.db", output) as base_url,
        httpx.Client(base_url=base_url, timeout=10) as client,
    ):
        health = client.get("/health")
        anonymous = client.get("/keys")
        listed = client.get("/keys", headers=full)
        counted = client.get("/api/key-count", headers=full)
        denied = client.get("/api/key-count", headers=narrow)
        missing = client.get("/nowhere")
    assert health.json() == {"ok": True}
    assert "ratelimit-policy" not in health.headers
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == 'Bearer realm="api"'
    assert anonymous.headers["content-type"] == "application/problem+json"
    assert listed.status_code == 200
    assert listed.json() == {"workspace_id": keys["workspace"]}
    assert listed.headers["ratelimit-policy"] == '"workspace";q=600;w=60'
    assert counted.status_code == 200
    assert counted.json()["workspace_id"] == keys["workspace"]
    assert counted.json()["caller"].startswith("root_key:")
    assert denied.status_code == 403
    assert denied.json()["code"] == "permission_denied"
    assert missing.status_code == 401  # a 404 only for callers with a key
    (err,) = output
    assert f"INFO [{keys['workspace']}] listing keys" in err.splitlines()
    assert "Traceback" not in err
    assert keys["full"] not in err
