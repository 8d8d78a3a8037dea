"""``authcore.backends.connect()``: one call wires a service; its lifecycle leaves no trace."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from authcore.adapters.flask import AuthCore
from authcore.adapters.starlette import install_auth, principal_from
from authcore.backends import (
    Auth,
    CachedStore,
    DevSecretsWarning,
    connect,
    dev_secrets_path,
    resolve_config,
)
from authcore.backends import redis as redis_backend
from authcore.backends.sqlite import SQLiteStore
from authcore.backends.token_cache import VerifiedTokenCache
from authcore.errors import ConfigurationError, InvalidCredentialError, UnavailableError
from authcore.flow import Authenticated
from authcore.gate import Gate
from authcore.records import OPERATOR_ACTOR
from authcore.testing import call_asgi


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Nothing here may land in the directory the tests were started from.
    monkeypatch.chdir(tmp_path)


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'app.db'}"


def configured(tmp_path: Path) -> str:
    """A configuration file with one JWT secret: what a service that is not about the
    development secrets passes (without one, connect() warns: DevSecretsWarning)."""
    path = tmp_path / "authcore.toml"
    path.write_text(
        '[jwt]\nsigning_kid = "k1"\n\n[[jwt.secrets]]\nkid = "k1"\n'
        'secret = "connect-test-secret-0123456789abcdefghij"\n'
    )
    return str(path)


def key_for(auth: Auth, permissions: list[str]) -> tuple[str, str]:
    """Create a workspace and a key through the Auth's store; return (raw key, key id)."""
    workspace = auth.store.create_workspace("shop", now=1.8e9, actor=OPERATOR_ACTOR)
    created = auth.store.create_root_key(
        workspace.id, permissions=permissions, now=1.8e9, actor=OPERATOR_ACTOR
    )
    assert created is not None
    return created.key.reveal(), created.record.id


def tcp_connections(port: int) -> int:
    """Open TCP connections of this process to ``port`` on any host (from /proc)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with open(table, encoding="ascii") as handle:
            for line in handle.readlines()[1:]:
                fields = line.split()
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                if remote_port == port and fields[9] in inodes and fields[3] == "01":
                    count += 1
    return count


async def with_lifespan(app: Any, during: Callable[[], Awaitable[None]]) -> list[str]:
    """Run ``app``'s lifespan around ``during``; return the lifespan messages it sent."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    sent: list[str] = []
    started = asyncio.Event()

    async def receive() -> dict[str, Any]:
        return await inbox.get()

    async def send(message: dict[str, Any]) -> None:
        sent.append(message["type"])
        if message["type"] == "lifespan.startup.complete":
            started.set()

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    task = asyncio.create_task(app(scope, receive, send))
    await inbox.put({"type": "lifespan.startup"})
    await asyncio.wait_for(started.wait(), 10)
    await during()
    await inbox.put({"type": "lifespan.shutdown"})
    await asyncio.wait_for(task, 10)
    return sent


def starlette_app(auth: Auth) -> Starlette:
    async def whoami(request: Request) -> PlainTextResponse:
        return PlainTextResponse(principal_from(request).workspace_id)

    app = Starlette(routes=[Route("/whoami", whoami)])
    install_auth(app, auth)
    return app


def test_connect_reads_the_database_from_the_environment(tmp_path: Path) -> None:
    notes: list[str] = []
    with connect(environ={"AUTHCORE_DB": sqlite_url(tmp_path)}, note=notes.append) as auth:
        key, _ = key_for(auth, ["orders.read"])
        result = Gate.build(auth.api).admit(auth.api, "GET", [f"Bearer {key}"])
        assert isinstance(result, Authenticated)
    assert (tmp_path / "app.db").exists()
    # Without a config file: the development secrets next to the database, said once.
    assert (tmp_path / "authcore-dev-secrets.toml").exists()
    assert notes == [
        "no configuration given (--config, AUTHCORE_CONFIG or config=): created development"
        f" JWT secrets in {tmp_path / 'authcore-dev-secrets.toml'} (do not deploy)"
    ]


