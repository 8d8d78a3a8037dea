"""``authcore serve --workers N --redis``: many processes behind one port, one rate limit.

Real worker processes (uvicorn's supervisor) on a loopback port, a database of their own on
PostgreSQL, and Redis: a single server and a real 3-node Cluster. 400 concurrent requests on
fresh connections against a limit of 100 get exactly 100 admitted, whichever worker took
each; a key revoked with the command line is refused by every worker at once; SIGTERM stops
them all gracefully.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from authcore.backends.postgres import PostgresStore
from tests.backends.redis_topologies import redis_cluster
from tests.backends.test_redis import Relay
from tests.service.ports import free_ports

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]

WORKERS = 4


def authcore(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "authcore", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def environment(tmp_path: Path, db: str, redis: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHCORE_")}
    env.update(AUTHCORE_DB=db, AUTHCORE_REDIS=redis, HOME=str(tmp_path))
    return env


def key_with_limit(env: dict[str, str], limit: str) -> tuple[str, str]:
    workspace = authcore(env, "workspace", "create", "--name", "w", "--rate-limit", limit, "--json")
    assert workspace.returncode == 0, workspace.stderr
    created = authcore(
        env,
        "keys",
        "create",
        "--workspace",
        json.loads(workspace.stdout)["workspace_id"],
        "--permission",
        "keys.read",
        "--json",
    )
    assert created.returncode == 0, created.stderr
    data = json.loads(created.stdout)
    return data["key"], data["key_id"]


class Service:
    def __init__(self, process: subprocess.Popen[str], url: str) -> None:
        self.process = process
        self.url = url


def start(tmp_path: Path, env: dict[str, str]) -> Iterator[Service]:
    (port,) = free_ports(1)
    workers = env.get("AUTHCORE_WORKERS", str(WORKERS))
    process = subprocess.Popen(
        [sys.executable, "-m", "authcore", "serve", "--port", str(port), "--workers", workers],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"serve exited: {process.stderr.read() if process.stderr else ''}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield Service(process, url)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        # Read what is left and close the pipes (a test may have read them already).
        with contextlib.suppress(ValueError):
            process.communicate()


async def statuses(url: str, key: str, count: int, concurrency: int = 50) -> list[int]:
    """``count`` requests, each on a fresh connection (so they spread over the workers)."""
    gate = asyncio.Semaphore(concurrency)

    async def one() -> int:
        async with gate, httpx.AsyncClient(timeout=30) as client:
            response = await client.get(
                f"{url}/v1/principal", headers={"Authorization": f"Bearer {key}"}
            )
            return response.status_code

    return list(await asyncio.gather(*(one() for _ in range(count))))


@pytest.fixture
def single_redis(redis_url: str) -> str:
    return redis_url


@pytest.fixture
def cluster_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_cluster(tmp_path_factory.mktemp("cluster")) as ports:
        yield "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in ports)


@pytest.mark.parametrize("redis", ["single_redis", "cluster_redis"])
def test_four_workers_admit_exactly_the_limit_and_refuse_a_revoked_key_at_once(
    redis: str, request: pytest.FixtureRequest, tmp_path: Path, fresh_postgres_database: str
) -> None:
    env = environment(tmp_path, fresh_postgres_database, request.getfixturevalue(redis))
    assert authcore(env, "init").returncode == 0
    limited, _ = key_with_limit(env, "100/3600")
    hot, hot_id = key_with_limit(env, "1000000/1")
    for service in start(tmp_path, env):
        codes = asyncio.run(statuses(service.url, limited, 400))
        assert codes.count(200) == 100
        assert codes.count(429) == 300
        # Hot on every worker, then revoked by another process (the command line publishes).
        assert set(asyncio.run(statuses(service.url, hot, 80))) == {200}
        revoked = authcore(env, "keys", "revoke", hot_id)
        assert revoked.returncode == 0, revoked.stderr
        refused = False
        for _ in range(50):  # at most ~10 s; each worker's cache would keep the key 30 s
            if set(asyncio.run(statuses(service.url, hot, 40))) == {401}:
                refused = True
                break
            time.sleep(0.2)
        assert refused
        service.process.send_signal(signal.SIGTERM)
        _, stderr = service.process.communicate(timeout=30)
        assert service.process.returncode == 0
        assert "Traceback" not in stderr


async def mixed(url: str, requests: list[str | None], concurrency: int = 20) -> list[int]:
    """One request per entry (a bearer token, or None for no credential), fresh connections."""
    gate = asyncio.Semaphore(concurrency)

    async def one(token: str | None) -> int:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        async with gate, httpx.AsyncClient(timeout=30) as client:
            return (await client.get(f"{url}/v1/principal", headers=headers)).status_code

    return list(await asyncio.gather(*(one(token) for token in requests)))


def test_usage_counts_add_up_exactly_across_two_workers(
    tmp_path: Path, fresh_postgres_database: str, redis_url: str
) -> None:
    env = environment(tmp_path, fresh_postgres_database, redis_url)
    assert authcore(env, "init").returncode == 0
    limited, limited_id = key_with_limit(env, "20/3600")
    disabled, disabled_id = key_with_limit(env, "1000/1")
    with PostgresStore(fresh_postgres_database) as store:
        limited_ws = store.get_root_key(limited_id).workspace_id  # type: ignore[union-attr]
        disabled_ws = store.get_root_key(disabled_id).workspace_id  # type: ignore[union-attr]
    assert authcore(env, "workspace", "disable", disabled_ws).returncode == 0
    bogus = "ak_" + "x" * 43
    requests: list[str | None] = [limited] * 30 + [disabled] * 5 + [bogus] * 6 + [None] * 4
    env["AUTHCORE_WORKERS"] = "2"
    for service in start(tmp_path, env):
        codes = asyncio.run(mixed(service.url, requests))
        assert sorted(codes) == sorted([200] * 20 + [429] * 10 + [403] * 5 + [401] * 10)
        # Graceful stop: each worker flushes what it counted since its last flush.
        service.process.send_signal(signal.SIGTERM)
        service.process.communicate(timeout=30)
        assert service.process.returncode == 0
    now = int(time.time())
    window = ["--since", str(now - 3600), "--until", str(now + 3600), "--json"]
    shown = authcore(env, "usage", "--workspace", limited_ws, "--key", limited_id, *window)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["totals"] == {"allowed": 20, "rate_limited": 10}
    shown = authcore(env, "usage", "--workspace", disabled_ws, *window)
    assert json.loads(shown.stdout)["totals"] == {"workspace_disabled": 5}
    with PostgresStore(fresh_postgres_database) as store:
        unknown = store.usage("", since=now - 3600, until=now + 3600, granularity="day")
        assert {u.outcome: u.count for u in unknown} == {
            "credential_invalid": 6,
            "credential_missing": 4,
        }
        assert set(store.last_used(limited_ws)) == {limited_id}
        assert store.last_used(disabled_ws) == {}


def test_more_than_one_worker_needs_redis(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHCORE_")}
    env["AUTHCORE_DB"] = f"sqlite:///{tmp_path / 'a.db'}"
    result = authcore(env, "serve", "--workers", "2")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "--workers above 1 needs --redis" in result.stderr


@pytest.mark.parametrize(("policy", "while_down"), [("refuse", 503), ("local", 200)])
def test_redis_going_away_gets_the_policy_and_the_service_recovers_by_itself(
    policy: str, while_down: int, tmp_path: Path, fresh_postgres_database: str, redis_url: str
) -> None:
    parts = urlsplit(redis_url)
    relay = Relay((parts.hostname or "127.0.0.1", parts.port or 6379))
    relay.start()
    try:
        relayed = parts._replace(netloc=f"127.0.0.1:{relay.port}").geturl()
        env = environment(tmp_path, fresh_postgres_database, relayed)
        env["AUTHCORE_REDIS_DOWN"] = policy
        assert authcore(env, "init").returncode == 0
        key, _ = key_with_limit(env, "1000000/1")
        env["AUTHCORE_WORKERS"] = "2"
        for service in start(tmp_path, env):
            assert set(asyncio.run(statuses(service.url, key, 10))) == {200}
            relay.stop()  # Redis gone, as far as the service can tell
            down = asyncio.run(statuses(service.url, key, 10))
            assert set(down) == {while_down}
            relay.start()  # the same port again: no restart of the service
            recovered = False
            for _ in range(50):
                if set(asyncio.run(statuses(service.url, key, 10))) == {200}:
                    recovered = True
                    break
                time.sleep(0.2)
            assert recovered
    finally:
        relay.stop()
