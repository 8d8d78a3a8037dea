"""``authcore init``: create the database schema."""

from __future__ import annotations

import argparse

from authcore.backends import redact_database_url
from authcore.cli.context import opened_store
from authcore.cli.output import emit
from authcore.cli.parser import Commands


def register(commands: Commands) -> None:
    commands.add("init", cmd_init, "create the database schema (idempotent)")


def cmd_init(args: argparse.Namespace) -> int:
    with opened_store(args):
        pass
    shown = redact_database_url(args.db)
    emit(args, {"db": shown}, [f"initialized {shown}"])
    return 0
