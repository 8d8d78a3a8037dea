"""The failures a command reports: one line on stderr, and the exit code that goes with it."""

from __future__ import annotations


class CommandError(Exception):
    """A runtime failure (exit 1); the message is the one line shown to the operator."""

    exit_code = 1


class UsageError(CommandError):
    """Bad input: arguments, database URL, configuration (exit 2)."""

    exit_code = 2
