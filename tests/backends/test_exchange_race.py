"""A portal exchange code works once, even when processes race for it.

The command line and the servers are different processes, so "once" has to hold in the store:
several processes (and, for the memory store, threads) are started together on one code and
exactly one of them gets the session.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from authcore.backends.memory import MemoryStore
from authcore.backends.sqlite import SQLiteStore
from authcore.records import OPERATOR_ACTOR
from authcore.store import Store
from authcore.tokens import digest

ROOT = Path(__file__).resolve().parents[2]
RACERS = 6

# Each racer opens the store, says "ready", waits for "go" on stdin, then tries the code once
# and prints 1 (it got the session) or 0.
RACER = """
import sys
from authcore.tokens import digest
kind, where, schema, code, now = sys.argv[1:6]
if kind == "sqlite":
    from authcore.backends.sqlite import SQLiteStore
    store = SQLiteStore(where, timeout=30.0)
else:
    from authcore.backends.postgres import PostgresStore
    store = PostgresStore(where, schema=schema, timeout=30.0, max_size=1)
print("ready", flush=True)
sys.stdin.readline()
started = store.exchange_portal_code(digest(code), now=float(now))
print(1 if started is not None else 0, flush=True)
store.close()
"""


def _pending_code(store: Store) -> tuple[str, float]:
    now = time.time()
    workspace = store.create_workspace("race", now=now, actor=OPERATOR_ACTOR)
    pending = store.create_portal_exchange(
        workspace.id, "end_user_1", permissions=[], ttl=600, now=now, actor=OPERATOR_ACTOR
    )
    assert pending is not None
    return pending.code.reveal(), now


def _race_processes(kind: str, where: str, schema: str, code: str, now: float) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, kind, where, schema, code, str(now + 1)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(RACERS)
    ]
    try:
        for racer in racers:
            assert racer.stdout is not None
            assert racer.stdout.readline().strip() == "ready"
        for racer in racers:
            assert racer.stdin is not None
            racer.stdin.write("go\n")
            racer.stdin.flush()
        return [racer.communicate(timeout=60)[0].strip() for racer in racers]
    finally:
        for racer in racers:
            if racer.poll() is None:
                racer.kill()


@pytest.fixture
def pg_race_schema(postgres_url: str) -> Iterator[str]:
    schema = f"authcore_race_{secrets.token_hex(6)}"
    yield schema
    with psycopg.connect(postgres_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def test_processes_racing_on_sqlite_spend_a_code_once(tmp_path: Path) -> None:
    path = tmp_path / "race.db"
    with SQLiteStore(path) as store:
        code, now = _pending_code(store)
    results = _race_processes("sqlite", str(path), "-", code, now)
    assert sorted(results) == ["0"] * (RACERS - 1) + ["1"]


@pytest.mark.postgres
def test_processes_racing_on_postgres_spend_a_code_once(
    postgres_url: str, pg_race_schema: str
) -> None:
    from authcore.backends.postgres import PostgresStore

    with PostgresStore(postgres_url, schema=pg_race_schema) as store:
        code, now = _pending_code(store)
    results = _race_processes("postgres", postgres_url, pg_race_schema, code, now)
    assert sorted(results) == ["0"] * (RACERS - 1) + ["1"]


def test_threads_racing_on_the_memory_store_spend_a_code_once() -> None:
    store = MemoryStore()
    code, now = _pending_code(store)
    start = threading.Barrier(16)
    results: list[bool] = []
    lock = threading.Lock()

    def attempt() -> None:
        start.wait()
        started = store.exchange_portal_code(digest(code), now=now + 1)
        with lock:
            results.append(started is not None)

    workers = [threading.Thread(target=attempt) for _ in range(16)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert sorted(results) == [False] * 15 + [True]
