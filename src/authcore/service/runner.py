"""Wiring for ``authcore serve``, ``authcore dashboard`` and ``authcore demo``.

Builds the example API (store behind a verification cache, in-process rate limiter, the
configured JWT keyring with a verified-token cache) and the dashboard (server-side sessions,
the proxy signing with the configured signing kid), and runs them under uvicorn.

Proxy headers are trusted explicitly: uvicorn by default takes the client address (and scheme)
from ``X-Forwarded-For`` (``X-Forwarded-Proto``) on connections from 127.0.0.1, so any local
client could claim any address and step around the dashboard's per-client login budget. Here
they are believed only from the ``trusted_proxies`` the operator names (none by default).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final

import attrs
import uvicorn
from starlette.applications import Starlette
from uvicorn.supervisors import Multiprocess

from authcore.adapters.proxy import DashboardProxy
from authcore.backends import Auth
from authcore.gate import AuthObserver, RequestMetrics
from authcore.passwords import hash_password
from authcore.proxy import ProxySettings
from authcore.ratelimit import RateLimitPolicy
from authcore.records import OPERATOR_ACTOR
from authcore.service._http import MAX_BODY_BYTES
from authcore.service.api import app_for
from authcore.service.dashboard import DashboardSessions, StoreWorkspaceResolver, create_dashboard
from authcore.service.head_limits import HeadLimits
from authcore.service.http_head import ServerConfig
from authcore.store import AsyncStore, Store

__all__ = [
    "API_PERMISSIONS",
    "DemoSetup",
    "ServeError",
    "build_api",
    "build_dashboard",
    "prepare_demo",
    "run_servers",
    "run_workers",
    "server_config",
]

#: Everything the example API checks; the demo's root key and dashboard user hold all of it.
API_PERMISSIONS: tuple[str, ...] = (
    "keys.read",
    "keys.create",
    "keys.revoke",
    "audit.read",
    "portal.create_session",
    "portal.revoke_session",
    "usage.read",
    "identities.create",
    "identities.read",
    "identities.update",
    "identities.delete",
)


class ServeError(Exception):
    """A server cannot start (its address cannot be bound); the message is one line."""


def build_api(
    auth: Auth,
    *,
    own_lifecycle: bool = True,
    observer: AuthObserver | None = None,
    metrics: RequestMetrics | None = None,
) -> Starlette:
    """Return the example API over ``auth`` (:func:`authcore.backends.connect`, or
    :meth:`Auth.wire <authcore.backends.Auth.wire>` for a store already open); see
    :func:`authcore.service.api.app_for` for the options."""
    return app_for(auth, own_lifecycle=own_lifecycle, observer=observer, metrics=metrics)


def _metrics_exporter() -> tuple[Any, Any]:
    """Return a Prometheus exporter on a registry of its own, and the app serving it.

    Raises:
        ServeError: prometheus_client is not installed.
    """
    try:
        # The adapter first: its import guard says which extra to install.
        from authcore.adapters.prometheus import (  # noqa: PLC0415 - only with --metrics-port
            PrometheusMetrics,
            metrics_app,
        )
    except ImportError as exc:
        raise ServeError(str(exc)) from None
    from prometheus_client import (  # noqa: PLC0415 - as above
        GC_COLLECTOR,
        PLATFORM_COLLECTOR,
        PROCESS_COLLECTOR,
        CollectorRegistry,
    )

    registry = CollectorRegistry()
    # What the default registry has: the process's CPU, memory, file descriptors and GC.
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(collector)
    return PrometheusMetrics(registry), metrics_app(registry)


def build_dashboard(
    auth: Auth,
    api_url: str,
    *,
    secure_cookies: bool | None = None,
    clock: Callable[[], float] = time.time,
) -> Starlette:
    """Return the dashboard over ``auth``'s store and keyring, proxying ``/proxy/v1/...`` to
    the API at ``api_url``.

    Raises:
        ConfigurationError: ``api_url`` is not a bare origin, or there is no signing kid.
    """
    store: AsyncStore = auth.store
    config = auth.config
    sessions = DashboardSessions(clock=clock)
    proxy = DashboardProxy(
        ProxySettings(
            upstream=api_url.rstrip("/"),
            token_ttl=min(60, config.jwt.settings.max_lifetime),
            # No bigger than what the API accepts: a larger body would be refused there anyway.
            max_body_bytes=MAX_BODY_BYTES,
        ),
        sessions,
        StoreWorkspaceResolver(store),
        config.signing_keyring(),
        clock=clock,
    )
    return create_dashboard(store, proxy, sessions=sessions, secure_cookies=secure_cookies)


#: The demo workspace's one identity: a customer whose end user the portal link serves.
DEMO_CUSTOMER: Final = "customer-1"
#: What the banner's portal session may do: everything the portal page offers.
DEMO_PORTAL_PERMISSIONS: Final = ("keys.read", "keys.create", "keys.revoke", "usage.read")


@attrs.frozen
class DemoSetup:
    """What ``authcore demo`` created; the key and password are shown once, by :meth:`banner`."""

    workspace_id: str
    org_id: str
    key_id: str
    key: str = attrs.field(repr=False)
    user_id: str
    password: str = attrs.field(repr=False)
    customer: str = DEMO_CUSTOMER

    def banner(self, api_url: str, dashboard_url: str) -> str:
        """Return the text printed once when the demo starts."""
        auth = '-H "Authorization: Bearer $AUTHCORE_KEY"'
        grants = " ".join(f"--permission {grant}" for grant in DEMO_PORTAL_PERMISSIONS)
        return f"""
