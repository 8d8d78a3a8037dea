"""``authcore jwt mint|check-rotation``: mint JWTs and check signing-secret rotation."""

from __future__ import annotations

import argparse

from authcore.cli.context import current_time, load_config
from authcore.cli.errors import UsageError
from authcore.cli.options import checked_grants, epoch_seconds, identifier, whole_number
from authcore.cli.output import emit
from authcore.cli.parser import Commands
from authcore.keyring import check_rotation


def register(commands: Commands) -> None:
    jwt = commands.group("jwt", "mint JWTs and check signing-secret rotation")
    _add_mint(jwt)
    _add_check_rotation(jwt)


def _add_mint(jwt: Commands) -> None:
    sub = jwt.add("mint", cmd_jwt_mint, "print a JWT signed with the active secret")
    sub.add_argument("--workspace", required=True, metavar="WORKSPACE_ID", type=identifier)
    sub.add_argument("--subject", required=True, metavar="SUB", type=identifier)
    sub.add_argument("--permission", action="append", metavar="P", required=True)
    sub.add_argument(
        "--ttl",
        type=whole_number(1, 86_400),
        metavar="SECONDS",
        help="at most jwt.max_lifetime (default: that)",
    )


def cmd_jwt_mint(args: argparse.Namespace) -> int:
    grants = checked_grants(args.permission)
    config = load_config(args)
    jwt = config.jwt
    keyring = config.signing_keyring()
    now = int(current_time())
    ttl = jwt.settings.max_lifetime if args.ttl is None else args.ttl
    if ttl > jwt.settings.max_lifetime:
        raise UsageError(f"--ttl: at most jwt.max_lifetime ({jwt.settings.max_lifetime} s)")
    token = keyring.mint(
        subject=args.subject, workspace_id=args.workspace, permissions=grants, now=now, ttl=ttl
    ).reveal()
    emit(
        args,
        {"token": token, "kid": keyring.signing_kid, "expires_at": now + ttl},
        [token],
    )
    return 0


def _add_check_rotation(jwt: Commands) -> None:
    sub = jwt.add("check-rotation", cmd_jwt_check_rotation, "check a rotation step")
    sub.add_argument(
        "--signing-kid", metavar="KID", help="the kid the signer uses (default: config)"
    )
    sub.add_argument(
        "--switched-at",
        type=epoch_seconds,
        metavar="EPOCH",
        help="when the signer switched to the signing kid (seconds since the epoch)",
    )
    sub.add_argument("--remove", action="append", metavar="KID", help="a kid to remove")


def cmd_jwt_check_rotation(args: argparse.Namespace) -> int:
    jwt = load_config(args).jwt
    signing_kid = args.signing_kid or jwt.signing_kid
    if signing_kid is None:
        if len(jwt.kids) != 1:
            raise UsageError("jwt check-rotation: give --signing-kid or set jwt.signing_kid")
        signing_kid = jwt.kids[0]
    result = check_rotation(
        jwt.kids,
        signing_kid,
        switched_at=args.switched_at,
        removing=args.remove or (),
        now=int(current_time()),
        settings=jwt.settings,
    )
    lines = [
        f"API verifies with: {', '.join(jwt.kids)} (in this order)",
        f"signer uses:       {signing_kid}",
    ]
    if args.remove:
        lines.append(f"removing:          {', '.join(args.remove)}")
    if result.safe:
        lines.append("SAFE: no valid token is rejected by this step")
    else:
        lines.append("UNSAFE:")
        lines.extend(f"  - {problem}" for problem in result.problems)
    emit(
        args,
        {
            "safe": result.safe,
            "problems": list(result.problems),
            "api_kids": list(jwt.kids),
            "signing_kid": signing_kid,
        },
        lines,
    )
    return 0 if result.safe else 1
