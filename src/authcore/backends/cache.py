"""Verification caches: hot lookups kept off the store, with a documented revocation bound.

:class:`CachedStore` sits in front of any store (sync, async or both) and implements the same
protocols. Found records are kept for ``ttl`` seconds from when they were read (a *fresh* TTL:
a hit never extends it), workspaces for ``workspace_ttl``; digests the store does not know are
kept as negative entries for ``negative_ttl``, in a separate bounded table, so a flood of
random tokens evicts only other negative entries and memory stays bounded. Both tables evict
the least recently used entry when full.

Revocation bound:

- through this ``CachedStore`` (revoke, rotate, disable, ...): immediate in this process;
- in *other* processes without a publisher: until their cached entry expires, at most ``ttl``
  seconds (``workspace_ttl`` for a disabled workspace);
- with a publisher (:class:`authcore.backends.redis.RedisInvalidator`): the pub/sub delivery
  latency; pub/sub is at-most-once, so a lost message falls back to the TTL bound.

A create through the library drops a negative entry for the new digest at once; a record
created behind the library's back becomes visible within ``negative_ttl``.

:class:`VerifiedTokenCache` is the bounded cache of verified JWTs the flow consults
(:class:`authcore.flow.TokenCache`).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol, TypeVar

import attrs

from authcore.errors import AuthcoreError, ConfigurationError, UnavailableError
from authcore.flow import Conclusion, VerifiedResults
from authcore.keyring import VerifiedClaims
from authcore.principal import Source
from authcore.store import (
    AsyncCredentialStore,
    CredentialStore,
    NewPortalSession,
    NewRootKey,
    PortalSessionRecord,
    RootKeyRecord,
    WorkspaceRecord,
)

if TYPE_CHECKING:
    from authcore.audit import AuditEvent
    from authcore.ratelimit import RateLimitPolicy
    from authcore.store import (
        Actor,
        AuditCursor,
        AuditPage,
        DashboardUserRecord,
        NewPortalExchange,
    )

__all__ = [
    "CachedStore",
    "Invalidation",
    "InvalidationPublisher",
    "VerifiedTokenCache",
]

_T = TypeVar("_T")
_MISS: Final = object()
_MAX_ENTRIES: Final = 10_000_000
_MAX_TTL: Final = 86_400.0

_SYNC_LOOKUPS: Final = ("find_root_key", "find_portal_session", "find_workspace")
_ASYNC_LOOKUPS: Final = ("afind_root_key", "afind_portal_session", "afind_workspace")

# Keys of the positive and negative tables: a one-letter kind, then the digest or id.
_KEY: Final = "k"
_SESSION: Final = "s"
_WORKSPACE: Final = "w"


# --- invalidation messages ----------------------------------------------------------------

InvalidationKind = Literal["digest", "workspace", "root_key", "portal_session", "all"]
_WIRE_PREFIX: Final[dict[str, InvalidationKind]] = {
    "d": "digest",
    "w": "workspace",
    "k": "root_key",
    "s": "portal_session",
    "*": "all",
}
_WIRE_KIND: Final = {kind: prefix for prefix, kind in _WIRE_PREFIX.items()}
# A message names one digest (64 hex) or one id; anything longer is not ours.
_MAX_MESSAGE: Final = 512


@attrs.frozen
class Invalidation:
    """One thing to drop from every cache: a digest (hex), a workspace, a key or session id."""

    kind: InvalidationKind
    value: str = ""

    def encode(self) -> str:
        """Return the wire form, ``"<letter>:<value>"`` (``"*:"`` for everything)."""
        return f"{_WIRE_KIND[self.kind]}:{self.value}"

    @classmethod
    def decode(cls, data: bytes | str) -> Invalidation | None:
        """Read the wire form; None when it is not an invalidation message."""
        if isinstance(data, bytes):
            try:
                data = data.decode("utf-8")
            except UnicodeDecodeError:
                return None
        if not isinstance(data, str) or len(data) > _MAX_MESSAGE or data[1:2] != ":":
            return None
        kind = _WIRE_PREFIX.get(data[0])
        value = data[2:]
        if kind is None or (kind != "all" and not value):
            return None
        if kind == "digest":
            try:
                bytes.fromhex(value)
            except ValueError:
                return None
        return cls(kind, value)


class InvalidationPublisher(Protocol):
    """Tells the other processes' caches to drop something (see ``RedisInvalidator``).

    Publishing is best effort: the change is already committed when it is published, so a
    publisher logs a failure and returns; those processes then fall back to the TTL bound.
    """

    def publish(self, invalidation: Invalidation, /) -> None: ...

    async def apublish(self, invalidation: Invalidation, /) -> None: ...


# --- the bounded table ----------------------------------------------------------------------


class _Table:
    """A least-recently-used table of ``key -> (expires_at, value)``; the caller holds a lock."""

    __slots__ = ("entries", "max_entries")

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self.entries: OrderedDict[Hashable, tuple[float, object]] = OrderedDict()

    def get(self, key: Hashable, now: float) -> object:
        entry = self.entries.get(key)
        if entry is None:
            return _MISS
        if now >= entry[0]:
            del self.entries[key]
            return _MISS
        self.entries.move_to_end(key)
        return entry[1]

    def put(self, key: Hashable, value: object, expires_at: float) -> None:
        self.entries[key] = (expires_at, value)
        self.entries.move_to_end(key)
        while len(self.entries) > self.max_entries:
            self.entries.popitem(last=False)

    def drop_where(self, predicate: Callable[[Hashable, object], bool]) -> None:
        doomed = [key for key, (_, value) in self.entries.items() if predicate(key, value)]
        for key in doomed:
            del self.entries[key]


def _check_size(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_ENTRIES:
        raise ConfigurationError(f"{name} must be an int in 1..{_MAX_ENTRIES}")
    return value


def _check_ttl(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= _MAX_TTL:
        raise ConfigurationError(f"{name} must be a number of seconds in (0, {_MAX_TTL:.0f}]")
    return float(value)


def _lookup_failed(exc: Exception) -> AuthcoreError:
    if isinstance(exc, AuthcoreError):
        return exc
    # The type only: a driver's message may quote a query or a connection string.
    return UnavailableError(f"store lookup failed: {type(exc).__name__}")


def _expect(value: object, kind: type[_T]) -> _T | None:
    # A store answer that is neither a record nor None is garbage: never cache it.
    if value is not None and not isinstance(value, kind):
        raise UnavailableError("store returned an unexpected value")
    return value


# --- verified results ------------------------------------------------------------------------


class _VerifiedTable:
    """One authenticator's conclusions, by credential digest (:class:`VerifiedResults`).

    Reads are one ``dict.get`` without a lock (atomic under the GIL); writes and drops run
    under the owning cache's lock. Bounded: when full, the oldest conclusion goes first (a
    hot credential is concluded again within a TTL anyway).
    """

    __slots__ = ("__weakref__", "_cache", "_entries", "get")

    def __init__(self, cache: CachedStore) -> None:
        self._cache = cache
        self._entries: dict[bytes, Conclusion] = {}
        # The hit path: a bound dict.get, no Python frame of our own.
        self.get: Callable[[bytes], Conclusion | None] = self._entries.get

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"VerifiedResults(entries={len(self._entries)})"

    def ticket(self) -> int:
        """The cache's invalidation count, taken before a flow runs."""
        return self._cache._generation

    def put(self, key: bytes, conclusion: Conclusion, ticket: int, now: float, /) -> None:
        """Keep ``conclusion`` for ``key`` unless something was invalidated since ``ticket``."""
        self._cache._keep(self, key, conclusion, ticket, now)

    def keep(self, key: bytes, conclusion: Conclusion, max_entries: int) -> None:
        # Called under the cache's lock.
        entries = self._entries
        entries.pop(key, None)
        while len(entries) >= max_entries:
            del entries[next(iter(entries))]
        entries[key] = conclusion

    def drop(self, invalidation: Invalidation) -> None:
        # Called under the cache's lock: drop every conclusion the change could alter.
        kind, value, entries = invalidation.kind, invalidation.value, self._entries
        if kind == "all":
            entries.clear()
        elif kind == "digest":
            entries.pop(bytes.fromhex(value), None)
        else:
            if kind == "workspace":
                doomed = [k for k, c in entries.items() if c.principal.workspace_id == value]
            else:
                source = Source.ROOT_KEY if kind == "root_key" else Source.PORTAL_SESSION
                doomed = [
                    k
                    for k, c in entries.items()
                    if c.credential_id == value and c.principal.source is source
                ]
            for key in doomed:
                del entries[key]


