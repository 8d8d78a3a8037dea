"""The bounded tables behind the per-process caches, and what an entry is estimated to cost.

Every table is bounded twice: by a number of entries and by an estimate of the bytes its entries
hold (issue 26, finding 3: a key with a thousand grants costs a hundred times what a key with
ten does, so an entry bound alone does not bound memory). An entry's cost is computed once, when
it is inserted, by :func:`cost_of`: a documented estimate from the lengths of its strings and the
number and lengths of its grants, not a walk of the object graph.

- :class:`LruTable`: ``key -> (expires_at, value, cost)``, least recently used first out
  (:class:`~authcore.backends.cache.CachedStore`'s records and refusals,
  :class:`~authcore.backends.token_cache.VerifiedTokenCache`);
- :class:`Conclusions`: the flow's conclusions by credential digest, oldest first out; its read
  is a bare ``dict.get`` (the replay's hit path), so a hit does not reorder it.

An expired entry is dropped when a read meets it, and every insert first drops up to
:data:`SWEEP` entries whose time has passed, in expiry order, so dead entries do not hold the
count or the bytes until eviction reaches them.
"""

from __future__ import annotations

import heapq
import itertools
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from typing import Final, Generic, TypeVar

from authcore.errors import ConfigurationError
from authcore.keyring import VerifiedClaims
from authcore.permissions import PermissionSet
from authcore.records import IdentityRecord, PortalSessionRecord, RootKeyRecord, WorkspaceRecord
from authcore.replay import Conclusion

__all__ = [
    "DEFAULT_MAX_BYTES",
    "ENTRY_COST",
    "GRANT_COST",
    "MISS",
    "STRING_COST",
    "SWEEP",
    "WILDCARD_GRANT_COST",
    "Conclusions",
    "LruTable",
    "check_bytes",
    "check_size",
    "cost_of",
]

_K = TypeVar("_K", bound=Hashable)
#: A table's answer for a key it does not hold (or holds expired).
MISS: Final = object()

#: The byte bound of each table unless configured otherwise: 64 MiB.
DEFAULT_MAX_BYTES: Final = 64 * 1024 * 1024
_MAX_ENTRIES: Final = 10_000_000
_MAX_BYTES: Final = 1 << 40
#: At most this many expired entries are dropped per insert (the sweep's bound).
SWEEP: Final = 4
# At most this many heap items are looked at per insert (stale ones included).
_POPS: Final = 64

# The estimate (CPython 3.11, 64-bit; measured with tracemalloc on records and permission sets,
# rounded up). ENTRY_COST: the table slot, the entry tuple, the record or conclusion object and
# its fixed fields. STRING_COST: one str object's header; its characters are added to it.
# GRANT_COST: one grant's str header plus its slot in a tuple and a set; a wildcard grant
# also builds trie nodes (about 360 bytes measured).
ENTRY_COST: Final = 512
STRING_COST: Final = 64
GRANT_COST: Final = 64
WILDCARD_GRANT_COST: Final = 384


def check_size(name: str, value: int) -> int:
    """Return ``value``, an entry bound.

    Raises:
        ConfigurationError: not an int in 1..10,000,000.
    """
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_ENTRIES:
        raise ConfigurationError(f"{name} must be an int in 1..{_MAX_ENTRIES}")
    return value


def check_bytes(name: str, value: int) -> int:
    """Return ``value``, a byte bound.

    Raises:
        ConfigurationError: not an int in 4096..2**40.
    """
    if isinstance(value, bool) or not isinstance(value, int) or not 4096 <= value <= _MAX_BYTES:
        raise ConfigurationError(f"{name} must be an int in 4096..{_MAX_BYTES}")
    return value


def _strings(*values: str | None) -> int:
    return sum(STRING_COST + len(value) for value in values if value is not None)


def _grants(grants: Iterable[str]) -> int:
    return sum(
        (WILDCARD_GRANT_COST if "*" in grant else GRANT_COST) + len(grant) for grant in grants
    )


def _permission_set(permissions: PermissionSet | None) -> int:
    return 0 if permissions is None else _grants(permissions.grants)


