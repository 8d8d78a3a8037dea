"""``authcore identities list|show|create|set-limit|set-meta|delete``: the API's customers.

An identity is one customer of the protected API inside a workspace, named by the operator's
own id for it (its external id). Every change is audited by the store, with the operator as
the actor.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from authcore.cli.context import current_time, opened_store
from authcore.cli.errors import CommandError, UsageError
from authcore.cli.options import (
    add_page_options,
    identifier,
    json_object,
    json_object_or_none,
    rate_limit,
    rate_limit_or_none,
)
from authcore.cli.output import emit, revocation_bound
from authcore.cli.parser import Commands, Parser
from authcore.cursors import identity_cursor, parse_identity_cursor
from authcore.errors import ConflictError
from authcore.identities import check_external_id, is_live
from authcore.names import printable
from authcore.records import OPERATOR_ACTOR, IdentityRecord
from authcore.store import Store


def register(commands: Commands) -> None:
    identities = commands.group(
        "identities", "the API's customers: list, show, create, limit, describe and delete them"
    )
    _add_list(identities)
    _add_show(identities)
    _add_create(identities)
    _add_set_limit(identities)
    _add_set_meta(identities)
    _add_delete(identities)


def _add_workspace(sub: Parser) -> None:
    sub.add_argument("--workspace", required=True, metavar="WORKSPACE_ID", type=identifier)


def _add_external_id(sub: Parser) -> None:
    sub.add_argument(
        "external_id", metavar="EXTERNAL_ID", type=identifier, help="your id for the customer"
    )


def _check_workspace(store: Store, workspace_id: str) -> None:
    if store.find_workspace(workspace_id) is None:
        raise CommandError(f"workspace {workspace_id!r} not found")


def _not_found(args: argparse.Namespace) -> CommandError:
    return CommandError(f"identity {args.external_id!r} not found in {args.workspace}")


def _summary(record: IdentityRecord) -> list[str]:
    # External ids and metadata stored by an older version could hold a control or bidi
    # character: the terminal gets them escaped (JSON escapes them by itself).
    return [
        f"identity_id: {record.id}",
        f"external_id: {printable(record.external_id)}",
        f"rate_limit:  {record.rate_limit or '-'}",
        f"meta:        {printable(record.meta or '-')}",
        f"created_at:  {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(record.created_at))}",
    ]


# --- list ----------------------------------------------------------------------------------


def _add_list(identities: Commands) -> None:
    sub = identities.add(
        "list", cmd_identities_list, "list a workspace's identities, a page at a time"
    )
    _add_workspace(sub)
    add_page_options(sub, lambda text: check_external_id(parse_identity_cursor(text)))
    sub.add_argument(
        "--after",
        metavar="EXTERNAL_ID",
        type=identifier,
        help="start after this external id (as --cursor does, by name)",
    )


def cmd_identities_list(args: argparse.Namespace) -> int:
    with opened_store(args) as store:
        _check_workspace(store, args.workspace)
        if args.cursor is not None and args.after is not None:
            raise UsageError("give --cursor or --after, not both")
        after = args.after if args.cursor is None else args.cursor
        page = store.list_identities(args.workspace, limit=args.limit, after=after)
    lines = [
        f"{printable(r.external_id)}  {r.id}  limit {r.rate_limit or '-'}" for r in page.identities
    ] or ["(no identities)"]
    token = None if page.next_after is None else identity_cursor(page.next_after)
    if token is not None:
        lines.append(f"next page: --cursor {token}")
    emit(
        args,
        {
            "identities": [record.to_dict() for record in page.identities],
            "next_cursor": token,
            "next_after": page.next_after,
        },
        lines,
    )
    return 0


# --- show ----------------------------------------------------------------------------------


def _add_show(identities: Commands) -> None:
    sub = identities.add(
        "show", cmd_identities_show, "show an identity: its limit, metadata and live keys"
    )
    _add_workspace(sub)
    _add_external_id(sub)


def cmd_identities_show(args: argparse.Namespace) -> int:
    with opened_store(args) as store:
        _check_workspace(store, args.workspace)
        record = store.get_identity(args.workspace, args.external_id)
        if record is None:
            raise _not_found(args)
        keys = store.list_root_keys(args.workspace, identity_id=record.id)
    now = int(current_time())
    live = sum(1 for key in keys if is_live(key, now))
    emit(
        args,
        {**record.to_dict(), "live_keys": live},
        [*_summary(record), f"live keys:   {live}"],
    )
    return 0


# --- create --------------------------------------------------------------------------------


def _add_create(identities: Commands) -> None:
    sub = identities.add("create", cmd_identities_create, "create an identity")
    _add_workspace(sub)
    _add_external_id(sub)
    sub.add_argument(
        "--meta",
        type=json_object,
        metavar="JSON",
        help="a JSON object kept with it (at most 1,024 bytes as stored)",
    )
    sub.add_argument(
        "--rate-limit",
        type=rate_limit,
        metavar="N/SECONDS",
        help="one limit all its keys share, on top of each key's own and the workspace's",
    )


def cmd_identities_create(args: argparse.Namespace) -> int:
    with opened_store(args) as store:
        _check_workspace(store, args.workspace)
        try:
            record = store.create_identity(
                args.workspace,
                args.external_id,
                meta=args.meta,
                rate_limit=args.rate_limit,
                now=current_time(),
                actor=OPERATOR_ACTOR,
            )
        except ConflictError:
            raise CommandError(
                f"identity {args.external_id!r} already exists in {args.workspace}"
            ) from None
    if record is None:
        raise CommandError(f"workspace {args.workspace!r} not found")
    emit(args, record.to_dict(), _summary(record))
    return 0


# --- set-limit, set-meta -------------------------------------------------------------------


def _add_set_limit(identities: Commands) -> None:
    sub = identities.add(
        "set-limit", cmd_identities_set_limit, "set or clear (none) the limit its keys share"
    )
    _add_workspace(sub)
    _add_external_id(sub)
    sub.add_argument("rate_limit", type=rate_limit_or_none, metavar="N/SECONDS|none")


def cmd_identities_set_limit(args: argparse.Namespace) -> int:
    with opened_store(args) as store:
        _check_workspace(store, args.workspace)
        record = store.set_identity_rate_limit(
            args.workspace,
            args.external_id,
            args.rate_limit,
            now=current_time(),
            actor=OPERATOR_ACTOR,
        )
    if record is None:
        raise _not_found(args)
    shown = None if record.rate_limit is None else str(record.rate_limit)
    emit(
        args,
        _ids(record, rate_limit=shown),
        [
            f"{printable(record.external_id)}: limit"
            f" {shown or '- (its keys are held to their own and their workspace limits)'}"
        ],
    )
    return 0


def _add_set_meta(identities: Commands) -> None:
    sub = identities.add(
        "set-meta", cmd_identities_set_meta, "replace or clear (none) an identity's metadata"
    )
    _add_workspace(sub)
    _add_external_id(sub)
    sub.add_argument("meta", type=json_object_or_none, metavar="JSON|none")


def cmd_identities_set_meta(args: argparse.Namespace) -> int:
    with opened_store(args) as store:
        _check_workspace(store, args.workspace)
        record = store.set_identity_meta(
            args.workspace, args.external_id, args.meta, now=current_time(), actor=OPERATOR_ACTOR
        )
    if record is None:
        raise _not_found(args)
    meta = None if record.meta is None else json.loads(record.meta)
    emit(
        args,
        _ids(record, meta=meta),
        [f"{printable(record.external_id)}: meta {printable(record.meta or '-')}"],
    )
    return 0


def _ids(record: IdentityRecord, **fields: Any) -> dict[str, Any]:
    return {"identity_id": record.id, "external_id": record.external_id, **fields}


# --- delete --------------------------------------------------------------------------------


def _add_delete(identities: Commands) -> None:
    sub = identities.add(
        "delete",
        cmd_identities_delete,
        "delete an identity; refused while it has live keys, unless --revoke-keys",
    )
    _add_workspace(sub)
    _add_external_id(sub)
    sub.add_argument(
        "--revoke-keys",
        action="store_true",
        help="revoke its live keys and portal sessions in the same change (each audited)",
    )


def cmd_identities_delete(args: argparse.Namespace) -> int:
    with opened_store(args) as store:
        _check_workspace(store, args.workspace)
        try:
            record = store.delete_identity(
                args.workspace,
                args.external_id,
                revoke_keys=args.revoke_keys,
                now=current_time(),
                actor=OPERATOR_ACTOR,
            )
        except ConflictError:
            raise CommandError(
                f"identity {args.external_id!r} still has live keys: revoke them"
                " first, or pass --revoke-keys to revoke its keys and portal sessions with it"
            ) from None
    if record is None:
        raise _not_found(args)
    lines = [f"deleted {printable(record.external_id)} ({record.id})"]
    document = _ids(record, deleted=True, revoke_keys=args.revoke_keys)
    if args.revoke_keys:
        bound, line = revocation_bound(args, "them")
        document.update(bound)
        lines.append(f"Its keys and portal sessions are revoked. {line}")
    emit(args, document, lines)
    return 0
