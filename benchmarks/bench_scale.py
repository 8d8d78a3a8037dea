"""``authcore serve`` scaled out: worker processes on PostgreSQL + Redis, measured; and the
revocation bound of each deployment.

Each row runs on a fresh database on the local PostgreSQL (``AUTHCORE_BENCH_POSTGRES``, default
``postgresql://postgres@127.0.0.1:5432/test``, whose server makes a database of its own for the
run), the local Redis (``AUTHCORE_BENCH_REDIS``, default db 13) where it needs one, or a SQLite
file:

- ``scale.exactness``: 4 workers on one port, 400 concurrent requests on fresh connections
  against a limit of 100: the admitted count over the limit (1.000 is exact).
- ``scale.revocation`` (PostgreSQL + Redis), ``scale.revocation.postgres`` (PostgreSQL alone)
  and ``scale.revocation.sqlite`` (SQLite alone): 2 server processes held hot on a key by 16
  keep-alive connections (spread over both); the key is revoked through one server's API
  (``DELETE /v1/keys/{id}``) and, in the other rounds, with ``authcore keys revoke`` (another
  process). The time from the revocation's answer (or the command's exit) to the last 200 any
  connection got; the distribution over the rounds (p50, p99, max), target p99 under 1 s.
  With Redis the servers are ``serve --workers 2``; without it, two ``serve`` processes (a
  worker group needs Redis for its shared rate limit), which follow the database's outbox.
- ``scale.workers``: requests/s of ``--workers 2`` over ``--workers 1`` under ``wrk``
  (``GET /v1/principal`` with a root key), on this machine's cores.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Final
from urllib.parse import urlsplit

from benchmarks.bench_e2e import free_port, wrk
from benchmarks.harness import Mode, Row, Stat, not_measured, stat

__all__ = ["ROWS", "run"]

_POSTGRES = os.environ.get("AUTHCORE_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
_REDIS = os.environ.get("AUTHCORE_BENCH_REDIS", "redis://127.0.0.1:6379/13")


def _reachable(url: str, port: int) -> bool:
    host = urlsplit(url).hostname or "127.0.0.1"
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _database() -> Iterator[str]:
    import psycopg

    name = f"authcore_bench_{secrets.token_hex(5)}"
    with psycopg.connect(_POSTGRES, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield f"{_POSTGRES.rpartition('/')[0]}/{name}"
    finally:
        with psycopg.connect(_POSTGRES, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _authcore(env: dict[str, str], *args: str) -> dict[str, str]:
    done = subprocess.run(
        [sys.executable, "-m", "authcore", *args, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, str] = json.loads(done.stdout)
    return result


def _workspace(env: dict[str, str], limit: str) -> str:
    created = _authcore(env, "workspace", "create", "--name", "bench", "--rate-limit", limit)
    return created["workspace_id"]


def _key(
    env: dict[str, str], workspace: str, permissions: tuple[str, ...] = ("keys.read",)
) -> tuple[str, str]:
    grants = [arg for permission in permissions for arg in ("--permission", permission)]
    created = _authcore(env, "keys", "create", "--workspace", workspace, *grants)
    return created["key"], created["key_id"]


@contextlib.contextmanager
def _serve(env: dict[str, str], workers: int, home: Path) -> Iterator[int]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "authcore", "serve", "--port", str(port), "--workers", str(workers)],
        env=env,
        cwd=home,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError("authcore serve exited")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("authcore serve did not start")
            time.sleep(0.1)
        time.sleep(0.5)  # every worker up
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _get(port: int, path: str, key: str, method: str = "GET") -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"{method} {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {key}\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        return int(head[9:12])
    finally:
        writer.close()


def _exactness(env: dict[str, str], home: Path) -> float:
    key, _ = _key(env, _workspace(env, "100/3600"))
    with _serve(env, 4, home) as port:

        async def burst() -> list[int]:
            gate = asyncio.Semaphore(50)

            async def one() -> int:
                async with gate:
                    return await _get(port, "/v1/principal", key)

            return list(await asyncio.gather(*(one() for _ in range(400))))

        codes = asyncio.run(burst())
    return codes.count(200) / 100


async def _hold_and_revoke(
    ports: Sequence[int], key: str, revoke: Callable[[], Awaitable[float]], window: float
) -> float:
    """Hammer ``key`` on 16 keep-alive connections (spread over ``ports``), revoke it, and
    return the seconds from the revocation until every connection (so every worker behind
    them) has answered 401.

    Raises:
        RuntimeError: the key was never admitted before, or some connection never refused it.
    """
    request = (
        f"GET /v1/principal HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {key}\r\n\r\n"
    ).encode()
    revoked_at: float | None = None
    refused_at: list[float] = []
    admitted = 0
    stop = time.monotonic() + 60

    async def connection(port: int) -> None:
        nonlocal admitted
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.monotonic() < stop:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                status = head[9:12]
                if status == b"200":
                    admitted += 1
                elif status == b"401" and revoked_at is not None:
                    refused_at.append(time.monotonic())
                    return  # this connection's worker refuses the key now
        finally:
            writer.close()

    tasks = [asyncio.create_task(connection(ports[i % len(ports)])) for i in range(16)]
    await asyncio.sleep(0.5)  # hot on every worker
    revoked_at = await revoke()
    stop = revoked_at + window
    await asyncio.gather(*tasks)
    if not admitted or len(refused_at) != len(tasks):
        raise RuntimeError("the key was not hot, or a connection never saw the revocation")
    return max(0.0, max(refused_at) - revoked_at)


@contextlib.contextmanager
def _servers(env: dict[str, str], home: Path) -> Iterator[list[int]]:
    """Two server processes: ``serve --workers 2`` with Redis, else two ``serve``."""
    if env.get("AUTHCORE_REDIS"):
        with _serve(env, 2, home) as port:
            yield [port]
        return
    with _serve(env, 1, home) as first, _serve(env, 1, home) as second:
        yield [first, second]


def _revocations(env: dict[str, str], home: Path, rounds: int) -> tuple[list[float], list[float]]:
    workspace = _workspace(env, "1000000/1")
    admin, _ = _key(env, workspace, ("keys.read", "keys.revoke"))
    api: list[float] = []
    cli: list[float] = []
    with _servers(env, home) as ports:
        for index in range(rounds):
            workspace_key, key_id = _key(env, workspace)

            async def through_api(key_id: str = key_id) -> float:
                status = await _get(ports[0], f"/v1/keys/{key_id}", admin, method="DELETE")
                if status != 204:
                    raise RuntimeError(f"revocation answered {status}")
                return time.monotonic()

            async def through_cli(key_id: str = key_id) -> float:
                await asyncio.to_thread(_authcore, env, "keys", "revoke", key_id)
                return time.monotonic()

            revoke = through_api if index % 2 == 0 else through_cli
            seconds = asyncio.run(_hold_and_revoke(ports, workspace_key, revoke, 5.0))
            (api if index % 2 == 0 else cli).append(seconds)
    return api, cli


def _throughput(env: dict[str, str], home: Path, seconds: float, pairs: int) -> list[float]:
    key, _ = _key(env, _workspace(env, "1000000/1"))
    header = (f"Authorization: Bearer {key}",)
    ratios = []
    with _serve(env, 1, home) as one, _serve(env, 2, home) as two:
        for url in (f"http://127.0.0.1:{one}/v1/principal", f"http://127.0.0.1:{two}/v1/principal"):
            wrk(url, 1, header)  # warm-up
        for _ in range(pairs):
            single, _ = wrk(f"http://127.0.0.1:{one}/v1/principal", seconds, header)
            double, _ = wrk(f"http://127.0.0.1:{two}/v1/principal", seconds, header)
            ratios.append(double / single)
    return ratios


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


_WORKERS_WHAT: Final = (
    "`authcore serve --workers 2` over `--workers 1`: requests/s under wrk -t1 -c32, "
    "GET /v1/principal with a root key (this machine's cores)"
)
_DEPLOYMENTS: Final = {
    "scale.revocation": "PostgreSQL + Redis",
    "scale.revocation.postgres": "PostgreSQL alone",
    "scale.revocation.sqlite": "SQLite alone",
}


def _rounds(mode: Mode) -> int:
    return 2 if mode.smoke else 10 if mode.name == "quick" else 20


@contextlib.contextmanager
def _deployment(database: str, redis: bool) -> Iterator[tuple[dict[str, str], Path]]:
    """A home directory and the environment of one deployment, initialised."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHCORE_")}
    with TemporaryDirectory(prefix="authcore-scale-") as home, contextlib.ExitStack() as stack:
        if database == "sqlite":
            db = f"sqlite:///{home}/authcore.db"
        else:
            db = stack.enter_context(_database())
        env.update(AUTHCORE_DB=db, HOME=home)
        if redis:
            env.update(AUTHCORE_REDIS=_REDIS)
        _authcore(env, "init")
        yield env, Path(home)


