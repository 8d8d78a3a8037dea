"""Small HTTP helpers shared by the example API and the dashboard: bodies, numbers, problems.

Every input is bounded before it is decoded: a body by size (:data:`MAX_BODY_BYTES`) and by the
time it may take to arrive (:data:`BODY_TIMEOUT`), a number in a query by its ASCII digits.
Strings in a body must be Unicode scalar values: a JSON ``"\\ud800"`` escape (a lone surrogate)
is refused here, so it can never reach a database driver, a log or a terminal.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final, NoReturn
from urllib.parse import parse_qsl

import anyio
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from authcore.adapters.starlette import allowed_methods
from authcore.errors import ClientError
from authcore.names import check_name
from authcore.responses import PROBLEM_CONTENT_TYPE

__all__ = [
    "BODY_TIMEOUT",
    "MAX_BODY_BYTES",
    "ProblemError",
    "RenderedResponse",
    "allowed_methods",
    "json_response",
    "path_id",
    "problem_response",
    "query_int",
    "read_fields",
    "read_json_object",
    "refuse_unknown_fields",
]

#: Request bodies are small JSON documents; anything larger is refused before parsing.
MAX_BODY_BYTES: Final = 16 * 1024
#: Seconds a whole request body may take to arrive (a client trickling bytes is cut off).
BODY_TIMEOUT: Final = 10.0

# Numbers in queries are ASCII digits only: str.isdigit() also says yes to U+00B2 (superscript
# two), U+2462 (circled three) and U+1369 (Ethiopic one), which int() then refuses, and int()
# reads Arabic-Indic U+0661 U+0660 as 10.
_DIGITS: Final = re.compile(r"[0-9]{1,9}", re.ASCII)
# Query numbers may be times in epoch seconds (10 digits); their range is checked after.
_QUERY_DIGITS: Final = re.compile(r"[0-9]{1,16}", re.ASCII)
_SURROGATE: Final = re.compile("[\\ud800-\\udfff]")
_MEDIA_JSON: Final = "application/json"
_MEDIA_FORM: Final = "application/x-www-form-urlencoded"
_MAX_FORM_FIELDS: Final = 16


class ProblemError(Exception):
    """An HTTP problem that is not an authcore error: bad body, not found, ..."""

    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        *,
        retry_after: int = 0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.title = title
        self.retry_after = retry_after
        self.headers = dict(headers or {})
        super().__init__(code)


def problem_response(
    status: int,
    code: str,
    title: str,
    *,
    retry_after: int = 0,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """Return an ``application/problem+json`` response with fixed, safe fields."""
    body = {"type": f"urn:authcore:problem:{code}", "title": title, "status": status, "code": code}
    all_headers = {"cache-control": "no-store", **(headers or {})}
    if retry_after > 0:
        all_headers["retry-after"] = str(retry_after)
    return Response(
        json.dumps(body, separators=(",", ":")),
        status_code=status,
        media_type=PROBLEM_CONTENT_TYPE,
        headers=all_headers,
    )


def json_response(payload: Any, status: int = 200) -> JSONResponse:
    """Return JSON that no cache keeps (responses may hold a key shown once)."""
    return JSONResponse(payload, status_code=status, headers={"cache-control": "no-store"})


class RenderedResponse(Response):
    """A response sent as it was built once: ``template``'s status, body and header fields.

    For an answer many requests share (a principal's JSON): building a Starlette response
    renders the body and the header block every time, about 4 microseconds; this copies the
    template's header list, so what is added to one response (a cookie) stays its own.
    """

    def __init__(self, template: Response) -> None:
        # Not Response.__init__: it would render and build the header block again.
        self.status_code = template.status_code
        self.body = template.body
        self.background = None
        self.raw_headers = list(template.raw_headers)


#: Longest id a path may name (every id the stores generate is far shorter).
_MAX_PATH_ID: Final = 64


def path_id(request: Request, name: str, what: str) -> str:
    """Return the id in the path, or answer 404: an id no record can have names nothing.

    Raises:
        ProblemError: 404 ``not_found`` for an id that breaks the name rule.
    """
    value = request.path_params[name]
    try:
        return check_name(value, name, max_length=_MAX_PATH_ID)
    except ClientError:
        raise ProblemError(404, "not_found", f"No such {what}.") from None


def query_int(request: Request, name: str, *, default: int, low: int, high: int) -> int:
    """Return the query parameter ``name`` as an int in ``low..high`` (``default`` if absent).

    Raises:
        ProblemError: 400 when it is not ASCII digits in range, or repeated.
    """
    values = request.query_params.getlist(name)
    if not values:
        return default
    if (
        len(values) > 1
        or not _QUERY_DIGITS.fullmatch(values[0])
        or not low <= int(values[0]) <= high
    ):
        raise ProblemError(400, "invalid_query", f"{name} must be a number in {low}..{high}.")
    return int(values[0])


def _too_large() -> ProblemError:
    # The rest of the body is never read: the connection cannot be reused for another request.
    return ProblemError(
        413, "body_too_large", "The request body is too large.", headers={"connection": "close"}
    )


async def _read_body(request: Request, time_limit: float) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not _DIGITS.fullmatch(declared) or int(declared) > MAX_BODY_BYTES):
        raise _too_large()
    chunks: list[bytes] = []
    size = 0
    try:
        with anyio.fail_after(time_limit):
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise _too_large()
                chunks.append(chunk)
    except ClientDisconnect:
        # Nobody will read the answer; a problem (not an exception) keeps the log clean.
        raise ProblemError(400, "client_disconnected", "The request body was cut off.") from None
    except TimeoutError:
        raise ProblemError(
            408,
            "body_timeout",
            "The request body did not arrive in time.",
            headers={"connection": "close"},
        ) from None
    return b"".join(chunks)


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        # Two parsers could disagree on which duplicate wins: refuse instead.
        raise ValueError("duplicate member")
    return obj


def _no_constant(name: str) -> NoReturn:
    raise ValueError(name)  # NaN and Infinity are not JSON (RFC 8259 §6)


_DECODER: Final = json.JSONDecoder(object_pairs_hook=_unique_object, parse_constant=_no_constant)


def _holds_surrogate(value: object) -> bool:
    # Iterative: a document nested as deep as the decoder allows must not recurse here.
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").partition(";")[0].strip().lower()


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        value = _DECODER.decode(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        raise ProblemError(400, "invalid_body", "The body is not valid JSON.") from None
    if not isinstance(value, dict):
        raise ProblemError(400, "invalid_body", "The body must be a JSON object.")
    if _holds_surrogate(value):
        # RFC 8259 §8.2: an escaped lone surrogate is not a Unicode string.
        raise ProblemError(400, "invalid_body", "The body holds a string that is not Unicode.")
    return value


async def read_json_object(request: Request, *, time_limit: float = BODY_TIMEOUT) -> dict[str, Any]:
    """Read the request body as one JSON object whose strings are all valid Unicode.

    Raises:
        ProblemError: 415 not JSON, 413 over :data:`MAX_BODY_BYTES`, 408 slower than
            ``time_limit`` seconds, 400 unparsable, not an object, or a lone surrogate in a string.
    """
    if _media_type(request) != _MEDIA_JSON:
        raise ProblemError(415, "unsupported_media_type", "The body must be application/json.")
    return _json_object(await _read_body(request, time_limit))


async def read_fields(request: Request, *, time_limit: float = BODY_TIMEOUT) -> dict[str, Any]:
    """Read a JSON object or an HTML form (``application/x-www-form-urlencoded``) body.

    Form fields are percent-decoded as strict UTF-8 and may not repeat.

    Raises:
        ProblemError: as :func:`read_json_object`, and 400 for a malformed form.
    """
    media_type = _media_type(request)
    if media_type == _MEDIA_JSON:
        return _json_object(await _read_body(request, time_limit))
    if media_type != _MEDIA_FORM:
        raise ProblemError(
            415, "unsupported_media_type", "The body must be application/json or a form."
        )
    raw = await _read_body(request, time_limit)
    try:
        pairs = parse_qsl(
            raw.decode("ascii"),
            keep_blank_values=True,
            strict_parsing=bool(raw),
            encoding="utf-8",
            errors="strict",
            max_num_fields=_MAX_FORM_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        raise ProblemError(400, "invalid_body", "The body is not a valid form.") from None
    fields = dict(pairs)
    if len(fields) != len(pairs):
        raise ProblemError(400, "invalid_body", "The body is not a valid form.")
    return fields


def refuse_unknown_fields(body: Mapping[str, Any], allowed: Sequence[str]) -> None:
    """Refuse a body that names a field outside ``allowed``.

    Raises:
        ProblemError: 400, the body has an unknown field.
    """
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        # A misspelt "expires_in" must not silently create a key that never expires.
        raise ProblemError(400, "invalid_body", "The body has an unknown field.")
