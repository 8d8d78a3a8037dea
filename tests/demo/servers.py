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

from tests.demo.ports import free_ports


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
    process = subprocess.Popen(
        [
            sys.executable, "-m", "authcore", "--db", f"sqlite:///{db}",
            command, "--port", str(port), *args,
        ],
        cwd=db.parent,
        env=authcore_env(env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.communicate()[1]
            try:
                if httpx.get(url + ready_path, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"authcore {command} did not start"
            time.sleep(0.1)
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
