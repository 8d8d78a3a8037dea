"""Limiter and verification-cache costs: memory limiter, Redis limiter vs PING, cache hit.

Each row times its variants in interleaved rounds (the order rotates every round, so drift hits
every variant alike) with ``time.perf_counter_ns``, and reports the median per-call time with
its interquartile range, and the median of the *per-round* ratios subject / baseline.

Run: ``python -m benchmarks.bench_limiters [--quick]`` (Redis from ``AUTHCORE_BENCH_REDIS``,
default ``redis://127.0.0.1:6379/15``; the Redis row says "not measured" when it is down).
"""

from __future__ import annotations

import gc
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

from authcore.backends.cache import CachedStore
from authcore.backends.memory import MemoryRateLimiter
from authcore.ratelimit import RateLimitPolicy
from authcore.records import OPERATOR_ACTOR
from authcore.testing import MemoryStore

__all__ = ["run"]

REDIS_URL = os.environ.get("AUTHCORE_BENCH_REDIS", "redis://127.0.0.1:6379/15")
# Never denies: the benchmark times decisions, not the 429 path.
_POLICY = RateLimitPolicy(limit=1_000_000, period=1)


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    p25, median, p75 = statistics.quantiles(values, n=4, method="inclusive")
    return median, p25, p75


def _interleaved(
    variants: dict[str, Callable[[], object]], *, rounds: int, iterations: int
) -> dict[str, list[float]]:
    """Return per-call microseconds of each variant, one value per round."""
    names = list(variants)
    for call in variants.values():  # warm up (script load, connections, caches)
        for _ in range(min(iterations, 100)):
            call()
    out: dict[str, list[float]] = {name: [] for name in names}
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for index in range(rounds):
            order = names[index % len(names) :] + names[: index % len(names)]
            for name in order:
                call = variants[name]
                start = time.perf_counter_ns()
                for _ in range(iterations):
                    call()
                out[name].append((time.perf_counter_ns() - start) / iterations / 1000)
    finally:
        if gc_was_enabled:
            gc.enable()
    return out


def _row(
    name: str,
    what: str,
    times: dict[str, list[float]],
    *,
    subject: str,
    baseline: str | None = None,
    baseline_what: str | None = None,
    target: float | None = None,
) -> dict[str, Any]:
    row: dict[str, Any] = {"name": name, "what": what, "unit": "us"}
    row["subject_median"], row["subject_p25"], row["subject_p75"] = _quartiles(times[subject])
    if baseline is not None:
        row["baseline"] = baseline_what
        b = _quartiles(times[baseline])
        row["baseline_median"], row["baseline_p25"], row["baseline_p75"] = b
        ratios = [s / b for s, b in zip(times[subject], times[baseline], strict=True)]
        row["ratio"], row["ratio_p25"], row["ratio_p75"] = _quartiles(ratios)
    if target is not None:
        row["target"] = target
        row["status"] = "PASS" if row["ratio"] <= target else "MISS"
    else:
        row["status"] = "info"
    return row


def _memory_row(rounds: int, iterations: int) -> dict[str, Any]:
    limiter = MemoryRateLimiter()
    table = {"ws_bench": 0}
    times = _interleaved(
        {
            "limiter": lambda: limiter.hit("ws_bench", _POLICY),
            "dict": lambda: table.get("ws_bench"),
        },
        rounds=rounds,
        iterations=iterations,
    )
    return _row(
        "limiter.memory",
        "memory limiter decision (MemoryRateLimiter.hit: lock, GCRA, store)",
        times,
        subject="limiter",
        baseline="dict",
        baseline_what="dict.get of the same key",
    )


def _redis_row(rounds: int, iterations: int) -> dict[str, Any]:
    name = "limiter.redis"
    what = "Redis limiter decision (RedisRateLimiter.hit: one EVALSHA round trip)"
    try:
        import redis

        from authcore.backends.redis import RedisRateLimiter
    except ImportError as exc:
        return {"name": name, "what": what, "status": f"not measured: {exc}", "target": 1.2}
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        return {
            "name": name,
            "what": what,
            "status": f"not measured: Redis unreachable ({type(exc).__name__})",
            "target": 1.2,
        }
    namespace = f"authcore:bench:{uuid.uuid4().hex[:12]}:"
    limiter = RedisRateLimiter.from_url(REDIS_URL, namespace=namespace, timeout=2.0)
    try:
        times = _interleaved(
            {"limiter": lambda: limiter.hit("ws_bench", _POLICY), "ping": client.ping},
            rounds=rounds,
            iterations=iterations,
        )
    finally:
        keys = list(client.scan_iter(match=f"{namespace}*"))
        if keys:
            client.delete(*keys)
        limiter.close()
        client.close()
    return _row(
        name,
        what,
        times,
        subject="limiter",
        baseline="ping",
        baseline_what="redis-py PING on loopback (same run)",
        target=1.2,
    )


def _cache_row(rounds: int, iterations: int) -> dict[str, Any]:
    store = MemoryStore()
    cache = CachedStore(store)
    workspace = store.create_workspace("bench", now=time.time(), actor=OPERATOR_ACTOR)
    created = store.create_root_key(
        workspace.id, permissions=[], now=time.time(), actor=OPERATOR_ACTOR
    )
    assert created is not None
    digest = created.record.digest
    plain = {digest: created.record}
    assert cache.find_root_key(digest) == created.record
    times = _interleaved(
        {"cache": lambda: cache.find_root_key(digest), "dict": lambda: plain.get(digest)},
        rounds=rounds,
        iterations=iterations,
    )
    return _row(
        "cache.hit",
        "verification cache hit (CachedStore.find_root_key)",
        times,
        subject="cache",
        baseline="dict",
        baseline_what="dict.get by digest",
    )


def run(quick: bool) -> list[dict[str, Any]]:
    """Return the limiter and cache rows (``quick``: fewer rounds and iterations)."""
    rounds = 7 if quick else 21
    local = 5_000 if quick else 50_000
    remote = 300 if quick else 2_000
    return [
        _memory_row(rounds, local),
        _redis_row(rounds, remote),
        _cache_row(rounds, local),
    ]


def _show(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv[1:]):
        print(row["name"], "-", row["what"])
        for key in ("subject_median", "subject_p25", "subject_p75", "baseline"):
            if key in row:
                print(f"    {key}: {_show(row[key])}")
        for key in ("baseline_median", "ratio", "ratio_p25", "ratio_p75", "target", "status"):
            if key in row:
                print(f"    {key}: {_show(row[key])}")
