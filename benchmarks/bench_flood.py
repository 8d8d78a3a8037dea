"""A flood of distinct bogus credentials through the pipeline: resident memory stays bounded.

The pipeline is an Authenticator over ``CachedStore(MemoryStore)`` and a ``VerifiedTokenCache``,
with the library's default sizes. Nine in ten credentials are bogus root keys, which miss and
land in the bounded negative table; one in ten is a bogus JWT (a configured kid, a wrong
signature), which must leave the verified-token cache empty. It runs in a child process
(``python -m benchmarks.bench_flood COUNT``) so that earlier benches' garbage can neither hide
nor inflate the growth; the child reports VmRSS after warm-up, once the negative table is full,
and at the end.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import Mode, Row, Stat, not_measured

__all__ = ["flood", "run"]

_NAME = "flood.memory"
_ROOT = Path(__file__).resolve().parent.parent
#: Budget per cache entry (key tuple, 32-byte digest, OrderedDict node, expiry), in bytes.
ENTRY_BUDGET = 512
#: Allowance for allocator arenas and interpreter state touched by the first requests.
SLACK = 8 * 1024 * 1024


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def flood(count: int) -> dict[str, Any]:
    """Push ``count`` distinct bogus credentials through the pipeline; return the RSS figures."""
    from authcore.backends.cache import CachedStore, VerifiedTokenCache
    from authcore.errors import InvalidCredentialError
    from authcore.flow import Authenticator, AuthSettings, Backends
    from authcore.keyring import Keyring, SigningSecret
    from authcore.testing import MemoryRateLimiter
    from authcore.tokens import Secret
    from benchmarks.world import build_world

    world = build_world()
    store = CachedStore(world.store)
    token_cache = VerifiedTokenCache()
    max_negative = store._negative.max_entries  # the configured bound, read back
    max_positive = store._positive.max_entries  # same
    keyring = Keyring([SigningSecret("k9", Secret("bench-flood-secret-" + "x" * 32))])
    authenticator = Authenticator(
        AuthSettings(keyring=keyring, token_cache=token_cache),
        clock=time.time,
        backends=Backends(store=store, limiter=MemoryRateLimiter()),
    )
    # A JWT header naming a configured kid, so each bogus JWT costs a real HMAC check.
    jwt_header = base64.urlsafe_b64encode(b'{"alg":"HS256","kid":"k9","typ":"JWT"}').rstrip(b"=")

    def bogus(i: int) -> str:
        if i % 10:
            return f"Bearer ak_bogus{i:035d}"
        payload = base64.urlsafe_b64encode(f'{{"sub":"u{i}"}}'.encode()).rstrip(b"=")
        return f"Bearer {jwt_header.decode()}.{payload.decode()}.{'A' * 43}"

    def push(start: int, stop: int) -> None:
        for i in range(start, stop):
            try:
                authenticator.authenticate([bogus(i)])
            except InvalidCredentialError:
                continue
            raise RuntimeError("a bogus credential was accepted")

    warm = min(1000, count)
    push(0, warm)
    rss_start = _rss()
    full_at = min(count, warm + max_negative + 1000)
    push(warm, full_at)
    rss_full = _rss()
    started = time.perf_counter()
    push(full_at, count)
    seconds = time.perf_counter() - started
    return {
        "count": count,
        "rss_start": rss_start,
        "rss_full": rss_full,
        "rss_end": _rss(),
        "max_negative": max_negative,
        "max_positive": max_positive,
        "negative_size": store.negative_size,
        "token_cache_size": len(token_cache),
        "per_request_us": seconds / max(1, count - full_at) * 1e6,
    }


def run(mode: Mode) -> list[Row]:
    """Return the memory row, measured in a child process."""
    what = (
        "1,000,000 distinct bogus credentials (9 in 10 root keys, 1 in 10 JWTs): VmRSS growth "
        "(CachedStore and VerifiedTokenCache, default sizes)"
    )
    try:
        import authcore.backends.cache  # noqa: F401  # only checking that it exists
    except ImportError:
        return [not_measured(_NAME, what, "authcore.backends.cache not written yet", target=1.0)]
    count = 3_000 if mode.smoke else 200_000 if mode.name == "quick" else 1_000_000
    env = {**os.environ, "PYTHONPATH": str(_ROOT)}
    child = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_flood", str(count)],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
        env=env,
        cwd=_ROOT,
    )
    data = json.loads(child.stdout.strip().splitlines()[-1])
    mib = 1024 * 1024
    growth = (data["rss_end"] - data["rss_start"]) / mib
    after_full = (data["rss_end"] - data["rss_full"]) / mib
    bound = ((data["max_negative"] + data["max_positive"]) * ENTRY_BUDGET + SLACK) / mib
    limited = data["negative_size"] <= data["max_negative"] and data["token_cache_size"] == 0
    row = Row(
        name=_NAME,
        what=what.replace("1,000,000", f"{count:,}"),
        unit="MiB",
        subject=Stat(growth, growth, growth),
        baseline=f"bound: ({data['max_negative']:,} negative + {data['max_positive']:,} positive "
        f"entries) x {ENTRY_BUDGET} B + {SLACK // mib} MiB",
        baseline_stat=Stat(bound, bound, bound),
        ratio=Stat(growth / bound, growth / bound, growth / bound),
        target=1.0,
        status="" if limited else "MISS",
        note=f"growth after the negative table filled: {after_full:.1f} MiB; "
        f"{data['per_request_us']:.1f} us per bogus request",
    )
    row.extra["detail"] = (
        f"VmRSS {data['rss_start'] / mib:.1f} MiB after warm-up, {data['rss_full'] / mib:.1f} MiB "
        f"once the negative table held {data['max_negative']:,} entries, "
        f"{data['rss_end'] / mib:.1f} MiB after {count:,} bogus keys; negative entries held at "
        f"the end: {data['negative_size']:,}; verified-token cache entries: "
        f"{data['token_cache_size']} (failed JWTs are never cached)."
    )
    return [row]


if __name__ == "__main__":
    print(json.dumps(flood(int(sys.argv[1]))))