def cost_of(value: object) -> int:
    """Return the estimated bytes an entry holding ``value`` keeps alive (see the constants).

    ``value`` is a record, a conclusion, verified JWT claims or None (an unknown credential);
    anything else costs :data:`ENTRY_COST`.
    """
    if isinstance(value, RootKeyRecord):
        found = _strings(value.id, value.workspace_id, value.start, value.name, value.identity_id)
        return ENTRY_COST + found + 32 + _grants(value.permissions)
    if isinstance(value, PortalSessionRecord):
        found = _strings(value.id, value.workspace_id, value.identity_id)
        return ENTRY_COST + found + 32 + _grants(value.permissions + value.key_permissions)
    if isinstance(value, WorkspaceRecord):
        return ENTRY_COST + _strings(value.id, value.name, value.org_id)
    if isinstance(value, IdentityRecord):
        found = _strings(value.id, value.workspace_id, value.external_id, value.meta)
        return ENTRY_COST + found
    if isinstance(value, Conclusion):
        principal, subject = value.principal, value.principal.subject
        found = _strings(
            principal.workspace_id, subject.type, subject.id, subject.name, principal.identity_id
        )
        held = _permission_set(principal.permissions) + _permission_set(principal.key_permissions)
        # Twice the entry: the conclusion and its principal, levels and header fields.
        return 2 * ENTRY_COST + found + _strings(value.key_id, value.credential_id) + held
    if isinstance(value, VerifiedClaims):
        found = _strings(value.subject, value.workspace_id, value.jwt_id, value.name, value.key_id)
        return ENTRY_COST + found + _grants(value.permissions)
    return ENTRY_COST


class _Expiries(Generic[_K]):
    """Entries' expiry times in order, so an insert can find the expired ones cheaply.

    A heap of ``(expires_at, n, key)``. An item whose entry was replaced or dropped stays until
    it is popped, or until the heap holds more than twice the table (plus slack) and the owner
    rebuilds it from what it holds: amortized, an insert costs O(log n).
    """

    __slots__ = ("heap", "order")

    def __init__(self) -> None:
        self.heap: list[tuple[float, int, _K]] = []
        self.order = itertools.count()

    def add(self, key: _K, expires_at: float, live: int) -> bool:
        """Push ``key``; return whether the heap is due a rebuild (``live``: the table's size)."""
        heapq.heappush(self.heap, (expires_at, next(self.order), key))
        return len(self.heap) > 2 * live + 1024

    def due(self, now: float, expired: Callable[[_K], bool]) -> list[_K]:
        """Pop items whose time has passed; return up to :data:`SWEEP` keys still held and
        ``expired``. Items of entries already gone are skipped, at most :data:`_POPS` in all:
        each insert pushes one item, so they never pile up ahead of the live ones."""
        heap = self.heap
        keys: list[_K] = []
        pops = 0
        while heap and len(keys) < SWEEP and pops < _POPS and heap[0][0] <= now:
            key = heapq.heappop(heap)[2]
            pops += 1
            if expired(key):
                keys.append(key)
        return keys

    def rebuild(self, items: Iterable[tuple[_K, float]]) -> None:
        self.heap = [(expires_at, next(self.order), key) for key, expires_at in items]
        heapq.heapify(self.heap)


