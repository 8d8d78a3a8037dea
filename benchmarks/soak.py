"""Soak run: the example service under a bounded mix of valid and hostile requests.

``python -m benchmarks.soak [--seconds 180] [--workers 8]`` (``make soak``). It creates an SQLite
database and a configuration file in a temporary directory, starts ``authcore serve`` on
127.0.0.1 (a separate process, so its memory can be read), and for ``--seconds`` sends
requests from ``--workers`` threads over raw loopback sockets: root keys, portal sessions and
JWTs that are valid, and hostile headers (tab and Unicode separators, NUL, latin-1 bytes,
1 MiB values, repeated and comma-joined ``Authorization``, other schemes, ``alg: none``,
credentials in the query string, unknown keys). It prints the count per status, the server's
RSS (``VmRSS``) at start and end, and exits 1 if any request got a 500 or failed with an
exception (connection reset, timeout, malformed reply), else 0.

Loopback only, bounded in time and in connections (one at a time per worker).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

from authcore.backends.sqlite import SQLiteStore
from authcore.config import load_config
from authcore.ratelimit import RateLimitPolicy
from authcore.records import OPERATOR_ACTOR

SIGNING_SECRET: Final = "soak-signing-secret-" + "0123456789" * 4
START_TIMEOUT: Final = 30.0
REQUEST_TIMEOUT: Final = 15.0
ONE_MIB: Final = 1 << 20
#: Request kinds the server may refuse by closing the connection (before the app sees them).
_MAY_RESET: Final = frozenset({"one_mib"})
CONFIG: Final = f"""
[jwt]
signing_kid = "k1"
max_lifetime = 300

[[jwt.secrets]]
kid = "k1"
secret = "{SIGNING_SECRET}"
"""

__all__ = ["main", "run_soak"]


# --- the service ----------------------------------------------------------------------------


class Fixture:
    """The database, the credentials in it and the config file, in one temporary directory."""

    def __init__(self, directory: Path) -> None:
        self.db = directory / "soak.db"
        self.config = directory / "soak.toml"
        self.config.write_text(CONFIG)
        now = time.time()
        with SQLiteStore(self.db) as store:
            # A high limit for the valid traffic, so it exercises the 200 path ...
            busy = store.create_workspace(
                "soak", rate_limit=RateLimitPolicy(1_000_000, 60), now=now, actor=OPERATOR_ACTOR
            )
            # ... and a tiny one, so 429 is exercised too.
            tight = store.create_workspace(
                "soak-tight", rate_limit=RateLimitPolicy(5, 3600), now=now, actor=OPERATOR_ACTOR
            )
            self.workspace_id = busy.id
            self.key = self._key(store, busy.id, now)
            self.tight_key = self._key(store, tight.id, now)
            self.readonly_key = self._key(store, busy.id, now, ("audit.read",))
            session = store.create_portal_session(
                busy.id,
                "soak-user",
                permissions=["keys.read"],
                ttl=86_400,
                now=now,
                actor=OPERATOR_ACTOR,
            )
            assert session is not None
            self.portal_token = session.token.reveal()
        self.keyring = load_config(str(self.config), environ={}).jwt.signing_keyring()

    @staticmethod
    def _key(
        store: SQLiteStore,
        workspace_id: str,
        now: float,
        permissions: tuple[str, ...] = ("keys.read", "keys.create", "audit.read"),
    ) -> str:
        created = store.create_root_key(
            workspace_id, permissions=permissions, now=now, actor=OPERATOR_ACTOR
        )
        assert created is not None
        return created.key.reveal()

    def jwt(self) -> str:
        token = self.keyring.mint(
            subject="soak-user",
            workspace_id=self.workspace_id,
            permissions=["keys.read"],
            now=int(time.time()),
            ttl=60,
        )
        return token.reveal()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_kib(pid: int) -> int | None:
    """Return the resident set size of ``pid`` in KiB (Linux), or None where unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


