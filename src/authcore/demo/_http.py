"""Small HTTP helpers shared by the example API and the dashboard: JSON bodies and problems."""

from __future__ import annotations

import json
from typing import Any, Final, NoReturn

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from authcore.responses import PROBLEM_CONTENT_TYPE

__all__ = [
    "MAX_BODY_BYTES",
    "ProblemError",
    "json_body",
    "json_bytes_response",
    "json_response",
    "problem_response",
    "read_json_object",
]

#: Request bodies are small JSON documents; anything larger is refused before parsing.
MAX_BODY_BYTES: Final = 16 * 1024


class ProblemError(Exception):
    """An HTTP problem that is not an authcore error: bad body, not found, ..."""

    def __init__(self, status: int, code: str, title: str, *, retry_after: int = 0) -> None:
        self.status = status
        self.code = code
        self.title = title
        self.retry_after = retry_after
        super().__init__(code)


def problem_response(status: int, code: str, title: str, *, retry_after: int = 0) -> Response:
    """Return an ``application/problem+json`` response with fixed, safe fields."""
    body = {"type": f"urn:authcore:problem:{code}", "title": title, "status": status, "code": code}
    headers = {"cache-control": "no-store"}
    if retry_after > 0:
        headers["retry-after"] = str(retry_after)
    return Response(
        json.dumps(body, separators=(",", ":")),
        status_code=status,
        media_type=PROBLEM_CONTENT_TYPE,
        headers=headers,
    )


def json_response(payload: Any, status: int = 200) -> JSONResponse:
    """Return JSON that no cache keeps (responses may hold a key shown once)."""
    return JSONResponse(payload, status_code=status, headers={"cache-control": "no-store"})


def json_body(payload: Any) -> bytes:
    """Render ``payload`` exactly as :func:`json_response` does."""
    return bytes(JSONResponse(payload).body)


def json_bytes_response(body: bytes, status: int = 200) -> Response:
    """:func:`json_response` for a body already rendered by :func:`json_body`."""
    return Response(
        body,
        status_code=status,
        media_type="application/json",
        headers={"cache-control": "no-store"},
    )


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        # Two parsers could disagree on which duplicate wins: refuse instead.
        raise ValueError("duplicate member")
    return obj


def _no_constant(name: str) -> NoReturn:
    raise ValueError(name)  # NaN and Infinity are not JSON (RFC 8259 §6)


_DECODER: Final = json.JSONDecoder(object_pairs_hook=_unique_object, parse_constant=_no_constant)


async def read_json_object(request: Request) -> dict[str, Any]:
    """Read the request body as one JSON object.

    Raises:
        ProblemError: 415 not JSON, 413 over :data:`MAX_BODY_BYTES`, 400 unparsable or not an
            object.
    """
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/json":
        raise ProblemError(415, "unsupported_media_type", "The body must be application/json.")
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        raise ProblemError(413, "body_too_large", "The request body is too large.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ProblemError(413, "body_too_large", "The request body is too large.")
        chunks.append(chunk)
    try:
        value = _DECODER.decode(b"".join(chunks).decode("utf-8"))
    except (ValueError, RecursionError):
        raise ProblemError(400, "invalid_body", "The body is not valid JSON.") from None
    if not isinstance(value, dict):
        raise ProblemError(400, "invalid_body", "The body must be a JSON object.")
    return value
