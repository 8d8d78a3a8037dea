"""In-memory store and rate limiter: thread-safe, for one process and for tests.

The store keeps everything in dictionaries behind one lock; every mutation and its audit event
are applied together under that lock, after all validation, so a failed call changes nothing.
Its async twins call the sync methods inline: there is no I/O to wait for.

The limiter runs the core's pure GCRA (:func:`authcore.ratelimit.decide`) under one lock, so it
is exact under threads; under asyncio it never awaits between read and write, so it is exact
under tasks too.
"""

from __future__ import annotations

import bisect
import itertools
import threading
import time
from collections.abc import Callable, Sequence
from typing import Final, TypeVar

from authcore.audit import AuditEvent
from authcore.backends import base
from authcore.errors import ConflictError
from authcore.ratelimit import RateLimitDecision, RateLimitPolicy, decide
from authcore.store import (
    Actor,
    AuditCursor,
    AuditPage,
    DashboardUserRecord,
    NewPortalExchange,
    NewPortalSession,
    NewRootKey,
    PortalExchangeRecord,
    PortalSessionRecord,
    RootKeyRecord,
    WorkspaceRecord,
)
from authcore.tokens import DEFAULT_PORTAL_TOKEN_PREFIX, DEFAULT_ROOT_KEY_PREFIX, validate_prefix

__all__ = ["MemoryRateLimiter", "MemoryStore"]

_T = TypeVar("_T")