@contextlib.contextmanager
def serve(fixture: Fixture, directory: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """Run ``authcore serve`` on a free loopback port until the context exits."""
    port = free_port()
    log = (directory / "server.log").open("wb")
    command = [
        sys.executable, "-m", "authcore", "--db", f"sqlite:///{fixture.db}",
        "--config", str(fixture.config), "serve", "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the service exited with {process.returncode} at start")
            with contextlib.suppress(OSError):
                if status_of(exchange(port, b"GET /healthz HTTP/1.1\r\nHost: soak\r\n")) == 200:
                    break
            time.sleep(0.1)
        else:
            raise RuntimeError("the service did not answer /healthz in time")
        yield process, port
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        log.close()


# --- requests -------------------------------------------------------------------------------


def exchange(port: int, head: bytes) -> bytes:
    """Send one request (``head`` without the final blank line) and return the whole reply."""
    request = head + b"Connection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=REQUEST_TIMEOUT) as conn:
        # A server may answer and close before it has read a huge header.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            conn.sendall(request)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def status_of(reply: bytes) -> int:
    """Return the status code of an HTTP/1.1 reply.

    Raises:
        ValueError: the reply is not an HTTP response.
    """
    line = reply.split(b"\r\n", 1)[0]
    version, code, *_ = line.split(b" ", 2)
    if not version.startswith(b"HTTP/1."):
        raise ValueError("not an HTTP response")
    return int(code)


def request(path: str, *headers: bytes, method: bytes = b"GET") -> bytes:
    lines = [method + b" " + path.encode() + b" HTTP/1.1", b"Host: soak", *headers]
    return b"\r\n".join(lines) + b"\r\n"


def bearer(token: str | bytes) -> bytes:
    raw = token if isinstance(token, bytes) else token.encode("latin-1")
    return b"Authorization: Bearer " + raw


def mix(fixture: Fixture) -> list[tuple[str, Callable[[], bytes]]]:
    """The request kinds, each a name and a builder (valid ones repeated to weigh them)."""
    key, jwt = fixture.key, fixture.jwt
    post_body = b'{"name": "soak", "permissions": ["nope.*x"]}'
    valid: list[tuple[str, Callable[[], bytes]]] = [
        ("valid_key_list", lambda: request("/v1/keys", bearer(key))),
        ("valid_key_principal", lambda: request("/v1/principal", bearer(key))),
        ("valid_jwt", lambda: request("/v1/principal", bearer(jwt()))),
        (
            "valid_portal_cookie",
            lambda: request(
                "/portal/v1/principal",
                b"Cookie: authcore_portal=" + fixture.portal_token.encode(),
            ),
        ),
        ("valid_audit", lambda: request("/v1/audit-logs?limit=5", bearer(key))),
    ]
    hostile: list[tuple[str, Callable[[], bytes]]] = [
        ("no_credential", lambda: request("/v1/keys")),
        ("unknown_key", lambda: request("/v1/keys", bearer("ak_" + "A" * 43))),
        ("truncated_key", lambda: request("/v1/keys", bearer(key[:-1]))),
        ("tab", lambda: request("/v1/keys", b"Authorization: Bearer\t" + key.encode())),
        ("nbsp", lambda: request("/v1/keys", b"Authorization: Bearer\xc2\xa0" + key.encode())),
        ("nul", lambda: request("/v1/keys", bearer(b"ak_\x00abc"))),
        ("latin1", lambda: request("/v1/keys", bearer(b"ak_\xe9\xff"))),
        ("one_mib", lambda: request("/v1/keys", bearer(b"a" * ONE_MIB))),
        ("repeated", lambda: request("/v1/keys", bearer(key), bearer(key))),
        ("comma_joined", lambda: request("/v1/keys", bearer(f"{key}, Bearer {key}"))),
        ("basic", lambda: request("/v1/keys", b"Authorization: Basic dXNlcjpwYXNz")),
        ("query_token", lambda: request(f"/v1/keys?access_token={key}")),
        ("alg_none", lambda: request("/v1/keys", bearer("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."))),
        ("jwt_garbage", lambda: request("/v1/keys", bearer("eyJ" + "x" * 200 + ".eyJ.sig"))),
        ("portal_token_on_api", lambda: request("/v1/keys", bearer(fixture.portal_token))),
        ("missing_permission", lambda: request("/v1/keys", bearer(fixture.readonly_key))),
        ("rate_limited", lambda: request("/v1/keys", bearer(fixture.tight_key))),
        (
            "bad_grant_post",
            lambda: (
                request(
                    "/v1/keys",
                    bearer(key),
                    b"Content-Type: application/json",
                    b"Content-Length: " + str(len(post_body)).encode(),
                    method=b"POST",
                )
                + b"\r\n"
                + post_body
            ),
        ),
    ]
    return valid * 3 + hostile


def _send(port: int, raw: bytes) -> bytes:
    # A request with a body carries its own blank line: send it as is.
    if b"\r\n\r\n" in raw:
        with socket.create_connection(("127.0.0.1", port), timeout=REQUEST_TIMEOUT) as conn:
            conn.sendall(raw.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1))
            chunks = []
            while chunk := conn.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)
    return exchange(port, raw)


