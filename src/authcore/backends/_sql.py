"""The SQL both SQL backends share: schema, migrations, and each operation written once.

Every store operation is a generator (an *op*) that yields :class:`Statement` values and
receives each statement's rows back, the way the core's flow yields its needs. A driver runs
an op inside one transaction on one connection: SQLite's driver and PostgreSQL's sync and
async drivers all run the same ops, so the three behave alike by construction, and a change
and its audit event always share a transaction.

SQL is written once with ``?`` placeholders and a few ``{name}`` slots that a
:class:`Dialect` fills (column types, row locks); PostgreSQL's dialect turns ``?`` into
``%s``. No statement text ever contains a value: everything goes through parameters.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Generator, Sequence
from typing import Any, Final, TypeAlias, TypeVar

import attrs

from authcore.audit import AuditEvent, AuditTarget
from authcore.backends import base
from authcore.errors import ConfigurationError, UnavailableError
from authcore.principal import Subject
from authcore.ratelimit import RateLimitPolicy
from authcore.store import (
    Actor,
    AuditCursor,
    AuditPage,
    DashboardUserRecord,
    NewPortalExchange,
    NewPortalSession,
    NewRootKey,
    PortalExchangeRecord,
    PortalSessionRecord,
    RootKeyRecord,
    WorkspaceRecord,
)

__all__ = [
    "MIGRATIONS",
    "POSTGRES",
    "SQLITE",
    "Dialect",
    "Op",
    "Rows",
    "Statement",
    "adrive",
    "drive",
]

_R = TypeVar("_R")
Rows: TypeAlias = list[tuple[Any, ...]]


@attrs.frozen
class Statement:
    """One SQL statement and its parameters.

    ``conflict``: when set, a unique-constraint violation on this statement means the caller
    asked for something taken, and the driver raises ``ConflictError(conflict)``.
    """

    sql: str
    params: tuple[object, ...] = ()
    conflict: str | None = None


Op: TypeAlias = Generator[Statement, Rows, _R]


@attrs.frozen
class Dialect:
    """What differs between SQLite and PostgreSQL in our SQL."""

    name: str
    slots: dict[str, str]
    placeholder: str
    _cache: dict[str, str] = attrs.field(factory=dict, init=False, repr=False, eq=False)

    def render(self, sql: str) -> str:
        """Fill the slots and placeholders of ``sql`` (cached: statements are constants)."""
        rendered = self._cache.get(sql)
        if rendered is None:
            rendered = sql.format(**self.slots)
            if self.placeholder != "?":
                rendered = rendered.replace("?", self.placeholder)
            self._cache[sql] = rendered
        return rendered


SQLITE: Final = Dialect(
    "sqlite",
    {
        "bytes": "BLOB",
        "seq": "INTEGER PRIMARY KEY",
        # SQLite has no row locks; its writers take the database lock (BEGIN IMMEDIATE).
        "for_update": "",
    },
    "?",
)
POSTGRES: Final = Dialect(
    "postgres",
    {
        "bytes": "BYTEA",
        "seq": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
        "for_update": " FOR UPDATE",
    },
    "%s",
)

#: Ordered schema migrations; version N is ``MIGRATIONS[N - 1]``. Never edit a released
#: entry: append a new one. Each is a list of statements run in one transaction.
MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        """CREATE TABLE workspaces (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            disabled INTEGER NOT NULL DEFAULT 0,
            rate_limit INTEGER,
            rate_period INTEGER,
            org_id TEXT UNIQUE,
            created_at BIGINT NOT NULL
        )""",
        """CREATE TABLE root_keys (
            id TEXT PRIMARY KEY,
            workspace_id TEXT NOT NULL REFERENCES workspaces (id),
            digest {bytes} NOT NULL UNIQUE,
            start TEXT NOT NULL,
            name TEXT,
            permissions TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            expires_at BIGINT,
            revoked_at BIGINT
        )""",
        "CREATE INDEX root_keys_workspace ON root_keys (workspace_id, created_at)",
        """CREATE TABLE portal_sessions (
            id TEXT PRIMARY KEY,
            workspace_id TEXT NOT NULL REFERENCES workspaces (id),
            end_user_id TEXT NOT NULL,
            digest {bytes} NOT NULL UNIQUE,
            permissions TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            expires_at BIGINT NOT NULL,
            revoked_at BIGINT
        )""",
        "CREATE INDEX portal_sessions_workspace ON portal_sessions (workspace_id)",
        # No foreign key on workspace_id: events may outlive or precede what they describe.
        """CREATE TABLE audit_events (
            seq {seq},
            id TEXT NOT NULL UNIQUE,
            workspace_id TEXT NOT NULL,
            time BIGINT NOT NULL,
            action TEXT NOT NULL,
            actor TEXT NOT NULL,
            targets TEXT NOT NULL,
            request_id TEXT,
            source TEXT,
            context TEXT NOT NULL
        )""",
        "CREATE INDEX audit_events_page ON audit_events (workspace_id, time, seq)",
        """CREATE TABLE dashboard_users (
            user_id TEXT PRIMARY KEY,
            org_id TEXT NOT NULL,
            password_hash TEXT NOT NULL,
            permissions TEXT NOT NULL
        )""",
    ),
    # 2: one-time portal exchange codes, by digest; used_at set by the one exchange that works.
    (
        """CREATE TABLE portal_exchanges (
            digest {bytes} PRIMARY KEY,
            session_id TEXT NOT NULL REFERENCES portal_sessions (id),
            created_at BIGINT NOT NULL,
            expires_at BIGINT NOT NULL,
            used_at BIGINT
        )""",
        "CREATE INDEX portal_exchanges_expiry ON portal_exchanges (expires_at)",
    ),
)

SCHEMA_VERSION: Final = len(MIGRATIONS)


def migrate() -> Op[int]:
    """Bring the schema to :data:`SCHEMA_VERSION`; return the version found before.

    The driver runs this in one transaction holding the migration lock (SQLite's write lock,
    PostgreSQL's advisory lock), so concurrent starts apply each migration exactly once.

    Raises:
        ConfigurationError: the database has a newer schema than this code knows.
    """
    yield Statement("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY)")
    rows = yield Statement("SELECT COALESCE(MAX(version), 0) FROM schema_version")
    found = int(rows[0][0])
    if found > SCHEMA_VERSION:
        raise ConfigurationError(
            f"the database schema is version {found}; this authcore knows {SCHEMA_VERSION}"
        )
    for version in range(found + 1, SCHEMA_VERSION + 1):
        for sql in MIGRATIONS[version - 1]:
            yield Statement(sql)
        yield Statement("INSERT INTO schema_version (version) VALUES (?)", (version,))
    return found


def drive(op: Op[_R], execute: Callable[[Statement], Rows]) -> _R:
    """Run ``op``, feeding it the rows ``execute`` returns for each statement."""
    try:
        statement = next(op)
        while True:
            statement = op.send(execute(statement))
    except StopIteration as stop:
        result: _R = stop.value
        return result


async def adrive(op: Op[_R], execute: Callable[[Statement], Awaitable[Rows]]) -> _R:
    """Async twin of :func:`drive`: the same ops, an awaiting executor."""
    try:
        statement = next(op)
        while True:
            rows = await execute(statement)
            statement = op.send(rows)
    except StopIteration as stop:
        result: _R = stop.value
        return result


# --------------------------------------------------------------------------- rows <-> records


def _garbage() -> UnavailableError:
    # A row we cannot read is a broken backing system, never a reason to admit a request.
    return UnavailableError("store returned a malformed row")


def _grants(text: object) -> tuple[str, ...]:
    value = json.loads(text) if isinstance(text, str) else None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _garbage()
    return tuple(value)


def _workspace_params(record: WorkspaceRecord) -> tuple[object, ...]:
    policy = record.rate_limit
    return (
        record.id,
        record.name,
        int(record.disabled),
        None if policy is None else policy.limit,
        None if policy is None else policy.period,
        record.org_id,
        record.created_at,
    )


def workspace_from_row(row: Sequence[Any]) -> WorkspaceRecord:
    """Read a ``workspaces`` row.

    Raises:
        UnavailableError: the row is malformed.
    """
    try:
        limit, period = row[3], row[4]
        return WorkspaceRecord(
            id=row[0],
            name=row[1],
            disabled=bool(row[2]),
            rate_limit=None if limit is None else RateLimitPolicy(int(limit), int(period)),
            org_id=row[5],
            created_at=int(row[6]),
        )
    except (TypeError, ValueError, IndexError, ConfigurationError):
        raise _garbage() from None


def _key_params(record: RootKeyRecord) -> tuple[object, ...]:
    return (
        record.id,
        record.workspace_id,
        record.digest,
        record.start,
        record.name,
        json.dumps(list(record.permissions)),
        record.created_at,
        record.expires_at,
        record.revoked_at,
    )


def key_from_row(row: Sequence[Any]) -> RootKeyRecord:
    """Read a ``root_keys`` row.

    Raises:
        UnavailableError: the row is malformed.
    """
    try:
        return RootKeyRecord(
            id=row[0],
            workspace_id=row[1],
            digest=bytes(row[2]),
            start=row[3],
            name=row[4],
            permissions=_grants(row[5]),
            created_at=int(row[6]),
            expires_at=None if row[7] is None else int(row[7]),
            revoked_at=None if row[8] is None else int(row[8]),
        )
    except (TypeError, ValueError, IndexError):
        raise _garbage() from None


def _session_params(record: PortalSessionRecord) -> tuple[object, ...]:
    return (
        record.id,
        record.workspace_id,
        record.end_user_id,
        record.digest,
        json.dumps(list(record.permissions)),
        record.created_at,
        record.expires_at,
        record.revoked_at,
    )


def session_from_row(row: Sequence[Any]) -> PortalSessionRecord:
    """Read a ``portal_sessions`` row.

    Raises:
        UnavailableError: the row is malformed.
    """
    try:
        return PortalSessionRecord(
            id=row[0],
            workspace_id=row[1],
            end_user_id=row[2],
            digest=bytes(row[3]),
            permissions=_grants(row[4]),
            created_at=int(row[5]),
            expires_at=int(row[6]),
            revoked_at=None if row[7] is None else int(row[7]),
        )
    except (TypeError, ValueError, IndexError):
        raise _garbage() from None


def exchange_from_row(row: Sequence[Any]) -> PortalExchangeRecord:
    """Read a ``portal_exchanges`` row.

    Raises:
        UnavailableError: the row is malformed.
    """
    try:
        return PortalExchangeRecord(
            digest=bytes(row[0]),
            session_id=row[1],
            created_at=int(row[2]),
            expires_at=int(row[3]),
            used_at=None if row[4] is None else int(row[4]),
        )
    except (TypeError, ValueError, IndexError):
        raise _garbage() from None


def _audit_params(event: AuditEvent) -> tuple[object, ...]:
    return (
        event.id,
        event.workspace_id,
        event.time,
        event.action,
        json.dumps(event.actor.to_dict()),
        json.dumps([target.to_dict() for target in event.targets]),
        event.request_id,
        event.source,
        json.dumps(dict(event.context)),
    )


def event_from_row(row: Sequence[Any]) -> AuditEvent:
    """Read an ``audit_events`` row (without its ``seq``, column 0).

    Raises:
        UnavailableError: the row is malformed.
    """
    try:
        actor = json.loads(row[5])
        targets = json.loads(row[6])
        context = json.loads(row[9])
        return AuditEvent(
            id=row[1],
            workspace_id=row[2],
            actor=Subject(actor["type"], actor["id"], actor.get("name")),
            action=row[4],
            targets=tuple(AuditTarget(t["type"], t["id"], t.get("name")) for t in targets),
            time=int(row[3]),
            request_id=row[7],
            source=row[8],
            context={str(k): str(v) for k, v in context.items()},
        )
    except (TypeError, ValueError, IndexError, KeyError, AttributeError):
        raise _garbage() from None


def user_from_row(row: Sequence[Any]) -> DashboardUserRecord:
    """Read a ``dashboard_users`` row.

    Raises:
        UnavailableError: the row is malformed.
    """
    try:
        return DashboardUserRecord(
            user_id=row[0], org_id=row[1], password_hash=row[2], permissions=_grants(row[3])
        )
    except (TypeError, ValueError, IndexError):
        raise _garbage() from None


# --------------------------------------------------------------------------- lookups

FIND_WORKSPACE: Final = (
    "SELECT id, name, disabled, rate_limit, rate_period, org_id, created_at FROM workspaces "
    "WHERE id = ?"
)
FIND_WORKSPACE_BY_ORG: Final = (
    "SELECT id, name, disabled, rate_limit, rate_period, org_id, created_at FROM workspaces "
    "WHERE org_id = ?"
)
FIND_ROOT_KEY: Final = (
    "SELECT id, workspace_id, digest, start, name, permissions, created_at, expires_at, "
    "revoked_at FROM root_keys WHERE digest = ?"
)
GET_ROOT_KEY: Final = (
    "SELECT id, workspace_id, digest, start, name, permissions, created_at, expires_at, "
    "revoked_at FROM root_keys WHERE id = ?"
)
LIST_ROOT_KEYS: Final = (
    "SELECT id, workspace_id, digest, start, name, permissions, created_at, expires_at, "
    "revoked_at FROM root_keys WHERE workspace_id = ? ORDER BY created_at, id"
)
FIND_PORTAL_SESSION: Final = (
    "SELECT id, workspace_id, end_user_id, digest, permissions, created_at, expires_at, "
    "revoked_at FROM portal_sessions WHERE digest = ?"
)
GET_PORTAL_SESSION: Final = (
    "SELECT id, workspace_id, end_user_id, digest, permissions, created_at, expires_at, "
    "revoked_at FROM portal_sessions WHERE id = ?"
)
FIND_DASHBOARD_USER: Final = (
    "SELECT user_id, org_id, password_hash, permissions FROM dashboard_users WHERE user_id = ?"
)
_LIST_AUDIT: Final = (
    "SELECT seq, id, workspace_id, time, action, actor, targets, request_id, source, context "
    "FROM audit_events WHERE workspace_id = ?"
    " ORDER BY time DESC, seq DESC LIMIT ?"
)
_LIST_AUDIT_BEFORE: Final = (
    "SELECT seq, id, workspace_id, time, action, actor, targets, request_id, source, context "
    "FROM audit_events WHERE workspace_id = ? AND (time, seq) < (?, ?)"
    " ORDER BY time DESC, seq DESC LIMIT ?"
)


def list_audit_statement(
    workspace_id: str, limit: int, before: AuditCursor | None
) -> tuple[str, tuple[object, ...]]:
    """Return the query for one audit page (one row more than ``limit``, to see if more).

    Raises:
        ClientError: ``limit`` out of range.
    """
    size = base.check_audit_limit(limit)
    if before is None:
        return _LIST_AUDIT, (workspace_id, size + 1)
    if not isinstance(before, AuditCursor):
        raise TypeError("before must be an AuditCursor")
    return _LIST_AUDIT_BEFORE, (workspace_id, before.time, before.seq, size + 1)


def audit_page(rows: Rows, limit: int) -> AuditPage:
    """Turn the rows of :func:`list_audit_statement` into a page."""
    page = rows[:limit]
    cursor = AuditCursor(int(page[-1][3]), int(page[-1][0])) if len(rows) > limit else None
    return AuditPage(tuple(event_from_row(row) for row in page), cursor)


# --------------------------------------------------------------------------- operations

_INSERT_WORKSPACE: Final = (
    "INSERT INTO workspaces (id, name, disabled, rate_limit, rate_period, org_id, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_UPDATE_WORKSPACE: Final = (
    "UPDATE workspaces SET name = ?, disabled = ?, rate_limit = ?, rate_period = ?,"
    " org_id = ?, created_at = ? WHERE id = ?"
)
_LOCK_WORKSPACE: Final = (
    "SELECT id, name, disabled, rate_limit, rate_period, org_id, created_at FROM workspaces "
    "WHERE id = ?{for_update}"
)
_INSERT_KEY: Final = (
    "INSERT INTO root_keys (id, workspace_id, digest, start, name, permissions, created_at, "
    "expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_LOCK_KEY: Final = (
    "SELECT id, workspace_id, digest, start, name, permissions, created_at, expires_at, "
    "revoked_at FROM root_keys WHERE id = ?{for_update}"
)
_UPDATE_KEY: Final = "UPDATE root_keys SET expires_at = ?, revoked_at = ? WHERE id = ?"
_INSERT_SESSION: Final = (
    "INSERT INTO portal_sessions (id, workspace_id, end_user_id, digest, permissions, "
    "created_at, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_LOCK_SESSION: Final = (
    "SELECT id, workspace_id, end_user_id, digest, permissions, created_at, expires_at, "
    "revoked_at FROM portal_sessions WHERE id = ?{for_update}"
)
_UPDATE_SESSION: Final = "UPDATE portal_sessions SET revoked_at = ? WHERE id = ?"
_INSERT_EXCHANGE: Final = (
    "INSERT INTO portal_exchanges (digest, session_id, created_at, expires_at, used_at)"
    " VALUES (?, ?, ?, ?, ?)"
)
_DELETE_STALE_EXCHANGES: Final = "DELETE FROM portal_exchanges WHERE expires_at <= ?"
_LOCK_EXCHANGE: Final = (
    "SELECT digest, session_id, created_at, expires_at, used_at FROM portal_exchanges"
    " WHERE digest = ?{for_update}"
)
_USE_EXCHANGE: Final = "UPDATE portal_exchanges SET used_at = ? WHERE digest = ?"
_SET_SESSION_DIGEST: Final = "UPDATE portal_sessions SET digest = ? WHERE id = ?"
_INSERT_AUDIT: Final = (
    "INSERT INTO audit_events"
    " (id, workspace_id, time, action, actor, targets, request_id, source, context)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_USER: Final = (
    "INSERT INTO dashboard_users (user_id, org_id, password_hash, permissions) VALUES (?, ?, ?, ?)"
)
_ORG_TAKEN: Final = "org id already linked"


def _audit(event: AuditEvent) -> Statement:
    return Statement(_INSERT_AUDIT, _audit_params(event))


def append_audit(event: AuditEvent) -> Op[None]:
    """Store an event made elsewhere."""
    if not isinstance(event, AuditEvent):
        raise TypeError("append_audit takes an AuditEvent")
    yield _audit(event)


def create_workspace(record: WorkspaceRecord, event: AuditEvent) -> Op[WorkspaceRecord]:
    """Insert a planned workspace and its event."""
    yield Statement(_INSERT_WORKSPACE, _workspace_params(record), conflict=_ORG_TAKEN)
    yield _audit(event)
    return record


def update_workspace(
    workspace_id: str,
    plan: Callable[[WorkspaceRecord], tuple[WorkspaceRecord, AuditEvent] | None],
) -> Op[WorkspaceRecord | None]:
    """Lock the workspace, apply ``plan`` to it, write the result and its event."""
    rows = yield Statement(_LOCK_WORKSPACE, (workspace_id,))
    if not rows:
        return None
    record = workspace_from_row(rows[0])
    change = plan(record)
    if change is None:
        return record
    updated, event = change
    params = _workspace_params(updated)
    yield Statement(_UPDATE_WORKSPACE, (*params[1:], params[0]), conflict=_ORG_TAKEN)
    yield _audit(event)
    return updated


def create_root_key(new: NewRootKey, event: AuditEvent) -> Op[NewRootKey | None]:
    """Insert a planned key and its event; None if the workspace does not exist."""
    rows = yield Statement(FIND_WORKSPACE, (new.record.workspace_id,))
    if not rows:
        return None
    yield Statement(_INSERT_KEY, _key_params(new.record))
    yield _audit(event)
    return new


def revoke_root_key(key_id: str, *, now: float, actor: Actor) -> Op[RootKeyRecord | None]:
    """Lock the key, revoke it, write its event."""
    rows = yield Statement(_LOCK_KEY, (key_id,))
    if not rows:
        return None
    record = key_from_row(rows[0])
    change = base.plan_revoke_root_key(record, now=now, actor=actor)
    if change is None:
        return record
    updated, event = change
    yield Statement(_UPDATE_KEY, (updated.expires_at, updated.revoked_at, updated.id))
    yield _audit(event)
    return updated


def rotate_root_key(
    key_id: str, *, grace_seconds: int, now: float, actor: Actor, prefix: str
) -> Op[NewRootKey | None]:
    """Lock the key, shorten its life to the grace period, insert its successor and event."""
    rows = yield Statement(_LOCK_KEY, (key_id,))
    if not rows:
        return None
    change = base.plan_rotate_root_key(
        key_from_row(rows[0]), grace_seconds=grace_seconds, now=now, actor=actor, prefix=prefix
    )
    if change is None:
        return None
    old, new, event = change
    yield Statement(_UPDATE_KEY, (old.expires_at, old.revoked_at, old.id))
    yield Statement(_INSERT_KEY, _key_params(new.record))
    yield _audit(event)
    return new


def create_portal_session(new: NewPortalSession, event: AuditEvent) -> Op[NewPortalSession | None]:
    """Insert a planned portal session and its event; None if the workspace does not exist."""
    rows = yield Statement(FIND_WORKSPACE, (new.record.workspace_id,))
    if not rows:
        return None
    yield Statement(_INSERT_SESSION, _session_params(new.record))
    yield _audit(event)
    return new


def create_portal_exchange(
    new: NewPortalExchange, exchange: PortalExchangeRecord, event: AuditEvent
) -> Op[NewPortalExchange | None]:
    """Insert a pending session, its one-time code and its event; None if no such workspace."""
    rows = yield Statement(FIND_WORKSPACE, (new.record.workspace_id,))
    if not rows:
        return None
    # Codes past their expiry can never work again; this keeps the table small.
    yield Statement(_DELETE_STALE_EXCHANGES, (exchange.created_at,))
    yield Statement(_INSERT_SESSION, _session_params(new.record))
    yield Statement(
        _INSERT_EXCHANGE,
        (
            exchange.digest,
            exchange.session_id,
            exchange.created_at,
            exchange.expires_at,
            exchange.used_at,
        ),
    )
    yield _audit(event)
    return new


def exchange_portal_code(
    code_digest: bytes, *, now: float, prefix: str
) -> Op[NewPortalSession | None]:
    """Lock the code, then its session; spend the code and set the new token's digest.

    The row lock (PostgreSQL) or the database write lock (SQLite) makes a concurrent second
    exchange wait, then read ``used_at`` and get None: a code works once across processes.
    """
    rows = yield Statement(_LOCK_EXCHANGE, (bytes(code_digest),))
    if not rows:
        return None
    exchange = exchange_from_row(rows[0])
    rows = yield Statement(_LOCK_SESSION, (exchange.session_id,))
    session = session_from_row(rows[0]) if rows else None
    change = base.plan_exchange_portal_code(exchange, session, now=now, prefix=prefix)
    if change is None:
        return None
    used, started, event = change
    yield Statement(_USE_EXCHANGE, (used.used_at, used.digest))
    yield Statement(_SET_SESSION_DIGEST, (started.record.digest, started.record.id))
    yield _audit(event)
    return started


def revoke_portal_session(
    session_id: str, *, now: float, actor: Actor
) -> Op[PortalSessionRecord | None]:
    """Lock the session, revoke it, write its event."""
    rows = yield Statement(_LOCK_SESSION, (session_id,))
    if not rows:
        return None
    record = session_from_row(rows[0])
    change = base.plan_revoke_portal_session(record, now=now, actor=actor)
    if change is None:
        return record
    updated, event = change
    yield Statement(_UPDATE_SESSION, (updated.revoked_at, updated.id))
    yield _audit(event)
    return updated


def add_dashboard_user(record: DashboardUserRecord) -> Op[DashboardUserRecord]:
    """Insert a dashboard user."""
    yield Statement(
        _INSERT_USER,
        (record.user_id, record.org_id, record.password_hash, json.dumps(list(record.permissions))),
        conflict="user id taken",
    )
    return record


# --------------------------------------------------------------------------- store shells

_T = TypeVar("_T")


class SQLStore:
    """The sync :class:`~authcore.store.Store` methods, over a driver's ``_write``/``_read``.

    A subclass provides ``_write(op)`` (run an op in one write transaction) and
    ``_read(sql, params)`` (one read statement, no transaction needed) and the prefixes.
    """

    _root_key_prefix: str
    _portal_token_prefix: str

    def _write(self, op: Op[_T]) -> _T:
        raise NotImplementedError

    def _read(self, sql: str, params: tuple[object, ...]) -> Rows:
        raise NotImplementedError

    def _one(
        self, sql: str, params: tuple[object, ...], convert: Callable[[Sequence[Any]], _T]
    ) -> _T | None:
        rows = self._read(sql, params)
        return convert(rows[0]) if rows else None

    # CredentialStore: one parameterized single-row query on a unique index each.
    def find_root_key(self, digest: bytes, /) -> RootKeyRecord | None:
        """Return the root key stored under ``digest``."""
        return self._one(FIND_ROOT_KEY, (digest,), key_from_row)

    def find_portal_session(self, digest: bytes, /) -> PortalSessionRecord | None:
        """Return the portal session stored under ``digest``."""
        return self._one(FIND_PORTAL_SESSION, (digest,), session_from_row)

    def find_workspace(self, workspace_id: str, /) -> WorkspaceRecord | None:
        """Return the workspace ``workspace_id``."""
        return self._one(FIND_WORKSPACE, (workspace_id,), workspace_from_row)

    def find_workspace_by_org(self, org_id: str, /) -> WorkspaceRecord | None:
        """Return the workspace linked to ``org_id``."""
        return self._one(FIND_WORKSPACE_BY_ORG, (org_id,), workspace_from_row)

    def get_root_key(self, key_id: str, /) -> RootKeyRecord | None:
        """Return the root key with id ``key_id``."""
        return self._one(GET_ROOT_KEY, (key_id,), key_from_row)

    def list_root_keys(self, workspace_id: str, /) -> list[RootKeyRecord]:
        """Return the workspace's root keys (records only), oldest first."""
        return [key_from_row(row) for row in self._read(LIST_ROOT_KEYS, (workspace_id,))]

    def find_dashboard_user(self, user_id: str, /) -> DashboardUserRecord | None:
        """Return the dashboard user ``user_id``."""
        return self._one(FIND_DASHBOARD_USER, (user_id,), user_from_row)

    def get_portal_session(self, session_id: str, /) -> PortalSessionRecord | None:
        """Return the portal session with id ``session_id``."""
        return self._one(GET_PORTAL_SESSION, (session_id,), session_from_row)

    def list_audit(
        self, workspace_id: str, *, limit: int = 50, before: AuditCursor | None = None
    ) -> AuditPage:
        """Return up to ``limit`` events of the workspace older than ``before``, newest first."""
        sql, params = list_audit_statement(workspace_id, limit, before)
        return audit_page(self._read(sql, params), limit)

    # Mutations: each one op, one transaction, change and audit event together.
    def create_workspace(
        self,
        name: str,
        *,
        org_id: str | None = None,
        rate_limit: RateLimitPolicy | None = None,
        now: float,
        actor: Actor,
    ) -> WorkspaceRecord:
        """Create a workspace. See :class:`~authcore.store.Store` for the errors."""
        record, event = base.plan_create_workspace(
            name, org_id=org_id, rate_limit=rate_limit, now=now, actor=actor
        )
        return self._write(create_workspace(record, event))

    def disable_workspace(
        self, workspace_id: str, *, now: float, actor: Actor
    ) -> WorkspaceRecord | None:
        """Disable a workspace (credentials of it get 403); None when unknown."""
        return self._write(
            update_workspace(
                workspace_id, lambda r: base.plan_disable_workspace(r, now=now, actor=actor)
            )
        )

    def set_rate_limit(
        self, workspace_id: str, policy: RateLimitPolicy | None, *, now: float, actor: Actor
    ) -> WorkspaceRecord | None:
        """Set or clear (None) the workspace's rate-limit policy; None when unknown."""
        return self._write(
            update_workspace(
                workspace_id, lambda r: base.plan_set_rate_limit(r, policy, now=now, actor=actor)
            )
        )

    def link_org(
        self, workspace_id: str, org_id: str, *, now: float, actor: Actor
    ) -> WorkspaceRecord | None:
        """Link an organization id to the workspace; None when unknown.

        Raises:
            ConflictError: the org id is linked to another workspace.
        """
        return self._write(
            update_workspace(
                workspace_id, lambda r: base.plan_link_org(r, org_id, now=now, actor=actor)
            )
        )

    def create_root_key(
        self,
        workspace_id: str,
        *,
        permissions: Sequence[str],
        name: str | None = None,
        expires_at: int | None = None,
        now: float,
        actor: Actor,
    ) -> NewRootKey | None:
        """Create a root key; the raw key is in the result, once. None: unknown workspace."""
        new, event = base.plan_create_root_key(
            workspace_id,
            permissions=permissions,
            name=name,
            expires_at=expires_at,
            now=now,
            actor=actor,
            prefix=self._root_key_prefix,
        )
        return self._write(create_root_key(new, event))

    def revoke_root_key(self, key_id: str, *, now: float, actor: Actor) -> RootKeyRecord | None:
        """Revoke a root key and return it; None when unknown. Revoking twice keeps the first."""
        return self._write(revoke_root_key(key_id, now=now, actor=actor))

    def rotate_root_key(
        self, key_id: str, *, grace_seconds: int, now: float, actor: Actor
    ) -> NewRootKey | None:
        """Replace a key; the old one expires after the grace period (never later than before).

        None when the key is unknown, revoked or expired.
        """
        return self._write(
            rotate_root_key(
                key_id,
                grace_seconds=grace_seconds,
                now=now,
                actor=actor,
                prefix=self._root_key_prefix,
            )
        )

    def create_portal_session(
        self,
        workspace_id: str,
        end_user_id: str,
        *,
        permissions: Sequence[str],
        ttl: int,
        now: float,
        actor: Actor,
    ) -> NewPortalSession | None:
        """Create a portal session (raw token in the result, once). None: unknown workspace."""
        new, event = base.plan_create_portal_session(
            workspace_id,
            end_user_id,
            permissions=permissions,
            ttl=ttl,
            now=now,
            actor=actor,
            prefix=self._portal_token_prefix,
        )
        return self._write(create_portal_session(new, event))

    def revoke_portal_session(
        self, session_id: str, *, now: float, actor: Actor
    ) -> PortalSessionRecord | None:
        """Revoke (log out) a portal session and return it; None when unknown."""
        return self._write(revoke_portal_session(session_id, now=now, actor=actor))

    def create_portal_exchange(
        self,
        workspace_id: str,
        end_user_id: str,
        *,
        permissions: Sequence[str],
        ttl: int,
        now: float,
        actor: Actor,
    ) -> NewPortalExchange | None:
        """Create a portal session that starts with a one-time exchange code (shown once).

        None: unknown workspace.
        """
        new, exchange, event = base.plan_create_portal_exchange(
            workspace_id, end_user_id, permissions=permissions, ttl=ttl, now=now, actor=actor
        )
        return self._write(create_portal_exchange(new, exchange, event))

    def exchange_portal_code(self, code_digest: bytes, /, *, now: float) -> NewPortalSession | None:
        """Spend a code once: the session's token (shown once), or None for any unusable code."""
        return self._write(
            exchange_portal_code(code_digest, now=now, prefix=self._portal_token_prefix)
        )

    def append_audit(self, event: AuditEvent, /) -> None:
        """Append an event made elsewhere (e.g. by a handler with ``audit_event``)."""
        self._write(append_audit(event))

    def add_dashboard_user(
        self, user_id: str, org_id: str, password_hash: str, permissions: Sequence[str]
    ) -> DashboardUserRecord:
        """Add a dashboard user (the hash as :func:`authcore.passwords.hash_password` made it).

        Raises:
            ConflictError: the user id is taken.
        """
        record = base.make_dashboard_user(user_id, org_id, password_hash, permissions)
        return self._write(add_dashboard_user(record))


class AsyncSQLStore:
    """The :class:`~authcore.store.AsyncStore` methods, over ``_awrite``/``_aread``."""

    _root_key_prefix: str
    _portal_token_prefix: str

    async def _awrite(self, op: Op[_T]) -> _T:
        raise NotImplementedError

    async def _aread(self, sql: str, params: tuple[object, ...]) -> Rows:
        raise NotImplementedError

    async def _aone(
        self, sql: str, params: tuple[object, ...], convert: Callable[[Sequence[Any]], _T]
    ) -> _T | None:
        rows = await self._aread(sql, params)
        return convert(rows[0]) if rows else None

    async def afind_root_key(self, digest: bytes, /) -> RootKeyRecord | None:
        """Return the root key stored under ``digest``."""
        return await self._aone(FIND_ROOT_KEY, (digest,), key_from_row)

    async def afind_portal_session(self, digest: bytes, /) -> PortalSessionRecord | None:
        """Return the portal session stored under ``digest``."""
        return await self._aone(FIND_PORTAL_SESSION, (digest,), session_from_row)

    async def afind_workspace(self, workspace_id: str, /) -> WorkspaceRecord | None:
        """Return the workspace ``workspace_id``."""
        return await self._aone(FIND_WORKSPACE, (workspace_id,), workspace_from_row)

    async def afind_workspace_by_org(self, org_id: str, /) -> WorkspaceRecord | None:
        """Return the workspace linked to ``org_id``."""
        return await self._aone(FIND_WORKSPACE_BY_ORG, (org_id,), workspace_from_row)

    async def aget_root_key(self, key_id: str, /) -> RootKeyRecord | None:
        """Return the root key with id ``key_id``."""
        return await self._aone(GET_ROOT_KEY, (key_id,), key_from_row)

    async def alist_root_keys(self, workspace_id: str, /) -> list[RootKeyRecord]:
        """Return the workspace's root keys (records only), oldest first."""
        return [key_from_row(row) for row in await self._aread(LIST_ROOT_KEYS, (workspace_id,))]

    async def afind_dashboard_user(self, user_id: str, /) -> DashboardUserRecord | None:
        """Return the dashboard user ``user_id``."""
        return await self._aone(FIND_DASHBOARD_USER, (user_id,), user_from_row)

    async def aget_portal_session(self, session_id: str, /) -> PortalSessionRecord | None:
        """Return the portal session with id ``session_id``."""
        return await self._aone(GET_PORTAL_SESSION, (session_id,), session_from_row)

    async def alist_audit(
        self, workspace_id: str, *, limit: int = 50, before: AuditCursor | None = None
    ) -> AuditPage:
        """Return up to ``limit`` events of the workspace older than ``before``, newest first."""
        sql, params = list_audit_statement(workspace_id, limit, before)
        return audit_page(await self._aread(sql, params), limit)

    async def acreate_workspace(
        self,
        name: str,
        *,
        org_id: str | None = None,
        rate_limit: RateLimitPolicy | None = None,
        now: float,
        actor: Actor,
    ) -> WorkspaceRecord:
        """Async twin of ``create_workspace``."""
        record, event = base.plan_create_workspace(
            name, org_id=org_id, rate_limit=rate_limit, now=now, actor=actor
        )
        return await self._awrite(create_workspace(record, event))

    async def adisable_workspace(
        self, workspace_id: str, *, now: float, actor: Actor
    ) -> WorkspaceRecord | None:
        """Async twin of ``disable_workspace``."""
        return await self._awrite(
            update_workspace(
                workspace_id, lambda r: base.plan_disable_workspace(r, now=now, actor=actor)
            )
        )

    async def aset_rate_limit(
        self, workspace_id: str, policy: RateLimitPolicy | None, *, now: float, actor: Actor
    ) -> WorkspaceRecord | None:
        """Async twin of ``set_rate_limit``."""
        return await self._awrite(
            update_workspace(
                workspace_id, lambda r: base.plan_set_rate_limit(r, policy, now=now, actor=actor)
            )
        )

    async def alink_org(
        self, workspace_id: str, org_id: str, *, now: float, actor: Actor
    ) -> WorkspaceRecord | None:
        """Async twin of ``link_org``."""
        return await self._awrite(
            update_workspace(
                workspace_id, lambda r: base.plan_link_org(r, org_id, now=now, actor=actor)
            )
        )

    async def acreate_root_key(
        self,
        workspace_id: str,
        *,
        permissions: Sequence[str],
        name: str | None = None,
        expires_at: int | None = None,
        now: float,
        actor: Actor,
    ) -> NewRootKey | None:
        """Async twin of ``create_root_key``."""
        new, event = base.plan_create_root_key(
            workspace_id,
            permissions=permissions,
            name=name,
            expires_at=expires_at,
            now=now,
            actor=actor,
            prefix=self._root_key_prefix,
        )
        return await self._awrite(create_root_key(new, event))

    async def arevoke_root_key(
        self, key_id: str, *, now: float, actor: Actor
    ) -> RootKeyRecord | None:
        """Async twin of ``revoke_root_key``."""
        return await self._awrite(revoke_root_key(key_id, now=now, actor=actor))

    async def arotate_root_key(
        self, key_id: str, *, grace_seconds: int, now: float, actor: Actor
    ) -> NewRootKey | None:
        """Async twin of ``rotate_root_key``."""
        return await self._awrite(
            rotate_root_key(
                key_id,
                grace_seconds=grace_seconds,
                now=now,
                actor=actor,
                prefix=self._root_key_prefix,
            )
        )

    async def acreate_portal_session(
        self,
        workspace_id: str,
        end_user_id: str,
        *,
        permissions: Sequence[str],
        ttl: int,
        now: float,
        actor: Actor,
    ) -> NewPortalSession | None:
        """Async twin of ``create_portal_session``."""
        new, event = base.plan_create_portal_session(
            workspace_id,
            end_user_id,
            permissions=permissions,
            ttl=ttl,
            now=now,
            actor=actor,
            prefix=self._portal_token_prefix,
        )
        return await self._awrite(create_portal_session(new, event))

    async def arevoke_portal_session(
        self, session_id: str, *, now: float, actor: Actor
    ) -> PortalSessionRecord | None:
        """Async twin of ``revoke_portal_session``."""
        return await self._awrite(revoke_portal_session(session_id, now=now, actor=actor))

    async def acreate_portal_exchange(
        self,
        workspace_id: str,
        end_user_id: str,
        *,
        permissions: Sequence[str],
        ttl: int,
        now: float,
        actor: Actor,
    ) -> NewPortalExchange | None:
        """Async twin of ``create_portal_exchange``."""
        new, exchange, event = base.plan_create_portal_exchange(
            workspace_id, end_user_id, permissions=permissions, ttl=ttl, now=now, actor=actor
        )
        return await self._awrite(create_portal_exchange(new, exchange, event))

    async def aexchange_portal_code(
        self, code_digest: bytes, /, *, now: float
    ) -> NewPortalSession | None:
        """Async twin of ``exchange_portal_code``."""
        return await self._awrite(
            exchange_portal_code(code_digest, now=now, prefix=self._portal_token_prefix)
        )

    async def aappend_audit(self, event: AuditEvent, /) -> None:
        """Async twin of ``append_audit``."""
        await self._awrite(append_audit(event))

    async def aadd_dashboard_user(
        self, user_id: str, org_id: str, password_hash: str, permissions: Sequence[str]
    ) -> DashboardUserRecord:
        """Async twin of ``add_dashboard_user``."""
        record = base.make_dashboard_user(user_id, org_id, password_hash, permissions)
        return await self._awrite(add_dashboard_user(record))
