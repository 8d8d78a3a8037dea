"""The benchmark command: run every bench, print the table, rewrite ``docs/benchmarks.md``.

Adding a row: write ``run(mode) -> list[Row]`` in a ``bench_*.py`` module and list it in
:data:`BENCHES`, or add ``(name, measure)`` to the ``ROWS`` table of a module that has one (its
``run(mode, only)`` measures only what ``--only`` selects). A bench that cannot run yet returns
:func:`~benchmarks.harness.not_measured` rows. ``bench_limiters.py`` follows another
convention, ``run(quick: bool) -> list[dict]``, adapted by :func:`_limiter_rows`.
"""

from __future__ import annotations

import argparse
import importlib
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.harness import FULL, QUICK, SMOKE, Mode, Row, not_measured
from benchmarks.report import format_table, write_markdown

__all__ = ["BENCHES", "main", "run_benches"]

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


Runner = Callable[[Mode, Sequence[str]], list[Row]]


def _module_rows(module: str) -> Runner:
    def run(mode: Mode, only: Sequence[str]) -> list[Row]:
        bench = importlib.import_module(f"benchmarks.{module}")
        # A module with a ROWS table measures only the selected rows.
        rows: list[Row] = bench.run(mode, only) if hasattr(bench, "ROWS") else bench.run(mode)
        return rows

    return run


def _limiter_rows(mode: Mode, only: Sequence[str]) -> list[Row]:
    try:
        bench = importlib.import_module("benchmarks.bench_limiters")
    except ImportError:
        return [
            not_measured(
                "limiters", "memory and Redis limiter decisions", "bench_limiters.py not written"
            )
        ]
    # bench_limiters has no smoke mode: quick is the smallest it offers.
    dicts: list[dict[str, Any]] = bench.run(quick=mode is not FULL)
    return [Row.from_dict(d) for d in dicts]


#: (group name, row-name prefixes, runner). ``--only`` matches group names and row names.
BENCHES: list[tuple[str, tuple[str, ...], Runner]] = [
    ("core", ("core.", "jwt.", "perm."), _module_rows("bench_core")),
    ("adapters", ("asgi.", "usage.", "wsgi.", "flask."), _module_rows("bench_adapters")),
    ("alloc", ("alloc.",), _module_rows("bench_alloc")),
    ("storage", ("sqlite.",), _module_rows("bench_storage")),
    ("limiters", ("limiter", "redis"), _limiter_rows),
    ("redis", ("redis.",), _module_rows("bench_redis")),
    ("e2e", ("e2e.",), _module_rows("bench_e2e")),
    ("serve", ("serve.",), _module_rows("bench_serve")),
    ("scale", ("scale.",), _module_rows("bench_scale")),
    ("flood", ("flood.",), _module_rows("bench_flood")),
]


def _selected(group: str, prefixes: Sequence[str], only: Sequence[str]) -> bool:
    return not only or any(
        o.startswith(group) or any(o.startswith(p) or p.startswith(o) for p in prefixes)
        for o in only
    )


def run_benches(mode: Mode, only: Sequence[str] = ()) -> list[Row]:
    """Run the selected benches and return their rows (a failing bench becomes a row).

    ``only`` selects groups whose name, or rows whose name, starts with one of its entries.
    """
    rows: list[Row] = []
    for group, prefixes, runner in BENCHES:
        if not _selected(group, prefixes, only):
            continue
        try:
            produced = runner(mode, only)
        except Exception as exc:
            traceback.print_exc()
            produced = [not_measured(group, group, f"bench failed: {type(exc).__name__}: {exc}")]
        for row in produced:
            if only and not any(row.name.startswith(o) or o == group for o in only):
                continue
            rows.append(row)
            print(f"  {row.name}: {row.status}", flush=True)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Run the suite; return the exit status (0 even when a target is missed)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    size.add_argument(
        "--smoke", action="store_true", help="tiny iteration counts: proves the harness runs"
    )
    parser.add_argument(
        "--only", action="append", default=[], metavar="NAME", help="group or row name prefix"
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help=f"markdown file to rewrite (default: {DOCS.relative_to(DOCS.parent.parent)}, "
        "written only by complete runs, i.e. without --only or --smoke)",
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    mode = SMOKE if args.smoke else QUICK if args.quick else FULL
    started = time.monotonic()
    print(f"authcore benchmarks ({mode.name} mode)", flush=True)
    rows = run_benches(mode, args.only)
    elapsed = time.monotonic() - started
    print()
    print(format_table(rows))
    print(f"\n{len(rows)} rows in {elapsed:.0f} s")
    output: Path | None = args.output
    if output is None and not args.only and mode is not SMOKE:
        output = DOCS
    if output is None and not args.no_write:
        print(f"partial run: {DOCS.name} left as it is (pass --output to write a file)")
    elif output is not None and not args.no_write:
        command = "python -m benchmarks" + (f" --{mode.name}" if mode is not FULL else "")
        command += "".join(f" --only {o}" for o in args.only)
        write_markdown(output, rows, mode=mode.name, command=command, seconds=elapsed)
        print(f"wrote {output}")
    return 0
