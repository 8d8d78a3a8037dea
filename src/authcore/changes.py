"""Management operations, written once: each a change over the transaction protocol.

An operation (create a workspace, revoke a key, exchange a portal code, ...) validates its
arguments when it is made, then is a :class:`~authcore.steps.Change`: the steps of
:mod:`authcore.steps` that load what it needs, and write what its plan decided together with
the audit event that records it. It does no I/O. Memory, SQLite and PostgreSQL run the same
changes, so they validate, decide and audit identically by construction; a new management
action is one plan and one operation here, and no backend code.

The decisions themselves (validation, what to write, the audit event) are the ``plan_*``
functions of :mod:`authcore.plans`, over records already loaded: pure, and tested as such.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar

import attrs

from authcore.audit import AuditEvent
from authcore.errors import ClientError
from authcore.identities import check_list_limit, ensure_identity, new_identity
from authcore.plans import (
    check_audit_limit,
    make_dashboard_user,
    plan_create_root_key,
    plan_create_workspace,
    plan_disable_workspace,
    plan_enable_workspace,
    plan_link_org,
    plan_revoke_root_key,
    plan_rotate_root_key,
    plan_set_key_rate_limit,
    plan_set_rate_limit,
)
from authcore.portal_sessions import (
    plan_create_portal_exchange,
    plan_create_portal_session,
    plan_exchange_portal_code,
    plan_revoke_portal_session,
    plan_revoke_replayed_session,
)
from authcore.ratelimit import RateLimitPolicy
from authcore.records import (
    DEFAULT_LIST_PAGE,
    Actor,
    AuditCursor,
    AuditPage,
    DashboardUserRecord,
    IdentityRecord,
    KeyCursor,
    KeyPage,
    NewPortalExchange,
    NewPortalSession,
    NewRootKey,
    PortalExchangeRecord,
    PortalSessionRecord,
    RootKeyRecord,
    WorkspaceRecord,
)
from authcore.steps import (
    Append,
    Change,
    Insert,
    ListAudit,
    ListRootKeys,
    Load,
    PruneExchanges,
    Step,
    Steps,
    Table,
    Update,
)

__all__ = [
    "ORG_TAKEN",
    "USER_TAKEN",
    "add_dashboard_user",
    "append_audit",
    "create_portal_exchange",
    "create_portal_session",
    "create_root_key",
    "create_workspace",
    "disable_workspace",
    "enable_workspace",
    "exchange_portal_code",
    "find_dashboard_user",
    "find_portal_exchange",
    "find_workspace_by_org",
    "get_portal_session",
    "get_root_key",
    "link_org",
    "list_audit",
    "list_root_keys",
    "list_root_keys_page",
    "revoke_portal_session",
    "revoke_root_key",
    "rotate_root_key",
    "set_key_rate_limit",
    "set_rate_limit",
]

_R = TypeVar("_R")
_Rec = TypeVar("_Rec", WorkspaceRecord, RootKeyRecord, PortalSessionRecord)

#: The conflict messages (409) a taken unique value answers with.
ORG_TAKEN: Final = "org id already linked"
USER_TAKEN: Final = "user id taken"


# --------------------------------------------------------------------------- the operations


def _load(table: Table, key: str | bytes) -> Steps[Any]:
    return (yield Load(table, key))


def _write_all(steps: Sequence[Step], result: _R) -> Steps[_R]:
    # Not ``yield from steps``: that would send each step's result into a list iterator.
    for step in steps:  # noqa: UP028
        yield step
    return result


def _into_workspace(workspace_id: str, steps: Sequence[Step], result: _R) -> Steps[_R | None]:
    # Reads the workspace without a lock: its row must exist (the foreign key holds it), but
    # adding a key or session changes nothing of it.
    workspace: WorkspaceRecord | None = yield Load("workspace", workspace_id)
    if workspace is None:
        return None
    return (yield from _write_all(steps, result))


def _locked_update(
    table: Table,
    key: str,
    plan: Callable[[_Rec], tuple[_Rec, AuditEvent] | None],
    conflict: str | None = None,
) -> Steps[_Rec | None]:
    # Lock the record, let the plan decide, write what it decided and its event. A plan that
    # decides nothing (already revoked, already disabled) leaves the record as it is.
    record: _Rec | None = yield Load(table, key, lock=True)
    if record is None:
        return None
    change = plan(record)
    if change is None:
        return record
    updated, event = change
    yield Update(updated, conflict=conflict)
    yield Append(event)
    return updated


def _update_workspace(
    workspace_id: str,
    plan: Callable[[WorkspaceRecord], tuple[WorkspaceRecord, AuditEvent] | None],
) -> Steps[WorkspaceRecord | None]:
    return (yield from _locked_update("workspace", workspace_id, plan, ORG_TAKEN))


def create_workspace(
    name: str,
    *,
    org_id: str | None = None,
    rate_limit: RateLimitPolicy | None = None,
    now: float,
    actor: Actor,
) -> Change[WorkspaceRecord]:
    """Create a workspace.

    Raises:
        ClientError: a blank or over-long name or org id (before anything runs).
        ConflictError: the org id is linked to another workspace (when it runs).
    """
    record, event = plan_create_workspace(
        name, org_id=org_id, rate_limit=rate_limit, now=now, actor=actor
    )
    return Change(
        "create_workspace", _write_all([Insert(record, conflict=ORG_TAKEN), Append(event)], record)
    )


def disable_workspace(
    workspace_id: str, *, now: float, actor: Actor
) -> Change[WorkspaceRecord | None]:
    """Disable a workspace (credentials of it get 403); None when unknown."""
    return Change(
        "disable_workspace",
        _update_workspace(
            workspace_id, lambda record: plan_disable_workspace(record, now=now, actor=actor)
        ),
    )


def enable_workspace(
    workspace_id: str, *, now: float, actor: Actor
) -> Change[WorkspaceRecord | None]:
    """Enable a disabled workspace again; None when unknown."""
    return Change(
        "enable_workspace",
        _update_workspace(
            workspace_id, lambda record: plan_enable_workspace(record, now=now, actor=actor)
        ),
    )


def set_rate_limit(
    workspace_id: str, policy: RateLimitPolicy | None, *, now: float, actor: Actor
) -> Change[WorkspaceRecord | None]:
    """Set or clear (None) the workspace's rate-limit policy; None when unknown."""
    return Change(
        "set_rate_limit",
        _update_workspace(
            workspace_id, lambda record: plan_set_rate_limit(record, policy, now=now, actor=actor)
        ),
    )


