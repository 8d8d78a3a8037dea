"""``authcore keys create|list|revoke|set-limit``: root keys."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Final

from authcore.cli.context import current_time, opened_store
from authcore.cli.errors import CommandError
from authcore.cli.options import (
    add_page_options,
    checked_grants,
    identifier,
    rate_limit,
    rate_limit_or_none,
    whole_number,
)
from authcore.cli.output import emit, emit_revoked
from authcore.cli.parser import Commands
from authcore.cursors import key_cursor, parse_key_cursor
from authcore.names import printable
from authcore.records import OPERATOR_ACTOR, RootKeyRecord
from authcore.store import Store

#: Longest ``--expires-in``: a hundred years (of 365 days), in seconds.
MAX_EXPIRES_IN: Final = 100 * 365 * 86_400


def register(commands: Commands) -> None:
    keys = commands.group("keys", "create, list and revoke root keys")
    _add_create(keys)
    _add_list(keys)
    _add_revoke(keys)
    _add_set_limit(keys)


def _add_create(keys: Commands) -> None:
    sub = keys.add("create", cmd_keys_create, "create a root key (printed once)")
    sub.add_argument("--workspace", required=True, metavar="WORKSPACE_ID", type=identifier)
    sub.add_argument("--permission", action="append", metavar="P", required=True)
    sub.add_argument("--name", type=identifier)
    sub.add_argument(
        "--expires-in",
        type=whole_number(1, MAX_EXPIRES_IN),
        metavar="SECONDS",
        help=f"the key stops working this many seconds from now (1..{MAX_EXPIRES_IN:,})",
    )
    sub.add_argument(
        "--rate-limit",
        type=rate_limit,
        metavar="N/SECONDS",
        help="the key's own limit, on top of its workspace's (a request must pass both)",
    )
    sub.add_argument(
        "--identity",
        metavar="EXTERNAL_ID",
        type=identifier,
        help="the customer (identity) the key belongs to, by your id for it; made on first use",
    )


def cmd_keys_create(args: argparse.Namespace) -> int:
    grants = checked_grants(args.permission)
    now = current_time()
    expires_at = None if args.expires_in is None else int(now) + args.expires_in
    with opened_store(args) as store:
        created = store.create_root_key(
            args.workspace,
            permissions=grants,
            name=args.name,
            expires_at=expires_at,
            now=now,
            actor=OPERATOR_ACTOR,
            rate_limit=args.rate_limit,
            identity=args.identity,
        )
    if created is None:
        raise CommandError(f"workspace {args.workspace!r} not found")
    key = created.key.reveal()
    document = {"key_id": created.record.id, "key": key}
    lines = [f"key_id: {created.record.id}", f"key:    {key}"]
    if created.record.identity_id is not None:
        # Only when asked for: without --identity the document stays {"key_id", "key"}.
        document["identity_id"] = created.record.identity_id
        lines.append(f"identity: {printable(args.identity)} ({created.record.identity_id})")
    emit(args, document, [*lines, "The key is shown once; only its digest is stored."])
    return 0


def _add_list(keys: Commands) -> None:
    sub = keys.add("list", cmd_keys_list, "list a workspace's keys (never the secrets)")
    sub.add_argument("--workspace", required=True, metavar="WORKSPACE_ID", type=identifier)
    sub.add_argument(
        "--identity", metavar="EXTERNAL_ID", type=identifier, help="only this identity's keys"
    )
    add_page_options(sub, parse_key_cursor)


def cmd_keys_list(args: argparse.Namespace) -> int:
    with opened_store(args) as store:
        if store.find_workspace(args.workspace) is None:
            raise CommandError(f"workspace {args.workspace!r} not found")
        identity_id = None
        if args.identity is not None:
            identity = store.get_identity(args.workspace, args.identity)
            if identity is None:
                raise CommandError(f"identity {args.identity!r} not found in {args.workspace}")
            identity_id = identity.id
        page = store.list_root_keys_page(
            args.workspace, identity_id=identity_id, limit=args.limit, after=args.cursor
        )
        records = page.keys
        used = store.last_used(args.workspace)
        owners = _external_ids(store, records)
    keys = [
        {
            **record.to_dict(),
            "identity_external_id": owners.get(record.identity_id or ""),
            "last_used_at": used.get(record.id),
        }
        for record in records
    ]
    # A name stored before names were checked could still hold a control or bidi character:
    # the terminal gets it escaped (JSON escapes it by itself).
    lines = [
        f"{k['key_id']}  {k['start']}...  {printable(k['name'] or '-')}  "
        f"{','.join(k['permissions']) or '-'}  {'revoked' if k['revoked_at'] else 'active'}  "
        f"limit {k['rate_limit'] or '-'}  identity {printable(k['identity_external_id'] or '-')}"
        f"  last used {_when(k['last_used_at'])}"
        for k in keys
    ]
    token = None if page.next_cursor is None else key_cursor(page.next_cursor)
    lines = lines or ["(no keys)"]
    if token is not None:
        lines.append(f"next page: --cursor {token}")
    emit(args, {"keys": keys, "next_cursor": token}, lines)
    return 0


def _external_ids(store: Store, records: Sequence[RootKeyRecord]) -> dict[str, str]:
    """The external id of each identity that owns one of ``records``, by our id: one lookup
    per identity, not per key."""
    owners: dict[str, str] = {}
    for identity_id in dict.fromkeys(r.identity_id for r in records if r.identity_id):
        identity = store.find_identity(identity_id)
        if identity is not None:
            owners[identity_id] = identity.external_id
    return owners


def _when(seconds: int | None) -> str:
    return "never" if seconds is None else time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(seconds))


def _add_revoke(keys: Commands) -> None:
    sub = keys.add("revoke", cmd_keys_revoke, "revoke a root key")
    sub.add_argument("key_id", type=identifier)


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    with opened_store(args) as store:
        record = store.revoke_root_key(args.key_id, now=current_time(), actor=OPERATOR_ACTOR)
    if record is None:
        raise CommandError(f"key {args.key_id!r} not found")
    emit_revoked(args, {"key_id": record.id}, f"revoked {record.id}")
    return 0


def _add_set_limit(keys: Commands) -> None:
    sub = keys.add("set-limit", cmd_keys_set_limit, "set or clear (none) a key's own rate limit")
    sub.add_argument("key_id", type=identifier)
    sub.add_argument("rate_limit", type=rate_limit_or_none, metavar="N/SECONDS|none")


def cmd_keys_set_limit(args: argparse.Namespace) -> int:
    with opened_store(args) as store:
        record = store.set_key_rate_limit(
            args.key_id, args.rate_limit, now=current_time(), actor=OPERATOR_ACTOR
        )
    if record is None:
        raise CommandError(f"key {args.key_id!r} not found")
    shown = None if record.rate_limit is None else str(record.rate_limit)
    emit(
        args,
        {"key_id": record.id, "rate_limit": shown},
        [f"{record.id}: limit {shown or '- (only its workspace limit applies)'}"],
    )
    return 0
