"""The program: its top-level options, its command groups in order, and :func:`main`."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Final

from authcore.cli.commands import (
    audit,
    dashboard_user,
    identities,
    init,
    jwt,
    keys,
    portal,
    servers,
    usage,
    workspace,
)
from authcore.cli.context import DEFAULT_DB
from authcore.cli.errors import CommandError
from authcore.cli.options import env_default
from authcore.cli.output import PROG, note
from authcore.cli.parser import Commands, Handler, Parser
from authcore.errors import (
    AuthcoreError,
    ClientError,
    ConfigurationError,
    ConflictError,
    UnavailableError,
)

#: Each group adds its commands, in the order ``authcore --help`` lists them.
_GROUPS: Final[tuple[Callable[[Commands], None], ...]] = (
    init.register,
    workspace.register,
    keys.register,
    identities.register,
    portal.register,
    dashboard_user.register,
    jwt.register,
    usage.register,
    audit.register,
    servers.register,
)
# What takes add_argument(): a parser or one of its argument groups (argparse's private base).
_Container = argparse._ActionsContainer
# Loggers of the database drivers: they log connection attempts, quoting connection strings.
#: authcore.redis: a failed publish is reported once by the command itself (cli.context).
_DRIVER_LOGGERS: Final = ("psycopg", "psycopg_pool", "authcore.redis")


def build_parser() -> argparse.ArgumentParser:
    """Return the ``authcore`` argument parser."""
    parser = Parser(
        prog=PROG,
        description="authcore: operate the key store, mint and check JWTs, run the example API.",
    )
    _add_global_options(parser, after_command=False)
    after = Parser(add_help=False)
    _add_global_options(
        after.add_argument_group(
            "global options",
            "also accepted before the command; given in both places, the"
            " one after the command wins",
        ),
        after_command=True,
    )
    commands = Commands.of(parser, common=[after])
    for register in _GROUPS:
        register(commands)
    return parser


def _add_global_options(parser: _Container, *, after_command: bool) -> None:
    """``--db``, ``--config``, ``--redis``: before the command with their defaults; after it
    without any (``SUPPRESS``), so that only a value given there replaces the one before."""

    def default(name: str, fallback: str | None) -> str | None:
        return argparse.SUPPRESS if after_command else env_default(name, fallback)

    parser.add_argument(
        "--db",
        default=default("AUTHCORE_DB", DEFAULT_DB),
        metavar="URL",
        help=f"sqlite:///PATH or postgresql://... (env AUTHCORE_DB; default {DEFAULT_DB})",
    )
    parser.add_argument(
        "--config",
        default=default("AUTHCORE_CONFIG", None),
        metavar="PATH",
        help="TOML configuration file (env AUTHCORE_CONFIG)",
    )
    parser.add_argument(
        "--redis",
        default=default("AUTHCORE_REDIS", None),
        metavar="URL",
        help="redis://... shared by every process: the servers' rate limits and cache "
        "invalidations; changes made here are published to them (env AUTHCORE_REDIS)",
    )


def _describe(exc: AuthcoreError) -> str:
    if isinstance(exc, UnavailableError):
        return f"the database is unavailable ({exc.detail or 'no detail'})"
    return exc.detail or exc.message


def _exit_code(exc: AuthcoreError) -> int:
    # Configuration problems and a value the store refuses (a grant's grammar, a number out of
    # range) are the operator's input (2); a conflict (a taken id, an identity that still has
    # keys) and the rest are runtime failures (1).
    if isinstance(exc, ConflictError):
        return 1
    return 2 if isinstance(exc, ConfigurationError | ClientError) else 1


@contextlib.contextmanager
def _quiet_drivers() -> Iterator[None]:
    """Silence the database drivers' loggers while a command runs (restored afterwards).

    psycopg's pool logs every failed connection attempt, quoting the connection string (with
    its password) when it cannot parse it; a server that refuses connections adds a dozen
    warnings. The command reports the failure itself, in one line, redacted.
    """
    # A level above CRITICAL on the parents: their children ("psycopg.pool",
    # "psycopg_pool.sched") inherit it, so nothing of theirs is emitted.
    loggers = [logging.getLogger(name) for name in _DRIVER_LOGGERS]
    saved = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for logger, level in zip(loggers, saved, strict=True):
            logger.setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    with _quiet_drivers():
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    try:
        args = build_parser().parse_args(argv)
        handler: Handler = args.handler
        return handler(args)
    except CommandError as exc:
        note(f"error: {exc}")
        return exc.exit_code
    except AuthcoreError as exc:
        note(f"error: {_describe(exc)}")
        return _exit_code(exc)
    except SystemExit as exc:
        # --help and --version exit through argparse; keep main() a function that returns.
        return exc.code if isinstance(exc.code, int) else 0
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if os.environ.get("AUTHCORE_DEBUG"):
            raise
        # A bug: still one line, and only the type (a message might quote a secret).
        note(f"error: unexpected {type(exc).__name__} (set AUTHCORE_DEBUG=1 for details)")
        return 1