def link_org(
    workspace_id: str, org_id: str, *, now: float, actor: Actor
) -> Change[WorkspaceRecord | None]:
    """Link an organization id to the workspace; None when unknown.

    Raises:
        ConflictError: the org id is linked to another workspace (when it runs).
    """
    return Change(
        "link_org",
        _update_workspace(
            workspace_id, lambda record: plan_link_org(record, org_id, now=now, actor=actor)
        ),
    )


def find_workspace_by_org(org_id: str) -> Change[WorkspaceRecord | None]:
    """Read the workspace linked to ``org_id``."""
    return Change("find_workspace_by_org", _load("workspace_by_org", org_id), writes=False)


def create_root_key(
    workspace_id: str,
    *,
    permissions: Sequence[str],
    name: str | None = None,
    expires_at: int | None = None,
    now: float,
    actor: Actor,
    prefix: str,
    rate_limit: RateLimitPolicy | None = None,
    identity: str | None = None,
) -> Change[NewRootKey | None]:
    """Create a root key (the raw key is in the result, once); None: unknown workspace.

    ``rate_limit`` is the key's own limit, on top of the workspace's. ``identity`` is the
    external id of the identity the key belongs to, created on first use.

    Raises:
        ClientError: an invalid name, expiry, grant, rate limit or external id (before
            anything runs).
    """
    new, event = plan_create_root_key(
        workspace_id,
        permissions=permissions,
        name=name,
        expires_at=expires_at,
        now=now,
        actor=actor,
        prefix=prefix,
        rate_limit=rate_limit,
    )
    if identity is None:
        steps = _into_workspace(workspace_id, [Insert(new.record), Append(event)], new)
        return Change("create_root_key", steps)
    proposed = new_identity(workspace_id, identity, now=now)
    return Change("create_root_key", _key_of_identity(new, event, proposed, actor))


