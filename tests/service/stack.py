"""The example API and its dashboard, both served for real on loopback, with test data.

:func:`demo_stack` builds them the way ``authcore serve`` and ``authcore dashboard`` do
(:func:`authcore.service.runner.build_api` / :func:`~authcore.service.runner.build_dashboard`) on a
real SQLite file, creates a workspace linked to an organization, a root key holding every
permission the API checks and a dashboard user, and serves both under uvicorn in threads.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import httpx

from authcore.backends import Auth
from authcore.backends.sqlite import SQLiteStore
from authcore.config import Config, parse_config
from authcore.passwords import hash_password
from authcore.ratelimit import RateLimitPolicy
from authcore.records import OPERATOR_ACTOR
from authcore.service.runner import API_PERMISSIONS, build_api, build_dashboard
from tests.service.servers import serve

SIGNING_SECRET = "stack-signing-secret-0123456789abcdefghijklmnop"
PASSWORD = "correct horse battery staple"
#: What a browser sends with a request made by a page of the same origin.
SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}


def stack_config() -> Config:
    """A config with one inline signing secret."""
    text = f"""
[jwt]
signing_kid = "k1"
max_lifetime = 300

[[jwt.secrets]]
kid = "k1"
secret = "{SIGNING_SECRET}"
"""
    return parse_config(text, environ={}, origin="stack config")


@attrs.frozen
class Stack:
    """What :func:`demo_stack` started and created."""

    store: SQLiteStore
    api_url: str
    dashboard_url: str
    workspace_id: str
    org_id: str
    admin_key: str = attrs.field(repr=False)
    admin_key_id: str
    user_id: str
    #: The value of the dashboard session cookie of one login made at start.
    session: str = attrs.field(repr=False)

    def api(self) -> httpx.Client:
        """A client for the API that sends the admin key."""
        return httpx.Client(
            base_url=self.api_url,
            headers={"Authorization": f"Bearer {self.admin_key}"},
            timeout=10,
            trust_env=False,
        )

    def dashboard(self, *, logged_in: bool = True) -> httpx.Client:
        """A client for the dashboard; ``logged_in``: it sends the dashboard session cookie.

        (Logging in again for every client would soon meet the per-user login budget.)
        """
        cookies = {"authcore_dashboard": self.session} if logged_in else {}
        return httpx.Client(
            base_url=self.dashboard_url, cookies=cookies, timeout=10, trust_env=False
        )

    def session_cookie(self) -> str:
        """The ``Cookie`` header value of the dashboard session."""
        return f"authcore_dashboard={self.session}"


def _login(dashboard_url: str, user_id: str) -> str:
    with httpx.Client(base_url=dashboard_url, timeout=10, trust_env=False) as client:
        response = client.post(
            "/login", json={"user_id": user_id, "password": PASSWORD}, headers=SAME_ORIGIN
        )
        assert response.status_code == 200, response.text
        return str(response.cookies["authcore_dashboard"])


@contextlib.contextmanager
def demo_stack(tmp_path: Path) -> Iterator[Stack]:
    """Serve the API and the dashboard on loopback; yield a :class:`Stack`."""
    config = stack_config()
    now = time.time()
    suffix = secrets.token_hex(4)
    with SQLiteStore(tmp_path / "stack.db") as store:
        org_id = f"org_stack_{suffix}"
        workspace = store.create_workspace(
            "stack",
            org_id=org_id,
            # Property tests send many requests: the workspace limit must not be what answers.
            rate_limit=RateLimitPolicy(1_000_000, 60),
            now=now,
            actor=OPERATOR_ACTOR,
        )
        created = store.create_root_key(
            workspace.id,
            permissions=list(API_PERMISSIONS),
            name="admin",
            now=now,
            actor=OPERATOR_ACTOR,
        )
        assert created is not None
        user_id = f"user-{suffix}"
        store.add_dashboard_user(user_id, org_id, hash_password(PASSWORD), list(API_PERMISSIONS))
        with serve(build_api(Auth.wire(store, config))) as api_url:
            dashboard = build_dashboard(Auth.wire(store, config), api_url)
            with serve(dashboard) as dashboard_url:
                yield Stack(
                    store=store,
                    api_url=api_url,
                    dashboard_url=dashboard_url,
                    workspace_id=workspace.id,
                    org_id=org_id,
                    admin_key=created.key.reveal(),
                    admin_key_id=created.record.id,
                    user_id=user_id,
                    session=_login(dashboard_url, user_id),
                )


@attrs.frozen
class RawAnswer:
    """The start of an HTTP answer read from a raw socket."""

    status: int
    headers: dict[str, str]
    body: bytes


def send_partial(
    base_url: str, method: str, path: str, headers: dict[str, str], body: bytes = b""
) -> RawAnswer:
    """Send a request head and ``body`` (maybe less than its Content-Length); read the answer.

    The connection stays open while waiting, as a client trickling the rest of a body would.

    Raises:
        AssertionError: no complete answer within 10 s (the server waits for the body).
    """
    url = httpx.URL(base_url)
    assert url.host is not None
    assert url.port is not None
    lines = [f"{method} {path} HTTP/1.1", f"Host: {url.host}:{url.port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    with socket.create_connection((url.host, url.port), timeout=10) as sock:
        sock.sendall(head + body)
        received = b""
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break  # the server closed the connection after its answer
                received += chunk
        except TimeoutError:
            if b"\r\n\r\n" not in received:
                raise AssertionError("no answer while the body was still owed") from None
    assert b"\r\n\r\n" in received, "the connection closed without an answer"
    start, _, rest = received.partition(b"\r\n\r\n")
    status_line, *header_lines = start.decode("latin-1").split("\r\n")
    answer_headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        answer_headers[name.strip().lower()] = value.strip()
    return RawAnswer(int(status_line.split()[1]), answer_headers, rest)
