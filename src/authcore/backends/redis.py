"""Redis backends: rate limiters (one atomic round trip, server clock) and cache invalidation.

Each decision runs :data:`authcore.ratelimit.GCRA_LUA` (the core's GCRA, line by line) with
``EVALSHA`` (:class:`~authcore.backends.redis_clients.LuaScript`), which loads it and retries
once when the server answers ``NOSCRIPT`` (after a restart or ``SCRIPT FLUSH``). The script
reads ``TIME`` on the server, so every API process shares one clock, and Redis runs scripts one
at a time, so N callers racing for L slots get exactly L. The key is
:func:`authcore.ratelimit.rate_limit_key` of the workspace id alone.

Every failure (connection refused, timeout, a script error such as a key of the wrong type at
the limiter key, a reply that is not a decision) becomes
:class:`~authcore.errors.UnavailableError`; the flow then applies the configured
:class:`~authcore.ratelimit.LimiterFailurePolicy`. Error details name the exception type only,
never the key, the URL or a password.

Timeouts. A limiter refuses a client that could wait forever (no ``socket_timeout`` or no
``socket_connect_timeout``). :meth:`RedisRateLimiter.from_url` builds a client with
``DEFAULT_TIMEOUT`` (0.25 s) for both and *no* retries, so one decision waits at most about
0.5 s (connect + reply) before answering "unavailable". With a client of your own, the bound is
``(retries + 1) * (socket_connect_timeout + socket_timeout)`` plus its retry backoff; redis-py
retries 3 times by default, which hides short stalls but multiplies the bound. The clients of
every ``from_url`` (one server, Sentinel or Cluster, by URL) come from
:mod:`authcore.backends.redis_clients`, whose functions are re-exported here.

Speed. A limiter of ``from_url`` (sync or async) on one server or a Sentinel master sends each
decision as bytes packed once per bucket and policy (``PackedLuaScript``,
``AsyncPackedLuaScript``): half the client's CPU per decision of redis-py's execute path, sync,
a quarter less async. A client of your own, or a Cluster, goes through redis-py's
``execute_command`` with its retries and hooks.

Cache invalidation. :class:`RedisInvalidator` (a daemon thread) and
:class:`AsyncRedisInvalidator` (an asyncio task) publish what a
:class:`~authcore.backends.cache.CachedStore` invalidates on a pub/sub channel and apply what
other processes publish; see that module for the revocation bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Sequence
from typing import Any, Final

import redis
import redis.asyncio
import redis.asyncio.cluster
from redis.exceptions import RedisClusterException

from authcore.backends.cache import CachedStore
from authcore.backends.invalidation import Invalidation
from authcore.backends.redis_clients import (
    CLUSTER_SCHEME,
    DEFAULT_TIMEOUT,
    SENTINEL_SCHEME,
    AsyncLuaScript,
    AsyncPackedLuaScript,
    LuaScript,
    PackedLuaScript,
    aclose_client,
    async_client_from_url,
    client_from_url,
    close_client,
)
from authcore.errors import ConfigurationError, UnavailableError
from authcore.ratelimit import (
    GCRA_LEVELS_LUA,
    GCRA_LUA,
    Level,
    RateLimitDecision,
    RateLimitPolicy,
    decision_from_reply,
    decisions_from_reply,
    rate_limit_key,
)

__all__ = [
    "CLUSTER_SCHEME",
    "DEFAULT_CHANNEL",
    "DEFAULT_NAMESPACE",
    "DEFAULT_TIMEOUT",
    "SENTINEL_SCHEME",
    "AsyncRedisInvalidator",
    "AsyncRedisRateLimiter",
    "RedisInvalidator",
    "RedisRateLimiter",
    "aclose_client",
    "async_client_from_url",
    "client_from_url",
    "close_client",
]

_log = logging.getLogger("authcore.redis")
#: What a call to Redis raises when Redis is down, slow or answers garbage. redis-py's cluster
#: client raises RedisClusterException (not a RedisError) when no node answers.
_FAILURES: Final = (redis.RedisError, RedisClusterException, OSError)
_ASYNC_FAILURES: Final = (*_FAILURES, TimeoutError)

#: Key prefix of every limiter key: ``authcore:rl:<workspace id>``.
DEFAULT_NAMESPACE: Final = "authcore:rl:"
# A socket timeout longer than this is a misconfiguration for a per-request check: requests
# would pile up behind a stalled Redis instead of getting their 503 (or fallback) promptly.
_MAX_TIMEOUT: Final = 30.0


def _connection_kwargs(client: Any) -> dict[str, Any]:
    """The settings every connection of ``client`` is made with (one server, Sentinel or
    Cluster)."""
    pool = getattr(client, "connection_pool", None)
    if pool is not None:
        kwargs: dict[str, Any] = pool.connection_kwargs
        return kwargs
    get = getattr(client, "get_connection_kwargs", None)
    return dict(get()) if callable(get) else {}


def _check_timeouts(connection_kwargs: dict[str, Any]) -> float:
    """Return the client's (connect + reply) timeout in seconds.

    Raises:
        ConfigurationError: a timeout is unset (an unbounded wait) or not a sane number.
    """
    total = 0.0
    for name in ("socket_timeout", "socket_connect_timeout"):
        value = connection_kwargs.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigurationError(
                f"the Redis client for a rate limiter needs a bounded {name} "
                "(see RedisRateLimiter.from_url)"
            )
        if not 0 < value <= _MAX_TIMEOUT:
            raise ConfigurationError(f"Redis {name} must be in (0, {_MAX_TIMEOUT}] seconds")
        total += float(value)
    return total


def _check_namespace(namespace: str) -> str:
    # No braces: rate_limit_key's Redis Cluster hash tags must be the only ones in a key.
    if not isinstance(namespace, str) or not namespace or "{" in namespace or "}" in namespace:
        raise ConfigurationError("a rate-limit namespace is a non-empty string without braces")
    return namespace


def _script_args(policy: RateLimitPolicy) -> tuple[int, int, int]:
    # ARGV: limit, emission interval (µs), minimum key TTL (s). One period keeps an idle
    # workspace's key around a little longer than strictly needed, which costs nothing.
    return (policy.limit, policy.emission_interval_us, policy.period)


def _levels_args(levels: Sequence[Level]) -> tuple[list[str], list[int]]:
    # KEYS, then ARGV for GCRA_LEVELS_LUA: the longest minimum TTL, then limit and emission
    # interval per level.
    ttl = max(policy.period for _, policy in levels)
    args = [ttl]
    for _, policy in levels:
        args += (policy.limit, policy.emission_interval_us)
    return [bucket for bucket, _ in levels], args


def _failure(exc: BaseException) -> UnavailableError:
    # The type only: a redis-py message can quote the host, the key or the script error.
    return UnavailableError(f"rate limiter failed: {type(exc).__name__}")


class RedisRateLimiter:
    """The shared, multi-process limiter on a synchronous ``redis.Redis`` client.

    Raises:
        ConfigurationError: the client's timeouts are unbounded or the namespace is empty.
    """

    def __init__(self, client: redis.Redis, *, namespace: str = DEFAULT_NAMESPACE) -> None:
        #: Worst-case seconds of one attempt (connect + reply), from the client's settings.
        self.timeout = _check_timeouts(_connection_kwargs(client))
        self._client = client
        self._namespace = _check_namespace(namespace)
        self._script: LuaScript | PackedLuaScript = LuaScript(client, GCRA_LUA)
        self._levels_script: LuaScript | PackedLuaScript = LuaScript(client, GCRA_LEVELS_LUA)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float | None = None,
    ) -> RedisRateLimiter:
        """Connect to ``url`` (``redis://host:port/db``) with bounded timeouts and no retries.

        ``connect_timeout`` defaults to ``timeout``. Nothing is sent until the first decision.

        Raises:
            ConfigurationError: the URL or a timeout is invalid.
        """
        client = client_from_url(url, timeout=timeout, connect_timeout=connect_timeout)
        limiter = cls(client, namespace=namespace)
        if PackedLuaScript.supports(client):
            # A client built here retries nothing, so nothing of redis-py's path is lost.
            limiter._script = PackedLuaScript(client, GCRA_LUA)
            limiter._levels_script = PackedLuaScript(client, GCRA_LEVELS_LUA)
        return limiter

    def hit(self, bucket: str, policy: RateLimitPolicy) -> RateLimitDecision:
        """Count one request in ``bucket`` and return the decision (one round trip).

        Raises:
            UnavailableError: Redis is unreachable, too slow, or answered with an error or
                garbage.
        """
        key = rate_limit_key(bucket, self._namespace)
        try:
            reply = self._script(keys=[key], args=_script_args(policy))
        except _FAILURES as exc:
            raise _failure(exc) from None
        return decision_from_reply(reply, policy)

    def hit_levels(self, levels: Sequence[Level], /) -> tuple[RateLimitDecision, ...]:
        """Count one request in every level's bucket, or in none (one round trip, one script).

        Raises:
            UnavailableError: Redis is unreachable, too slow, or answered with an error or
                garbage.
        """
        buckets, args = _levels_args(levels)
        keys = [rate_limit_key(bucket, self._namespace) for bucket in buckets]
        try:
            reply = self._levels_script(keys=keys, args=args)
        except _FAILURES as exc:
            raise _failure(exc) from None
        return decisions_from_reply(reply, [policy for _, policy in levels])

    def close(self) -> None:
        """Close the client's connections."""
        close_client(self._client)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(namespace={self._namespace!r})"


class AsyncRedisRateLimiter:
    """The async twin of :class:`RedisRateLimiter`, on a ``redis.asyncio.Redis`` client.

    Besides the client's socket timeouts, each decision runs under ``asyncio.timeout`` of the
    same total, so a stalled server never holds a request longer than that.

    Raises:
        ConfigurationError: the client's timeouts are unbounded or the namespace is empty.
    """

    def __init__(self, client: redis.asyncio.Redis, *, namespace: str = DEFAULT_NAMESPACE) -> None:
        #: Worst-case seconds of one decision (connect + reply), from the client's settings.
        self.timeout = _check_timeouts(_connection_kwargs(client))
        self._client = client
        self._namespace = _check_namespace(namespace)
        self._script: AsyncLuaScript | AsyncPackedLuaScript = AsyncLuaScript(client, GCRA_LUA)
        self._levels_script: AsyncLuaScript | AsyncPackedLuaScript = AsyncLuaScript(
            client, GCRA_LEVELS_LUA
        )
        # redis-py's asyncio cluster client learns the slot map on first use, and concurrent
        # first uses race each other: the first decision initializes it alone.
        self._uninitialized = isinstance(client, redis.asyncio.cluster.RedisCluster)
        self._init_lock: asyncio.Lock | None = None

    async def _initialize(self) -> None:
        if self._init_lock is None:
            self._init_lock = asyncio.Lock()
        async with self._init_lock:
            if self._uninitialized:
                await self._client.initialize()
                self._uninitialized = False

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float | None = None,
    ) -> AsyncRedisRateLimiter:
        """Async twin of :meth:`RedisRateLimiter.from_url` (connects lazily; not a coroutine).

        Raises:
            ConfigurationError: the URL or a timeout is invalid.
        """
        client = async_client_from_url(url, timeout=timeout, connect_timeout=connect_timeout)
        limiter = cls(client, namespace=namespace)
        if AsyncPackedLuaScript.supports(client):
            limiter._script = AsyncPackedLuaScript(client, GCRA_LUA)
            limiter._levels_script = AsyncPackedLuaScript(client, GCRA_LEVELS_LUA)
        return limiter

    async def ahit(self, bucket: str, policy: RateLimitPolicy) -> RateLimitDecision:
        """Count one request in ``bucket`` and return the decision (one round trip).

        Raises:
            UnavailableError: Redis is unreachable, too slow, or answered with an error or
                garbage.
        """
        key = rate_limit_key(bucket, self._namespace)
        try:
            if self._uninitialized:
                async with asyncio.timeout(self.timeout):
                    await self._initialize()
            async with asyncio.timeout(self.timeout):
                reply = await self._script(keys=[key], args=_script_args(policy))
        except _ASYNC_FAILURES as exc:
            raise _failure(exc) from None
        return decision_from_reply(reply, policy)

    async def ahit_levels(self, levels: Sequence[Level], /) -> tuple[RateLimitDecision, ...]:
        """Async twin of :meth:`RedisRateLimiter.hit_levels` (one round trip).

        Raises:
            UnavailableError: Redis is unreachable, too slow, or answered with an error or
                garbage.
        """
        buckets, args = _levels_args(levels)
        keys = [rate_limit_key(bucket, self._namespace) for bucket in buckets]
        try:
            if self._uninitialized:
                async with asyncio.timeout(self.timeout):
                    await self._initialize()
            async with asyncio.timeout(self.timeout):
                reply = await self._levels_script(keys=keys, args=args)
        except _ASYNC_FAILURES as exc:
            raise _failure(exc) from None
        return decisions_from_reply(reply, [policy for _, policy in levels])

    async def aclose(self) -> None:
        """Close the client's connections."""
        await aclose_client(self._client)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(namespace={self._namespace!r})"


