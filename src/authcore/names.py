"""Names and ids that reach logs, terminals and pages: one check, used everywhere.

A workspace or key name, an organization id, an end-user id or a dashboard user id is stored,
then shown: in audit events, in log lines, in ``authcore keys list`` and on the dashboard. A
character that changes how the surrounding text is read must not get that far. Refused, by
Unicode general category:

- ``Cc``: control characters, C0 (NUL, CR, LF, ESC, ...), DEL and C1 (U+0080-U+009F, which
  some terminals obey as escape sequences);
- ``Cf``: format characters: the bidi overrides and isolates (U+202A-U+202E, U+2066-U+2069)
  that make text display in another order than it is stored, zero-width characters, the soft
  hyphen;
- ``Zl`` and ``Zp``: U+2028 LINE SEPARATOR and U+2029 PARAGRAPH SEPARATOR, which start a new
  line in editors, browsers and JavaScript;
- ``Cs``: lone surrogates (a JSON ``"\\ud800"`` escape decodes to one). They are not Unicode
  scalar values, so no UTF-8 encoder, database or terminal accepts them.

:func:`check_name` is what the stores, the example API and the command line all call, so the
three accept exactly the same names. :func:`printable` escapes what the check refuses, for
showing text that was stored before the check existed.
"""

from __future__ import annotations

import unicodedata
from typing import Final

from authcore.errors import ClientError

__all__ = ["MAX_NAME_LENGTH", "REFUSED_CATEGORIES", "check_name", "printable", "unsafe_in"]

#: Longest name or id, in characters.
MAX_NAME_LENGTH: Final = 200
#: Unicode general categories that never appear in a name or id (see the module docstring).
REFUSED_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def unsafe_in(text: str) -> bool:
    """Return whether ``text`` holds a character of a refused category."""
    # Printable ASCII is by far the common case and is never refused: skip the table lookups.
    if text.isascii() and text.isprintable():
        return False
    return any(unicodedata.category(char) in REFUSED_CATEGORIES for char in text)


def check_name(value: object, what: str, *, max_length: int = MAX_NAME_LENGTH) -> str:
    """Return ``value`` if it may be used as a name or id.

    ``what`` names the field in the error's developer detail; the value itself is never
    quoted (it may be anything a caller sent).

    Raises:
        ClientError: not a str, blank, longer than ``max_length`` characters, or holding a
            control, format, line/paragraph separator or lone surrogate character (400).
    """
    if not isinstance(value, str) or not value.strip() or len(value) > max_length:
        raise ClientError(f"{what} must be a non-blank str of at most {max_length} characters")
    if unsafe_in(value):
        raise ClientError(
            f"{what} must not contain control, format, line-separator or surrogate characters"
        )
    return value


def printable(text: str) -> str:
    """Return ``text`` with each refused character written as a ``\\uXXXX`` escape."""
    if not unsafe_in(text):
        return text
    return "".join(
        f"\\u{ord(char):04x}" if unicodedata.category(char) in REFUSED_CATEGORIES else char
        for char in text
    )
