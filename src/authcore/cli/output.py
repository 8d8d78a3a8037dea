"""Output: a command's result on stdout (one JSON object with ``--json``), notes on stderr."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Final

from authcore import backends

PROG: Final = "authcore"
#: Seconds a revoked credential may still be accepted by *other* running processes: the
#: verification cache's TTL of the servers (authcore.demo.runner builds them with it).
#: The process that revokes (through its CachedStore) stops accepting it at once.
OTHER_PROCESSES_MAY_ACCEPT_FOR: Final = backends.CACHE_TTL


def write(text: str) -> None:
    sys.stdout.write(text + "\n")


def note(text: str) -> None:
    sys.stderr.write(f"{PROG}: {text}\n")


def emit(args: argparse.Namespace, payload: Mapping[str, Any], lines: Sequence[str]) -> None:
    if args.json:
        write(json.dumps(payload, sort_keys=True))
    else:
        for line in lines:
            write(line)


def emit_revoked(args: argparse.Namespace, ids: Mapping[str, str], line: str) -> None:
    # This process holds no cache; running servers each hold one, so they may still accept
    # the credential until their cached copy expires (without a Redis invalidation channel).
    bound = OTHER_PROCESSES_MAY_ACCEPT_FOR
    emit(
        args,
        {**ids, "revoked": True, "other_processes_may_accept_for_seconds": bound},
        [
            line,
            f"Running servers may still accept it for up to {bound} s (their verification"
            " cache), unless they share a Redis invalidation channel.",
        ],
    )
