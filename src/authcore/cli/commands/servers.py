"""``authcore serve``, ``dashboard`` and ``demo``: run the example API, the dashboard, or both."""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import sys
from collections.abc import Iterator
from typing import Any, Final

from authcore import backends
from authcore.cli.context import current_time
from authcore.cli.errors import CommandError, UsageError
from authcore.cli.options import env_default, whole_number
from authcore.cli.output import note
from authcore.cli.parser import Commands, Parser
from authcore.errors import ConfigurationError, UnavailableError
from authcore.names import printable
from authcore.ratelimit import LimiterFailurePolicy
from authcore.service.head_limits import (
    DEFAULT_HEAD_BYTES,
    DEFAULT_HEAD_TIMEOUT,
    HEAD_BYTES_RANGE,
    HEAD_TIMEOUT_RANGE,
    HeadLimits,
)

_TRUSTED_PROXIES_ENV: Final = "AUTHCORE_TRUSTED_PROXIES"
#: Most worker processes ``serve --workers`` starts on one machine.
MAX_WORKERS: Final = 128
_port: Final = whole_number(1, 65535, "a TCP port")
#: What a request gets while Redis is down (--redis-down).
_REDIS_DOWN: Final = {
    "refuse": LimiterFailurePolicy.FAIL_CLOSED,
    "local": LimiterFailurePolicy.LOCAL_FALLBACK,
}


def register(commands: Commands) -> None:
    _add_serve(commands)
    _add_dashboard(commands)
    _add_demo(commands)


def _add_serve(commands: Commands) -> None:
    sub = commands.add("serve", cmd_serve, "run the example API")
    sub.add_argument("--host", default="127.0.0.1")
    sub.add_argument("--port", type=_port, default=8000)
    _add_trusted_proxy(sub)
    _add_head_limits(sub)
    sub.add_argument(
        "--metrics-port",
        type=_port,
        default=env_default("AUTHCORE_METRICS_PORT", None),
        metavar="PORT",
        help="also serve Prometheus metrics at /metrics on this port (env AUTHCORE_METRICS_PORT)",
    )
    sub.add_argument("--metrics-host", default="127.0.0.1", help="where --metrics-port listens")
    sub.add_argument(
        "--redis-down",
        choices=sorted(_REDIS_DOWN),
        default=env_default("AUTHCORE_REDIS_DOWN", "refuse"),
        help="while Redis is unreachable: refuse with 503 (default) or decide with a bounded "
        "limiter in each process; recovery is automatic (env AUTHCORE_REDIS_DOWN)",
    )
    sub.add_argument(
        "--workers",
        type=whole_number(1, MAX_WORKERS),
        default=env_default("AUTHCORE_WORKERS", "1"),
        metavar="N",
        help=f"worker processes on the one port, 1..{MAX_WORKERS}; above 1 needs --redis"
        " (env AUTHCORE_WORKERS)",
    )


def cmd_serve(args: argparse.Namespace) -> int:
    trusted = _trusted_proxies(args)  # before connecting: a bad value creates no secrets file
    if args.workers > 1:
        return _serve_workers(args, trusted)
    metrics = None if args.metrics_port is None else (args.metrics_host, args.metrics_port)
    ready = f"example API on http://{args.host}:{args.port} (Ctrl-C stops)"
    if metrics is not None:
        ready += f"; metrics on http://{args.metrics_host}:{args.metrics_port}/metrics"
    with _connected(args) as auth:
        _run_servers(
            auth,
            api=(args.host, args.port),
            dashboard=None,
            api_url=None,
            trusted_proxies=trusted,
            on_ready=lambda: note(ready),
            metrics=metrics,
            head_limits=_head_limits(args),
        )
    return 0


def _serve_workers(args: argparse.Namespace, trusted: list[str]) -> int:
    """``serve --workers N``: N processes on one port, sharing state through PostgreSQL/SQLite
    and Redis (each worker wires itself with connect(), as one process does)."""
    from authcore.service.runner import ServeError, run_workers  # noqa: PLC0415 - as in _run_servers

    if not args.redis:
        raise UsageError(
            "--workers above 1 needs --redis (env AUTHCORE_REDIS): without it every worker "
            "would keep its own rate limit and its own cache"
        )
    if args.metrics_port is not None:
        raise UsageError("--metrics-port serves one process's metrics: use it with --workers 1")
    # Checked here, once, for one-line errors: the URLs, the configuration, the database.
    with _connected(args):
        pass
    environ = {
        "AUTHCORE_DB": args.db,
        "AUTHCORE_REDIS": args.redis,
        "AUTHCORE_REDIS_DOWN": args.redis_down,
    }
    if args.config:
        environ["AUTHCORE_CONFIG"] = os.path.abspath(args.config)
    url = f"http://{args.host}:{args.port}"
    try:
        run_workers(
            workers=args.workers,
            address=(args.host, args.port),
            environ=environ,
            trusted_proxies=trusted,
            on_ready=lambda: note(f"example API on {url}, {args.workers} workers (Ctrl-C stops)"),
            head_limits=_head_limits(args),
        )
    except ServeError as exc:
        raise CommandError(str(exc)) from None
    return 0


def _add_dashboard(commands: Commands) -> None:
    sub = commands.add("dashboard", cmd_dashboard, "run the dashboard and its proxy")
    sub.add_argument("--host", default="127.0.0.1")
    sub.add_argument("--port", type=_port, default=8001)
    sub.add_argument("--api-url", default="http://127.0.0.1:8000", metavar="URL")
    _add_trusted_proxy(sub)
    _add_head_limits(sub)


