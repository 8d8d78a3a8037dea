"""The argument parser, and :class:`Commands`: where a command group adds its commands."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import NoReturn

from authcore.cli.errors import UsageError

#: What a command runs: the parsed arguments in, the exit code out.
Handler = Callable[[argparse.Namespace], int]

_Subcommands = argparse._SubParsersAction  # argparse's own (private) type for add_subparsers()


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and an exception instead of a process exit."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


class Commands:
    """The commands of one level: the top level (``authcore init``) or a group (``authcore keys``).

    Every command gets ``--json`` and its help line as its description, and runs ``handler``.
    """

    def __init__(self, subcommands: _Subcommands[Parser], json_flag: Parser) -> None:
        self._subcommands = subcommands
        self._json_flag = json_flag

    @classmethod
    def of(cls, parser: Parser) -> Commands:
        """The top level of ``parser``'s commands (``parser`` takes one)."""
        json_flag = Parser(add_help=False)
        json_flag.add_argument("--json", action="store_true", help="print one JSON object")
        root = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
        return cls(root, json_flag)

    def add(self, name: str, handler: Handler, help_text: str) -> Parser:
        """Add the command ``name``; return its parser, for its arguments."""
        sub = self._subcommands.add_parser(
            name, help=help_text, description=help_text, parents=[self._json_flag]
        )
        sub.set_defaults(handler=handler)
        return sub

    def group(self, name: str, help_text: str) -> Commands:
        """Add the group ``name`` (``authcore NAME SUBCOMMAND``); return its commands."""
        sub = self._subcommands.add_parser(name, help=help_text, description=help_text)
        subcommands = sub.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
        return Commands(subcommands, self._json_flag)
