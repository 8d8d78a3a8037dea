"""The ``authcore`` command line: operate a store, mint and check JWTs, run the example servers.

Exit codes: 0 success; 1 a runtime failure (database unreachable, unknown id, conflict, unsafe
rotation step); 2 bad input (arguments, a number out of its bounds, database URL,
configuration file). Every failure is one line on stderr, ``authcore: error: ...``, never a
traceback (set ``AUTHCORE_DEBUG=1`` to get the traceback of an unexpected error). With
``--json`` a command prints exactly one JSON object on stdout. Options are never abbreviated;
the global options (``--db``, ``--config``, ``--redis``) go before the command or after it
(there, they win). Numbers are ASCII digits within stated bounds. Secrets (a new key, a portal
exchange code, a minted JWT, the demo's generated password) are printed only by the commands
whose purpose is to show them, and only once.

Without ``--config`` (or ``AUTHCORE_CONFIG``) the JWT commands and the servers use a development
keyring kept in ``authcore-dev-secrets.toml`` next to the SQLite database, or for another database
in ``$XDG_STATE_HOME/authcore/`` (:func:`authcore.backends.dev_secrets_path`; created on first
use, mode 0600), and say so on stderr. An existing file is used only if it is a regular file (not a
symlink) owned by the current user with mode 0600. Production deployments pass a config file.

A database URL or libpq keyword string is never shown with its password: every message shows
it redacted, and the database drivers' own loggers are silenced while a command runs (they
quote connection strings, and would break the one-line error).

The package: :mod:`authcore.cli.program` is :func:`main` and the top-level parser;
``authcore.cli.commands`` has one module per command group, each declaring a command's
arguments right above its handler; ``parser``, ``options``, ``context``, ``output`` and
``errors`` are what the commands share. This module only re-exports the public names.
"""

from __future__ import annotations

from authcore.backends import redact_database_url
from authcore.cli.context import DEFAULT_DB, DEV_SECRETS_FILE, open_store
from authcore.cli.errors import CommandError, UsageError
from authcore.cli.output import OTHER_PROCESSES_MAY_ACCEPT_FOR
from authcore.cli.program import main

__all__ = [
    "DEFAULT_DB",
    "DEV_SECRETS_FILE",
    "OTHER_PROCESSES_MAY_ACCEPT_FOR",
    "CommandError",
    "UsageError",
    "main",
    "open_store",
    "redact_database_url",
]
