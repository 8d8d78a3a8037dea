"""Usage counted in memory and recorded in the store: the counter and its recorder.

:class:`UsageCounter` is what the request gate counts into (one dictionary increment, no
lock). :class:`UsageRecorder` drains it every ``interval`` seconds and at
every minute boundary, on a thread of its own, and adds the counts to the store in one
transaction (:func:`authcore.usage.record_usage`); a flush that fails is not committed and is
counted again by the next one, so an outage of the store loses nothing while the process
lives. Closing the recorder flushes once more. A request never waits for a flush.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Final

from authcore.errors import ConfigurationError
from authcore.records import UsageCount
from authcore.usage import record_usage

__all__ = ["UsageCounter", "UsageRecorder"]

_log = logging.getLogger("authcore.usage")
_Key = tuple[str, str, str]
#: Default seconds between flushes.
DEFAULT_INTERVAL: Final = 5.0
_MAX_INTERVAL: Final = 3600.0


class UsageCounter:
    """Authentication outcomes counted in memory until a recorder drains them.

    Exact without a lock on the request path: each thread counts into a table of its own
    (one writer per table, so no increment is ever lost), and the tables only grow. A drain
    copies each table (a copy is atomic under the GIL) and returns what grew since the last
    drain that was :meth:`committed <commit>`; a drain that is not committed (its flush
    failed) is counted again by the next. ``max_keys`` bounds each table: past it, new
    (workspace, credential) pairs count as ``("", "", outcome)``, so the totals stay exact.
    """

    __slots__ = ("_flushed", "_local", "_lock", "_max_keys", "_pending", "_tables")

    def __init__(self, *, max_keys: int = 100_000) -> None:
        self._local = threading.local()
        self._lock = threading.Lock()  # guards the registry and the drains, never a count
        # (the thread that counts into it, its table)
        self._tables: list[tuple[threading.Thread, dict[_Key, int]]] = []
        self._flushed: dict[int, dict[_Key, int]] = {}
        self._pending: dict[int, dict[_Key, int]] = {}
        self._max_keys = max_keys

    def __repr__(self) -> str:
        return f"UsageCounter(threads={len(self._tables)})"

    def count(self, key: _Key, /) -> None:
        """Count one ``(workspace_id, credential_id, outcome)`` (the request path)."""
        try:
            self._local.counts[key] += 1
        except (AttributeError, KeyError):
            self._first(key)

    def _first(self, key: _Key) -> None:
        # This thread's first count, or the key's first in this thread's table.
        try:
            counts: dict[_Key, int] = self._local.counts
        except AttributeError:
            counts = self._register()
        if key in counts:
            counts[key] += 1
        elif len(counts) < self._max_keys:
            counts[key] = 1
        else:
            overflow = ("", "", key[2])
            counts[overflow] = counts.get(overflow, 0) + 1

    def _register(self) -> dict[_Key, int]:
        counts: dict[_Key, int] = {}
        self._local.counts = counts
        with self._lock:
            self._tables.append((threading.current_thread(), counts))
        return counts

    def drain(self) -> dict[_Key, int]:
        """Return what was counted since the last committed drain (nothing is reset)."""
        with self._lock:
            total: dict[_Key, int] = {}
            self._pending = {}
            for _, table in self._tables:
                snapshot = table.copy()
                flushed = self._flushed.get(id(table), {})
                for key, value in snapshot.items():
                    grown = value - flushed.get(key, 0)
                    if grown:
                        total[key] = total.get(key, 0) + grown
                self._pending[id(table)] = snapshot
            return total

    def commit(self) -> None:
        """The last drain was stored: count from there on; forget the tables of dead threads."""
        with self._lock:
            self._flushed.update(self._pending)
            self._pending = {}
            alive = []
            for thread, table in self._tables:
                if thread.is_alive() or self._flushed.get(id(table)) != table:
                    alive.append((thread, table))
                else:
                    del self._flushed[id(table)]
            self._tables = alive


class UsageRecorder:
    """Flushes a :class:`UsageCounter` into ``store`` (anything with ``run``) in the background.

    Counts drained at a flush belong to the minute the drained window started in; windows end
    at every minute boundary, so a count lands in the minute it happened (give or take the
    thread's wake-up). ``clock`` is wall-clock seconds.
    """

    def __init__(
        self,
        store: Any,
        counter: UsageCounter,
        *,
        interval: float = DEFAULT_INTERVAL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Raises:
        ConfigurationError: ``interval`` is not a number of seconds in (0, 3600].
        """
        if isinstance(interval, bool) or not isinstance(interval, int | float):
            raise ConfigurationError("usage interval must be a number of seconds")
        if not 0 < interval <= _MAX_INTERVAL:
            raise ConfigurationError(f"usage interval must be in (0, {_MAX_INTERVAL:.0f}] seconds")
        self.store = store
        self.counter = counter
        self.interval = interval
        self._clock = clock
        self._window = clock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._flush_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"UsageRecorder(interval={self.interval}, running={self.running})"

    @property
    def running(self) -> bool:
        """Whether the background thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start flushing in the background (idempotent)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="authcore-usage", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the thread and flush what is left (idempotent)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=30)
        self.flush()

    def _wait(self) -> float:
        now = self._clock()
        to_minute = 60.0 - now % 60.0
        return max(0.05, min(self.interval, to_minute + 0.01))

    def _loop(self) -> None:
        while not self._stop.wait(self._wait()):
            self.flush()

    def flush(self) -> int:
        """Store what was counted since the last flush; return how many rows were written."""
        with self._flush_lock:
            now = self._clock()
            start, self._window = self._window, now
            counts = self.counter.drain()
            if not counts:
                return 0
            bucket = int(start) - int(start) % 60
            rows = [
                UsageCount(workspace_id, credential_id, outcome, bucket, count)
                for (workspace_id, credential_id, outcome), count in counts.items()
            ]
            try:
                self.store.run(record_usage(rows, used_at=bucket))
            except Exception as exc:  # noqa: BLE001 - not committed: the next flush retries
                # The type only: a driver message may quote a connection string.
                _log.warning("usage flush failed, kept for the next one: %s", type(exc).__name__)
                return 0
            self.counter.commit()
            return len(rows)
