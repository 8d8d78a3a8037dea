"""The shared setup: one workspace, one root key, the authcore backends and the floor's tables.

Every bench builds on :func:`build_world` so that authcore and the floor do the same job on the
same key: same permissions, same rate-limit policy (generous enough never to refuse during a
run, so every iteration takes the admitted path).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from authcore.credentials import CredentialSettings
from authcore.flow import AsyncBackends, AuthSettings, Backends
from authcore.ratelimit import RateLimitPolicy
from authcore.testing import MemoryRateLimiter, MemoryStore, issue_root_key, make_workspace
from benchmarks.floor import floor_keys

__all__ = ["PERMISSION", "World", "build_world", "now_us"]

#: The permission every benchmarked request checks.
PERMISSION = "keys.read"
GRANTS = ("keys.read", "keys.create", "keys.revoke", "audit.read", "workspaces.read")
WORKSPACE = "ws_bench"
# 1,000,000 per second: T = 1 us, so no benchmark loop can outrun the refill.
POLICY = RateLimitPolicy(limit=1_000_000, period=1)


def now_us() -> int:
    """Return the wall clock in integer microseconds (what the limiters use)."""
    return time.time_ns() // 1000


@dataclass
class World:
    """Everything a bench needs for the root-key request, authcore and floor side by side."""

    store: MemoryStore
    limiter: MemoryRateLimiter
    settings: AuthSettings
    backends: Backends
    abackends: AsyncBackends
    raw_key: str
    header: str
    key_id: str
    floor_keys: dict[bytes, tuple[str, str, frozenset[str]]]
    interval_us: int
    tau_us: int


def build_world(settings: AuthSettings | None = None) -> World:
    """Return a fresh world: a memory store with one workspace and one root key."""
    store = MemoryStore()
    make_workspace(store, WORKSPACE, rate_limit=POLICY)
    record, secret = issue_root_key(store, WORKSPACE, GRANTS, now=time.time())
    limiter = MemoryRateLimiter()
    settings = settings or AuthSettings(credentials=CredentialSettings.api())
    raw = secret.reveal()
    return World(
        store=store,
        limiter=limiter,
        settings=settings,
        backends=Backends(store=store, limiter=limiter),
        abackends=AsyncBackends(store=store, limiter=limiter),
        raw_key=raw,
        header=f"Bearer {raw}",
        key_id=record.id,
        floor_keys=floor_keys([(raw, WORKSPACE, record.id, GRANTS)]),
        interval_us=POLICY.emission_interval_us,
        tau_us=POLICY.burst_window_us,
    )
