"""Outcome -> HTTP: status, headers and an ``application/problem+json`` body.

Pure and shared by every adapter, so every framework answers the same. The rules are data:
each error class carries its status, RFC 6750 error code, stable code and fixed message
(:mod:`authcore.errors`); :data:`_CHALLENGED` says which statuses carry a Bearer challenge.
Invariants: the body and headers are built only from those class attributes and from numbers
(rate-limit decision, retry-after), never from ``detail``, the request, or the credential; so
a response can never echo a secret and every "invalid" reason answers identically.
"""

from __future__ import annotations

import json
from typing import Final

import attrs

from authcore.errors import (
    AuthcoreError,
    MethodNotAllowedError,
    RateLimitedError,
    UnavailableError,
)
from authcore.ratelimit import RateLimitDecision
from authcore.ratelimit_fields import LimitFields

__all__ = [
    "PROBLEM_CONTENT_TYPE",
    "HTTPResponse",
    "error_response",
    "problem_body",
    "rate_limit_headers",
]

PROBLEM_CONTENT_TYPE: Final = "application/problem+json"

# RFC 6750 §3: 401 always challenges; 400 and 403 challenge only when the error is a Bearer
# error (invalid_request, insufficient_scope). 403 "workspace disabled" has no Bearer error.
_CHALLENGED: Final = frozenset({400, 401, 403})


@attrs.frozen
class HTTPResponse:
    """A framework-neutral response: status, header pairs (lowercase names), body bytes."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


def rate_limit_headers(decision: RateLimitDecision) -> list[tuple[str, str]]:
    """Return the legacy ``RateLimit-Limit``, ``-Remaining`` and ``-Reset`` fields of a
    decision (draft-ietf-httpapi-ratelimit-headers up to -06; see
    :mod:`authcore.ratelimit_fields` for the current draft's two)."""
    return [
        ("ratelimit-limit", str(decision.limit)),
        ("ratelimit-remaining", str(decision.remaining)),
        ("ratelimit-reset", str(decision.reset)),
    ]


def problem_body(error: AuthcoreError) -> bytes:
    """Return the RFC 9457 problem document for ``error``: fixed, safe fields only."""
    return json.dumps(
        {
            "type": f"urn:authcore:problem:{error.code}",
            "title": error.message,
            "status": error.status,
            "code": error.code,
        },
        separators=(",", ":"),
    ).encode()


def _challenge(error: AuthcoreError, realm: str) -> str | None:
    if error.status not in _CHALLENGED:
        return None
    if error.bearer_error is None:
        # 401 without an error code (no credential, other scheme): RFC 6750 §3.1 says the
        # challenge then carries no error attribute. A 400/403 without a Bearer error has none.
        return f'Bearer realm="{realm}"' if error.status == 401 else None
    return f'Bearer realm="{realm}", error="{error.bearer_error}"'


def error_response(error: AuthcoreError, *, realm: str = "api") -> HTTPResponse:
    """Map an authcore error to its response (see the table in docs/architecture.md)."""
    headers: list[tuple[str, str]] = [
        ("content-type", PROBLEM_CONTENT_TYPE),
        ("cache-control", "no-store"),
    ]
    challenge = _challenge(error, realm)
    if challenge is not None:
        headers.append(("www-authenticate", challenge))
    if isinstance(error, RateLimitedError):
        headers.append(("retry-after", str(max(1, error.decision.retry_after))))
        fields = error.fields or LimitFields.for_decision(error.decision)
        headers.extend(fields.headers(error.decision, error.decisions))
    elif isinstance(error, UnavailableError):
        headers.append(("retry-after", str(max(1, error.retry_after))))
    elif isinstance(error, MethodNotAllowedError):
        headers.append(("allow", ", ".join(error.allow)))
    return HTTPResponse(error.status, tuple(headers), problem_body(error))