class MemoryStore(base.AsyncTwinsMixin):
    """Workspaces, root keys, portal sessions, audit events and dashboard users, behind one lock.

    Implements :class:`~authcore.store.Store` and :class:`~authcore.store.AsyncStore`.
    """

    def __init__(
        self,
        *,
        root_key_prefix: str = DEFAULT_ROOT_KEY_PREFIX,
        portal_token_prefix: str = DEFAULT_PORTAL_TOKEN_PREFIX,
    ) -> None:
        """Create an empty store.

        Raises:
            ConfigurationError: a prefix is invalid.
        """
        self._root_key_prefix = validate_prefix(root_key_prefix)
        self._portal_token_prefix = validate_prefix(portal_token_prefix)
        self._lock = threading.RLock()
        self._workspaces: dict[str, WorkspaceRecord] = {}
        self._workspace_by_org: dict[str, str] = {}
        self._keys_by_digest: dict[bytes, RootKeyRecord] = {}
        self._key_digest_by_id: dict[str, bytes] = {}
        self._sessions_by_digest: dict[bytes, PortalSessionRecord] = {}
        self._session_digest_by_id: dict[str, bytes] = {}
        self._exchanges: dict[bytes, PortalExchangeRecord] = {}
        # Per workspace: (time, seq, event) sorted ascending, so a page is a bisect and a slice.
        self._audit: dict[str, list[tuple[int, int, AuditEvent]]] = {}
        self._audit_seq = itertools.count(1)
        self._dashboard_users: dict[str, DashboardUserRecord] = {}

    # Seeding (tests and fixtures): no validation, no audit.
    def put_workspace(self, record: WorkspaceRecord) -> None:
        """Insert or replace a workspace record."""
        with self._lock:
            old = self._workspaces.get(record.id)
            if old is not None and old.org_id is not None:
                self._workspace_by_org.pop(old.org_id, None)
            self._workspaces[record.id] = record
            if record.org_id is not None:
                self._workspace_by_org[record.org_id] = record.id

    def put_root_key(self, record: RootKeyRecord) -> None:
        """Insert or replace a root-key record (by digest)."""
        with self._lock:
            self._keys_by_digest[record.digest] = record
            self._key_digest_by_id[record.id] = record.digest

    def put_portal_session(self, record: PortalSessionRecord) -> None:
        """Insert or replace a portal-session record (by digest)."""
        with self._lock:
            self._sessions_by_digest[record.digest] = record
            self._session_digest_by_id[record.id] = record.digest

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

    async def _offload(self, call: Callable[[], _T]) -> _T:
        return call()

    # Store: workspaces
    def _append(self, event: AuditEvent) -> None:
        entries = self._audit.setdefault(event.workspace_id, [])
        bisect.insort(entries, (event.time, next(self._audit_seq), event))

    def _check_org_free(self, org_id: str | None, workspace_id: str) -> None:
        owner = None if org_id is None else self._workspace_by_org.get(org_id)
        if owner is not None and owner != workspace_id:
            raise ConflictError("org id already linked")

    def create_workspace(
        self,
        name: str,
        *,
        org_id: str | None = None,
        rate_limit: RateLimitPolicy | None = None,
        now: float,
        actor: Actor,
    ) -> WorkspaceRecord:
        """Create a workspace. See :class:`~authcore.store.Store` for the errors."""
        record, event = base.plan_create_workspace(
            name, org_id=org_id, rate_limit=rate_limit, now=now, actor=actor
        )
        with self._lock:
            self._check_org_free(record.org_id, record.id)
            self.put_workspace(record)
            self._append(event)
        return record

    def _update_workspace(
        self,
        workspace_id: str,
        plan: Callable[[WorkspaceRecord], tuple[WorkspaceRecord, AuditEvent] | None],
    ) -> WorkspaceRecord | None:
        with self._lock:
            record = self._workspaces.get(workspace_id)
            if record is None:
                return None
            change = plan(record)
            if change is None:
                return record
            updated, event = change
            self._check_org_free(updated.org_id, updated.id)
            self.put_workspace(updated)
            self._append(event)
            return updated

    def disable_workspace(
        self, workspace_id: str, *, now: float, actor: Actor
    ) -> WorkspaceRecord | None:
        """Disable a workspace (credentials of it get 403); None when unknown."""
        return self._update_workspace(
            workspace_id, lambda record: base.plan_disable_workspace(record, now=now, actor=actor)
        )

    def set_rate_limit(
        self, workspace_id: str, policy: RateLimitPolicy | None, *, now: float, actor: Actor
    ) -> WorkspaceRecord | None:
        """Set or clear (None) the workspace's rate-limit policy; None when unknown."""
        return self._update_workspace(
            workspace_id,
            lambda record: base.plan_set_rate_limit(record, policy, now=now, actor=actor),
        )

    def link_org(
        self, workspace_id: str, org_id: str, *, now: float, actor: Actor
    ) -> WorkspaceRecord | None:
        """Link an organization id to the workspace; None when unknown.

        Raises:
            ConflictError: the org id is linked to another workspace.
        """
        return self._update_workspace(
            workspace_id, lambda record: base.plan_link_org(record, org_id, now=now, actor=actor)
        )

    def find_workspace_by_org(self, org_id: str, /) -> WorkspaceRecord | None:
        """Return the workspace linked to ``org_id``."""
        with self._lock:
            workspace_id = self._workspace_by_org.get(org_id)
            return None if workspace_id is None else self._workspaces.get(workspace_id)

    # Store: root keys
    def create_root_key(
        self,
        workspace_id: str,
        *,
        permissions: Sequence[str],
        name: str | None = None,
        expires_at: int | None = None,
        now: float,
        actor: Actor,
    ) -> NewRootKey | None:
        """Create a root key; the raw key is in the result, once. None: unknown workspace."""
        new, event = base.plan_create_root_key(
            workspace_id,
            permissions=permissions,
            name=name,
            expires_at=expires_at,
            now=now,
            actor=actor,
            prefix=self._root_key_prefix,
        )
        with self._lock:
            if workspace_id not in self._workspaces:
                return None
            self.put_root_key(new.record)
            self._append(event)
        return new

    def list_root_keys(self, workspace_id: str, /) -> list[RootKeyRecord]:
        """Return the workspace's root keys (records only), oldest first."""
        with self._lock:
            keys = [
                key for key in self._keys_by_digest.values() if key.workspace_id == workspace_id
            ]
        return sorted(keys, key=lambda key: (key.created_at, key.id))

    def get_root_key(self, key_id: str, /) -> RootKeyRecord | None:
        """Return the root key with id ``key_id``."""
        with self._lock:
            digest = self._key_digest_by_id.get(key_id)
            return None if digest is None else self._keys_by_digest.get(digest)

    def revoke_root_key(self, key_id: str, *, now: float, actor: Actor) -> RootKeyRecord | None:
        """Revoke a root key and return it; None when unknown. Revoking twice keeps the first."""
        with self._lock:
            record = self.get_root_key(key_id)
            if record is None:
                return None
            change = base.plan_revoke_root_key(record, now=now, actor=actor)
            if change is None:
                return record
            updated, event = change
            self.put_root_key(updated)
            self._append(event)
            return updated

    def rotate_root_key(
        self, key_id: str, *, grace_seconds: int, now: float, actor: Actor
    ) -> NewRootKey | None:
        """Replace a key; the old one expires after the grace period (never later than before).

        None when the key is unknown, revoked or expired.
        """
        with self._lock:
            record = self.get_root_key(key_id)
            if record is None:
                return None
            change = base.plan_rotate_root_key(
                record,
                grace_seconds=grace_seconds,
                now=now,
                actor=actor,
                prefix=self._root_key_prefix,
            )
            if change is None:
                return None
            old, new, event = change
            self.put_root_key(old)
            self.put_root_key(new.record)
            self._append(event)
            return new

    # Store: portal sessions
    def create_portal_session(
        self,
        workspace_id: str,
        end_user_id: str,
        *,
        permissions: Sequence[str],
        ttl: int,
        now: float,
        actor: Actor,
    ) -> NewPortalSession | None:
        """Create a portal session; the raw token is in the result, once. None: unknown
        workspace."""
        new, event = base.plan_create_portal_session(
            workspace_id,
            end_user_id,
            permissions=permissions,
            ttl=ttl,
            now=now,
            actor=actor,
            prefix=self._portal_token_prefix,
        )
        with self._lock:
            if workspace_id not in self._workspaces:
                return None
            self.put_portal_session(new.record)
            self._append(event)
        return new

    def revoke_portal_session(
        self, session_id: str, *, now: float, actor: Actor
    ) -> PortalSessionRecord | None:
        """Revoke (log out) a portal session and return it; None when unknown."""
        with self._lock:
            digest = self._session_digest_by_id.get(session_id)
            record = None if digest is None else self._sessions_by_digest.get(digest)
            if record is None:
                return None
            change = base.plan_revoke_portal_session(record, now=now, actor=actor)
            if change is None:
                return record
            updated, event = change
            self.put_portal_session(updated)
            self._append(event)
            return updated

    def get_portal_session(self, session_id: str, /) -> PortalSessionRecord | None:
        """Return the portal session with id ``session_id``."""
        with self._lock:
            digest = self._session_digest_by_id.get(session_id)
            return None if digest is None else self._sessions_by_digest.get(digest)

    def create_portal_exchange(
        self,
        workspace_id: str,
        end_user_id: str,
        *,
        permissions: Sequence[str],
        ttl: int,
        now: float,
        actor: Actor,
    ) -> NewPortalExchange | None:
        """Create a portal session that starts with a one-time exchange code (shown once).

        None: unknown workspace.
        """
        new, exchange, event = base.plan_create_portal_exchange(
            workspace_id,
            end_user_id,
            permissions=permissions,
            ttl=ttl,
            now=now,
            actor=actor,
        )
        with self._lock:
            if workspace_id not in self._workspaces:
                return None
            # Codes past their expiry can never work again: forget them.
            now_seconds = exchange.created_at
            stale = [key for key, old in self._exchanges.items() if old.expires_at <= now_seconds]
            for key in stale:
                del self._exchanges[key]
            self.put_portal_session(new.record)
            self._exchanges[exchange.digest] = exchange
            self._append(event)
        return new

    def exchange_portal_code(self, code_digest: bytes, /, *, now: float) -> NewPortalSession | None:
        """Spend a code once: the session's token (shown once), or None for any unusable code."""
        with self._lock:
            exchange = self._exchanges.get(bytes(code_digest))
            if exchange is None:
                return None
            session = self.get_portal_session(exchange.session_id)
            change = base.plan_exchange_portal_code(
                exchange, session, now=now, prefix=self._portal_token_prefix
            )
            if change is None or session is None:
                return None
            used, started, event = change
            self._exchanges[used.digest] = used
            del self._sessions_by_digest[session.digest]
            self.put_portal_session(started.record)
            self._append(event)
            return started

    # Store: audit
    def append_audit(self, event: AuditEvent, /) -> None:
        """Append an event made elsewhere (e.g. by a handler with ``audit_event``)."""
        if not isinstance(event, AuditEvent):
            raise TypeError("append_audit takes an AuditEvent")
        with self._lock:
            self._append(event)

    def list_audit(
        self, workspace_id: str, *, limit: int = 50, before: AuditCursor | None = None
    ) -> AuditPage:
        """Return up to ``limit`` events of the workspace older than ``before``, newest first."""
        size = base.check_audit_limit(limit)
        with self._lock:
            entries = self._audit.get(workspace_id, [])
            end = len(entries)
            if before is not None:
                end = bisect.bisect_left(entries, (before.time, before.seq))
            chunk = entries[max(0, end - size - 1) : end][::-1]
        page = chunk[:size]
        cursor = AuditCursor(page[-1][0], page[-1][1]) if len(chunk) > size else None
        return AuditPage(tuple(event for _, _, event in page), cursor)

    # Store: dashboard users
    def add_dashboard_user(
        self, user_id: str, org_id: str, password_hash: str, permissions: Sequence[str]
    ) -> DashboardUserRecord:
        """Add a dashboard user (the hash as :func:`authcore.passwords.hash_password` made it).

        Raises:
            ConflictError: the user id is taken.
        """
        record = base.make_dashboard_user(user_id, org_id, password_hash, permissions)
        with self._lock:
            if record.user_id in self._dashboard_users:
                raise ConflictError("user id taken")
            self._dashboard_users[record.user_id] = record
        return record

    def find_dashboard_user(self, user_id: str, /) -> DashboardUserRecord | None:
        """Return the dashboard user ``user_id``."""
        return self._dashboard_users.get(user_id)


class MemoryRateLimiter:
    """GCRA per workspace id, exact under threads and asyncio tasks.

    ``clock_us`` returns integer microseconds since the epoch (default: the system clock).
    ``max_workspaces`` bounds memory: when full, the entries whose bucket is already full
    again (TAT in the past) are dropped first, which loses no state that matters.
    """

    #: No I/O: the async path may call :meth:`hit` without awaiting (see AsyncRateLimiter).
    in_process: Final = True

    def __init__(
        self,
        *,
        clock_us: Callable[[], int] | None = None,
        max_workspaces: int = 100_000,
    ) -> None:
        # None: the system clock, read inline (a call less on every decision).
        self._clock_us = clock_us
        self._max = max_workspaces
        self._lock = threading.Lock()
        self._tat: dict[str, int] = {}

    def hit(self, workspace_id: str, policy: RateLimitPolicy) -> RateLimitDecision:
        """Take one request from ``workspace_id``'s allowance."""
        with self._lock:
            now = time.time_ns() // 1000 if self._clock_us is None else self._clock_us()
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
