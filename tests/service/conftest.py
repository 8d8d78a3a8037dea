"""Fixtures for the example service and dashboard: a real SQLite store and real servers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from authcore.backends.sqlite import SQLiteStore
from authcore.config import Config, parse_config

SIGNING_SECRET = "test-signing-secret-0123456789abcdefghijklmnop"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    """A fresh SQLite store in a temporary file."""
    with SQLiteStore(tmp_path / "authcore.db") as opened:
        yield opened


@pytest.fixture
def config() -> Config:
    """A config with one inline signing secret."""
    text = f"""
[jwt]
signing_kid = "k1"
max_lifetime = 300

[[jwt.secrets]]
kid = "k1"
secret = "{SIGNING_SECRET}"
"""
    return parse_config(text, environ={}, origin="test config")
