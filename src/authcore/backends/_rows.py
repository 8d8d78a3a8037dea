"""Rows <-> records for the SQL stores: what a column holds, and reading it back safely.

A row that cannot be read is a broken backing system: every reader raises
:class:`~authcore.errors.UnavailableError` (503), never a reason to admit a request.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from authcore.audit import AuditEvent, AuditTarget
from authcore.errors import ConfigurationError, UnavailableError
from authcore.principal import Subject
from authcore.ratelimit import RateLimitPolicy
from authcore.records import (
    DashboardUserRecord,
    IdentityRecord,
    PortalExchangeRecord,
    PortalSessionRecord,
    RootKeyRecord,
    UsageCount,
    WorkspaceRecord,
)

__all__ = [
    "audit_params",
    "event_from_row",
    "exchange_from_row",
    "identity_from_row",
    "identity_params",
    "key_from_row",
    "key_params",
    "last_used_from_rows",
    "session_from_row",
    "session_params",
    "usage_from_rows",
    "user_from_row",
    "user_params",
    "workspace_from_row",
    "workspace_params",
]


def _garbage() -> UnavailableError:
    # A row we cannot read is a broken backing system, never a reason to admit a request.
    return UnavailableError("store returned a malformed row")


def _grants(text: object) -> tuple[str, ...]:
    value = json.loads(text) if isinstance(text, str) else None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _garbage()
    return tuple(value)


def workspace_params(record: WorkspaceRecord) -> tuple[object, ...]:
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


def key_params(record: RootKeyRecord) -> tuple[object, ...]:
    policy = record.rate_limit
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
        None if policy is None else policy.limit,
        None if policy is None else policy.period,
        record.identity_id,
    )


def identity_params(record: IdentityRecord) -> tuple[object, ...]:
    policy = record.rate_limit
    return (
        record.id,
        record.workspace_id,
        record.external_id,
        record.meta,
        None if policy is None else policy.limit,
        None if policy is None else policy.period,
        record.created_at,
    )


def identity_from_row(row: Sequence[Any]) -> IdentityRecord:
    """Read an ``identities`` row.

    Raises:
        UnavailableError: the row is malformed.
    """
    try:
        limit, period, meta = row[4], row[5], row[3]
        if meta is not None and not isinstance(json.loads(meta), dict):
            raise _garbage()
        return IdentityRecord(
            id=row[0],
            workspace_id=row[1],
            external_id=row[2],
            meta=meta,
            rate_limit=None if limit is None else RateLimitPolicy(int(limit), int(period)),
            created_at=int(row[6]),
        )
    except (TypeError, ValueError, IndexError, ConfigurationError):
        raise _garbage() from None


def key_from_row(row: Sequence[Any]) -> RootKeyRecord:
    """Read a ``root_keys`` row.

    Raises:
        UnavailableError: the row is malformed.
    """
    try:
        limit, period = row[9], row[10]
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
            rate_limit=None if limit is None else RateLimitPolicy(int(limit), int(period)),
            identity_id=row[11],
        )
    except (TypeError, ValueError, IndexError, ConfigurationError):
        raise _garbage() from None


def session_params(record: PortalSessionRecord) -> tuple[object, ...]:
    return (
        record.id,
        record.workspace_id,
        record.identity_id,
        record.digest,
        json.dumps(list(record.permissions)),
        record.created_at,
        record.expires_at,
        record.revoked_at,
        json.dumps(list(record.key_permissions)),
        None if record.rate_limit is None else record.rate_limit.limit,
        None if record.rate_limit is None else record.rate_limit.period,
    )


def session_from_row(row: Sequence[Any]) -> PortalSessionRecord:
    """Read a ``portal_sessions`` row.

    Raises:
        UnavailableError: the row is malformed.
    """
    try:
        limit, period = row[9], row[10]
        return PortalSessionRecord(
            id=row[0],
            workspace_id=row[1],
            identity_id=row[2],
            digest=bytes(row[3]),
            permissions=_grants(row[4]),
            created_at=int(row[5]),
            expires_at=int(row[6]),
            revoked_at=None if row[7] is None else int(row[7]),
            key_permissions=_grants(row[8]),
            rate_limit=None if limit is None else RateLimitPolicy(int(limit), int(period)),
        )
    except (TypeError, ValueError, IndexError, ConfigurationError):
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


def audit_params(event: AuditEvent) -> tuple[object, ...]:
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


def user_params(record: DashboardUserRecord) -> tuple[object, ...]:
    permissions = json.dumps(list(record.permissions))
    return (record.user_id, record.org_id, record.password_hash, permissions)


def usage_from_rows(
    rows: Sequence[Sequence[Any]], workspace_id: str, credential_id: str | None, span: int
) -> list[UsageCount]:
    """Read ``(bucket, outcome, sum)`` rows into counts (PostgreSQL sums are Decimals).

    Raises:
        UnavailableError: a row is malformed.
    """
    try:
        return [
            UsageCount(
                workspace_id, credential_id or "", str(row[1]), int(row[0]), int(row[2]), span
            )
            for row in rows
        ]
    except (TypeError, ValueError, IndexError):
        raise _garbage() from None


def last_used_from_rows(rows: Sequence[Sequence[Any]]) -> dict[str, int]:
    """Read ``(credential_id, last_used_at)`` rows.

    Raises:
        UnavailableError: a row is malformed.
    """
    try:
        return {str(row[0]): int(row[1]) for row in rows}
    except (TypeError, ValueError, IndexError):
        raise _garbage() from None