def run_soak(seconds: float, workers: int, seed: int = 0) -> int:
    """Run the soak; print the report; return the exit code (0: no 500 and no exception)."""
    counts: collections.Counter[str] = collections.Counter()
    failures: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()
    with tempfile.TemporaryDirectory(prefix="authcore-soak-") as tmp:
        directory = Path(tmp)
        fixture = Fixture(directory)
        kinds = mix(fixture)
        with serve(fixture, directory) as (process, port):
            rss_start = rss_kib(process.pid)
            deadline = time.monotonic() + seconds

            def work(index: int) -> None:
                rng = random.Random(seed * 1000 + index)
                while time.monotonic() < deadline:
                    name, build = rng.choice(kinds)
                    try:
                        status = status_of(_send(port, build()))
                        outcome = str(status)
                    except ConnectionResetError:
                        # uvicorn refuses an oversized header at the HTTP layer and closes
                        # while the client is still sending: a refusal, for that kind only.
                        status = -1 if name in _MAY_RESET else 0
                        outcome = "reset by server" if status else "exception reset"
                    except (OSError, ValueError) as exc:
                        outcome = f"exception {type(exc).__name__}"
                        status = 0
                    with lock:
                        counts[outcome] += 1
                        if status in {500, 0}:
                            failures[f"{name}: {outcome}"] += 1

            threads = [threading.Thread(target=work, args=(n,)) for n in range(workers)]
            started = time.monotonic()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.monotonic() - started
            rss_end = rss_kib(process.pid)
            alive = process.poll() is None
    total = sum(counts.values())
    print(f"soak: {total} requests in {elapsed:.1f} s from {workers} workers")
    for outcome, count in sorted(counts.items()):
        print(f"  {outcome:>24}: {count}")
    print(f"server RSS: start {rss_start} KiB, end {rss_end} KiB")
    if not alive:
        print("FAIL: the server died during the soak")
        return 1
    if failures or total == 0:
        print("FAIL: " + (", ".join(f"{k} x{v}" for k, v in failures.items()) or "no requests"))
        return 1
    print("OK: zero 500s, zero exceptions")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and run the soak; return the exit code."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument("--seconds", type=float, default=180.0, help="duration (default 180)")
    parser.add_argument("--workers", type=int, default=8, help="client threads (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="request-mix seed")
    args = parser.parse_args(argv)
    if not 0 < args.seconds <= 86_400 or not 1 <= args.workers <= 256:
        parser.error("--seconds must be in (0, 86400] and --workers in 1..256")
    return run_soak(args.seconds, args.workers, args.seed)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