# --- the cached store -----------------------------------------------------------------------


class CachedStore:
    """A verification cache in front of ``inner``, with the same lookup and management API.

    ``inner`` may be sync (``CredentialStore``/``Store``), async (``AsyncCredentialStore``/
    ``AsyncStore``) or both; each method needs the matching twin on ``inner``. Async cache hits
    return without awaiting anything, so they never leave the event loop. Management calls are
    forwarded and invalidate what they change here at once, then tell ``publisher``.

    Raises:
        ConfigurationError: ``inner`` has neither lookup twin, or a size or TTL is out of range.
    """

    def __init__(
        self,
        inner: CredentialStore | AsyncCredentialStore,
        *,
        max_entries: int = 10_000,
        ttl: float = 30.0,
        negative_ttl: float = 5.0,
        max_negative: int = 10_000,
        workspace_ttl: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] | None = None,
        publisher: InvalidationPublisher | None = None,
    ) -> None:
        if not (
            all(hasattr(inner, name) for name in _SYNC_LOOKUPS)
            or all(hasattr(inner, name) for name in _ASYNC_LOOKUPS)
        ):
            raise ConfigurationError("CachedStore needs a CredentialStore or AsyncCredentialStore")
        # Any: the inner store is sync, async or both; each method uses the twin it needs and
        # _method() turns a missing one into a ConfigurationError.
        self._inner: Any = inner
        self._ttl = _check_ttl("ttl", ttl)
        self._negative_ttl = _check_ttl("negative_ttl", negative_ttl)
        self._workspace_ttl = _check_ttl("workspace_ttl", workspace_ttl)
        self._clock = clock
        # Records' expiry is seconds since the epoch; a custom (test) clock plays both roles.
        if wall_clock is None:
            wall_clock = time.time if clock is time.monotonic else clock
        self._wall_clock = wall_clock
        self._publisher = publisher
        self._lock = threading.Lock()
        self._positive = _Table(_check_size("max_entries", max_entries))
        self._negative = _Table(_check_size("max_negative", max_negative))
        self._max_verified = max_entries
        self._verified: weakref.WeakSet[_VerifiedTable] = weakref.WeakSet()
        # Bumped by every invalidation. A lookup that started before an invalidation must not
        # store what it read: the record may be the one just revoked.
        self._generation = 0

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(inner={type(self._inner).__name__}, "
            f"entries={len(self._positive.entries)}, negative={len(self._negative.entries)})"
        )

    @property
    def inner(self) -> CredentialStore | AsyncCredentialStore:
        """The store behind the cache."""
        inner: CredentialStore | AsyncCredentialStore = self._inner
        return inner

    @property
    def publisher(self) -> InvalidationPublisher | None:
        """Who tells other processes about invalidations (None: nobody)."""
        return self._publisher

    @publisher.setter
    def publisher(self, publisher: InvalidationPublisher | None) -> None:
        self._publisher = publisher

    @property
    def size(self) -> int:
        """Number of positive entries held (expired ones included until touched)."""
        return len(self._positive.entries)

    @property
    def negative_size(self) -> int:
        """Number of negative entries held (expired ones included until touched)."""
        return len(self._negative.entries)

    # --- the cache itself -----------------------------------------------------------------

    def _cached(self, key: tuple[str, Hashable]) -> tuple[object, int]:
        """Return (record, None or _MISS) and the generation to store a miss under."""
        now = self._clock()
        # Fast path, without the lock: a fresh positive entry. One dict read is atomic under
        # the GIL; an invalidation racing with it either ran first (we miss, and take the
        # locked path) or runs after this request had already read the record, which is the
        # same order the lock would give. The LRU touch is best-effort.
        entries = self._positive.entries
        entry = entries.get(key)
        if entry is not None and now < entry[0]:
            with contextlib.suppress(KeyError):
                entries.move_to_end(key)
            return entry[1], self._generation
        with self._lock:
            found = self._positive.get(key, now)
            if found is _MISS:
                # A negative entry holds None (unknown) or a record the flow will refuse.
                found = self._negative.get(key, now)
            return found, self._generation

    def _remember(self, key: tuple[str, Hashable], record: object, generation: int) -> None:
        now = self._clock()
        expires_at = getattr(record, "expires_at", None)
        # Seconds until the record's own expiry, in this cache's clock.
        left = math.inf if expires_at is None else expires_at - self._wall_clock()
        with self._lock:
            if generation != self._generation:
                return
            if record is None or getattr(record, "revoked_at", None) is not None or left <= 0:
                # Unknown, revoked and expired are all refusals, kept equally long: how long a
                # lookup stays cached must not tell a once-valid credential from a made-up one.
                self._negative.put(key, record, now + self._negative_ttl)
            else:
                ttl = self._workspace_ttl if key[0] == _WORKSPACE else self._ttl
                # A record that expires while cached leaves at its expiry, to be read again
                # (and then kept as a refusal).
                self._positive.put(key, record, now + min(ttl, left))

    # --- verified results (conclusions the flow reached) --------------------------------------

    def verified_results(self) -> VerifiedResults:
        """Return a new table of conclusions that this cache keeps true.

        :class:`~authcore.flow.Authenticator` takes one per route group. Every invalidation
        that reaches this cache (a change made through it, or a message from another process)
        drops the conclusions it could change, and a conclusion is kept no longer than the
        records it was reached from: ``valid_until`` is cut to their cache lifetimes.
        """
        table = _VerifiedTable(self)
        with self._lock:
            self._verified.add(table)
        return table

    def _keep(
        self, table: _VerifiedTable, key: bytes, conclusion: Conclusion, ticket: int, now: float
    ) -> None:
        principal = conclusion.principal
        record_key: tuple[str, Hashable] | None = None
        if principal.source is Source.ROOT_KEY:
            record_key = (_KEY, key)
        elif principal.source is Source.PORTAL_SESSION:
            record_key = (_SESSION, key)
        with self._lock:
            if ticket != self._generation:
                return  # something was invalidated while the flow ran: it may be this
            # The records the flow read through this cache bound how long the conclusion
            # holds: the revocation bounds stay those of the record cache.
            entries = self._positive.entries
            workspace = entries.get((_WORKSPACE, principal.workspace_id))
            record = None if record_key is None else entries.get(record_key)
            if workspace is None or (record_key is not None and record is None):
                return  # not read through this cache: nothing bounds it, so do not replay
            until = workspace[0] if record is None else min(workspace[0], record[0])
            valid_until = min(conclusion.valid_until, now + (until - self._clock()))
            if valid_until <= now:
                return
            table.keep(key, attrs.evolve(conclusion, valid_until=valid_until), self._max_verified)

    def _method(self, name: str) -> Any:
        method = getattr(self._inner, name, None)
        if method is None:
            raise ConfigurationError(f"the store behind CachedStore has no {name}")
        return method

    def _fetch(self, key: tuple[str, Hashable], name: str, kind: type[_T]) -> _T | None:
        found, generation = self._cached(key)
        if found is not _MISS:
            return found  # type: ignore[return-value]  # only `kind` records are stored here
        method = self._method(name)
        try:
            record = _expect(method(key[1]), kind)
        except Exception as exc:  # noqa: BLE001 - any store failure is "unavailable", uncached
            raise _lookup_failed(exc) from None
        self._remember(key, record, generation)
        return record

    async def _afetch(self, key: tuple[str, Hashable], name: str, kind: type[_T]) -> _T | None:
        found, generation = self._cached(key)
        if found is not _MISS:
            # A hit returns before any await: it never leaves the event loop.
            return found  # type: ignore[return-value]  # only `kind` records are stored here
        return await self._afetch_missing(key, name, kind, generation)

    async def _afetch_missing(
        self, key: tuple[str, Hashable], name: str, kind: type[_T], generation: int
    ) -> _T | None:
        method = self._method(name)
        try:
            record = _expect(await method(key[1]), kind)
        except Exception as exc:  # noqa: BLE001 - any store failure is "unavailable", uncached
            raise _lookup_failed(exc) from None
        self._remember(key, record, generation)
        return record

    # --- lookups (CredentialStore / AsyncCredentialStore) -----------------------------------

    def find_root_key(self, digest: bytes, /) -> RootKeyRecord | None:
        """Return the root key stored under ``digest``, from the cache when fresh.

        Raises:
            UnavailableError: the store failed (nothing is cached then).
        """
        return self._fetch((_KEY, digest), "find_root_key", RootKeyRecord)

    def find_portal_session(self, digest: bytes, /) -> PortalSessionRecord | None:
        """Return the portal session stored under ``digest``, from the cache when fresh.

        Raises:
            UnavailableError: the store failed (nothing is cached then).
        """
        return self._fetch((_SESSION, digest), "find_portal_session", PortalSessionRecord)

    def find_workspace(self, workspace_id: str, /) -> WorkspaceRecord | None:
        """Return the workspace, from the cache when fresh (``workspace_ttl``).

        Raises:
            UnavailableError: the store failed (nothing is cached then).
        """
        return self._fetch((_WORKSPACE, workspace_id), "find_workspace", WorkspaceRecord)

    async def afind_root_key(self, digest: bytes, /) -> RootKeyRecord | None:
        """Async twin of :meth:`find_root_key`; a hit never leaves the event loop.

        Raises:
            UnavailableError: the store failed (nothing is cached then).
        """
        key = (_KEY, digest)
        found, generation = self._cached(key)
        if found is not _MISS:  # a hit: no await, no extra coroutine (every request does two)
            return found  # type: ignore[return-value]  # only root keys are stored under _KEY
        return await self._afetch_missing(key, "afind_root_key", RootKeyRecord, generation)

    async def afind_portal_session(self, digest: bytes, /) -> PortalSessionRecord | None:
        """Async twin of :meth:`find_portal_session`; a hit never leaves the event loop.

        Raises:
            UnavailableError: the store failed (nothing is cached then).
        """
        return await self._afetch((_SESSION, digest), "afind_portal_session", PortalSessionRecord)

    async def afind_workspace(self, workspace_id: str, /) -> WorkspaceRecord | None:
        """Async twin of :meth:`find_workspace`; a hit never leaves the event loop.

        Raises:
            UnavailableError: the store failed (nothing is cached then).
        """
        key = (_WORKSPACE, workspace_id)
        found, generation = self._cached(key)
        if found is not _MISS:
            return found  # type: ignore[return-value]  # only workspaces are stored here
        return await self._afetch_missing(key, "afind_workspace", WorkspaceRecord, generation)

    # --- invalidation -------------------------------------------------------------------------

    def apply(self, invalidation: Invalidation) -> None:
        """Drop what ``invalidation`` names from this cache (no publishing)."""
        kind, value = invalidation.kind, invalidation.value
        with self._lock:
            self._generation += 1
            for verified in self._verified:
                verified.drop(invalidation)
            if kind == "all":
                self._positive.entries.clear()
                self._negative.entries.clear()
            elif kind == "digest":
                digest = bytes.fromhex(value)
                for table in (self._positive, self._negative):
                    table.entries.pop((_KEY, digest), None)
                    table.entries.pop((_SESSION, digest), None)
            elif kind == "workspace":
                self._negative.entries.pop((_WORKSPACE, value), None)
                self._positive.drop_where(
                    lambda key, record: (
                        key == (_WORKSPACE, value) or getattr(record, "workspace_id", None) == value
                    )
                )
            else:
                # A key or session by id: rotation changes the *old* key, whose digest the
                # caller may not have. Cached entries carry their record, so scan for the id.
                wanted = RootKeyRecord if kind == "root_key" else PortalSessionRecord
                self._positive.drop_where(
                    lambda _key, record: isinstance(record, wanted) and record.id == value
                )

    def invalidate_digest(self, digest: bytes) -> None:
        """Drop the root key or portal session cached under ``digest`` (positive or negative)."""
        self.apply(Invalidation("digest", digest.hex()))

    def invalidate_workspace(self, workspace_id: str) -> None:
        """Drop the workspace and every key and session of it cached here."""
        self.apply(Invalidation("workspace", workspace_id))

    def invalidate_root_key(self, key_id: str) -> None:
        """Drop the root key with id ``key_id`` cached here."""
        self.apply(Invalidation("root_key", key_id))

    def invalidate_portal_session(self, session_id: str) -> None:
        """Drop the portal session with id ``session_id`` cached here."""
        self.apply(Invalidation("portal_session", session_id))

    def clear(self) -> None:
        """Drop everything."""
        self.apply(Invalidation("all"))

    def _changed(self, invalidations: Sequence[Invalidation]) -> None:
        for invalidation in invalidations:
            self.apply(invalidation)
        if self._publisher is not None:
            for invalidation in invalidations:
                self._publisher.publish(invalidation)

    async def _achanged(self, invalidations: Sequence[Invalidation]) -> None:
        for invalidation in invalidations:
            self.apply(invalidation)
        if self._publisher is not None:
            for invalidation in invalidations:
                await self._publisher.apublish(invalidation)

    # --- management (Store / AsyncStore), forwarded with invalidation ---------------------------

    def create_workspace(
        self,
        name: str,
        *,
        org_id: str | None = None,
        rate_limit: RateLimitPolicy | None = None,
        now: float,
        actor: Actor,
    ) -> WorkspaceRecord:
        """Forward to the store; drop a negative entry for the new id."""
        record: WorkspaceRecord = self._method("create_workspace")(
            name, org_id=org_id, rate_limit=rate_limit, now=now, actor=actor
        )
        self._changed(_workspace_changed(record))
        return record

    def disable_workspace(
        self, workspace_id: str, *, now: float, actor: Actor
    ) -> WorkspaceRecord | None:
        """Forward to the store; the workspace is seen disabled here at once."""
        record: WorkspaceRecord | None = self._method("disable_workspace")(
            workspace_id, now=now, actor=actor
        )
        self._changed(_workspace_changed(record))
        return record

    def set_rate_limit(
        self, workspace_id: str, policy: RateLimitPolicy | None, *, now: float, actor: Actor
    ) -> WorkspaceRecord | None:
        """Forward to the store; the new policy applies here at once."""
        record: WorkspaceRecord | None = self._method("set_rate_limit")(
            workspace_id, policy, now=now, actor=actor
        )
        self._changed(_workspace_changed(record))
        return record

    def link_org(
        self, workspace_id: str, org_id: str, *, now: float, actor: Actor
    ) -> WorkspaceRecord | None:
        """Forward to the store."""
        record: WorkspaceRecord | None = self._method("link_org")(
            workspace_id, org_id, now=now, actor=actor
        )
        self._changed(_workspace_changed(record))
        return record

    def find_workspace_by_org(self, org_id: str, /) -> WorkspaceRecord | None:
        """Forward to the store (not cached)."""
        record: WorkspaceRecord | None = self._method("find_workspace_by_org")(org_id)
        return record

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
        """Forward to the store; a negative entry can never hide the new key."""
        created: NewRootKey | None = self._method("create_root_key")(
            workspace_id,
            permissions=permissions,
            name=name,
            expires_at=expires_at,
            now=now,
            actor=actor,
        )
        self._changed(_created(created))
        return created

    def list_root_keys(self, workspace_id: str, /) -> list[RootKeyRecord]:
        """Forward to the store (not cached)."""
        records: list[RootKeyRecord] = self._method("list_root_keys")(workspace_id)
        return records

    def get_root_key(self, key_id: str, /) -> RootKeyRecord | None:
        """Forward to the store (not cached)."""
        record: RootKeyRecord | None = self._method("get_root_key")(key_id)
        return record

    def revoke_root_key(self, key_id: str, *, now: float, actor: Actor) -> RootKeyRecord | None:
        """Forward to the store; the key is rejected here at once."""
        record: RootKeyRecord | None = self._method("revoke_root_key")(key_id, now=now, actor=actor)
        self._changed(_revoked(record, "root_key", key_id))
        return record

    def rotate_root_key(
        self, key_id: str, *, grace_seconds: int, now: float, actor: Actor
    ) -> NewRootKey | None:
        """Forward to the store; the old key's new expiry applies here at once."""
        created: NewRootKey | None = self._method("rotate_root_key")(
            key_id, grace_seconds=grace_seconds, now=now, actor=actor
        )
        if created is not None:
            self._changed([Invalidation("root_key", key_id), *_created(created)])
        return created

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
        """Forward to the store; a negative entry can never hide the new session."""
        created: NewPortalSession | None = self._method("create_portal_session")(
            workspace_id, end_user_id, permissions=permissions, ttl=ttl, now=now, actor=actor
        )
        self._changed(_created(created))
        return created

    def revoke_portal_session(
        self, session_id: str, *, now: float, actor: Actor
    ) -> PortalSessionRecord | None:
        """Forward to the store; the session is rejected here at once."""
        record: PortalSessionRecord | None = self._method("revoke_portal_session")(
            session_id, now=now, actor=actor
        )
        self._changed(_revoked(record, "portal_session", session_id))
        return record

    def append_audit(self, event: AuditEvent, /) -> None:
        """Forward to the store."""
        self._method("append_audit")(event)

    def list_audit(
        self, workspace_id: str, *, limit: int = 50, before: AuditCursor | None = None
    ) -> AuditPage:
        """Forward to the store."""
        page: AuditPage = self._method("list_audit")(workspace_id, limit=limit, before=before)
        return page

    def add_dashboard_user(
        self, user_id: str, org_id: str, password_hash: str, permissions: Sequence[str]
    ) -> DashboardUserRecord:
        """Forward to the store."""
        record: DashboardUserRecord = self._method("add_dashboard_user")(
            user_id, org_id, password_hash, permissions
        )
        return record

    def find_dashboard_user(self, user_id: str, /) -> DashboardUserRecord | None:
        """Forward to the store (not cached)."""
        record: DashboardUserRecord | None = self._method("find_dashboard_user")(user_id)
        return record

    # --- async management twins -----------------------------------------------------------------

    async def acreate_workspace(
        self,
        name: str,
        *,
        org_id: str | None = None,
        rate_limit: RateLimitPolicy | None = None,
        now: float,
        actor: Actor,
    ) -> WorkspaceRecord:
        """Async twin of :meth:`create_workspace`."""
        record: WorkspaceRecord = await self._method("acreate_workspace")(
            name, org_id=org_id, rate_limit=rate_limit, now=now, actor=actor
        )
        await self._achanged(_workspace_changed(record))
        return record

    async def adisable_workspace(
        self, workspace_id: str, *, now: float, actor: Actor
    ) -> WorkspaceRecord | None:
        """Async twin of :meth:`disable_workspace`."""
        record: WorkspaceRecord | None = await self._method("adisable_workspace")(
            workspace_id, now=now, actor=actor
        )
        await self._achanged(_workspace_changed(record))
        return record

    async def aset_rate_limit(
        self, workspace_id: str, policy: RateLimitPolicy | None, *, now: float, actor: Actor
    ) -> WorkspaceRecord | None:
        """Async twin of :meth:`set_rate_limit`."""
        record: WorkspaceRecord | None = await self._method("aset_rate_limit")(
            workspace_id, policy, now=now, actor=actor
        )
        await self._achanged(_workspace_changed(record))
        return record

    async def alink_org(
        self, workspace_id: str, org_id: str, *, now: float, actor: Actor
    ) -> WorkspaceRecord | None:
        """Async twin of :meth:`link_org`."""
        record: WorkspaceRecord | None = await self._method("alink_org")(
            workspace_id, org_id, now=now, actor=actor
        )
        await self._achanged(_workspace_changed(record))
        return record

    async def afind_workspace_by_org(self, org_id: str, /) -> WorkspaceRecord | None:
        """Async twin of :meth:`find_workspace_by_org`."""
        record: WorkspaceRecord | None = await self._method("afind_workspace_by_org")(org_id)
        return record

    async def acreate_root_key(
        self,
        workspace_id: str,
        *,
        permissions: Sequence[str],
        name: str | None = None,
        expires_at: int | None = None,
        now: float,
        actor: Actor,
    ) -> NewRootKey | None:
        """Async twin of :meth:`create_root_key`."""
        created: NewRootKey | None = await self._method("acreate_root_key")(
            workspace_id,
            permissions=permissions,
            name=name,
            expires_at=expires_at,
            now=now,
            actor=actor,
        )
        await self._achanged(_created(created))
        return created

    async def alist_root_keys(self, workspace_id: str, /) -> list[RootKeyRecord]:
        """Async twin of :meth:`list_root_keys`."""
        records: list[RootKeyRecord] = await self._method("alist_root_keys")(workspace_id)
        return records

    async def aget_root_key(self, key_id: str, /) -> RootKeyRecord | None:
        """Async twin of :meth:`get_root_key`."""
        record: RootKeyRecord | None = await self._method("aget_root_key")(key_id)
        return record

    async def arevoke_root_key(
        self, key_id: str, *, now: float, actor: Actor
    ) -> RootKeyRecord | None:
        """Async twin of :meth:`revoke_root_key`."""
        record: RootKeyRecord | None = await self._method("arevoke_root_key")(
            key_id, now=now, actor=actor
        )
        await self._achanged(_revoked(record, "root_key", key_id))
        return record

    async def arotate_root_key(
        self, key_id: str, *, grace_seconds: int, now: float, actor: Actor
    ) -> NewRootKey | None:
        """Async twin of :meth:`rotate_root_key`."""
        created: NewRootKey | None = await self._method("arotate_root_key")(
            key_id, grace_seconds=grace_seconds, now=now, actor=actor
        )
        if created is not None:
            await self._achanged([Invalidation("root_key", key_id), *_created(created)])
        return created

    async def acreate_portal_session(
        self,
        workspace_id: str,
        end_user_id: str,
        *,
        permissions: Sequence[str],
        ttl: int,
        now: float,
        actor: Actor,
    ) -> NewPortalSession | None:
        """Async twin of :meth:`create_portal_session`."""
        created: NewPortalSession | None = await self._method("acreate_portal_session")(
            workspace_id, end_user_id, permissions=permissions, ttl=ttl, now=now, actor=actor
        )
        await self._achanged(_created(created))
        return created

    async def arevoke_portal_session(
        self, session_id: str, *, now: float, actor: Actor
    ) -> PortalSessionRecord | None:
        """Async twin of :meth:`revoke_portal_session`."""
        record: PortalSessionRecord | None = await self._method("arevoke_portal_session")(
            session_id, now=now, actor=actor
        )
        await self._achanged(_revoked(record, "portal_session", session_id))
        return record

    async def aappend_audit(self, event: AuditEvent, /) -> None:
        """Async twin of :meth:`append_audit`."""
        await self._method("aappend_audit")(event)

    async def alist_audit(
        self, workspace_id: str, *, limit: int = 50, before: AuditCursor | None = None
    ) -> AuditPage:
        """Async twin of :meth:`list_audit`."""
        page: AuditPage = await self._method("alist_audit")(
            workspace_id, limit=limit, before=before
        )
        return page

    async def aadd_dashboard_user(
        self, user_id: str, org_id: str, password_hash: str, permissions: Sequence[str]
    ) -> DashboardUserRecord:
        """Async twin of :meth:`add_dashboard_user`."""
        record: DashboardUserRecord = await self._method("aadd_dashboard_user")(
            user_id, org_id, password_hash, permissions
        )
        return record

    async def afind_dashboard_user(self, user_id: str, /) -> DashboardUserRecord | None:
        """Async twin of :meth:`find_dashboard_user`."""
        record: DashboardUserRecord | None = await self._method("afind_dashboard_user")(user_id)
        return record

    # --- portal exchange codes and session lookup by id (forwarded) -----------------------------

    def get_portal_session(self, session_id: str, /) -> PortalSessionRecord | None:
        """Forward to the store (not cached: revocation reads the current record)."""
        record: PortalSessionRecord | None = self._method("get_portal_session")(session_id)
        return record

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
        """Forward to the store: a pending session has no token, so nothing here changes."""
        created: NewPortalExchange | None = self._method("create_portal_exchange")(
            workspace_id, end_user_id, permissions=permissions, ttl=ttl, now=now, actor=actor
        )
        return created

    def exchange_portal_code(self, code_digest: bytes, /, *, now: float) -> NewPortalSession | None:
        """Forward to the store; a negative entry can never hide the session's new token."""
        created: NewPortalSession | None = self._method("exchange_portal_code")(
            code_digest, now=now
        )
        self._changed(_created(created))
        return created

    async def aget_portal_session(self, session_id: str, /) -> PortalSessionRecord | None:
        """Async twin of :meth:`get_portal_session`."""
        record: PortalSessionRecord | None = await self._method("aget_portal_session")(session_id)
        return record

    async def acreate_portal_exchange(
        self,
        workspace_id: str,
        end_user_id: str,
        *,
        permissions: Sequence[str],
        ttl: int,
        now: float,
        actor: Actor,
    ) -> NewPortalExchange | None:
        """Async twin of :meth:`create_portal_exchange`."""
        created: NewPortalExchange | None = await self._method("acreate_portal_exchange")(
            workspace_id, end_user_id, permissions=permissions, ttl=ttl, now=now, actor=actor
        )
        return created

    async def aexchange_portal_code(
        self, code_digest: bytes, /, *, now: float
    ) -> NewPortalSession | None:
        """Async twin of :meth:`exchange_portal_code`."""
        created: NewPortalSession | None = await self._method("aexchange_portal_code")(
            code_digest, now=now
        )
        await self._achanged(_created(created))
        return created


def _workspace_changed(record: WorkspaceRecord | None) -> list[Invalidation]:
    return [] if record is None else [Invalidation("workspace", record.id)]


def _created(created: NewRootKey | NewPortalSession | None) -> list[Invalidation]:
    # Only a negative entry can exist for a brand-new digest; dropping it means a token that
    # was tried before it existed is accepted the moment it does.
    return [] if created is None else [Invalidation("digest", created.record.digest.hex())]


def _revoked(
    record: RootKeyRecord | PortalSessionRecord | None,
    kind: Literal["root_key", "portal_session"],
    record_id: str,
) -> list[Invalidation]:
    if record is None:
        return []
    return [Invalidation("digest", record.digest.hex()), Invalidation(kind, record_id)]


# --- verified JWTs --------------------------------------------------------------------------


class VerifiedTokenCache:
    """A bounded cache of verified JWTs for :class:`authcore.flow.Settings` ``token_cache``.

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
