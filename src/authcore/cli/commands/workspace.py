"""``authcore workspace create|list|disable|enable``."""

from __future__ import annotations

import argparse

from authcore.cli.context import current_time, opened_store
from authcore.cli.errors import CommandError
from authcore.cli.options import add_page_options, identifier, rate_limit
from authcore.cli.output import emit
from authcore.cli.parser import Commands
from authcore.cursors import parse_workspace_cursor, workspace_cursor
from authcore.errors import ConflictError
from authcore.names import printable
from authcore.plans import check_id
from authcore.records import OPERATOR_ACTOR, WorkspaceRecord


def register(commands: Commands) -> None:
    workspace = commands.group("workspace", "create, list, disable and enable workspaces")
    _add_create(workspace)
    _add_list(workspace)
    _add_disable(workspace)
    _add_enable(workspace)


def _add_create(workspace: Commands) -> None:
    sub = workspace.add("create", cmd_workspace_create, "create a workspace")
    sub.add_argument("--name", required=True, type=identifier)
    sub.add_argument("--org", metavar="ORG_ID", type=identifier, help="link an organization")
    sub.add_argument("--rate-limit", type=rate_limit, metavar="N/SECONDS")


def cmd_workspace_create(args: argparse.Namespace) -> int:
    with opened_store(args) as store:
        try:
            record = store.create_workspace(
                args.name,
                org_id=args.org,
                rate_limit=args.rate_limit,
                now=current_time(),
                actor=OPERATOR_ACTOR,
            )
        except ConflictError:
            # Only the org id is unique: an organization has one workspace, by design (the
            # dashboard maps a user's organization to exactly one workspace).
            linked = store.find_workspace_by_org(args.org)
            where = f" ({linked.id})" if linked is not None else ""
            raise CommandError(
                f"organization {args.org!r} already has a workspace{where}: an organization has"
                " one workspace; create this one without --org or with another org id"
            ) from None
    emit(args, {"workspace_id": record.id}, [record.id])
    return 0


def _add_list(workspace: Commands) -> None:
    sub = workspace.add("list", cmd_workspace_list, "list the workspaces by id, a page at a time")
    # A cursor names the workspace id to list after: one the core would refuse is a usage error.
    add_page_options(sub, lambda text: check_id(parse_workspace_cursor(text), "after"))


def cmd_workspace_list(args: argparse.Namespace) -> int:
    # Reads only: no audit event, as for every other list.
    with opened_store(args) as store:
        page = store.list_workspaces(limit=args.limit, after=args.cursor)
    lines = [_workspace_line(record) for record in page.workspaces] or ["(no workspaces)"]
    token = None if page.next_after is None else workspace_cursor(page.next_after)
    if token is not None:
        lines.append(f"next page: --cursor {token}")
    document = {
        "workspaces": [record.to_dict() for record in page.workspaces],
        "next_cursor": token,
    }
    emit(args, document, lines)
    return 0


def _workspace_line(record: WorkspaceRecord) -> str:
    # A name stored before names were checked could hold a control or bidi character: the
    # terminal gets it escaped (JSON escapes it by itself).
    state = "disabled" if record.disabled else "active"
    return (
        f"{printable(record.id)}  {printable(record.name)}  org {printable(record.org_id or '-')}"
        f"  {state}  limit {record.rate_limit or '-'}"
    )


def _add_disable(workspace: Commands) -> None:
    sub = workspace.add("disable", cmd_workspace_disable, "disable a workspace")
    sub.add_argument("workspace_id", type=identifier)


def cmd_workspace_disable(args: argparse.Namespace) -> int:
    with opened_store(args) as store:
        record = store.disable_workspace(
            args.workspace_id, now=current_time(), actor=OPERATOR_ACTOR
        )
    if record is None:
        raise CommandError(f"workspace {args.workspace_id!r} not found")
    emit(args, {"workspace_id": record.id, "disabled": True}, [f"disabled {record.id}"])
    return 0


def _add_enable(workspace: Commands) -> None:
    sub = workspace.add("enable", cmd_workspace_enable, "enable a disabled workspace")
    sub.add_argument("workspace_id", type=identifier)


def cmd_workspace_enable(args: argparse.Namespace) -> int:
    with opened_store(args) as store:
        record = store.enable_workspace(args.workspace_id, now=current_time(), actor=OPERATOR_ACTOR)
    if record is None:
        raise CommandError(f"workspace {args.workspace_id!r} not found")
    emit(args, {"workspace_id": record.id, "disabled": False}, [f"enabled {record.id}"])
    return 0
