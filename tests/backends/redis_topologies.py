"""Real Redis deployments on loopback for tests: a 3-node Cluster and a Sentinel-watched pair.

Each starts ``redis-server`` processes of its own on free 127.0.0.1 ports (nothing on disk
but their scratch directory), waits until the topology is ready, and stops them afterwards.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.conftest import IN_CI

# Redis Cluster talks to its peers on the client port + 10000 (the cluster bus).
_BUS_OFFSET = 10_000


def require_redis_server() -> str:
    """The ``redis-server`` binary, or a skip (a failure with CI=true)."""
    found = shutil.which("redis-server")
    if found is None or shutil.which("redis-cli") is None:
        reason = "redis-server and redis-cli are not installed"
        if IN_CI:
            pytest.fail(f"{reason}; with CI=true this is a failure, not a skip")
        pytest.skip(reason)
    return found


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_ports(count: int, *, with_bus: bool = False) -> list[int]:
    """``count`` free ports (and, for Cluster, their bus ports free too)."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port in ports or (
            with_bus and (port + _BUS_OFFSET > 65535 or not _free(port + _BUS_OFFSET))
        ):
            continue
        ports.append(port)
    return ports


def _wait(predicate: object, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():  # type: ignore[operator]  # a zero-argument callable
                return
        except (redis.RedisError, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not come up in {timeout:.0f} s")


def _start(args: list[str], directory: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        args, cwd=directory, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def redis_cluster(directory: Path) -> Iterator[list[int]]:
    """A 3-master Redis Cluster on loopback; yields its ports."""
    server = require_redis_server()
    ports = free_ports(3, with_bus=True)
    processes = [
        _start(
            [
                server,
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--cluster-enabled", "yes",
                "--cluster-config-file", f"nodes-{port}.conf",
                "--save", "",
                "--appendonly", "no",
            ],
            directory,
        )
        for port in ports
    ]  # fmt: skip
    try:
        for port in ports:
            _wait(lambda port=port: redis.Redis(port=port).ping(), f"redis-server on {port}")
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *(f"127.0.0.1:{p}" for p in ports),
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        for port in ports:
            _wait(
                lambda port=port: redis.Redis(port=port).cluster("INFO")["cluster_state"] == "ok",
                f"the cluster seen from {port}",
            )
        yield ports
    finally:
        _stop(processes)


@contextlib.contextmanager
def redis_sentinel(directory: Path, service: str = "authcore") -> Iterator[tuple[int, int, int]]:
    """A master, its replica and one sentinel watching them; yields (master, replica, sentinel)."""
    server = require_redis_server()
    master, replica, sentinel = free_ports(3)
    config = directory / "sentinel.conf"
    config.write_text(
        f"port {sentinel}\nbind 127.0.0.1\n"
        f"sentinel monitor {service} 127.0.0.1 {master} 1\n"
        f"sentinel down-after-milliseconds {service} 1000\n",
        encoding="ascii",
    )
    common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    processes = [_start([server, "--port", str(master), *common], directory)]
    try:
        _wait(lambda: redis.Redis(port=master).ping(), "the master")
        processes.append(
            _start(
                [server, "--port", str(replica), *common, "--replicaof", "127.0.0.1", str(master)],
                directory,
            )
        )
        _wait(
            lambda: redis.Redis(port=replica).info("replication")["master_link_status"] == "up",
            "the replica",
        )
        processes.append(_start([server, str(config), "--sentinel"], directory))
        _wait(
            lambda: redis.Redis(port=sentinel).sentinel_get_master_addr_by_name(service),
            "the sentinel",
        )
        yield master, replica, sentinel
    finally:
        _stop(processes)
