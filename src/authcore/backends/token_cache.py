"""Verified JWTs, kept so the same token is not verified twice.

:class:`VerifiedTokenCache` is the bounded, thread-safe :class:`authcore.flow.TokenCache`
every service uses (``AuthSettings(token_cache=...)``). It holds a lock, so it lives beside
the backends rather than in the zero-I/O core, which keeps only the protocol.
"""

from __future__ import annotations

import hashlib
import math
import threading

from authcore.backends._tables import DEFAULT_MAX_BYTES, MISS, LruTable, check_bytes, check_size
from authcore.keyring import VerifiedClaims

__all__ = ["VerifiedTokenCache"]


class VerifiedTokenCache:
    """A bounded cache of verified JWTs for :class:`authcore.flow.AuthSettings` ``token_cache``.

    Keyed by the SHA-256 of the whole token (32 bytes per entry, whatever the token's size,
    and no token kept in memory). Never returns claims at or past their ``exp``. Bounded by
    ``max_entries`` and by ``max_bytes`` of estimated cost (64 MiB by default; the claims'
    strings and grants, estimated once on insert); evicts the least recently used entries
    until both hold. Expired claims are dropped when met, and each insert sweeps a few.
    Thread-safe.

    Raises:
        ConfigurationError: ``max_entries`` or ``max_bytes`` is out of range.
    """

    def __init__(self, max_entries: int = 10_000, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._table = LruTable(
            check_size("max_entries", max_entries), check_bytes("max_bytes", max_bytes)
        )
        self._lock = threading.Lock()
        # The latest time a get was asked at: what put sweeps expired claims by (the flow's
        # TokenCache protocol hands put no time; it always asks get first).
        self._now = -math.inf

    def __len__(self) -> int:
        return len(self._table)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(entries={len(self._table)}, "
            f"max_entries={self._table.max_entries})"
        )

    @property
    def byte_size(self) -> int:
        """Estimated bytes the cached claims hold (at most ``max_bytes``)."""
        return self._table.byte_size

    def get(self, token: str, now: float, /) -> VerifiedClaims | None:
        """Return the claims cached for ``token`` if ``now`` is before their ``exp``."""
        key = hashlib.sha256(token.encode()).digest()
        with self._lock:
            self._now = now
            claims = self._table.get(key, now)
        return None if claims is MISS else claims  # type: ignore[return-value]  # claims only

    def put(self, token: str, claims: VerifiedClaims, /) -> None:
        """Remember that ``token`` verified to ``claims``."""
        key = hashlib.sha256(token.encode()).digest()
        with self._lock:
            self._table.put(key, claims, claims.expires_at, self._now)

    def clear(self) -> None:
        """Drop everything."""
        with self._lock:
            self._table.clear()
