"""Storage and rate-limit backends, and :func:`connect`: everything wired from URLs in one call.

``connect()`` is how a service of your own uses authcore, and how ``authcore serve`` and
``authcore dashboard`` are wired too (one wiring path)::

    from authcore.backends import connect

    auth = connect()  # AUTHCORE_DB, AUTHCORE_CONFIG, AUTHCORE_REDIS from the environment

It opens the store named by the database URL (``sqlite:///PATH``, the embedded default, or
``postgresql://...``) behind the verification cache, reads the same TOML configuration the
command line reads (or, without one, the development secrets next to the SQLite database), and
builds the two route groups' authenticators: the API (root keys and dashboard JWTs) and the
portal (portal sessions, under ``/portal/``). With a Redis URL the rate limit is shared by every
process and cache invalidations reach them all; without one the limiter is in this process.
The returned :class:`Auth` goes straight to the adapters (``install_auth(app, auth)``,
``AuthCore(app, auth)``, ``AuthMiddleware(app, auth)``), which start and stop it with the app.

:func:`open_store` alone opens a store from its URL (what ``authcore`` commands use).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import re
import secrets as _random
import stat
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from authcore.backends.cache import CachedStore
from authcore.backends.memory import MemoryRateLimiter
from authcore.backends.token_cache import VerifiedTokenCache
from authcore.backends.usage import DEFAULT_INTERVAL as USAGE_INTERVAL
from authcore.backends.usage import UsageCounter, UsageRecorder
from authcore.config import Config, load_config, parse_config, render_dev_config
from authcore.credentials import DEFAULT_PORTAL_COOKIE, CredentialSettings
from authcore.errors import ConfigurationError, UnavailableError
from authcore.flow import AsyncBackends, Authenticator, AuthSettings, Backends
from authcore.ratelimit import LimiterFailurePolicy, RateLimitPolicy
from authcore.tokens import Secret

if TYPE_CHECKING:
    from authcore.backends.redis import RedisInvalidator
    from authcore.store import Store

__all__ = [
    "CACHE_TTL",
    "DEFAULT_DB",
    "DEFAULT_RATE_LIMIT",
    "DEV_SECRETS_FILE",
    "Auth",
    "CachedStore",
    "connect",
    "invalidation_publisher",
    "open_store",
    "redact_database_url",
    "resolve_config",
    "sqlite_path",
]

#: The database when no URL is given anywhere: SQLite in the working directory.
DEFAULT_DB: Final = "sqlite:///./authcore.db"
#: Development JWT secrets, kept next to the SQLite database when no config file is given.
DEV_SECRETS_FILE: Final = "authcore-dev-secrets.toml"
#: Seconds a cached key, session or conclusion may outlive a change made in *another* process
#: that did not publish it (no Redis): the revocation bound ``connect()`` builds with.
CACHE_TTL: Final = 30
#: The limit of a workspace without a policy of its own (that of ``authcore.flow.AuthSettings``).
DEFAULT_RATE_LIMIT: Final = AuthSettings().default_rate_limit
#: The route-group prefix of the portal (portal sessions; everything else is the API).
PORTAL_PREFIX: Final = "/portal/"

_DEV_KID: Final = "dev-1"
_MAX_DEV_SECRETS_BYTES: Final = 64 * 1024
# key=value pairs whose key mentions a password (libpq keyword strings, URL query strings):
# a quoted value may hold spaces and escaped quotes (libpq's rules), anything else runs to the
# next space or "&".
_PASSWORD_PAIR: Final = re.compile(
    r"(?i)(\b[a-z_]*pass[a-z_]*\s*=\s*)(?:'(?:[^'\\]|\\.)*'?|[^\s&]*)"
)
_SCHEME: Final = re.compile(r"[a-z][a-z0-9+.-]{0,19}")


# --- database URLs --------------------------------------------------------------------------


def redact_database_url(url: str) -> str:
    """Return ``url`` (a database URL or a libpq keyword string) without any password.

    Never fails, whatever the text: a URL too broken to parse is redacted all the same. The
    user-info part loses everything after its first ``:``; every ``...pass...=VALUE`` pair (as
    in ``password=``, ``sslpassword=``, ``passfile=``) loses its value.
    """
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest:
        # The last "@" ends the user info (a raw "@" in a password is common): everything
        # before it that follows a ":" is the password, whatever else it contains.
        userinfo, _, after = rest.rpartition("@")
        user, colon, _password = userinfo.partition(":")
        rest = f"{user}{':***' if colon else ''}@{after}"
    return _PASSWORD_PAIR.sub(r"\g<1>***", f"{scheme}{sep}{rest}")


def sqlite_path(url: str) -> str | None:
    """Return the file path of an ``sqlite:///PATH`` URL, None for another scheme.

    Raises:
        ConfigurationError: an ``sqlite:`` URL without a path.
    """
    if not url.startswith("sqlite:"):
        return None
    if not url.startswith("sqlite:///") or len(url) == len("sqlite:///"):
        raise ConfigurationError(
            f"{url!r} is not sqlite:///PATH (relative) or sqlite:////PATH (absolute)"
        )
    return url[len("sqlite:///") :]


def open_store(url: str) -> Store:
    """Open (and migrate) the store at ``url``: ``sqlite:///PATH`` or ``postgresql://...``.

    The store answers both the sync and the async protocols. Messages name the URL redacted.

    Raises:
        ConfigurationError: the URL is not one of the supported forms.
        UnavailableError: the database cannot be opened or reached, or its backend (an
            optional extra) is not installed.
    """
    path = sqlite_path(url)
    try:
        if path is not None:
            # Imported on use: each backend pulls in its own driver.
            from authcore.backends.sqlite import SQLiteStore  # noqa: PLC0415 - see above

            return SQLiteStore(path)
        if url.startswith(("postgresql://", "postgres://")):
            from authcore.backends.postgres import PostgresStore  # noqa: PLC0415 - optional extra

            return PostgresStore(url)
    except UnavailableError as exc:
        raise UnavailableError(
            f"database {redact_database_url(url)} is unavailable ({exc.detail or 'no detail'})"
        ) from None
    except ImportError as exc:
        raise UnavailableError(
            f"the backend for {redact_database_url(url)} is not installed ({exc.name})"
        ) from None
    _check_database_url(url)
    raise AssertionError("unreachable: the URL was checked above")  # pragma: no cover


def _check_database_url(url: str) -> None:
    """Refuse a URL that names no supported store.

    Raises:
        ConfigurationError: neither ``sqlite:///PATH`` nor ``postgresql://...``.
    """
    if sqlite_path(url) is not None or url.startswith(("postgresql://", "postgres://")):
        return
    scheme, colon, _ = url.partition(":")
    shown = f" {scheme!r}" if colon and _SCHEME.fullmatch(scheme) else ""
    # Only a scheme is ever echoed: the rest may be a keyword string with a password in it.
    raise ConfigurationError(
        f"unsupported database URL scheme{shown} (use sqlite:///PATH or postgresql://USER@HOST/DB)"
    )


# --- configuration ----------------------------------------------------------------------------


def _dev_secrets_path(db_url: str) -> str:
    path = sqlite_path(db_url)
    directory = os.path.dirname(os.path.abspath(path)) if path is not None else os.getcwd()
    return os.path.join(directory, DEV_SECRETS_FILE)


def _read_dev_secrets(path: str) -> str:
    """Read the development secrets file, if it is safe to trust.

    Opened without following a symlink, then checked on the open descriptor (no race between
    the check and the read): a regular file, owned by this user, readable and writable by this
    user only (mode 0600).

    Raises:
        ConfigurationError: the file is a symlink, not a regular file, someone else's, readable
            or writable by others, too large or not UTF-8; one line naming the file.
    """
    refuse = f"refusing the development secrets file {path}"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        # ELOOP: the last component is a symlink, which O_NOFOLLOW refuses to open.
        reason = "it is a symlink" if os.path.islink(path) else exc.strerror
        raise ConfigurationError(f"{refuse}: {reason}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ConfigurationError(f"{refuse}: not a regular file")
        if info.st_uid != os.getuid():
            raise ConfigurationError(f"{refuse}: owned by another user (uid {info.st_uid})")
        mode = stat.S_IMODE(info.st_mode)
        if mode != 0o600:
            raise ConfigurationError(f"{refuse}: mode {mode:04o}, expected 0600 (chmod 600 {path})")
        raw = handle.read(_MAX_DEV_SECRETS_BYTES + 1)
    if len(raw) > _MAX_DEV_SECRETS_BYTES:
        raise ConfigurationError(f"{refuse}: larger than {_MAX_DEV_SECRETS_BYTES} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigurationError(f"{refuse}: not UTF-8") from None


def _load_dev_config(
    db_url: str, environ: Mapping[str, str], note: Callable[[str], None] | None
) -> Config:
    """Read the development secrets next to the database, creating them on first use.

    Raises:
        ConfigurationError: an existing file that is not safe to trust, or one that cannot be
            created.
    """
    path = _dev_secrets_path(db_url)
    try:
        # O_EXCL: never overwrite a file someone else created (nor follow a symlink to one);
        # 0600: only this user reads it.
        fd = os.open(
            path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
    except FileExistsError:
        text = _read_dev_secrets(path)
        message = f"no --config given: using the development JWT secrets in {path}"
    except OSError as exc:
        raise ConfigurationError(f"cannot create {path}: {exc.strerror}") from None
    else:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            # Exactly 0600 whatever the umask, so the check on the next read passes.
            os.fchmod(handle.fileno(), 0o600)
            handle.write(render_dev_config(_DEV_KID, Secret(_random.token_urlsafe(48))))
        text = _read_dev_secrets(path)
        message = f"no --config given: created development JWT secrets in {path} (do not deploy)"
    if note is not None:
        note(message)
    return parse_config(text, environ=environ, origin=f"config file {path}")


def resolve_config(
    config: str | None,
    db_url: str,
    *,
    environ: Mapping[str, str],
    note: Callable[[str], None] | None = None,
) -> Config:
    """The configuration the command line and :func:`connect` use: the TOML file ``config``,
    or without one the development secrets next to the SQLite database (created on first use,
    mode 0600; an existing one is used only if it is a regular file of this user, mode 0600).

    ``note`` hears which development file was used or created.

    Raises:
        ConfigurationError: the file cannot be read or parsed, or is not safe to trust.
    """
    if config:
        return load_config(config, environ=environ)
    return _load_dev_config(db_url, environ, note)


# --- the one call ---------------------------------------------------------------------------


class Auth:
    """Everything :func:`connect` wired: give it to an adapter, manage keys through ``store``.

    - ``api``: the :class:`~authcore.flow.Authenticator` of the API routes (root keys, JWTs);
    - ``portal``: the portal routes' (portal sessions, cookie or Bearer);
    - ``groups``: ``{"/portal/": portal}``, the route groups an adapter uses beside ``api``;
    - ``store``: the store behind the verification cache, sync and async; changes made through
      it (``create_root_key``, ``revoke_root_key``, ...) are seen at once in this process and,
      with Redis, in every other;
    - ``config``: the configuration that was read (its JWT keyring);
    - ``usage`` and ``recorder``: where every request's outcome is counted, and what flushes
      the counts to the store (None when ``usage=False``; see :mod:`authcore.usage`).

    :meth:`start` / :meth:`astart` start what runs in the background (the Redis invalidation
    subscriber, the usage recorder); :meth:`close` / :meth:`aclose` stop it (the recorder
    flushes a last time) and close every pool and connection.
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
    ) -> None:
        self.api = api
        self.portal = portal
        self.store = store
        self.config = config
        self.invalidator = invalidator
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
        portal_cookie: str = DEFAULT_PORTAL_COOKIE,
        portal_origins: tuple[str, ...] = (),
        portal_prefix: str = PORTAL_PREFIX,
        owns_store: bool = False,
        limiter_failure: LimiterFailurePolicy = LimiterFailurePolicy.FAIL_CLOSED,
        usage: bool = True,
        usage_interval: float = USAGE_INTERVAL,
    ) -> Auth:
        """Wire an already open ``store`` (sync and async) with ``config``: what
        :func:`connect` does once it has opened the store and read the configuration.

        ``portal_origins`` are origins, besides the serving site's own, whose cookie-borne
        portal writes pass the cross-site rule. With ``owns_store`` closing the Auth closes the
        store too. ``limiter_failure`` says what a request gets while Redis is down: 503
        (``FAIL_CLOSED``, the default) or a decision of a bounded limiter in this process
        (``LOCAL_FALLBACK``); either way the service recovers by itself when Redis returns.
        With ``usage`` every outcome is counted in memory and recorded in the store every
        ``usage_interval`` seconds and on close (:mod:`authcore.usage`).

        Raises:
            ConfigurationError: an invalid setting or Redis URL.
            UnavailableError: Redis is asked for and its backend is not installed.
        """
        closers: list[Callable[[], Any]] = []
        if owns_store:
            closers.append(getattr(store, "close", _nothing))
        try:
            cached = CachedStore(store, ttl=cache_ttl)
            invalidator: RedisInvalidator | None = None
            if redis is None:
                limiter: Any = MemoryRateLimiter()
                alimiter: Any = limiter
            else:
                limiter, alimiter, invalidator = _redis(redis, closers)
            fallback = MemoryRateLimiter() if redis is not None else None
            backends = Backends(store=cached, limiter=limiter, fallback_limiter=fallback)
            abackends = AsyncBackends(store=cached, limiter=alimiter, fallback_limiter=fallback)
            api = Authenticator(
                AuthSettings(
                    credentials=CredentialSettings.api(),
                    keyring=config.jwt.verifying_keyring(),
                    token_cache=VerifiedTokenCache(),
                    default_rate_limit=default_rate_limit,
                    limiter_failure=limiter_failure,
                    realm="api",
                ),
                clock=time.time,
                backends=backends,
                abackends=abackends,
            )
            portal = Authenticator(
                AuthSettings(
                    credentials=CredentialSettings.portal(
                        portal_cookie, allowed_origins=portal_origins
                    ),
                    default_rate_limit=default_rate_limit,
                    limiter_failure=limiter_failure,
                    realm="portal",
                ),
                clock=time.time,
                backends=backends,
                abackends=abackends,
            )
        except BaseException:
            for close in reversed(closers[1 if owns_store else 0 :]):
                with contextlib.suppress(Exception):
                    close()
            raise
        recorder = None
        if usage:
            # Closed before the store (closers run last first): its last flush needs it.
            recorder = UsageRecorder(store, UsageCounter(), interval=usage_interval)
            closers.append(recorder.close)
        return cls(
            api=api,
            portal=portal,
            store=cached,
            config=config,
            closers=closers,
            invalidator=invalidator,
            portal_prefix=portal_prefix,
            recorder=recorder,
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
        """Start the background work (the Redis subscriber); idempotent.

        Raises:
            ConfigurationError: the Auth was closed.
        """
        with self._lock:
            if self._closed:
                raise ConfigurationError("this Auth was closed")
            if self._started:
                return
            self._started = True
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
    portal_cookie: str = DEFAULT_PORTAL_COOKIE,
    portal_prefix: str = PORTAL_PREFIX,
    note: Callable[[str], None] | None = None,
    limiter_failure: LimiterFailurePolicy = LimiterFailurePolicy.FAIL_CLOSED,
    usage: bool = True,
    usage_interval: float = USAGE_INTERVAL,
) -> Auth:
    """Open and wire everything a service needs to authenticate requests (see the module doc).

    ``db``, ``redis`` and ``config`` default to the environment variables the command line
    reads: ``AUTHCORE_DB`` (else ``sqlite:///./authcore.db``), ``AUTHCORE_REDIS`` (else no Redis)
    and ``AUTHCORE_CONFIG`` (else the development secrets next to the SQLite database, about
    which ``note`` hears). ``default_rate_limit`` applies to workspaces without a policy of
    their own; ``cache_ttl`` bounds how long a change made in another process that could not
    tell this one (no Redis) goes unseen; ``limiter_failure`` is the policy while Redis is down
    (see :meth:`Auth.wire`); ``usage`` counts every outcome and records it in the store every
    ``usage_interval`` seconds and on close (see :mod:`authcore.usage`). The :class:`Auth`
    owns the store: closing it closes the store.

    Raises:
        ConfigurationError: a URL or the configuration is invalid.
        UnavailableError: the database cannot be reached or its backend is not installed.
    """
    env = os.environ if environ is None else environ
    db_url = db or env.get("AUTHCORE_DB") or DEFAULT_DB
    _check_database_url(db_url)  # before the configuration: a bad URL writes no file
    loaded = resolve_config(config or env.get("AUTHCORE_CONFIG"), db_url, environ=env, note=note)
    store = open_store(db_url)
    try:
        return Auth.wire(
            store,
            loaded,
            redis=redis or env.get("AUTHCORE_REDIS") or None,
            default_rate_limit=default_rate_limit,
            cache_ttl=cache_ttl,
            portal_cookie=portal_cookie,
            portal_prefix=portal_prefix,
            owns_store=True,
            limiter_failure=limiter_failure,
            usage=usage,
            usage_interval=usage_interval,
        )
    except BaseException:
        with contextlib.suppress(Exception):
            getattr(store, "close", _nothing)()
        raise


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
