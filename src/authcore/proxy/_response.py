"""The response side: which of the API's response headers may reach the browser."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from authcore.proxy._rules import HEADER_VALUE, HOP_BY_HOP_HEADERS, ascii_lower
from authcore.tokens import Secret

__all__ = ["filter_response_headers"]

# Date and Server describe the hop, not the resource: the server running the proxy writes its
# own, so passing the API's on would send each twice.
_RESPONSE_DROPPED: Final = HOP_BY_HOP_HEADERS | frozenset(
    {"set-cookie", "set-cookie2", "authorization", "date", "server"}
)


def filter_response_headers(
    headers: Iterable[tuple[str, str]], *, token: Secret | None = None
) -> tuple[tuple[str, str], ...]:
    """Return the API's response headers that may reach the browser.

    Dropped: hop-by-hop headers and any named in ``Connection``, ``Set-Cookie`` (the API's
    cookies are not the dashboard's), any ``Authorization``, names that are not tokens, values
    with control characters, and anything that contains ``token`` (the minted JWT).
    """
    pairs = list(headers)
    dropped = set(_RESPONSE_DROPPED)
    for name, value in pairs:
        if ascii_lower(name) == "connection":
            dropped.update(option.strip(" \t").lower() for option in value.split(","))
    raw_token = None if token is None else token.reveal()
    kept: list[tuple[str, str]] = []
    for name, value in pairs:
        lowered = ascii_lower(name)
        if lowered is None or lowered in dropped:
            continue
        if not HEADER_VALUE.fullmatch(value):
            continue
        if raw_token and (raw_token in value or raw_token in name):
            continue
        kept.append((lowered, value))
    return tuple(kept)
