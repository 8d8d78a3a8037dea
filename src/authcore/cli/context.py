"""What a command works on: the store named by ``--db``, the configuration, the clock."""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from collections.abc import Iterator
from typing import Final

from authcore import backends
from authcore.backends.outbox import REVOCATION_BOUND
from authcore.cli.errors import CommandError, UsageError
from authcore.cli.output import note
from authcore.config import Config
from authcore.errors import ConfigurationError, UnavailableError
from authcore.store import Store

DEFAULT_DB: Final = backends.DEFAULT_DB
DEV_SECRETS_FILE: Final = backends.DEV_SECRETS_FILE


def open_store(url: str) -> Store:
    """:func:`authcore.backends.open_store`, with its failures as one-line command errors.

    Raises:
        UsageError: the URL is not one of the supported forms.
        CommandError: the database cannot be opened or reached.
    """
    try:
        return backends.open_store(url)
    except ConfigurationError as exc:
        raise UsageError(f"--db: {exc.detail}") from None
    except UnavailableError as exc:
        raise CommandError(exc.detail or "the database is unavailable") from None


@contextlib.contextmanager
def opened_store(args: argparse.Namespace) -> Iterator[Store]:
    """The store named by ``--db``; with ``--redis``, changes are also published to the servers
    (their verification caches drop a revoked key at once, not within the outbox's second).

    A change commits before it is published, and a failed publish fails nothing: the command
    says so on standard error and sets ``args.published`` to False (the servers still follow
    the database's invalidations).
    """
    store = open_store(args.db)
    try:
        if not args.redis:
            yield store
            return
        try:
            publisher = backends.invalidation_publisher(args.redis)
        except ConfigurationError as exc:
            raise UsageError(f"--redis: {exc.detail or exc.message}") from None
        except UnavailableError as exc:
            raise CommandError(exc.detail or "Redis is unavailable") from None
        try:
            yield backends.CachedStore(store, publisher=publisher)
        finally:
            publisher.close()
            if publisher.failed_publishes:
                args.published = False
                note(
                    "could not publish the change to Redis (--redis); it is committed, and"
                    f" running servers take it from this database within {REVOCATION_BOUND} s"
                )
    finally:
        close = getattr(store, "close", None)
        if callable(close):
            close()


def load_config(args: argparse.Namespace) -> Config:
    try:
        return backends.resolve_config(args.config, args.db, environ=os.environ, note=note)
    except ConfigurationError as exc:
        raise UsageError(exc.detail or exc.message) from None


def current_time() -> float:
    return time.time()
