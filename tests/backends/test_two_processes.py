"""Two API processes sharing PostgreSQL and Redis, as a deployment with many workers runs.

- A key revoked through one process is rejected by the other within the documented bound.
  Each process caches verified keys for 10 minutes, so a rejection within seconds can only
  come from the Redis pub/sub invalidation, which is the bound ``docs/backends.md`` documents.
- One workspace rate limit holds across both processes: exactly ``limit`` requests admitted.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import redis

from authcore.backends.postgres import PostgresStore
from authcore.ratelimit import RateLimitPolicy
from authcore.records import OPERATOR_ACTOR

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
START_DEADLINE = 30.0
# Pub/sub delivery is milliseconds; the deadline only bounds a broken run.
INVALIDATION_DEADLINE = 15.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_DEADLINE
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"API process exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/ready", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("API process did not start")


@pytest.fixture
def deployment(postgres_url: str, redis_url: str) -> Iterator[tuple[PostgresStore, list[str]]]:
    schema = f"mp_{uuid.uuid4().hex[:12]}"
    namespace = f"authcore:test:{uuid.uuid4().hex[:12]}"
    store = PostgresStore(postgres_url, schema=schema)
    env = {
        **os.environ,
        "AUTHCORE_MP_POSTGRES": postgres_url,
        "AUTHCORE_MP_SCHEMA": schema,
        "AUTHCORE_MP_REDIS": redis_url,
        "AUTHCORE_MP_NAMESPACE": namespace,
        "PYTHONPATH": str(ROOT),
    }
    processes: list[subprocess.Popen[bytes]] = []
    urls: list[str] = []
    try:
        for _ in range(2):
            port = _free_port()
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "tests.backends.multiprocess_api", str(port)],
                    cwd=ROOT,
                    env=env,
                )
            )
            urls.append(f"http://127.0.0.1:{port}")
        for url, process in zip(urls, processes, strict=True):
            _wait_ready(url, process)
        yield store, urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        store.close()
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        client = redis.Redis.from_url(redis_url)
        for key in client.scan_iter(f"{namespace}*"):
            client.delete(key)
        client.close()


def _get(url: str, key: str) -> int:
    return httpx.get(f"{url}/whoami", headers={"Authorization": f"Bearer {key}"}).status_code


def test_key_revoked_in_one_process_is_rejected_by_the_other(
    deployment: tuple[PostgresStore, list[str]],
) -> None:
    store, (first, second) = deployment
    now = time.time()
    workspace = store.create_workspace("mp", now=now, actor=OPERATOR_ACTOR)
    created = store.create_root_key(
        workspace.id, permissions=["keys.revoke"], now=now, actor=OPERATOR_ACTOR
    )
    assert created is not None
    key = created.key.reveal()
    # Both processes verify the key and now hold it in their (10-minute) caches.
    assert _get(first, key) == 200
    assert _get(second, key) == 200

    response = httpx.delete(
        f"{first}/keys/{created.record.id}", headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 204
    assert _get(first, key) == 401  # in-process invalidation: at once

    deadline = time.monotonic() + INVALIDATION_DEADLINE
    status = _get(second, key)
    while status == 200 and time.monotonic() < deadline:
        time.sleep(0.05)
        status = _get(second, key)
    assert status == 401


def test_one_workspace_limit_holds_across_both_processes(
    deployment: tuple[PostgresStore, list[str]],
) -> None:
    store, urls = deployment
    now = time.time()
    workspace = store.create_workspace(
        "mp-limited",
        rate_limit=RateLimitPolicy(limit=10, period=3600),
        now=now,
        actor=OPERATOR_ACTOR,
    )
    created = store.create_root_key(workspace.id, permissions=[], now=now, actor=OPERATOR_ACTOR)
    assert created is not None
    key = created.key.reveal()
    statuses = [_get(urls[i % 2], key) for i in range(16)]
    assert statuses.count(200) == 10
    assert statuses.count(429) == 6
