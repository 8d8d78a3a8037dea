"""``authcore audit list``: audit events."""

from __future__ import annotations

import argparse
import time

from authcore.cli.context import opened_store
from authcore.cli.errors import CommandError
from authcore.cli.options import add_page_options, identifier
from authcore.cli.output import emit
from authcore.cli.parser import Commands
from authcore.cursors import audit_cursor, parse_audit_cursor


def register(commands: Commands) -> None:
    audit = commands.group("audit", "audit events")
    sub = audit.add("list", cmd_audit_list, "list a workspace's audit events, newest first")
    sub.add_argument("--workspace", required=True, metavar="WORKSPACE_ID", type=identifier)
    add_page_options(sub, parse_audit_cursor)


def cmd_audit_list(args: argparse.Namespace) -> int:
    with opened_store(args) as store:
        if store.find_workspace(args.workspace) is None:
            raise CommandError(f"workspace {args.workspace!r} not found")
        page = store.list_audit(args.workspace, limit=args.limit, before=args.cursor)
    events = [event.to_dict() for event in page.events]
    lines = [
        f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(e['time']))}  {e['action']:<24} "
        f"{e['actor']['type']}:{e['actor']['id']}  "
        + " ".join(f"{t['type']}:{t['id']}" for t in e["targets"])
        for e in events
    ]
    token = None if page.next_cursor is None else audit_cursor(page.next_cursor)
    lines = lines or ["(no events)"]
    if token is not None:
        lines.append(f"next page: --cursor {token}")
    emit(args, {"events": events, "next_cursor": token}, lines)
    return 0