# --- cross-process cache invalidation ---------------------------------------------------------

#: Pub/sub channel the invalidators use.
DEFAULT_CHANNEL: Final = "authcore:invalidate"
# How long one wait for a pub/sub message lasts: the subscriber checks for stop() this often.
_POLL_SECONDS: Final = 0.5
_MAX_BACKOFF: Final = 2.0


def _publish_failed(exc: BaseException) -> None:
    # The change is committed already; failing the caller would suggest it was not. Other
    # processes still get it from a SQL store's invalidation outbox (within a second), else
    # after the cache TTL. No message content: it names a digest or an id.
    _log.warning(
        "cache invalidation publish failed (%s); other processes get it from the store's"
        " invalidation outbox, or after the cache TTL",
        type(exc).__name__,
    )


class _Subscription:
    """What sync and async subscribers share: apply a pub/sub message to a cache."""

    def __init__(self, cache: CachedStore) -> None:
        self.cache = cache
        self.confirmed = 0

    def handle(self, message: dict[str, Any]) -> bool:
        """Apply ``message``; return True when it confirms a (re)subscription."""
        kind = message.get("type")
        if kind == "subscribe":
            self.confirmed += 1
            if self.confirmed > 1:
                # Resubscribed after a disconnect: anything published meanwhile was lost
                # (pub/sub is at-most-once), so nothing cached before now can be trusted.
                self.cache.clear()
            return True
        if kind == "message":
            invalidation = Invalidation.decode(message.get("data", b""))
            if invalidation is None:
                _log.debug("ignored a malformed cache invalidation message")
            else:
                self.cache.apply(invalidation)
        return False


