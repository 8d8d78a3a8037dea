"""Issue 26, finding 1: request heads under httptools had no bound on size or arrival time.

Two connections sending 64 MiB of unfinished header lines took ``authcore serve`` from 38 to
169 MiB RSS, and a connection that sent half a header line stayed open for good. These tests
run ``authcore serve`` as a real process (``--head-timeout 1``, the default 64 KiB bound) and
talk to it over raw sockets on loopback.
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from authcore.service.head_limits import HeadLimits
from tests.service.ports import free_ports
from tests.service.servers import Process, authcore_env, process_server

pytestmark = pytest.mark.e2e

HEAD_BYTES = 64 * 1024
HOST = b"Host: 127.0.0.1\r\n"
MANY_HEADERS = b"".join(b"X-%d: %s\r\n" % (i, b"b" * 60) for i in range(1200))  # about 80 KiB


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    """``authcore serve`` with a 1 s head timeout (quick tests) and the default size bound."""
    tmp = tmp_path_factory.mktemp("heads")
    (port,) = free_ports(1)
    argv = [
        sys.executable, "-m", "authcore", "--db", f"sqlite:///{tmp / 'heads.db'}",
        "serve", "--port", str(port), "--head-timeout", "1",
    ]  # fmt: skip
    with process_server(
        argv, port, cwd=tmp, env=authcore_env(), ready_path="/healthz", name="authcore serve"
    ) as handle:
        yield handle


def _connect(server: Process) -> socket.socket:
    port = int(server.url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _read_response(sock: socket.socket, buffer: bytearray) -> tuple[int, bytes]:
    """Read one response (Content-Length framed) from ``sock``; return its status and body.

    ``buffer`` keeps what was read past it (the next pipelined response).
    """
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        assert chunk, f"closed before a full response head: {bytes(buffer)!r}"
        buffer += chunk
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = next(
        int(line.split(b":", 1)[1]) for line in lines if line.lower().startswith(b"content-length:")
    )
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "closed before the body's end"
        rest += chunk
    buffer[:] = rest[length:]
    return status, rest[:length]


def _closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closes ``sock`` (reads until EOF or a reset; the timeout is 30 s)."""
    try:
        while sock.recv(65536):
            pass
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
    return True


def _vm_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


# (a) size


@pytest.mark.parametrize(
    "head",
    [
        b"GET /healthz HTTP/1.1\r\n" + HOST + b"X-Big: " + b"a" * HEAD_BYTES + b"\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\n" + HOST + MANY_HEADERS + b"\r\n",
        b"GET /healthz?" + b"q" * HEAD_BYTES + b" HTTP/1.1\r\n" + HOST + b"\r\n",
    ],
    ids=["one-large-header", "many-headers", "long-url"],
)  # fmt: skip
def test_finding_1_a_head_over_the_bound_is_431_and_closed(server: Process, head: bytes) -> None:
    with _connect(server) as sock:
        sock.sendall(head)
        status, body = _read_response(sock, bytearray())
        assert status == 431
        assert b'"code":"request_head_too_large"' in body
        assert _closed_by_server(sock)


def test_a_head_just_under_the_bound_is_served(server: Process) -> None:
    filler = b"X-Fill: " + b"c" * (HEAD_BYTES - 200) + b"\r\n"
    with _connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n" + HOST + filler + b"\r\n")
        status, _ = _read_response(sock, bytearray())
    assert status == 200


# (b) memory under the review's attack


def _flood_unfinished_header_lines(server: Process, total: int) -> bool:
    """Send up to ``total`` bytes of header lines that never end the head; whether the server
    cut the connection before all of it was sent."""
    line = b"X-Flood: " + b"f" * 1000 + b"\r\n"
    chunk = line * 1024  # about 1 MiB
    sent = 0
    with _connect(server) as sock:
        try:
            sock.sendall(b"GET /healthz HTTP/1.1\r\n" + HOST)
            while sent < total:
                sock.sendall(chunk)
                sent += len(chunk)
        except (ConnectionResetError, BrokenPipeError):
            return True
        return _closed_by_server(sock)


def test_finding_1_unfinished_header_lines_do_not_grow_the_server(server: Process) -> None:
    before = _vm_rss_kib(server.pid)
    # The review's attack: 64 MiB of unfinished header lines over two connections.
    cut = [_flood_unfinished_header_lines(server, 32 * 1024 * 1024) for _ in range(2)]
    after = _vm_rss_kib(server.pid)
    assert cut == [True, True]
    # Unbounded, the server grew by 131 MiB (38 -> 169); bounded, a head costs at most 64 KiB
    # plus one read. 16 MiB leaves room for the allocator, not for the attack.
    assert after - before < 16 * 1024, (before, after)


# (c) time


def test_finding_1_half_a_header_line_then_silence_is_closed(server: Process) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n" + HOST + b"X-Half: ab")
        assert _closed_by_server(sock)


def test_a_head_trickling_in_is_closed_though_bytes_keep_coming(server: Process) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n" + HOST)
        try:
            for _ in range(600):  # a byte every 0.1 s, for a minute at most
                sock.sendall(b"X")
                time.sleep(0.1)
        except (ConnectionResetError, BrokenPipeError):
            return
        pytest.fail("a head trickling in for a minute was not cut")


def test_a_connection_that_sends_nothing_is_closed(server: Process) -> None:
    with _connect(server) as sock:
        assert _closed_by_server(sock)


# (d) what must keep working


def test_keep_alive_requests_share_one_connection(server: Process) -> None:
    buffer = bytearray()
    with _connect(server) as sock:
        for _ in range(3):
            sock.sendall(b"GET /healthz HTTP/1.1\r\n" + HOST + b"\r\n")
            assert _read_response(sock, buffer)[0] == 200
        sock.sendall(
            b"POST /v1/keys HTTP/1.1\r\n" + HOST + b"Content-Type: application/json\r\n"
            b"Content-Length: 2\r\n\r\n{}"
        )
        assert _read_response(sock, buffer)[0] == 401
        sock.sendall(b"GET /healthz HTTP/1.1\r\n" + HOST + b"\r\n")
        assert _read_response(sock, buffer)[0] == 200


def test_pipelined_requests_are_all_answered_in_order(server: Process) -> None:
    requests = [
        b"GET /healthz HTTP/1.1\r\n" + HOST + b"\r\n",
        b"GET /v1/keys HTTP/1.1\r\n" + HOST + b"\r\n",
        b"POST /v1/keys HTTP/1.1\r\n" + HOST + b"Content-Length: 2\r\n\r\n{}",
        b"GET /healthz HTTP/1.1\r\n" + HOST + b"X-Fill: " + b"d" * 30000 + b"\r\n\r\n",
    ]
    buffer = bytearray()
    with _connect(server) as sock:
        # Together past the bound, each well under it: the bound is per head, not per read.
        sock.sendall(b"".join(requests) + b"".join(requests[3:]) * 2)
        statuses = [_read_response(sock, buffer)[0] for _ in range(6)]
    assert statuses == [200, 401, 401, 200, 200, 200]


@pytest.mark.parametrize(
    "limits", [{"max_bytes": 1023}, {"max_bytes": 2**20 + 1}, {"timeout": 0}, {"timeout": 301}]
)
def test_head_limits_out_of_range_are_refused(limits: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="must be a whole number"):
        HeadLimits(**limits)
