"""The embedded default store: one SQLite file, standard library ``sqlite3``, WAL.

Thread model: one *writer* connection behind a lock, plus a bounded pool of *reader*
connections. WAL lets readers run while a write is in progress, so lookups never queue behind
writers or each other, and no lookup opens a connection (readers are reused). Serializing our
own writers on a Python lock means our threads never fight over SQLite's write lock; the
``busy_timeout`` only matters against other processes. Unlike one-connection-per-thread, the
number of open connections stays bounded however many threads a server spawns.

Async methods run the sync ones on the store's own small thread pool, so the event loop never
blocks on disk or on a lock. Every wait is bounded by ``timeout``.

Schema migrations (:data:`authcore.backends._sql.MIGRATIONS`, shared with PostgreSQL) are
applied on open inside a ``BEGIN IMMEDIATE`` transaction, so two processes opening the same
file at once apply each migration exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Final, TypeAlias, TypeVar

from authcore.backends import _sql, outbox
from authcore.errors import ClientError, ConfigurationError, ConflictError, UnavailableError
from authcore.records import IdentityRecord, PortalSessionRecord, RootKeyRecord, WorkspaceRecord
from authcore.steps import Change
from authcore.store import AsyncStore, Store
from authcore.tokens import DEFAULT_PORTAL_TOKEN_PREFIX, DEFAULT_ROOT_KEY_PREFIX, validate_prefix

__all__ = ["SQLiteStore"]

_T = TypeVar("_T")
_Execute: TypeAlias = Callable[[_sql.Statement], _sql.Rows]
_MAX_TIMEOUT: Final = 60.0
_OUTBOX: Final = outbox.Outbox("sqlite")


#: How much of the database file reader connections may map (256 MiB).
_MMAP_BYTES = 256 * 1024 * 1024


def _not_text() -> ClientError:
    # A str SQLite cannot encode (a lone surrogate) is the caller's input, never a stored
    # value (every stored name was checked): a 400, not a 500 or a 503.
    return ClientError("sqlite: a text argument is not valid Unicode")


def _unavailable(exc: sqlite3.Error) -> UnavailableError:
    # The error name (SQLITE_BUSY, SQLITE_IOERR, ...) says enough; SQLite's message could
    # quote SQL, and we never let parameters or digests into an error.
    name = getattr(exc, "sqlite_errorname", None) or type(exc).__name__
    return UnavailableError(f"sqlite: {name}")


class SQLiteStore(_sql.SQLLookups, Store, AsyncStore):
    """A :class:`~authcore.store.Store` and :class:`~authcore.store.AsyncStore` in one file.

    Changes that write run in one ``BEGIN IMMEDIATE`` transaction on the writer; changes that
    only read run on a reader.

    ``timeout`` (seconds, 0 < timeout <= 60) bounds every wait: SQLite's busy handler, the
    writer lock and a free reader. ``readers`` is the size of the reader pool (and of the
    thread pool that serves the async methods).

    Raises:
        ConfigurationError: a bad timeout, pool size or prefix, or a database whose schema is
            newer than this code.
        UnavailableError: the file cannot be opened or migrated (locked, unreadable, corrupt).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        timeout: float = 5.0,
        readers: int = 8,
        root_key_prefix: str = DEFAULT_ROOT_KEY_PREFIX,
        portal_token_prefix: str = DEFAULT_PORTAL_TOKEN_PREFIX,
    ) -> None:
        if isinstance(timeout, bool) or not isinstance(timeout, int | float):
            raise ConfigurationError("timeout must be a number of seconds")
        if not 0 < timeout <= _MAX_TIMEOUT:
            raise ConfigurationError(f"timeout must be in (0, {_MAX_TIMEOUT}] seconds")
        if isinstance(readers, bool) or not isinstance(readers, int) or not 1 <= readers <= 64:
            raise ConfigurationError("readers must be an int in 1..64")
        self.root_key_prefix = validate_prefix(root_key_prefix)
        self.portal_token_prefix = validate_prefix(portal_token_prefix)
        self._path = os.fspath(path)
        self._timeout = float(timeout)
        self._max_readers = readers
        self._closed = False
        self._write_lock = threading.Lock()
        self._pool_lock = threading.Lock()
        self._idle: queue.LifoQueue[sqlite3.Connection] = queue.LifoQueue()
        self._readers: list[sqlite3.Connection] = []
        self._executor: ThreadPoolExecutor | None = None
        self._create_file()
        self._writer = self._connect(readonly=False)
        try:
            self._write(lambda execute: _sql.drive_statements(_sql.migrate(), execute))
        except BaseException:
            self._writer.close()
            raise

    # ------------------------------------------------------------------ connections

    def _create_file(self) -> None:
        if self._path == ":memory:" or self._path.startswith("file:"):
            raise ConfigurationError("SQLiteStore needs a file path (readers share the file)")
        try:
            # Create it owner-only: it holds digests and password hashes.
            fd = os.open(self._path, os.O_CREAT | os.O_RDWR, 0o600)
        except OSError as exc:
            raise UnavailableError(f"sqlite: cannot open file ({exc.strerror})") from None
        os.close(fd)

    def _connect(self, *, readonly: bool) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self._path,
                timeout=self._timeout,
                # Manual transactions: BEGIN IMMEDIATE for writes, autocommit reads.
                isolation_level=None,
                # A connection is only ever used by one thread at a time (pool or lock).
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise _unavailable(exc) from None
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._timeout * 1000)}")
            if readonly:
                conn.execute("PRAGMA query_only = ON")
                # Lookups read index pages through the OS page cache mapped into the process
                # instead of copying each page into SQLite's own cache: with a million keys
                # that keeps a cold lookup close to its cost with a thousand. Reads only; a
                # mapping beyond the file's size costs nothing.
                conn.execute(f"PRAGMA mmap_size = {_MMAP_BYTES}")
            else:
                conn.execute("PRAGMA journal_mode = WAL")
                # WAL + NORMAL: a crash may lose the last commits but never corrupts the file.
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as exc:
            conn.close()
            raise _unavailable(exc) from None
        return conn

    def _acquire_reader(self) -> sqlite3.Connection:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._pool_lock:
            # Checked again under the lock: a reader opened after close() would never be closed.
            self._check_open()
            grow = len(self._readers) < self._max_readers
            if grow:
                conn = self._connect(readonly=True)
                self._readers.append(conn)
                return conn
        try:
            return self._idle.get(timeout=self._timeout)
        except queue.Empty:
            raise UnavailableError("sqlite: no free reader connection") from None

    def _check_open(self) -> None:
        if self._closed:
            raise UnavailableError("sqlite: store is closed")

    # ------------------------------------------------------------------ drivers

    def _read(self, sql: str, params: tuple[object, ...]) -> _sql.Rows:
        # The lookups' path: one statement on a reader, nothing else.
        self._check_open()
        conn = self._acquire_reader()
        try:
            return conn.execute(_sql.SQLITE.render(sql), params).fetchall()
        except sqlite3.Error as exc:
            raise _unavailable(exc) from None
        except UnicodeEncodeError:
            raise _not_text() from None
        finally:
            self._idle.put(conn)

    def _reading(self, work: Callable[[_Execute], _T]) -> _T:
        self._check_open()
        conn = self._acquire_reader()
        try:
            return work(lambda statement: self._execute(conn, statement))
        finally:
            self._idle.put(conn)

    def _write(self, work: Callable[[_Execute], _T]) -> _T:
        self._check_open()
        if not self._write_lock.acquire(timeout=self._timeout):
            raise UnavailableError("sqlite: writer busy")
        try:
            conn = self._writer
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise _unavailable(exc) from None
            try:
                result = work(lambda statement: self._execute(conn, statement))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    # The original error is the one to report; a failed rollback leaves
                    # SQLite to roll back when the connection next begins.
                    with contextlib.suppress(sqlite3.Error):
                        conn.rollback()
                raise
            return result
        except sqlite3.Error as exc:
            raise _unavailable(exc) from None
        finally:
            self._write_lock.release()

    @staticmethod
    def _execute(conn: sqlite3.Connection, statement: _sql.Statement) -> _sql.Rows:
        try:
            return conn.execute(_sql.SQLITE.render(statement.sql), statement.params).fetchall()
        except sqlite3.IntegrityError as exc:
            if statement.conflict is not None and "UNIQUE" in str(exc):
                raise ConflictError(statement.conflict) from None
            raise _unavailable(exc) from None
        except sqlite3.Error as exc:
            raise _unavailable(exc) from None
        except UnicodeEncodeError:
            raise _not_text() from None

    async def _offload(self, call: Callable[[], _T]) -> _T:
        self._check_open()
        if self._executor is None:
            with self._pool_lock:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(
                        max_workers=self._max_readers, thread_name_prefix="authcore-sqlite"
                    )
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    def run(self, change: Change[_T], /) -> _T:
        """Run ``change``: a write in one ``BEGIN IMMEDIATE`` transaction, a read on a reader.

        A write appends what it invalidates to the outbox in the same transaction
        (:mod:`authcore.backends.outbox`).
        """
        if change.writes:
            return self._write(lambda execute: outbox.run_recorded(change, execute, _OUTBOX))
        return self._reading(lambda execute: _sql.run_change(change, execute))

    async def arun(self, change: Change[_T], /) -> _T:
        """Async twin of :meth:`run` (runs on the store's thread pool)."""
        return await self._offload(lambda: self.run(change))

    async def afind_root_key(self, digest: bytes, /) -> RootKeyRecord | None:
        """Async twin of :meth:`find_root_key` (runs on the store's thread pool)."""
        return await self._offload(lambda: self.find_root_key(digest))

    async def afind_portal_session(self, digest: bytes, /) -> PortalSessionRecord | None:
        """Async twin of :meth:`find_portal_session` (runs on the store's thread pool)."""
        return await self._offload(lambda: self.find_portal_session(digest))

    async def afind_workspace(self, workspace_id: str, /) -> WorkspaceRecord | None:
        """Async twin of :meth:`find_workspace` (runs on the store's thread pool)."""
        return await self._offload(lambda: self.find_workspace(workspace_id))

    async def afind_identity(self, identity_id: str, /) -> IdentityRecord | None:
        """Async twin of :meth:`find_identity` (runs on the store's thread pool)."""
        return await self._offload(lambda: self.find_identity(identity_id))

    def invalidation_source(self) -> outbox.InvalidationSource:
        """A connection of its own for an :class:`~authcore.backends.outbox.InvalidationFollower`.

        Raises:
            UnavailableError: the file cannot be opened.
        """
        self._check_open()
        return _Follow(self._connect(readonly=True))

    def schema_version(self) -> int:
        """Return the schema version recorded in the database.

        Raises:
            UnavailableError: the database cannot be read.
        """
        rows = self._read("SELECT COALESCE(MAX(version), 0) FROM schema_version", ())
        return int(rows[0][0])

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close every connection and the thread pool. Later calls raise UnavailableError."""
        with self._pool_lock:
            if self._closed:
                return
            self._closed = True
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)
        with self._write_lock:
            self._writer.close()
        with self._pool_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()

    async def aclose(self) -> None:
        """Async twin of :meth:`close`."""
        await asyncio.to_thread(self.close)

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SQLiteStore({self._path!r})"


class _Follow:
    """A follower's connection: ``PRAGMA data_version`` changes when another connection
    commits, so rows are read only after a commit somewhere (any process, this one's writer)."""

    interval = outbox.SQLITE_INTERVAL

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._version: object = None

    def wait(self, timeout: float, /) -> bool:
        time.sleep(timeout)
        try:
            version = self._conn.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error as exc:
            raise _unavailable(exc) from None
        changed, self._version = version != self._version, version
        return bool(changed)

    def read(self, sql: str, params: tuple[object, ...], /) -> _sql.Rows:
        try:
            return self._conn.execute(_sql.SQLITE.render(sql), params).fetchall()
        except sqlite3.Error as exc:
            raise _unavailable(exc) from None

    def close(self) -> None:
        self._conn.close()