def test_the_api_and_the_portal_are_two_route_groups(tmp_path: Path) -> None:
    with connect(sqlite_url(tmp_path), environ={}, config=configured(tmp_path)) as auth:
        assert auth.authenticator is auth.api
        assert auth.groups == {"/portal/": auth.portal}
        assert auth.api.settings.keyring is not None  # dashboard JWTs verify
        assert auth.portal.reads_cookie
        assert isinstance(auth.store, CachedStore)


def test_an_app_serves_the_key_and_refuses_it_once_revoked(tmp_path: Path) -> None:
    auth = connect(sqlite_url(tmp_path), environ={}, config=configured(tmp_path))
    app = starlette_app(auth)
    key, key_id = key_for(auth, ["orders.read"])

    async def requests() -> None:
        ok = await asyncio.to_thread(
            call_asgi, app, "GET", "/whoami", headers=[("authorization", f"Bearer {key}")]
        )
        assert ok.status == 200
        auth.store.revoke_root_key(key_id, now=1.8e9, actor=OPERATOR_ACTOR)
        refused = await asyncio.to_thread(
            call_asgi, app, "GET", "/whoami", headers=[("authorization", f"Bearer {key}")]
        )
        assert refused.status == 401

    sent = asyncio.run(with_lifespan(app, requests))
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


def test_the_lifespan_leaves_no_thread_behind_on_sqlite(tmp_path: Path) -> None:
    before = threading.active_count()
    auth = connect(sqlite_url(tmp_path), environ={}, config=configured(tmp_path))
    app = starlette_app(auth)
    key, _ = key_for(auth, ["orders.read"])

    async def requests() -> None:
        # A miss runs the flow on the store's thread pool: threads exist while serving.
        await auth.api.aauthenticate([f"Bearer {key}"])

    asyncio.run(with_lifespan(app, requests))
    assert threading.active_count() == before
    with pytest.raises(ConfigurationError):
        auth.start()  # closed for good


@pytest.mark.postgres
@pytest.mark.redis
def test_the_lifespan_leaves_no_thread_or_connection_behind_on_postgres_and_redis(
    tmp_path: Path, fresh_postgres_database: str, redis_url: str
) -> None:
    threads = threading.active_count()
    postgres, redis = tcp_connections(5432), tcp_connections(6379)
    auth = connect(
        fresh_postgres_database, redis=redis_url, environ={}, config=configured(tmp_path)
    )
    app = starlette_app(auth)
    key, _ = key_for(auth, ["orders.read"])
    seen: dict[str, int] = {}

    async def requests() -> None:
        assert auth.invalidator is not None
        assert await asyncio.to_thread(auth.invalidator.wait_ready, 10)
        result = await auth.api.aauthenticate([f"Bearer {key}"])  # the Redis limiter decides
        assert result.rate_limit is not None
        seen["threads"] = threading.active_count()
        seen["postgres"] = tcp_connections(5432)
        seen["redis"] = tcp_connections(6379)

    asyncio.run(with_lifespan(app, requests))
    # While serving: the subscriber thread, the store's pool, Redis connections ...
    assert seen["threads"] > threads
    assert seen["postgres"] > postgres
    assert seen["redis"] > redis
    # ... and after the shutdown, none of them.
    assert threading.active_count() == threads
    assert tcp_connections(5432) == postgres
    assert tcp_connections(6379) == redis


