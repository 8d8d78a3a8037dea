"""Memory work per request: what one authenticated ASGI request allocates, replay and miss.

Measured with ``tracemalloc`` in process, one request at a time: the peak of traced memory
above what was live before the request (its transient allocations, freed when it ends), the
median over many requests. Beside it, garbage-collector runs per 10,000 requests (from
``gc.callbacks``) and the growth of live blocks over them (a leak shows there). The baseline is
the floor middleware (:mod:`benchmarks.floor`) doing the same job on the same request.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import sys
import tracemalloc
from collections.abc import Callable
from typing import Any

from benchmarks.bench_adapters import (
    ASGIApp,
    authcore_asgi_app,
    floor_asgi_app,
    http_scope,
)
from benchmarks.harness import Mode, Row, Stat
from benchmarks.world import build_world

__all__ = ["ROWS", "run"]


class _Sink:
    """ASGI receive/send that keep nothing."""

    async def receive(self) -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(self, message: Any) -> None:
        return None


def _peaks(app: ASGIApp, header: str, samples: int) -> list[int]:
    template = http_scope(header)
    sink = _Sink()
    loop = asyncio.new_event_loop()
    try:

        async def once() -> None:
            await app({**template, "state": {}}, sink.receive, sink.send)

        for _ in range(200):  # warm every cache first: steady state is what is measured
            loop.run_until_complete(once())
        tracemalloc.start()
        try:
            peaks = []
            for _ in range(samples):
                before = tracemalloc.get_traced_memory()[0]
                tracemalloc.reset_peak()
                loop.run_until_complete(once())
                peaks.append(tracemalloc.get_traced_memory()[1] - before)
        finally:
            tracemalloc.stop()
        return peaks
    finally:
        loop.close()


def _gc_runs(app: ASGIApp, header: str, requests: int) -> tuple[int, int]:
    """Collector runs and live-block growth over ``requests`` requests."""
    template = http_scope(header)
    sink = _Sink()
    runs = 0

    def count(phase: str, _info: dict[str, int]) -> None:
        nonlocal runs
        if phase == "start":
            runs += 1

    async def many() -> None:
        for _ in range(requests):
            await app({**template, "state": {}}, sink.receive, sink.send)

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(many())  # warm-up
        gc.collect()
        blocks = sys.getallocatedblocks()
        gc.callbacks.append(count)
        try:
            loop.run_until_complete(many())
        finally:
            gc.callbacks.remove(count)
        gc.collect()
        return runs, sys.getallocatedblocks() - blocks
    finally:
        loop.close()


def _row(
    name: str, what: str, subject: Callable[[], ASGIApp], header: Callable[[], str], mode: Mode
) -> Row:
    samples = 20 if mode.smoke else 400
    world = build_world()
    app, floor = subject(), floor_asgi_app(world)
    mine = _peaks(app, header(), samples)
    base = _peaks(floor, world.header, samples)
    requests = 100 if mode.smoke else 10_000
    runs, growth = _gc_runs(app, header(), requests)
    median, baseline = statistics.median(mine), statistics.median(base)
    quartiles = statistics.quantiles(mine, n=4)
    base_quartiles = statistics.quantiles(base, n=4)
    # Paired per sample, as the timing rows pair per round.
    ratios = [a / b for a, b in zip(mine, base, strict=True) if b]
    ratio_quartiles = statistics.quantiles(ratios, n=4)
    return Row(
        name=name,
        what=what,
        unit="B",
        subject=Stat(median, quartiles[0], quartiles[2]),
        baseline="floor middleware, the same request",
        baseline_stat=Stat(baseline, base_quartiles[0], base_quartiles[2]),
        ratio=Stat(statistics.median(ratios), ratio_quartiles[0], ratio_quartiles[2]),
        target=None,
        note=f"gc runs per {requests:,} requests: {runs}; live blocks after them: {growth:+d}",
    )


def _hit_row(mode: Mode) -> Row:
    world = build_world()
    return _row(
        "alloc.hit",
        "bytes allocated (tracemalloc peak) by one authenticated ASGI request, replayed "
        "conclusion (AuthMiddleware, CachedStore over memory, memory limiter, authorize)",
        lambda: _require(authcore_asgi_app(world)),
        lambda: world.header,
        mode,
    )


def _miss_row(mode: Mode) -> Row:
    world = build_world()

    def app() -> ASGIApp:
        # No replay: every request runs the whole flow (what a cold credential costs).
        return _require(authcore_asgi_app(world, replay=False))

    return _row(
        "alloc.miss",
        "bytes allocated by one authenticated ASGI request running the whole flow (no replay)",
        app,
        lambda: world.header,
        mode,
    )


def _require(app: ASGIApp | None) -> ASGIApp:
    if app is None:
        raise RuntimeError("authcore.adapters.asgi.AuthMiddleware is missing")
    return app


#: (row name, measure)
ROWS: list[tuple[str, Callable[[Mode], Row]]] = [
    ("alloc.hit", _hit_row),
    ("alloc.miss", _miss_row),
]


def run(mode: Mode, only: list[str] | tuple[str, ...] = ()) -> list[Row]:
    """Return the allocation rows (those ``only`` selects, if given)."""
    return [
        measure(mode)
        for name, measure in ROWS
        if not only or any(name.startswith(o) or o == "alloc" for o in only)
    ]
