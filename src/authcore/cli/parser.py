"""The argument parser, and :class:`Commands`: where a command group adds its commands."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from authcore.cli.errors import UsageError

#: What a command runs: the parsed arguments in, the exit code out.
Handler = Callable[[argparse.Namespace], int]

_Subcommands = argparse._SubParsersAction  # argparse's own (private) type for add_subparsers()


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and an exception instead of a process exit.

    Options are never abbreviated: with prefix matching, ``serve --redis URL`` was read as
    ``--redis-down URL``, and an option added later would silently change what an abbreviation
    typed today means.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        # "authcore: error: " is printed before it: name the command below the program only.
        command = self.prog.partition(" ")[2]
        raise UsageError(f"{command}: {message}" if command else message)


class Commands:
    """The commands of one level: the top level (``authcore init``) or a group (``authcore keys``).

    Every command gets ``--json``, the ``common`` options (the global ones, accepted after the
    command as well as before it), its help line as its description, and runs ``handler``.
    """

    def __init__(self, subcommands: _Subcommands[Parser], common: Sequence[Parser]) -> None:
        self._subcommands = subcommands
        self._common = list(common)

    @classmethod
    def of(cls, parser: Parser, common: Sequence[Parser] = ()) -> Commands:
        """The top level of ``parser``'s commands (``parser`` takes one); each command also
        takes the options of the parsers in ``common``."""
        json_flag = Parser(add_help=False)
        json_flag.add_argument("--json", action="store_true", help="print one JSON object")
        root = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
        return cls(root, [json_flag, *common])

    def add(self, name: str, handler: Handler, help_text: str) -> Parser:
        """Add the command ``name``; return its parser, for its arguments."""
        sub = self._subcommands.add_parser(
            name, help=help_text, description=help_text, parents=self._common
        )
        sub.set_defaults(handler=handler)
        return sub

    def group(self, name: str, help_text: str) -> Commands:
        """Add the group ``name`` (``authcore NAME SUBCOMMAND``); return its commands."""
        sub = self._subcommands.add_parser(name, help=help_text, description=help_text)
        subcommands = sub.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
        return Commands(subcommands, self._common)
