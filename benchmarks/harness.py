"""Timing machinery: interleaved rounds, paired ratios, medians, and the row every bench returns.

The machines are shared and noisy, so no absolute time is ever compared across runs. A bench
names a few *variants* (a baseline, the subject, sometimes a bare app), each a function that
runs ``n`` iterations and returns the elapsed nanoseconds (:func:`loop` builds one from a
zero-argument callable). :func:`measure` runs them in interleaved rounds, rotating the order
every round, so that drift (CPU frequency, a neighbour's load) hits every variant alike. A ratio
is computed *per round* from the variants of that round, and the row reports the median of those
paired ratios with its interquartile range.

Rows are plain dictionaries (:class:`Row` converts both ways), so a bench module written by
someone else only has to return ``list[dict]`` with these keys (all optional except ``name``):

``name`` (slug for ``--only``), ``what`` (what was measured), ``unit`` ("us", "req/s", "MiB",
...), ``subject_median`` / ``subject_p25`` / ``subject_p75``, ``baseline`` (what the baseline
is), ``baseline_median`` / ``baseline_p25`` / ``baseline_p75``, ``ratio`` / ``ratio_p25`` /
``ratio_p75``, ``target`` (a float), ``direction`` ("<=" or ">=", default "<="), ``status``
("PASS", "MISS", "info" or "not measured: <why>"; derived from ratio and target when absent),
``note``.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "FULL",
    "QUICK",
    "SMOKE",
    "Mode",
    "RoundFn",
    "Row",
    "Stat",
    "calibrate",
    "compare",
    "loop",
    "measure",
    "not_measured",
    "stat",
]

#: Runs ``n`` iterations of one variant and returns the elapsed nanoseconds.
RoundFn = Callable[[int], int]


@dataclass(frozen=True)
class Mode:
    """How hard to measure: rounds per comparison and the wall time one round aims at."""

    name: str
    rounds: int
    round_ns: int
    #: Fixed iterations per round instead of calibrating (smoke mode).
    fixed_iterations: int | None = None

    @property
    def smoke(self) -> bool:
        """Tiny iteration counts: proves the harness works, measures nothing."""
        return self.fixed_iterations is not None


FULL = Mode("full", rounds=21, round_ns=30_000_000)
QUICK = Mode("quick", rounds=9, round_ns=12_000_000)
SMOKE = Mode("smoke", rounds=2, round_ns=0, fixed_iterations=3)


@dataclass(frozen=True)
class Stat:
    """Median and interquartile range of a sample."""

    median: float
    p25: float
    p75: float


def stat(values: Sequence[float]) -> Stat:
    """Return the median and quartiles of ``values`` (one value: all three equal).

    Raises:
        ValueError: ``values`` is empty.
    """
    if not values:
        raise ValueError("no samples")
    if len(values) == 1:
        return Stat(values[0], values[0], values[0])
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return Stat(q2, q1, q3)


def loop(fn: Callable[[], object]) -> RoundFn:
    """Return a round function calling ``fn()`` ``n`` times."""

    def run(n: int) -> int:
        it = range(n)
        start = time.perf_counter_ns()
        for _ in it:
            fn()
        return time.perf_counter_ns() - start

    return run


def calibrate(variants: Mapping[str, RoundFn], mode: Mode) -> int:
    """Return iterations per round so that the slowest variant's round takes ``round_ns``."""
    if mode.fixed_iterations is not None:
        return mode.fixed_iterations
    n = 1
    while True:
        slowest = max(fn(n) for fn in variants.values())
        if slowest >= mode.round_ns // 8 or n >= 1 << 24:
            break
        n *= 4
    per_op = max(slowest / n, 1.0)
    return max(1, int(mode.round_ns / per_op))


