"""In-memory store and rate limiter: thread-safe, for one process and for tests.

The limiter runs the core's pure GCRA (:func:`authcore.ratelimit.decide`) under one lock, so it
is exact under threads; under asyncio it never awaits between read and write, so it is exact
under tasks too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from authcore.ratelimit import RateLimitDecision, RateLimitPolicy, decide
from authcore.store import PortalSessionRecord, RootKeyRecord, WorkspaceRecord

__all__ = ["MemoryRateLimiter", "MemoryStore"]


def _now_us() -> int:
    return time.time_ns() // 1000


class MemoryStore:
    """Workspaces, root keys and portal sessions in dictionaries, behind one lock."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._workspaces: dict[str, WorkspaceRecord] = {}
        self._keys_by_digest: dict[bytes, RootKeyRecord] = {}
        self._sessions_by_digest: dict[bytes, PortalSessionRecord] = {}

    # Seeding (the full management API lives with the other backends' operations).
    def put_workspace(self, record: WorkspaceRecord) -> None:
        """Insert or replace a workspace record."""
        with self._lock:
            self._workspaces[record.id] = record

    def put_root_key(self, record: RootKeyRecord) -> None:
        """Insert or replace a root-key record (by digest)."""
        with self._lock:
            self._keys_by_digest[record.digest] = record

    def put_portal_session(self, record: PortalSessionRecord) -> None:
        """Insert or replace a portal-session record (by digest)."""
        with self._lock:
            self._sessions_by_digest[record.digest] = record

    # CredentialStore
    def find_root_key(self, digest: bytes, /) -> RootKeyRecord | None:
        """Return the root key stored under ``digest``."""
        return self._keys_by_digest.get(digest)

    def find_portal_session(self, digest: bytes, /) -> PortalSessionRecord | None:
        """Return the portal session stored under ``digest``."""
        return self._sessions_by_digest.get(digest)

    def find_workspace(self, workspace_id: str, /) -> WorkspaceRecord | None:
        """Return the workspace ``workspace_id``."""
        return self._workspaces.get(workspace_id)

    # AsyncCredentialStore: dictionary reads never block, so they never leave the loop.
    async def afind_root_key(self, digest: bytes, /) -> RootKeyRecord | None:
        """Async twin of :meth:`find_root_key`."""
        return self._keys_by_digest.get(digest)

    async def afind_portal_session(self, digest: bytes, /) -> PortalSessionRecord | None:
        """Async twin of :meth:`find_portal_session`."""
        return self._sessions_by_digest.get(digest)

    async def afind_workspace(self, workspace_id: str, /) -> WorkspaceRecord | None:
        """Async twin of :meth:`find_workspace`."""
        return self._workspaces.get(workspace_id)


class MemoryRateLimiter:
    """GCRA per workspace id, exact under threads and asyncio tasks.

    ``clock_us`` returns integer microseconds since the epoch (default: the system clock).
    ``max_workspaces`` bounds memory: when full, the entries whose bucket is already full
    again (TAT in the past) are dropped first, which loses no state that matters.
    """

    def __init__(
        self,
        *,
        clock_us: Callable[[], int] = _now_us,
        max_workspaces: int = 100_000,
    ) -> None:
        self._clock_us = clock_us
        self._max = max_workspaces
        self._lock = threading.Lock()
        self._tat: dict[str, int] = {}

    def hit(self, workspace_id: str, policy: RateLimitPolicy) -> RateLimitDecision:
        """Take one request from ``workspace_id``'s allowance."""
        with self._lock:
            now = self._clock_us()
            decision, tat = decide(self._tat.get(workspace_id), now, policy)
            if decision.allowed:
                if workspace_id not in self._tat and len(self._tat) >= self._max:
                    self._evict(now)
                self._tat[workspace_id] = tat
            return decision

    async def ahit(self, workspace_id: str, policy: RateLimitPolicy) -> RateLimitDecision:
        """Async twin of :meth:`hit` (no I/O: it never awaits)."""
        return self.hit(workspace_id, policy)

    def _evict(self, now: int) -> None:
        idle = [key for key, tat in self._tat.items() if tat <= now]
        for key in idle:
            del self._tat[key]
        if len(self._tat) >= self._max:
            # Everyone is mid-burst: drop the oldest-inserted entries; they refill soonest.
            for key in list(self._tat)[: len(self._tat) - self._max + 1]:
                del self._tat[key]
