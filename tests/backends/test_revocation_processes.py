"""A credential ended in one process is refused by every other within the bound, without Redis.

Real processes, as a quickstart deployment runs: ``authcore serve`` (one process, wired with
``connect()``, its verification cache keeping keys 30 s) holds a credential hot; the command
line, another process with no cache and no Redis, ends it; the server must refuse it within
:data:`authcore.backends.outbox.REVOCATION_BOUND` (plus a margin for a loaded machine), far
inside the cache's lifetime, so the refusal can only have come through the store's outbox.
On SQLite and on PostgreSQL, for a key revocation, a workspace disable and a portal logout.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import authcore
from authcore.backends.outbox import REVOCATION_BOUND
from authcore.records import OPERATOR_ACTOR
from authcore.tokens import digest
from tests.service.ports import free_ports
from tests.service.servers import authcore_env, process_server

pytestmark = [pytest.mark.e2e]

# Room for a loaded (shared, two-core) test machine; the bound itself is measured by
# benchmarks/bench_scale.py (scale.revocation.*), not asserted here.
MARGIN = 3.0
SRC = str(Path(authcore.__file__).resolve().parents[1])


class Deployment:
    """A running ``authcore serve`` on one database, and a store of the test's own on it."""

    def __init__(self, url: str, env: dict[str, str], store: Any) -> None:
        self.url = url
        self.env = env
        self.store = store

    def cli(self, *args: str) -> dict[str, Any]:
        """Run ``authcore ARGS --json`` in a process of its own; return its document."""
        done = subprocess.run(
            [sys.executable, "-m", "authcore", *args, "--json"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    def status(self, path: str, token: str) -> int:
        headers = {"Authorization": f"Bearer {token}"}
        return httpx.get(self.url + path, headers=headers, timeout=10).status_code

    def refused_within_bound(self, path: str, token: str, allowed: int = 200) -> int:
        """Poll until the answer is no longer ``allowed``; give up at the bound plus margin."""
        deadline = time.monotonic() + REVOCATION_BOUND + MARGIN
        status = self.status(path, token)
        while status == allowed and time.monotonic() < deadline:
            time.sleep(0.02)
            status = self.status(path, token)
        return status


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    if request.param == "sqlite":
        from authcore.backends.sqlite import SQLiteStore

        db = f"sqlite:///{tmp_path / 'authcore.db'}"
        store: Any = SQLiteStore(tmp_path / "authcore.db")
    else:
        from authcore.backends.postgres import PostgresStore

        db = request.getfixturevalue("fresh_postgres_database")
        store = PostgresStore(db)
    env = authcore_env({"AUTHCORE_DB": db, "HOME": str(tmp_path), "PYTHONPATH": SRC})
    (port,) = free_ports(1)
    argv = [sys.executable, "-m", "authcore", "serve", "--port", str(port)]
    try:
        with process_server(
            argv, port, cwd=tmp_path, env=env, ready_path="/healthz", name="authcore serve"
        ) as server:
            yield Deployment(server.url, env, store)
    finally:
        store.close()


def _hot_key(deployment: Deployment) -> tuple[str, str, str]:
    store = deployment.store
    workspace = store.create_workspace("hot", now=time.time(), actor=OPERATOR_ACTOR)
    created = store.create_root_key(
        workspace.id, permissions=["keys.read"], now=time.time(), actor=OPERATOR_ACTOR
    )
    key = created.key.reveal()
    for _ in range(3):  # verified, then replayed from the server's cache
        assert deployment.status("/v1/principal", key) == 200
    return workspace.id, created.record.id, key


def test_a_key_revoked_by_the_command_line_is_refused_within_the_bound(
    deployment: Deployment,
) -> None:
    _, key_id, key = _hot_key(deployment)
    revoked = deployment.cli("keys", "revoke", key_id)
    assert revoked["other_processes_may_accept_for_seconds"] == REVOCATION_BOUND
    assert revoked["invalidated_through"] == ["database"]
    assert deployment.refused_within_bound("/v1/principal", key) == 401


def test_a_workspace_disabled_by_the_command_line_is_refused_within_the_bound(
    deployment: Deployment,
) -> None:
    workspace_id, _, key = _hot_key(deployment)
    deployment.cli("workspace", "disable", workspace_id)
    assert deployment.refused_within_bound("/v1/principal", key) == 403


def test_a_portal_session_revoked_by_the_command_line_is_refused_within_the_bound(
    deployment: Deployment,
) -> None:
    store = deployment.store
    now = time.time()
    workspace = store.create_workspace("portal", now=now, actor=OPERATOR_ACTOR)
    pending = store.create_portal_exchange(
        workspace.id, "customer-1", permissions=["keys.read"], ttl=3600, now=now,
        actor=OPERATOR_ACTOR,
    )  # fmt: skip
    started = store.exchange_portal_code(digest(pending.code.reveal()), now=now)
    token = started.token.reveal()
    for _ in range(3):
        assert deployment.status("/portal/v1/principal", token) == 200
    deployment.cli("portal", "revoke-session", pending.record.id)
    assert deployment.refused_within_bound("/portal/v1/principal", token) == 401
