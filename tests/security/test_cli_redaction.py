"""Finding 7: the command line printed database passwords.

A database URL (or a libpq keyword string) with a sentinel password goes through every way a
command can fail to open the database, in a real ``python -m authcore`` process, and the
sentinel must appear nowhere on stdout or stderr; every failure is one line. The drivers' own
loggers (psycopg's pool logs each failed attempt, quoting the connection string when it cannot
parse it) are silent on the command line.
"""

from __future__ import annotations

import concurrent.futures
import os
import secrets
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from authcore.cli import redact_database_url

SENTINEL = "S3ntinel-pa55word-7f3a"


def _authcore(
    tmp_path: Path, *argv: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AUTHCORE_")}
    clean.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "authcore", *argv],
        cwd=tmp_path,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _one_line_without_the_sentinel(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert SENTINEL not in result.stdout
    assert SENTINEL not in result.stderr
    assert "Traceback" not in result.stderr
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("authcore: error: ")
    return lines[0]


@pytest.fixture
def closes_at_once() -> Iterator[int]:
    """A port where something accepts connections and closes them: a server that is "up" at
    the TCP level but is no PostgreSQL (libpq: server closed the connection unexpectedly)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def _failure_paths(dropping_port: int) -> list[tuple[str, list[str], dict[str, str], int, str]]:
    """(name, argv, environment, exit code, text the one line must hold) for each path."""
    refused = f"postgresql://alice:{SENTINEL}@127.0.0.1:9/db?connect_timeout=1"
    return [
        # The review's URL: an unterminated IPv6 literal. libpq refuses to parse it, and the
        # pool logged the whole URL on every attempt.
        (
            "broken-ipv6",
            ["--db", f"postgres://alice:{SENTINEL}@[::1/test?connect_timeout=1", "init"],
            {},
            1,
            "postgres://alice:***@[::1/test",
        ),
        (
            "keyword-string",
            ["--db", f"host=127.0.0.1 password={SENTINEL} dbname=test", "init"],
            {},
            2,
            "unsupported database URL scheme (use",
        ),
        (
            "keyword-string-quoted",
            ["--db", f"host=127.0.0.1 password='{SENTINEL} x' dbname=test", "init"],
            {},
            2,
            "unsupported",
        ),
        (
            "other-scheme",
            ["--db", f"mysql://alice:{SENTINEL}@localhost/db", "init"],
            {},
            2,
            "unsupported database URL scheme 'mysql'",
        ),
        ("refused", ["--db", refused, "init"], {}, 1, "unavailable"),
        (
            "refused-from-environment",
            ["keys", "list", "--workspace", "ws_1"],
            {"AUTHCORE_DB": refused},
            1,
            "unavailable",
        ),
        (
            "password-in-query",
            [
                "--db",
                f"postgresql://alice@127.0.0.1:9/db?password={SENTINEL}&connect_timeout=1",
                "init",
            ],
            {},
            1,
            "password=***",
        ),
        (
            "at-in-password",
            ["--db", f"postgresql://alice:{SENTINEL}@@127.0.0.1:9/db?connect_timeout=1", "init"],
            {},
            1,
            "alice:***@127.0.0.1:9",
        ),
        # Up at the TCP level but no PostgreSQL: before, a dozen psycopg_pool warnings.
        (
            "server-drops-connections",
            [
                "--db",
                f"postgresql://alice:{SENTINEL}@127.0.0.1:{dropping_port}/db?connect_timeout=1",
                "init",
            ],
            {},
            1,
            "postgresql://alice:***@127.0.0.1",
        ),
    ]


def test_finding_7_no_failure_path_prints_the_password(tmp_path: Path, closes_at_once: int) -> None:
    # Each path waits for the store's connection timeout: run them side by side.
    paths = _failure_paths(closes_at_once)
    with concurrent.futures.ThreadPoolExecutor(len(paths)) as pool:
        results = list(pool.map(lambda p: _authcore(tmp_path, *p[1], env=p[2]), paths))
    for (name, _argv, _env, code, expected), result in zip(paths, results, strict=True):
        line = _one_line_without_the_sentinel(result, code)
        assert expected in line, name


@pytest.mark.postgres
def test_finding_7_a_database_that_refuses_us_is_one_line(
    tmp_path: Path, postgres_url: str
) -> None:
    # A real PostgreSQL that answers, then refuses: the database does not exist.
    host = postgres_url.rpartition("@")[2].partition("/")[0] or "127.0.0.1:5432"
    url = f"postgresql://alice:{SENTINEL}@{host}/authcore_no_such_db_7f3a?connect_timeout=2"
    _one_line_without_the_sentinel(_authcore(tmp_path, "--db", url, "init"), 1)


@pytest.fixture
def own_database(postgres_url: str) -> Iterator[str]:
    """A database of this test's own: the command line always uses the schema "authcore",
    and the shared test database's "authcore" schema belongs to nobody in particular."""
    import psycopg

    name = f"authcore_redaction_{secrets.token_hex(6)}"
    with psycopg.connect(postgres_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    scheme, _, rest = postgres_url.partition("://")
    userinfo, at, hostpart = rest.rpartition("@")
    user = userinfo.partition(":")[0] if at else "postgres"
    host = hostpart.partition("/")[0]
    try:
        yield f"{scheme}://{user}:{SENTINEL}@{host}/{name}"
    finally:
        with psycopg.connect(postgres_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.mark.postgres
def test_finding_7_success_shows_the_url_redacted(tmp_path: Path, own_database: str) -> None:
    # The test server trusts loopback, so any password is accepted and must not be echoed.
    for argv in (["init"], ["init", "--json"]):
        result = _authcore(tmp_path, "--db", own_database, *argv)
        assert result.returncode == 0, result.stderr.replace(SENTINEL, "***")
        assert SENTINEL not in result.stdout + result.stderr
        assert ":***@" in result.stdout


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:p@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:p@ss:w/rd@h:5/db", "postgresql://u:***@h:5/db"),
        ("postgres://alice:S@[::1/test", "postgres://alice:***@[::1/test"),
        (
            "postgresql://u@h/db?sslmode=x&password=p&x=1",
            "postgresql://u@h/db?sslmode=x&password=***&x=1",
        ),
        ("host=h password=p dbname=d", "host=h password=*** dbname=d"),
        ("host=h password = 'p q\\' r' dbname=d", "host=h password = *** dbname=d"),
        ("host=h sslpassword=p", "host=h sslpassword=***"),
        ("sqlite:///./authcore.db", "sqlite:///./authcore.db"),
        ("postgresql://h/db", "postgresql://h/db"),
        ("", ""),
    ],
)
def test_redaction_keeps_what_helps_and_drops_every_password(url: str, shown: str) -> None:
    assert redact_database_url(url) == shown
