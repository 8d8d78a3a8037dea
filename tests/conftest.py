"""Shared fixtures: real PostgreSQL and Redis servers, and the CI rule for them.

Outside CI a test that needs a server skips with a clear reason when it is unreachable; with
``CI=true`` an unreachable server is a failure, never a skip.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.django_settings import configure_django

# Django, once, before any test module is imported (see tests/django_settings.py).
configure_django()

# Development secrets for a database other than SQLite go to $XDG_STATE_HOME/authcore/: never
# the real home directory from a test run (processes the tests start inherit this too).
os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="authcore-test-state-")
atexit.register(shutil.rmtree, os.environ["XDG_STATE_HOME"], ignore_errors=True)

IN_CI = os.environ.get("CI", "").lower() == "true"
POSTGRES_URL = os.environ.get("AUTHCORE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("AUTHCORE_TEST_REDIS", "redis://127.0.0.1:6379/15")


@pytest.fixture
def authcore_config_file(tmp_path: Path) -> Path:
    """A configuration file with one JWT secret, for code that calls ``connect()`` without
    meaning to test the development secrets (which it would announce: DevSecretsWarning)."""
    path = tmp_path / "authcore-test.toml"
    path.write_text(
        '[jwt]\nsigning_kid = "k1"\n\n[[jwt.secrets]]\nkid = "k1"\n'
        f'secret = "{secrets.token_urlsafe(32)}"\n',
        encoding="utf-8",
    )
    return path


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), 2
        ):
            return True
    except OSError:
        return False


def require_server(name: str, url: str, default_port: int) -> str:
    """Return ``url`` if its server answers; else skip (outside CI) or fail (in CI)."""
    if _reachable(url, default_port):
        return url
    reason = f"{name} at {url} is unreachable"
    if IN_CI:
        pytest.fail(f"{reason}; with CI=true this is a failure, not a skip")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The PostgreSQL test database (``AUTHCORE_TEST_POSTGRES`` overrides)."""
    return require_server("PostgreSQL", POSTGRES_URL, 5432)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis test database (``AUTHCORE_TEST_REDIS`` overrides)."""
    return require_server("Redis", REDIS_URL, 6379)


@pytest.fixture
def fresh_postgres_database(postgres_url: str) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database of this test's own, dropped afterwards.

    For what uses the default schema ("authcore"), as the command line and ``connect()`` do:
    the shared test database's "authcore" schema belongs to nobody in particular.
    """
    import psycopg

    name = f"authcore_t_{secrets.token_hex(6)}"
    with psycopg.connect(postgres_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    base = postgres_url.rpartition("/")[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(postgres_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
