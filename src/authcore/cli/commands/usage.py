"""``authcore usage`` and ``authcore prune-usage``: authentication outcomes, counted per bucket."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any, Final

import attrs

from authcore.cli.context import current_time, opened_store
from authcore.cli.errors import CommandError, UsageError
from authcore.cli.options import epoch_seconds, identifier, whole_number
from authcore.cli.output import emit
from authcore.cli.parser import Commands
from authcore.errors import ClientError
from authcore.records import UsageCount
from authcore.store import Store
from authcore.usage import read_usage, summarize

#: The usage table's columns: each outcome falls in one (refusals by their HTTP meaning).
_USAGE_COLUMNS: Final = ("allowed", "refused", "rate_limited", "unavailable")
#: Most keys ``usage --identity`` reads (one read each): past it, ask per key with --key.
MAX_IDENTITY_KEYS: Final = 1000


def register(commands: Commands) -> None:
    _add_usage(commands)
    _add_prune_usage(commands)


def _add_usage(commands: Commands) -> None:
    sub = commands.add(
        "usage", cmd_usage, "authentication outcomes of a workspace, identity or key, per bucket"
    )
    whose = sub.add_mutually_exclusive_group(required=True)
    whose.add_argument("--workspace", metavar="WORKSPACE_ID", type=identifier)
    whose.add_argument(
        "--unknown",
        action="store_true",
        help="credentials never verified (unknown, malformed, missing): in no workspace",
    )
    which = sub.add_mutually_exclusive_group()
    which.add_argument("--key", metavar="KEY_ID", type=identifier, help="one key's usage only")
    which.add_argument(
        "--identity",
        metavar="EXTERNAL_ID",
        type=identifier,
        help=f"one identity's usage: the sum over its keys (at most {MAX_IDENTITY_KEYS:,})",
    )
    sub.add_argument("--since", type=epoch_seconds, metavar="EPOCH", help="default: a day ago")
    sub.add_argument("--until", type=epoch_seconds, metavar="EPOCH", help="default: now")
    sub.add_argument("--granularity", choices=("minute", "hour", "day"), default="hour")


def cmd_usage(args: argparse.Namespace) -> int:
    now = current_time()
    until = now if args.until is None else args.until
    since = until - 86_400 if args.since is None else args.since
    if args.unknown and (args.key is not None or args.identity is not None):
        raise UsageError(
            "--unknown counts credentials that were never verified: no --key or --identity"
        )
    workspace_id = "" if args.unknown else args.workspace
    window = {"since": since, "until": until, "granularity": args.granularity}
    with opened_store(args) as store:
        if not args.unknown and store.find_workspace(workspace_id) is None:
            raise CommandError(f"workspace {workspace_id!r} not found")
        try:
            if args.identity is not None:
                identity_id, counts = _identity_usage(store, workspace_id, args.identity, window)
            else:
                identity_id = None
                _check_key(store, workspace_id, args.key)
                counts = store.usage(workspace_id, credential_id=args.key, **window)
        except ClientError as exc:
            raise UsageError(exc.detail or exc.message) from None
    document = {
        "workspace_id": workspace_id or None,
        "key_id": args.key,
        "identity_id": identity_id,
        "granularity": args.granularity,
        "since": int(since),
        "until": int(until),
        **summarize(counts),
    }
    emit(args, document, _table(document))
    return 0


def _check_key(store: Store, workspace_id: str, key_id: str | None) -> None:
    if key_id is None:
        return
    key = store.get_root_key(key_id)
    if key is None or key.workspace_id != workspace_id:
        raise CommandError(f"key {key_id!r} not found in {workspace_id}")


def _identity_usage(
    store: Store, workspace_id: str, external_id: str, window: dict[str, Any]
) -> tuple[str, list[UsageCount]]:
    """The identity's id and its usage: each of its keys' counts (revoked keys too: they were
    used in the window), summed per bucket and outcome.

    Raises:
        ClientError: a bad window (reversed, or too many buckets).
        CommandError: no such identity, or more keys than one command reads.
    """
    read_usage(workspace_id, **window)  # the window's checks, even for an identity with no keys
    identity = store.get_identity(workspace_id, external_id)
    if identity is None:
        raise CommandError(f"identity {external_id!r} not found in {workspace_id}")
    keys = store.list_root_keys(workspace_id, identity_id=identity.id)
    if len(keys) > MAX_IDENTITY_KEYS:
        raise CommandError(
            f"identity {external_id!r} has {len(keys):,} keys; usage --identity reads at most"
            f" {MAX_IDENTITY_KEYS:,}: ask per key with --key"
        )
    per_key = [store.usage(workspace_id, credential_id=key.id, **window) for key in keys]
    return identity.id, _summed(workspace_id, per_key)


def _summed(workspace_id: str, reads: Sequence[Sequence[UsageCount]]) -> list[UsageCount]:
    # summarize() expects one count per (bucket, outcome), oldest bucket first.
    totals: dict[tuple[int, str], UsageCount] = {}
    for count in (count for read in reads for count in read):
        seen = totals.get((count.bucket, count.outcome))
        if seen is None:
            totals[count.bucket, count.outcome] = count
        else:
            totals[count.bucket, count.outcome] = attrs.evolve(seen, count=seen.count + count.count)
    return [
        attrs.evolve(totals[slot], workspace_id=workspace_id, credential_id="")
        for slot in sorted(totals)
    ]


def _table(document: dict[str, Any]) -> list[str]:
    header = f"{'bucket (UTC)':<17}  " + "  ".join(f"{c:>12}" for c in _USAGE_COLUMNS)
    lines = [header]
    rows = [(bucket["start"], bucket["outcomes"]) for bucket in document["buckets"]]
    for start, outcomes in [*rows, (-1, document["totals"])]:
        columns = dict.fromkeys(_USAGE_COLUMNS, 0)
        for outcome, value in outcomes.items():
            columns[_usage_column(outcome)] += value
        label = "total" if start < 0 else time.strftime("%Y-%m-%dT%H:%M", time.gmtime(start))
        lines.append(f"{label:<17}  " + "  ".join(f"{columns[c]:>12}" for c in _USAGE_COLUMNS))
    return lines


def _usage_column(outcome: str) -> str:
    if outcome in ("allowed", "rate_limited"):
        return outcome
    return "unavailable" if outcome == "service_unavailable" else "refused"


def _add_prune_usage(commands: Commands) -> None:
    sub = commands.add(
        "prune-usage",
        cmd_usage_prune,
        "roll old minute counts up into hours and delete counts past the retention",
    )
    sub.add_argument(
        "--retention-days",
        type=whole_number(1, 366),
        default=30,
        metavar="DAYS",
        help="delete counts older than this, 1..366 (default 30)",
    )
    sub.add_argument(
        "--rollup-after-hours",
        type=whole_number(1, 366 * 24),
        default=24,
        metavar="HOURS",
        help="roll minute counts older than this into hours, 1..the retention (default 24)",
    )


def cmd_usage_prune(args: argparse.Namespace) -> int:
    with opened_store(args) as store:
        try:
            store.prune_usage(
                now=current_time(),
                rollup_after=args.rollup_after_hours * 3600,
                retention=args.retention_days * 86_400,
            )
        except ClientError as exc:
            raise UsageError(exc.detail or exc.message) from None
    emit(
        args,
        {"retention_days": args.retention_days, "rollup_after_hours": args.rollup_after_hours},
        [
            f"usage older than {args.retention_days} days deleted; minutes older than"
            f" {args.rollup_after_hours} hours rolled up into hours"
        ],
    )
    return 0
