"""Output: a command's result on stdout (one JSON object with ``--json``), notes on stderr."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Final

from authcore.backends.outbox import REVOCATION_BOUND

PROG: Final = "authcore"
#: Seconds a revoked credential may still be accepted by *other* running processes: every
#: server wired with ``connect()`` follows the database's invalidation outbox, with or without
#: Redis (which is faster, never slower). The process that revokes through its CachedStore
#: stops accepting it at once.
OTHER_PROCESSES_MAY_ACCEPT_FOR: Final = REVOCATION_BOUND


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


def revocation_bound(args: argparse.Namespace, what: str = "it") -> tuple[dict[str, Any], str]:
    """What the ``--json`` document and the text say about running servers, for a revocation
    committed by this command (through the database's outbox; with ``--redis``, Redis too,
    unless the publish failed: ``args.published`` is then False)."""
    bound = OTHER_PROCESSES_MAY_ACCEPT_FOR
    published = getattr(args, "redis", None) and getattr(args, "published", True)
    through = ["database", "redis"] if published else ["database"]
    document = {"other_processes_may_accept_for_seconds": bound, "invalidated_through": through}
    if len(through) == 2:
        line = (
            f"Running servers drop {what} at once (Redis) and may accept {what} for up to"
            f" {bound} s in any case: they follow this database's invalidations."
        )
    else:
        line = (
            f"Running servers may still accept {what} for up to {bound} s: they follow this"
            " database's invalidations."
        )
    return document, line


def emit_revoked(args: argparse.Namespace, ids: Mapping[str, str], line: str) -> None:
    # This process holds no cache; running servers each hold one, and each follows the
    # invalidations this revocation recorded in the database (and Redis, with --redis).
    document, note_line = revocation_bound(args)
    emit(args, {**ids, "revoked": True, **document}, [line, note_line])
