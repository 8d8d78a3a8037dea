"""``authcore usage`` and ``authcore prune-usage``: authentication outcomes, counted per bucket."""

from __future__ import annotations

import argparse
import time
from typing import Final

from authcore.cli.context import current_time, opened_store
from authcore.cli.errors import CommandError, UsageError
from authcore.cli.options import identifier, positive_int
from authcore.cli.output import emit
from authcore.cli.parser import Commands
from authcore.errors import ClientError
from authcore.usage import summarize

#: The usage table's columns: each outcome falls in one (refusals by their HTTP meaning).
_USAGE_COLUMNS: Final = ("allowed", "refused", "rate_limited", "unavailable")


def register(commands: Commands) -> None:
    _add_usage(commands)
    _add_prune_usage(commands)


def _add_usage(commands: Commands) -> None:
    sub = commands.add(
        "usage", cmd_usage, "authentication outcomes of a workspace or key, per bucket"
    )
    whose = sub.add_mutually_exclusive_group(required=True)
    whose.add_argument("--workspace", metavar="WORKSPACE_ID", type=identifier)
    whose.add_argument(
        "--unknown",
        action="store_true",
        help="credentials never verified (unknown, malformed, missing): in no workspace",
    )
    sub.add_argument("--key", metavar="KEY_ID", type=identifier, help="one key's usage only")
    sub.add_argument("--since", type=positive_int, metavar="EPOCH", help="default: a day ago")
    sub.add_argument("--until", type=positive_int, metavar="EPOCH", help="default: now")
    sub.add_argument("--granularity", choices=("minute", "hour", "day"), default="hour")


def cmd_usage(args: argparse.Namespace) -> int:
    now = current_time()
    until = now if args.until is None else args.until
    since = until - 86_400 if args.since is None else args.since
    if args.unknown and args.key is not None:
        raise UsageError("--unknown counts credentials that were never verified: no --key")
    workspace_id = "" if args.unknown else args.workspace
    with opened_store(args) as store:
        if not args.unknown and store.find_workspace(workspace_id) is None:
            raise CommandError(f"workspace {workspace_id!r} not found")
        if args.key is not None:
            key = store.get_root_key(args.key)
            if key is None or key.workspace_id != workspace_id:
                raise CommandError(f"key {args.key!r} not found in {workspace_id}")
        try:
            counts = store.usage(
                workspace_id,
                credential_id=args.key,
                since=since,
                until=until,
                granularity=args.granularity,
            )
        except ClientError as exc:
            raise UsageError(exc.detail or exc.message) from None
    summary = summarize(counts)
    document = {
        "workspace_id": workspace_id or None,
        "key_id": args.key,
        "granularity": args.granularity,
        "since": int(since),
        "until": int(until),
        **summary,
    }
    header = f"{'bucket (UTC)':<17}  " + "  ".join(f"{c:>12}" for c in _USAGE_COLUMNS)
    lines = [header]
    rows = [(bucket["start"], bucket["outcomes"]) for bucket in summary["buckets"]]
    for start, outcomes in [*rows, (-1, summary["totals"])]:
        columns = dict.fromkeys(_USAGE_COLUMNS, 0)
        for outcome, value in outcomes.items():
            columns[_usage_column(outcome)] += value
        label = "total" if start < 0 else time.strftime("%Y-%m-%dT%H:%M", time.gmtime(start))
        lines.append(f"{label:<17}  " + "  ".join(f"{columns[c]:>12}" for c in _USAGE_COLUMNS))
    emit(args, document, lines)
    return 0


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
    sub.add_argument("--retention-days", type=positive_int, default=30, metavar="DAYS")
    sub.add_argument("--rollup-after-hours", type=positive_int, default=24, metavar="HOURS")


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
