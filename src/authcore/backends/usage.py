"""Usage counted in memory and recorded in the store: the counter and its recorder.

:class:`UsageCounter` is what the request gate counts into (one increment under a lock held
for that increment only). :class:`UsageRecorder` drains it every ``interval`` seconds and at
every minute boundary, on a thread of its own, and adds the counts to the store in one
transaction (:func:`authcore.usage.record_usage`); a flush that fails is kept and tried again
with the next one, so an outage of the store loses nothing while the process lives. Closing
the recorder flushes once more. A request never waits for a flush.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Final

from authcore.records import UsageCount
from authcore.usage import record_usage

__all__ = ["UsageCounter", "UsageRecorder"]

_log = logging.getLogger("authcore.usage")
_Key = tuple[str, str, str]
#: Default seconds between flushes.
DEFAULT_INTERVAL: Final = 5.0


class UsageCounter:
    """Authentication outcomes counted in memory until a recorder drains them.

    Thread-safe and exact: :meth:`count` and :meth:`drain` share one lock, held for a
    dictionary increment or a swap. ``max_keys`` bounds memory between two drains: past it,
    new (workspace, credential) pairs count as ``("", "", outcome)``, so nothing is lost from
    the totals.
    """

    __slots__ = ("_counts", "_lock", "_max_keys")

    def __init__(self, *, max_keys: int = 100_000) -> None:
        self._lock = threading.Lock()
        self._counts: dict[_Key, int] = {}
        self._max_keys = max_keys

    def __repr__(self) -> str:
        return f"UsageCounter(pending={len(self._counts)})"

    def count(self, workspace_id: str, credential_id: str, outcome: str) -> None:
        """Count one outcome (the request path: one increment, no I/O)."""
        key = (workspace_id, credential_id, outcome)
        with self._lock:
            counts = self._counts
            if key in counts:
                counts[key] += 1
            elif len(counts) < self._max_keys:
                counts[key] = 1
            else:
                overflow = ("", "", outcome)
                counts[overflow] = counts.get(overflow, 0) + 1

    def drain(self) -> dict[_Key, int]:
        """Take everything counted so far, leaving the counter empty."""
        with self._lock:
            counts, self._counts = self._counts, {}
        return counts

    def restore(self, counts: dict[_Key, int]) -> None:
        """Put back counts a recorder could not store, to be drained again."""
        with self._lock:
            mine = self._counts
            for key, value in counts.items():
                mine[key] = mine.get(key, 0) + value


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
            except Exception as exc:  # noqa: BLE001 - keep the counts; the next flush retries
                self.counter.restore(counts)
                # The type only: a driver message may quote a connection string.
                _log.warning("usage flush failed, kept for the next one: %s", type(exc).__name__)
                return 0
            return len(rows)
