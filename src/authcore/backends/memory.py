"""In-memory store and rate limiter: thread-safe, for one process and for tests.

The store keeps everything in dictionaries behind one lock and runs the changes of
:mod:`authcore.changes` under it: a change's writes and its audit event are applied together
once the change has finished, so a failed call changes nothing. Its async twins run inline:
there is no I/O to wait for.

The limiter runs the core's pure GCRA (:func:`authcore.ratelimit.decide`) under one lock, so it
is exact under threads; under asyncio it never awaits between read and write, so it is exact
under tasks too.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import threading
import time
from collections.abc import Callable, Sequence
from typing import Final, TypeVar

from authcore import changes
from authcore.audit import AuditEvent
from authcore.errors import ConflictError
from authcore.identities import IDENTITY_TAKEN
from authcore.ratelimit import (
    MAX_TIME_US,
    Level,
    RateLimitDecision,
    RateLimitPolicy,
    decide,
    decide_levels,
)
from authcore.records import (
    AuditCursor,
    AuditPage,
    DashboardUserRecord,
    IdentityRecord,
    PortalExchangeRecord,
    PortalSessionRecord,
    RootKeyRecord,
    UsageCount,
    WorkspaceRecord,
)
from authcore.steps import (
    AddUsage,
    Append,
    Change,
    Delete,
    DeleteUsage,
    EnsureIdentity,
    FindIdentity,
    Insert,
    ListAudit,
    ListIdentities,
    ListPortalSessions,
    ListRootKeys,
    ListWorkspaces,
    Load,
    MarkUsed,
    PruneExchanges,
    ReadLastUsed,
    ReadUsage,
    RollUpUsage,
    Step,
    Update,
    drive,
)
from authcore.store import AsyncStore, Store
from authcore.tokens import DEFAULT_PORTAL_TOKEN_PREFIX, DEFAULT_ROOT_KEY_PREFIX, validate_prefix

__all__ = ["MemoryRateLimiter", "MemoryStore"]

_T = TypeVar("_T")


class MemoryStore(Store, AsyncStore):
    """Workspaces, root keys, portal sessions, audit events and dashboard users, behind one lock.

    A :class:`~authcore.store.Store` and :class:`~authcore.store.AsyncStore`: the three
    lookups and :meth:`run`; every management method is a change from
    :mod:`authcore.changes`. A change runs under the lock, and its writes are applied only
    once it has finished, so a change that fails midway writes nothing.
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
        self.root_key_prefix = validate_prefix(root_key_prefix)
        self.portal_token_prefix = validate_prefix(portal_token_prefix)
        self._lock = threading.RLock()
        self._workspaces: dict[str, WorkspaceRecord] = {}
        self._workspace_by_org: dict[str, str] = {}
        self._identities: dict[str, IdentityRecord] = {}
        # (workspace id, external id) -> identity id: the unique index.
        self._identity_by_external: dict[tuple[str, str], str] = {}
        self._keys_by_digest: dict[bytes, RootKeyRecord] = {}
        self._key_digest_by_id: dict[str, bytes] = {}
        self._sessions_by_digest: dict[bytes, PortalSessionRecord] = {}
        self._session_digest_by_id: dict[str, bytes] = {}
        self._exchanges: dict[bytes, PortalExchangeRecord] = {}
        # Per workspace: (time, seq, event) sorted ascending, so a page is a bisect and a slice.
        self._audit: dict[str, list[tuple[int, int, AuditEvent]]] = {}
        self._audit_seq = itertools.count(1)
        self._dashboard_users: dict[str, DashboardUserRecord] = {}
        # (workspace, span, bucket, credential, outcome) -> count; (workspace, credential) ->
        # the last time it was allowed.
        self._usage: dict[tuple[str, int, int, str, str], int] = {}
        self._last_used: dict[tuple[str, str], int] = {}

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

    def put_identity(self, record: IdentityRecord) -> None:
        """Insert or replace an identity record (by id)."""
        with self._lock:
            self._identities[record.id] = record
            self._identity_by_external[(record.workspace_id, record.external_id)] = record.id

    def _delete_identity(self, record: IdentityRecord) -> None:
        self._identities.pop(record.id, None)
        key = (record.workspace_id, record.external_id)
        if self._identity_by_external.get(key) == record.id:
            del self._identity_by_external[key]

    def put_root_key(self, record: RootKeyRecord) -> None:
        """Insert or replace a root-key record (by id; its digest may have changed)."""
        with self._lock:
            old = self._key_digest_by_id.get(record.id)
            if old is not None and old != record.digest:
                del self._keys_by_digest[old]
            self._keys_by_digest[record.digest] = record
            self._key_digest_by_id[record.id] = record.digest

    def put_portal_session(self, record: PortalSessionRecord) -> None:
        """Insert or replace a portal-session record (by id; its digest may have changed)."""
        with self._lock:
            old = self._session_digest_by_id.get(record.id)
            if old is not None and old != record.digest:
                del self._sessions_by_digest[old]
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

    def find_identity(self, identity_id: str, /) -> IdentityRecord | None:
        """Return the identity ``identity_id``."""
        return self._identities.get(identity_id)

    # AsyncCredentialStore: dictionary reads never block, so they never leave the loop.
    async def afind_identity(self, identity_id: str, /) -> IdentityRecord | None:
        """Async twin of :meth:`find_identity`."""
        return self._identities.get(identity_id)

    async def afind_root_key(self, digest: bytes, /) -> RootKeyRecord | None:
        """Async twin of :meth:`find_root_key`."""
        return self._keys_by_digest.get(digest)

    async def afind_portal_session(self, digest: bytes, /) -> PortalSessionRecord | None:
        """Async twin of :meth:`find_portal_session`."""
        return self._sessions_by_digest.get(digest)

    async def afind_workspace(self, workspace_id: str, /) -> WorkspaceRecord | None:
        """Async twin of :meth:`find_workspace`."""
        return self._workspaces.get(workspace_id)

    # Changes: the transaction protocol of authcore.changes, over the dictionaries.
    def run(self, change: Change[_T], /) -> _T:
        """Run ``change`` under the lock; its writes apply together when it has finished."""
        with self._lock:
            pending: list[Callable[[], None]] = []
            result = drive(change, lambda step: self._perform(step, pending))
            for write in pending:
                write()
            return result

    async def arun(self, change: Change[_T], /) -> _T:
        """Async twin of :meth:`run` (no I/O: it never awaits)."""
        return self.run(change)

    def _perform(self, step: Step, pending: list[Callable[[], None]]) -> object:
        # Reads answer at once; writes are checked now (conflicts) and applied at the end.
        if isinstance(step, Load):
            return self._load(step)
        if isinstance(step, ListRootKeys):
            return self._list_keys(step)
        if isinstance(step, ListAudit):
            return self._page(step)
        if isinstance(step, ListWorkspaces):
            return self._list_workspaces(step)
        if isinstance(step, FindIdentity | EnsureIdentity | ListIdentities | ListPortalSessions):
            return self._identity_step(step, pending)
        if isinstance(step, Delete):
            pending.append(functools.partial(self._delete_identity, step.record))
        elif isinstance(step, Insert | Update):
            pending.append(self._writer(step))
        elif isinstance(step, Append):
            pending.append(functools.partial(self._append, step.event))
        elif isinstance(step, PruneExchanges):
            pending.append(functools.partial(self._prune_exchanges, step.now))
        else:
            return self._usage_step(step, pending)
        return None

    def _list_keys(self, step: ListRootKeys) -> list[RootKeyRecord]:
        after = step.after
        keys = sorted(
            (
                k
                for k in self._keys_by_digest.values()
                if k.workspace_id == step.workspace_id
                and (step.identity_id is None or k.identity_id == step.identity_id)
                and (after is None or (k.created_at, k.id) > (after.created_at, after.id))
            ),
            key=lambda key: (key.created_at, key.id),
        )
        return keys if step.limit is None else keys[: step.limit]

    def _list_workspaces(self, step: ListWorkspaces) -> list[WorkspaceRecord]:
        # Code-point order of ids, as the SQL stores' COLLATE "C": a cursor means the same.
        after = step.after
        ids = sorted(i for i in self._workspaces if after is None or i > after)
        return [self._workspaces[i] for i in ids[: step.limit]]

    def _identity_step(
        self,
        step: FindIdentity | EnsureIdentity | ListIdentities | ListPortalSessions,
        pending: list[Callable[[], None]],
    ) -> object:
        if isinstance(step, FindIdentity):
            found = self._identity_by_external.get((step.workspace_id, step.external_id))
            return None if found is None else self._identities.get(found)
        if isinstance(step, EnsureIdentity):
            # Applied with the change's other writes: under the lock no other change can
            # take the external id meanwhile, and this one never reads it back.
            record = step.record
            found = self._identity_by_external.get((record.workspace_id, record.external_id))
            if found is not None:
                return self._identities[found]
            pending.append(functools.partial(self.put_identity, record))
            return record
        if isinstance(step, ListIdentities):
            ids = sorted(
                (external, identity_id)
                for (ws, external), identity_id in self._identity_by_external.items()
                if ws == step.workspace_id and (step.after is None or external > step.after)
            )
            return [self._identities[identity_id] for _, identity_id in ids[: step.limit]]
        sessions = [
            s
            for s in self._sessions_by_digest.values()
            if s.workspace_id == step.workspace_id and s.identity_id == step.identity_id
        ]
        return sorted(sessions, key=lambda session: (session.created_at, session.id))

    def _usage_step(
        self,
        step: AddUsage | MarkUsed | ReadUsage | ReadLastUsed | RollUpUsage | DeleteUsage,
        pending: list[Callable[[], None]],
    ) -> object:
        if isinstance(step, ReadUsage):
            wanted = self._usage_credentials(step)
            sums: dict[tuple[int, str], int] = {}
            for (ws, _span, bucket, cred, outcome), count in self._usage.items():
                if ws != step.workspace_id or not step.since <= bucket < step.until:
                    continue
                if wanted is not None and cred not in wanted:
                    continue
                start = (bucket - bucket % step.span, outcome)
                sums[start] = sums.get(start, 0) + count
            credential = step.credential_id or ""
            return [
                UsageCount(step.workspace_id, credential, outcome, start, count, step.span)
                for (start, outcome), count in sorted(sums.items())
            ]
        if isinstance(step, ReadLastUsed):
            return {
                cred: at for (ws, cred), at in self._last_used.items() if ws == step.workspace_id
            }
        if isinstance(step, AddUsage):
            pending.append(functools.partial(self._add_usage, step.usage))
        elif isinstance(step, MarkUsed):
            pending.append(functools.partial(self._mark_used, step))
        elif isinstance(step, RollUpUsage):
            pending.append(functools.partial(self._roll_up, step.before))
        else:
            doomed = [k for k in self._usage if k[1] == step.span and k[2] < step.before]
            pending.append(functools.partial(self._forget_usage, doomed))
        return None

    def _usage_credentials(self, step: ReadUsage) -> set[str] | None:
        """The credential ids ``step`` reads (None: every one of the workspace)."""
        if step.identity_id is not None:
            return {
                key.id
                for key in self._keys_by_digest.values()
                if key.identity_id == step.identity_id and key.workspace_id == step.workspace_id
            }
        return None if step.credential_id is None else {step.credential_id}

    def _add_usage(self, usage: UsageCount) -> None:
        key = (usage.workspace_id, usage.span, usage.bucket, usage.credential_id, usage.outcome)
        self._usage[key] = self._usage.get(key, 0) + usage.count

    def _mark_used(self, step: MarkUsed) -> None:
        key = (step.workspace_id, step.credential_id)
        if self._last_used.get(key, -1) < step.at:
            self._last_used[key] = step.at

    def _roll_up(self, before: int) -> None:
        for (ws, span, bucket, cred, outcome), count in list(self._usage.items()):
            if span == 60 and bucket < before:
                self._add_usage(UsageCount(ws, cred, outcome, bucket - bucket % 3600, count, 3600))

    def _forget_usage(self, doomed: list[tuple[str, int, int, str, str]]) -> None:
        for key in doomed:
            self._usage.pop(key, None)

    def _load(self, step: Load) -> object:
        table, key = step.table, step.key
        if table == "workspace":
            return self._workspaces.get(str(key))
        if table == "workspace_by_org":
            workspace_id = self._workspace_by_org.get(str(key))
            return None if workspace_id is None else self._workspaces.get(workspace_id)
        if table == "identity":
            return self._identities.get(str(key))
        if table == "root_key":
            digest = self._key_digest_by_id.get(str(key))
            return None if digest is None else self._keys_by_digest.get(digest)
        if table == "portal_session":
            digest = self._session_digest_by_id.get(str(key))
            return None if digest is None else self._sessions_by_digest.get(digest)
        if table == "portal_exchange":
            return self._exchanges.get(bytes(key) if isinstance(key, bytes) else b"")
        return self._dashboard_users.get(str(key))

    def _writer(self, step: Insert | Update) -> Callable[[], None]:
        record = step.record
        if isinstance(record, WorkspaceRecord):
            owner = None if record.org_id is None else self._workspace_by_org.get(record.org_id)
            if owner is not None and owner != record.id:
                raise ConflictError(step.conflict or changes.ORG_TAKEN)
            return functools.partial(self.put_workspace, record)
        if isinstance(record, IdentityRecord):
            owner = self._identity_by_external.get((record.workspace_id, record.external_id))
            if owner is not None and owner != record.id:
                raise ConflictError(step.conflict or IDENTITY_TAKEN)
            return functools.partial(self.put_identity, record)
        if isinstance(record, RootKeyRecord):
            return functools.partial(self.put_root_key, record)
        if isinstance(record, PortalSessionRecord):
            return functools.partial(self.put_portal_session, record)
        if isinstance(record, PortalExchangeRecord):
            return functools.partial(self._exchanges.__setitem__, record.digest, record)
        if isinstance(step, Insert) and record.user_id in self._dashboard_users:
            raise ConflictError(step.conflict or changes.USER_TAKEN)
        return functools.partial(self._dashboard_users.__setitem__, record.user_id, record)

    def _append(self, event: AuditEvent) -> None:
        entries = self._audit.setdefault(event.workspace_id, [])
        bisect.insort(entries, (event.time, next(self._audit_seq), event))

    def _prune_exchanges(self, now: int) -> None:
        stale = [key for key, old in self._exchanges.items() if old.expires_at <= now]
        for key in stale:
            del self._exchanges[key]

    def _page(self, step: ListAudit) -> AuditPage:
        size, before = step.limit, step.before
        entries = self._audit.get(step.workspace_id, [])
        end = len(entries)
        if before is not None:
            end = bisect.bisect_left(entries, (before.time, before.seq))
        chunk = entries[max(0, end - size - 1) : end][::-1]
        page = chunk[:size]
        cursor = AuditCursor(page[-1][0], page[-1][1]) if len(chunk) > size else None
        return AuditPage(tuple(event for _, _, event in page), cursor)


