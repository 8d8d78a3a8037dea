"""Secrets as a type, and the formats of root keys and portal tokens.

A :class:`Secret` wraps a raw key, token or signing secret so that ``repr``, ``str``,
f-strings, ``attrs.asdict`` and tracebacks show ``[secure]`` and at most a short, non-reversible
fingerprint. The raw value is only reachable through :meth:`Secret.reveal`.

Root keys and portal tokens are ``<prefix><43 base64url characters>`` (256 random bits from
:mod:`secrets`). Stores keep only :func:`digest` of the *whole* presented value.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets as _random
from collections.abc import Iterable, Mapping
from typing import Final, NoReturn

import attrs

from authcore.errors import ConfigurationError

__all__ = [
    "DEFAULT_PORTAL_TOKEN_PREFIX",
    "DEFAULT_ROOT_KEY_PREFIX",
    "SENSITIVE_HEADERS",
    "Digest",
    "IssuedToken",
    "Secret",
    "digest",
    "digests_equal",
    "generate_id",
    "issue_token",
    "redact_headers",
    "validate_prefix",
]

DEFAULT_ROOT_KEY_PREFIX: Final = "ak_"
DEFAULT_PORTAL_TOKEN_PREFIX: Final = "pt_"  # noqa: S105 - a public prefix, not a secret

#: Header names whose values are credentials; :func:`redact_headers` hides them.
SENSITIVE_HEADERS: Final = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"}
)
_RANDOM_BYTES: Final = 32  # 256 bits; the issue asks for at least 128
_START_LENGTH: Final = 6  # random characters shown after the prefix, enough to tell keys apart
# A prefix is lowercase letters/digits ending in "_": it can never start a JWT ("eyJ"), and as
# "." is not allowed it can never take the three-segment shape.
_PREFIX = re.compile(r"[a-z][a-z0-9]{0,14}_", re.ASCII)


class Secret:
    """A raw secret value that never prints.

    Equality is constant-time. The fingerprint is the first 8 hex digits of the value's
    SHA-256, enough to tell two secrets apart in a log, useless for recovering either.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("Secret wraps a str")
        self._value = value

    def reveal(self) -> str:
        """Return the raw value. Call only where the value must leave the process."""
        return self._value

    @property
    def fingerprint(self) -> str:
        """First 8 hex digits of SHA-256 of the value."""
        return hashlib.sha256(self._value.encode()).hexdigest()[:8]

    def __repr__(self) -> str:
        return "Secret('[secure]')"

    def __str__(self) -> str:
        return "[secure]"

    def __format__(self, spec: str) -> str:
        return "[secure]"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __len__(self) -> int:
        return len(self._value)

    def __reduce__(self) -> NoReturn:
        # Pickling would write the raw value wherever the pickle goes.
        raise TypeError("Secret cannot be pickled")


class Digest(bytes):
    """A lookup digest: plain bytes for stores and comparisons, ``[secure]`` in any text.

    Digests are not secrets (SHA-256 of 256 random bits cannot be reversed), but they are the
    keys to the store: nothing prints them, so none ends up in a log, a ``repr`` or an
    ``attrs.asdict`` dump.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "Digest('[secure]')"

    __str__ = __repr__


def digest(value: str) -> Digest:
    """Return the lookup digest of a presented key or token: SHA-256 of the whole value."""
    return Digest(hashlib.sha256(value.encode()).digest())


def digests_equal(a: bytes, b: bytes) -> bool:
    """Compare two digests in constant time."""
    return hmac.compare_digest(a, b)


def generate_id(kind: str) -> str:
    """Return a new public identifier such as ``key_3f9c...`` (96 random bits, hex)."""
    return f"{kind}_{_random.token_hex(12)}"


def validate_prefix(prefix: str) -> str:
    """Return ``prefix`` if it is a valid token prefix.

    Raises:
        ConfigurationError: not lowercase letters/digits ending in ``_``, 2-16 characters.
    """
    if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
        raise ConfigurationError("a token prefix is 2-16 lowercase letters/digits ending in '_'")
    return prefix


@attrs.frozen
class IssuedToken:
    """A freshly generated key or token: shown once, then only its digest is kept."""

    id: str
    secret: Secret = attrs.field(repr=False)
    start: str
    digest: Digest = attrs.field(repr=False, converter=Digest)


def issue_token(prefix: str, id_kind: str) -> IssuedToken:
    """Generate a new root key or portal token with ``prefix``.

    Raises:
        ConfigurationError: the prefix is invalid.
    """
    validate_prefix(prefix)
    value = prefix + _random.token_urlsafe(_RANDOM_BYTES)
    return IssuedToken(
        id=generate_id(id_kind),
        secret=Secret(value),
        start=value[: len(prefix) + _START_LENGTH],
        digest=digest(value),
    )


def redact_headers(
    headers: Iterable[tuple[str, str]] | Mapping[str, str],
) -> list[tuple[str, str]]:
    """Return header pairs safe to log: credential-bearing values become ``[secure]``."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [
        (name, "[secure]" if name.lower() in SENSITIVE_HEADERS else value) for name, value in items
    ]
