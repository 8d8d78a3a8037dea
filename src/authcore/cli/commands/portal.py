"""``authcore portal create-session|revoke-session``: customer-portal sessions."""

from __future__ import annotations

import argparse
from typing import Final

from authcore.cli.context import current_time, opened_store
from authcore.cli.errors import CommandError
from authcore.cli.options import base_url, checked_grants, identifier, rate_limit, whole_number
from authcore.cli.output import emit, emit_revoked
from authcore.cli.parser import Commands
from authcore.names import printable
from authcore.records import MAX_PORTAL_TTL, OPERATOR_ACTOR, PORTAL_EXCHANGE_TTL

#: Where ``authcore serve`` listens unless told otherwise (its --host and --port defaults).
DEFAULT_BASE_URL: Final = "http://127.0.0.1:8000"


def register(commands: Commands) -> None:
    portal = commands.group("portal", "customer-portal sessions")
    _add_create_session(portal)
    _add_revoke_session(portal)


def _add_create_session(portal: Commands) -> None:
    sub = portal.add(
        "create-session",
        cmd_portal_create_session,
        "create a portal session for an identity; prints a one-time portal link",
    )
    sub.add_argument("--workspace", required=True, metavar="WORKSPACE_ID", type=identifier)
    sub.add_argument(
        "--identity",
        required=True,
        metavar="EXTERNAL_ID",
        type=identifier,
        help="the customer (identity) whose keys the portal manages; made on first use",
    )
    sub.add_argument(
        "--permission",
        action="append",
        metavar="P",
        required=True,
        help="what the session may do in the portal (keys.read, keys.create, ...); repeatable",
    )
    sub.add_argument(
        "--key-permission",
        action="append",
        metavar="P",
        help="the most a key made in the portal may hold; repeatable (default: nothing)",
    )
    sub.add_argument(
        "--ttl",
        type=whole_number(1, MAX_PORTAL_TTL),
        default=3600,
        metavar="SECONDS",
        help=f"the session's lifetime from now, 1..{MAX_PORTAL_TTL:,} (default 3600)",
    )
    sub.add_argument(
        "--rate-limit",
        type=rate_limit,
        metavar="N/SECONDS",
        help="the session's own limit, on top of its workspace's (a request must pass both);"
        " also the loosest a key made in the portal may get (default: none)",
    )
    sub.add_argument(
        "--base-url",
        type=base_url,
        default=DEFAULT_BASE_URL,
        metavar="URL",
        help=f"where the example API serves /portal/ (default {DEFAULT_BASE_URL})",
    )


def cmd_portal_create_session(args: argparse.Namespace) -> int:
    grants = checked_grants(args.permission)
    key_grants = checked_grants(args.key_permission, "--key-permission")
    with opened_store(args) as store:
        created = store.create_portal_exchange(
            args.workspace,
            args.identity,
            permissions=grants,
            key_permissions=key_grants,
            ttl=args.ttl,
            now=current_time(),
            actor=OPERATOR_ACTOR,
            rate_limit=args.rate_limit,
        )
    if created is None:
        raise CommandError(f"workspace {args.workspace!r} not found")
    code = created.code.reveal()
    # The code rides in the fragment: a browser never sends it to a server, so it stays out
    # of access logs and Referer headers; the portal page posts it to /portal/exchange.
    url = f"{args.base_url}/portal/#code={code}"
    record = created.record
    emit(
        args,
        {
            "session_id": record.id,
            "identity_id": record.identity_id,
            "code": code,
            "code_expires_at": created.code_expires_at,
            "expires_at": record.expires_at,
            "rate_limit": None if record.rate_limit is None else str(record.rate_limit),
            "portal_url": url,
        },
        [
            f"session_id:  {record.id}",
            f"identity:    {printable(args.identity)} ({record.identity_id})",
            f"code:        {code}",
            f"portal link: {url}",
            f"The link works once, within {PORTAL_EXCHANGE_TTL} s: open it in the end user's"
            " browser, whose portal page posts the code to /portal/exchange (in the body) for"
            " the session cookie.",
        ],
    )
    return 0


def _add_revoke_session(portal: Commands) -> None:
    sub = portal.add(
        "revoke-session", cmd_portal_revoke_session, "revoke (log out) a portal session"
    )
    sub.add_argument("session_id", metavar="SESSION_ID", type=identifier)


def cmd_portal_revoke_session(args: argparse.Namespace) -> int:
    with opened_store(args) as store:
        record = store.revoke_portal_session(
            args.session_id, now=current_time(), actor=OPERATOR_ACTOR
        )
    if record is None:
        raise CommandError(f"portal session {args.session_id!r} not found")
    emit_revoked(args, {"session_id": record.id}, f"revoked {record.id}")
    return 0
