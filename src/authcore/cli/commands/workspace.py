"""``authcore workspace create|disable|enable``."""

from __future__ import annotations

import argparse

from authcore.cli.context import current_time, opened_store
from authcore.cli.errors import CommandError
from authcore.cli.options import identifier, rate_limit
from authcore.cli.output import emit
from authcore.cli.parser import Commands
from authcore.errors import ConflictError
from authcore.records import OPERATOR_ACTOR


def register(commands: Commands) -> None:
    workspace = commands.group("workspace", "create, disable and enable workspaces")
    _add_create(workspace)
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
