"""uvicorn end to end on loopback: authenticated requests/s against the bare app.

Two uvicorn processes (bare and authenticated) run side by side on free 127.0.0.1 ports and
are driven in alternating bursts by one load generator (``wrk`` when installed, else an asyncio
client with keep-alive connections), so drift hits both alike. Every burst is bounded in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from benchmarks.harness import Mode, Row, not_measured, stat

__all__ = ["cpu_seconds", "free_port", "run", "wrk"]

_ROOT = Path(__file__).resolve().parent.parent
_PATH = "/v1/keys"
_CONNECTIONS = 32
_NAME = "e2e.uvicorn"
_WHAT = "uvicorn on loopback, AuthMiddleware (CachedStore, memory limiter): requests/s vs bare app"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def _server(factory: str, key: str) -> Iterator[tuple[int, int]]:
    port = free_port()
    env = {**os.environ, "AUTHCORE_BENCH_KEY": key, "PYTHONPATH": str(_ROOT)}
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        f"benchmarks.e2e_app:{factory}",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(command, env=env, cwd=_ROOT)
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"uvicorn ({factory}) exited with {process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"uvicorn ({factory}) did not start") from None
                time.sleep(0.05)
        yield port, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def cpu_seconds(pid: int) -> float:
    """Return the user + system CPU time of process ``pid`` (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url: str, seconds: float, headers: tuple[str, ...] = ()) -> tuple[float, int]:
    """Run ``wrk`` against ``url`` (loopback) for ``seconds``; return (requests/s, requests).

    Raises:
        RuntimeError: wrk's output is not understood, or a response was not 2xx.
    """
    command = ["wrk", "-t1", f"-c{_CONNECTIONS}", f"-d{max(1, round(seconds))}s"]
    for header in headers:
        command += ["-H", header]
    result = subprocess.run(
        [*command, url],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    )
    match = re.search(r"Requests/sec:\s+([0-9.]+)", result.stdout)
    count = re.search(r"(\d+) requests in", result.stdout)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", result.stdout)
    if match is None or count is None:
        raise RuntimeError(f"unexpected wrk output: {result.stdout[-300:]}")
    if errors is not None:
        raise RuntimeError(f"{errors.group(1)} non-2xx responses: the auth wiring is wrong")
    return float(match.group(1)), int(count.group(1))


def _wrk(port: int, key: str, seconds: float) -> tuple[float, int]:
    return wrk(f"http://127.0.0.1:{port}{_PATH}", seconds, (f"Authorization: Bearer {key}",))


async def _client_burst(port: int, key: str, seconds: float) -> tuple[float, int]:
    """Keep-alive HTTP/1.1 on ``_CONNECTIONS`` raw connections; return requests/s."""
    request = (
        f"GET {_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {key}\r\n\r\n"
    ).encode()
    done = 0
    deadline = time.monotonic() + seconds

    async def connection() -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.monotonic() < deadline:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                if not head.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError("non-200 response: the auth wiring is wrong")
                length = re.search(rb"(?i)content-length:\s*(\d+)", head)
                await reader.readexactly(int(length.group(1)) if length else 0)
                done += 1
        finally:
            writer.close()

    start = time.monotonic()
    await asyncio.wait_for(
        asyncio.gather(*(connection() for _ in range(_CONNECTIONS))), seconds + 10
    )
    return done / (time.monotonic() - start), done


def run(mode: Mode) -> list[Row]:
    """Return the end-to-end row."""
    try:
        import uvicorn  # noqa: F401  # only checking that it is installed

        from authcore.adapters.asgi import AuthMiddleware  # noqa: F401  # same
    except ImportError as exc:
        return [not_measured(_NAME, _WHAT, f"import failed: {exc}", target=0.85)]
    pairs, seconds = (1, 0.25) if mode.smoke else (3, 2.0) if mode.name == "quick" else (6, 3.0)
    use_wrk = shutil.which("wrk") is not None
    key = "ak_" + secrets.token_urlsafe(32)

    def burst(server: tuple[int, int]) -> tuple[float, float]:
        port, pid = server
        cpu_before = cpu_seconds(pid)
        if use_wrk:
            rps, count = _wrk(port, key, seconds)
        else:
            rps, count = asyncio.run(_client_burst(port, key, seconds))
        return rps, (cpu_seconds(pid) - cpu_before) / max(1, count) * 1e6

    bare_rps: list[float] = []
    auth_rps: list[float] = []
    floor_rps: list[float] = []
    headers_rps: list[float] = []
    cpu: dict[str, list[float]] = {"bare": [], "authed": [], "floor": [], "floor_headers": []}
    with (
        _server("bare", key) as bare_server,
        _server("authed", key) as auth_server,
        _server("floor", key) as floor_server,
        _server("floor_headers", key) as headers_server,
    ):
        order = [
            ("bare", bare_server, bare_rps),
            ("authed", auth_server, auth_rps),
            ("floor", floor_server, floor_rps),
            ("floor_headers", headers_server, headers_rps),
        ]
        for _name, server, _sink in order if not mode.smoke else ():  # warm-up
            burst(server)
        for i in range(pairs):
            shift = i % len(order)
            for name, server, sink in order[shift:] + order[:shift]:
                rps, cpu_us = burst(server)
                sink.append(rps)
                cpu[name].append(cpu_us)
    ratios = [a / b for a, b in zip(auth_rps, bare_rps, strict=True)]
    floor_ratio = stat([f / b for f, b in zip(floor_rps, bare_rps, strict=True)]).median
    headers_ratio = stat([f / b for f, b in zip(headers_rps, bare_rps, strict=True)]).median
    generator = f"wrk -t1 -c{_CONNECTIONS}" if use_wrk else f"asyncio client, {_CONNECTIONS} conns"
    bare_us = 1e6 / stat(bare_rps).median
    row = Row(
        name=_NAME,
        what=_WHAT,
        unit="req/s",
        subject=stat(auth_rps),
        baseline="bare app under uvicorn",
        baseline_stat=stat(bare_rps),
        ratio=stat(ratios),
        target=0.85,
        direction=">=",
        note=f"{generator}, {pairs} rotating rounds of {seconds:.0f} s; the floor "
        f"middleware reaches {floor_ratio:.3f}x, the floor with RateLimit headers "
        f"{headers_ratio:.3f}x",
    )
    row.extra["detail"] = (
        f"bare app: {stat(bare_rps).median:,.0f} req/s ({bare_us:.0f} us of server time per "
        f"request); AuthMiddleware: {stat(auth_rps).median:,.0f} req/s; floor middleware in the "
        f"same rounds: {stat(floor_rps).median:,.0f} req/s ({floor_ratio:.3f}x bare); the floor "
        "plus the two rate-limit fields authcore sends (added through a send wrapper): "
        f"{stat(headers_rps).median:,.0f} req/s ({headers_ratio:.3f}x bare). "
        f"At {bare_us:.0f} us per bare request, 0.85x leaves {bare_us * (1 / 0.85 - 1):.1f} us "
        "of server time per request for authentication. Server CPU per request (from "
        f"/proc, medians): bare {stat(cpu['bare']).median:.0f} us, AuthMiddleware "
        f"{stat(cpu['authed']).median:.0f} us, floor {stat(cpu['floor']).median:.0f} us, floor "
        f"with the headers {stat(cpu['floor_headers']).median:.0f} us."
    )
    return [row]
