"""SQLite store: migrations, threads, faults (locked, corrupt, closed) and the event loop."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from authcore.backends._sql import MIGRATIONS, SQLITE
from authcore.backends.sqlite import SQLiteStore
from authcore.errors import ConfigurationError, UnavailableError
from authcore.principal import principal_from_root_key
from authcore.ratelimit import RateLimitPolicy
from authcore.records import OPERATOR_ACTOR
from authcore.store import AsyncStore, Store
from authcore.tokens import digest

NOW = 1_800_000_000


def test_sqlite_store_implements_both_protocols(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "a.db") as store:
        sync: Store = store
        asynchronous: AsyncStore = store
        assert sync.find_workspace("ws_none") is None
        assert asynchronous is not None


def test_migrations_are_versioned_and_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    with SQLiteStore(path) as store:
        assert store.schema_version() == len(MIGRATIONS)
        ws = store.create_workspace("Acme", now=NOW, actor=OPERATOR_ACTOR)
    for _ in range(2):
        with SQLiteStore(path) as store:
            assert store.schema_version() == len(MIGRATIONS)
            assert store.find_workspace(ws.id) == ws
    conn = sqlite3.connect(path)
    versions = conn.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
    mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    conn.close()
    assert versions == [(v,) for v in range(1, len(MIGRATIONS) + 1)]
    assert mode == "wal"


def test_migration_4_ends_the_portal_sessions_made_before_identities(tmp_path: Path) -> None:
    # A database at schema 3 with a live session of an end user (who saw every key of the
    # workspace then): after migration 4 the column is identity_id and the session is over,
    # while keys and workspaces are untouched and gain no identity.
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY)")
    for version, statements in enumerate(MIGRATIONS[:3], start=1):
        for sql in statements:
            conn.execute(sql.format(**SQLITE.slots))
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
    conn.execute("INSERT INTO workspaces (id, name, created_at) VALUES ('ws_1', 'Acme', 1)")
    conn.execute(
        "INSERT INTO portal_sessions (id, workspace_id, end_user_id, digest, permissions,"
        " created_at, expires_at) VALUES ('ps_1', 'ws_1', 'eu', ?, '[]', ?, ?)",
        (digest("pt_old"), NOW, NOW + 3600),
    )
    conn.commit()
    conn.close()
    with SQLiteStore(path) as store:
        assert store.schema_version() == len(MIGRATIONS)
        session = store.get_portal_session("ps_1")
        assert session is not None
        assert session.revoked_at == NOW
        assert session.key_permissions == ()
        assert store.find_workspace("ws_1") is not None


def test_migration_6_keeps_a_live_portal_session_working_without_a_limit_of_its_own(
    tmp_path: Path,
) -> None:
    # A database at schema 5 with a live session: after migration 6 it still verifies, with no
    # limit of its own (it was made before sessions had one), and a new one keeps its limit.
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY)")
    for version, statements in enumerate(MIGRATIONS[:5], start=1):
        for sql in statements:
            conn.execute(sql.format(**SQLITE.slots))
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
    conn.execute("INSERT INTO workspaces (id, name, created_at) VALUES ('ws_1', 'Acme', 1)")
    conn.execute(
        "INSERT INTO portal_sessions (id, workspace_id, identity_id, digest, permissions,"
        " created_at, expires_at) VALUES ('ps_1', 'ws_1', 'idt_1', ?, '[]', ?, ?)",
        (digest("pt_old"), NOW, NOW + 3600),
    )
    conn.commit()
    conn.close()
    with SQLiteStore(path) as store:
        assert store.schema_version() == len(MIGRATIONS) >= 6
        session = store.find_portal_session(digest("pt_old"))
        assert session is not None
        assert (session.id, session.revoked_at, session.rate_limit) == ("ps_1", None, None)
        made = store.create_portal_session(
            "ws_1", "customer", permissions=[], ttl=60, now=NOW, actor=OPERATOR_ACTOR,
            rate_limit=RateLimitPolicy(3, 60),
        )  # fmt: skip
        assert made is not None
        found = store.find_portal_session(made.record.digest)
        assert found is not None
        assert found.rate_limit == RateLimitPolicy(3, 60)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    SQLiteStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO schema_version (version) VALUES (?)", (len(MIGRATIONS) + 1,))
    conn.commit()
    conn.close()
    with pytest.raises(ConfigurationError):
        SQLiteStore(path)


def test_corrupt_file_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    path.write_bytes(b"this is not a database" * 500)
    with pytest.raises(UnavailableError) as caught:
        SQLiteStore(path)
    assert caught.value.status == 503


@pytest.mark.parametrize("timeout", [0, -1, 61, True])
def test_timeout_is_bounded(tmp_path: Path, timeout: float) -> None:
    with pytest.raises(ConfigurationError):
        SQLiteStore(tmp_path / "a.db", timeout=timeout)


def test_closed_store_is_unavailable(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "a.db")
    store.close()
    with pytest.raises(UnavailableError):
        store.find_workspace("ws_x")
    with pytest.raises(UnavailableError):
        store.create_workspace("Acme", now=NOW, actor=OPERATOR_ACTOR)


def test_sixteen_threads_read_and_write_at_once(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "a.db", timeout=10.0, readers=4)
    ws = store.create_workspace("Acme", now=NOW, actor=OPERATOR_ACTOR)
    seed = []
    for _ in range(8):
        new = store.create_root_key(ws.id, permissions=["keys.read"], now=NOW, actor=OPERATOR_ACTOR)
        assert new is not None
        seed.append(new)
    errors: list[BaseException] = []
    created: list[str] = []
    start = threading.Barrier(16)

    def work(n: int) -> None:
        try:
            start.wait()
            for i in range(40):
                key = seed[(n + i) % len(seed)]
                record = store.find_root_key(key.record.digest)
                principal_from_root_key(record, key.record.digest, NOW)
                if i % 8 == n % 8:
                    new = store.create_root_key(
                        ws.id, permissions=[], now=NOW, actor=OPERATOR_ACTOR
                    )
                    assert new is not None
                    created.append(new.record.id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    store_keys = store.list_root_keys(ws.id)
    audit = store.list_audit(ws.id, limit=500).events
    store.close()
    assert errors == []
    assert len(created) == 16 * 5
    assert len(store_keys) == 8 + len(created)
    assert len(audit) == 1 + 8 + len(created)  # every write has its event


def test_locked_database_is_unavailable_then_recovers(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    store = SQLiteStore(path, timeout=0.2)
    ws = store.create_workspace("Acme", now=NOW, actor=OPERATOR_ACTOR)
    key = store.create_root_key(ws.id, permissions=[], now=NOW, actor=OPERATOR_ACTOR)
    assert key is not None
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(UnavailableError) as caught:
            store.create_root_key(ws.id, permissions=[], now=NOW, actor=OPERATOR_ACTOR)
        message = str(caught.value) + repr(caught.value)
        assert "SQLITE_BUSY" in message
        assert key.record.digest.hex() not in message
        assert ws.id not in message
        # WAL: readers are not blocked by a writer holding the lock.
        assert store.find_root_key(key.record.digest) == key.record
    finally:
        other.execute("ROLLBACK")
        other.close()
    again = store.create_root_key(ws.id, permissions=[], now=NOW, actor=OPERATOR_ACTOR)
    assert again is not None
    assert len(store.list_root_keys(ws.id)) == 2
    store.close()


def test_a_made_up_exchange_code_never_waits_for_the_write_lock(tmp_path: Path) -> None:
    # A flood of made-up codes on the public exchange route must not queue on (or take)
    # the database's write lock: an unusable code is answered from a read.
    path = tmp_path / "a.db"
    store = SQLiteStore(path, timeout=0.2)
    ws = store.create_workspace("Acme", now=NOW, actor=OPERATOR_ACTOR)
    pending = store.create_portal_exchange(
        ws.id, "customer-1", permissions=[], ttl=60, now=NOW, actor=OPERATOR_ACTOR
    )
    assert pending is not None
    code = digest(pending.code.reveal())
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        assert store.exchange_portal_code(digest("pc_" + "x" * 43), now=NOW) is None
        assert store.exchange_portal_code(code, now=NOW + 3600) is None  # expired
        with pytest.raises(UnavailableError):  # a live code does need the write lock
            store.exchange_portal_code(code, now=NOW)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert store.exchange_portal_code(code, now=NOW) is not None
    assert store.exchange_portal_code(code, now=NOW) is None  # used: answered from a read
    store.close()


def test_exclusive_locking_mode_makes_reads_unavailable_then_recover(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    store = SQLiteStore(path, timeout=0.2)
    ws = store.create_workspace("Acme", now=NOW, actor=OPERATOR_ACTOR)
    store.close()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("PRAGMA locking_mode = EXCLUSIVE")
    other.execute("BEGIN EXCLUSIVE")
    other.execute("COMMIT")  # keeps the file lock until the connection closes
    try:
        with pytest.raises(UnavailableError):
            store = SQLiteStore(path, timeout=0.2)
    finally:
        other.close()
    with SQLiteStore(path, timeout=0.2) as store:
        assert store.find_workspace(ws.id) == ws


async def test_async_calls_do_not_block_the_event_loop(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    store = SQLiteStore(path, timeout=0.5)
    ws = await store.acreate_workspace("Acme", now=NOW, actor=OPERATOR_ACTOR)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    try:
        with pytest.raises(UnavailableError):
            await store.acreate_root_key(ws.id, permissions=[], now=NOW, actor=OPERATOR_ACTOR)
    finally:
        done.set()
        await task
        other.execute("ROLLBACK")
        other.close()
    # The loop kept running other tasks while the write waited on SQLite's lock.
    assert ticks > 1
    assert await store.afind_workspace(ws.id) == ws
    await store.aclose()


def test_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    SQLiteStore(path).close()
    assert path.stat().st_mode & 0o077 == 0


def test_memory_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        SQLiteStore(":memory:")


def test_a_lookup_racing_close_opens_no_reader_nothing_would_close(tmp_path: Path) -> None:
    # The race, made to happen: close() runs (as another thread would) right after a lookup's
    # first open check, before it takes a reader. The pool is empty, so the lookup would open
    # one; a reader opened after close() is never closed (3.13's sqlite3 warns when it is
    # collected). The pool checks again under its lock and refuses instead.
    store = SQLiteStore(tmp_path / "a.db")
    first_check = store._check_open

    def closed_meanwhile() -> None:
        first_check()
        del store._check_open  # the class's check again, from here on
        store.close()

    store._check_open = closed_meanwhile  # type: ignore[method-assign]
    with pytest.raises(UnavailableError):
        store.schema_version()
    assert store._readers == []
