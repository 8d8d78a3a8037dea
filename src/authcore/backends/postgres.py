"""PostgreSQL store for deployments with many API processes: psycopg 3 with a pool.

Same schema, same migrations and the same operations as the SQLite store (all in
:mod:`authcore.backends._sql`). Lookups are one parameterized single-row query on a unique
index; psycopg prepares a statement server-side once a connection has run it a few times.
Connections run in autocommit mode, so a lookup is one round trip; a mutation and its audit
event run in one explicit transaction.

Migrations run on open, in one transaction holding a transaction-level advisory lock keyed by
the schema name, so processes starting together apply each migration exactly once.

Every wait is bounded: ``timeout`` bounds waiting for a pooled connection and each statement
(``statement_timeout``); ``connect_timeout`` bounds opening a connection. Any failure
(server unreachable, connection killed, timeout) raises
:class:`~authcore.errors.UnavailableError`; the pool drops dead connections and reconnects
in the background, so calls succeed again once the server is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import threading
from collections.abc import Awaitable, Callable, Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, TypeAlias, TypeVar

import psycopg
import psycopg.errors
import psycopg_pool
from psycopg import sql as pgsql

from authcore.backends import _rows, _sql, outbox
from authcore.errors import ClientError, ConfigurationError, ConflictError, UnavailableError
from authcore.records import IdentityRecord, PortalSessionRecord, RootKeyRecord, WorkspaceRecord
from authcore.steps import Change
from authcore.store import AsyncStore, Store
from authcore.tokens import DEFAULT_PORTAL_TOKEN_PREFIX, DEFAULT_ROOT_KEY_PREFIX, validate_prefix

__all__ = ["AsyncPostgresStore", "PostgresStore"]

_T = TypeVar("_T")
_Execute: TypeAlias = Callable[[_sql.Statement], _sql.Rows]
_AExecute: TypeAlias = Callable[[_sql.Statement], Awaitable[_sql.Rows]]
_SCHEMA = re.compile(r"[a-z_][a-z0-9_]{0,62}", re.ASCII)
_MAX_TIMEOUT: Final = 60.0


def _unavailable(exc: psycopg.Error) -> UnavailableError:
    # Only the class and SQLSTATE: server messages can quote values (a digest in a unique
    # violation's DETAIL, for one), and no value may reach an error message.
    state = getattr(exc, "sqlstate", None)
    suffix = f" {state}" if state else ""
    return UnavailableError(f"postgres: {type(exc).__name__}{suffix}")


def _not_text() -> ClientError:
    # A str PostgreSQL cannot store (a lone surrogate, a NUL) is the caller's input, never a
    # stored value (every stored name was checked): a 400, not a 500 or a 503.
    return ClientError("postgres: a text argument cannot be stored")


def _fetched(cursor: psycopg.Cursor[Any]) -> _sql.Rows:
    # Statements without a result (INSERT, UPDATE, DDL) have no description.
    return [] if cursor.description is None else list(cursor.fetchall())


def _migration(prelude: list[pgsql.Composable]) -> _sql.Op[int]:
    # The advisory lock and the schema first, then the shared migrations, in one transaction.
    for statement in prelude:
        yield _sql.Statement(statement.as_string(None))
    return (yield from _sql.migrate())


async def _adrive(op: Generator[_sql.Statement, _sql.Rows, _T], execute: _AExecute) -> _T:
    try:
        statement = next(op)
        while True:
            statement = op.send(await execute(statement))
    except StopIteration as stop:
        result: _T = stop.value
        return result


class _Settings:
    """Validated options shared by the sync and async stores."""

    def __init__(
        self,
        *,
        schema: str,
        timeout: float,
        connect_timeout: int,
        min_size: int,
        max_size: int,
        root_key_prefix: str,
        portal_token_prefix: str,
    ) -> None:
        if not isinstance(schema, str) or not _SCHEMA.fullmatch(schema):
            raise ConfigurationError("schema must match [a-z_][a-z0-9_]{0,62}")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float):
            raise ConfigurationError("timeout must be a number of seconds")
        if not 0 < timeout <= _MAX_TIMEOUT:
            raise ConfigurationError(f"timeout must be in (0, {_MAX_TIMEOUT}] seconds")
        if not isinstance(connect_timeout, int) or not 1 <= connect_timeout <= 60:
            raise ConfigurationError("connect_timeout must be an int in 1..60 seconds")
        if not isinstance(min_size, int) or not isinstance(max_size, int):
            raise ConfigurationError("pool sizes must be ints")
        if not 0 <= min_size <= max_size or not 1 <= max_size <= 1000:
            raise ConfigurationError("need 0 <= min_size <= max_size, 1 <= max_size <= 1000")
        self.schema = schema
        self.timeout = float(timeout)
        self.min_size = min_size
        self.max_size = max_size
        self.root_key_prefix = validate_prefix(root_key_prefix)
        self.portal_token_prefix = validate_prefix(portal_token_prefix)
        # A per-schema advisory lock key, stable across processes and Python versions.
        self.lock_key = int.from_bytes(
            hashlib.sha256(f"authcore.migrate.{schema}".encode()).digest()[:8], "big", signed=True
        )
        # The outbox's lock (sequence order is commit order) and its notification channel,
        # both per schema: two schemas in one database do not wake each other's followers.
        outbox_key = hashlib.sha256(f"authcore.outbox.{schema}".encode()).digest()
        self.channel = f"authcore_inv_{outbox_key[8:16].hex()}"
        self.outbox = outbox.Outbox(
            "postgres",
            lock=_sql.Statement(
                "SELECT pg_advisory_xact_lock(?)",
                (int.from_bytes(outbox_key[:8], "big", signed=True),),
            ),
            notify=_sql.Statement("SELECT pg_notify(?, '')", (self.channel,)),
        )
        self.connection_kwargs: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": connect_timeout,
            # The schema name is validated above, so it needs no quoting here.
            "options": (f"-c search_path={schema} -c statement_timeout={int(self.timeout * 1000)}"),
        }

    def migration_prelude(self) -> list[pgsql.Composable]:
        return [
            pgsql.SQL("SELECT pg_advisory_xact_lock({})").format(pgsql.Literal(self.lock_key)),
            pgsql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(pgsql.Identifier(self.schema)),
        ]


def _is_connection_loss(exc: psycopg.Error) -> bool:
    return isinstance(exc, psycopg.OperationalError) and not isinstance(
        exc, psycopg_pool.PoolTimeout | psycopg.errors.QueryCanceled
    )


class _Listener:
    """A follower's connection: ``LISTEN`` on the schema's channel, which every change that
    records invalidations notifies on commit; a read at least every interval regardless."""

    interval = outbox.POSTGRES_INTERVAL

    def __init__(self, conninfo: str, settings: _Settings) -> None:
        try:
            self._conn = psycopg.connect(conninfo, **settings.connection_kwargs)
        except psycopg.Error as exc:
            raise _unavailable(exc) from None
        try:
            self._conn.execute(pgsql.SQL("LISTEN {}").format(pgsql.Identifier(settings.channel)))
        except psycopg.Error as exc:
            self._conn.close()
            raise _unavailable(exc) from None

    def wait(self, timeout: float, /) -> bool:
        try:
            for _ in self._conn.notifies(timeout=timeout, stop_after=1):
                pass
        except psycopg.Error as exc:
            raise _unavailable(exc) from None
        return True

    def read(self, sql: str, params: tuple[object, ...], /) -> _sql.Rows:
        try:
            return _fetched(self._conn.execute(_sql.POSTGRES.render(sql), params))
        except psycopg.Error as exc:
            raise _unavailable(exc) from None

    def close(self) -> None:
        self._conn.close()


class PostgresStore(_sql.SQLLookups, Store, AsyncStore):
    """A :class:`~authcore.store.Store` on PostgreSQL (synchronous, pooled).

    It answers the async protocols too, each call run on a thread pool as large as the
    connection pool (what :func:`authcore.backends.connect` serves both WSGI and ASGI apps
    with); :class:`AsyncPostgresStore` is the asyncio-native store.

    Raises:
        ConfigurationError: a bad option, or a schema newer than this code.
        UnavailableError: the server cannot be reached to migrate (with ``migrate=True``).
    """

    def __init__(
        self,
        conninfo: str,
        *,
        schema: str = "authcore",
        timeout: float = 5.0,
        connect_timeout: int = 5,
        min_size: int = 1,
        max_size: int = 10,
        migrate: bool = True,
        root_key_prefix: str = DEFAULT_ROOT_KEY_PREFIX,
        portal_token_prefix: str = DEFAULT_PORTAL_TOKEN_PREFIX,
    ) -> None:
        self._settings = _Settings(
            schema=schema,
            timeout=timeout,
            connect_timeout=connect_timeout,
            min_size=min_size,
            max_size=max_size,
            root_key_prefix=root_key_prefix,
            portal_token_prefix=portal_token_prefix,
        )
        self.root_key_prefix = self._settings.root_key_prefix
        self.portal_token_prefix = self._settings.portal_token_prefix
        self._timeout = self._settings.timeout
        self._conninfo = conninfo
        self._pool: psycopg_pool.ConnectionPool[psycopg.Connection[Any]] = (
            psycopg_pool.ConnectionPool(
                conninfo,
                kwargs=self._settings.connection_kwargs,
                min_size=min_size,
                max_size=max_size,
                timeout=self._timeout,
                open=False,
                name=f"authcore-{schema}",
            )
        )
        self._pool.open(wait=False)
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()
        if migrate:
            try:
                self.migrate()
            except BaseException:
                self._pool.close()
                raise

    def migrate(self) -> None:
        """Create the schema if needed and apply pending migrations, under the advisory lock.

        Raises:
            ConfigurationError: the database schema is newer than this code.
            UnavailableError: the server failed.
        """
        prelude = self._settings.migration_prelude()

        self._write(lambda execute: _sql.drive_statements(_migration(prelude), execute))

    def invalidation_source(self) -> outbox.InvalidationSource:
        """A ``LISTEN``\\ing connection of its own, for an
        :class:`~authcore.backends.outbox.InvalidationFollower`.

        Raises:
            UnavailableError: the server cannot be reached.
        """
        return _Listener(self._conninfo, self._settings)

    def schema_version(self) -> int:
        """Return the schema version recorded in the database.

        Raises:
            UnavailableError: the server failed.
        """
        rows = self._read("SELECT COALESCE(MAX(version), 0) FROM schema_version", ())
        return int(rows[0][0])

    def _failed(self, exc: psycopg.Error) -> UnavailableError:
        if _is_connection_loss(exc):
            # Other idle connections likely died with this one (server restart, terminated
            # backends): test them now so the next call gets a live one.
            with contextlib.suppress(psycopg.Error):
                self._pool.check()
        return _unavailable(exc)

    def _read(self, sql: str, params: tuple[object, ...]) -> _sql.Rows:
        try:
            with self._pool.connection(timeout=self._timeout) as conn:
                return _fetched(conn.execute(_sql.POSTGRES.render(sql), params))
        except (UnicodeEncodeError, psycopg.DataError):
            raise _not_text() from None
        except psycopg.Error as exc:
            raise self._failed(exc) from None

    def _write(self, work: Callable[[_Execute], _T]) -> _T:
        try:
            with self._pool.connection(timeout=self._timeout) as conn, conn.transaction():
                return work(lambda statement: self._execute(conn, statement))
        except (UnicodeEncodeError, psycopg.DataError):
            raise _not_text() from None
        except psycopg.Error as exc:
            raise self._failed(exc) from None

    @staticmethod
    def _execute(conn: psycopg.Connection[Any], statement: _sql.Statement) -> _sql.Rows:
        try:
            return _fetched(conn.execute(_sql.POSTGRES.render(statement.sql), statement.params))
        except psycopg.errors.UniqueViolation:
            if statement.conflict is None:
                raise
            raise ConflictError(statement.conflict) from None

    async def _offload(self, call: Callable[[], _T]) -> _T:
        if self._executor is None:
            with self._executor_lock:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(
                        max_workers=self._settings.max_size, thread_name_prefix="authcore-pg"
                    )
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    def run(self, change: Change[_T], /) -> _T:
        """Run ``change`` in one transaction (reads, autocommit, on one connection)."""
        if change.writes:
            recorded = self._settings.outbox
            return self._write(lambda execute: outbox.run_recorded(change, execute, recorded))
        try:
            with self._pool.connection(timeout=self._timeout) as conn:
                return _sql.run_change(change, lambda statement: self._execute(conn, statement))
        except (UnicodeEncodeError, psycopg.DataError):
            raise _not_text() from None
        except psycopg.Error as exc:
            raise self._failed(exc) from None

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

    def close(self) -> None:
        """Close the thread pool, then the connection pool and its connections."""
        with self._executor_lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)
        self._pool.close()

    async def aclose(self) -> None:
        """Async twin of :meth:`close`."""
        await asyncio.to_thread(self.close)

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PostgresStore(schema={self._settings.schema!r})"


class AsyncPostgresStore(AsyncStore):
    """An :class:`~authcore.store.AsyncStore` on PostgreSQL (asyncio, pooled).

    Create it, then ``await store.open()`` (or ``async with AsyncPostgresStore(...)``): an
    asyncio pool can only start inside a running loop.

    Raises:
        ConfigurationError: a bad option.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        schema: str = "authcore",
        timeout: float = 5.0,
        connect_timeout: int = 5,
        min_size: int = 1,
        max_size: int = 10,
        migrate: bool = True,
        root_key_prefix: str = DEFAULT_ROOT_KEY_PREFIX,
        portal_token_prefix: str = DEFAULT_PORTAL_TOKEN_PREFIX,
    ) -> None:
        self._settings = _Settings(
            schema=schema,
            timeout=timeout,
            connect_timeout=connect_timeout,
            min_size=min_size,
            max_size=max_size,
            root_key_prefix=root_key_prefix,
            portal_token_prefix=portal_token_prefix,
        )
        self.root_key_prefix = self._settings.root_key_prefix
        self.portal_token_prefix = self._settings.portal_token_prefix
        self._timeout = self._settings.timeout
        self._conninfo = conninfo
        self._migrate_on_open = migrate
        self._pool: psycopg_pool.AsyncConnectionPool[psycopg.AsyncConnection[Any]] = (
            psycopg_pool.AsyncConnectionPool(
                conninfo,
                kwargs=self._settings.connection_kwargs,
                min_size=min_size,
                max_size=max_size,
                timeout=self._timeout,
                open=False,
                name=f"authcore-{schema}",
            )
        )

    async def open(self) -> AsyncPostgresStore:
        """Start the pool and (unless ``migrate=False``) apply pending migrations.

        Raises:
            ConfigurationError: the database schema is newer than this code.
            UnavailableError: the server cannot be reached to migrate.
        """
        await self._pool.open(wait=False)
        if self._migrate_on_open:
            try:
                await self.amigrate()
            except BaseException:
                await self._pool.close()
                raise
        return self

    async def amigrate(self) -> None:
        """Async twin of :meth:`PostgresStore.migrate`."""
        prelude = self._settings.migration_prelude()

        await self._awrite(lambda execute: _adrive(_migration(prelude), execute))

    async def _failed(self, exc: psycopg.Error) -> UnavailableError:
        if _is_connection_loss(exc):
            with contextlib.suppress(psycopg.Error):
                await self._pool.check()
        return _unavailable(exc)

    async def _aread(self, sql: str, params: tuple[object, ...]) -> _sql.Rows:
        try:
            async with self._pool.connection(timeout=self._timeout) as conn:
                cursor = await conn.execute(_sql.POSTGRES.render(sql), params)
                return [] if cursor.description is None else list(await cursor.fetchall())
        except (UnicodeEncodeError, psycopg.DataError):
            raise _not_text() from None
        except psycopg.Error as exc:
            raise await self._failed(exc) from None

    async def _awrite(self, work: Callable[[_AExecute], Awaitable[_T]]) -> _T:
        try:
            async with (
                self._pool.connection(timeout=self._timeout) as conn,
                conn.transaction(),
            ):
                return await work(lambda statement: self._aexecute(conn, statement))
        except (UnicodeEncodeError, psycopg.DataError):
            raise _not_text() from None
        except psycopg.Error as exc:
            raise await self._failed(exc) from None

    async def _aone(
        self, sql: str, params: tuple[object, ...], convert: Callable[[Sequence[Any]], _T]
    ) -> _T | None:
        rows = await self._aread(sql, params)
        return convert(rows[0]) if rows else None

    async def afind_root_key(self, digest: bytes, /) -> RootKeyRecord | None:
        """Return the root key stored under ``digest``."""
        return await self._aone(_sql.FIND_ROOT_KEY, (digest,), _rows.key_from_row)

    async def afind_portal_session(self, digest: bytes, /) -> PortalSessionRecord | None:
        """Return the portal session stored under ``digest``."""
        return await self._aone(_sql.FIND_PORTAL_SESSION, (digest,), _rows.session_from_row)

    async def afind_workspace(self, workspace_id: str, /) -> WorkspaceRecord | None:
        """Return the workspace ``workspace_id``."""
        return await self._aone(_sql.FIND_WORKSPACE, (workspace_id,), _rows.workspace_from_row)

    async def afind_identity(self, identity_id: str, /) -> IdentityRecord | None:
        """Return the identity ``identity_id``."""
        return await self._aone(_sql.FIND_IDENTITY, (identity_id,), _rows.identity_from_row)

    async def arun(self, change: Change[_T], /) -> _T:
        """Run ``change`` in one transaction (reads, autocommit, on one connection)."""
        if change.writes:
            recorded = self._settings.outbox
            return await self._awrite(
                lambda execute: outbox.arun_recorded(change, execute, recorded)
            )
        try:
            async with self._pool.connection(timeout=self._timeout) as conn:
                return await _sql.arun_change(
                    change, lambda statement: self._aexecute(conn, statement)
                )
        except (UnicodeEncodeError, psycopg.DataError):
            raise _not_text() from None
        except psycopg.Error as exc:
            raise await self._failed(exc) from None

    @staticmethod
    async def _aexecute(conn: psycopg.AsyncConnection[Any], statement: _sql.Statement) -> _sql.Rows:
        try:
            cursor = await conn.execute(_sql.POSTGRES.render(statement.sql), statement.params)
            return [] if cursor.description is None else list(await cursor.fetchall())
        except psycopg.errors.UniqueViolation:
            if statement.conflict is None:
                raise
            raise ConflictError(statement.conflict) from None

    def invalidation_source(self) -> outbox.InvalidationSource:
        """The same as :meth:`PostgresStore.invalidation_source` (a blocking connection: the
        follower is a thread, never on the event loop).

        Raises:
            UnavailableError: the server cannot be reached.
        """
        return _Listener(self._conninfo, self._settings)

    async def aclose(self) -> None:
        """Close the pool and its connections."""
        await self._pool.close()

    async def __aenter__(self) -> AsyncPostgresStore:
        return await self.open()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"AsyncPostgresStore(schema={self._settings.schema!r})"
