"""Race many threads for one limit: the over-admission check the limiter tests share."""

from __future__ import annotations

import threading

from authcore.ratelimit import RateLimitDecision, RateLimiter, RateLimitPolicy


def race_threads(
    limiter: RateLimiter, policy: RateLimitPolicy, *, threads: int = 32, attempts: int = 10
) -> list[RateLimitDecision]:
    """Start ``threads`` threads at one barrier, each asking ``attempts`` times; all decisions."""
    start = threading.Barrier(threads)
    decisions: list[RateLimitDecision] = []
    lock = threading.Lock()

    def attempt() -> None:
        start.wait()
        mine = [limiter.hit("ws_race", policy) for _ in range(attempts)]
        with lock:
            decisions.extend(mine)

    workers = [threading.Thread(target=attempt) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return decisions
