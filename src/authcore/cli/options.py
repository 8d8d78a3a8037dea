"""Argument types and checks that several command groups share.

Every value is checked where argparse reads it, so a bad one is a usage error (exit 2) that
names its option, before anything is opened. Numbers follow the example API's rule: ASCII
digits only (``int()`` would also take Arabic-Indic digits, ``1_0``, ``+1`` and spaces), within
stated bounds.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from collections.abc import Callable, Sequence
from typing import Any, Final
from urllib.parse import urlsplit

from authcore.cli.errors import UsageError
from authcore.errors import AuthcoreError, ClientError, InvalidPermissionError
from authcore.identities import check_identity_meta
from authcore.names import check_name
from authcore.plans import validate_grants
from authcore.ratelimit import RateLimitPolicy
from authcore.records import DEFAULT_LIST_PAGE, MAX_LIST_PAGE

_DIGITS: Final = re.compile(r"[0-9]+", re.ASCII)
#: Bounds of ``--rate-limit N/SECONDS`` (those of :class:`~authcore.ratelimit.RateLimitPolicy`).
RATE_LIMIT_BOUNDS: Final = (
    "a rate limit is N/SECONDS: N in 1..1,000,000 requests per SECONDS in 1..86,400 (a day)"
)
# A JSON argument is bounded before it is parsed; the stored object is smaller still.
_MAX_JSON_ARGUMENT: Final = 8192
_NOT_AN_OBJECT: Final = """must be a JSON object, like '{"plan": "pro"}'"""
# A URL is printable ASCII without spaces, and bounded.
_URL_TEXT: Final = re.compile(r"[!-~]{1,2000}", re.ASCII)
# What an error may echo of a value: enough to recognize it, never a screenful.
_SHOWN: Final = 24


def env_default(name: str, default: str | None) -> str | None:
    value = os.environ.get(name)
    return value if value else default


def shown(text: str) -> str:
    """``text`` as an error may quote it: ``repr`` (escapes control and format characters),
    cut to a few characters."""
    return repr(text if len(text) <= _SHOWN else text[:_SHOWN] + "...")


def whole_number(low: int, high: int, what: str = "a whole number") -> Callable[[str], int]:
    """An argparse type: ASCII digits only, in ``low..high`` (the message names both)."""

    def parse(text: str) -> int:
        digits = text.lstrip("0") or "0"
        if _DIGITS.fullmatch(text) is None or len(digits) > len(str(high)):
            value = None
        else:
            value = int(digits)
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"must be {what} (ASCII digits) in {low:,}..{high:,}, got {shown(text)}"
            )
        return value

    return parse


def add_page_options(parser: argparse.ArgumentParser, parse: Callable[[str], object]) -> None:
    """Add ``--limit`` (records per page) and ``--cursor`` (read by ``parse``: the
    ``next_cursor`` the previous page printed) to a list command."""
    parser.add_argument(
        "--limit",
        type=whole_number(1, MAX_LIST_PAGE),
        default=DEFAULT_LIST_PAGE,
        help=f"records per page, 1..{MAX_LIST_PAGE} (default {DEFAULT_LIST_PAGE})",
    )

    def cursor(text: str) -> object:
        try:
            return parse(text)
        except ClientError:
            raise argparse.ArgumentTypeError(
                f"is not a cursor this list printed, got {shown(text)}"
            ) from None

    parser.add_argument(
        "--cursor", type=cursor, help="start where the previous page ended: its next cursor"
    )


#: An argparse type: a time, in whole seconds since the epoch (the stores' bound).
epoch_seconds: Final = whole_number(1, 2**53 - 1, "seconds since the epoch")


def rate_limit(text: str) -> RateLimitPolicy:
    """An argparse type: ``N/SECONDS``; every bad value gets the one message with both bounds."""
    try:
        return RateLimitPolicy.parse(text)
    except AuthcoreError:
        raise argparse.ArgumentTypeError(f"{RATE_LIMIT_BOUNDS}; got {shown(text)}") from None


def rate_limit_or_none(text: str) -> RateLimitPolicy | None:
    """An argparse type: ``N/SECONDS``, or ``none`` (clear the limit)."""
    return None if text == "none" else rate_limit(text)


def identifier(text: str) -> str:
    # The one rule for names and ids (authcore.names), the one the store applies too: no
    # control, format (bidi) or line-separator character, at most 200 characters.
    try:
        return check_name(text, "value")
    except AuthcoreError:
        raise argparse.ArgumentTypeError(
            "must be 1-200 characters, without control, format (bidi) or line-separator characters"
        ) from None


def json_object(text: str) -> dict[str, Any]:
    """An argparse type: a small JSON object (identity metadata), checked as the store will.

    The store keeps it as canonical JSON of at most 1,024 bytes: string keys, finite numbers.
    """
    value = _json_object(text)
    try:
        check_identity_meta(value)
    except ClientError as exc:
        raise argparse.ArgumentTypeError(exc.detail or exc.message) from None
    return value


def json_object_or_none(text: str) -> dict[str, Any] | None:
    """An argparse type: a JSON object, or ``none`` (clear the metadata)."""
    return None if text == "none" else json_object(text)


def _json_object(text: str) -> dict[str, Any]:
    if len(text) > _MAX_JSON_ARGUMENT:
        raise argparse.ArgumentTypeError(f"longer than {_MAX_JSON_ARGUMENT:,} characters")
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise argparse.ArgumentTypeError(_NOT_AN_OBJECT) from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(_NOT_AN_OBJECT)
    return value


def _refuse_constant(name: str) -> object:
    # json.loads takes NaN and Infinity by default; they are not JSON (RFC 8259 §6).
    raise ValueError(name)


def base_url(text: str) -> str:
    """An argparse type: ``http(s)://host[:port][/path]``, without credentials, query or
    fragment; returned without its trailing slash."""
    if not _usable_base_url(text):
        # Not echoed: a URL may carry a password.
        raise argparse.ArgumentTypeError(
            "must be an http:// or https:// URL like http://127.0.0.1:8000, with no user,"
            " password, query or fragment"
        )
    return text.rstrip("/")


def _usable_base_url(text: str) -> bool:
    if _URL_TEXT.fullmatch(text) is None or "?" in text or "#" in text:
        return False
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - urllib checks the port only when it is read
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and "@" not in parts.netloc


def checked_grants(values: Sequence[str] | None, option: str = "--permission") -> list[str]:
    """The ``--permission`` (or ``option``) values, each checked against the grant grammar,
    and all of them against the bounds of one key or session (``validate_grants``).

    Raises:
        UsageError: a value is not a valid grant, or there are too many.
    """
    grants = list(values or [])
    try:
        validate_grants(grants)
    except InvalidPermissionError as exc:
        raise UsageError(f"{option}: {exc.detail}") from None
    return grants
