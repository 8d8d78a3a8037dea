"""Redis clients from URLs, by topology: one server, Sentinel or Cluster.

:func:`client_from_url` and :func:`async_client_from_url` are what every ``from_url`` of
:mod:`authcore.backends.redis` connects with: bounded timeouts and no retries, so a stalled
Redis costs a request at most about one connect and one reply. Besides redis-py's own
``redis://``, ``rediss://`` and ``unix://``, a URL may name the master of a Sentinel service
(``redis+sentinel://``) or a Redis Cluster (``redis+cluster://``). A malformed URL is a
:class:`~authcore.errors.ConfigurationError` that never quotes it (it may hold a password).

No client meets its servers when it is made: an unreachable Redis is a ``redis.RedisError``
at its first use (a 503, a logged publish), never a failure of whoever builds it (``connect()``,
a server starting while Redis is down, the command line before it commits a revocation).
"""

from __future__ import annotations

import hashlib
import inspect
import threading
from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import unquote

import attrs
import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.sentinel
import redis.cluster
import redis.sentinel
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.commands.core import Script
from redis.exceptions import NoScriptError, RedisClusterException, ResponseError
from redis.retry import Retry

from authcore.errors import ConfigurationError

__all__ = [
    "CLUSTER_SCHEME",
    "DEFAULT_TIMEOUT",
    "SENTINEL_SCHEME",
    "AsyncLuaScript",
    "AsyncPackedLuaScript",
    "LazyCluster",
    "LuaScript",
    "PackedLuaScript",
    "aclose_client",
    "async_client_from_url",
    "client_from_url",
    "close_client",
]

#: Seconds a client of :func:`client_from_url` allows for connecting and for each reply (the
#: default of every ``from_url`` in :mod:`authcore.backends.redis`).
DEFAULT_TIMEOUT: Final = 0.25
#: URL schemes beyond redis-py's own (redis://, rediss://, unix://).
SENTINEL_SCHEME: Final = "redis+sentinel://"
CLUSTER_SCHEME: Final = "redis+cluster://"
_DEFAULT_PORT: Final = 6379
_DEFAULT_SENTINEL_PORT: Final = 26379
_ASYNC_CLUSTER_CONNECTIONS: Final = 1000
_SENTINEL_TIMEOUT: Final = 1.0
_TIMEOUT_OPTIONS: Final = ("socket_timeout", "socket_connect_timeout")
#: Most packed commands a :class:`PackedLuaScript` keeps (one per bucket and policy in use).
PACKED_COMMANDS: Final = 10_000


@attrs.frozen
class _Target:
    """What a ``redis+sentinel://`` or ``redis+cluster://`` URL names (never printed)."""

    nodes: tuple[tuple[str, int], ...]
    password: str | None = attrs.field(repr=False)
    username: str | None
    service: str  # the Sentinel service name ("" for Cluster)
    db: int


def _parse_multi(url: str, scheme: str, default_port: int) -> _Target:
    """Parse ``SCHEME[user:password@]host[:port][,host[:port]...][/service][/db]``.

    Raises:
        ConfigurationError: a malformed URL (the message never quotes it).
    """
    rest = url[len(scheme) :]
    userinfo, at, rest = rest.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    hosts, _, path = rest.partition("/")
    nodes = []
    for part in hosts.split(","):
        host, colon, port = part.rpartition(":") if part.count(":") == 1 else (part, "", "")
        host = host if colon else part
        if not host or (colon and not port.isascii()) or (colon and not port.isdigit()):
            raise ConfigurationError(f"invalid Redis URL: bad host list in {scheme}...")
        nodes.append((host, int(port) if colon else default_port))
    segments = [segment for segment in path.split("/") if segment]
    service = segments.pop(0) if scheme == SENTINEL_SCHEME and segments else None
    if scheme == SENTINEL_SCHEME and service is None:
        raise ConfigurationError("invalid Redis URL: redis+sentinel:// names no service (/NAME)")
    db = 0
    if segments:
        if len(segments) > 1 or not segments[0].isascii() or not segments[0].isdigit():
            raise ConfigurationError(f"invalid Redis URL: bad database in {scheme}...")
        db = int(segments[0])
    if scheme == CLUSTER_SCHEME and db:
        raise ConfigurationError("invalid Redis URL: Redis Cluster has only database 0")
    return _Target(tuple(nodes), password, username, service or "", db)