class RedisInvalidator:
    """Cross-process cache invalidation over Redis pub/sub, for synchronous applications.

    :meth:`attach` makes a :class:`~authcore.backends.cache.CachedStore` publish what it
    invalidates and starts a daemon thread that applies what other processes publish. Pub/sub
    is at-most-once: a message lost in a disconnect is covered by clearing the cache on every
    resubscription, and otherwise by the cache TTL.

    Raises:
        ConfigurationError: the client's timeouts are unbounded or the channel is empty.
    """

    def __init__(self, client: redis.Redis, *, channel: str = DEFAULT_CHANNEL) -> None:
        _check_timeouts(_connection_kwargs(client))
        if not isinstance(channel, str) or not channel:
            raise ConfigurationError("an invalidation channel is a non-empty string")
        self._client = client
        self._channel = channel
        self._failed_publishes = 0
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_url(
        cls, url: str, *, channel: str = DEFAULT_CHANNEL, timeout: float = DEFAULT_TIMEOUT
    ) -> RedisInvalidator:
        """Connect to ``url`` with bounded timeouts and no retries.

        Raises:
            ConfigurationError: the URL or the timeout is invalid.
        """
        return cls(client_from_url(url, timeout=timeout), channel=channel)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(channel={self._channel!r})"

    @property
    def failed_publishes(self) -> int:
        """How many publishes failed so far (each was logged)."""
        return self._failed_publishes

    def publish(self, invalidation: Invalidation, /) -> None:
        """Tell every subscribed process; a failure is logged and counted, never raised."""
        try:
            self._client.publish(self._channel, invalidation.encode())
        except _FAILURES as exc:
            self._failed_publishes += 1
            _publish_failed(exc)

    async def apublish(self, invalidation: Invalidation, /) -> None:
        """Async twin of :meth:`publish` (runs the blocking client in a worker thread)."""
        await asyncio.to_thread(self.publish, invalidation)

    def attach(self, cache: CachedStore) -> None:
        """Publish ``cache``'s invalidations and apply other processes' to it.

        Raises:
            ConfigurationError: already attached.
        """
        if self._thread is not None:
            raise ConfigurationError("this RedisInvalidator is already attached to a cache")
        cache.publisher = self
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, args=(_Subscription(cache),), name="authcore-invalidator", daemon=True
        )
        self._thread.start()

    def wait_ready(self, timeout: float) -> bool:
        """Wait until the subscription is confirmed; return whether it is."""
        return self._ready.wait(timeout)

    def stop(self) -> None:
        """Stop the subscriber thread (waits for it, at most a few seconds)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=_POLL_SECONDS + _MAX_BACKOFF + 1.0)
            self._thread = None
        self._ready.clear()

    def close(self) -> None:
        """Stop the subscriber and close the client's connections."""
        self.stop()
        close_client(self._client)

    def _run(self, subscription: _Subscription) -> None:
        backoff = 0.05
        while not self._stop.is_set():
            pubsub = None
            try:
                # Inside the try: a Cluster client meets its nodes here (redis_clients.LazyCluster).
                pubsub = self._client.pubsub()  # type: ignore[no-untyped-call, unused-ignore]  # typed from redis-py 8.2 on
                pubsub.subscribe(self._channel)
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=_POLL_SECONDS)
                    if message is not None and subscription.handle(message):
                        self._ready.set()
                        backoff = 0.05
            except _FAILURES as exc:
                self._ready.clear()
                _log.warning("cache invalidation subscriber lost Redis (%s)", type(exc).__name__)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
            finally:
                if pubsub is not None:
                    pubsub.close()


