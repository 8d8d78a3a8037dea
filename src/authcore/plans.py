"""The decisions of every management operation, without I/O: validation and the audit event.

Each ``plan_*`` function takes the records a change loaded (or nothing) and returns what to
write: the new records and the audit event that records the change, or None when there is
nothing to do. :mod:`authcore.changes` runs them inside its changes; they are pure, and
tested as such (``tests/test_plans.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, TypeVar

import attrs

from authcore.audit import (
    ACTION_KEY_CREATE,
    ACTION_KEY_REVOKE,
    ACTION_KEY_ROTATE,
    ACTION_KEY_UPDATE,
    ACTION_WORKSPACE_CREATE,
    ACTION_WORKSPACE_DISABLE,
    ACTION_WORKSPACE_ENABLE,
    ACTION_WORKSPACE_UPDATE,
    AuditEvent,
    AuditTarget,
    audit_event,
)
from authcore.errors import (
    ClientError,
    InvalidPermissionError,
    PermissionDeniedError,
    TooManyGrantsError,
)
from authcore.names import MAX_NAME_LENGTH, check_name
from authcore.permissions import validate_grant
from authcore.ratelimit import RateLimitPolicy
from authcore.records import (
    MAX_AUDIT_PAGE,
    MAX_GRACE_SECONDS,
    Actor,
    DashboardUserRecord,
    NewRootKey,
    PortalSessionRecord,
    RootKeyRecord,
    WorkspaceRecord,
)
from authcore.tokens import generate_id, issue_token

__all__ = [
    "MAX_KEY_GRANTS",
    "MAX_KEY_GRANT_BYTES",
    "MAX_NAME_LENGTH",
    "check_audit_limit",
    "check_id",
    "make_dashboard_user",
    "plan_create_root_key",
    "plan_create_workspace",
    "plan_disable_workspace",
    "plan_enable_workspace",
    "plan_link_org",
    "plan_revoke_root_key",
    "plan_rotate_root_key",
    "plan_set_key_rate_limit",
    "plan_set_rate_limit",
    "validate_grants",
]

#: Most grants one key, portal session (and its ``key_permissions``) or dashboard user holds.
#: Permissions name an API's operations; a few dozen cover most APIs and a wildcard covers a
#: group, so 256 is ample. The bound is what one tenant can pin: every verified key's grants
#: live in each process's caches and in every list page that shows the key.
MAX_KEY_GRANTS: Final = 256
#: Most bytes of grant text (ASCII, so characters) one of those holds, duplicates dropped:
#: 256 grants of 32 characters each. With it a stored key stays under about 9 KiB of JSON, so a
#: page of keys is bounded too (256 grants of 128 characters would be 32 KiB a key).
MAX_KEY_GRANT_BYTES: Final = 8192

# Times are whole seconds; anything past this is a bug, not a date (year ~285 million).
_MAX_TIME: Final = 2**53


def _check_text(value: object, what: str) -> str:
    # One rule for every name and id (authcore.names): no control, format (bidi), line
    # separator or surrogate character can forge lines or reorder text in logs and terminals.
    return check_name(value, what, max_length=MAX_NAME_LENGTH)


def check_id(value: object, what: str) -> str:
    """Return ``value`` if it is a usable id (org id, end-user id, user id).

    Raises:
        ClientError: not a non-blank str of at most 200 characters, or one holding a
            character :func:`authcore.names.check_name` refuses.
    """
    return _check_text(value, what)


def _check_int(value: object, what: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ClientError(f"{what} must be an int in {low}..{high}")
    return value


def _seconds(now: float) -> int:
    if isinstance(now, bool) or not isinstance(now, int | float) or not 0 <= now < _MAX_TIME:
        raise ClientError("now must be seconds since the epoch")
    return int(now)


def check_audit_limit(limit: object) -> int:
    """Return ``limit`` if it is a valid audit page size.

    Raises:
        ClientError: not an int in 1..500.
    """
    return _check_int(limit, "limit", 1, MAX_AUDIT_PAGE)


def validate_grants(permissions: Sequence[str]) -> tuple[str, ...]:
    """Return the grants, validated, duplicates dropped, in their first order.

    At most :data:`MAX_KEY_GRANTS` grants (counted before duplicates are dropped, so the work
    is bounded before any is done) of at most :data:`MAX_KEY_GRANT_BYTES` bytes in all.

    Raises:
        TooManyGrantsError: more grants, or more bytes of them, than those bounds.
        InvalidPermissionError: a single string instead of a sequence, or a grant that breaks
            the grammar.
    """
    if isinstance(permissions, str | bytes) or not isinstance(permissions, Sequence):
        raise InvalidPermissionError("permissions must be a sequence of str")
    if len(permissions) > MAX_KEY_GRANTS:
        raise TooManyGrantsError(f"more than {MAX_KEY_GRANTS} grants")
    grants = tuple(dict.fromkeys(validate_grant(grant) for grant in permissions))
    # validate_grant admits ASCII only, so characters are bytes.
    if sum(len(grant) for grant in grants) > MAX_KEY_GRANT_BYTES:
        raise TooManyGrantsError(f"more than {MAX_KEY_GRANT_BYTES} bytes of grants")
    return grants


def _check_actor(actor: Actor, workspace_id: str) -> None:
    if not isinstance(actor, Actor):
        raise ClientError("actor must be an authcore.records.Actor")
    if actor.principal is not None and actor.principal.workspace_id != workspace_id:
        # Stores are the last line: a principal never changes another workspace, even if a
        # handler forgot its check.
        raise PermissionDeniedError("actor belongs to another workspace")


def _event(
    actor: Actor, action: str, targets: Sequence[AuditTarget], now: int, workspace_id: str
) -> AuditEvent:
    event = audit_event(
        actor.principal,
        action,
        targets,
        now=now,
        request_id=actor.request_id,
        workspace_id=workspace_id,
    )
    if event.workspace_id != workspace_id:
        # Only create_workspace gets here: its principal lives in another workspace, but the
        # event belongs to the new one.
        event = attrs.evolve(event, workspace_id=workspace_id)
    return event


def _workspace_target(record: WorkspaceRecord) -> AuditTarget:
    return AuditTarget("workspace", record.id, record.name)


def _key_target(record: RootKeyRecord) -> AuditTarget:
    return AuditTarget("root_key", record.id, record.name)


def _session_target(record: PortalSessionRecord) -> AuditTarget:
    return AuditTarget("portal_session", record.id)


def plan_create_workspace(
    name: str,
    *,
    org_id: str | None,
    rate_limit: RateLimitPolicy | None,
    now: float,
    actor: Actor,
) -> tuple[WorkspaceRecord, AuditEvent]:
    """Build a new workspace and its ``workspace.create`` event.

    Raises:
        ClientError: a blank or over-long name or org id.
    """
    if not isinstance(actor, Actor):
        raise ClientError("actor must be an authcore.records.Actor")
    if rate_limit is not None and not isinstance(rate_limit, RateLimitPolicy):
        raise ClientError("rate_limit must be a RateLimitPolicy or None")
    record = WorkspaceRecord(
        id=generate_id("ws"),
        name=_check_text(name, "name"),
        rate_limit=rate_limit,
        org_id=None if org_id is None else check_id(org_id, "org_id"),
        created_at=_seconds(now),
    )
    return record, _event(
        actor, ACTION_WORKSPACE_CREATE, [_workspace_target(record)], record.created_at, record.id
    )


def _plan_disabled(
    record: WorkspaceRecord, disabled: bool, action: str, now: float, actor: Actor
) -> tuple[WorkspaceRecord, AuditEvent] | None:
    _check_actor(actor, record.id)
    seconds = _seconds(now)
    if record.disabled is disabled:
        return None  # nothing to write or audit
    updated = attrs.evolve(record, disabled=disabled)
    return updated, _event(actor, action, [_workspace_target(record)], seconds, record.id)


def plan_disable_workspace(
    record: WorkspaceRecord, *, now: float, actor: Actor
) -> tuple[WorkspaceRecord, AuditEvent] | None:
    """Disable ``record``; None when it already is (nothing to write or audit).

    Raises:
        PermissionDeniedError: the actor belongs to another workspace.
    """
    return _plan_disabled(record, True, ACTION_WORKSPACE_DISABLE, now, actor)


def plan_enable_workspace(
    record: WorkspaceRecord, *, now: float, actor: Actor
) -> tuple[WorkspaceRecord, AuditEvent] | None:
    """Enable ``record`` again; None when it is not disabled (nothing to write or audit).

    Raises:
        PermissionDeniedError: the actor belongs to another workspace.
    """
    return _plan_disabled(record, False, ACTION_WORKSPACE_ENABLE, now, actor)


def plan_set_rate_limit(
    record: WorkspaceRecord, policy: RateLimitPolicy | None, *, now: float, actor: Actor
) -> tuple[WorkspaceRecord, AuditEvent]:
    """Set (or clear, with None) the workspace's rate-limit policy.

    Raises:
        PermissionDeniedError: the actor belongs to another workspace.
        ClientError: ``policy`` is neither a policy nor None.
    """
    _check_actor(actor, record.id)
    if policy is not None and not isinstance(policy, RateLimitPolicy):
        raise ClientError("policy must be a RateLimitPolicy or None")
    updated = attrs.evolve(record, rate_limit=policy)
    event = _event(
        actor, ACTION_WORKSPACE_UPDATE, [_workspace_target(record)], _seconds(now), record.id
    )
    return updated, attrs.evolve(event, context={"rate_limit": str(policy or "none")})


def plan_link_org(
    record: WorkspaceRecord, org_id: str, *, now: float, actor: Actor
) -> tuple[WorkspaceRecord, AuditEvent]:
    """Link ``org_id`` to the workspace (the dashboard maps organizations to workspaces).

    Raises:
        PermissionDeniedError: the actor belongs to another workspace.
        ClientError: a blank or over-long org id.
    """
    _check_actor(actor, record.id)
    updated = attrs.evolve(record, org_id=check_id(org_id, "org_id"))
    event = _event(
        actor, ACTION_WORKSPACE_UPDATE, [_workspace_target(record)], _seconds(now), record.id
    )
    return updated, attrs.evolve(event, context={"org_id": org_id})


def plan_create_root_key(
    workspace_id: str,
    *,
    permissions: Sequence[str],
    name: str | None,
    expires_at: int | None,
    now: float,
    actor: Actor,
    prefix: str,
    rate_limit: RateLimitPolicy | None = None,
    identity_id: str | None = None,
) -> tuple[NewRootKey, AuditEvent]:
    """Generate a root key for an existing workspace and its ``key.create`` event.

    ``rate_limit`` is the key's own limit, on top of the workspace's (None: none).
    ``identity_id`` is the identity the key belongs to (None: the workspace's own key).

    Raises:
        PermissionDeniedError: the actor belongs to another workspace.
        InvalidPermissionError: a grant breaks the grammar.
        ClientError: a blank name, ``expires_at`` not after ``now``, or ``rate_limit``
            neither a :class:`~authcore.ratelimit.RateLimitPolicy` nor None.
        PermissionDeniedError: ``rate_limit`` is looser than the maker's own (a maker with
            a limit passes it on when none is given).
    """
    _check_actor(actor, workspace_id)
    seconds = _seconds(now)
    grants = validate_grants(permissions)
    if name is not None:
        _check_text(name, "name")
    if expires_at is not None:
        _check_int(expires_at, "expires_at", seconds + 1, _MAX_TIME)
    rate_limit = _granted_limit(actor, rate_limit)
    issued = issue_token(prefix, "key")
    record = RootKeyRecord(
        id=issued.id,
        workspace_id=workspace_id,
        digest=issued.digest,
        start=issued.start,
        name=name,
        permissions=grants,
        created_at=seconds,
        expires_at=expires_at,
        rate_limit=rate_limit,
        identity_id=identity_id,
    )
    event = _event(actor, ACTION_KEY_CREATE, [_key_target(record)], seconds, workspace_id)
    context = {
        name: str(value)
        for name, value in (("rate_limit", rate_limit), ("identity_id", identity_id))
        if value is not None
    }
    if context:
        event = attrs.evolve(event, context=context)
    return NewRootKey(record, issued.secret), event


def _granted_limit(actor: Actor, wanted: object) -> RateLimitPolicy | None:
    """The limit a new key or portal session gets: no looser than its maker's own (a
    credential hands out no more quota than it holds, as it hands out no permission it lacks).
    A maker with a limit passes it on when none is asked for.

    Raises:
        ClientError: ``wanted`` is neither a policy nor None.
        PermissionDeniedError: ``wanted`` is looser than the maker's own limit (403).
    """
    if wanted is not None and not isinstance(wanted, RateLimitPolicy):
        raise ClientError("rate_limit must be a RateLimitPolicy or None")
    own = None if actor.principal is None else actor.principal.rate_limit
    if own is None:
        return wanted
    if wanted is None:
        return own
    if not own.covers(wanted):
        raise PermissionDeniedError("no looser a rate limit than the maker's")
    return wanted


_Revocable = TypeVar("_Revocable", RootKeyRecord, PortalSessionRecord)


def _plan_revoke(
    record: _Revocable, action: str, target: AuditTarget, now: float, actor: Actor
) -> tuple[_Revocable, AuditEvent] | None:
    _check_actor(actor, record.workspace_id)
    seconds = _seconds(now)
    if record.revoked_at is not None:
        return None  # the first revocation time stays
    updated = attrs.evolve(record, revoked_at=seconds)
    return updated, _event(actor, action, [target], seconds, record.workspace_id)


def plan_revoke_root_key(
    record: RootKeyRecord, *, now: float, actor: Actor
) -> tuple[RootKeyRecord, AuditEvent] | None:
    """Revoke ``record``; None when it already is (its first revocation time stays).

    Raises:
        PermissionDeniedError: the actor belongs to another workspace.
    """
    return _plan_revoke(record, ACTION_KEY_REVOKE, _key_target(record), now, actor)


def plan_set_key_rate_limit(
    record: RootKeyRecord, policy: RateLimitPolicy | None, *, now: float, actor: Actor
) -> tuple[RootKeyRecord, AuditEvent] | None:
    """Set (or clear, with None) the key's own rate limit; None when it already has it.

    Raises:
        PermissionDeniedError: the actor belongs to another workspace.
        ClientError: ``policy`` is neither a policy nor None.
    """
    _check_actor(actor, record.workspace_id)
    policy = _granted_limit(actor, policy)
    seconds = _seconds(now)
    if record.rate_limit == policy:
        return None
    updated = attrs.evolve(record, rate_limit=policy)
    event = _event(actor, ACTION_KEY_UPDATE, [_key_target(record)], seconds, record.workspace_id)
    return updated, attrs.evolve(event, context={"rate_limit": str(policy or "none")})


def plan_rotate_root_key(
    record: RootKeyRecord, *, grace_seconds: int, now: float, actor: Actor, prefix: str
) -> tuple[RootKeyRecord, NewRootKey, AuditEvent] | None:
    """Replace ``record`` by a new key; the old one stays valid for the grace period.

    The old key's expiry becomes ``min(its expiry, now + grace_seconds)``: a grace period
    never extends a key's life. The new key keeps the workspace, permissions, name, own rate
    limit and the original expiry. None when the old key is revoked or already expired
    (nothing to rotate).

    Raises:
        PermissionDeniedError: the actor belongs to another workspace.
        ClientError: ``grace_seconds`` not in 0..30 days.
    """
    _check_actor(actor, record.workspace_id)
    seconds = _seconds(now)
    grace = _check_int(grace_seconds, "grace_seconds", 0, MAX_GRACE_SECONDS)
    if record.revoked_at is not None or (
        record.expires_at is not None and seconds >= record.expires_at
    ):
        return None
    end = seconds + grace
    old = attrs.evolve(
        record, expires_at=end if record.expires_at is None else min(record.expires_at, end)
    )
    issued = issue_token(prefix, "key")
    new = RootKeyRecord(
        id=issued.id,
        workspace_id=record.workspace_id,
        digest=issued.digest,
        start=issued.start,
        name=record.name,
        permissions=record.permissions,
        created_at=seconds,
        expires_at=record.expires_at,
        rate_limit=record.rate_limit,
        identity_id=record.identity_id,
    )
    event = _event(
        actor,
        ACTION_KEY_ROTATE,
        [_key_target(record), _key_target(new)],
        seconds,
        record.workspace_id,
    )
    event = attrs.evolve(event, context={"grace_seconds": str(grace)})
    return old, NewRootKey(new, issued.secret), event


def make_dashboard_user(
    user_id: str, org_id: str, password_hash: str, permissions: Sequence[str]
) -> DashboardUserRecord:
    """Validate and build a dashboard user record.

    Raises:
        ClientError: a blank id, or a password hash that is not a str.
        InvalidPermissionError: a grant breaks the grammar.
    """
    if not isinstance(password_hash, str) or not password_hash or len(password_hash) > 1024:
        raise ClientError("password_hash must be the str hash_password returned")
    return DashboardUserRecord(
        user_id=check_id(user_id, "user_id"),
        org_id=check_id(org_id, "org_id"),
        password_hash=password_hash,
        permissions=validate_grants(permissions),
    )
