"""Helpers the security suite shares: wire encoding, raw ASGI/WSGI drivers, a forged-JWT kit.

The drivers in :mod:`tests.adapters.drivers` go through httpx and Werkzeug's test client, which
is what most tests here use. The raw drivers below use :mod:`authcore.testing`, which builds the
ASGI scope / WSGI environ by hand, so a property test can hand the app any bytes a server could
deliver (repeated fields, CR, NUL) without a client library refusing them first.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Iterable
from typing import Any

from authcore.testing import acall_asgi, call_wsgi
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
# authcore.testing builds the ASGI scope / WSGI environ by hand, header bytes as given; these
# wrappers only reduce its TestResponse to the Answer the adapter matrix compares.


async def send_asgi_raw(app: Any, method: str, target: str, headers: Headers) -> Answer:
    """Run one request through an ASGI app with a hand-built scope (header bytes as given)."""
    response = await acall_asgi(app, method, target, headers)
    return Answer.of(response.status, response.headers, response.body)


def send_wsgi_raw(app: Any, method: str, target: str, headers: Headers) -> Answer:
    """Run one request through a WSGI app; repeated fields joined with ", " as servers do."""
    response = call_wsgi(app, method, target, headers)
    return Answer.of(response.status, response.headers, response.body)


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