def client_from_url(
    url: str, *, timeout: float = DEFAULT_TIMEOUT, connect_timeout: float | None = None
) -> Any:
    """A synchronous client for ``url``, with bounded timeouts and no retries.

    ``redis://`` / ``rediss://`` / ``unix://`` (one server), ``redis+sentinel://h1:26379,h2/NAME
    [/DB]`` (the master of service NAME, found through the sentinels) or ``redis+cluster://h1:
    7000,h2:7001`` (Redis Cluster from any of its nodes). A password goes in the user-info part.

    Raises:
        ConfigurationError: the URL or a timeout is invalid (the message never quotes the URL).
    """
    options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout if connect_timeout is None else connect_timeout,
    }
    try:
        if url.startswith(SENTINEL_SCHEME):
            target = _parse_multi(url, SENTINEL_SCHEME, _DEFAULT_SENTINEL_PORT)
            sentinel = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call, unused-ignore]  # typed from redis-py 8.2 on
                list(target.nodes), sentinel_kwargs=_sentinel_options(options), **options
            )
            master = sentinel.master_for(  # type: ignore[no-untyped-call, unused-ignore]  # typed from redis-py 8.2 on
                target.service,
                db=target.db,
                username=target.username,
                password=target.password,
                retry=_no_retry(),
            )
            master.authcore_sentinels = sentinel.sentinels  # closed with the client
            return master
        if url.startswith(CLUSTER_SCHEME):
            target = _parse_multi(url, CLUSTER_SCHEME, _DEFAULT_PORT)
            return LazyCluster(
                startup_nodes=[
                    redis.cluster.ClusterNode(h, p)  # type: ignore[no-untyped-call]  # as above
                    for h, p in target.nodes
                ],
                username=target.username,
                password=target.password,
                retry=_no_retry(),
                **options,
            )
        return redis.Redis.from_url(url, retry=_no_retry(), **options)
    except (ValueError, TypeError, redis.RedisError) as exc:
        # Not str(exc): it may quote the URL, password included.
        raise ConfigurationError(f"invalid Redis URL ({type(exc).__name__})") from None


def async_client_from_url(
    url: str, *, timeout: float = DEFAULT_TIMEOUT, connect_timeout: float | None = None
) -> Any:
    """The asyncio twin of :func:`client_from_url` (connects lazily).

    Raises:
        ConfigurationError: the URL or a timeout is invalid.
    """
    options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout if connect_timeout is None else connect_timeout,
    }
    try:
        if url.startswith(SENTINEL_SCHEME):
            target = _parse_multi(url, SENTINEL_SCHEME, _DEFAULT_SENTINEL_PORT)
            sentinel = redis.asyncio.sentinel.Sentinel(  # type: ignore[no-untyped-call, unused-ignore]  # typed from redis-py 8.2 on
                list(target.nodes), sentinel_kwargs=_sentinel_options(options), **options
            )
            master = sentinel.master_for(
                target.service,
                db=target.db,
                username=target.username,
                password=target.password,
                retry=_async_no_retry(),
                max_connections=_ASYNC_CLUSTER_CONNECTIONS,  # as for Cluster, below
            )
            master.authcore_sentinels = sentinel.sentinels  # closed with the client
            return master
        if url.startswith(CLUSTER_SCHEME):
            target = _parse_multi(url, CLUSTER_SCHEME, _DEFAULT_PORT)
            return redis.asyncio.cluster.RedisCluster(
                startup_nodes=[redis.asyncio.cluster.ClusterNode(h, p) for h, p in target.nodes],
                username=target.username,
                password=target.password,
                retry=_async_no_retry(),
                # redis-py's asyncio cluster client refuses (rather than waits) past this many
                # connections per node; its default of 100 is below a busy server's concurrency.
                max_connections=_ASYNC_CLUSTER_CONNECTIONS,
                **options,
            )
        return redis.asyncio.Redis.from_url(url, retry=_async_no_retry(), **options)
    except (ValueError, TypeError, redis.RedisError) as exc:
        raise ConfigurationError(f"invalid Redis URL ({type(exc).__name__})") from None


