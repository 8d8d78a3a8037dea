"""PostgreSQL store: migrations under concurrency, faults, recovery, and two OS processes."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator

import pytest

from authcore.backends._sql import MIGRATIONS
from authcore.errors import ConfigurationError, UnavailableError
from authcore.records import OPERATOR_ACTOR
from authcore.store import AsyncStore, Store

pytestmark = pytest.mark.postgres

NOW = 1_800_000_000

psycopg = pytest.importorskip("psycopg")
postgres = pytest.importorskip("authcore.backends.postgres")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens once the socket is closed


@pytest.fixture
def fresh_schema(postgres_url: str) -> Iterator[str]:
    """A schema no store has migrated yet, dropped afterwards."""
    import secrets

    schema = f"authcore_fresh_{secrets.token_hex(6)}"
    yield schema
    with psycopg.connect(postgres_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def test_postgres_stores_implement_the_protocols(postgres_url: str, pg_schema: str) -> None:
    with postgres.PostgresStore(postgres_url, schema=pg_schema) as store:
        sync: Store = store
        assert sync.find_workspace("ws_none") is None
        assert store.schema_version() == len(MIGRATIONS)
    asynchronous: AsyncStore = postgres.AsyncPostgresStore(postgres_url, schema=pg_schema)
    assert asynchronous is not None


def test_concurrent_starts_migrate_once(postgres_url: str, fresh_schema: str) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def start() -> None:
        try:
            barrier.wait()
            postgres.PostgresStore(postgres_url, schema=fresh_schema, max_size=1).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        sql = f"SELECT version FROM {fresh_schema}.schema_version"  # noqa: S608 - test's own name
        rows = conn.execute(sql).fetchall()
    assert rows == [(v,) for v in range(1, len(MIGRATIONS) + 1)]


def test_newer_schema_is_refused(postgres_url: str, fresh_schema: str) -> None:
    postgres.PostgresStore(postgres_url, schema=fresh_schema).close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        sql = f"INSERT INTO {fresh_schema}.schema_version VALUES (%s)"  # noqa: S608 - test's name
        conn.execute(sql, (len(MIGRATIONS) + 1,))
    with pytest.raises(ConfigurationError):
        postgres.PostgresStore(postgres_url, schema=fresh_schema)


@pytest.mark.parametrize("schema", ["Upper", "a-b", "x; DROP TABLE y", "", "a" * 64])
def test_bad_schema_name_is_refused(schema: str) -> None:
    with pytest.raises(ConfigurationError):
        postgres.PostgresStore("postgresql://127.0.0.1:1/none", schema=schema, migrate=False)


def test_unreachable_server_is_unavailable() -> None:
    url = f"postgresql://postgres@127.0.0.1:{_closed_port()}/test"
    with pytest.raises(UnavailableError):
        postgres.PostgresStore(url, timeout=0.5, connect_timeout=1)
    store = postgres.PostgresStore(url, timeout=0.5, connect_timeout=1, migrate=False)
    try:
        with pytest.raises(UnavailableError) as caught:
            store.find_workspace("ws_x")
        assert caught.value.status == 503
        with pytest.raises(UnavailableError):
            store.create_workspace("Acme", now=NOW, actor=OPERATOR_ACTOR)
    finally:
        store.close()


async def test_unreachable_server_is_unavailable_async() -> None:
    url = f"postgresql://postgres@127.0.0.1:{_closed_port()}/test"
    store = postgres.AsyncPostgresStore(url, timeout=0.5, connect_timeout=1)
    with pytest.raises(UnavailableError):
        await store.open()
    lazy = postgres.AsyncPostgresStore(url, timeout=0.5, connect_timeout=1, migrate=False)
    await lazy.open()
    try:
        with pytest.raises(UnavailableError):
            await lazy.afind_workspace("ws_x")
    finally:
        await lazy.aclose()


def _terminate(postgres_url: str, application_name: str) -> int:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (application_name,),
        ).fetchall()
    return len(rows)


def test_terminated_connections_give_unavailable_then_recover(
    postgres_url: str, pg_schema: str
) -> None:
    name = f"authcore_kill_{id(pg_schema)}"
    url = f"{postgres_url}?application_name={name}"
    with postgres.PostgresStore(url, schema=pg_schema, min_size=1, max_size=1) as store:
        ws = store.create_workspace("Acme", now=NOW, actor=OPERATOR_ACTOR)
        assert _terminate(postgres_url, name) >= 1
        with pytest.raises(UnavailableError) as caught:
            store.create_root_key(ws.id, permissions=[], now=NOW, actor=OPERATOR_ACTOR)
        assert ws.id not in str(caught.value)
        # The next call gets a fresh connection.
        assert store.find_workspace(ws.id) == ws
        assert store.create_root_key(ws.id, permissions=[], now=NOW, actor=OPERATOR_ACTOR)


async def test_terminated_connections_recover_async(postgres_url: str, pg_schema: str) -> None:
    name = f"authcore_akill_{id(pg_schema)}"
    url = f"{postgres_url}?application_name={name}"
    async with postgres.AsyncPostgresStore(url, schema=pg_schema, max_size=1) as store:
        ws = await store.acreate_workspace("Acme", now=NOW, actor=OPERATOR_ACTOR)
        assert _terminate(postgres_url, name) >= 1
        with pytest.raises(UnavailableError):
            await store.afind_workspace(ws.id)
        assert await store.afind_workspace(ws.id) == ws


_CHILD = textwrap.dedent(
    """
    import sys
    from authcore.backends.postgres import PostgresStore
    from authcore.principal import principal_from_root_key
    from authcore.errors import InvalidCredentialError

    url, schema, digest_hex = sys.argv[1:4]
    digest = bytes.fromhex(digest_hex)
    with PostgresStore(url, schema=schema, max_size=1) as store:
        for line in sys.stdin:
            try:
                principal_from_root_key(store.find_root_key(digest), digest, 1_800_000_001)
                print("valid", flush=True)
            except InvalidCredentialError:
                print("rejected", flush=True)
    """
)


def test_revocation_in_one_process_is_seen_by_another(postgres_url: str, pg_schema: str) -> None:
    with postgres.PostgresStore(postgres_url, schema=pg_schema) as store:
        ws = store.create_workspace("Acme", now=NOW, actor=OPERATOR_ACTOR)
        key = store.create_root_key(ws.id, permissions=[], now=NOW, actor=OPERATOR_ACTOR)
        assert key is not None
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, postgres_url, pg_schema, key.record.digest.hex()],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdin is not None
            assert child.stdout is not None
            child.stdin.write("check\n")
            child.stdin.flush()
            assert child.stdout.readline().strip() == "valid"
            store.revoke_root_key(key.record.id, now=NOW, actor=OPERATOR_ACTOR)
            child.stdin.write("check\n")
            child.stdin.flush()
            assert child.stdout.readline().strip() == "rejected"
            child.stdin.close()
            assert child.wait(timeout=30) == 0
        finally:
            if child.poll() is None:
                child.kill()
                child.wait(timeout=10)
            for pipe in (child.stdin, child.stdout):
                if pipe is not None:
                    pipe.close()
