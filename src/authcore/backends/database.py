"""Database URLs: which store a URL names, how it prints, and opening that store.

``sqlite:///PATH`` (the embedded default) and ``postgresql://...`` (or ``postgres://``) name a
store; :func:`open_store` opens one. Messages about a URL name it through
:func:`redact_database_url`, so a password never reaches a log or a terminal.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final

from authcore.errors import ConfigurationError, UnavailableError

if TYPE_CHECKING:
    from authcore.store import Store

__all__ = [
    "DEFAULT_DB",
    "check_database_url",
    "open_store",
    "redact_database_url",
    "sqlite_path",
]

#: The database when no URL is given anywhere: SQLite in the working directory.
DEFAULT_DB: Final = "sqlite:///./authcore.db"

# key=value pairs whose key mentions a password (libpq keyword strings, URL query strings):
# a quoted value may hold spaces and escaped quotes (libpq's rules), anything else runs to the
# next space or "&".
_PASSWORD_PAIR: Final = re.compile(
    r"(?i)(\b[a-z_]*pass[a-z_]*\s*=\s*)(?:'(?:[^'\\]|\\.)*'?|[^\s&]*)"
)
_SCHEME: Final = re.compile(r"[a-z][a-z0-9+.-]{0,19}")


def redact_database_url(url: str) -> str:
    """Return ``url`` (a database URL or a libpq keyword string) without any password.

    Never fails, whatever the text: a URL too broken to parse is redacted all the same. The
    user-info part loses everything after its first ``:``; every ``...pass...=VALUE`` pair (as
    in ``password=``, ``sslpassword=``, ``passfile=``) loses its value.
    """
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest:
        # The last "@" ends the user info (a raw "@" in a password is common): everything
        # before it that follows a ":" is the password, whatever else it contains.
        userinfo, _, after = rest.rpartition("@")
        user, colon, _password = userinfo.partition(":")
        rest = f"{user}{':***' if colon else ''}@{after}"
    return _PASSWORD_PAIR.sub(r"\g<1>***", f"{scheme}{sep}{rest}")


def sqlite_path(url: str) -> str | None:
    """Return the file path of an ``sqlite:///PATH`` URL, None for another scheme.

    Raises:
        ConfigurationError: an ``sqlite:`` URL without a path.
    """
    if not url.startswith("sqlite:"):
        return None
    if not url.startswith("sqlite:///") or len(url) == len("sqlite:///"):
        raise ConfigurationError(
            f"{url!r} is not sqlite:///PATH (relative) or sqlite:////PATH (absolute)"
        )
    return url[len("sqlite:///") :]


def open_store(url: str) -> Store:
    """Open (and migrate) the store at ``url``: ``sqlite:///PATH`` or ``postgresql://...``.

    The store answers both the sync and the async protocols. Messages name the URL redacted.

    Raises:
        ConfigurationError: the URL is not one of the supported forms.
        UnavailableError: the database cannot be opened or reached, or its backend (an
            optional extra) is not installed.
    """
    path = sqlite_path(url)
    try:
        if path is not None:
            # Imported on use: each backend pulls in its own driver.
            from authcore.backends.sqlite import SQLiteStore  # noqa: PLC0415 - see above

            return SQLiteStore(path)
        if url.startswith(("postgresql://", "postgres://")):
            from authcore.backends.postgres import PostgresStore  # noqa: PLC0415 - optional extra

            return PostgresStore(url)
    except UnavailableError as exc:
        raise UnavailableError(
            f"database {redact_database_url(url)} is unavailable ({exc.detail or 'no detail'})"
        ) from None
    except ImportError as exc:
        raise UnavailableError(
            f"the backend for {redact_database_url(url)} is not installed ({exc.name})"
        ) from None
    check_database_url(url)
    raise AssertionError("unreachable: the URL was checked above")  # pragma: no cover


def check_database_url(url: str) -> None:
    """Refuse a URL that names no supported store.

    Raises:
        ConfigurationError: neither ``sqlite:///PATH`` nor ``postgresql://...``.
    """
    if sqlite_path(url) is not None or url.startswith(("postgresql://", "postgres://")):
        return
    scheme, colon, _ = url.partition(":")
    shown = f" {scheme!r}" if colon and _SCHEME.fullmatch(scheme) else ""
    # Only a scheme is ever echoed: the rest may be a keyword string with a password in it.
    raise ConfigurationError(
        f"unsupported database URL scheme{shown} (use sqlite:///PATH or postgresql://USER@HOST/DB)"
    )
