"""Store fixtures: every backend (memory, SQLite file, PostgreSQL) in its sync and async form.

A test written against :class:`StoreUnderTest` runs against all six: ``call("create_root_key",
...)`` calls ``create_root_key`` on a sync store and awaits ``acreate_root_key`` on an async
one. PostgreSQL tests share one unique schema per session, dropped at the end.
"""

from __future__ import annotations

import contextlib
import secrets
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from authcore.backends.cache import CachedStore
from authcore.backends.memory import MemoryStore
from authcore.backends.sqlite import SQLiteStore


@attrs.define
class StoreUnderTest:
    """One backend in one form, with the hooks the contract tests need."""

    kind: str
    is_async: bool
    store: Any
    #: Every byte the backend holds, for "no raw secret is stored" checks.
    dump: Callable[[], bytes]
    #: Make audit inserts fail (SQL backends only), as a context manager.
    break_audit: Callable[[], contextlib.AbstractContextManager[None]] | None = None

    async def call(self, method: str, /, *args: Any, **kwargs: Any) -> Any:
        """Call ``method`` (sync form) or await ``a<method>`` (async form)."""
        if self.is_async:
            return await getattr(self.store, "a" + method)(*args, **kwargs)
        return getattr(self.store, method)(*args, **kwargs)


def fresh_pg_schema(postgres_url: str) -> Iterator[str]:
    """A unique PostgreSQL schema name, the schema dropped afterwards (a fixture's body)."""
    import psycopg

    schema = f"authcore_test_{secrets.token_hex(6)}"
    yield schema
    with psycopg.connect(postgres_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture(scope="session")
def pg_schema(postgres_url: str) -> Iterator[str]:
    """A unique PostgreSQL schema for this test session, dropped afterwards."""
    yield from fresh_pg_schema(postgres_url)


def _sqlite_dump(path: Path) -> Callable[[], bytes]:
    def dump() -> bytes:
        return b"".join(
            p.read_bytes() for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()
        )

    return dump


def _sqlite_break_audit(path: Path) -> Callable[[], contextlib.AbstractContextManager[None]]:
    @contextlib.contextmanager
    def broken() -> Iterator[None]:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute(
            "CREATE TRIGGER fail_audit BEFORE INSERT ON audit_events"
            " BEGIN SELECT RAISE(ABORT, 'audit is down'); END"
        )
        try:
            yield
        finally:
            conn.execute("DROP TRIGGER fail_audit")
            conn.close()

    return broken


def _pg_dump(url: str, schema: str) -> Callable[[], bytes]:
    import psycopg

    def dump() -> bytes:
        out: list[bytes] = []
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
            tables = (
                "workspaces",
                "root_keys",
                "portal_sessions",
                "portal_exchanges",
                "audit_events",
            )
            for table in tables:
                sql = f"SELECT t::text FROM {schema}.{table} t"  # noqa: S608 - names made by the test
                rows = conn.execute(sql).fetchall()
                out.extend(row[0].encode() for row in rows)
        return b"\n".join(out)

    return dump


def _pg_break_audit(url: str, schema: str) -> Callable[[], contextlib.AbstractContextManager[None]]:
    import psycopg

    @contextlib.contextmanager
    def broken() -> Iterator[None]:
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(
                f"CREATE FUNCTION {schema}.fail_audit() RETURNS trigger LANGUAGE plpgsql"
                " AS $$ BEGIN RAISE EXCEPTION 'audit is down'; END $$"
            )
            conn.execute(
                f"CREATE TRIGGER fail_audit BEFORE INSERT ON {schema}.audit_events"
                f" FOR EACH ROW EXECUTE FUNCTION {schema}.fail_audit()"
            )
            try:
                yield
            finally:
                conn.execute(f"DROP TRIGGER fail_audit ON {schema}.audit_events")
                conn.execute(f"DROP FUNCTION {schema}.fail_audit()")

    return broken


BACKENDS = [
    "memory-sync",
    "memory-async",
    "sqlite-sync",
    "sqlite-async",
    # CachedStore in front of SQLite: its management methods are the changes of the store
    # behind it, and what it caches must never make it answer differently.
    "cached-sync",
    "cached-async",
    pytest.param("postgres-sync", marks=pytest.mark.postgres),
    pytest.param("postgres-async", marks=pytest.mark.postgres),
]


@contextlib.asynccontextmanager
async def _backend(
    param: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[StoreUnderTest]:
    kind, form = param.split("-")
    is_async = form == "async"
    if kind == "memory":
        memory = MemoryStore()
        yield StoreUnderTest(kind, is_async, memory, lambda: repr(vars(memory)).encode())
    elif kind in ("sqlite", "cached"):
        path = tmp_path / "authcore.db"
        sqlite_store = SQLiteStore(path, timeout=2.0)
        store = sqlite_store if kind == "sqlite" else CachedStore(sqlite_store)
        try:
            yield StoreUnderTest(
                kind, is_async, store, _sqlite_dump(path), _sqlite_break_audit(path)
            )
        finally:
            await sqlite_store.aclose()
    else:
        url = request.getfixturevalue("postgres_url")
        schema = request.getfixturevalue("pg_schema")
        from authcore.backends.postgres import AsyncPostgresStore, PostgresStore

        hooks = (_pg_dump(url, schema), _pg_break_audit(url, schema))
        if is_async:
            async with AsyncPostgresStore(url, schema=schema, timeout=5.0, max_size=4) as pg:
                yield StoreUnderTest(kind, True, pg, *hooks)
        else:
            with PostgresStore(url, schema=schema, timeout=5.0, max_size=4) as sync_store:
                yield StoreUnderTest(kind, False, sync_store, *hooks)


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreUnderTest]:
    """Each backend in each form."""
    async with _backend(request.param, request, tmp_path) as store:
        yield store


@pytest.fixture(params=BACKENDS[2:])
async def transactional_backend(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[StoreUnderTest]:
    """The backends with transactions (SQLite, PostgreSQL): the memory store has none."""
    async with _backend(request.param, request, tmp_path) as store:
        yield store
