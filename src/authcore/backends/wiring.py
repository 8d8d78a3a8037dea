"""The one call that wires a service: :func:`connect`, and the :class:`Auth` it returns.

``connect()`` is how a service of your own uses authcore, and how ``authcore serve`` and
``authcore dashboard`` are wired too (one wiring path)::

    from authcore.backends import connect

    auth = connect()  # AUTHCORE_DB, AUTHCORE_CONFIG, AUTHCORE_REDIS from the environment

It opens the store named by the database URL (``sqlite:///PATH``, the embedded default, or
``postgresql://...``; see :mod:`authcore.backends.database`) behind the verification cache,
reads the same TOML configuration the command line reads (or, without one, the development
secrets next to the SQLite database; see :mod:`authcore.backends.dev_secrets`), and builds the
two route groups' authenticators: the API (root keys and dashboard JWTs) and the portal (portal
sessions, under ``/portal/``). Every change recorded in the SQL store's invalidation outbox, by
any process, reaches this one's cache within a second (:mod:`authcore.backends.outbox`). With a
Redis URL the rate limit is shared by every process and cache invalidations also travel through
Redis, faster; without one the limiter is in this process. The returned
:class:`Auth` goes straight to the adapters (``install_auth(app, auth)``, ``AuthCore(app,
auth)``, ``AuthMiddleware(app, auth)``), which start and stop it with the app.

Everything here is re-exported by :mod:`authcore.backends`: import it from there.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final

from authcore.backends._tables import DEFAULT_MAX_BYTES
from authcore.backends.cache import CachedStore
from authcore.backends.database import DEFAULT_DB, check_database_url, open_store
from authcore.backends.dev_secrets import resolve_config
from authcore.backends.memory import MemoryRateLimiter
from authcore.backends.outbox import InvalidationFollower
from authcore.backends.token_cache import VerifiedTokenCache
from authcore.backends.usage_recorder import DEFAULT_INTERVAL as USAGE_INTERVAL
from authcore.backends.usage_recorder import UsageCounter, UsageRecorder
from authcore.credentials import DEFAULT_PORTAL_COOKIE, CredentialSettings
from authcore.errors import ConfigurationError, UnavailableError
from authcore.flow import AsyncBackends, Authenticator, AuthSettings, Backends
from authcore.ratelimit import LimiterFailurePolicy, RateLimitPolicy
from authcore.ratelimit_fields import RateLimitHeaders

if TYPE_CHECKING:
    from authcore.backends.redis import RedisInvalidator
    from authcore.config import Config
    from authcore.keyring import Keyring

__all__ = [
    "CACHE_MAX_BYTES",
    "CACHE_TTL",
    "DEFAULT_RATE_LIMIT",
    "PORTAL_PREFIX",
    "Auth",
    "connect",
    "invalidation_publisher",
]

#: Seconds a cached key, session or conclusion may outlive a change made in *another* process
#: when nothing told this one: the backstop behind the outbox follower and Redis (a change
#: made behind the library, or while this process cannot reach the database).
CACHE_TTL: Final = 30
#: Estimated bytes each per-process cache table may hold (records, refusals, each route
#: group's conclusions, verified JWTs): 64 MiB, beside each table's entry bound (10,000).
CACHE_MAX_BYTES: Final = DEFAULT_MAX_BYTES
#: The limit of a workspace without a policy of its own (that of ``authcore.flow.AuthSettings``).
DEFAULT_RATE_LIMIT: Final = AuthSettings().default_rate_limit
#: The route-group prefix of the portal (portal sessions; everything else is the API).
PORTAL_PREFIX: Final = "/portal/"


class Auth:
    """Everything :func:`connect` wired: give it to an adapter, manage keys through ``store``.

    - ``api``: the :class:`~authcore.flow.Authenticator` of the API routes (root keys, JWTs);
    - ``portal``: the portal routes' (portal sessions, cookie or Bearer);
    - ``groups``: ``{"/portal/": portal}``, the route groups an adapter uses beside ``api``;
    - ``store``: the store behind the verification cache, sync and async; changes made through
      it (``create_root_key``, ``revoke_root_key``, ...) are seen at once in this process and,
      through the store's outbox (and Redis, if configured), in every other within a second;
    - ``config``: the configuration that was read (its JWT keyring);
    - ``usage`` and ``recorder``: where every request's outcome is counted, and what flushes
      the counts to the store (None when ``usage=False``; see :mod:`authcore.usage`).

    - ``follower``: the thread that applies the store's invalidation outbox to ``store``
      (None for a store without one, the memory store).

    :meth:`start` / :meth:`astart` start what runs in the background (the outbox follower, the
    Redis invalidation subscriber, the usage recorder); :meth:`close` / :meth:`aclose` stop it
    (the recorder flushes a last time) and close every pool and connection.
    The adapters call them with the app's lifecycle (ASGI lifespan; ``atexit`` for WSGI and
    Flask); a script may use ``with connect() as auth:``.
    """

    def __init__(
        self,
        *,
        api: Authenticator,
        portal: Authenticator,
        store: CachedStore,
        config: Config,
        closers: list[Callable[[], Any]],
        invalidator: RedisInvalidator | None = None,
        portal_prefix: str = PORTAL_PREFIX,
        recorder: UsageRecorder | None = None,
        follower: InvalidationFollower | None = None,
    ) -> None:
        self.api = api
        self.portal = portal
        self.store = store
        self.config = config
        self.invalidator = invalidator
        #: Applies what every process records in the store's outbox (None: a memory store).
        self.follower = follower
        self.portal_prefix = portal_prefix
        self.recorder = recorder
        #: What the request gate counts into (None: usage is not counted).
        self.usage: UsageCounter | None = None if recorder is None else recorder.counter
        self._closers = closers
        self._lock = threading.Lock()
        self._started = False
        self._closed = False

    def __repr__(self) -> str:
        redis = "redis" if self.invalidator is not None else "no redis"
        return f"Auth({type(self.store.inner).__name__}, {redis})"

    @classmethod
    def wire(
        cls,
        store: Any,
        config: Config,
        *,
        redis: str | None = None,
        default_rate_limit: RateLimitPolicy | None = DEFAULT_RATE_LIMIT,
        cache_ttl: float = CACHE_TTL,
        cache_max_bytes: int = CACHE_MAX_BYTES,
        portal_cookie: str = DEFAULT_PORTAL_COOKIE,
        portal_origins: tuple[str, ...] = (),
        portal_prefix: str = PORTAL_PREFIX,
        owns_store: bool = False,
        limiter_failure: LimiterFailurePolicy = LimiterFailurePolicy.FAIL_CLOSED,
        usage: bool = True,
        usage_interval: float = USAGE_INTERVAL,
        rate_limit_headers: RateLimitHeaders | str | None = None,
    ) -> Auth:
        """Wire an already open ``store`` (sync and async) with ``config``: what
        :func:`connect` does with the store and configuration; the options mean what they
        mean there. ``portal_origins``: origins besides the site's own whose cookie-borne
        portal writes pass the cross-site rule; ``owns_store``: closing the Auth closes it.

        Raises:
            ConfigurationError: an invalid setting or Redis URL.
            UnavailableError: Redis is asked for and its backend is not installed.
        """
        closers: list[Callable[[], Any]] = [getattr(store, "close", _nothing)] if owns_store else []
        # On a failure the store stays open: whoever opened it closes it (as connect() does).
        with _closed_on_failure(closers):
            cached = CachedStore(
                store, ttl=cache_ttl, max_bytes=cache_max_bytes, max_negative_bytes=cache_max_bytes
            )
            backends, abackends, invalidator = _backends(cached, redis, closers)
            api, portal = _route_groups(
                config,
                backends,
                abackends,
                default_rate_limit=default_rate_limit,
                limiter_failure=limiter_failure,
                portal_cookie=portal_cookie,
                portal_origins=portal_origins,
                cache_max_bytes=cache_max_bytes,
                rate_limit_headers=(
                    config.rate_limit_headers if rate_limit_headers is None else rate_limit_headers
                ),
            )
        recorder = _recorder(store, usage, usage_interval, closers)
        follower = _follower(store, cached, closers)
        return cls(
            api=api,
            portal=portal,
            store=cached,
            config=config,
            closers=closers,
            invalidator=invalidator,
            portal_prefix=portal_prefix,
            recorder=recorder,
            follower=follower,
        )

    @property
    def running(self) -> bool:
        """Whether :meth:`start` ran and :meth:`close` did not."""
        return self._started and not self._closed

    @property
    def authenticator(self) -> Authenticator:
        """The default route group's authenticator (the API's)."""
        return self.api

    @property
    def groups(self) -> dict[str, Authenticator]:
        """The other route groups by path prefix: the portal."""
        return {self.portal_prefix: self.portal}

    def start(self) -> None:
        """Start the background work (the outbox follower, the Redis subscriber, the usage
        recorder); idempotent.

        Raises:
            ConfigurationError: the Auth was closed.
        """
        with self._lock:
            if self._closed:
                raise ConfigurationError("this Auth was closed")
            if self._started:
                return
            self._started = True
            if self.follower is not None:
                self.follower.start()
            if self.invalidator is not None:
                self.invalidator.attach(self.store)
            if self.recorder is not None:
                self.recorder.start()

    async def astart(self) -> None:
        """Async twin of :meth:`start` (what an ASGI lifespan startup calls)."""
        self.start()

    def close(self) -> None:
        """Stop the background work and close every pool and connection; idempotent.

        Called from a running event loop, the asyncio clients (the async Redis limiter) cannot
        be awaited here: an async app closes with :meth:`aclose` (the adapters' lifespan does).
        """
        for result in self._close_all():
            if inspect.isawaitable(result):
                _run_to_end(result)

    async def aclose(self) -> None:
        """Async twin of :meth:`close` (what an ASGI lifespan shutdown calls)."""
        for result in self._close_all():
            if inspect.isawaitable(result):
                with contextlib.suppress(Exception):
                    await result

    def _close_all(self) -> list[object]:
        with self._lock:
            if self._closed:
                return []
            self._closed = True
            closers, self._closers = self._closers, []
        results: list[object] = []
        for close in reversed(closers):
            # Each part is closed even if another fails; a failure here has nowhere to go.
            with contextlib.suppress(Exception):
                results.append(close())
        return results

    def __enter__(self) -> Auth:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: object) -> AsyncIterator[None]:
        """A Starlette/FastAPI ``lifespan`` that starts and closes this Auth with the app."""
        await self.astart()
        try:
            yield
        finally:
            await self.aclose()


def connect(
    db: str | None = None,
    *,
    redis: str | None = None,
    config: str | None = None,
    environ: Mapping[str, str] | None = None,
    default_rate_limit: RateLimitPolicy | None = DEFAULT_RATE_LIMIT,
    cache_ttl: float = CACHE_TTL,
    cache_max_bytes: int = CACHE_MAX_BYTES,
    portal_cookie: str = DEFAULT_PORTAL_COOKIE,
    portal_prefix: str = PORTAL_PREFIX,
    note: Callable[[str], None] | None = None,
    limiter_failure: LimiterFailurePolicy = LimiterFailurePolicy.FAIL_CLOSED,
    usage: bool = True,
    usage_interval: float = USAGE_INTERVAL,
    rate_limit_headers: RateLimitHeaders | str | None = None,
) -> Auth:
    """Open and wire everything a service needs to authenticate requests (module doc).

    ``db``, ``redis``, ``config``: else ``AUTHCORE_DB`` (else ``sqlite:///./authcore.db``),
    ``AUTHCORE_REDIS``, ``AUTHCORE_CONFIG`` (else development secrets, which ``note`` hears of).
    ``default_rate_limit``: workspaces without one; ``cache_ttl``: how long an unseen change
    lasts; ``cache_max_bytes``: each cache table's estimated bytes; ``limiter_failure``: with
    Redis down, 503 (``FAIL_CLOSED``) or a bounded limiter here (``LOCAL_FALLBACK``); ``usage``:
    count outcomes, record them every ``usage_interval`` s and on close; ``rate_limit_headers``:
    ``"draft"``, ``"legacy"``, ``"both"``, ``"none"`` (None: the config's). The Auth owns the store.

    Raises:
        ConfigurationError: a URL or the configuration is invalid.
        UnavailableError: the database cannot be reached or its backend is not installed.
    """
    env = os.environ if environ is None else environ
    db_url = db or env.get("AUTHCORE_DB") or DEFAULT_DB
    check_database_url(db_url)  # before the configuration: a bad URL writes no file
    config = config or env.get("AUTHCORE_CONFIG")
    # A config file is read before the store opens, dev secrets made only once it is open.
    loaded = resolve_config(config, db_url, environ=env) if config else None
    store = open_store(db_url)
    try:
        if loaded is None:
            loaded = resolve_config(None, db_url, environ=env, note=note)
        return Auth.wire(
            store,
            loaded,
            redis=redis or env.get("AUTHCORE_REDIS") or None,
            default_rate_limit=default_rate_limit,
            cache_ttl=cache_ttl,
            cache_max_bytes=cache_max_bytes,
            portal_cookie=portal_cookie,
            portal_prefix=portal_prefix,
            owns_store=True,
            limiter_failure=limiter_failure,
            usage=usage,
            usage_interval=usage_interval,
            rate_limit_headers=rate_limit_headers,
        )
    except BaseException:
        with contextlib.suppress(Exception):
            getattr(store, "close", _nothing)()
        raise


@contextlib.contextmanager
def _closed_on_failure(closers: list[Callable[[], Any]]) -> Iterator[None]:
    """If the block fails, close what it added to ``closers`` (last first), then re-raise."""
    opened_before = len(closers)
    try:
        yield
    except BaseException:
        for close in reversed(closers[opened_before:]):
            with contextlib.suppress(Exception):
                close()
        raise


def _backends(
    cached: CachedStore, redis: str | None, closers: list[Callable[[], Any]]
) -> tuple[Backends, AsyncBackends, RedisInvalidator | None]:
    """What both route groups run on: ``cached`` and the rate limiters, in this process or,
    with a ``redis`` URL, shared through Redis (then with a bounded limiter in this process
    for ``LOCAL_FALLBACK``, and the invalidator). What must be closed goes to ``closers``.

    Raises:
        ConfigurationError: an invalid Redis URL.
        UnavailableError: the Redis backend is not installed.
    """
    invalidator: RedisInvalidator | None = None
    if redis is None:
        limiter: Any = MemoryRateLimiter()
        alimiter: Any = limiter
    else:
        limiter, alimiter, invalidator = _redis(redis, closers)
    fallback = MemoryRateLimiter() if redis is not None else None
    return (
        Backends(store=cached, limiter=limiter, fallback_limiter=fallback),
        AsyncBackends(store=cached, limiter=alimiter, fallback_limiter=fallback),
        invalidator,
    )


def _recorder(
    store: Any, usage: bool, interval: float, closers: list[Callable[[], Any]]
) -> UsageRecorder | None:
    if not usage:
        return None
    recorder = UsageRecorder(store, UsageCounter(), interval=interval)
    # Closed before the store (closers run last first): its last flush needs it.
    closers.append(recorder.close)
    return recorder


def _follower(
    store: Any, cached: CachedStore, closers: list[Callable[[], Any]]
) -> InvalidationFollower | None:
    """What applies ``store``'s invalidation outbox to ``cached``, when it has one (the SQL
    stores; the memory store serves one process)."""
    open_source = getattr(store, "invalidation_source", None)
    if not callable(open_source):
        return None
    follower = InvalidationFollower(cached, open_source)
    # Stopped first (closers run last first): it reads through a connection of its own.
    closers.append(follower.close)
    return follower


def _route_groups(
    config: Config,
    backends: Backends,
    abackends: AsyncBackends,
    *,
    default_rate_limit: RateLimitPolicy | None,
    limiter_failure: LimiterFailurePolicy,
    portal_cookie: str,
    portal_origins: tuple[str, ...],
    cache_max_bytes: int,
    rate_limit_headers: RateLimitHeaders | str,
) -> tuple[Authenticator, Authenticator]:
    """The API's authenticator (root keys, dashboard JWTs) and the portal's (portal sessions).

    Both run on the same backends with the same default limit, limiter-failure policy and
    rate-limit fields;
    each has its own credentials and realm, and only the API verifies JWTs.

    Raises:
        ConfigurationError: an invalid portal cookie name or origin.
    """

    def group(
        realm: str,
        credentials: CredentialSettings,
        keyring: Keyring | None = None,
        token_cache: VerifiedTokenCache | None = None,
    ) -> Authenticator:
        settings = AuthSettings(
            credentials=credentials,
            keyring=keyring,
            token_cache=token_cache,
            default_rate_limit=default_rate_limit,
            limiter_failure=limiter_failure,
            realm=realm,
            rate_limit_headers=rate_limit_headers,
        )
        return Authenticator(settings, clock=time.time, backends=backends, abackends=abackends)

    api = group(
        "api",
        CredentialSettings.api(),
        config.jwt.verifying_keyring(),
        VerifiedTokenCache(max_bytes=cache_max_bytes),
    )
    portal = group(
        "portal", CredentialSettings.portal(portal_cookie, allowed_origins=portal_origins)
    )
    return api, portal


def _redis(url: str, closers: list[Callable[[], Any]]) -> tuple[Any, Any, RedisInvalidator]:
    try:
        from authcore.backends.redis import (  # noqa: PLC0415 - optional extra
            AsyncRedisRateLimiter,
            RedisInvalidator,
            RedisRateLimiter,
        )
    except ImportError as exc:
        raise UnavailableError(f"the Redis backend is not installed ({exc.name})") from None
    limiter = RedisRateLimiter.from_url(url)
    closers.append(limiter.close)
    alimiter = AsyncRedisRateLimiter.from_url(url)
    closers.append(alimiter.aclose)
    invalidator = RedisInvalidator.from_url(url)
    closers.append(invalidator.close)
    return limiter, alimiter, invalidator


def invalidation_publisher(url: str) -> RedisInvalidator:
    """A Redis publisher of cache invalidations, for a process that changes things but serves
    nothing (the command line): attach it as a ``CachedStore``'s ``publisher``.

    Raises:
        ConfigurationError: the URL is invalid.
        UnavailableError: the Redis backend is not installed.
    """
    try:
        from authcore.backends.redis import RedisInvalidator  # noqa: PLC0415 - optional extra
    except ImportError as exc:
        raise UnavailableError(f"the Redis backend is not installed ({exc.name})") from None
    return RedisInvalidator.from_url(url)


def _run_to_end(awaitable: Any) -> None:
    """Finish ``awaitable`` from sync code: in a fresh event loop, unless one runs here."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        with contextlib.suppress(Exception):
            asyncio.run(_awaited(awaitable))
        return
    # Inside a running loop nothing can be awaited from sync code: drop it cleanly.
    close = getattr(awaitable, "close", None)
    if close is not None:
        close()


async def _awaited(awaitable: Any) -> None:
    await awaitable


def _nothing() -> None:
    return None
