"""The ``authcore`` command line: operate a store, mint and check JWTs, run the example servers.

Exit codes: 0 success; 1 a runtime failure (database unreachable, unknown id, conflict, unsafe
rotation step); 2 bad input (arguments, database URL, configuration file). Every failure is
one line on stderr, ``authcore: error: ...``, never a traceback (set ``AUTHCORE_DEBUG=1`` to
get the traceback of an unexpected error). With ``--json`` a command prints exactly one JSON
object on stdout. Secrets (a new key, a portal token, a minted JWT, the demo's generated
password) are printed only by the commands whose purpose is to show them, and only once.

Without ``--config`` (or ``AUTHCORE_CONFIG``) the JWT commands and the servers use a development
keyring kept in ``authcore-dev-secrets.toml`` next to the SQLite database (created on first use,
mode 0600), and say so on stderr. An existing file is used only if it is a regular file (not a
symlink) owned by the current user with mode 0600. Production deployments pass a config file.

A database URL or libpq keyword string is never shown with its password: every message shows
it redacted, and the database drivers' own loggers are silenced while a command runs (they
quote connection strings, and would break the one-line error).
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, NoReturn

from authcore import backends
from authcore.backends import redact_database_url
from authcore.config import Config
from authcore.errors import (
    AuthcoreError,
    ClientError,
    ConfigurationError,
    InvalidPermissionError,
    UnavailableError,
)
from authcore.keyring import check_rotation
from authcore.names import check_name, printable
from authcore.passwords import hash_password
from authcore.permissions import PermissionSet
from authcore.ratelimit import LimiterFailurePolicy, RateLimitPolicy
from authcore.records import OPERATOR_ACTOR
from authcore.store import Store
from authcore.usage import summarize

if TYPE_CHECKING:
    pass

__all__ = [
    "DEFAULT_DB",
    "DEV_SECRETS_FILE",
    "OTHER_PROCESSES_MAY_ACCEPT_FOR",
    "CommandError",
    "UsageError",
    "main",
    "open_store",
    "redact_database_url",
]

DEFAULT_DB: Final = backends.DEFAULT_DB
DEV_SECRETS_FILE: Final = backends.DEV_SECRETS_FILE
_PROG: Final = "authcore"
_MAX_PASSWORD_BYTES: Final = 1024
#: Seconds a revoked credential may still be accepted by *other* running processes: the
#: verification cache's TTL of the servers (authcore.demo.runner builds them with it).
#: The process that revokes (through its CachedStore) stops accepting it at once.
OTHER_PROCESSES_MAY_ACCEPT_FOR: Final = backends.CACHE_TTL
# Loggers of the database drivers: they log connection attempts, quoting connection strings.
_DRIVER_LOGGERS: Final = ("psycopg", "psycopg_pool")


class CommandError(Exception):
    """A runtime failure (exit 1); the message is the one line shown to the operator."""

    exit_code = 1


class UsageError(CommandError):
    """Bad input: arguments, database URL, configuration (exit 2)."""

    exit_code = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and an exception instead of a process exit."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


# --- output -----------------------------------------------------------------------------


def _write(text: str) -> None:
    sys.stdout.write(text + "\n")


def _note(text: str) -> None:
    sys.stderr.write(f"{_PROG}: {text}\n")


def _emit(args: argparse.Namespace, payload: Mapping[str, Any], lines: Sequence[str]) -> None:
    if args.json:
        _write(json.dumps(payload, sort_keys=True))
    else:
        for line in lines:
            _write(line)


# --- database and configuration -----------------------------------------------------------


def open_store(url: str) -> Store:
    """:func:`authcore.backends.open_store`, with its failures as one-line command errors.

    Raises:
        UsageError: the URL is not one of the supported forms.
        CommandError: the database cannot be opened or reached.
    """
    try:
        return backends.open_store(url)
    except ConfigurationError as exc:
        raise UsageError(f"--db: {exc.detail}") from None
    except UnavailableError as exc:
        raise CommandError(exc.detail or "the database is unavailable") from None


@contextlib.contextmanager
def _store(args: argparse.Namespace) -> Iterator[Store]:
    """The store named by ``--db``; with ``--redis``, changes are published to the servers
    (their verification caches drop a revoked key at once, not after their TTL)."""
    store = open_store(args.db)
    try:
        if not args.redis:
            yield store
            return
        try:
            publisher = backends.invalidation_publisher(args.redis)
        except ConfigurationError as exc:
            raise UsageError(f"--redis: {exc.detail or exc.message}") from None
        except UnavailableError as exc:
            raise CommandError(exc.detail or "Redis is unavailable") from None
        cached = backends.CachedStore(store, publisher=publisher)
        try:
            yield cached
        finally:
            publisher.close()
    finally:
        close = getattr(store, "close", None)
        if callable(close):
            close()


def _config(args: argparse.Namespace) -> Config:
    try:
        return backends.resolve_config(args.config, args.db, environ=os.environ, note=_note)
    except ConfigurationError as exc:
        raise UsageError(exc.detail or exc.message) from None


# --- argument types ---------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _port(text: str) -> int:
    value = _positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port")
    return value


def _rate_limit(text: str) -> RateLimitPolicy:
    try:
        return RateLimitPolicy.parse(text)
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(exc.detail or "invalid rate limit") from None


def _identifier(text: str) -> str:
    # The one rule for names and ids (authcore.names), the one the store applies too: no
    # control, format (bidi), line-separator or surrogate character, at most 200 characters.
    try:
        return check_name(text, "value")
    except AuthcoreError:
        raise argparse.ArgumentTypeError(
            "must be 1-200 characters, without control, format (bidi) or line-separator characters"
        ) from None


def _trusted_proxy(text: str) -> str:
    try:
        return str(ipaddress.ip_network(text.strip(), strict=False))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{printable(text)!r} is not an IP address or network (like 10.0.0.0/8)"
        ) from None


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


def _grants(values: Sequence[str] | None) -> list[str]:
    grants = list(values or [])
    try:
        PermissionSet(grants)
    except InvalidPermissionError as exc:
        raise UsageError(f"--permission: {exc.detail}") from None
    return grants


# --- commands -------------------------------------------------------------------------------


def _now() -> float:
    return time.time()


def cmd_init(args: argparse.Namespace) -> int:
    with _store(args):
        pass
    shown = redact_database_url(args.db)
    _emit(args, {"db": shown}, [f"initialized {shown}"])
    return 0


def cmd_workspace_create(args: argparse.Namespace) -> int:
    with _store(args) as store:
        record = store.create_workspace(
            args.name, org_id=args.org, rate_limit=args.rate_limit, now=_now(), actor=OPERATOR_ACTOR
        )
    _emit(args, {"workspace_id": record.id}, [record.id])
    return 0


def cmd_workspace_disable(args: argparse.Namespace) -> int:
    with _store(args) as store:
        record = store.disable_workspace(args.workspace_id, now=_now(), actor=OPERATOR_ACTOR)
    if record is None:
        raise CommandError(f"workspace {args.workspace_id!r} not found")
    _emit(args, {"workspace_id": record.id, "disabled": True}, [f"disabled {record.id}"])
    return 0


def cmd_workspace_enable(args: argparse.Namespace) -> int:
    with _store(args) as store:
        record = store.enable_workspace(args.workspace_id, now=_now(), actor=OPERATOR_ACTOR)
    if record is None:
        raise CommandError(f"workspace {args.workspace_id!r} not found")
    _emit(args, {"workspace_id": record.id, "disabled": False}, [f"enabled {record.id}"])
    return 0


def cmd_keys_create(args: argparse.Namespace) -> int:
    grants = _grants(args.permission)
    now = _now()
    expires_at = None if args.expires_in is None else int(now) + args.expires_in
    with _store(args) as store:
        created = store.create_root_key(
            args.workspace,
            permissions=grants,
            name=args.name,
            expires_at=expires_at,
            now=now,
            actor=OPERATOR_ACTOR,
            rate_limit=args.rate_limit,
        )
    if created is None:
        raise CommandError(f"workspace {args.workspace!r} not found")
    key = created.key.reveal()
    _emit(
        args,
        {"key_id": created.record.id, "key": key},
        [
            f"key_id: {created.record.id}",
            f"key:    {key}",
            "The key is shown once; only its digest is stored.",
        ],
    )
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    with _store(args) as store:
        if store.find_workspace(args.workspace) is None:
            raise CommandError(f"workspace {args.workspace!r} not found")
        records = store.list_root_keys(args.workspace)
        used = store.last_used(args.workspace)
    keys = [{**record.to_dict(), "last_used_at": used.get(record.id)} for record in records]
    # A name stored before names were checked could still hold a control or bidi character:
    # the terminal gets it escaped (JSON escapes it by itself).
    lines = [
        f"{k['key_id']}  {k['start']}...  {printable(k['name'] or '-')}  "
        f"{','.join(k['permissions']) or '-'}  {'revoked' if k['revoked_at'] else 'active'}  "
        f"limit {k['rate_limit'] or '-'}  last used {_when(k['last_used_at'])}"
        for k in keys
    ]
    _emit(args, {"keys": keys}, lines or ["(no keys)"])
    return 0


def _when(seconds: int | None) -> str:
    return "never" if seconds is None else time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(seconds))


#: The usage table's columns: each outcome falls in one (refusals by their HTTP meaning).
_USAGE_COLUMNS: Final = ("allowed", "refused", "rate_limited", "unavailable")


def _usage_column(outcome: str) -> str:
    if outcome in ("allowed", "rate_limited"):
        return outcome
    return "unavailable" if outcome == "service_unavailable" else "refused"


def cmd_usage(args: argparse.Namespace) -> int:
    now = _now()
    until = now if args.until is None else args.until
    since = until - 86_400 if args.since is None else args.since
    if args.unknown and args.key is not None:
        raise UsageError("--unknown counts credentials that were never verified: no --key")
    workspace_id = "" if args.unknown else args.workspace
    with _store(args) as store:
        if not args.unknown and store.find_workspace(workspace_id) is None:
            raise CommandError(f"workspace {workspace_id!r} not found")
        if args.key is not None:
            key = store.get_root_key(args.key)
            if key is None or key.workspace_id != workspace_id:
                raise CommandError(f"key {args.key!r} not found in {workspace_id}")
        try:
            counts = store.usage(
                workspace_id,
                credential_id=args.key,
                since=since,
                until=until,
                granularity=args.granularity,
            )
        except ClientError as exc:
            raise UsageError(exc.detail or exc.message) from None
    summary = summarize(counts)
    document = {
        "workspace_id": workspace_id or None,
        "key_id": args.key,
        "granularity": args.granularity,
        "since": int(since),
        "until": int(until),
        **summary,
    }
    header = f"{'bucket (UTC)':<17}  " + "  ".join(f"{c:>12}" for c in _USAGE_COLUMNS)
    lines = [header]
    rows = [(bucket["start"], bucket["outcomes"]) for bucket in summary["buckets"]]
    for start, outcomes in [*rows, (-1, summary["totals"])]:
        columns = dict.fromkeys(_USAGE_COLUMNS, 0)
        for outcome, value in outcomes.items():
            columns[_usage_column(outcome)] += value
        label = "total" if start < 0 else time.strftime("%Y-%m-%dT%H:%M", time.gmtime(start))
        lines.append(f"{label:<17}  " + "  ".join(f"{columns[c]:>12}" for c in _USAGE_COLUMNS))
    _emit(args, document, lines)
    return 0


def cmd_usage_prune(args: argparse.Namespace) -> int:
    with _store(args) as store:
        try:
            store.prune_usage(
                now=_now(),
                rollup_after=args.rollup_after_hours * 3600,
                retention=args.retention_days * 86_400,
            )
        except ClientError as exc:
            raise UsageError(exc.detail or exc.message) from None
    _emit(
        args,
        {"retention_days": args.retention_days, "rollup_after_hours": args.rollup_after_hours},
        [
            f"usage older than {args.retention_days} days deleted; minutes older than"
            f" {args.rollup_after_hours} hours rolled up into hours"
        ],
    )
    return 0


def _limit_or_none(text: str) -> RateLimitPolicy | None:
    return None if text == "none" else _rate_limit(text)


def cmd_keys_set_limit(args: argparse.Namespace) -> int:
    with _store(args) as store:
        record = store.set_key_rate_limit(
            args.key_id, args.rate_limit, now=_now(), actor=OPERATOR_ACTOR
        )
    if record is None:
        raise CommandError(f"key {args.key_id!r} not found")
    shown = None if record.rate_limit is None else str(record.rate_limit)
    _emit(
        args,
        {"key_id": record.id, "rate_limit": shown},
        [f"{record.id}: limit {shown or '- (only its workspace limit applies)'}"],
    )
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    with _store(args) as store:
        record = store.revoke_root_key(args.key_id, now=_now(), actor=OPERATOR_ACTOR)
    if record is None:
        raise CommandError(f"key {args.key_id!r} not found")
    _emit_revoked(args, {"key_id": record.id}, f"revoked {record.id}")
    return 0


def _emit_revoked(args: argparse.Namespace, ids: Mapping[str, str], line: str) -> None:
    # This process holds no cache; running servers each hold one, so they may still accept
    # the credential until their cached copy expires (without a Redis invalidation channel).
    bound = OTHER_PROCESSES_MAY_ACCEPT_FOR
    _emit(
        args,
        {**ids, "revoked": True, "other_processes_may_accept_for_seconds": bound},
        [
            line,
            f"Running servers may still accept it for up to {bound} s (their verification"
            " cache), unless they share a Redis invalidation channel.",
        ],
    )


def cmd_portal_create_session(args: argparse.Namespace) -> int:
    grants = _grants(args.permission)
    with _store(args) as store:
        created = store.create_portal_exchange(
            args.workspace,
            args.end_user,
            permissions=grants,
            ttl=args.ttl,
            now=_now(),
            actor=OPERATOR_ACTOR,
        )
    if created is None:
        raise CommandError(f"workspace {args.workspace!r} not found")
    code = created.code.reveal()
    _emit(
        args,
        {
            "session_id": created.record.id,
            "code": code,
            "code_expires_at": created.code_expires_at,
            "expires_at": created.record.expires_at,
        },
        [
            f"session_id: {created.record.id}",
            f"code:       {code}",
            "The code works once, within 60 s: the end user's browser posts it to"
            " /portal/exchange (in the body) for the session cookie.",
        ],
    )
    return 0


def cmd_portal_revoke_session(args: argparse.Namespace) -> int:
    with _store(args) as store:
        record = store.revoke_portal_session(args.session_id, now=_now(), actor=OPERATOR_ACTOR)
    if record is None:
        raise CommandError(f"portal session {args.session_id!r} not found")
    _emit_revoked(args, {"session_id": record.id}, f"revoked {record.id}")
    return 0


def _read_password(stream: Any) -> str:
    raw = stream.readline(_MAX_PASSWORD_BYTES + 2)
    password = raw.rstrip("\r\n") if isinstance(raw, str) else ""
    if not password:
        raise UsageError("--password-stdin: no password on standard input")
    if len(password) > _MAX_PASSWORD_BYTES:
        raise UsageError(f"--password-stdin: longer than {_MAX_PASSWORD_BYTES} characters")
    return password


def cmd_dashboard_user_add(args: argparse.Namespace) -> int:
    if not args.password_stdin:
        raise UsageError(
            "dashboard-user add: pass the password on standard input with --password-stdin"
        )
    grants = _grants(args.permission)
    password = _read_password(sys.stdin)
    with _store(args) as store:
        user = store.add_dashboard_user(args.user_id, args.org, hash_password(password), grants)
    _emit(args, {"user_id": user.user_id, "org_id": user.org_id}, [f"added {user.user_id}"])
    return 0


def cmd_jwt_mint(args: argparse.Namespace) -> int:
    grants = _grants(args.permission)
    jwt = _config(args).jwt
    keyring = jwt.signing_keyring()
    now = int(_now())
    ttl = jwt.settings.max_lifetime if args.ttl is None else args.ttl
    if ttl > jwt.settings.max_lifetime:
        raise UsageError(f"--ttl: at most jwt.max_lifetime ({jwt.settings.max_lifetime} s)")
    token = keyring.mint(
        subject=args.subject, workspace_id=args.workspace, permissions=grants, now=now, ttl=ttl
    ).reveal()
    _emit(
        args,
        {"token": token, "kid": keyring.signing_kid, "expires_at": now + ttl},
        [token],
    )
    return 0


def cmd_jwt_check_rotation(args: argparse.Namespace) -> int:
    jwt = _config(args).jwt
    signing_kid = args.signing_kid or jwt.signing_kid
    if signing_kid is None:
        if len(jwt.kids) != 1:
            raise UsageError("jwt check-rotation: give --signing-kid or set jwt.signing_kid")
        signing_kid = jwt.kids[0]
    result = check_rotation(
        jwt.kids,
        signing_kid,
        switched_at=args.switched_at,
        removing=args.remove or (),
        now=int(_now()),
        settings=jwt.settings,
    )
    lines = [
        f"API verifies with: {', '.join(jwt.kids)} (in this order)",
        f"signer uses:       {signing_kid}",
    ]
    if args.remove:
        lines.append(f"removing:          {', '.join(args.remove)}")
    if result.safe:
        lines.append("SAFE: no valid token is rejected by this step")
    else:
        lines.append("UNSAFE:")
        lines.extend(f"  - {problem}" for problem in result.problems)
    _emit(
        args,
        {
            "safe": result.safe,
            "problems": list(result.problems),
            "api_kids": list(jwt.kids),
            "signing_kid": signing_kid,
        },
        lines,
    )
    return 0 if result.safe else 1


def cmd_audit_list(args: argparse.Namespace) -> int:
    with _store(args) as store:
        if store.find_workspace(args.workspace) is None:
            raise CommandError(f"workspace {args.workspace!r} not found")
        page = store.list_audit(args.workspace, limit=args.limit)
    events = [event.to_dict() for event in page.events]
    lines = [
        f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(e['time']))}  {e['action']:<24} "
        f"{e['actor']['type']}:{e['actor']['id']}  "
        + " ".join(f"{t['type']}:{t['id']}" for t in e["targets"])
        for e in events
    ]
    _emit(args, {"events": events}, lines or ["(no events)"])
    return 0


@contextlib.contextmanager
def _connected(args: argparse.Namespace) -> Iterator[backends.Auth]:
    """The servers' wiring: :func:`authcore.backends.connect`, as a user's own app gets it."""
    try:
        auth = backends.connect(
            args.db,
            redis=args.redis,
            config=args.config,
            note=_note,
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
    from authcore.demo.runner import ServeError, run_servers  # noqa: PLC0415 - see above

    try:
        run_servers(auth, **options)
    except ServeError as exc:
        raise CommandError(str(exc)) from None


def _serve_workers(args: argparse.Namespace, trusted: list[str]) -> int:
    """``serve --workers N``: N processes on one port, sharing state through PostgreSQL/SQLite
    and Redis (each worker wires itself with connect(), as one process does)."""
    from authcore.demo.runner import ServeError, run_workers  # noqa: PLC0415 - as in serve

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
            on_ready=lambda: _note(f"example API on {url}, {args.workers} workers (Ctrl-C stops)"),
        )
    except ServeError as exc:
        raise CommandError(str(exc)) from None
    return 0


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
            on_ready=lambda: _note(ready),
            metrics=metrics,
        )
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    trusted = _trusted_proxies(args)  # before connecting: a bad value creates no secrets file
    with _connected(args) as auth:
        _run_servers(
            auth,
            api=None,
            dashboard=(args.host, args.port),
            api_url=args.api_url,
            trusted_proxies=trusted,
            on_ready=lambda: _note(
                f"dashboard on http://{args.host}:{args.port}, proxying to {args.api_url}"
            ),
        )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from authcore.demo.runner import prepare_demo  # noqa: PLC0415 - as in serve

    trusted = _trusted_proxies(args)  # before connecting: a bad value creates no secrets file
    api_url = f"http://{args.host}:{args.api_port}"
    with _connected(args) as auth:
        setup = prepare_demo(auth.store, now=_now())
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
        )
    return 0


def _trusted_proxies(args: argparse.Namespace) -> list[str]:
    """The proxies whose ``X-Forwarded-For``/``-Proto`` the servers believe (default: none).

    Raises:
        UsageError: an entry of the environment variable is not an address or network.
    """
    if args.trusted_proxy:
        return list(args.trusted_proxy)
    return _trusted_proxies_from_env(_TRUSTED_PROXIES_ENV)


# --- the parser -------------------------------------------------------------------------------

_TRUSTED_PROXIES_ENV: Final = "AUTHCORE_TRUSTED_PROXIES"
#: What a request gets while Redis is down (--redis-down).
_REDIS_DOWN: Final = {
    "refuse": LimiterFailurePolicy.FAIL_CLOSED,
    "local": LimiterFailurePolicy.LOCAL_FALLBACK,
}

_Handler = Callable[[argparse.Namespace], int]


def _env_default(name: str, default: str | None) -> str | None:
    value = os.environ.get(name)
    return value if value else default


_Subcommands = argparse._SubParsersAction  # argparse's own (private) type for add_subparsers()


class _Builder:
    """Adds commands and groups of commands, each with ``--json``, to the top-level parser."""

    def __init__(self, parser: _Parser) -> None:
        self.json_flag = _Parser(add_help=False)
        self.json_flag.add_argument("--json", action="store_true", help="print one JSON object")
        self.root: _Subcommands[_Parser] = parser.add_subparsers(
            dest="command", metavar="COMMAND", required=True
        )

    def command(
        self, group: _Subcommands[_Parser], name: str, handler: _Handler, help_text: str
    ) -> _Parser:
        sub = group.add_parser(
            name, help=help_text, description=help_text, parents=[self.json_flag]
        )
        sub.set_defaults(handler=handler)
        return sub

    def group(self, name: str, help_text: str) -> _Subcommands[_Parser]:
        sub = self.root.add_parser(name, help=help_text, description=help_text)
        return sub.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)


def _add_store_commands(b: _Builder) -> None:
    b.command(b.root, "init", cmd_init, "create the database schema (idempotent)")

    workspace = b.group("workspace", "create and disable workspaces")
    sub = b.command(workspace, "create", cmd_workspace_create, "create a workspace")
    sub.add_argument("--name", required=True, type=_identifier)
    sub.add_argument("--org", metavar="ORG_ID", type=_identifier, help="link an organization")
    sub.add_argument("--rate-limit", type=_rate_limit, metavar="N/SECONDS")
    sub = b.command(workspace, "disable", cmd_workspace_disable, "disable a workspace")
    sub.add_argument("workspace_id", type=_identifier)
    sub = b.command(workspace, "enable", cmd_workspace_enable, "enable a disabled workspace")
    sub.add_argument("workspace_id", type=_identifier)

    keys = b.group("keys", "create, list and revoke root keys")
    sub = b.command(keys, "create", cmd_keys_create, "create a root key (printed once)")
    sub.add_argument("--workspace", required=True, metavar="WORKSPACE_ID", type=_identifier)
    sub.add_argument("--permission", action="append", metavar="P", required=True)
    sub.add_argument("--name", type=_identifier)
    sub.add_argument("--expires-in", type=_positive_int, metavar="SECONDS")
    sub.add_argument(
        "--rate-limit",
        type=_rate_limit,
        metavar="N/SECONDS",
        help="the key's own limit, on top of its workspace's (a request must pass both)",
    )
    sub = b.command(keys, "list", cmd_keys_list, "list a workspace's keys (never the secrets)")
    sub.add_argument("--workspace", required=True, metavar="WORKSPACE_ID", type=_identifier)
    sub = b.command(keys, "revoke", cmd_keys_revoke, "revoke a root key")
    sub.add_argument("key_id", type=_identifier)
    sub = b.command(
        keys, "set-limit", cmd_keys_set_limit, "set or clear (none) a key's own rate limit"
    )
    sub.add_argument("key_id", type=_identifier)
    sub.add_argument("rate_limit", type=_limit_or_none, metavar="N/SECONDS|none")

    portal = b.group("portal", "customer-portal sessions")
    sub = b.command(
        portal,
        "create-session",
        cmd_portal_create_session,
        "create a portal session; prints a one-time exchange code for the browser",
    )
    sub.add_argument("--workspace", required=True, metavar="WORKSPACE_ID", type=_identifier)
    sub.add_argument("--end-user", required=True, metavar="ID", type=_identifier)
    sub.add_argument("--permission", action="append", metavar="P", required=True)
    sub.add_argument("--ttl", type=_positive_int, default=3600, metavar="SECONDS")
    sub = b.command(
        portal, "revoke-session", cmd_portal_revoke_session, "revoke (log out) a portal session"
    )
    sub.add_argument("session_id", metavar="SESSION_ID", type=_identifier)

    users = b.group("dashboard-user", "dashboard users")
    sub = b.command(users, "add", cmd_dashboard_user_add, "add a dashboard user")
    sub.add_argument("--user-id", required=True, type=_identifier)
    sub.add_argument("--org", required=True, metavar="ORG_ID", type=_identifier)
    sub.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    sub.add_argument("--permission", action="append", metavar="P", required=True)


def _add_jwt_and_audit_commands(b: _Builder) -> None:
    jwt = b.group("jwt", "mint JWTs and check signing-secret rotation")
    sub = b.command(jwt, "mint", cmd_jwt_mint, "print a JWT signed with the active secret")
    sub.add_argument("--workspace", required=True, metavar="WORKSPACE_ID", type=_identifier)
    sub.add_argument("--subject", required=True, metavar="SUB", type=_identifier)
    sub.add_argument("--permission", action="append", metavar="P", required=True)
    sub.add_argument("--ttl", type=_positive_int, metavar="SECONDS")
    sub = b.command(jwt, "check-rotation", cmd_jwt_check_rotation, "check a rotation step")
    sub.add_argument(
        "--signing-kid", metavar="KID", help="the kid the signer uses (default: config)"
    )
    sub.add_argument(
        "--switched-at",
        type=_positive_int,
        metavar="EPOCH",
        help="when the signer switched to the signing kid (seconds since the epoch)",
    )
    sub.add_argument("--remove", action="append", metavar="KID", help="a kid to remove")

    sub = b.command(
        b.root, "usage", cmd_usage, "authentication outcomes of a workspace or key, per bucket"
    )
    whose = sub.add_mutually_exclusive_group(required=True)
    whose.add_argument("--workspace", metavar="WORKSPACE_ID", type=_identifier)
    whose.add_argument(
        "--unknown",
        action="store_true",
        help="credentials never verified (unknown, malformed, missing): in no workspace",
    )
    sub.add_argument("--key", metavar="KEY_ID", type=_identifier, help="one key's usage only")
    sub.add_argument("--since", type=_positive_int, metavar="EPOCH", help="default: a day ago")
    sub.add_argument("--until", type=_positive_int, metavar="EPOCH", help="default: now")
    sub.add_argument("--granularity", choices=("minute", "hour", "day"), default="hour")
    sub = b.command(
        b.root,
        "prune-usage",
        cmd_usage_prune,
        "roll old minute counts up into hours and delete counts past the retention",
    )
    sub.add_argument("--retention-days", type=_positive_int, default=30, metavar="DAYS")
    sub.add_argument("--rollup-after-hours", type=_positive_int, default=24, metavar="HOURS")

    audit = b.group("audit", "audit events")
    sub = b.command(audit, "list", cmd_audit_list, "list a workspace's audit events, newest first")
    sub.add_argument("--workspace", required=True, metavar="WORKSPACE_ID", type=_identifier)
    sub.add_argument("--limit", type=_positive_int, default=50)


def _add_trusted_proxy(sub: _Parser) -> None:
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


def _add_server_commands(b: _Builder) -> None:
    sub = b.command(b.root, "serve", cmd_serve, "run the example API")
    sub.add_argument("--host", default="127.0.0.1")
    sub.add_argument("--port", type=_port, default=8000)
    _add_trusted_proxy(sub)
    sub.add_argument(
        "--metrics-port",
        type=_port,
        default=_env_default("AUTHCORE_METRICS_PORT", None),
        metavar="PORT",
        help="also serve Prometheus metrics at /metrics on this port (env AUTHCORE_METRICS_PORT)",
    )
    sub.add_argument("--metrics-host", default="127.0.0.1", help="where --metrics-port listens")
    sub.add_argument(
        "--redis-down",
        choices=sorted(_REDIS_DOWN),
        default=_env_default("AUTHCORE_REDIS_DOWN", "refuse"),
        help="while Redis is unreachable: refuse with 503 (default) or decide with a bounded "
        "limiter in each process; recovery is automatic (env AUTHCORE_REDIS_DOWN)",
    )
    sub.add_argument(
        "--workers",
        type=_positive_int,
        default=_env_default("AUTHCORE_WORKERS", "1"),
        metavar="N",
        help="worker processes on the one port; above 1 needs --redis (env AUTHCORE_WORKERS)",
    )
    sub = b.command(b.root, "dashboard", cmd_dashboard, "run the dashboard and its proxy")
    sub.add_argument("--host", default="127.0.0.1")
    sub.add_argument("--port", type=_port, default=8001)
    sub.add_argument("--api-url", default="http://127.0.0.1:8000", metavar="URL")
    _add_trusted_proxy(sub)
    sub = b.command(b.root, "demo", cmd_demo, "set up a demo workspace and run API + dashboard")
    sub.add_argument("--host", default="127.0.0.1")
    sub.add_argument("--api-port", type=_port, default=8000)
    sub.add_argument("--dashboard-port", type=_port, default=8001)
    _add_trusted_proxy(sub)


def build_parser() -> argparse.ArgumentParser:
    """Return the ``authcore`` argument parser."""
    parser = _Parser(
        prog=_PROG,
        description="authcore: operate the key store, mint and check JWTs, run the example API.",
    )
    parser.add_argument(
        "--db",
        default=_env_default("AUTHCORE_DB", DEFAULT_DB),
        metavar="URL",
        help=f"sqlite:///PATH or postgresql://... (env AUTHCORE_DB; default {DEFAULT_DB})",
    )
    parser.add_argument(
        "--config",
        default=_env_default("AUTHCORE_CONFIG", None),
        metavar="PATH",
        help="TOML configuration file (env AUTHCORE_CONFIG)",
    )
    parser.add_argument(
        "--redis",
        default=_env_default("AUTHCORE_REDIS", None),
        metavar="URL",
        help="redis://... shared by every process: the servers' rate limits and cache "
        "invalidations; changes made here are published to them (env AUTHCORE_REDIS)",
    )
    builder = _Builder(parser)
    _add_store_commands(builder)
    _add_jwt_and_audit_commands(builder)
    _add_server_commands(builder)
    return parser


def _describe(exc: AuthcoreError) -> str:
    if isinstance(exc, UnavailableError):
        return f"the database is unavailable ({exc.detail or 'no detail'})"
    return exc.detail or exc.message


def _exit_code(exc: AuthcoreError) -> int:
    # Configuration and grammar problems are the operator's input (2); the rest is runtime (1).
    return 2 if isinstance(exc, ConfigurationError | InvalidPermissionError) else 1


@contextlib.contextmanager
def _quiet_drivers() -> Iterator[None]:
    """Silence the database drivers' loggers while a command runs (restored afterwards).

    psycopg's pool logs every failed connection attempt, quoting the connection string (with
    its password) when it cannot parse it; a server that refuses connections adds a dozen
    warnings. The command reports the failure itself, in one line, redacted.
    """
    # A level above CRITICAL on the parents: their children ("psycopg.pool",
    # "psycopg_pool.sched") inherit it, so nothing of theirs is emitted.
    loggers = [logging.getLogger(name) for name in _DRIVER_LOGGERS]
    saved = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for logger, level in zip(loggers, saved, strict=True):
            logger.setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    with _quiet_drivers():
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    try:
        args = build_parser().parse_args(argv)
        handler: _Handler = args.handler
        return handler(args)
    except CommandError as exc:
        _note(f"error: {exc}")
        return exc.exit_code
    except AuthcoreError as exc:
        _note(f"error: {_describe(exc)}")
        return _exit_code(exc)
    except SystemExit as exc:
        # --help and --version exit through argparse; keep main() a function that returns.
        return exc.code if isinstance(exc.code, int) else 0
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if os.environ.get("AUTHCORE_DEBUG"):
            raise
        # A bug: still one line, and only the type (a message might quote a secret).
        _note(f"error: unexpected {type(exc).__name__} (set AUTHCORE_DEBUG=1 for details)")
        return 1