authcore demo
=============
Workspace {self.workspace_id} (organization {self.org_id}); root key {self.key_id}.
The key and the password below are shown once: only their digests are stored.

  export AUTHCORE_KEY='{self.key}'

  curl -s {api_url}/healthz
  curl -s {api_url}/v1/principal {auth}
  curl -s {api_url}/v1/keys {auth}
  curl -s -X POST {api_url}/v1/keys {auth} -H 'Content-Type: application/json' \\
       -d '{{"name": "ci", "permissions": ["keys.read"]}}'
  curl -s {api_url}/v1/audit-logs {auth}
  curl -si {api_url}/v1/keys            # no credential: 401 with a Bearer challenge

Dashboard: {dashboard_url}
  user id:  {self.user_id}
  password: {self.password}

Customer portal: {self.customer} is an identity of the workspace (a customer of your API)
with a key of its own. This prints a one-time link to its portal page; open it within 60 s
(run it in another shell, with the demo's --db or AUTHCORE_DB if you gave one):

  authcore portal create-session --workspace {self.workspace_id} --identity {self.customer} \\
      {grants} \\
      --key-permission keys.read --base-url {api_url}

API reference: {api_url}/docs (OpenAPI 3.1: {api_url}/openapi.json)

API on {api_url}, dashboard on {dashboard_url}. Press Ctrl-C to stop.

"""


def prepare_demo(store: Store, *, now: float) -> DemoSetup:
    """Create a demo workspace, a root key, a dashboard user with a generated password, and
    an identity (:data:`DEMO_CUSTOMER`) with a key of its own for the portal."""
    suffix = secrets.token_hex(3)
    org_id = f"org_demo_{suffix}"
    workspace = store.create_workspace(
        f"demo-{suffix}",
        org_id=org_id,
        rate_limit=RateLimitPolicy(120, 60),
        now=now,
        actor=OPERATOR_ACTOR,
    )
    created = store.create_root_key(
        workspace.id,
        permissions=API_PERMISSIONS,
        name="demo root key",
        now=now,
        actor=OPERATOR_ACTOR,
    )
    customer_key = store.create_root_key(
        workspace.id,
        permissions=["keys.read"],
        name=f"{DEMO_CUSTOMER}'s first key",
        now=now,
        actor=OPERATOR_ACTOR,
        identity=DEMO_CUSTOMER,
    )
    if created is None or customer_key is None:  # the workspace was created just above
        raise RuntimeError("the demo workspace vanished")
    password = secrets.token_urlsafe(12)
    user_id = f"demo-{suffix}"
    store.add_dashboard_user(user_id, org_id, hash_password(password), list(API_PERMISSIONS))
    return DemoSetup(
        workspace_id=workspace.id,
        org_id=org_id,
        key_id=created.record.id,
        key=created.key.reveal(),
        user_id=user_id,
        password=password,
    )


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to :func:`run_servers` (two servers)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _serve_all(
    servers: list[tuple[_Server, socket.socket]], on_ready: Callable[[], None] | None
) -> None:
    loop = asyncio.get_running_loop()

    def stop() -> None:
        for server, _ in servers:
            server.should_exit = True

    for signum in (signal.SIGINT, signal.SIGTERM):
        # Not available off the main thread or on some platforms: Ctrl-C then ends the loop.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stop)
    tasks = [asyncio.ensure_future(server.serve(sockets=[sock])) for server, sock in servers]
    # Announce only once every server runs, so the printed curl lines work when pasted.
    while not all(server.started for server, _ in servers):
        if any(task.done() for task in tasks):
            stop()
            break
        await asyncio.sleep(0.02)
    else:
        if on_ready is not None:
            on_ready()
    await asyncio.gather(*tasks)


def _listen(host: str, port: int) -> socket.socket:
    """Bind and listen on ``host:port`` before uvicorn starts, to report a taken port cleanly.

    Raises:
        ServeError: the address cannot be resolved or bound.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


def run_servers(
    auth: Auth,
    *,
    api: tuple[str, int] | None,
    dashboard: tuple[str, int] | None,
    api_url: str | None,
    trusted_proxies: Sequence[str] = (),
    on_ready: Callable[[], None] | None = None,
    metrics: tuple[str, int] | None = None,
    head_limits: HeadLimits | None = None,
) -> None:
    """Run the API and/or the dashboard over ``auth`` under uvicorn until interrupted.

    ``trusted_proxies`` (IP addresses or networks) are the reverse proxies whose
    ``X-Forwarded-For`` and ``X-Forwarded-Proto`` are believed; with none (the default) the
    client is the connection's peer, whatever the headers say. ``on_ready`` is called once all
    servers accept connections. SIGINT and SIGTERM stop them gracefully. With ``metrics``,
    the API's Prometheus metrics are served on that address at ``/metrics``. ``head_limits``
    bound a request head's size and arrival time (:mod:`authcore.service.http_head`; default
    64 KiB, 10 s).

    Raises:
        ServeError: an address cannot be bound (for example, the port is taken), or
            ``metrics`` without prometheus_client.
    """
    apps: list[tuple[Any, tuple[str, int]]] = []
    exporter, metrics_server = _metrics_exporter() if metrics is not None else (None, None)
    if api is not None:
        observer = None if exporter is None else exporter.observer
        request_metrics = None if exporter is None else exporter.metrics
        # One Auth behind both servers: started here, closed by the caller, not by one app.
        app = build_api(auth, own_lifecycle=False, observer=observer, metrics=request_metrics)
        apps.append((app, api))
    if metrics is not None:
        apps.append((metrics_server, metrics))
    if dashboard is not None:
        if api_url is None:
            raise ValueError("the dashboard needs the API's URL")
        apps.append((build_dashboard(auth, api_url), dashboard))
    auth.start()
    servers: list[tuple[_Server, socket.socket]] = []
    try:
        for app, (host, port) in apps:
            config = server_config(app, trusted_proxies, head_limits)
            servers.append((_Server(config), _listen(host, port)))
        asyncio.run(_serve_all(servers, on_ready))
    finally:
        for _, sock in servers:
            sock.close()


def run_workers(
    *,
    workers: int,
    address: tuple[str, int],
    environ: dict[str, str],
    trusted_proxies: Sequence[str] = (),
    on_ready: Callable[[], None] | None = None,
    head_limits: HeadLimits | None = None,
) -> None:
    """Run ``workers`` processes of the example API on one listening socket until SIGINT or
    SIGTERM, then stop them gracefully (each finishes its requests and closes its Auth).

    ``environ`` is what each worker wires itself from (``AUTHCORE_DB``, ``AUTHCORE_REDIS``,
    ``AUTHCORE_CONFIG``; see :mod:`authcore.service.worker`). ``on_ready`` is called once the
    port answers.

    Raises:
        ServeError: the address cannot be bound.
    """
    # The workers are spawned processes: they read the environment they start with.
    os.environ.update(environ)
    host, port = address
    config = server_config("authcore.service.worker:app", trusted_proxies, head_limits)
    config.factory = True
    config.workers = workers
    sock = _listen(host, port)
    try:
        supervisor = Multiprocess(config, sockets=[sock])
        if on_ready is not None:
            threading.Thread(
                target=_announce_when_up, args=(host, port, on_ready), daemon=True
            ).start()
        supervisor.run()
    finally:
        sock.close()


_HEALTH_CHECK = b"GET /healthz HTTP/1.1\r\nHost: authcore\r\nConnection: close\r\n\r\n"


def _announce_when_up(host: str, port: int, on_ready: Callable[[], None]) -> None:
    # The supervisor has no "ready" hook: ask the port, as a load balancer would.
    target = host if host not in ("0.0.0.0", "::") else "127.0.0.1"  # noqa: S104 - a comparison
    for _ in range(600):
        try:
            with socket.create_connection((target, port), timeout=1) as conn:
                conn.sendall(
                    b"GET /healthz HTTP/1.1\r\nHost: authcore\r\nConnection: close\r\n\r\n"
                )
                if conn.recv(12).startswith(b"HTTP/1.1 200"):
                    on_ready()
                    return
        except OSError:
            pass
        time.sleep(0.1)


def server_config(
    app: Any, trusted_proxies: Sequence[str] = (), head_limits: HeadLimits | None = None
) -> uvicorn.Config:
    """Return the uvicorn configuration the command line serves ``app`` with.

    Proxy headers are off unless ``trusted_proxies`` names who may send them: uvicorn's own
    default believes them from 127.0.0.1 (or ``$FORWARDED_ALLOW_IPS``). HTTP/1.1 is parsed by
    httptools with ``head_limits`` (default: :class:`~authcore.service.http_head.HeadLimits`).
    """
    trusted = list(trusted_proxies)
    # The socket comes from _listen(); host and port here are only what uvicorn logs.
    return ServerConfig(
        app,
        head_limits=head_limits,
        log_level="warning",
        # Access lines are logged at INFO, below the level above: they never print, and
        # uvicorn would still format each one's client address and path per request.
        access_log=False,
        lifespan="on",
        proxy_headers=bool(trusted),
        # Never None: uvicorn would then read $FORWARDED_ALLOW_IPS or default to 127.0.0.1.
        forwarded_allow_ips=trusted or [],
    )