def _key_of_identity(
    new: NewRootKey, event: AuditEvent, proposed: IdentityRecord, actor: Actor
) -> Steps[NewRootKey | None]:
    workspace: WorkspaceRecord | None = yield Load("workspace", proposed.workspace_id)
    if workspace is None:
        return None
    owner = yield from ensure_identity(proposed.workspace_id, proposed, actor)
    record = attrs.evolve(new.record, identity_id=owner.id)
    yield Insert(record)
    yield Append(attrs.evolve(event, context={**event.context, "identity_id": owner.id}))
    return attrs.evolve(new, record=record)


def list_root_keys(
    workspace_id: str, *, identity_id: str | None = None
) -> Change[list[RootKeyRecord]]:
    """Read the workspace's root keys (records only), oldest first; one identity's, if set."""
    return Change("list_root_keys", _list_keys(workspace_id, identity_id), writes=False)


def _list_keys(workspace_id: str, identity_id: str | None) -> Steps[list[RootKeyRecord]]:
    keys: list[RootKeyRecord] = yield ListRootKeys(workspace_id, identity_id)
    return keys


def list_root_keys_page(
    workspace_id: str,
    *,
    identity_id: str | None = None,
    limit: int = DEFAULT_LIST_PAGE,
    after: KeyCursor | None = None,
) -> Change[KeyPage]:
    """Read one page of the workspace's root keys (one identity's, if set), oldest first by
    ``(created_at, id)``, after ``after``.

    Raises:
        ClientError: ``limit`` not in 1..500, or ``after`` not a :class:`KeyCursor`.
    """
    size = check_list_limit(limit)
    if after is not None and not isinstance(after, KeyCursor):
        raise ClientError("after must be a KeyCursor")
    return Change("list_root_keys", _key_page(workspace_id, identity_id, size, after), writes=False)


def _key_page(
    workspace_id: str, identity_id: str | None, limit: int, after: KeyCursor | None
) -> Steps[KeyPage]:
    # One more than the page, to know whether another follows.
    found: list[RootKeyRecord] = yield ListRootKeys(workspace_id, identity_id, limit + 1, after)
    page = tuple(found[:limit])
    last = page[-1] if len(found) > limit else None
    return KeyPage(page, None if last is None else KeyCursor(last.created_at, last.id))


def get_root_key(key_id: str) -> Change[RootKeyRecord | None]:
    """Read the root key with id ``key_id``."""
    return Change("get_root_key", _load("root_key", key_id), writes=False)


def revoke_root_key(key_id: str, *, now: float, actor: Actor) -> Change[RootKeyRecord | None]:
    """Revoke a root key and return it; None when unknown. Revoking twice keeps the first."""
    return Change(
        "revoke_root_key",
        _locked_update(
            "root_key", key_id, lambda record: plan_revoke_root_key(record, now=now, actor=actor)
        ),
    )


def set_key_rate_limit(
    key_id: str, policy: RateLimitPolicy | None, *, now: float, actor: Actor
) -> Change[RootKeyRecord | None]:
    """Set or clear (None) a key's own rate limit; None when the key is unknown.

    Every process's verified-result cache drops the key's conclusions (the change updates the
    key's record), so its next request is limited by the new policy.
    """
    return Change(
        "set_key_rate_limit",
        _locked_update(
            "root_key",
            key_id,
            lambda record: plan_set_key_rate_limit(record, policy, now=now, actor=actor),
        ),
    )


