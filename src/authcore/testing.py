"""Public test doubles: use them to test your app, as authcore's own tests do.

- :class:`SettableClock`: a clock you move by hand (seconds and microseconds views).
- :class:`RecordingAuditSink`: keeps every audit event it receives.
- :class:`~authcore.backends.memory.MemoryStore` and
  :class:`~authcore.backends.memory.MemoryRateLimiter`: real in-memory backends.
- :func:`issue_root_key` / :func:`issue_portal_session`: put a working credential in a
  memory store and get the raw value back.

This module is a toolkit on top of the core (like the command line), so it may import the
memory backend; the core itself never does.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from authcore.audit import AuditEvent
from authcore.backends.memory import MemoryRateLimiter, MemoryStore
from authcore.ratelimit import RateLimitPolicy
from authcore.store import PortalSessionRecord, RootKeyRecord, WorkspaceRecord
from authcore.tokens import (
    DEFAULT_PORTAL_TOKEN_PREFIX,
    DEFAULT_ROOT_KEY_PREFIX,
    Secret,
    issue_token,
)

__all__ = [
    "MemoryRateLimiter",
    "MemoryStore",
    "RecordingAuditSink",
    "SettableClock",
    "issue_portal_session",
    "issue_root_key",
    "make_workspace",
]


@attrs.define
class SettableClock:
    """A clock that only moves when told. Call it for seconds; :meth:`us` for microseconds."""

    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def us(self) -> int:
        """Return the time in integer microseconds (for limiters)."""
        return round(self.now * 1_000_000)

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        self.now += seconds

    def set(self, now: float) -> None:
        """Set the clock to ``now``."""
        self.now = now


@attrs.define
class RecordingAuditSink:
    """Keeps every audit event, in order, in :attr:`events`."""

    events: list[AuditEvent] = attrs.Factory(list)

    def record(self, event: AuditEvent, /) -> None:
        """Keep ``event``."""
        self.events.append(event)

    async def arecord(self, event: AuditEvent, /) -> None:
        """Keep ``event``."""
        self.events.append(event)


def make_workspace(
    store: MemoryStore,
    workspace_id: str = "ws_test",
    *,
    disabled: bool = False,
    rate_limit: RateLimitPolicy | None = None,
    org_id: str | None = None,
) -> WorkspaceRecord:
    """Put a workspace in ``store`` and return it."""
    record = WorkspaceRecord(
        id=workspace_id,
        name=workspace_id,
        disabled=disabled,
        rate_limit=rate_limit,
        org_id=org_id,
    )
    store.put_workspace(record)
    return record


def issue_root_key(
    store: MemoryStore,
    workspace_id: str,
    permissions: Iterable[str] = (),
    *,
    now: float = 1_800_000_000.0,
    expires_at: int | None = None,
    revoked: bool = False,
    name: str | None = None,
    prefix: str = DEFAULT_ROOT_KEY_PREFIX,
) -> tuple[RootKeyRecord, Secret]:
    """Store a new root key for ``workspace_id``; return its record and the raw key."""
    issued = issue_token(prefix, "key")
    record = RootKeyRecord(
        id=issued.id,
        workspace_id=workspace_id,
        digest=issued.digest,
        start=issued.start,
        name=name,
        permissions=tuple(permissions),
        created_at=int(now),
        expires_at=expires_at,
        revoked_at=int(now) if revoked else None,
    )
    store.put_root_key(record)
    return record, issued.secret


def issue_portal_session(
    store: MemoryStore,
    workspace_id: str,
    end_user_id: str,
    permissions: Iterable[str] = (),
    *,
    now: float = 1_800_000_000.0,
    ttl: int = 3600,
    revoked: bool = False,
    prefix: str = DEFAULT_PORTAL_TOKEN_PREFIX,
) -> tuple[PortalSessionRecord, Secret]:
    """Store a new portal session; return its record and the raw token."""
    issued = issue_token(prefix, "ps")
    record = PortalSessionRecord(
        id=issued.id,
        workspace_id=workspace_id,
        end_user_id=end_user_id,
        digest=issued.digest,
        permissions=tuple(permissions),
        created_at=int(now),
        expires_at=int(now) + ttl,
        revoked_at=int(now) if revoked else None,
    )
    store.put_portal_session(record)
    return record, issued.secret
