"""Race many threads (or tasks) for one limit: the over-admission checks the limiter tests share."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence

from authcore.backends.cache import CachedStore
from authcore.errors import RateLimitedError
from authcore.flow import Authenticator
from authcore.ratelimit import RateLimitDecision, RateLimiter, RateLimitPolicy
from authcore.testing import (
    MemoryStore,
    SettableClock,
    add_identity,
    issue_root_key,
    make_workspace,
)


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


def race_requests(
    authenticate: Callable[[str], object],
    headers: Sequence[str],
    *,
    threads: int = 32,
    attempts: int = 10,
) -> dict[str, int]:
    """Start ``threads`` threads at one barrier, each sending ``attempts`` requests.

    Thread ``i`` sends ``headers[i % len(headers)]``. ``authenticate`` raises
    :class:`~authcore.errors.RateLimitedError` for a refusal; returns the admitted count per
    header.
    """
    start = threading.Barrier(threads)
    admitted = dict.fromkeys(headers, 0)
    lock = threading.Lock()

    def attempt(header: str) -> None:
        start.wait()
        mine = 0
        for _ in range(attempts):
            try:
                authenticate(header)
            except RateLimitedError:
                continue
            mine += 1
        with lock:
            admitted[header] += mine

    workers = [
        threading.Thread(target=attempt, args=(headers[i % len(headers)],)) for i in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return admitted


def key_limited(
    workspace: int, keys: list[int], *, cached: bool = False
) -> tuple[MemoryStore | CachedStore, list[str], list[str]]:
    """A workspace limited to ``workspace`` per day with one key per entry of ``keys``, each
    limited to that many per day; the store, the keys' headers and the keys' ids."""
    store = MemoryStore()
    make_workspace(store, "ws_both", rate_limit=RateLimitPolicy(workspace, 86_400))
    issued = [
        issue_root_key(store, "ws_both", [], rate_limit=RateLimitPolicy(limit, 86_400))
        for limit in keys
    ]
    headers = [f"Bearer {secret.reveal()}" for _, secret in issued]
    front = CachedStore(store, clock=SettableClock()) if cached else store
    return front, headers, [record.id for record, _ in issued]


async def admitted_by_tasks(auth: Authenticator, header: str, tasks: int) -> int:
    """Send ``header`` from ``tasks`` concurrent tasks; return how many were admitted."""

    async def one() -> int:
        try:
            await auth.aauthenticate([header])
        except RateLimitedError:
            return 0
        return 1

    return sum(await asyncio.gather(*(one() for _ in range(tasks))))


def identity_limited(
    workspace: int, identity: int, keys: int, *, cached: bool = True
) -> tuple[MemoryStore | CachedStore, list[str], str]:
    """A workspace limited to ``workspace`` per day with one identity limited to ``identity``
    per day, owning ``keys`` keys without limits of their own; store, headers, identity id."""
    store = MemoryStore()
    make_workspace(store, "ws_idt", rate_limit=RateLimitPolicy(workspace, 86_400))
    owner = add_identity(store, "ws_idt", "customer", rate_limit=RateLimitPolicy(identity, 86_400))
    issued = [issue_root_key(store, "ws_idt", [], identity_id=owner.id) for _ in range(keys)]
    headers = [f"Bearer {secret.reveal()}" for _, secret in issued]
    front = CachedStore(store, clock=SettableClock()) if cached else store
    return front, headers, owner.id