def _rotate_root_key(
    key_id: str, grace_seconds: int, now: float, actor: Actor, prefix: str
) -> Steps[NewRootKey | None]:
    record: RootKeyRecord | None = yield Load("root_key", key_id, lock=True)
    if record is None:
        return None
    change = plan_rotate_root_key(
        record, grace_seconds=grace_seconds, now=now, actor=actor, prefix=prefix
    )
    if change is None:
        return None
    old, new, event = change
    yield Update(old)
    yield Insert(new.record)
    yield Append(event)
    return new


def rotate_root_key(
    key_id: str, *, grace_seconds: int, now: float, actor: Actor, prefix: str
) -> Change[NewRootKey | None]:
    """Replace a key; the old one expires after the grace period (never later than before).

    None when the key is unknown, revoked or expired.
    """
    return Change("rotate_root_key", _rotate_root_key(key_id, grace_seconds, now, actor, prefix))


def create_portal_session(
    workspace_id: str,
    identity: str,
    *,
    permissions: Sequence[str],
    key_permissions: Sequence[str] = (),
    ttl: int,
    now: float,
    actor: Actor,
    prefix: str,
    rate_limit: RateLimitPolicy | None = None,
) -> Change[NewPortalSession | None]:
    """Create a portal session of the identity with external id ``identity`` (created on
    first use); the raw token is in the result, once. None: unknown workspace. ``rate_limit``
    is the session's own (at most the maker's: see :func:`~authcore.plans._granted_limit`).
    """
    proposed = new_identity(workspace_id, identity, now=now)
    new, event = plan_create_portal_session(
        workspace_id,
        proposed.id,
        permissions=permissions,
        key_permissions=key_permissions,
        ttl=ttl,
        now=now,
        actor=actor,
        prefix=prefix,
        rate_limit=rate_limit,
    )
    return Change("create_portal_session", _session_of_identity(new, [], event, proposed, actor))


_Started = TypeVar("_Started", NewPortalSession, NewPortalExchange)


def _session_of_identity(
    new: _Started,
    before: Sequence[Step],
    event: AuditEvent,
    proposed: IdentityRecord,
    actor: Actor,
    *,
    after: Sequence[Step] = (),
) -> Steps[_Started | None]:
    # The plan ran with the proposed identity's id; the identity may exist already.
    workspace: WorkspaceRecord | None = yield Load("workspace", proposed.workspace_id)
    if workspace is None:
        return None
    owner = yield from ensure_identity(proposed.workspace_id, proposed, actor)
    record = attrs.evolve(new.record, identity_id=owner.id)
    yield from _write_all([*before, Insert(record), *after, Append(event)], None)
    return attrs.evolve(new, record=record)


def revoke_portal_session(
    session_id: str, *, now: float, actor: Actor
) -> Change[PortalSessionRecord | None]:
    """Revoke (log out) a portal session and return it; None when unknown."""
    return Change(
        "revoke_portal_session",
        _locked_update(
            "portal_session",
            session_id,
            lambda record: plan_revoke_portal_session(record, now=now, actor=actor),
        ),
    )


def get_portal_session(session_id: str) -> Change[PortalSessionRecord | None]:
    """Read the portal session with id ``session_id``."""
    return Change("get_portal_session", _load("portal_session", session_id), writes=False)


def create_portal_exchange(
    workspace_id: str,
    identity: str,
    *,
    permissions: Sequence[str],
    key_permissions: Sequence[str] = (),
    ttl: int,
    now: float,
    actor: Actor,
    rate_limit: RateLimitPolicy | None = None,
) -> Change[NewPortalExchange | None]:
    """Create a portal session of the identity with external id ``identity`` (created on
    first use) that starts with a one-time exchange code (shown once).

    None: unknown workspace. Codes past their expiry are forgotten on the way (they can never
    work again), which keeps their table small.
    """
    proposed = new_identity(workspace_id, identity, now=now)
    new, exchange, event = plan_create_portal_exchange(
        workspace_id,
        proposed.id,
        permissions=permissions,
        key_permissions=key_permissions,
        ttl=ttl,
        now=now,
        actor=actor,
        rate_limit=rate_limit,
    )
    steps = _session_of_identity(
        new, [PruneExchanges(exchange.created_at)], event, proposed, actor, after=[Insert(exchange)]
    )
    return Change("create_portal_exchange", steps)