class AsyncRedisInvalidator:
    """The async twin of :class:`RedisInvalidator`: the subscriber is an asyncio task.

    Raises:
        ConfigurationError: the client's timeouts are unbounded or the channel is empty.
    """

    def __init__(self, client: redis.asyncio.Redis, *, channel: str = DEFAULT_CHANNEL) -> None:
        self._timeout = _check_timeouts(_connection_kwargs(client))
        if not isinstance(channel, str) or not channel:
            raise ConfigurationError("an invalidation channel is a non-empty string")
        self._client = client
        self._channel = channel
        self._failed_publishes = 0
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Strong references to fire-and-forget publishes (see publish()).
        self._pending: set[asyncio.Task[None]] = set()

    @classmethod
    def from_url(
        cls, url: str, *, channel: str = DEFAULT_CHANNEL, timeout: float = DEFAULT_TIMEOUT
    ) -> AsyncRedisInvalidator:
        """Connect to ``url`` with bounded timeouts and no retries (lazily; not a coroutine).

        Raises:
            ConfigurationError: the URL or the timeout is invalid.
        """
        if url.startswith(CLUSTER_SCHEME):
            # redis-py's asyncio cluster client has no pub/sub: use RedisInvalidator there.
            raise ConfigurationError("AsyncRedisInvalidator cannot subscribe on Redis Cluster")
        return cls(async_client_from_url(url, timeout=timeout), channel=channel)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(channel={self._channel!r})"

    @property
    def failed_publishes(self) -> int:
        """How many publishes failed so far (each was logged)."""
        return self._failed_publishes

    async def apublish(self, invalidation: Invalidation, /) -> None:
        """Tell every subscribed process; a failure is logged and counted, never raised."""
        try:
            async with asyncio.timeout(self._timeout):
                await self._client.publish(self._channel, invalidation.encode())
        except _ASYNC_FAILURES as exc:
            self._failed_publishes += 1
            _publish_failed(exc)

    def publish(self, invalidation: Invalidation, /) -> None:
        """Publish from synchronous code running on the event loop's thread.

        The async client can only be used from its loop, so this schedules :meth:`apublish`
        there; with no running loop the message is dropped (logged) and the TTL bound holds.
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            _log.warning("cache invalidation not published: no running event loop")
            return
        task = loop.create_task(self.apublish(invalidation))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def attach(self, cache: CachedStore) -> None:
        """Publish ``cache``'s invalidations and apply other processes' to it (a task).

        Raises:
            ConfigurationError: already attached.
        """
        if self._task is not None:
            raise ConfigurationError("this AsyncRedisInvalidator is already attached to a cache")
        cache.publisher = self
        self._task = asyncio.get_running_loop().create_task(
            self._run(_Subscription(cache)), name="authcore-invalidator"
        )

    async def wait_ready(self) -> None:
        """Wait until the subscription is confirmed (bound it with ``asyncio.timeout``)."""
        await self._ready.wait()

    async def stop(self) -> None:
        """Cancel the subscriber task and wait for it."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._ready.clear()
        # Let fire-and-forget publishes finish (each is bounded by the client's timeouts).
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def aclose(self) -> None:
        """Stop the subscriber and close the client's connections."""
        await self.stop()
        await aclose_client(self._client)

    async def _run(self, subscription: _Subscription) -> None:
        backoff = 0.05
        while True:
            pubsub = self._client.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                while True:
                    message = await pubsub.get_message(timeout=_POLL_SECONDS)
                    if message is not None and subscription.handle(message):
                        self._ready.set()
                        backoff = 0.05
            except _ASYNC_FAILURES as exc:
                self._ready.clear()
                _log.warning("cache invalidation subscriber lost Redis (%s)", type(exc).__name__)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
            finally:
                await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]  # typed from redis-py 8.2 on