def measure(
    variants: Mapping[str, RoundFn], mode: Mode, *, iterations: int | None = None
) -> dict[str, list[float]]:
    """Run every variant ``mode.rounds`` times, interleaved; return ns per op, per round.

    The order rotates every round. The garbage collector runs before each round and stays
    enabled during it (unlike :mod:`timeit`): allocation-heavy code pays for its collections in
    a server too, so hiding them would flatter the variant that allocates more.
    """
    names = list(variants)
    n = iterations if iterations is not None else calibrate(variants, mode)
    for fn in variants.values():  # warm-up: caches, lazy imports, specialisation
        fn(max(1, n // 10))
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(mode.rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            gc.collect()
            samples[name].append(variants[name](n) / n)
    return samples


@dataclass
class Row:
    """One line of the table. See the module docstring for the dictionary form."""

    name: str
    what: str = ""
    unit: str = "us"
    subject: Stat | None = None
    baseline: str = ""
    baseline_stat: Stat | None = None
    ratio: Stat | None = None
    target: float | None = None
    direction: str = "<="
    status: str = ""
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.status:
            self.status = self.judge()

    def judge(self) -> str:
        """Return PASS/MISS from the ratio and target, or "info" without a target."""
        if self.ratio is None or self.target is None:
            return "info"
        ok = (
            self.ratio.median <= self.target
            if self.direction == "<="
            else self.ratio.median >= self.target
        )
        return "PASS" if ok else "MISS"

    @property
    def measured(self) -> bool:
        """False for TODO rows ("not measured: ...")."""
        return not self.status.startswith("not measured")

    def to_dict(self) -> dict[str, Any]:
        """Return the plain-dictionary form."""
        out: dict[str, Any] = {
            "name": self.name,
            "what": self.what,
            "unit": self.unit,
            "baseline": self.baseline,
            "target": self.target,
            "direction": self.direction,
            "status": self.status,
            "note": self.note,
        }
        for prefix, value in (
            ("subject", self.subject),
            ("baseline", self.baseline_stat),
            ("ratio", self.ratio),
        ):
            if value is not None:
                key = prefix if prefix == "ratio" else f"{prefix}_median"
                out[key] = value.median
                out[f"{prefix}_p25"] = value.p25
                out[f"{prefix}_p75"] = value.p75
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Row:
        """Build a row from the dictionary form, tolerating missing keys."""

        def triple(median_key: str, prefix: str) -> Stat | None:
            median = data.get(median_key)
            if not isinstance(median, int | float):
                return None
            return Stat(
                float(median),
                float(data.get(f"{prefix}_p25", median)),
                float(data.get(f"{prefix}_p75", median)),
            )

        target = data.get("target")
        return cls(
            name=str(data.get("name", "unnamed")),
            what=str(data.get("what", data.get("name", ""))),
            unit=str(data.get("unit", "us")),
            subject=triple("subject_median", "subject"),
            baseline=str(data.get("baseline", "")),
            baseline_stat=triple("baseline_median", "baseline"),
            ratio=triple("ratio", "ratio"),
            target=float(target) if isinstance(target, int | float) else None,
            direction=str(data.get("direction", "<=")),
            status=str(data.get("status", "")),
            note=str(data.get("note", "")),
        )


def not_measured(name: str, what: str, why: str, *, target: float | None = None) -> Row:
    """Return a TODO row: printed as "not measured: <why>"."""
    return Row(name=name, what=what, target=target, status=f"not measured: {why}")


def compare(
    name: str,
    what: str,
    *,
    subject: RoundFn,
    baseline: RoundFn,
    baseline_what: str,
    mode: Mode,
    target: float | None,
    bare: RoundFn | None = None,
    others: Mapping[str, RoundFn] | None = None,
    note: str = "",
    iterations: int | None = None,
) -> Row:
    """Measure ``subject`` against ``baseline`` in interleaved rounds and return the row.

    With ``bare``, both are first reduced to their overhead over ``bare`` (per round), and the
    ratio is overhead over overhead. ``others`` are extra variants interleaved in the same rounds
    (their medians go to ``extra``).
    """
    variants: dict[str, RoundFn] = {"subject": subject, "baseline": baseline}
    if bare is not None:
        variants["bare"] = bare
    variants.update(others or {})
    samples = measure(variants, mode, iterations=iterations)
    s, b = samples["subject"], samples["baseline"]
    if bare is not None:
        z = samples["bare"]
        s = [x - zero for x, zero in zip(s, z, strict=True)]
        b = [x - zero for x, zero in zip(b, z, strict=True)]
    ratios = [x / y if y > 0 else float("inf") for x, y in zip(s, b, strict=True)]
    extra: dict[str, Any] = {}
    if bare is not None:
        extra["bare_median_us"] = stat(samples["bare"]).median / 1000
    for other in others or {}:
        extra[f"{other}_median_us"] = stat(samples[other]).median / 1000
    return Row(
        name=name,
        what=what,
        unit="us",
        subject=_scaled(stat(s), 1 / 1000),
        baseline=baseline_what,
        baseline_stat=_scaled(stat(b), 1 / 1000),
        ratio=stat(ratios),
        target=target,
        note=note,
        extra=extra,
    )


def _scaled(value: Stat, factor: float) -> Stat:
    return Stat(value.median * factor, value.p25 * factor, value.p75 * factor)