def _exactness_row(mode: Mode) -> Row:
    with _deployment("postgres", redis=True) as (env, home):
        exact = _exactness(env, home)
    return Row(
        name="scale.exactness",
        what="`authcore serve --workers 4` (PostgreSQL + Redis): admitted / limit, 400 "
        "concurrent requests on fresh connections against a limit of 100",
        unit="x",
        ratio=Stat(exact, exact, exact),
        target=1.0,
        status="PASS" if exact == 1.0 else "MISS",
    )


def _revocation_row(name: str, database: str, redis: bool, mode: Mode) -> Row:
    with _deployment(database, redis) as (env, home):
        api, cli = _revocations(env, home, _rounds(mode))
    both = api + cli
    p99 = _percentile(both, 0.99)
    servers = "2 workers" if redis else "2 server processes"
    row = Row(
        name=name,
        what=f"revocation across processes, {_DEPLOYMENTS[name]}: seconds from the revocation "
        f"until all 16 keep-alive connections holding the key hot on {servers} answer 401 "
        "(half the rounds through the API, half with `authcore keys revoke`)",
        unit="s",
        subject=stat(both),
        ratio=Stat(p99, _percentile(both, 0.5), max(both)),
        target=1.0,
        note=f"p99 {p99:.3f} s, max {max(both):.3f} s over {len(both)} rounds "
        f"(ratio column: p99 [p50-max])",
    )
    row.extra["detail"] = (
        f"{_DEPLOYMENTS[name]}, {len(both)} rounds: through the API p50 "
        f"{statistics.median(api):.3f} s, max {max(api):.3f} s; with the command line p50 "
        f"{statistics.median(cli):.3f} s, max {max(cli):.3f} s."
    )
    return row


