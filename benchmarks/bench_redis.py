"""Redis limiter decision against a plain Redis PING, interleaved on one connection each.

Used only when ``bench_limiters.py`` (which owns the limiter rows) does not exist.
"""

from __future__ import annotations

import importlib.util
import os
import uuid

from benchmarks.harness import Mode, Row, compare, loop, not_measured

__all__ = ["REDIS_URL", "run"]

REDIS_URL = os.environ.get("AUTHCORE_BENCH_REDIS", "redis://127.0.0.1:6379/15")
_NAME = "redis.decision"
_WHAT = "Redis limiter decision (RedisRateLimiter.hit, one EVALSHA round trip)"


def run(mode: Mode) -> list[Row]:
    """Return the Redis row, or nothing when bench_limiters.py measures it."""
    if importlib.util.find_spec("benchmarks.bench_limiters") is not None:
        return []
    try:
        import redis

        from authcore.backends.redis import RedisRateLimiter
    except ImportError as exc:
        return [not_measured(_NAME, _WHAT, f"import failed: {exc}", target=1.2)]
    from authcore.ratelimit import RateLimitPolicy

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        return [not_measured(_NAME, _WHAT, f"Redis unreachable at {REDIS_URL}: {exc}", target=1.2)]
    namespace = f"authcore:bench:{uuid.uuid4().hex[:12]}:"
    limiter = RedisRateLimiter.from_url(REDIS_URL, namespace=namespace, timeout=2.0)
    policy = RateLimitPolicy(limit=1_000_000, period=1)
    try:
        assert limiter.hit("ws_bench", policy).allowed
        return [
            compare(
                _NAME,
                _WHAT,
                subject=loop(lambda: limiter.hit("ws_bench", policy)),
                baseline=loop(client.ping),
                baseline_what="redis-py PING on loopback",
                mode=mode,
                target=1.2,
            )
        ]
    finally:
        for key in client.scan_iter(match=f"{namespace}*", count=1000):
            client.delete(key)
        limiter.close()
        client.close()
