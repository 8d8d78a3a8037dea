"""Every backend satisfies the core's protocols: checked by mypy (strict) on this file.

The assignments below are the check; the test only makes sure the module stays importable
and that the classes keep the methods the protocols name.
"""

from __future__ import annotations

import inspect

from authcore.backends.cache import CachedStore
from authcore.backends.memory import MemoryRateLimiter, MemoryStore
from authcore.backends.postgres import AsyncPostgresStore, PostgresStore
from authcore.backends.redis import AsyncRedisRateLimiter, RedisRateLimiter
from authcore.backends.sqlite import SQLiteStore
from authcore.ratelimit import AsyncRateLimiter, RateLimiter
from authcore.store import AsyncStore, Store


def _typed(  # pragma: no cover - never called: mypy checks the assignments
    *,
    memory: MemoryStore,
    sqlite: SQLiteStore,
    postgres: PostgresStore,
    apostgres: AsyncPostgresStore,
    cached: CachedStore,
    limiter: MemoryRateLimiter,
    redis_limiter: RedisRateLimiter,
    aredis_limiter: AsyncRedisRateLimiter,
) -> None:
    stores: list[Store] = [memory, sqlite, postgres, cached]
    astores: list[AsyncStore] = [memory, sqlite, apostgres, cached]
    limiters: list[RateLimiter] = [limiter, redis_limiter]
    alimiters: list[AsyncRateLimiter] = [limiter, aredis_limiter]
    del stores, astores, limiters, alimiters


def test_sync_stores_have_every_protocol_method() -> None:
    names = [n for n, _ in inspect.getmembers(Store) if not n.startswith("_")]
    assert "create_root_key" in names
    for cls in (MemoryStore, SQLiteStore, PostgresStore, CachedStore):
        assert [n for n in names if not hasattr(cls, n)] == [], cls.__name__


def test_async_stores_have_every_protocol_method() -> None:
    names = [n for n, _ in inspect.getmembers(AsyncStore) if not n.startswith("_")]
    assert "acreate_root_key" in names
    for cls in (MemoryStore, SQLiteStore, AsyncPostgresStore, CachedStore):
        assert [n for n in names if not hasattr(cls, n)] == [], cls.__name__
