"""What may cross the proxy: the header sets, and the grammar of names, paths and values.

Shared by the settings (which refuse an allow-list naming a header that must never cross), the
request side and the response side.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = [
    "DEFAULT_ALLOWED_HEADERS",
    "FORWARDED_PREFIX",
    "HEADER_VALUE",
    "HOP_BY_HOP_HEADERS",
    "NEVER_FORWARDED_HEADERS",
    "PROXY_OWN_HEADERS",
    "QUERY",
    "TOKEN",
    "ascii_lower",
    "path_problem",
]

#: RFC 9110 §7.6.1 and RFC 9112 §9.6: meaningful for one connection only, never forwarded.
HOP_BY_HOP_HEADERS: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",  # not standard, still sent by old clients
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-authenticate",
        "proxy-authorization",
    }
)
# Method and URL override headers: some frameworks let them change what the API executes.
_OVERRIDE_HEADERS: Final = frozenset(
    {
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
        "x-original-url",
        "x-rewrite-url",
    }
)
#: Never copied from the browser, whatever the allow-list says (checked when it is built).
NEVER_FORWARDED_HEADERS: Final = (
    HOP_BY_HOP_HEADERS
    | _OVERRIDE_HEADERS
    | frozenset(
        {
            "authorization",
            "cookie",
            "set-cookie",
            "host",
            "content-length",
            "forwarded",  # RFC 7239
            "x-real-ip",
            "x-forwarded-for",
            "x-forwarded-host",
            "x-forwarded-proto",
        }
    )
)
#: What the proxy itself sets on every upstream request (content-length only with a body).
PROXY_OWN_HEADERS: Final = frozenset({"authorization", "host", "content-length"})
#: The default allow-list of request headers copied upstream.
DEFAULT_ALLOWED_HEADERS: Final = frozenset(
    {"accept", "accept-language", "content-type", "if-match", "if-none-match", "x-request-id"}
)
FORWARDED_PREFIX: Final = "x-forwarded-"

# RFC 9110 §5.6.2: token = 1*tchar.
TOKEN: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", re.ASCII)
# Header values that may reach the API: printable ASCII and SP. RFC 9110 §5.5 also allows HTAB
# and obs-text, but nothing the allow-list names needs them, and refusing them keeps every
# control character (CR, LF, NUL, HTAB, DEL) and every encoding ambiguity out.
HEADER_VALUE: Final = re.compile(r"[\x20-\x7e]*", re.ASCII)
# RFC 3986 §3.3: path = *( "/" segment ), segment = *pchar, pchar = unreserved / pct-encoded /
# sub-delims / ":" / "@". Everything else (backslash, space, controls, non-ASCII, "?", "#") is out.
_PATH_CHARS: Final = re.compile(r"/[A-Za-z0-9\-._~!$&'()*+,;=:@%/]*", re.ASCII)
_PERCENT: Final = re.compile(r"%(.{0,2})", re.ASCII | re.DOTALL)
_HEX2: Final = re.compile(r"[0-9A-Fa-f]{2}", re.ASCII)
# Percent-encoded bytes that would change how the API splits or normalizes the path: "/" and
# "\" (a second separator), "." (dot segments), "%" (double encoding), and control characters.
_FORBIDDEN_ENCODED: Final = frozenset({0x2F, 0x5C, 0x2E, 0x25, 0x7F} | set(range(0x20)))
# A query is passed through only as visible ASCII; "#" would start a fragment.
QUERY: Final = re.compile(r"[\x21-\x22\x24-\x7e]*", re.ASCII)


def ascii_lower(name: str) -> str | None:
    """Return ``name`` lowercased if it is an RFC 9110 token, else None.

    Only ASCII is folded: ``str.lower`` would turn the Kelvin sign into ``k``, letting a
    non-token name impersonate an allowed one.
    """
    return name.lower() if TOKEN.fullmatch(name) else None


def path_problem(path: str) -> str | None:
    """Return why ``path`` (raw, percent-encoded) is unsafe to forward, or None."""
    if not _PATH_CHARS.fullmatch(path):
        # Backslashes, spaces, control characters, non-ASCII, "?", "#".
        return "path has a character outside RFC 3986 pchar"
    for match in _PERCENT.finditer(path):
        escape = match.group(1)
        if not _HEX2.fullmatch(escape):
            return "path has a malformed percent escape"
        if int(escape, 16) in _FORBIDDEN_ENCODED:
            return "path has an encoded '/', '\\', '.', '%' or control character"
    if "//" in path:
        return "path has an empty segment"
    for segment in path.split("/")[1:]:
        # ";" starts path parameters that some servers strip before normalizing ("..;").
        if segment.partition(";")[0] in {".", ".."}:
            return "path has a dot segment"
    return None
