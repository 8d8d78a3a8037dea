"""Public test doubles: use them to test your app, as authcore's own tests do.

- :class:`SettableClock`: a clock you move by hand (seconds and microseconds views).
- :class:`RecordingAuditSink`: keeps every audit event it receives.
- :class:`~authcore.backends.memory.MemoryStore` and
  :class:`~authcore.backends.memory.MemoryRateLimiter`: real in-memory backends.
- :func:`issue_root_key` / :func:`issue_portal_session`: put a working credential in a
  memory store and get the raw value back; :func:`add_identity`: a customer to own them.
- :func:`call_asgi` / :func:`acall_asgi` and :func:`call_wsgi`: run one request through an
  ASGI or WSGI application (your app behind authcore's middleware) in process, without a
  server or an HTTP client, and get a :class:`TestResponse` back.

This module is a toolkit on top of the core (like the command line), so it may import the
memory backend; the core itself never does.
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from typing import Any

import attrs

from authcore.audit import AuditEvent
from authcore.backends.memory import MemoryRateLimiter, MemoryStore
from authcore.ratelimit import RateLimitPolicy
from authcore.records import IdentityRecord, PortalSessionRecord, RootKeyRecord, WorkspaceRecord
from authcore.tokens import (
    DEFAULT_PORTAL_TOKEN_PREFIX,
    DEFAULT_ROOT_KEY_PREFIX,
    Secret,
    generate_id,
    issue_token,
)

__all__ = [
    "MemoryRateLimiter",
    "MemoryStore",
    "RecordingAuditSink",
    "SettableClock",
    "TestResponse",
    "acall_asgi",
    "add_identity",
    "call_asgi",
    "call_wsgi",
    "issue_portal_session",
    "issue_root_key",
    "make_workspace",
]


@attrs.define
class SettableClock:
    """A clock that only moves when told. Call it for seconds; :meth:`us` for microseconds."""

    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def us(self) -> int:
        """Return the time in integer microseconds (for limiters)."""
        return round(self.now * 1_000_000)

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        self.now += seconds

    def set(self, now: float) -> None:
        """Set the clock to ``now``."""
        self.now = now


@attrs.define
class RecordingAuditSink:
    """Keeps every audit event, in order, in :attr:`events`."""

    events: list[AuditEvent] = attrs.Factory(list)

    def record(self, event: AuditEvent, /) -> None:
        """Keep ``event``."""
        self.events.append(event)

    async def arecord(self, event: AuditEvent, /) -> None:
        """Keep ``event``."""
        self.events.append(event)


def make_workspace(
    store: MemoryStore,
    workspace_id: str = "ws_test",
    *,
    disabled: bool = False,
    rate_limit: RateLimitPolicy | None = None,
    org_id: str | None = None,
) -> WorkspaceRecord:
    """Put a workspace in ``store`` and return it."""
    record = WorkspaceRecord(
        id=workspace_id,
        name=workspace_id,
        disabled=disabled,
        rate_limit=rate_limit,
        org_id=org_id,
    )
    store.put_workspace(record)
    return record


def issue_root_key(
    store: MemoryStore,
    workspace_id: str,
    permissions: Iterable[str] = (),
    *,
    now: float = 1_800_000_000.0,
    expires_at: int | None = None,
    revoked: bool = False,
    name: str | None = None,
    prefix: str = DEFAULT_ROOT_KEY_PREFIX,
    rate_limit: RateLimitPolicy | None = None,
    identity_id: str | None = None,
) -> tuple[RootKeyRecord, Secret]:
    """Store a new root key for ``workspace_id``; return its record and the raw key.

    ``rate_limit`` is the key's own limit (on top of the workspace's); ``identity_id`` the
    identity it belongs to (see :func:`add_identity`).
    """
    issued = issue_token(prefix, "key")
    record = RootKeyRecord(
        id=issued.id,
        workspace_id=workspace_id,
        digest=issued.digest,
        start=issued.start,
        name=name,
        permissions=tuple(permissions),
        created_at=int(now),
        expires_at=expires_at,
        revoked_at=int(now) if revoked else None,
        rate_limit=rate_limit,
        identity_id=identity_id,
    )
    store.put_root_key(record)
    return record, issued.secret


def add_identity(
    store: MemoryStore,
    workspace_id: str,
    external_id: str,
    *,
    rate_limit: RateLimitPolicy | None = None,
    meta: str | None = None,
    now: float = 1_800_000_000.0,
) -> IdentityRecord:
    """Store a new identity (one customer of the API) in ``workspace_id``; return it."""
    record = IdentityRecord(
        id=generate_id("idt"),
        workspace_id=workspace_id,
        external_id=external_id,
        meta=meta,
        rate_limit=rate_limit,
        created_at=int(now),
    )
    store.put_identity(record)
    return record


def issue_portal_session(
    store: MemoryStore,
    workspace_id: str,
    identity_id: str,
    permissions: Iterable[str] = (),
    *,
    key_permissions: Iterable[str] = (),
    now: float = 1_800_000_000.0,
    ttl: int = 3600,
    revoked: bool = False,
    prefix: str = DEFAULT_PORTAL_TOKEN_PREFIX,
    rate_limit: RateLimitPolicy | None = None,
) -> tuple[PortalSessionRecord, Secret]:
    """Store a new portal session of identity ``identity_id``; return it and the raw token.

    ``permissions``: what the session may do in the portal; ``key_permissions``: the most a
    key made in the portal may hold; ``rate_limit``: the session's own limit (on top of the
    workspace's). An identity ``identity_id`` (external id the same) is stored first when the
    store has none: a session always belongs to one, whose shared limit its requests count
    against.
    """
    if store.find_identity(identity_id) is None:
        store.put_identity(
            IdentityRecord(
                id=identity_id,
                workspace_id=workspace_id,
                external_id=identity_id,
                created_at=int(now),
            )
        )
    issued = issue_token(prefix, "ps")
    record = PortalSessionRecord(
        id=issued.id,
        workspace_id=workspace_id,
        identity_id=identity_id,
        key_permissions=tuple(key_permissions),
        digest=issued.digest,
        permissions=tuple(permissions),
        created_at=int(now),
        expires_at=int(now) + ttl,
        revoked_at=int(now) if revoked else None,
        rate_limit=rate_limit,
    )
    store.put_portal_session(record)
    return record, issued.secret


# --- running a request through an application, without a server ------------------------------

Headers = Sequence[tuple[str, str]]
_ASGIApp = Callable[
    [
        MutableMapping[str, Any],
        Callable[[], Awaitable[MutableMapping[str, Any]]],
        Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ],
    Awaitable[None],
]


@attrs.frozen
class TestResponse:
    """What an application answered: status, header pairs (lowercase names) and body."""

    __test__ = False  # not a pytest test class, whatever its name says

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        """Return the first value of header ``name`` (case-insensitive), or None."""
        lowered = name.lower()
        return next((value for key, value in self.headers if key == lowered), None)

    def json(self) -> Any:
        """Decode the body as JSON."""
        return json.loads(self.body)


def _split_target(path: str) -> tuple[str, str]:
    target, _, query = path.partition("?")
    return target, query


async def acall_asgi(
    app: _ASGIApp,
    method: str,
    path: str,
    headers: Headers = (),
    body: bytes = b"",
) -> TestResponse:
    """Send one HTTP request through an ASGI application and collect its response.

    Header values are sent as latin-1 bytes, exactly as an ASGI server delivers them, so
    hostile bytes reach the app unchanged. Raises whatever the application raises.
    """
    target, query = _split_target(path)
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": target,
        "raw_path": target.encode("latin-1"),
        "root_path": "",
        "query_string": query.encode("latin-1"),
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    requests = [{"type": "http.request", "body": body, "more_body": False}]
    status = 0
    out_headers: list[tuple[str, str]] = []
    chunks: list[bytes] = []

    async def receive() -> MutableMapping[str, Any]:
        if requests:
            return requests.pop()
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
            out_headers.extend(
                (bytes(k).decode("latin-1").lower(), bytes(v).decode("latin-1"))
                for k, v in message.get("headers", [])
            )
        elif message["type"] == "http.response.body":
            chunks.append(bytes(message.get("body", b"")))

    await app(scope, receive, send)
    return TestResponse(status, tuple(out_headers), b"".join(chunks))


def call_asgi(
    app: _ASGIApp,
    method: str,
    path: str,
    headers: Headers = (),
    body: bytes = b"",
) -> TestResponse:
    """Synchronous form of :func:`acall_asgi` (runs its own event loop)."""
    return asyncio.run(acall_asgi(app, method, path, headers, body))


def call_wsgi(
    app: Callable[..., Iterable[bytes]],
    method: str,
    path: str,
    headers: Headers = (),
    body: bytes = b"",
) -> TestResponse:
    """Send one HTTP request through a WSGI application and collect its response.

    Repeated headers are joined with ", " as WSGI servers do (PEP 3333 has one key per name).
    """
    target, query = _split_target(path)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": target,
        "QUERY_STRING": query,
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for name, value in headers:
        key = name.upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
        environ[key] = f"{environ[key]}, {value}" if key in environ else value
    started: list[Any] = []

    def start_response(status: str, response_headers: list[tuple[str, str]], *_: object) -> Any:
        started[:] = [status, response_headers]
        return lambda data: None

    result = app(environ, start_response)
    try:
        body_out = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    status_line, response_headers = started
    return TestResponse(
        int(status_line.split(" ", 1)[0]),
        tuple((k.lower(), v) for k, v in response_headers),
        body_out,
    )