# The system clock in whole microseconds, as int(_time() * 1e6): a float product and one
# conversion cost a fraction of time.time_ns() // 1000's three-digit integer division (callgrind:
# 0.3k vs 1.3k instructions). A double holds today's microseconds exactly (< 2**53) and
# time.time() resolves to a quarter of one.
_time: Final = time.time
_new: Final = tuple.__new__
_US: Final = 1_000_000


class MemoryRateLimiter:
    """GCRA per bucket (a workspace's id, or a key's own), exact under threads and asyncio tasks.

    ``clock_us`` returns integer microseconds since the epoch (default: the system clock).
    ``max_workspaces`` bounds memory: when full, the entries whose bucket is already full
    again (TAT in the past) are dropped first, which loses no state that matters.
    """

    #: No I/O: the async path may call :meth:`hit` without awaiting (InProcessRateLimiter).
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
        # Every decision takes the lock: the bound acquire/release in a try block cost about
        # half of what a with block's __enter__/__exit__ calls do (callgrind: 0.8k vs 1.9k
        # instructions per decision).
        self._acquire = self._lock.acquire
        self._release = self._lock.release
        self._tat: dict[str, int] = {}

    def hit(self, bucket: str, policy: RateLimitPolicy) -> RateLimitDecision:
        """Take one request from ``bucket``'s allowance.

        :func:`~authcore.ratelimit.decide`, with its admitting path written out (a frame and
        a pair less on every admitted request); a refusal is :func:`decide`'s own. A property
        test holds the two to the same answers.

        Raises:
            ValueError: the clock is outside 0..MAX_TIME_US (a bug in ``clock_us``).
        """
        self._acquire()
        try:
            clock, stored = self._clock_us, self._tat
            now = int(_time() * 1e6) if clock is None else clock()
            if not 0 <= now <= MAX_TIME_US:
                raise ValueError(f"now_us must be in 0..{MAX_TIME_US}, got {now}")
            tat = stored.get(bucket)
            # What this limiter stores it computed itself, within range: no corruption check.
            if tat is None:
                if len(stored) >= self._max:
                    self._evict(now)
                tat = now
            elif tat < now:
                tat = now
            interval, tau = policy._interval, policy._tau
            new_tat = tat + interval
            if new_tat - now > tau:
                return decide(tat, now, policy)[0]  # refused: nothing is written
            stored[bucket] = new_tat
            # decide()'s admitted decision: (allowed, limit, remaining, reset, retry_after).
            return _new(
                RateLimitDecision,
                (
                    True,
                    policy.limit,
                    (tau - new_tat + now) // interval,
                    -((now - new_tat) // _US),
                    0,
                ),
            )
        finally:
            self._release()

    async def ahit(self, bucket: str, policy: RateLimitPolicy) -> RateLimitDecision:
        """Async twin of :meth:`hit` (no I/O: it never awaits)."""
        return self.hit(bucket, policy)

    def hit_levels(self, levels: Sequence[Level], /) -> tuple[RateLimitDecision, ...]:
        """Take one request from every level's bucket, or from none (all under one lock).

        :func:`~authcore.ratelimit.decide_levels`, written out: one lock, one clock read, every
        level's GCRA step inline, and the buckets written only when every level admitted. When
        one refuses, the answer is :func:`~authcore.ratelimit.decide_levels`' own and nothing is
        written. A property test holds the two to the same answers.

        Raises:
            ValueError: the clock is outside 0..MAX_TIME_US (a bug in ``clock_us``).
        """
        self._acquire()
        try:
            now = int(_time() * 1e6) if self._clock_us is None else self._clock_us()
            if not 0 <= now <= MAX_TIME_US:
                raise ValueError(f"now_us must be in 0..{MAX_TIME_US}, got {now}")
            stored = self._tat
            get = stored.get
            decisions = []
            writes = []
            for bucket, policy in levels:
                tat = get(bucket, now)
                interval = policy._interval
                new_tat = (tat if tat > now else now) + interval
                if new_tat - now > policy._tau:
                    # A refusal writes nothing; every level's state is decide_levels' own
                    # (the caller sends each level's).
                    tats = [get(b) for b, _ in levels]
                    return decide_levels(tats, now, [p for _, p in levels])[0]
                writes.append((bucket, new_tat))
                remaining = (policy._tau - new_tat + now) // interval
                reset = -((now - new_tat) // _US)
                decisions.append(_new(RateLimitDecision, (True, policy.limit, remaining, reset, 0)))
            for bucket, new_tat in writes:
                if bucket not in stored and len(stored) >= self._max:
                    self._evict(now)
                stored[bucket] = new_tat
            return tuple(decisions)
        finally:
            self._release()

    async def ahit_levels(self, levels: Sequence[Level], /) -> tuple[RateLimitDecision, ...]:
        """Async twin of :meth:`hit_levels` (no I/O: it never awaits)."""
        return self.hit_levels(levels)

    def _evict(self, now: int) -> None:
        idle = [key for key, tat in self._tat.items() if tat <= now]
        for key in idle:
            del self._tat[key]
        if len(self._tat) >= self._max:
            # Everyone is mid-burst: drop the oldest-inserted entries; they refill soonest.
            for key in list(self._tat)[: len(self._tat) - self._max + 1]:
                del self._tat[key]
