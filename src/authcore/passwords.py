"""Password hashing for dashboard users: scrypt with a random salt, constant-time checks.

The stored form is ``scrypt$<log2 n>$<r>$<p>$<salt b64>$<hash b64>`` so parameters can be
raised later without invalidating existing hashes. Pure computation: no I/O, no clock.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from typing import Final

__all__ = ["PasswordHash", "hash_password", "verify_password"]

# RFC 7914 §2 / OWASP: N=2**15, r=8, p=1 costs ~32 MiB and tens of milliseconds.
_LOG2_N: Final = 15
_R: Final = 8
_P: Final = 1
_SALT_BYTES: Final = 16
_HASH_BYTES: Final = 32
# Bounds for parameters read back from storage, so a tampered row cannot make one check
# allocate gigabytes or spin for minutes.
_MAX_LOG2_N: Final = 20
_MAX_R: Final = 16
_MAX_P: Final = 4
_MAX_PASSWORD_LENGTH: Final = 1024


class PasswordHash(str):
    """A stored password hash: a plain ``str`` for storage, ``[secure]`` in any ``repr``.

    So ``repr`` and ``attrs.asdict`` dumps of a dashboard user never carry the hash (which
    would let anyone holding a log run an offline guessing attack).
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "PasswordHash('[secure]')"


def _scrypt(password: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    n = 1 << log2_n
    # maxmem: scrypt needs 128 * n * r bytes (+ p * 128 * r); leave headroom above that.
    return hashlib.scrypt(
        password.encode(),
        salt=salt,
        n=n,
        r=r,
        p=p,
        maxmem=129 * n * r + 128 * r * p + 1024 * 1024,
        dklen=_HASH_BYTES,
    )


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def hash_password(password: str) -> str:
    """Return the stored form of ``password`` (a fresh random salt each call).

    Raises:
        ValueError: ``password`` is not a non-empty str of at most 1024 characters.
    """
    if not isinstance(password, str) or not 0 < len(password) <= _MAX_PASSWORD_LENGTH:
        raise ValueError(f"a password is a str of 1..{_MAX_PASSWORD_LENGTH} characters")
    salt = secrets.token_bytes(_SALT_BYTES)
    derived = _scrypt(password, salt, _LOG2_N, _R, _P)
    return f"scrypt${_LOG2_N}${_R}${_P}${_b64(salt)}${_b64(derived)}"


def verify_password(password: str, hashed: str) -> bool:
    """Tell whether ``password`` matches ``hashed``; a malformed ``hashed`` is False."""
    if not 0 < len(password) <= _MAX_PASSWORD_LENGTH or len(hashed) > 256:
        return False
    parts = hashed.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return False
    try:
        log2_n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt = base64.b64decode(parts[4], validate=True)
        expected = base64.b64decode(parts[5], validate=True)
    except (ValueError, binascii.Error):
        return False
    if not (1 <= log2_n <= _MAX_LOG2_N and 1 <= r <= _MAX_R and 1 <= p <= _MAX_P):
        return False
    if not salt or len(expected) != _HASH_BYTES:
        return False
    return hmac.compare_digest(_scrypt(password, salt, log2_n, r, p), expected)
