"""``authcore portal create-session|revoke-session``: customer-portal sessions."""

from __future__ import annotations

import argparse

from authcore.cli.context import current_time, opened_store
from authcore.cli.errors import CommandError
from authcore.cli.options import checked_grants, identifier, positive_int
from authcore.cli.output import emit, emit_revoked
from authcore.cli.parser import Commands
from authcore.records import OPERATOR_ACTOR


def register(commands: Commands) -> None:
    portal = commands.group("portal", "customer-portal sessions")
    _add_create_session(portal)
    _add_revoke_session(portal)


def _add_create_session(portal: Commands) -> None:
    sub = portal.add(
        "create-session",
        cmd_portal_create_session,
        "create a portal session; prints a one-time exchange code for the browser",
    )
    sub.add_argument("--workspace", required=True, metavar="WORKSPACE_ID", type=identifier)
    sub.add_argument("--end-user", required=True, metavar="ID", type=identifier)
    sub.add_argument("--permission", action="append", metavar="P", required=True)
    sub.add_argument("--ttl", type=positive_int, default=3600, metavar="SECONDS")


def cmd_portal_create_session(args: argparse.Namespace) -> int:
    grants = checked_grants(args.permission)
    with opened_store(args) as store:
        created = store.create_portal_exchange(
            args.workspace,
            args.end_user,
            permissions=grants,
            ttl=args.ttl,
            now=current_time(),
            actor=OPERATOR_ACTOR,
        )
    if created is None:
        raise CommandError(f"workspace {args.workspace!r} not found")
    code = created.code.reveal()
    emit(
        args,
        {
            "session_id": created.record.id,
            "code": code,
            "code_expires_at": created.code_expires_at,
            "expires_at": created.record.expires_at,
        },
        [
            f"session_id: {created.record.id}",
            f"code:       {code}",
            "The code works once, within 60 s: the end user's browser posts it to"
            " /portal/exchange (in the body) for the session cookie.",
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
