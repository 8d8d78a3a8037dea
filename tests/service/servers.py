"""Run ASGI apps under a real uvicorn server on 127.0.0.1 in a background thread, or the
``authcore`` servers as real processes."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from tests.service.ports import free_ports


@contextlib.contextmanager
def serve(app: Any) -> Iterator[str]:
    """Serve ``app`` on a free loopback port; yield its base URL; stop it afterwards."""
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on accepted sockets whose proto says
    # TCP, and without it every two-write response waits out a 40 ms delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def authcore_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for an ``authcore`` process: no AUTHCORE_* or uvicorn settings leak in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHCORE_")}
    env.pop("FORWARDED_ALLOW_IPS", None)
    env.update(extra or {})
    return env


class Process:
    """A server process started by :func:`process_server`: its URL, then its exit."""

    def __init__(self, url: str, pid: int) -> None:
        self.url = url
        self.pid = pid
        self.stderr = ""
        self.returncode: int | None = None


@contextlib.contextmanager
def process_server(
    argv: Sequence[str],
    port: int,
    *,
    cwd: Path,
    env: dict[str, str],
    ready_path: str,
    name: str,
    timeout: float = 30.0,
) -> Iterator[Process]:
    """Run ``argv`` (a server on ``port``); yield once ``ready_path`` answers 200.

    Stops it with SIGINT (its own pid) and records its stderr and exit code on the handle.
    """
    process = subprocess.Popen(
        list(argv), cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    handle = Process(f"http://127.0.0.1:{port}", process.pid)
    try:
        deadline = time.monotonic() + timeout
        while True:
            assert process.poll() is None, f"{name} exited early: {process.communicate()[1]}"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(handle.url + ready_path, timeout=5).status_code == 200:
                    break
            assert time.monotonic() < deadline, f"{name} did not start"
            time.sleep(0.1)
        yield handle
    finally:
        process.send_signal(signal.SIGINT)
        try:
            _, err = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            _, err = process.communicate()
        handle.stderr, handle.returncode = err, process.returncode


@contextlib.contextmanager
def authcore_server(
    db: Path,
    command: str,
    args: Sequence[str] = (),
    *,
    env: dict[str, str] | None = None,
    ready_path: str = "/",
) -> Iterator[str]:
    """Run ``python -m authcore --db sqlite:///DB COMMAND --port P ARGS``; yield its URL.

    Waits until ``ready_path`` answers 200; stops the process with SIGINT (its own pid).
    """
    (port,) = free_ports(1)
    argv = [
        sys.executable, "-m", "authcore", "--db", f"sqlite:///{db}",
        command, "--port", str(port), *args,
    ]  # fmt: skip
    with process_server(
        argv, port, cwd=db.parent, env=authcore_env(env), ready_path=ready_path,
        name=f"authcore {command}",
    ) as server:  # fmt: skip
        yield server.url
