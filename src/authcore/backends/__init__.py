"""Storage and rate-limit backends, and :func:`connect`: everything wired from URLs in one call.

``connect()`` is how a service of your own uses authcore, and how ``authcore serve`` and
``authcore dashboard`` are wired too (one wiring path)::

    from authcore.backends import connect

    auth = connect()  # AUTHCORE_DB, AUTHCORE_CONFIG, AUTHCORE_REDIS from the environment

The returned :class:`Auth` goes straight to the adapters, which start and stop it with the app.
:func:`open_store` alone opens a store from its URL (what ``authcore`` commands use).

This package re-exports; the code lives in named modules:

- :mod:`~authcore.backends.wiring`: :func:`connect`, :class:`Auth` and how they are put together;
- :mod:`~authcore.backends.database`: database URLs and :func:`open_store`;
- :mod:`~authcore.backends.dev_secrets`: :func:`resolve_config`, the TOML file or the
  development secrets;
- the backends themselves: :mod:`~authcore.backends.memory`, :mod:`~authcore.backends.sqlite`,
  :mod:`~authcore.backends.postgres`, :mod:`~authcore.backends.redis`, and the verification
  cache, :mod:`~authcore.backends.cache`.
"""

from __future__ import annotations

from authcore.backends.cache import CachedStore
from authcore.backends.database import DEFAULT_DB, open_store, redact_database_url, sqlite_path
from authcore.backends.dev_secrets import (
    DEV_SECRETS_FILE,
    DevSecretsWarning,
    dev_secrets_path,
    resolve_config,
)
from authcore.backends.wiring import (
    CACHE_MAX_BYTES,
    CACHE_TTL,
    DEFAULT_RATE_LIMIT,
    PORTAL_PREFIX,
    Auth,
    connect,
    invalidation_publisher,
)

__all__ = [
    "CACHE_MAX_BYTES",
    "CACHE_TTL",
    "DEFAULT_DB",
    "DEFAULT_RATE_LIMIT",
    "DEV_SECRETS_FILE",
    "PORTAL_PREFIX",
    "Auth",
    "CachedStore",
    "DevSecretsWarning",
    "connect",
    "dev_secrets_path",
    "invalidation_publisher",
    "open_store",
    "redact_database_url",
    "resolve_config",
    "sqlite_path",
]