class LruTable:
    """A least-recently-used table of ``key -> (expires_at, value, cost)``, bounded in entries
    and in estimated bytes. The caller holds a lock around every method.

    ``entries`` may be read without the lock (one ``dict.get`` is atomic under the GIL) and
    touched with ``move_to_end``; everything that adds or removes goes through the methods,
    which keep :attr:`byte_size` equal to the sum of the held entries' costs.

    Raises:
        ConfigurationError: a bound is out of range.
    """

    __slots__ = ("_expiries", "byte_size", "entries", "max_bytes", "max_entries")

    def __init__(self, max_entries: int, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.entries: OrderedDict[Hashable, tuple[float, object, int]] = OrderedDict()
        #: The estimated bytes held: the sum of the entries' costs, kept on every change.
        self.byte_size = 0
        self._expiries: _Expiries[Hashable] = _Expiries()

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, key: Hashable, now: float, /) -> object:
        """Return the value held for ``key``, or :data:`MISS`; an expired entry is dropped."""
        entry = self.entries.get(key)
        if entry is None:
            return MISS
        if now >= entry[0]:
            self.pop(key)
            return MISS
        self.entries.move_to_end(key)
        return entry[1]

    def put(self, key: Hashable, value: object, expires_at: float, now: float, /) -> None:
        """Keep ``value`` until ``expires_at``, evicting the least recently used entries until
        both bounds hold (a value costing more than ``max_bytes`` on its own is not kept)."""
        self.sweep(now)
        self.pop(key)
        cost = cost_of(value)
        if cost > self.max_bytes:
            return
        entries = self.entries
        while entries and (
            len(entries) >= self.max_entries or self.byte_size + cost > self.max_bytes
        ):
            self.byte_size -= entries.popitem(last=False)[1][2]
        entries[key] = (expires_at, value, cost)
        self.byte_size += cost
        if self._expiries.add(key, expires_at, len(entries)):
            self._expiries.rebuild((key, entry[0]) for key, entry in entries.items())

    def pop(self, key: Hashable, /) -> None:
        """Drop ``key`` if held."""
        entry = self.entries.pop(key, None)
        if entry is not None:
            self.byte_size -= entry[2]

    def sweep(self, now: float, /) -> None:
        """Drop up to :data:`SWEEP` expired entries, the earliest to expire first."""
        entries = self.entries

        def expired(key: Hashable) -> bool:
            entry = entries.get(key)
            return entry is not None and now >= entry[0]

        for key in self._expiries.due(now, expired):
            self.pop(key)

    def clear(self) -> None:
        """Drop everything."""
        self.entries.clear()
        self.byte_size = 0
        self._expiries.rebuild(())

    def drop_where(self, predicate: Callable[[Hashable, object], bool], /) -> None:
        """Drop every entry for which ``predicate(key, value)`` holds."""
        doomed = [key for key, (_, value, _) in self.entries.items() if predicate(key, value)]
        for key in doomed:
            self.pop(key)


class Conclusions:
    """The flow's conclusions by credential digest, bounded in entries and estimated bytes.

    ``get`` is the bound ``dict.get`` of the table (the replay's hit path: no Python frame of
    our own, no lock); every other method runs under the owner's lock. Full, the oldest
    conclusion goes first: a hit does not reorder (a hot credential is concluded again within
    a TTL anyway).
    """

    __slots__ = ("_costs", "_entries", "_expiries", "byte_size", "get", "max_bytes", "max_entries")

    def __init__(self, max_entries: int, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: dict[bytes, Conclusion] = {}
        self._costs: dict[bytes, int] = {}
        self._expiries: _Expiries[bytes] = _Expiries()
        #: The estimated bytes held: the sum of the conclusions' costs.
        self.byte_size = 0
        self.get: Callable[[bytes], Conclusion | None] = self._entries.get

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"ConclusionTable(entries={len(self._entries)})"

    def keep(self, key: bytes, conclusion: Conclusion, now: float) -> None:
        """Keep ``conclusion`` (its ``valid_until`` on ``now``'s clock); evict to both bounds."""
        self.sweep(now)
        self.pop(key)
        cost = cost_of(conclusion)
        if cost > self.max_bytes:
            return
        entries, costs = self._entries, self._costs
        while entries and (
            len(entries) >= self.max_entries or self.byte_size + cost > self.max_bytes
        ):
            self.pop(next(iter(entries)))
        entries[key] = conclusion
        costs[key] = cost
        self.byte_size += cost
        if self._expiries.add(key, conclusion.valid_until, len(entries)):
            self._expiries.rebuild((key, found.valid_until) for key, found in entries.items())

    def pop(self, key: bytes, /) -> None:
        """Drop ``key`` if held."""
        if self._entries.pop(key, None) is not None:
            self.byte_size -= self._costs.pop(key)

    def sweep(self, now: float, /) -> None:
        """Drop up to :data:`SWEEP` conclusions past ``valid_until``, the earliest first."""
        entries = self._entries

        def expired(key: bytes) -> bool:
            conclusion = entries.get(key)
            return conclusion is not None and now >= conclusion.valid_until

        for key in self._expiries.due(now, expired):
            self.pop(key)

    def clear(self) -> None:
        """Drop everything."""
        self._entries.clear()
        self._costs.clear()
        self.byte_size = 0
        self._expiries.rebuild(())

    def drop_where(self, predicate: Callable[[Conclusion], bool], /) -> None:
        """Drop every conclusion for which ``predicate`` holds."""
        for key in [key for key, conclusion in self._entries.items() if predicate(conclusion)]:
            self.pop(key)