def _workers_row(mode: Mode) -> Row:
    name = "scale.workers"
    if shutil.which("wrk") is None:
        return not_measured(name, name, "wrk is not installed", target=None)
    with _deployment("postgres", redis=True) as (env, home):
        ratios = _throughput(env, home, 1.0 if mode.smoke else 3.0, 1 if mode.smoke else 3)
    return Row(name=name, what=_WORKERS_WHAT, unit="x", ratio=stat(ratios), target=None)


#: (row name, what it needs, measure). ``--only`` selects by row-name prefix.
ROWS: list[tuple[str, tuple[str, ...], Callable[[Mode], Row]]] = [
    ("scale.exactness", ("postgres", "redis"), _exactness_row),
    (
        "scale.revocation",
        ("postgres", "redis"),
        lambda mode: _revocation_row("scale.revocation", "postgres", True, mode),
    ),
    (
        "scale.revocation.postgres",
        ("postgres",),
        lambda mode: _revocation_row("scale.revocation.postgres", "postgres", False, mode),
    ),
    (
        "scale.revocation.sqlite",
        (),
        lambda mode: _revocation_row("scale.revocation.sqlite", "sqlite", False, mode),
    ),
    ("scale.workers", ("postgres", "redis"), _workers_row),
]


def run(mode: Mode, only: Sequence[str] = ()) -> list[Row]:
    """Return the scale-out rows (those ``only`` selects, if given)."""
    selected = [
        row for row in ROWS if not only or any(row[0].startswith(o) or o == "scale" for o in only)
    ]
    if mode.smoke:
        # Many multi-process servers are not a smoke test; tests/service/test_serve_workers.py and
        # tests/backends/test_revocation_processes.py run the same services the same way.
        return [not_measured(name, name, "not run in smoke mode") for name, _, _ in selected]
    reachable = {"postgres": _reachable(_POSTGRES, 5432), "redis": _reachable(_REDIS, 6379)}
    rows: list[Row] = []
    for name, needs, measure in selected:
        missing = [need for need in needs if not reachable[need]]
        if missing:
            rows.append(not_measured(name, name, f"{' and '.join(missing)} not reachable"))
        else:
            rows.append(measure(mode))
    return rows
