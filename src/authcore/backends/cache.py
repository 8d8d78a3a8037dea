"""Verification caches: hot lookups kept off the store, with a documented revocation bound.

:class:`CachedStore` sits in front of any store (sync, async or both) and implements the same
protocols. Found records are kept for ``ttl`` seconds from when they were read (a *fresh* TTL:
a hit never extends it), workspaces for ``workspace_ttl``; digests the store does not know are
kept as negative entries for ``negative_ttl``, in a separate bounded table, so a flood of
random tokens evicts only other negative entries and memory stays bounded. Each table is
bounded in entries (``max_entries``, ``max_negative``) and in estimated bytes (``max_bytes``,
``max_negative_bytes``, 64 MiB each by default; each entry's cost is estimated once, on insert,
from its strings and grants: :mod:`authcore.backends._tables`), and evicts the least recently
used entries until both bounds hold. An expired entry is dropped when met, and every insert
first sweeps a few expired ones, so dead entries do not hold the bounds.

Revocation bound:

- through this ``CachedStore`` (revoke, rotate, disable, ...): immediate in this process;
- in *other* processes that follow the SQL store's invalidation outbox
  (:class:`authcore.backends.outbox.InvalidationFollower`, which ``connect()`` starts): within
  :data:`authcore.backends.outbox.REVOCATION_BOUND` (1 s), whoever made the change;
- with a publisher (:class:`authcore.backends.redis.RedisInvalidator`): the pub/sub delivery
  latency; pub/sub is at-most-once, so a lost message falls back to the outbox;
- otherwise (no follower, or a change made behind the library): until their cached entry
  expires, at most ``ttl`` seconds (``workspace_ttl`` for a disabled workspace).

A create through the library drops a negative entry for the new digest at once; a record
created behind the library's back becomes visible within ``negative_ttl``.

:class:`VerifiedTokenCache` (the bounded cache of verified JWTs the flow consults) lives in
:mod:`authcore.backends.token_cache`, next to its protocol; it is re-exported here.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
import weakref
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Final, TypeVar

import attrs

from authcore.backends._tables import (
    DEFAULT_MAX_BYTES,
    MISS,
    Conclusions,
    LruTable,
    check_bytes,
    check_size,
)
from authcore.backends.invalidation import (
    Invalidation,
    InvalidationPublisher,
    invalidations_for,
    observed,
)
from authcore.backends.token_cache import VerifiedTokenCache
from authcore.errors import AuthcoreError, ConfigurationError, UnavailableError
from authcore.principal import Source
from authcore.records import (
    IdentityRecord,
    PortalSessionRecord,
    Record,
    RootKeyRecord,
    WorkspaceRecord,
)
from authcore.replay import Conclusion, ConclusionTable
from authcore.steps import Change
from authcore.store import AsyncCredentialStore, AsyncStore, CredentialStore, Store
from authcore.tokens import DEFAULT_PORTAL_TOKEN_PREFIX, DEFAULT_ROOT_KEY_PREFIX

__all__ = [
    "CachedStore",
    "Invalidation",
    "InvalidationPublisher",
    "VerifiedTokenCache",
    "invalidations_for",
]

_T = TypeVar("_T")
_MAX_TTL: Final = 86_400.0

# find_identity is not required: a store written before identities still works for every
# credential that has none (the lookup is only asked for keys of an identity).
_SYNC_LOOKUPS: Final = ("find_root_key", "find_portal_session", "find_workspace")
_ASYNC_LOOKUPS: Final = ("afind_root_key", "afind_portal_session", "afind_workspace")

# Keys of the positive and negative tables: a one-letter kind, then the digest or id.
_KEY: Final = "k"
_SESSION: Final = "s"
_WORKSPACE: Final = "w"
_IDENTITY: Final = "i"


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


class _VerifiedTable(Conclusions):
    """One authenticator's conclusions, by credential digest (:class:`ConclusionTable`).

    Reads are one ``dict.get`` without a lock (atomic under the GIL); writes and drops run
    under the owning cache's lock. Bounded in entries and estimated bytes (:class:`Conclusions`).
    """

    __slots__ = ("__weakref__", "_cache")

    def __init__(self, cache: CachedStore, max_entries: int, max_bytes: int) -> None:
        super().__init__(max_entries, max_bytes)
        self._cache = cache

    def ticket(self) -> int:
        """The cache's invalidation count, taken before a flow runs."""
        return self._cache._generation

    def put(self, key: bytes, conclusion: Conclusion, ticket: int, now: float, /) -> None:
        """Keep ``conclusion`` for ``key`` unless something was invalidated since ``ticket``."""
        self._cache._keep(self, key, conclusion, ticket, now)

    def drop(self, invalidation: Invalidation) -> None:
        # Called under the cache's lock: drop every conclusion the change could alter.
        kind, value = invalidation.kind, invalidation.value
        if kind == "all":
            self.clear()
        elif kind == "digest":
            self.pop(bytes.fromhex(value))
        elif kind == "workspace":
            self.drop_where(lambda c: c.principal.workspace_id == value)
        elif kind == "identity":
            self.drop_where(lambda c: c.principal.identity_id == value)
        else:
            source = Source.ROOT_KEY if kind == "root_key" else Source.PORTAL_SESSION
            self.drop_where(lambda c: c.credential_id == value and c.principal.source is source)


