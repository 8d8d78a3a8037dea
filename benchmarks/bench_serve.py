"""``authcore serve`` under a real load generator: an authenticated route against a public one.

The example service is set up exactly as a user would (``authcore init``, ``workspace create``,
``keys create`` on a fresh SQLite database) and started with ``authcore serve`` on a free
loopback port. ``wrk`` then alternates between ``GET /healthz`` (public: the same app, the same
middleware stack, no credential) and ``GET /v1/principal`` with the root key, in rotating
rounds; each round's ratio is authenticated req/s over public req/s. Without ``wrk`` the row is
not measured (the issue asks for a real load generator).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from benchmarks.bench_e2e import cpu_seconds, free_port, wrk
from benchmarks.harness import Mode, Row, not_measured, stat

__all__ = ["run"]

_NAME = "serve.principal"
_WHAT = (
    "`authcore serve` (SQLite, CachedStore, memory limiter) under wrk: GET /v1/principal with "
    "a root key, req/s vs GET /healthz"
)


def _authcore(env: dict[str, str], *args: str) -> str:
    command = [sys.executable, "-m", "authcore", *args]
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=60, check=True
    )
    return result.stdout


@contextlib.contextmanager
def _service(home: Path) -> Iterator[tuple[int, int, str]]:
    """A fresh database, workspace and key, and ``authcore serve`` on a free port."""
    env = {**os.environ, "AUTHCORE_DB": f"sqlite:///{home / 'bench.db'}"}
    _authcore(env, "init")
    # A limit no benchmark reaches: every request takes the admitted path.
    workspace = json.loads(
        _authcore(
            env, "workspace", "create", "--name", "bench", "--rate-limit", "1000000/1", "--json"
        )
    )["workspace_id"]
    key = json.loads(
        _authcore(
            env, "keys", "create", "--workspace", workspace, "--permission", "keys.read", "--json"
        )
    )["key"]
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "authcore", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=home,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"authcore serve exited with {process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("authcore serve did not start") from None
                time.sleep(0.05)
        yield port, process.pid, key
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run(mode: Mode) -> list[Row]:
    """Return the ``authcore serve`` row."""
    if shutil.which("wrk") is None:
        return [
            not_measured(_NAME, _WHAT, "wrk is not installed (apt-get install wrk)", target=0.9)
        ]
    pairs, seconds = (1, 0.25) if mode.smoke else (3, 2.0) if mode.name == "quick" else (6, 3.0)
    public: list[float] = []
    authed: list[float] = []
    cpu: dict[str, list[float]] = {"public": [], "authed": []}
    with (
        tempfile.TemporaryDirectory(prefix="authcore-bench-") as home,
        _service(Path(home)) as (
            port,
            pid,
            key,
        ),
    ):
        base = f"http://127.0.0.1:{port}"
        bursts = [
            ("public", f"{base}/healthz", (), public),
            ("authed", f"{base}/v1/principal", (f"Authorization: Bearer {key}",), authed),
        ]
        if not mode.smoke:
            for _name, url, headers, _sink in bursts:  # warm-up
                wrk(url, seconds, headers)
        for i in range(pairs):
            for name, url, headers, sink in bursts[i % 2 :] + bursts[: i % 2]:
                before = cpu_seconds(pid)
                rps, count = wrk(url, seconds, headers)
                sink.append(rps)
                cpu[name].append((cpu_seconds(pid) - before) / max(1, count) * 1e6)
    ratios = [a / b for a, b in zip(authed, public, strict=True)]
    row = Row(
        name=_NAME,
        what=_WHAT,
        unit="req/s",
        subject=stat(authed),
        baseline="GET /healthz on the same server",
        baseline_stat=stat(public),
        ratio=stat(ratios),
        target=0.9,
        direction=">=",
        note=f"wrk -t1 -c32, {pairs} rotating rounds of {seconds:.0f} s",
    )
    row.extra["detail"] = (
        f"/healthz: {stat(public).median:,.0f} req/s, {stat(cpu['public']).median:.0f} us of "
        f"server CPU per request; /v1/principal: {stat(authed).median:,.0f} req/s, "
        f"{stat(cpu['authed']).median:.0f} us (authentication, rate limit, the principal's "
        "JSON and the two rate-limit fields)."
    )
    return [row]
