"""SQLite lookups with 1,000,000 stored keys against 1,000: the cost must stay flat.

The big file is built fast: :class:`SQLiteStore` creates the schema (its own migrations), then
digests are inserted directly with one ``executemany`` in one transaction. Built files are kept
under the temp dir, named by key count and a fingerprint of the schema, so a rerun with the same
schema reuses them. Each file is read through once before timing: "cold" means not in
authcore's cache, with the file in the OS page cache as on a server in steady state. Lookups
cycle over many distinct stored digests, so the big table is read at many places of its index,
not one hot page.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import random
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.harness import Mode, Row, compare, loop, not_measured

__all__ = ["build_sqlite", "run"]

_WORKSPACE = "ws_bench"
_PROBES = 10_000


def _digest(i: int) -> bytes:
    return hashlib.sha256(f"ak_bench{i:040d}".encode()).digest()


def build_sqlite(count: int, directory: Path) -> Path:
    """Return a SQLite file in the store's schema holding ``count`` root keys (cached)."""
    from authcore.backends import _sql
    from authcore.backends.sqlite import SQLiteStore

    schema = hashlib.sha256(repr(_sql.MIGRATIONS).encode()).hexdigest()[:12]
    path = directory / f"authcore-bench-{count}-{schema}.db"
    if path.exists():
        return path
    partial = path.with_suffix(".partial")
    for stale in (partial, Path(f"{partial}-wal"), Path(f"{partial}-shm")):
        stale.unlink(missing_ok=True)
    SQLiteStore(partial).close()  # creates the file and applies the migrations
    conn = sqlite3.connect(partial)
    try:
        conn.execute("PRAGMA synchronous = OFF")
        with conn:
            conn.execute(
                "INSERT INTO workspaces (id, name, disabled, created_at) VALUES (?, ?, 0, 0)",
                (_WORKSPACE, _WORKSPACE),
            )
            grants = json.dumps(["keys.read", "keys.create"])
            conn.executemany(
                "INSERT INTO root_keys (id, workspace_id, digest, start, name, permissions, "
                "created_at, expires_at, revoked_at) VALUES (?, ?, ?, ?, NULL, ?, 0, NULL, NULL)",
                (
                    (f"key_{i:024x}", _WORKSPACE, _digest(i), "ak_bench", grants)
                    for i in range(count)
                ),
            )
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    partial.rename(path)
    return path


def _read_through(path: Path) -> None:
    """Read the file once, so lookups measure SQLite and the OS page cache, not the disk."""
    with path.open("rb") as file:
        while file.read(1 << 20):
            pass


def _lookup(store: Any, count: int, *, warm: bool = False) -> Callable[[], None]:
    rng = random.Random(count)
    probes = [_digest(rng.randrange(count)) for _ in range(min(_PROBES, count))]
    if warm:  # fill the cache with every probe, so the timed lookups are all hits
        for probe in probes:
            store.find_root_key(probe)
    state = {"i": 0}
    size = len(probes)

    def find() -> None:
        i = state["i"]
        state["i"] = i + 1 if i + 1 < size else 0
        if store.find_root_key(probes[i]) is None:
            raise RuntimeError("a stored key was not found")

    return find


def run(mode: Mode) -> list[Row]:
    """Return the SQLite rows."""
    names = ("sqlite.cold", "sqlite.cached")
    try:
        sqlite_module = importlib.import_module("authcore.backends.sqlite")
        cache_module = importlib.import_module("authcore.backends.cache")
    except ImportError as exc:
        why = f"import failed: {exc}"
        return [
            not_measured(names[0], "SQLite cold lookup, 1M vs 1k keys", why, target=1.3),
            not_measured(names[1], "SQLite cached lookup, 1M vs 1k keys", why, target=1.3),
        ]
    big_count = 5_000 if mode.smoke else 1_000_000
    directory = Path(tempfile.gettempdir())
    big_path, small_path = build_sqlite(big_count, directory), build_sqlite(1_000, directory)
    for path in (big_path, small_path):
        _read_through(path)
    big = sqlite_module.SQLiteStore(big_path, readers=1)
    small = sqlite_module.SQLiteStore(small_path, readers=1)
    try:
        label = f"{big_count:,}"
        rows = [
            compare(
                names[0],
                f"SQLiteStore.find_root_key, no cache, {label} keys (random stored digests)",
                subject=loop(_lookup(big, big_count)),
                baseline=loop(_lookup(small, 1_000)),
                baseline_what="the same with 1,000 keys",
                mode=mode,
                target=1.3,
            )
        ]
        # The cache holds 10,000 entries by default: probe fewer distinct keys than that.
        cached_big = cache_module.CachedStore(big, max_entries=20_000, ttl=3600)
        cached_small = cache_module.CachedStore(small, max_entries=20_000, ttl=3600)
        rows.append(
            compare(
                names[1],
                f"CachedStore(SQLiteStore).find_root_key, warm cache, {label} keys",
                subject=loop(_lookup(cached_big, big_count, warm=True)),
                baseline=loop(_lookup(cached_small, 1_000, warm=True)),
                baseline_what="the same with 1,000 keys",
                mode=mode,
                target=1.3,
            )
        )
        return rows
    finally:
        big.close()
        small.close()
