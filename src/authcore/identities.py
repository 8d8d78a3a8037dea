"""Identities, the API's customers: their rules, and the plans of the operations on them.

An identity is one customer of the protected API inside a workspace (see
:class:`~authcore.records.IdentityRecord`): the operator names it with an ``external_id`` of
their own, unique per workspace; it owns keys and portal sessions, and may carry a rate limit
that all its keys share and a small JSON object of metadata. Like :mod:`authcore.plans`, the
functions here decide without I/O; :mod:`authcore.changes` runs them inside its changes.

Deleting an identity that still has live keys is refused (409) unless the caller asks for
those keys and the identity's portal sessions to be revoked in the same change: an identity
never disappears from under a key that still works.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Final

import attrs

from authcore.audit import (
    ACTION_IDENTITY_CREATE,
    ACTION_IDENTITY_DELETE,
    ACTION_IDENTITY_UPDATE,
    ACTION_KEY_REVOKE,
    ACTION_PORTAL_SESSION_REVOKE,
    AuditEvent,
    AuditTarget,
)
from authcore.errors import ClientError, ConflictError
from authcore.plans import _check_actor, _event, _seconds, check_id
from authcore.ratelimit import RateLimitPolicy
from authcore.records import (
    MAX_IDENTITY_META_BYTES,
    MAX_LIST_PAGE,
    Actor,
    IdentityPage,
    IdentityRecord,
    PortalSessionRecord,
    RootKeyRecord,
)
from authcore.steps import (
    Append,
    Change,
    Delete,
    EnsureIdentity,
    FindIdentity,
    Insert,
    ListIdentities,
    ListPortalSessions,
    ListRootKeys,
    Load,
    Steps,
    Update,
)
from authcore.tokens import generate_id

__all__ = [
    "IDENTITY_HAS_KEYS",
    "IDENTITY_TAKEN",
    "check_external_id",
    "check_identity_meta",
    "check_list_limit",
    "create_identity",
    "created_event",
    "delete_identity",
    "ensure_identity",
    "get_identity",
    "get_identity_by_id",
    "identity_target",
    "is_live",
    "list_identities",
    "new_identity",
    "plan_create_identity",
    "plan_delete_identity",
    "plan_set_identity_meta",
    "plan_set_identity_rate_limit",
    "set_identity_meta",
    "set_identity_rate_limit",
]

#: The conflict (409) a second identity with a taken external id answers with.
IDENTITY_TAKEN: Final = "identity already exists"
#: The conflict (409) of deleting an identity whose keys still work, without revoking them.
IDENTITY_HAS_KEYS: Final = "identity has live keys; revoke them or delete with revoke_keys"


def check_external_id(value: object) -> str:
    """Return ``value`` if it is a usable external id (the rule of every id and name).

    Raises:
        ClientError: blank, over 200 characters, or holding a refused character (400).
    """
    return check_id(value, "external_id")


def check_identity_meta(value: object) -> str | None:
    """Return ``value`` (a JSON object, or None) as canonical JSON text, bounded.

    Canonical: sorted keys, no spaces, non-ASCII kept. It must round-trip exactly (string
    keys only, no NaN or infinity, no lone surrogates) and take at most
    :data:`~authcore.records.MAX_IDENTITY_META_BYTES` bytes of UTF-8.

    Raises:
        ClientError: not an object, not plain JSON, or too large (400).
    """
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ClientError("meta must be a JSON object")
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        size = len(text.encode("utf-8"))
    except (TypeError, ValueError, UnicodeEncodeError, RecursionError):
        raise ClientError("meta must be plain JSON (string keys, finite numbers)") from None
    if size > MAX_IDENTITY_META_BYTES:
        raise ClientError(f"meta must be at most {MAX_IDENTITY_META_BYTES} bytes of JSON")
    # Round trip: {1: 2} would come back as {"1": 2}, a tuple as a list; refuse what changes.
    if json.loads(text) != value or _has_non_finite(value):
        raise ClientError("meta must be plain JSON (string keys, finite numbers)")
    return text


def _has_non_finite(value: object) -> bool:
    # json.dumps writes NaN and Infinity unless told not to, and NaN != NaN would pass the
    # round-trip check's eye in a different way: refuse them outright.
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, Mapping):
        return any(_has_non_finite(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_non_finite(item) for item in value)
    return False


def check_list_limit(limit: object) -> int:
    """Return ``limit`` if it is a valid page size (1..``MAX_LIST_PAGE``).

    Raises:
        ClientError: not an int in range (400).
    """
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIST_PAGE:
        raise ClientError(f"limit must be an int in 1..{MAX_LIST_PAGE}")
    return limit


def _check_policy(policy: object) -> RateLimitPolicy | None:
    if policy is not None and not isinstance(policy, RateLimitPolicy):
        raise ClientError("rate_limit must be a RateLimitPolicy or None")
    return policy


def identity_target(record: IdentityRecord) -> AuditTarget:
    """The audit target naming ``record``: its id, and its external id as the name."""
    return AuditTarget("identity", record.id, record.external_id)


def is_live(record: RootKeyRecord | PortalSessionRecord, now: int) -> bool:
    """Whether ``record`` still works at ``now``: neither revoked nor expired."""
    expires_at = record.expires_at
    return record.revoked_at is None and (expires_at is None or now < expires_at)


def new_identity(
    workspace_id: str,
    external_id: str,
    *,
    meta: object = None,
    rate_limit: RateLimitPolicy | None = None,
    now: float,
) -> IdentityRecord:
    """Build a new identity (not yet stored), validated.

    Raises:
        ClientError: a bad external id, metadata or rate limit.
    """
    return IdentityRecord(
        id=generate_id("idt"),
        workspace_id=workspace_id,
        external_id=check_external_id(external_id),
        meta=check_identity_meta(meta),
        rate_limit=_check_policy(rate_limit),
        created_at=_seconds(now),
    )


def plan_create_identity(
    workspace_id: str,
    external_id: str,
    *,
    meta: object = None,
    rate_limit: RateLimitPolicy | None = None,
    now: float,
    actor: Actor,
) -> tuple[IdentityRecord, AuditEvent]:
    """Build a new identity and its ``identity.create`` event.

    Raises:
        PermissionDeniedError: the actor belongs to another workspace.
        ClientError: a bad external id, metadata or rate limit.
    """
    _check_actor(actor, workspace_id)
    record = new_identity(workspace_id, external_id, meta=meta, rate_limit=rate_limit, now=now)
    return record, created_event(record, actor)


def created_event(record: IdentityRecord, actor: Actor) -> AuditEvent:
    """The ``identity.create`` event of ``record`` (also for one created on first use)."""
    event = _event(
        actor, ACTION_IDENTITY_CREATE, [identity_target(record)], record.created_at,
        record.workspace_id,
    )  # fmt: skip
    if record.rate_limit is not None:
        event = attrs.evolve(event, context={"rate_limit": str(record.rate_limit)})
    return event


def plan_set_identity_rate_limit(
    record: IdentityRecord, policy: RateLimitPolicy | None, *, now: float, actor: Actor
) -> tuple[IdentityRecord, AuditEvent] | None:
    """Set (or clear, with None) the limit all the identity's keys share; None: unchanged.

    Raises:
        PermissionDeniedError: the actor belongs to another workspace.
        ClientError: ``policy`` is neither a policy nor None.
    """
    _check_actor(actor, record.workspace_id)
    seconds = _seconds(now)
    if record.rate_limit == _check_policy(policy):
        return None
    updated = attrs.evolve(record, rate_limit=policy)
    event = _event(
        actor, ACTION_IDENTITY_UPDATE, [identity_target(record)], seconds, record.workspace_id
    )
    return updated, attrs.evolve(event, context={"rate_limit": str(policy or "none")})


def plan_set_identity_meta(
    record: IdentityRecord, meta: object, *, now: float, actor: Actor
) -> tuple[IdentityRecord, AuditEvent] | None:
    """Replace (or clear, with None) the identity's metadata; None: unchanged.

    Raises:
        PermissionDeniedError: the actor belongs to another workspace.
        ClientError: the metadata is not a small plain JSON object.
    """
    _check_actor(actor, record.workspace_id)
    seconds = _seconds(now)
    text = check_identity_meta(meta)
    if record.meta == text:
        return None
    updated = attrs.evolve(record, meta=text)
    event = _event(
        actor, ACTION_IDENTITY_UPDATE, [identity_target(record)], seconds, record.workspace_id
    )
    return updated, attrs.evolve(event, context={"meta": "changed"})


def plan_delete_identity(
    record: IdentityRecord,
    keys: Sequence[RootKeyRecord],
    sessions: Sequence[PortalSessionRecord],
    *,
    revoke_keys: bool,
    now: float,
    actor: Actor,
) -> tuple[list[RootKeyRecord | PortalSessionRecord], list[AuditEvent]]:
    """Delete ``record``: what to revoke first, and every event (revocations, then deletion).

    ``keys`` and ``sessions`` are the identity's. With live keys and not ``revoke_keys`` the
    deletion is refused; with it, each live key and live portal session is revoked in the
    same change, each with its own event.

    Raises:
        PermissionDeniedError: the actor belongs to another workspace.
        ConflictError: live keys remain and ``revoke_keys`` is false (409).
    """
    _check_actor(actor, record.workspace_id)
    seconds = _seconds(now)
    live_keys = [key for key in keys if key.identity_id == record.id and is_live(key, seconds)]
    if live_keys and not revoke_keys:
        raise ConflictError(IDENTITY_HAS_KEYS)
    live_sessions = [s for s in sessions if s.identity_id == record.id and is_live(s, seconds)]
    revoked: list[RootKeyRecord | PortalSessionRecord] = []
    events: list[AuditEvent] = []
    ws = record.workspace_id
    for key in live_keys:
        revoked.append(attrs.evolve(key, revoked_at=seconds))
        target = AuditTarget("root_key", key.id, key.name)
        events.append(_event(actor, ACTION_KEY_REVOKE, [target], seconds, ws))
    for session in live_sessions:
        revoked.append(attrs.evolve(session, revoked_at=seconds))
        target = AuditTarget("portal_session", session.id)
        events.append(_event(actor, ACTION_PORTAL_SESSION_REVOKE, [target], seconds, ws))
    deleted = _event(actor, ACTION_IDENTITY_DELETE, [identity_target(record)], seconds, ws)
    if revoked:
        deleted = attrs.evolve(deleted, context={"revoked": str(len(revoked))})
    events.append(deleted)
    return revoked, events


# --------------------------------------------------------------------------- the operations


def ensure_identity(
    workspace_id: str, proposed: IdentityRecord, actor: Actor
) -> Steps[IdentityRecord]:
    """Steps that return the workspace's identity with ``proposed``'s external id.

    Made on first use, as Unkey does: when there is none, ``proposed`` is stored and its
    ``identity.create`` event appended; two changes racing to make one both get the same.
    """
    stored: IdentityRecord = yield EnsureIdentity(proposed)
    if stored.id == proposed.id:
        yield Append(created_event(stored, actor))
    return stored


def create_identity(
    workspace_id: str,
    external_id: str,
    *,
    meta: object = None,
    rate_limit: RateLimitPolicy | None = None,
    now: float,
    actor: Actor,
) -> Change[IdentityRecord | None]:
    """Create an identity; None: unknown workspace.

    Raises:
        ClientError: a bad external id, metadata or rate limit (before anything runs).
        ConflictError: the workspace has an identity with this external id (when it runs).
    """
    record, event = plan_create_identity(
        workspace_id, external_id, meta=meta, rate_limit=rate_limit, now=now, actor=actor
    )
    return Change("create_identity", _create(record, event))


def _create(record: IdentityRecord, event: AuditEvent) -> Steps[IdentityRecord | None]:
    workspace: object = yield Load("workspace", record.workspace_id)
    if workspace is None:
        return None
    yield Insert(record, conflict=IDENTITY_TAKEN)
    yield Append(event)
    return record


def get_identity(workspace_id: str, external_id: str) -> Change[IdentityRecord | None]:
    """Read the workspace's identity with ``external_id``.

    Raises:
        ClientError: a bad external id.
    """
    step = FindIdentity(workspace_id, check_external_id(external_id))
    return Change("get_identity", _find(step), writes=False)


def _find(step: FindIdentity | Load) -> Steps[IdentityRecord | None]:
    found: IdentityRecord | None = yield step
    return found


def get_identity_by_id(identity_id: str) -> Change[IdentityRecord | None]:
    """Read the identity with our id ``identity_id``."""
    return Change("get_identity_by_id", _find(Load("identity", identity_id)), writes=False)


def list_identities(
    workspace_id: str, *, limit: int = 50, after: str | None = None
) -> Change[IdentityPage]:
    """Read one page of the workspace's identities, by external id.

    Raises:
        ClientError: ``limit`` not in 1..100, or ``after`` not a usable external id.
    """
    size = check_list_limit(limit)
    start = None if after is None else check_external_id(after)
    return Change("list_identities", _page(workspace_id, size, start), writes=False)


def _page(workspace_id: str, limit: int, after: str | None) -> Steps[IdentityPage]:
    # One more than the page, to know whether another follows.
    found: list[IdentityRecord] = yield ListIdentities(workspace_id, limit + 1, after)
    page = tuple(found[:limit])
    return IdentityPage(page, page[-1].external_id if len(found) > limit else None)


def _update(
    workspace_id: str,
    external_id: str,
    plan: Callable[[IdentityRecord], tuple[IdentityRecord, AuditEvent] | None],
) -> Steps[IdentityRecord | None]:
    record: IdentityRecord | None = yield FindIdentity(workspace_id, external_id, lock=True)
    if record is None:
        return None
    change = plan(record)
    if change is None:
        return record
    updated, event = change
    yield Update(updated)
    yield Append(event)
    return updated


def set_identity_rate_limit(
    workspace_id: str, external_id: str, policy: RateLimitPolicy | None, *, now: float,
    actor: Actor,
) -> Change[IdentityRecord | None]:  # fmt: skip
    """Set or clear (None) the limit the identity's keys share; None: no such identity.

    Every process's verified-result cache drops the conclusions built from the identity.

    Raises:
        ClientError: a bad external id.
    """
    wanted = check_external_id(external_id)
    return Change(
        "set_identity_rate_limit",
        _update(
            workspace_id,
            wanted,
            lambda record: plan_set_identity_rate_limit(record, policy, now=now, actor=actor),
        ),
    )


def set_identity_meta(
    workspace_id: str, external_id: str, meta: object, *, now: float, actor: Actor
) -> Change[IdentityRecord | None]:
    """Replace or clear (None) the identity's metadata; None: no such identity.

    Raises:
        ClientError: a bad external id, or metadata that is not a small plain JSON object.
    """
    wanted = check_external_id(external_id)
    check_identity_meta(meta)  # refused before anything runs
    return Change(
        "set_identity_meta",
        _update(
            workspace_id,
            wanted,
            lambda record: plan_set_identity_meta(record, meta, now=now, actor=actor),
        ),
    )


def delete_identity(
    workspace_id: str, external_id: str, *, revoke_keys: bool = False, now: float, actor: Actor
) -> Change[IdentityRecord | None]:
    """Delete an identity and return it as it was; None: no such identity.

    Refused while any of its keys still works, unless ``revoke_keys``: then its live keys and
    portal sessions are revoked in the same change (each audited), and every cache drops them.

    Raises:
        ClientError: a bad external id.
        ConflictError: live keys remain and ``revoke_keys`` is false (when it runs).
    """
    wanted = check_external_id(external_id)
    return Change("delete_identity", _delete(workspace_id, wanted, revoke_keys, now, actor))


def _delete(
    workspace_id: str, external_id: str, revoke_keys: bool, now: float, actor: Actor
) -> Steps[IdentityRecord | None]:
    record: IdentityRecord | None = yield FindIdentity(workspace_id, external_id, lock=True)
    if record is None:
        return None
    keys: list[RootKeyRecord] = yield ListRootKeys(workspace_id, record.id)
    sessions: list[PortalSessionRecord] = yield ListPortalSessions(workspace_id, record.id)
    revoked, events = plan_delete_identity(
        record, keys, sessions, revoke_keys=revoke_keys, now=now, actor=actor
    )
    for updated in revoked:
        yield Update(updated)
    yield Delete(record)
    for event in events:
        yield Append(event)
    return record