def _exchange_portal_code(
    code_digest: bytes, now: float, prefix: str
) -> Steps[NewPortalSession | None]:
    exchange: PortalExchangeRecord | None = yield Load("portal_exchange", code_digest, lock=True)
    if exchange is None:
        return None
    session: PortalSessionRecord | None = yield Load(
        "portal_session", exchange.session_id, lock=True
    )
    if exchange.used_at is not None and session is not None:
        # Presented a second time: whoever holds the code may have started the session, so
        # the session ends (the OAuth rule for a replayed authorization code, RFC 6749
        # §4.1.2). The answer stays "invalid code".
        replayed = plan_revoke_replayed_session(session, now=now)
        if replayed is not None:
            yield Update(replayed[0])
            yield Append(replayed[1])
        return None
    change = plan_exchange_portal_code(exchange, session, now=now, prefix=prefix)
    if change is None:
        return None
    used, started, event = change
    yield Update(used)
    yield Update(started.record)
    yield Append(event)
    return started


def find_portal_exchange(code_digest: bytes) -> Change[PortalExchangeRecord | None]:
    """Read the exchange code stored under ``code_digest`` (no lock, no write)."""
    if not isinstance(code_digest, bytes | bytearray):
        raise ClientError("code_digest must be bytes")
    return Change(
        "find_portal_exchange", _load("portal_exchange", bytes(code_digest)), writes=False
    )


def exchange_portal_code(
    code_digest: bytes, *, now: float, prefix: str
) -> Change[NewPortalSession | None]:
    """Spend a code once: the session's token (shown once), or None for any unusable code.

    The lock on the code makes a concurrent second exchange wait, then read ``used_at`` and
    get None: a code works once, across processes.
    """
    if not isinstance(code_digest, bytes | bytearray):
        raise ClientError("code_digest must be bytes")
    return Change("exchange_portal_code", _exchange_portal_code(bytes(code_digest), now, prefix))


def append_audit(event: AuditEvent) -> Change[None]:
    """Store an event made elsewhere (e.g. by a handler with ``audit_event``)."""
    if not isinstance(event, AuditEvent):
        raise ClientError("append_audit takes an AuditEvent")
    return Change("append_audit", _write_all([Append(event)], None))


def _list_audit(workspace_id: str, limit: int, before: AuditCursor | None) -> Steps[AuditPage]:
    page: AuditPage = yield ListAudit(workspace_id, limit, before)
    return page


def list_audit(
    workspace_id: str, *, limit: int = 50, before: AuditCursor | None = None
) -> Change[AuditPage]:
    """Read up to ``limit`` events of the workspace older than ``before``, newest first.

    Raises:
        ClientError: ``limit`` not in 1..500, or ``before`` not an :class:`AuditCursor`.
    """
    size = check_audit_limit(limit)
    if before is not None and not isinstance(before, AuditCursor):
        raise ClientError("before must be an AuditCursor")
    return Change("list_audit", _list_audit(workspace_id, size, before), writes=False)


def add_dashboard_user(
    user_id: str, org_id: str, password_hash: str, permissions: Sequence[str]
) -> Change[DashboardUserRecord]:
    """Add a dashboard user (the hash as :func:`authcore.passwords.hash_password` made it).

    Raises:
        ConflictError: the user id is taken (when it runs).
    """
    record = make_dashboard_user(user_id, org_id, password_hash, permissions)
    return Change("add_dashboard_user", _write_all([Insert(record, conflict=USER_TAKEN)], record))


def find_dashboard_user(user_id: str) -> Change[DashboardUserRecord | None]:
    """Read the dashboard user ``user_id``."""
    return Change("find_dashboard_user", _load("dashboard_user", user_id), writes=False)
