"""Opaque page cursors: what a list hands out as ``next_cursor`` and reads back as ``cursor``.

A cursor is the sort key of the last record of a page, tagged with the list it belongs to,
encoded as unpadded base64url (RFC 4648 §5), so it travels in a query string as it is::

    keys        "k1:" <created_at> "." <key id>         -> KeyCursor
    identities  "i1:" <external id>                     -> str (list after it)
    workspaces  "w1:" <workspace id>                    -> str (list after it)
    audit       "a1:" <time> "." <seq>                  -> AuditCursor

Callers must treat it as opaque: the format may change (the ``1`` is its version). A cursor
of another list, or text that is no cursor, is a :class:`~authcore.errors.ClientError` (400),
never a page that starts somewhere else. Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Final

from authcore.errors import ClientError
from authcore.records import AuditCursor, KeyCursor

__all__ = [
    "MAX_CURSOR_LENGTH",
    "audit_cursor",
    "identity_cursor",
    "key_cursor",
    "parse_audit_cursor",
    "parse_identity_cursor",
    "parse_key_cursor",
    "parse_workspace_cursor",
    "workspace_cursor",
]

#: Longest cursor text accepted: an external id of 200 characters of 4 UTF-8 bytes, encoded.
MAX_CURSOR_LENGTH: Final = 1100

_BASE64URL: Final = re.compile(r"[A-Za-z0-9_-]+", re.ASCII)
_NUMBERED: Final = re.compile(r"([0-9]{1,18})\.(.+)", re.ASCII | re.DOTALL)
# Ids are made by authcore.tokens.generate_id ("key_" + hex); this admits them and never a
# character a store could choke on (NUL on PostgreSQL).
_KEY_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,200}", re.ASCII)


def _encode(tag: str, text: str) -> str:
    raw = f"{tag}:{text}".encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _decode(tag: str, token: object) -> str:
    """Return the text of ``token`` after its ``tag``.

    Raises:
        ClientError: not a cursor of this list.
    """
    if (
        not isinstance(token, str)
        or len(token) > MAX_CURSOR_LENGTH
        or not _BASE64URL.fullmatch(token)
    ):
        raise ClientError("invalid cursor")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        text = raw.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ClientError("invalid cursor") from None
    prefix = f"{tag}:"
    if not text.startswith(prefix) or len(text) == len(prefix):
        raise ClientError("invalid cursor")
    return text[len(prefix) :]


def _numbered(text: str) -> tuple[int, str]:
    match = _NUMBERED.fullmatch(text)
    if match is None:
        raise ClientError("invalid cursor")
    return int(match.group(1)), match.group(2)


def key_cursor(cursor: KeyCursor) -> str:
    """The opaque text of a page of keys' ``next_cursor``."""
    return _encode("k1", f"{cursor.created_at}.{cursor.id}")


def parse_key_cursor(token: str) -> KeyCursor:
    """Read what :func:`key_cursor` wrote.

    Raises:
        ClientError: not a cursor of the list of keys (400).
    """
    created_at, key_id = _numbered(_decode("k1", token))
    if not _KEY_ID.fullmatch(key_id):
        raise ClientError("invalid cursor")
    return KeyCursor(created_at, key_id)


def identity_cursor(external_id: str) -> str:
    """The opaque text of a page of identities' ``next_cursor`` (the last external id)."""
    return _encode("i1", external_id)


def parse_identity_cursor(token: str) -> str:
    """Read what :func:`identity_cursor` wrote: the external id to list after.

    Raises:
        ClientError: not a cursor of the list of identities (400).
    """
    return _decode("i1", token)


def workspace_cursor(workspace_id: str) -> str:
    """The opaque text of a page of workspaces' ``next_cursor`` (the last workspace id)."""
    return _encode("w1", workspace_id)


def parse_workspace_cursor(token: str) -> str:
    """Read what :func:`workspace_cursor` wrote: the workspace id to list after.

    Raises:
        ClientError: not a cursor of the list of workspaces (400).
    """
    return _decode("w1", token)


def audit_cursor(cursor: AuditCursor) -> str:
    """The opaque text of a page of audit events' ``next_cursor``."""
    return _encode("a1", str(cursor))


def parse_audit_cursor(token: str) -> AuditCursor:
    """Read what :func:`audit_cursor` wrote.

    Raises:
        ClientError: not a cursor of the audit log (400).
    """
    return AuditCursor.parse(_decode("a1", token))
