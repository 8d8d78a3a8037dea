"""Helpers the security suite shares: wire encoding, raw ASGI/WSGI drivers, a forged-JWT kit.

The drivers in :mod:`tests.adapters.drivers` go through httpx and Werkzeug's test client, which
is what most tests here use. The raw drivers below build the ASGI scope / WSGI environ by hand,
so a property test can hand the app any bytes a server could deliver (repeated fields, CR, NUL)
without a client library refusing them first.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.test import create_environ

from tests.adapters.world import JWT_SECRET, Answer

Headers = list[tuple[str, str]]

NOW = 1_800_000_000  # SettableClock's default
ISSUER = "authcore-dashboard"
AUDIENCE = "authcore-api"


def on_the_wire(value: str) -> str:
    """Return ``value`` as an app sees it: its UTF-8 bytes, each decoded as latin-1.

    That is what ASGI servers (header bytes) and WSGI servers (PEP 3333 "bytes as str") hand
    over for non-ASCII text, so a Unicode space or a full-width digit arrives as several
    latin-1 characters.
    """
    return value.encode("utf-8").decode("latin-1")


# --- raw drivers ----------------------------------------------------------------------------


async def send_asgi_raw(app: Any, method: str, target: str, headers: Headers) -> Answer:
    """Run one request through an ASGI app with a hand-built scope (header bytes as given)."""
    path, _, query = target.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode("latin-1"),
        "query_string": query.encode("latin-1"),
        "root_path": "",
        "headers": [
            (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    sent: list[dict[str, Any]] = []
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    pairs = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in start.get("headers", [])]
    return Answer.of(start["status"], pairs, body)


def send_wsgi_raw(app: Any, method: str, target: str, headers: Headers) -> Answer:
    """Run one request through a WSGI app with a hand-built environ.

    Repeated fields are joined with ``", "``, as WSGI servers do (PEP 3333 has one key per
    name); values stay latin-1 strings.
    """
    path, _, query = target.partition("?")
    environ = create_environ(path="/", method=method)
    environ["PATH_INFO"] = path
    environ["QUERY_STRING"] = query
    joined: dict[str, list[str]] = {}
    for name, value in headers:
        key = "HTTP_" + name.upper().replace("-", "_")
        joined.setdefault(key, []).append(value)
    for key, values in joined.items():
        environ[key] = ", ".join(values)
    status_line: list[str] = []
    response_headers: list[tuple[str, str]] = []

    def start_response(status: str, pairs: list[tuple[str, str]], exc_info: Any = None) -> Any:
        status_line[:] = [status]
        response_headers[:] = pairs
        return lambda data: None

    chunks = app(environ, start_response)
    try:
        body = b"".join(chunks)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    return Answer.of(int(status_line[0].split(" ", 1)[0]), response_headers, body)


# --- forged JWTs ----------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    """Unpadded base64url (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def json_bytes(value: dict[str, Any] | bytes) -> bytes:
    return value if isinstance(value, bytes) else json.dumps(value).encode()


def good_header(**changes: Any) -> dict[str, Any]:
    header: dict[str, Any] = {"alg": "HS256", "typ": "JWT", "kid": "k1"}
    header.update(changes)
    return header


def good_claims(workspace_id: str, now: int = NOW, **changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user_forged",
        "workspace_id": workspace_id,
        "permissions": ["keys.read"],
        "iat": now,
        "exp": now + 60,
    }
    claims.update(changes)
    return claims


def without(mapping: dict[str, Any], *names: str) -> dict[str, Any]:
    return {key: value for key, value in mapping.items() if key not in names}


def forge(
    header: dict[str, Any] | bytes,
    claims: dict[str, Any] | bytes,
    *,
    key: bytes | None = None,
    digest: Callable[[], Any] = hashlib.sha256,
    signature: str | None = None,
) -> str:
    """Build a compact JWS by hand; HMAC with ``key`` (the world's secret) unless given."""
    signing_input = f"{b64url(json_bytes(header))}.{b64url(json_bytes(claims))}"
    if signature is None:
        mac = hmac.new(key or JWT_SECRET.reveal().encode(), signing_input.encode(), digest)
        signature = b64url(mac.digest())
    return f"{signing_input}.{signature}"


def flip_unused_bits(segment: str) -> str:
    """Return ``segment`` with its last character's unused low bits set: the same bytes,
    a different (non-canonical) spelling (RFC 4648 §3.5)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    spare_bits = {2: 4, 3: 2}.get(len(segment) % 4, 0)
    assert spare_bits, "this segment length has no unused bits"
    index = alphabet.index(segment[-1])
    # The lowest bit is always one of the unused ones: toggling it keeps the decoded bytes.
    return segment[:-1] + alphabet[index ^ 1]


def all_equal(values: Iterable[object]) -> bool:
    items = list(values)
    return all(item == items[0] for item in items)
