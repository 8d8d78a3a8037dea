"""The invalidation outbox: rows written in the change's transaction, and the follower.

Two stores on one SQLite file stand for two processes (the outbox is read through a connection
of its own, exactly as another process reads it); the PostgreSQL tests use the session's schema.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from authcore.backends import outbox
from authcore.backends.cache import CachedStore
from authcore.backends.invalidation import Invalidation
from authcore.backends.outbox import InvalidationFollower
from authcore.backends.sqlite import SQLiteStore
from authcore.errors import UnavailableError
from authcore.records import OPERATOR_ACTOR
from authcore.tokens import digest
from tests.backends.conftest import _pg_break_audit, _sqlite_break_audit

NOW = 1_800_000_000
# The follower's documented bound, plus room for a loaded test machine.
DEADLINE = outbox.REVOCATION_BOUND + 4.0


def _messages(path: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        return [row[0] for row in conn.execute("SELECT message FROM invalidations ORDER BY seq")]


def _revoked(cache: CachedStore, raw: str) -> bool:
    record = cache.find_root_key(digest(raw))
    return record is not None and record.revoked_at is not None


def _eventually(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "authcore.db"


@pytest.fixture
def writer(path: Path) -> Iterator[SQLiteStore]:
    """The other process: a plain store, as the command line uses."""
    with SQLiteStore(path, timeout=2.0) as store:
        yield store


@pytest.fixture
def server(path: Path, writer: SQLiteStore) -> Iterator[tuple[SQLiteStore, CachedStore]]:
    """This process: its own store and a cache in front of it."""
    with SQLiteStore(path, timeout=2.0) as store:
        yield store, CachedStore(store, ttl=600.0, workspace_ttl=600.0)


def _key(store: Any) -> tuple[str, str, str]:
    workspace = store.create_workspace("acme", now=NOW, actor=OPERATOR_ACTOR)
    created = store.create_root_key(workspace.id, permissions=[], now=NOW, actor=OPERATOR_ACTOR)
    return workspace.id, created.record.id, created.key.reveal()


# --- the write side ---------------------------------------------------------------------------


def test_a_revocation_records_its_invalidations(writer: SQLiteStore, path: Path) -> None:
    _, key_id, raw = _key(writer)
    before = len(_messages(path))
    writer.revoke_root_key(key_id, now=NOW, actor=OPERATOR_ACTOR)
    recorded = [Invalidation.decode(m) for m in _messages(path)[before:]]
    assert Invalidation("root_key", key_id) in recorded
    assert Invalidation("digest", digest(raw).hex()) in recorded


def test_a_change_that_rolls_back_records_nothing(writer: SQLiteStore, path: Path) -> None:
    _, key_id, _ = _key(writer)
    before = _messages(path)
    # The audit insert comes after the key's update: the change fails after its writes.
    with _sqlite_break_audit(path)(), pytest.raises(UnavailableError):
        writer.revoke_root_key(key_id, now=NOW, actor=OPERATOR_ACTOR)
    assert _messages(path) == before
    record = writer.get_root_key(key_id)
    assert record is not None
    assert record.revoked_at is None


def test_a_change_that_only_reads_records_nothing(writer: SQLiteStore, path: Path) -> None:
    workspace_id, _, _ = _key(writer)
    before = _messages(path)
    writer.list_root_keys(workspace_id)
    writer.list_audit(workspace_id)
    assert _messages(path) == before


def test_old_rows_are_pruned_by_the_next_write_but_the_newest_stays(
    writer: SQLiteStore, path: Path
) -> None:
    _, key_id, _ = _key(writer)
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("UPDATE invalidations SET created_at = created_at - ?", (2 * 3600,))
        old_newest = conn.execute("SELECT MAX(seq) FROM invalidations").fetchone()[0]
    writer.revoke_root_key(key_id, now=NOW, actor=OPERATOR_ACTOR)
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        seqs = [row[0] for row in conn.execute("SELECT seq FROM invalidations")]
    assert seqs
    assert min(seqs) > old_newest  # the old rows are gone, the new ones kept


# --- the follower -----------------------------------------------------------------------------


def test_a_revocation_by_another_process_reaches_the_cache(
    writer: SQLiteStore, server: tuple[SQLiteStore, CachedStore]
) -> None:
    store, cache = server
    _, key_id, raw = _key(writer)
    assert cache.find_root_key(digest(raw)) is not None  # held hot
    follower = InvalidationFollower(cache, store.invalidation_source)
    follower.start()
    try:
        assert follower.wait_ready(DEADLINE)
        assert cache.find_root_key(digest(raw)) is not None
        writer.revoke_root_key(key_id, now=NOW, actor=OPERATOR_ACTOR)
        assert _eventually(lambda: _revoked(cache, raw))
    finally:
        follower.close()


def test_starting_clears_what_was_cached_before_the_follower_knew_its_position(
    writer: SQLiteStore, server: tuple[SQLiteStore, CachedStore]
) -> None:
    store, cache = server
    _, _, raw = _key(writer)
    cache.find_root_key(digest(raw))
    follower = InvalidationFollower(cache, store.invalidation_source)
    source = store.invalidation_source()
    try:
        assert follower.catch_up(source) == 0
        assert cache.size == 0
        assert follower.position == int(source.read("SELECT MAX(seq) FROM invalidations", ())[0][0])
    finally:
        source.close()


def test_the_follower_applies_rows_in_order_and_only_once(
    writer: SQLiteStore, server: tuple[SQLiteStore, CachedStore]
) -> None:
    store, cache = server
    _, key_id, raw = _key(writer)
    follower = InvalidationFollower(cache, store.invalidation_source)
    source = store.invalidation_source()
    try:
        follower.catch_up(source)
        cache.find_root_key(digest(raw))
        writer.revoke_root_key(key_id, now=NOW, actor=OPERATOR_ACTOR)
        assert follower.catch_up(source) >= 2
        assert cache.size == 0
        assert follower.catch_up(source) == 0
    finally:
        source.close()


def test_a_follower_away_longer_than_the_window_clears_its_cache(
    writer: SQLiteStore, server: tuple[SQLiteStore, CachedStore], path: Path
) -> None:
    store, cache = server
    workspace_id, key_id, raw = _key(writer)
    other = writer.create_root_key(workspace_id, permissions=[], now=NOW, actor=OPERATOR_ACTOR)
    assert other is not None
    follower = InvalidationFollower(cache, store.invalidation_source)
    source = store.invalidation_source()
    try:
        follower.catch_up(source)
        position = follower.position
        cache.find_root_key(digest(other.key.reveal()))
        writer.revoke_root_key(key_id, now=NOW, actor=OPERATOR_ACTOR)
        # The follower was away: those rows aged out and the next write pruned them.
        with contextlib.closing(sqlite3.connect(path)) as conn, conn:
            conn.execute("UPDATE invalidations SET created_at = created_at - ?", (2 * 3600,))
        writer.disable_workspace(workspace_id, now=NOW, actor=OPERATOR_ACTOR)
        assert cache.size > 0
        assert follower.catch_up(source) == 0  # nothing applied row by row: a gap
        assert cache.size == 0  # ... so everything went
        assert (follower.position or 0) > (position or 0)
        assert _revoked(cache, raw)
    finally:
        source.close()


def test_a_follower_more_than_a_batch_behind_clears_its_cache(
    writer: SQLiteStore,
    server: tuple[SQLiteStore, CachedStore],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store, cache = server
    workspace_id, _, raw = _key(writer)
    follower = InvalidationFollower(cache, store.invalidation_source)
    source = store.invalidation_source()
    try:
        follower.catch_up(source)
        cache.find_root_key(digest(raw))
        monkeypatch.setattr(outbox, "BATCH", 2)
        for _ in range(3):
            writer.create_root_key(workspace_id, permissions=[], now=NOW, actor=OPERATOR_ACTOR)
        assert follower.catch_up(source) == 0
        assert cache.size == 0
    finally:
        source.close()


class _Flaky:
    """A real source whose next read fails once armed, as a dropped connection does."""

    def __init__(self, inner: outbox.InvalidationSource) -> None:
        self.inner = inner
        self.interval = inner.interval
        self.armed = False

    def wait(self, timeout: float, /) -> bool:
        return self.inner.wait(timeout)

    def read(self, sql: str, params: tuple[object, ...], /) -> Any:
        if self.armed:
            self.armed = False
            raise UnavailableError("sqlite: SQLITE_IOERR")
        return self.inner.read(sql, params)

    def close(self) -> None:
        self.inner.close()


def test_the_follower_reconnects_and_resumes_where_it_was(
    writer: SQLiteStore, server: tuple[SQLiteStore, CachedStore]
) -> None:
    store, cache = server
    _, key_id, raw = _key(writer)
    opened: list[_Flaky] = []

    def open_source() -> outbox.InvalidationSource:
        opened.append(_Flaky(store.invalidation_source()))
        return opened[-1]

    follower = InvalidationFollower(cache, open_source)
    follower.start()
    try:
        assert follower.wait_ready(DEADLINE)
        position = follower.position
        opened[0].armed = True
        writer.revoke_root_key(key_id, now=NOW, actor=OPERATOR_ACTOR)  # its read fails
        assert _eventually(lambda: len(opened) == 2 and follower.position != position)
        assert _revoked(cache, raw)
    finally:
        follower.close()


# --- PostgreSQL -------------------------------------------------------------------------------


@pytest.fixture
def pg(postgres_url: str, pg_schema: str) -> Iterator[Any]:
    from authcore.backends.postgres import PostgresStore

    with PostgresStore(postgres_url, schema=pg_schema, timeout=5.0, max_size=2) as store:
        yield store


def _pg_messages(store: Any) -> list[str]:
    source = store.invalidation_source()
    try:
        return [row[1] for row in source.read("SELECT seq, message FROM invalidations", ())]
    finally:
        source.close()


@pytest.mark.postgres
def test_postgres_records_in_the_transaction_and_nothing_on_rollback(
    pg: Any, postgres_url: str, pg_schema: str
) -> None:
    _, key_id, raw = _key(pg)
    before = _pg_messages(pg)
    with _pg_break_audit(postgres_url, pg_schema)(), pytest.raises(UnavailableError):
        pg.revoke_root_key(key_id, now=NOW, actor=OPERATOR_ACTOR)
    assert _pg_messages(pg) == before
    pg.revoke_root_key(key_id, now=NOW, actor=OPERATOR_ACTOR)
    added = _pg_messages(pg)[len(before) :]
    assert f"d:{digest(raw).hex()}" in added
    assert f"k:{key_id}" in added


@pytest.mark.postgres
def test_postgres_notifies_the_follower(pg: Any, postgres_url: str, pg_schema: str) -> None:
    from authcore.backends.postgres import PostgresStore

    _, key_id, raw = _key(pg)
    with PostgresStore(postgres_url, schema=pg_schema, timeout=5.0, max_size=2) as mine:
        cache = CachedStore(mine, ttl=600.0, workspace_ttl=600.0)
        follower = InvalidationFollower(cache, mine.invalidation_source)
        follower.start()
        try:
            assert follower.wait_ready(DEADLINE)
            assert not _revoked(cache, raw)
            pg.revoke_root_key(key_id, now=NOW, actor=OPERATOR_ACTOR)
            assert _eventually(lambda: _revoked(cache, raw))
        finally:
            follower.close()