@pytest.mark.postgres
@pytest.mark.redis
def test_a_revocation_published_by_one_auth_reaches_another(
    tmp_path: Path, fresh_postgres_database: str, redis_url: str
) -> None:
    config = configured(tmp_path)
    first = connect(fresh_postgres_database, redis=redis_url, environ={}, config=config)
    second = connect(fresh_postgres_database, redis=redis_url, environ={}, config=config)
    with first, second:
        assert first.invalidator is not None
        assert second.invalidator is not None
        assert first.invalidator.wait_ready(10)
        assert second.invalidator.wait_ready(10)
        key, key_id = key_for(first, ["orders.read"])
        second.api.authenticate([f"Bearer {key}"])  # cached (and replayed) in the second
        first.store.revoke_root_key(key_id, now=1.8e9, actor=OPERATOR_ACTOR)
        # The second process hears of it through Redis (its cache TTL is 30 s; this waits at
        # most 10 s, so only the published message can end the replay in time).
        refused = threading.Event()
        for _ in range(200):
            try:
                second.api.authenticate([f"Bearer {key}"])
            except InvalidCredentialError:
                refused.set()
                break
            refused.wait(0.05)
        assert refused.is_set()


def test_flask_starts_the_auth_with_the_extension(tmp_path: Path) -> None:
    before = threading.active_count()
    auth = connect(sqlite_url(tmp_path), environ={}, config=configured(tmp_path))
    key, _ = key_for(auth, ["orders.read"])
    app = Flask(__name__)
    AuthCore(app, auth)

    @app.get("/whoami")
    def whoami() -> str:
        return "ok"

    client = app.test_client()
    assert client.get("/whoami", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    assert client.get("/whoami").status_code == 401
    auth.close()  # what the atexit hook does when the process ends
    assert threading.active_count() == before


def test_bad_urls_are_configuration_errors_without_secrets(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as bad_db:
        connect("mysql://root:hunter2@db/app", environ={}, config=None)
    assert "hunter2" not in str(bad_db.value.detail)
    assert "unsupported database URL scheme 'mysql'" in str(bad_db.value.detail)
    with pytest.raises(ConfigurationError):
        connect(sqlite_url(tmp_path), redis="not a url", environ={}, config=configured(tmp_path))
    with pytest.raises(UnavailableError) as down:
        connect("postgresql://u:hunter2@127.0.0.1:1/x?connect_timeout=1", environ={})
    assert "hunter2" not in str(down.value.detail)
    # Neither the unsupported nor the unreachable database got development secrets (and no
    # DevSecretsWarning was raised: the suite turns warnings into errors).
    assert not os.path.exists(dev_secrets_path("postgresql://u:hunter2@127.0.0.1:1/x"))
    assert not list(tmp_path.glob("*dev-secrets*"))


def test_an_unreachable_database_gets_no_development_secrets(tmp_path: Path) -> None:
    url = "postgresql://u@127.0.0.1:1/x?connect_timeout=1"
    with pytest.raises(UnavailableError):
        connect(url, environ={})
    assert not os.path.exists(dev_secrets_path(url))
    assert not list(tmp_path.iterdir())


def test_without_a_configuration_connect_warns_and_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secrets_file = tmp_path / "authcore-dev-secrets.toml"
    with pytest.warns(DevSecretsWarning, match="created development JWT secrets") as warned:
        connect(sqlite_url(tmp_path), environ={}).close()
    # Reported at the caller's line, not inside authcore.
    assert warned[0].filename == __file__
    with pytest.warns(DevSecretsWarning, match="using the development JWT secrets"):
        connect(sqlite_url(tmp_path), environ={}).close()
    logged = [r for r in caplog.records if r.name == "authcore.backends.dev_secrets"]
    assert [r.levelname for r in logged] == ["WARNING", "WARNING"]
    assert all(str(secrets_file) in r.getMessage() for r in logged)
    secret = secrets_file.read_text().split('secret = "')[1].split('"')[0]
    assert all(secret not in r.getMessage() for r in logged)


@pytest.mark.postgres
def test_postgres_development_secrets_are_one_file_whatever_the_directory(
    tmp_path: Path, fresh_postgres_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = []
    for directory in ("one", "two"):
        (tmp_path / directory).mkdir()
        monkeypatch.chdir(tmp_path / directory)
        with pytest.warns(DevSecretsWarning):
            auth = connect(fresh_postgres_database, environ={})
        with auth:
            keyring = auth.config.signing_keyring()
            tokens.append(keyring.mint(subject="u1", workspace_id="ws_1", permissions=[], now=1))
            assert auth.api.settings.keyring is not None
            for token in tokens:  # what the first process minted, the second accepts
                assert auth.api.settings.keyring.verify(token.reveal(), 2).subject == "u1"
    path = Path(dev_secrets_path(fresh_postgres_database))
    assert path.parent == Path(os.environ["XDG_STATE_HOME"]) / "authcore"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert not list(tmp_path.glob("*/*dev-secrets*"))


def test_the_development_secrets_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    one = dev_secrets_path("postgresql://app:first@db.example/app")
    assert one.startswith(str(tmp_path / "state" / "authcore" / "dev-secrets-"))
    # The password is not part of the name; the database is.
    assert dev_secrets_path("postgresql://app:second@db.example/app") == one
    assert dev_secrets_path("postgresql://app:first@db.example/other") != one
    # A relative XDG_STATE_HOME is ignored (XDG base directory specification): ~/.local/state.
    monkeypatch.setenv("XDG_STATE_HOME", "relative")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert dev_secrets_path("postgresql://app@db.example/app").startswith(
        str(tmp_path / "home" / ".local" / "state" / "authcore" / "dev-secrets-")
    )
    # SQLite: next to the database file.
    assert dev_secrets_path("sqlite:///data/app.db") == os.path.abspath(
        "data/authcore-dev-secrets.toml"
    )


def test_a_wiring_that_fails_closes_what_it_opened_but_not_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[str] = []

    def recording(name: str) -> Callable[[object], None]:
        return lambda _self: closed.append(name)

    monkeypatch.setattr(redis_backend.RedisRateLimiter, "close", recording("limiter"))
    monkeypatch.setattr(redis_backend.AsyncRedisRateLimiter, "aclose", recording("alimiter"))
    monkeypatch.setattr(redis_backend.RedisInvalidator, "close", recording("invalidator"))
    store = SQLiteStore(str(tmp_path / "app.db"))
    config = resolve_config(configured(tmp_path), sqlite_url(tmp_path), environ={})
    with pytest.raises(ConfigurationError):
        # Redis clients connect lazily: port 1 is never dialled. The cookie name is refused.
        Auth.wire(
            store, config, redis="redis://127.0.0.1:1/0", portal_cookie="a b", owns_store=True
        )
    assert closed == ["invalidator", "alimiter", "limiter"]  # last opened, first closed
    # The store stays open for whoever opened it (connect() closes it itself).
    assert store.create_workspace("shop", now=1.8e9, actor=OPERATOR_ACTOR).name == "shop"
    store.close()


@pytest.mark.parametrize("topology", ["server", "sentinel", "cluster"])
def test_with_redis_unreachable_a_revocation_commits_and_a_request_gets_503(
    tmp_path: Path, topology: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A closed loopback port: every topology is down from the start, which once made the
    # Cluster client fail connect() itself (it asks for the slot map when it is made).
    redis_url = unreachable_redis(topology)
    with connect(
        sqlite_url(tmp_path), redis=redis_url, environ={}, config=configured(tmp_path)
    ) as auth:
        live, _ = key_for(auth, ["orders.read"])
        _, key_id = key_for(auth, ["orders.read"])
        with caplog.at_level("WARNING", logger="authcore.redis"):
            record = auth.store.revoke_root_key(key_id, now=1.8e9, actor=OPERATOR_ACTOR)
        assert record is not None
        assert record.revoked_at is not None
        # No limiter: refused with 503 (the failure policy), never a 500 or an admission.
        with pytest.raises(UnavailableError):
            auth.api.authenticate([f"Bearer {live}"])
    published = [r.getMessage() for r in caplog.records if "publish failed" in r.getMessage()]
    assert published
    for message in published:
        assert key_id not in message
        assert "hunter2" not in message
    with SQLiteStore(str(tmp_path / "app.db")) as store:
        stored = store.get_root_key(key_id)
    assert stored is not None
    assert stored.revoked_at is not None


def unreachable_redis(topology: str) -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    return {
        "server": f"redis://:hunter2@127.0.0.1:{port}/0",
        "sentinel": f"redis+sentinel://:hunter2@127.0.0.1:{port}/authcore",
        "cluster": f"redis+cluster://:hunter2@127.0.0.1:{port}",
    }[topology]


def _config_file(tmp_path: Path, extra: str) -> str:
    path = tmp_path / "authcore.toml"
    path.write_text(
        f'{extra}[jwt]\n[[jwt.secrets]]\nkid = "k1"\nsecret = "{"s" * 40}"\n', encoding="utf-8"
    )
    return str(path)


def _fields(auth: Auth) -> list[str]:
    key, _ = key_for(auth, ["orders.read"])
    app = starlette_app(auth)
    answer = call_asgi(app, "GET", "/whoami", headers=[("authorization", f"Bearer {key}")])
    assert answer.status == 200
    return [name for name, _ in answer.headers if name.startswith("ratelimit")]


def test_the_draft_fields_are_the_default_and_the_config_file_chooses(tmp_path: Path) -> None:
    with connect(sqlite_url(tmp_path), environ={}, config=configured(tmp_path)) as auth:
        assert _fields(auth) == ["ratelimit-policy", "ratelimit"]
    config = _config_file(tmp_path, 'rate_limit_headers = "legacy"\n')
    with connect(f"sqlite:///{tmp_path / 'b.db'}", config=config, environ={}) as auth:
        assert auth.portal.settings.rate_limit_headers.value == "legacy"
        assert _fields(auth) == ["ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"]
    # An argument to connect() outranks the file.
    with connect(
        f"sqlite:///{tmp_path / 'c.db'}", config=config, environ={}, rate_limit_headers="none"
    ) as auth:
        assert _fields(auth) == []


def test_an_unknown_rate_limit_headers_option_is_a_configuration_error(tmp_path: Path) -> None:
    config = _config_file(tmp_path, 'rate_limit_headers = "ietf"\n')
    with pytest.raises(ConfigurationError, match="rate_limit_headers"):
        connect(sqlite_url(tmp_path), config=config, environ={})
    config = configured(tmp_path)
    with pytest.raises(ConfigurationError, match="rate_limit_headers"):
        connect(sqlite_url(tmp_path), environ={}, config=config, rate_limit_headers="Draft")


def test_cache_max_bytes_bounds_every_cache_table_connect_wires(tmp_path: Path) -> None:
    bound = 64 * 1024
    # Not started (no ``with``): the outbox follower would replay this process's own writes
    # on its thread, and its first read clears the cache. Dropping entries at any moment,
    # it would make what this test counts depend on the thread's timing.
    auth = connect(
        sqlite_url(tmp_path), environ={}, config=configured(tmp_path), cache_max_bytes=bound
    )
    with contextlib.closing(auth):
        assert auth.follower is not None
        workspace = auth.store.create_workspace("shop", now=1.8e9, actor=OPERATOR_ACTOR)
        grants = [f"orders_{i:03d}.read_all_items" for i in range(256)]
        for _ in range(12):
            created = auth.store.create_root_key(
                workspace.id, permissions=grants, now=1.8e9, actor=OPERATOR_ACTOR
            )
            assert created is not None
            auth.api.authenticate([f"Bearer {created.key.reveal()}"])
            assert 0 < auth.store.byte_size <= bound
        assert auth.store.size < 12  # the bytes bound bit long before the 10,000 entries
        table: Any = auth.api._replay
        assert 0 < table.byte_size <= bound
        token_cache: Any = auth.api.settings.token_cache
        assert isinstance(token_cache, VerifiedTokenCache)
        assert token_cache._table.max_bytes == bound
        assert auth.follower.position is None  # it never ran


def test_a_bad_cache_max_bytes_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="max_bytes"):
        connect(sqlite_url(tmp_path), environ={}, config=configured(tmp_path), cache_max_bytes=0)
