"""Real servers on 127.0.0.1 for end-to-end tests: uvicorn (ASGI) and waitress (WSGI).

Each runs in a thread on a port the OS picks, and is shut down when the context exits.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
import waitress  # type: ignore[import-untyped]  # waitress ships no type information

_START_TIMEOUT = 10.0


@contextmanager
def serve_asgi(app: Any) -> Iterator[str]:
    """Run ``app`` under uvicorn on loopback; yield its base URL."""
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on accepted sockets whose proto says
    # TCP, and without it every two-write response waits out a 40 ms delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(int(_START_TIMEOUT / 0.01)):
            if server.started:
                break
            threading.Event().wait(0.01)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(_START_TIMEOUT)
        sock.close()


@contextmanager
def serve_wsgi(app: Any) -> Iterator[str]:
    """Run ``app`` under waitress on loopback; yield its base URL."""
    server = waitress.create_server(
        app, host="127.0.0.1", port=0, threads=2, clear_untrusted_proxy_headers=True
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        # First the worker threads: a finishing task pulls the trigger to wake the loop.
        server.task_dispatcher.shutdown()
        # Then empty the loop's map, so that it ends at its next turn, wake it, and close the
        # listener, the clients and the trigger only once it has ended. Closing them while
        # the loop runs raced its select(), which then failed on a closed descriptor (EBADF).
        channels = list(server._map.values())
        server._map.clear()
        server.trigger.pull_trigger()
        thread.join(_START_TIMEOUT)
        for channel in channels:
            channel.close()
