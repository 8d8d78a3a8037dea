"""The SQL both SQL backends share: schema, migrations, and each change step as a statement.

Management operations are changes (:mod:`authcore.changes`): generators of steps.
:func:`translate` turns each step into one :class:`Statement` and says how to read its rows;
:func:`run_change` and :func:`arun_change` run a change through a driver's executor inside
the one transaction the driver holds. SQLite's driver and PostgreSQL's sync and async drivers
all run the same changes, so they behave alike by construction, and a change and its audit
event always share a transaction. Migrations are plain generators of statements
(:func:`migrate`, run by :func:`drive_statements`).

SQL is written once with ``?`` placeholders and a few ``{name}`` slots that a
:class:`Dialect` fills (column types, row locks); PostgreSQL's dialect turns ``?`` into
``%s``. No statement text ever contains a value: everything goes through parameters.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Sequence
from typing import Any, Final, TypeAlias, TypeVar

import attrs

from authcore.backends import _rows, _usage_sql
from authcore.backends._schema import MIGRATIONS, SCHEMA_VERSION
from authcore.errors import ConfigurationError
from authcore.records import (
    AuditCursor,
    AuditPage,
    IdentityRecord,
    PortalExchangeRecord,
    PortalSessionRecord,
    RootKeyRecord,
    WorkspaceRecord,
)
from authcore.steps import (
    AddUsage,
    Append,
    Change,
    Delete,
    DeleteUsage,
    EnsureIdentity,
    FindIdentity,
    Insert,
    ListAudit,
    ListIdentities,
    ListPortalSessions,
    ListRootKeys,
    ListWorkspaces,
    Load,
    MarkUsed,
    PruneExchanges,
    ReadLastUsed,
    ReadUsage,
    RollUpUsage,
    Step,
    Update,
    adrive,
    drive,
)

__all__ = [
    "MIGRATIONS",
    "POSTGRES",
    "SQLITE",
    "Dialect",
    "Op",
    "Rows",
    "SQLLookups",
    "Statement",
    "arun_change",
    "drive_statements",
    "run_change",
    "translate",
]

_R = TypeVar("_R")
_T = TypeVar("_T")
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
                # A literal % (the modulo operator) must not read as a placeholder.
                rendered = rendered.replace("%", "%%").replace("?", self.placeholder)
            self._cache[sql] = rendered
        return rendered


SQLITE: Final = Dialect(
    "sqlite",
    {
        "bytes": "BLOB",
        "seq": "INTEGER PRIMARY KEY",
        # SQLite has no row locks; its writers take the database lock (BEGIN IMMEDIATE).
        "for_update": "",
        "greatest": "MAX",
        # Text order by code point everywhere (SQLite's BINARY is UTF-8 byte order, which is
        # the same), so a page cursor means the same in every backend.
        "collate": "",
    },
    "?",
)
POSTGRES: Final = Dialect(
    "postgres",
    {
        "bytes": "BYTEA",
        "seq": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
        "for_update": " FOR UPDATE",
        "greatest": "GREATEST",
        "collate": ' COLLATE "C"',
    },
    "%s",
)


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


def drive_statements(op: Op[_R], execute: Callable[[Statement], Rows]) -> _R:
    """Run ``op``, feeding it the rows ``execute`` returns for each statement."""
    try:
        statement = next(op)
        while True:
            statement = op.send(execute(statement))
    except StopIteration as stop:
        result: _R = stop.value
        return result


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
    "revoked_at, rate_limit, rate_period, identity_id FROM root_keys WHERE digest = ?"
)
# A page of workspaces by id, by code point on both databases (as the memory store does), so
# a cursor means the same everywhere. SQLite walks its primary key's index (BINARY is code-point
# order); on PostgreSQL the primary key's index is in the database's collation, which
# COLLATE "C" does not match, so this scans the table and keeps the top rows (a top-N sort):
# an operator's list over a small table, never a request path.
_WORKSPACE_COLUMNS: Final = (
    "SELECT id, name, disabled, rate_limit, rate_period, org_id, created_at FROM workspaces"
)
_LIST_WORKSPACES: Final = _WORKSPACE_COLUMNS + " ORDER BY id{collate} LIMIT ?"
_LIST_WORKSPACES_AFTER: Final = (
    _WORKSPACE_COLUMNS + " WHERE id{collate} > ? ORDER BY id{collate} LIMIT ?"
)
_KEY_COLUMNS: Final = (
    "SELECT id, workspace_id, digest, start, name, permissions, created_at, expires_at, "
    "revoked_at, rate_limit, rate_period, identity_id FROM root_keys"
)
# A page of keys: oldest first by (created_at, id), ids compared by code point on both
# databases (as the memory store does), so a cursor means the same everywhere. Eight fixed
# texts (whose keys, after a cursor or not, limited or not): the dialects' render cache stays
# bounded.
_KEYS_OF_WORKSPACE: Final = " WHERE workspace_id = ?"
_KEYS_OF_IDENTITY: Final = " WHERE identity_id = ? AND workspace_id = ?"
_KEYS_AFTER: Final = " AND (created_at > ? OR (created_at = ? AND id{collate} > ?))"
_KEYS_ORDER: Final = " ORDER BY created_at, id{collate}"
_IDENTITY_COLUMNS: Final = (
    "SELECT id, workspace_id, external_id, meta, rate_limit, rate_period, created_at"
    " FROM identities"
)
FIND_IDENTITY: Final = _IDENTITY_COLUMNS + " WHERE id = ?"
_LOCK_IDENTITY: Final = _IDENTITY_COLUMNS + " WHERE id = ?{for_update}"
_FIND_IDENTITY_BY_EXTERNAL: Final = (
    _IDENTITY_COLUMNS + " WHERE workspace_id = ? AND external_id = ?{for_update}"
)
_LIST_IDENTITIES: Final = (
    _IDENTITY_COLUMNS + " WHERE workspace_id = ? ORDER BY external_id{collate} LIMIT ?"
)
_LIST_IDENTITIES_AFTER: Final = (
    _IDENTITY_COLUMNS + " WHERE workspace_id = ? AND external_id{collate} > ?"
    " ORDER BY external_id{collate} LIMIT ?"
)
_INSERT_IDENTITY: Final = (
    "INSERT INTO identities (id, workspace_id, external_id, meta, rate_limit, rate_period,"
    " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
# EnsureIdentity: insert unless taken, then read what is there (a second statement, so that
# on PostgreSQL it sees a row a racing transaction committed while this one waited).
_ENSURE_IDENTITY: Final = _INSERT_IDENTITY + " ON CONFLICT (workspace_id, external_id) DO NOTHING"
_UPDATE_IDENTITY: Final = (
    "UPDATE identities SET workspace_id = ?, external_id = ?, meta = ?, rate_limit = ?,"
    " rate_period = ?, created_at = ? WHERE id = ?"
)
_DELETE_IDENTITY: Final = "DELETE FROM identities WHERE id = ?"
_LIST_IDENTITY_SESSIONS: Final = (
    "SELECT id, workspace_id, identity_id, digest, permissions, created_at, expires_at, "
    "revoked_at, key_permissions, rate_limit, rate_period FROM portal_sessions"
    " WHERE identity_id = ? AND workspace_id = ? ORDER BY created_at, id"
)
FIND_PORTAL_SESSION: Final = (
    "SELECT id, workspace_id, identity_id, digest, permissions, created_at, expires_at, "
    "revoked_at, key_permissions, rate_limit, rate_period FROM portal_sessions WHERE digest = ?"
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
    """Return the query for one audit page (one row more than ``limit``, to see if more)."""
    if before is None:
        return _LIST_AUDIT, (workspace_id, limit + 1)
    return _LIST_AUDIT_BEFORE, (workspace_id, before.time, before.seq, limit + 1)


def audit_page(rows: Rows, limit: int) -> AuditPage:
    """Turn the rows of :func:`list_audit_statement` into a page."""
    page = rows[:limit]
    cursor = AuditCursor(int(page[-1][3]), int(page[-1][0])) if len(rows) > limit else None
    return AuditPage(tuple(_rows.event_from_row(row) for row in page), cursor)


# --------------------------------------------------------------------------- steps -> SQL

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
    "expires_at, revoked_at, rate_limit, rate_period, identity_id)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_LOCK_KEY: Final = (
    "SELECT id, workspace_id, digest, start, name, permissions, created_at, expires_at, "
    "revoked_at, rate_limit, rate_period, identity_id FROM root_keys WHERE id = ?{for_update}"
)
# Update replaces the whole record (every column but the id), as the memory store does.
_UPDATE_KEY: Final = (
    "UPDATE root_keys SET workspace_id = ?, digest = ?, start = ?, name = ?, permissions = ?,"
    " created_at = ?, expires_at = ?, revoked_at = ?, rate_limit = ?, rate_period = ?,"
    " identity_id = ? WHERE id = ?"
)
_INSERT_SESSION: Final = (
    "INSERT INTO portal_sessions (id, workspace_id, identity_id, digest, permissions, "
    "created_at, expires_at, revoked_at, key_permissions, rate_limit, rate_period)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_LOCK_SESSION: Final = (
    "SELECT id, workspace_id, identity_id, digest, permissions, created_at, expires_at, "
    "revoked_at, key_permissions, rate_limit, rate_period FROM portal_sessions"
    " WHERE id = ?{for_update}"
)
_UPDATE_SESSION: Final = (
    "UPDATE portal_sessions SET workspace_id = ?, identity_id = ?, digest = ?, permissions = ?,"
    " created_at = ?, expires_at = ?, revoked_at = ?, key_permissions = ?, rate_limit = ?,"
    " rate_period = ? WHERE id = ?"
)
_INSERT_EXCHANGE: Final = (
    "INSERT INTO portal_exchanges (digest, session_id, created_at, expires_at, used_at)"
    " VALUES (?, ?, ?, ?, ?)"
)
_DELETE_STALE_EXCHANGES: Final = "DELETE FROM portal_exchanges WHERE expires_at <= ?"
_LOCK_EXCHANGE: Final = (
    "SELECT digest, session_id, created_at, expires_at, used_at FROM portal_exchanges"
    " WHERE digest = ?{for_update}"
)
_INSERT_AUDIT: Final = (
    "INSERT INTO audit_events"
    " (id, workspace_id, time, action, actor, targets, request_id, source, context)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_USER: Final = (
    "INSERT INTO dashboard_users (user_id, org_id, password_hash, permissions) VALUES (?, ?, ?, ?)"
)
_UPDATE_EXCHANGE: Final = "UPDATE portal_exchanges SET used_at = ? WHERE digest = ?"
_UPDATE_USER: Final = (
    "UPDATE dashboard_users SET org_id = ?, password_hash = ?, permissions = ? WHERE user_id = ?"
)


_LOADS: Final[dict[str, tuple[str, Callable[[Sequence[Any]], object]]]] = {
    "workspace": (_LOCK_WORKSPACE, _rows.workspace_from_row),
    "workspace_by_org": (FIND_WORKSPACE_BY_ORG, _rows.workspace_from_row),
    "identity": (_LOCK_IDENTITY, _rows.identity_from_row),
    "root_key": (_LOCK_KEY, _rows.key_from_row),
    "portal_session": (_LOCK_SESSION, _rows.session_from_row),
    "portal_exchange": (_LOCK_EXCHANGE, _rows.exchange_from_row),
    "dashboard_user": (FIND_DASHBOARD_USER, _rows.user_from_row),
}


def _nothing(rows: Rows) -> None:
    return None


def _first(convert: Callable[[Sequence[Any]], object]) -> Callable[[Rows], object]:
    return lambda rows: convert(rows[0]) if rows else None


def _keys(rows: Rows) -> list[RootKeyRecord]:
    return [_rows.key_from_row(row) for row in rows]


def _workspaces(rows: Rows) -> list[WorkspaceRecord]:
    return [_rows.workspace_from_row(row) for row in rows]


def _list_workspaces(step: ListWorkspaces) -> Statement:
    if step.after is None:
        return Statement(_LIST_WORKSPACES, (step.limit,))
    return Statement(_LIST_WORKSPACES_AFTER, (step.after, step.limit))


def _identities(rows: Rows) -> list[IdentityRecord]:
    return [_rows.identity_from_row(row) for row in rows]


def _sessions(rows: Rows) -> list[PortalSessionRecord]:
    return [_rows.session_from_row(row) for row in rows]


def _list_keys(step: ListRootKeys) -> Statement:
    sql = _KEY_COLUMNS + _KEYS_OF_WORKSPACE
    params: list[object] = [step.workspace_id]
    if step.identity_id is not None:
        sql = _KEY_COLUMNS + _KEYS_OF_IDENTITY
        params = [step.identity_id, step.workspace_id]
    if step.after is not None:
        sql += _KEYS_AFTER
        params += [step.after.created_at, step.after.created_at, step.after.id]
    sql += _KEYS_ORDER
    if step.limit is not None:
        sql += " LIMIT ?"
        params.append(step.limit)
    return Statement(sql, tuple(params))


def _identity_step(
    step: FindIdentity | ListIdentities | ListPortalSessions | Delete,
) -> tuple[Statement, Callable[[Rows], object]]:
    if isinstance(step, FindIdentity):
        sql = _FIND_IDENTITY_BY_EXTERNAL
        if not step.lock:
            sql = sql.replace("{for_update}", "")
        read = _first(_rows.identity_from_row)
        return Statement(sql, (step.workspace_id, step.external_id)), read
    if isinstance(step, ListIdentities):
        if step.after is None:
            return Statement(_LIST_IDENTITIES, (step.workspace_id, step.limit)), _identities
        after = (step.workspace_id, step.after, step.limit)
        return Statement(_LIST_IDENTITIES_AFTER, after), _identities
    if isinstance(step, ListPortalSessions):
        owner = (step.identity_id, step.workspace_id)
        return Statement(_LIST_IDENTITY_SESSIONS, owner), _sessions
    return Statement(_DELETE_IDENTITY, (step.record.id,)), _nothing


def _statements(step: Step) -> tuple[tuple[Statement, ...], Callable[[Rows], object]]:
    """The statements of ``step``, in order, and how to read the rows of the last.

    Every step is one statement but :class:`EnsureIdentity`: insert unless taken, then read.
    """
    if isinstance(step, EnsureIdentity):
        record = step.record
        ensure = Statement(_ENSURE_IDENTITY, _rows.identity_params(record))
        find = Statement(
            _FIND_IDENTITY_BY_EXTERNAL.replace("{for_update}", ""),
            (record.workspace_id, record.external_id),
        )
        return (ensure, find), _first(_rows.identity_from_row)
    statement, read = translate(step)
    return (statement,), read


def _write(step: Insert | Update) -> Statement:
    record, insert = step.record, isinstance(step, Insert)
    if isinstance(record, WorkspaceRecord):
        params = _rows.workspace_params(record)
        if insert:
            return Statement(_INSERT_WORKSPACE, params, conflict=step.conflict)
        return Statement(_UPDATE_WORKSPACE, (*params[1:], params[0]), conflict=step.conflict)
    if isinstance(record, IdentityRecord):
        params = _rows.identity_params(record)
        if insert:
            return Statement(_INSERT_IDENTITY, params, conflict=step.conflict)
        return Statement(_UPDATE_IDENTITY, (*params[1:], params[0]), conflict=step.conflict)
    if isinstance(record, RootKeyRecord):
        if insert:
            return Statement(_INSERT_KEY, _rows.key_params(record))
        params = _rows.key_params(record)
        return Statement(_UPDATE_KEY, (*params[1:], params[0]))
    if isinstance(record, PortalSessionRecord):
        if insert:
            return Statement(_INSERT_SESSION, _rows.session_params(record))
        params = _rows.session_params(record)
        return Statement(_UPDATE_SESSION, (*params[1:], params[0]))
    if isinstance(record, PortalExchangeRecord):
        if insert:
            params = (
                record.digest,
                record.session_id,
                record.created_at,
                record.expires_at,
                record.used_at,
            )
            return Statement(_INSERT_EXCHANGE, params)
        return Statement(_UPDATE_EXCHANGE, (record.used_at, record.digest))
    params = _rows.user_params(record)
    if insert:
        return Statement(_INSERT_USER, params, conflict=step.conflict)
    return Statement(_UPDATE_USER, (*params[1:], params[0]), conflict=step.conflict)


def translate(step: Step) -> tuple[Statement, Callable[[Rows], object]]:
    """Return the statement that performs ``step`` and how to read its rows into the result.

    Every step of :mod:`authcore.changes` is one statement, so the drivers below stay one
    line each, sync and async.
    """
    if isinstance(step, Load):
        sql, convert = _LOADS[step.table]
        if not step.lock:
            sql = sql.replace("{for_update}", "")
        return Statement(sql, (step.key,)), _first(convert)
    if isinstance(step, ListRootKeys):
        return _list_keys(step), _keys
    if isinstance(step, ListWorkspaces):
        return _list_workspaces(step), _workspaces
    if isinstance(step, FindIdentity | ListIdentities | ListPortalSessions | Delete):
        return _identity_step(step)
    if isinstance(step, EnsureIdentity):
        raise TypeError("EnsureIdentity is two statements: see _statements")
    if isinstance(step, ListAudit):
        sql, params = list_audit_statement(step.workspace_id, step.limit, step.before)
        return Statement(sql, params), lambda rows: audit_page(rows, step.limit)
    if isinstance(step, Insert | Update):
        return _write(step), _nothing
    if isinstance(step, Append):
        return Statement(_INSERT_AUDIT, _rows.audit_params(step.event)), _nothing
    if isinstance(step, PruneExchanges):
        return Statement(_DELETE_STALE_EXCHANGES, (step.now,)), _nothing
    return _usage(step)


def _usage(
    step: AddUsage | MarkUsed | ReadUsage | ReadLastUsed | RollUpUsage | DeleteUsage,
) -> tuple[Statement, Callable[[Rows], object]]:
    sql, params, read = _usage_sql.usage_statement(step)
    return Statement(sql, params), read


def run_change(change: Change[_R], execute: Callable[[Statement], Rows]) -> _R:
    """Run ``change`` through ``execute`` (the caller holds the transaction)."""

    def perform(step: Step) -> object:
        statements, read = _statements(step)
        rows: Rows = []
        for statement in statements:
            rows = execute(statement)
        return read(rows)

    return drive(change, perform)


async def arun_change(change: Change[_R], execute: Callable[[Statement], Awaitable[Rows]]) -> _R:
    """Async twin of :func:`run_change`."""

    async def perform(step: Step) -> object:
        statements, read = _statements(step)
        rows: Rows = []
        for statement in statements:
            rows = await execute(statement)
        return read(rows)

    return await adrive(change, perform)


class SQLLookups:
    """The four credential lookups over a driver's ``_read`` (sync SQL stores).

    One parameterized single-row query on a unique index each: the verification path, kept
    off the change machinery.
    """

    def _read(self, sql: str, params: tuple[object, ...]) -> Rows:
        raise NotImplementedError

    def _one(
        self, sql: str, params: tuple[object, ...], convert: Callable[[Sequence[Any]], _T]
    ) -> _T | None:
        rows = self._read(sql, params)
        return convert(rows[0]) if rows else None

    def find_root_key(self, digest: bytes, /) -> RootKeyRecord | None:
        """Return the root key stored under ``digest``."""
        return self._one(FIND_ROOT_KEY, (digest,), _rows.key_from_row)

    def find_portal_session(self, digest: bytes, /) -> PortalSessionRecord | None:
        """Return the portal session stored under ``digest``."""
        return self._one(FIND_PORTAL_SESSION, (digest,), _rows.session_from_row)

    def find_workspace(self, workspace_id: str, /) -> WorkspaceRecord | None:
        """Return the workspace ``workspace_id``."""
        return self._one(FIND_WORKSPACE, (workspace_id,), _rows.workspace_from_row)

    def find_identity(self, identity_id: str, /) -> IdentityRecord | None:
        """Return the identity ``identity_id``."""
        return self._one(FIND_IDENTITY, (identity_id,), _rows.identity_from_row)