class LazyCluster:
    """A synchronous Redis Cluster client that asks for the slot map at its first use.

    redis-py's ``RedisCluster`` reads the slot map from its startup nodes in its constructor,
    and raises ``RedisClusterUnreachableError`` (not a ``RedisError``) when none answers. This
    makes the client on first use instead, and turns that failure into ``redis.
    ConnectionError``, which everything built on a client already treats as "Redis is down";
    the next use tries again. Everything else is the ``RedisCluster``'s own.
    """

    #: What :func:`close_client` closes besides the client: nothing (no sentinels here).
    authcore_sentinels: Final[tuple[()]] = ()

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._client: redis.cluster.RedisCluster | None = None
        self._lock = threading.Lock()

    def cluster(self) -> redis.cluster.RedisCluster:
        """The ``RedisCluster``, made now if it is not yet.

        Raises:
            redis.ConnectionError: no startup node answered (the message names no node).
        """
        with self._lock:
            if self._client is None:
                try:
                    self._client = redis.cluster.RedisCluster(**self._options)
                except RedisClusterException as exc:
                    message = f"Redis Cluster unreachable ({type(exc).__name__})"
                    raise redis.ConnectionError(message) from None
            return self._client

    def get_connection_kwargs(self) -> dict[str, Any]:
        """What every connection is made with (the timeouts the limiters check)."""
        return {name: self._options[name] for name in _TIMEOUT_OPTIONS}

    def register_script(self, script: str) -> Script:
        """A Lua script run through this client (it meets the cluster when first called).

        Given as UTF-8 bytes, RedisCluster's encoding, so the script needs no encoder yet.
        """
        return Script(self, script.encode())  # type: ignore[arg-type]  # a RedisCluster by delegation

    def close(self) -> None:
        """Close the cluster's connections, if it was ever reached."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name == "connection_pool":  # a cluster has no one pool
            raise AttributeError(name)
        return getattr(self.cluster(), name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def close_client(client: Any) -> None:
    """Close a client of :func:`client_from_url`, the sentinels it found the master by too."""
    client.close()
    for sentinel in getattr(client, "authcore_sentinels", ()):
        sentinel.close()


async def aclose_client(client: Any) -> None:
    """Close a client of :func:`async_client_from_url`, its sentinels too."""
    await client.aclose()
    for sentinel in getattr(client, "authcore_sentinels", ()):
        await sentinel.aclose()


def _sentinel_options(options: dict[str, Any]) -> dict[str, Any]:
    # Asking a sentinel where the master is happens once per new connection; a burst of them
    # on a busy host needs more than one reply's timeout. Still bounded.
    return {name: max(float(value), _SENTINEL_TIMEOUT) for name, value in options.items()}


def _no_retry() -> Retry:
    # from_url's clients fail fast: a retry would double the wait on a stalled server, and a
    # dead pooled connection is already detected (and replaced) when it is checked out.
    return Retry(NoBackoff(), 0)


def _async_no_retry() -> AsyncRetry:
    # redis.asyncio has its own Retry class (its call_with_retry awaits); same policy.
    return AsyncRetry(NoBackoff(), 0)


class LuaScript:
    """A Lua script run by ``EVALSHA`` on a synchronous client, loaded again on ``NOSCRIPT``
    (after a server restart or ``SCRIPT FLUSH``) and retried once.

    What redis-py's ``Script`` does, without its per-call pipeline checks and argument copies:
    a rate-limit decision calls it on every request (about 12 us less per call, measured).
    Any client works: one server, Sentinel's master, ``RedisCluster`` (which routes
    ``EVALSHA`` by its first key) or :class:`LazyCluster`.
    """

    __slots__ = ("_client", "_source", "sha")

    def __init__(self, client: Any, source: str) -> None:
        self._client = client
        self._source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    def __call__(self, keys: Sequence[str], args: Sequence[int]) -> Any:
        try:
            return self._client.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)
        except NoScriptError:
            self._client.script_load(self._source)
            return self._client.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)


def _takes_no_arguments(method: Any) -> bool:
    # redis-py before 5.3 needs a command name to hand out a connection.
    parameters = inspect.signature(method).parameters.values()
    return all(
        p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in parameters
    )


class _Packed:
    """What both packed scripts share: the script, and each command packed once."""

    __slots__ = ("_client", "_packed", "_pool", "_source", "sha")

    def __init__(self, client: Any, source: str) -> None:
        self._client = client
        self._pool = client.connection_pool
        self._source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()
        self._packed: dict[tuple[str | int, ...], Any] = {}

    def _command(self, connection: Any, keys: Sequence[str], args: Sequence[int]) -> Any:
        """The EVALSHA of ``keys`` and ``args``, packed by ``connection`` the first time
        (every connection of one pool packs alike)."""
        command: tuple[str | int, ...] = (*keys, *args)
        packed = self._packed.get(command)
        if packed is None:
            packed = connection.pack_command("EVALSHA", self.sha, len(keys), *command)
            if len(self._packed) >= PACKED_COMMANDS:
                self._packed.clear()
            self._packed[command] = packed
        return packed


class PackedLuaScript(_Packed):
    """:class:`LuaScript` on one server's connection pool: each command packed once, then sent
    as its bytes on a pooled connection (one write, one read).

    redis-py's execute path (its retry wrapper, its hooks, the encoding of every argument)
    costs as much CPU as the round trip itself: a decision took 162 us of CPU through it and 80
    us this way on the benchmark machine, and 268 against 187 us of wall time. A decision's
    command is the same bytes every time for the same keys and arguments (a bucket and its
    policy), so the packed form is kept, at most :data:`PACKED_COMMANDS` of them.

    For the clients authcore builds (:func:`client_from_url`, which retries nothing): a client
    of one's own keeps redis-py's path, its retries included. :meth:`supports` says whether a
    client can take this one (one server or Sentinel's master, redis-py 5.3 or later).
    """

    __slots__ = ()

    @staticmethod
    def supports(client: Any) -> bool:
        """Whether ``client`` is one server's (or a Sentinel master's) client with a pool that
        hands out a connection without a command name (redis-py 5.3 on)."""
        pool = getattr(client, "connection_pool", None)
        return (
            isinstance(client, redis.Redis)
            and isinstance(pool, redis.ConnectionPool)
            and _takes_no_arguments(pool.get_connection)
        )

    def __call__(self, keys: Sequence[str], args: Sequence[int]) -> Any:
        pool = self._pool
        connection = pool.get_connection()
        try:
            packed = self._command(connection, keys, args)
            try:
                connection.send_packed_command(packed)
                return connection.read_response()
            except NoScriptError:
                self._client.script_load(self._source)
                connection.send_packed_command(packed)
                return connection.read_response()
        except ResponseError:
            raise  # an answer read whole: the connection is in step
        except BaseException:
            # A reply may still be on its way (a timeout, an interrupt): never reuse it.
            connection.disconnect()
            raise
        finally:
            pool.release(connection)


class AsyncLuaScript:
    """:class:`LuaScript` on an asyncio client (``redis.asyncio``, one server or Cluster)."""

    __slots__ = ("_client", "_source", "sha")

    def __init__(self, client: Any, source: str) -> None:
        self._client = client
        self._source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    async def __call__(self, keys: Sequence[str], args: Sequence[int]) -> Any:
        try:
            return await self._client.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)
        except NoScriptError:
            await self._client.script_load(self._source)
            return await self._client.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)


class AsyncPackedLuaScript(_Packed):
    """:class:`PackedLuaScript` on an asyncio client (``redis.asyncio``, one server or
    Sentinel's master): 146 against 192 us of CPU per decision on the benchmark machine."""

    __slots__ = ()

    @staticmethod
    def supports(client: Any) -> bool:
        """:meth:`PackedLuaScript.supports` for an asyncio client."""
        pool = getattr(client, "connection_pool", None)
        return (
            isinstance(client, redis.asyncio.Redis)
            and isinstance(pool, redis.asyncio.ConnectionPool)
            and _takes_no_arguments(pool.get_connection)
        )

    async def __call__(self, keys: Sequence[str], args: Sequence[int]) -> Any:
        pool = self._pool
        connection = await pool.get_connection()
        try:
            packed = self._command(connection, keys, args)
            try:
                await connection.send_packed_command(packed)
                return await connection.read_response()
            except NoScriptError:
                await self._client.script_load(self._source)
                await connection.send_packed_command(packed)
                return await connection.read_response()
        except ResponseError:
            raise  # an answer read whole: the connection is in step
        except BaseException:
            # Cancelled (the decision's timeout) or failed mid-call: never reuse it.
            await connection.disconnect(nowait=True)
            raise
        finally:
            await pool.release(connection)
