"""Verified JWTs, kept so the same token is not verified twice.

:class:`VerifiedTokenCache` is the bounded, thread-safe :class:`authcore.flow.TokenCache`
every service uses (``AuthSettings(token_cache=...)``). It holds a lock, so it lives beside
the backends rather than in the zero-I/O core, which keeps only the protocol.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Final

from authcore.errors import ConfigurationError
from authcore.keyring import VerifiedClaims

__all__ = ["VerifiedTokenCache"]

_MAX_ENTRIES: Final = 10_000_000


def _check_size(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_ENTRIES:
        raise ConfigurationError(f"{name} must be an int in 1..{_MAX_ENTRIES}")
    return value


class VerifiedTokenCache:
    """A bounded cache of verified JWTs for :class:`authcore.flow.AuthSettings` ``token_cache``.

    Keyed by the SHA-256 of the whole token (32 bytes per entry, whatever the token's size,
    and no token kept in memory). Never returns claims at or past their ``exp``. Evicts the
    least recently used entry when full. Thread-safe.

    Raises:
        ConfigurationError: ``max_entries`` is out of range.
    """

    def __init__(self, max_entries: int = 10_000) -> None:
        self._max = _check_size("max_entries", max_entries)
        self._lock = threading.Lock()
        self._entries: OrderedDict[bytes, VerifiedClaims] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(entries={len(self._entries)}, max_entries={self._max})"

    def get(self, token: str, now: float, /) -> VerifiedClaims | None:
        """Return the claims cached for ``token`` if ``now`` is before their ``exp``."""
        key = hashlib.sha256(token.encode()).digest()
        with self._lock:
            claims = self._entries.get(key)
            if claims is None:
                return None
            if now >= claims.expires_at:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return claims

    def put(self, token: str, claims: VerifiedClaims, /) -> None:
        """Remember that ``token`` verified to ``claims``."""
        key = hashlib.sha256(token.encode()).digest()
        with self._lock:
            self._entries[key] = claims
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        """Drop everything."""
        with self._lock:
            self._entries.clear()