# --- the cached store -----------------------------------------------------------------------


class CachedStore(Store, AsyncStore):
    """A verification cache in front of ``inner``, with the same lookup and management API.

    ``inner`` may be sync (``CredentialStore``/``Store``), async (``AsyncCredentialStore``/
    ``AsyncStore``) or both; each method needs the matching twin on ``inner``. Async cache hits
    return without awaiting anything, so they never leave the event loop. Management methods
    are the :class:`~authcore.store.Store` ones: each change runs on ``inner`` and, once it
    commits, what it wrote is invalidated here at once, then told to ``publisher``.

    Raises:
        ConfigurationError: ``inner`` has neither lookup twin, or a size, byte bound or TTL is
            out of range.
    """

    def __init__(
        self,
        inner: CredentialStore | AsyncCredentialStore,
        *,
        max_entries: int = 10_000,
        max_bytes: int = DEFAULT_MAX_BYTES,
        ttl: float = 30.0,
        negative_ttl: float = 5.0,
        max_negative: int = 10_000,
        max_negative_bytes: int = DEFAULT_MAX_BYTES,
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
        self._positive = LruTable(
            check_size("max_entries", max_entries), check_bytes("max_bytes", max_bytes)
        )
        self._negative = LruTable(
            check_size("max_negative", max_negative),
            check_bytes("max_negative_bytes", max_negative_bytes),
        )
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
        """Number of positive entries held (an expired one until it is met or swept)."""
        return len(self._positive.entries)

    @property
    def negative_size(self) -> int:
        """Number of negative entries held (an expired one until it is met or swept)."""
        return len(self._negative.entries)

    @property
    def byte_size(self) -> int:
        """Estimated bytes the positive entries hold (at most ``max_bytes``)."""
        return self._positive.byte_size

    @property
    def negative_byte_size(self) -> int:
        """Estimated bytes the negative entries hold (at most ``max_negative_bytes``)."""
        return self._negative.byte_size

    # --- the cache itself -----------------------------------------------------------------

    def _cached(self, key: tuple[str, Hashable]) -> tuple[object, int]:
        """Return (record, None or MISS) and the generation to store a miss under."""
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
            if found is MISS:
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
                self._negative.put(key, record, now + self._negative_ttl, now)
            else:
                # Workspaces and identities carry the limits: they follow workspace_ttl.
                ttl = self._workspace_ttl if key[0] in {_WORKSPACE, _IDENTITY} else self._ttl
                # A record that expires while cached leaves at its expiry, to be read again
                # (and then kept as a refusal).
                self._positive.put(key, record, now + min(ttl, left), now)

    # --- verified results (conclusions the flow reached) --------------------------------------

    def verified_results(self) -> ConclusionTable:
        """Return a new table of conclusions that this cache keeps true.

        :class:`~authcore.authenticator.Authenticator` takes one per route group. Every invalidation
        that reaches this cache (a change made through it, or a message from another process)
        drops the conclusions it could change, and a conclusion is kept no longer than the
        records it was reached from: ``valid_until`` is cut to their cache lifetimes.
        """
        table = _VerifiedTable(self, self._positive.max_entries, self._positive.max_bytes)
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
            identity = None
            if principal.identity_id is not None and principal.source is not Source.JWT:
                identity = entries.get((_IDENTITY, principal.identity_id))
                if identity is None:
                    return  # its identity's limit was not read through this cache
            if workspace is None or (record_key is not None and record is None):
                return  # not read through this cache: nothing bounds it, so do not replay
            until = min(entry[0] for entry in (workspace, record, identity) if entry is not None)
            valid_until = min(conclusion.valid_until, now + (until - self._clock()))
            if valid_until <= now:
                return
            table.keep(key, attrs.evolve(conclusion, valid_until=valid_until), now)

    def _method(self, name: str) -> Any:
        method = getattr(self._inner, name, None)
        if method is None:
            raise ConfigurationError(f"the store behind CachedStore has no {name}")
        return method

    def _fetch(self, key: tuple[str, Hashable], name: str, kind: type[_T]) -> _T | None:
        found, generation = self._cached(key)
        if found is not MISS:
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
        if found is not MISS:
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

    def find_identity(self, identity_id: str, /) -> IdentityRecord | None:
        """Return the identity, from the cache when fresh (``workspace_ttl``).

        Raises:
            UnavailableError: the store failed (nothing is cached then).
        """
        return self._fetch((_IDENTITY, identity_id), "find_identity", IdentityRecord)

    async def afind_identity(self, identity_id: str, /) -> IdentityRecord | None:
        """Async twin of :meth:`find_identity`; a hit never leaves the event loop.

        Raises:
            UnavailableError: the store failed (nothing is cached then).
        """
        return await self._afetch((_IDENTITY, identity_id), "afind_identity", IdentityRecord)

    async def afind_root_key(self, digest: bytes, /) -> RootKeyRecord | None:
        """Async twin of :meth:`find_root_key`; a hit never leaves the event loop.

        Raises:
            UnavailableError: the store failed (nothing is cached then).
        """
        key = (_KEY, digest)
        found, generation = self._cached(key)
        if found is not MISS:  # a hit: no await, no extra coroutine (every request does two)
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
        if found is not MISS:
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
                self._positive.clear()
                self._negative.clear()
            elif kind == "digest":
                digest = bytes.fromhex(value)
                for table in (self._positive, self._negative):
                    table.pop((_KEY, digest))
                    table.pop((_SESSION, digest))
            elif kind == "identity":
                for table in (self._positive, self._negative):
                    table.pop((_IDENTITY, value))
            elif kind == "workspace":
                self._negative.pop((_WORKSPACE, value))
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

    # --- management: the inner store's changes, invalidating what they wrote -------------------

    @property
    def root_key_prefix(self) -> str:  # type: ignore[override]  # the inner store's option
        """The prefix of the root keys the inner store issues."""
        return str(getattr(self._inner, "root_key_prefix", DEFAULT_ROOT_KEY_PREFIX))

    @property
    def portal_token_prefix(self) -> str:  # type: ignore[override]  # the inner store's option
        """The prefix of the portal tokens the inner store issues."""
        return str(getattr(self._inner, "portal_token_prefix", DEFAULT_PORTAL_TOKEN_PREFIX))

    def run(self, change: Change[_T], /) -> _T:
        """Run ``change`` on the inner store; once it commits, drop what it touched.

        What it touched is derived from the change itself: every record it inserted, updated
        or locked for update (:func:`invalidations_for`). The invalidations apply here at
        once and go to ``publisher`` for the other processes.

        Raises:
            ConfigurationError: the inner store cannot run changes (a lookup-only store).
        """
        touched: list[tuple[Record, bool]] = []
        result: _T = self._method("run")(observed(change, touched))
        if touched:
            self._changed(invalidations_for(touched))
        return result

    async def arun(self, change: Change[_T], /) -> _T:
        """Async twin of :meth:`run`."""
        touched: list[tuple[Record, bool]] = []
        result: _T = await self._method("arun")(observed(change, touched))
        if touched:
            await self._achanged(invalidations_for(touched))
        return result
