"""The authenticator the middleware runs: root keys from SQLite, rate limits in memory."""

from __future__ import annotations

import os
import time

from authcore.backends.cache import CachedStore
from authcore.backends.memory import MemoryRateLimiter
from authcore.backends.sqlite import SQLiteStore
from authcore.flow import AsyncBackends, Authenticator, AuthSettings, Backends


def build_authenticator() -> Authenticator:
    """Open the store named by ``AUTHCORE_DB_PATH`` and return the API's authenticator."""
    # A verified-result cache in front of the store: a repeated key costs no database read.
    store = CachedStore(SQLiteStore(os.environ.get("AUTHCORE_DB_PATH", "authcore.db")))
    limiter = MemoryRateLimiter()
    return Authenticator(
        AuthSettings(),
        clock=time.time,
        backends=Backends(store, limiter),  # under a WSGI server
        abackends=AsyncBackends(store, limiter),  # under an ASGI server
    )