def cmd_dashboard(args: argparse.Namespace) -> int:
    trusted = _trusted_proxies(args)  # before connecting: a bad value creates no secrets file
    with _connected(args) as auth:
        _run_servers(
            auth,
            api=None,
            dashboard=(args.host, args.port),
            api_url=args.api_url,
            trusted_proxies=trusted,
            on_ready=lambda: note(
                f"dashboard on http://{args.host}:{args.port}, proxying to {args.api_url}"
            ),
            head_limits=_head_limits(args),
        )
    return 0


def _add_demo(commands: Commands) -> None:
    sub = commands.add("demo", cmd_demo, "set up a demo workspace and run API + dashboard")
    sub.add_argument("--host", default="127.0.0.1")
    sub.add_argument("--api-port", type=_port, default=8000)
    sub.add_argument("--dashboard-port", type=_port, default=8001)
    _add_trusted_proxy(sub)
    _add_head_limits(sub)


def cmd_demo(args: argparse.Namespace) -> int:
    from authcore.service.runner import prepare_demo  # noqa: PLC0415 - as in _run_servers

    trusted = _trusted_proxies(args)  # before connecting: a bad value creates no secrets file
    api_url = f"http://{args.host}:{args.api_port}"
    with _connected(args) as auth:
        setup = prepare_demo(auth.store, now=current_time())
        banner = setup.banner(api_url, f"http://{args.host}:{args.dashboard_port}")

        def announce() -> None:
            sys.stdout.write(banner)
            sys.stdout.flush()

        _run_servers(
            auth,
            api=(args.host, args.api_port),
            dashboard=(args.host, args.dashboard_port),
            api_url=api_url,
            trusted_proxies=trusted,
            on_ready=announce,
            head_limits=_head_limits(args),
        )
    return 0


# --- what the three share -------------------------------------------------------------------


@contextlib.contextmanager
def _connected(args: argparse.Namespace) -> Iterator[backends.Auth]:
    """The servers' wiring: :func:`authcore.backends.connect`, as a user's own app gets it."""
    try:
        auth = backends.connect(
            args.db,
            redis=args.redis,
            config=args.config,
            note=note,
            limiter_failure=_REDIS_DOWN[getattr(args, "redis_down", "refuse")],
        )
    except ConfigurationError as exc:
        raise UsageError(exc.detail or exc.message) from None
    except UnavailableError as exc:
        raise CommandError(exc.detail or "the database is unavailable") from None
    try:
        yield auth
    finally:
        auth.close()


def _run_servers(auth: backends.Auth, **options: Any) -> None:
    # The servers import Starlette and uvicorn: only the commands that run them pay for that.
    from authcore.service.runner import ServeError, run_servers  # noqa: PLC0415 - see above

    try:
        run_servers(auth, **options)
    except ServeError as exc:
        raise CommandError(str(exc)) from None


def _add_trusted_proxy(sub: Parser) -> None:
    sub.add_argument(
        "--trusted-proxy",
        action="append",
        type=_trusted_proxy,
        metavar="ADDRESS",
        help=(
            "a reverse proxy (IP address or network) whose X-Forwarded-For and"
            " X-Forwarded-Proto are believed; repeatable (env AUTHCORE_TRUSTED_PROXIES,"
            " comma-separated; default: none, the peer address is the client)"
        ),
    )


def _trusted_proxy(text: str) -> str:
    try:
        return str(ipaddress.ip_network(text.strip(), strict=False))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{printable(text)!r} is not an IP address or network (like 10.0.0.0/8)"
        ) from None


def _trusted_proxies(args: argparse.Namespace) -> list[str]:
    """The proxies whose ``X-Forwarded-For``/``-Proto`` the servers believe (default: none).

    Raises:
        UsageError: an entry of the environment variable is not an address or network.
    """
    if args.trusted_proxy:
        return list(args.trusted_proxy)
    return _trusted_proxies_from_env(_TRUSTED_PROXIES_ENV)


def _trusted_proxies_from_env(name: str) -> list[str]:
    """Read a comma-separated list of proxy addresses from the environment variable ``name``.

    Raises:
        UsageError: an entry is not an IP address or network.
    """
    entries = [entry for entry in os.environ.get(name, "").split(",") if entry.strip()]
    try:
        return [_trusted_proxy(entry) for entry in entries]
    except argparse.ArgumentTypeError as exc:
        raise UsageError(f"{name}: {exc}") from None


def _add_head_limits(sub: Parser) -> None:
    low, high = HEAD_BYTES_RANGE
    sub.add_argument(
        "--max-head-bytes",
        type=whole_number(low, high, "a size in bytes"),
        default=env_default("AUTHCORE_MAX_HEAD_BYTES", str(DEFAULT_HEAD_BYTES)),
        metavar="BYTES",
        help=f"largest request head (request line and headers) before 431, {low:,}..{high:,}"
        f" (default {DEFAULT_HEAD_BYTES:,}; env AUTHCORE_MAX_HEAD_BYTES)",
    )
    low, high = HEAD_TIMEOUT_RANGE
    sub.add_argument(
        "--head-timeout",
        type=whole_number(low, high, "a number of seconds"),
        default=env_default("AUTHCORE_HEAD_TIMEOUT", str(DEFAULT_HEAD_TIMEOUT)),
        metavar="SECONDS",
        help=f"close a connection whose request head is not complete this long after it began,"
        f" {low}..{high} (default {DEFAULT_HEAD_TIMEOUT}; env AUTHCORE_HEAD_TIMEOUT)",
    )


def _head_limits(args: argparse.Namespace) -> HeadLimits:
    return HeadLimits(max_bytes=args.max_head_bytes, timeout=args.head_timeout)
