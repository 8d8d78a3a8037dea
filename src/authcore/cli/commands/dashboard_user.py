"""``authcore dashboard-user add``: dashboard users."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Final

from authcore.cli.context import opened_store
from authcore.cli.errors import UsageError
from authcore.cli.options import checked_grants, identifier
from authcore.cli.output import emit
from authcore.cli.parser import Commands
from authcore.passwords import hash_password

_MAX_PASSWORD_BYTES: Final = 1024
#: Shortest password, in characters (code points): NIST SP 800-63B (revision 4) asks for 15
#: where a password is the only factor, as a dashboard user's is.
MIN_PASSWORD_LENGTH: Final = 15


def register(commands: Commands) -> None:
    users = commands.group("dashboard-user", "dashboard users")
    sub = users.add("add", cmd_dashboard_user_add, "add a dashboard user")
    sub.add_argument("--user-id", required=True, type=identifier)
    sub.add_argument("--org", required=True, metavar="ORG_ID", type=identifier)
    sub.add_argument(
        "--password-stdin",
        action="store_true",
        required=True,
        help="read the password from the first line of standard input (required: a password is"
        f" never taken as an argument, where ps and shell history would show it);"
        f" {MIN_PASSWORD_LENGTH}-{_MAX_PASSWORD_BYTES} characters",
    )
    sub.add_argument("--permission", action="append", metavar="P", required=True)


def cmd_dashboard_user_add(args: argparse.Namespace) -> int:
    grants = checked_grants(args.permission)
    password = _read_password(sys.stdin)
    with opened_store(args) as store:
        user = store.add_dashboard_user(args.user_id, args.org, hash_password(password), grants)
    emit(args, {"user_id": user.user_id, "org_id": user.org_id}, [f"added {user.user_id}"])
    return 0


def _read_password(stream: Any) -> str:
    raw = stream.readline(_MAX_PASSWORD_BYTES + 2)
    password = raw.rstrip("\r\n") if isinstance(raw, str) else ""
    if not password:
        raise UsageError("--password-stdin: no password on standard input")
    if len(password) > _MAX_PASSWORD_BYTES:
        raise UsageError(f"--password-stdin: longer than {_MAX_PASSWORD_BYTES} characters")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UsageError(
            f"--password-stdin: the password must be at least {MIN_PASSWORD_LENGTH} characters"
            " (NIST SP 800-63B: a password that is the only factor)"
        )
    return password
