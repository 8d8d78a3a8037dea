"""The invalidation outbox: how a change made in one process reaches every process's cache.

A change that writes (revoke, rotate, disable, a limit, an identity, a portal logout ...)
appends the invalidations it needs (:func:`~authcore.backends.invalidation.invalidations_for`,
derived from its own steps) to the ``invalidations`` table *in its own transaction*
(:func:`run_recorded`). So an invalidation is never lost for a committed change and never
exists for one that rolled back, and it does not matter which process or which wrapper ran the
change: the command line's plain store writes them exactly as a server's cache does.

Every serving process runs one :class:`InvalidationFollower`: a daemon thread that reads the
rows after the last one it applied and applies them to its
:class:`~authcore.backends.cache.CachedStore`. It waits on an :class:`InvalidationSource` the
store provides: SQLite polls ``PRAGMA data_version`` (one shared-memory read, no I/O) every
:data:`SQLITE_INTERVAL` and reads rows only when another connection committed; PostgreSQL
``LISTEN``\\ s on a channel the change ``NOTIFY``\\ s (delivered on commit only) and reads at
least every :data:`POSTGRES_INTERVAL` anyway. Requests never wait on it: the hit path is
untouched.

Bounded: rows older than :data:`RETAIN_SECONDS` (by the database's clock) are pruned by the
writes themselves, the newest row always stays (SQLite must never hand out a sequence number
again), and a follower reads at most :data:`BATCH` rows at a time. A follower that finds rows
missing (it was away longer than the retained window) or more than a batch behind drops its
whole cache instead of missing an entry.

Sequence order is commit order: SQLite has one writer at a time; on PostgreSQL the outbox
insert takes a transaction-level advisory lock, held to the commit, so no row can become
visible behind one a follower has already passed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final, Protocol, TypeVar

import attrs

from authcore.backends import _sql
from authcore.backends.invalidation import Invalidation, invalidations_for, observed
from authcore.errors import ConfigurationError
from authcore.records import Record
from authcore.steps import Change

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from authcore.backends.cache import CachedStore

__all__ = [
    "BATCH",
    "POSTGRES_INTERVAL",
    "RETAIN_SECONDS",
    "REVOCATION_BOUND",
    "SQLITE_INTERVAL",
    "InvalidationFollower",
    "InvalidationSource",
    "Outbox",
    "arun_recorded",
    "run_recorded",
]

_R = TypeVar("_R")
_log = logging.getLogger("authcore.backends.outbox")

#: Seconds an outbox row is kept (by the database's clock): a follower away longer clears.
RETAIN_SECONDS: Final = 600
#: Most rows a follower reads at once; further behind than this, it clears its cache.
BATCH: Final = 1000
#: How often a SQLite follower checks ``PRAGMA data_version``.
SQLITE_INTERVAL: Final = 0.1
#: Longest a PostgreSQL follower waits for a notification before it reads anyway.
POSTGRES_INTERVAL: Final = 0.5
#: Seconds within which a change committed anywhere reaches every following process (SQLite
#: alone, PostgreSQL alone, and with Redis, which is faster but at-most-once): the interval,
#: plus a read and an apply, with room for a loaded machine.
REVOCATION_BOUND: Final = 1
# Between attempts to reach the database again.
_MAX_BACKOFF: Final = 2.0

# The database's clock, in whole seconds since the epoch: stores never read the host's clock.
_DB_NOW: Final = {
    "sqlite": "CAST(strftime('%s', 'now') AS INTEGER)",
    "postgres": "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS BIGINT)",
}
_INSERT: Final = "INSERT INTO invalidations (created_at, message) VALUES ({now}, ?)"
# Deletes a prefix (every row up to the newest old one), never the rows just inserted.
_PRUNE: Final = (
    "DELETE FROM invalidations WHERE seq <="
    " (SELECT MAX(seq) FROM invalidations WHERE created_at < {now} - ?)"
)
_AFTER: Final = "SELECT seq, message FROM invalidations WHERE seq > ? ORDER BY seq LIMIT ?"
_NEWEST: Final = "SELECT COALESCE(MAX(seq), 0) FROM invalidations"
_OLDEST: Final = "SELECT COALESCE(MIN(seq), 0) FROM invalidations"


@attrs.frozen
class Outbox:
    """How one store appends a change's invalidations, inside the change's transaction.

    ``lock``: taken first, held to the commit, so sequence order is commit order (PostgreSQL's
    advisory lock; SQLite's single writer needs none). ``notify``: run last, delivered by the
    database on commit only (PostgreSQL's ``pg_notify``).
    """

    dialect: str
    lock: _sql.Statement | None = None
    notify: _sql.Statement | None = None

    def statements(self, invalidations: Sequence[Invalidation]) -> list[_sql.Statement]:
        """The statements that record ``invalidations`` (and prune old rows)."""
        now = _DB_NOW[self.dialect]
        out = [] if self.lock is None else [self.lock]
        insert = _INSERT.replace("{now}", now)
        out.extend(_sql.Statement(insert, (item.encode(),)) for item in invalidations)
        out.append(_sql.Statement(_PRUNE.replace("{now}", now), (RETAIN_SECONDS,)))
        if self.notify is not None:
            out.append(self.notify)
        return out


def run_recorded(
    change: Change[_R], execute: Callable[[_sql.Statement], _sql.Rows], outbox: Outbox
) -> _R:
    """Run ``change`` through ``execute`` (the caller holds the transaction), then append
    what it invalidates to the outbox, in the same transaction."""
    touched: list[tuple[Record, bool]] = []
    result = _sql.run_change(observed(change, touched), execute)
    invalidations = invalidations_for(touched) if touched else []
    if invalidations:
        for statement in outbox.statements(invalidations):
            execute(statement)
    return result


async def arun_recorded(
    change: Change[_R],
    execute: Callable[[_sql.Statement], Awaitable[_sql.Rows]],
    outbox: Outbox,
) -> _R:
    """Async twin of :func:`run_recorded`."""
    touched: list[tuple[Record, bool]] = []
    result = await _sql.arun_change(observed(change, touched), execute)
    invalidations = invalidations_for(touched) if touched else []
    if invalidations:
        for statement in outbox.statements(invalidations):
            await execute(statement)
    return result


class InvalidationSource(Protocol):
    """One follower's own connection to the store (see ``SQLiteStore.invalidation_source``).

    Raises (each method): :class:`~authcore.errors.UnavailableError` when the database fails;
    the follower then closes it and opens a new one.
    """

    interval: float

    def wait(self, timeout: float, /) -> bool:
        """Wait up to ``timeout`` seconds for a sign of new rows; return whether to read."""
        ...

    def read(self, sql: str, params: tuple[object, ...], /) -> _sql.Rows:
        """Run one read (a statement of this module) and return its rows."""
        ...

    def close(self) -> None: ...


class InvalidationFollower:
    """Applies every change the store records (by any process) to ``cache``: a daemon thread.

    ``open_source`` is the store's ``invalidation_source``. :meth:`start` starts following;
    the first time the source is reached, the cache is cleared (whatever it held may predate
    the position the follower starts from). :meth:`close` stops the thread and the source.
    :meth:`catch_up` is one step of the thread, for a caller that drives it itself.
    """

    def __init__(self, cache: CachedStore, open_source: Callable[[], InvalidationSource]) -> None:
        self._cache = cache
        self._open_source = open_source
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._seq: int | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(position={self._seq})"

    @property
    def position(self) -> int | None:
        """The sequence number of the last row applied (None before the source is reached)."""
        return self._seq

    def start(self) -> None:
        """Start the thread that applies the store's invalidations to the cache.

        Raises:
            ConfigurationError: already started.
        """
        if self._thread is not None:
            raise ConfigurationError("this InvalidationFollower is already running")
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name="authcore-outbox-follower", daemon=True
        )
        self._thread.start()

    def wait_ready(self, timeout: float) -> bool:
        """Wait until the follower has reached the store once; return whether it has."""
        return self._ready.wait(timeout)

    def close(self) -> None:
        """Stop following (waits for the thread, at most a few seconds); idempotent."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=POSTGRES_INTERVAL + _MAX_BACKOFF + 2.0)

    def catch_up(self, source: InvalidationSource) -> int:
        """Apply every row after the last one applied; return how many were applied.

        A gap (rows pruned before this process read them) or a backlog longer than
        :data:`BATCH` clears the whole cache and moves to the newest row.
        """
        cache = self._cache
        if self._seq is None:
            self._restart(source, cache)
            return 0
        rows = source.read(_AFTER, (self._seq, BATCH + 1))
        if not rows:
            return 0
        if len(rows) > BATCH or (
            int(rows[0][0]) > self._seq + 1 and self._oldest(source) > self._seq
        ):
            _log.warning("cache invalidations were missed (behind or away): clearing the cache")
            self._restart(source, cache)
            return 0
        for seq, message in rows:
            invalidation = Invalidation.decode(message)
            if invalidation is not None:
                cache.apply(invalidation)
            self._seq = int(seq)
        return len(rows)

    @staticmethod
    def _oldest(source: InvalidationSource) -> int:
        return int(source.read(_OLDEST, ())[0][0])

    def _restart(self, source: InvalidationSource, cache: CachedStore) -> None:
        # The position first, then the clear: whatever is cached after the clear was read
        # after the position, and a lookup in flight across the clear is not kept.
        newest = int(source.read(_NEWEST, ())[0][0])
        cache.clear()
        self._seq = newest

    def _run(self) -> None:
        source: InvalidationSource | None = None
        backoff = 0.05
        while not self._stop.is_set():
            try:
                if source is None:
                    source = self._open_source()
                    self.catch_up(source)  # the position (first time), or what was missed
                    self._ready.set()
                    backoff = 0.05
                if source.wait(source.interval) and not self._stop.is_set():
                    self.catch_up(source)
            except Exception as exc:  # noqa: BLE001 - any failure: reconnect, never die
                _log.warning("cache invalidation follower lost the store (%s)", type(exc).__name__)
                if source is not None:
                    _close_quietly(source)
                    source = None
                self._stop.wait(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
        if source is not None:
            _close_quietly(source)


def _close_quietly(source: InvalidationSource) -> None:
    try:
        source.close()
    except Exception:  # noqa: BLE001 - closing a broken connection has nothing to report
        _log.debug("closing the follower's connection failed")
