"""Portal sessions: the plans of creating one, starting it with its code, and ending it.

A portal session belongs to one identity (the API's customer) and reaches its end user's
browser through a one-time exchange code (see ``docs/concepts.md``). Like
:mod:`authcore.plans`, these functions decide without I/O; :mod:`authcore.changes` runs them.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import attrs

from authcore.audit import (
    ACTION_PORTAL_SESSION_CREATE,
    ACTION_PORTAL_SESSION_EXCHANGE,
    ACTION_PORTAL_SESSION_REVOKE,
    AuditEvent,
)
from authcore.plans import (
    _check_actor,
    _check_int,
    _event,
    _granted_limit,
    _plan_revoke,
    _seconds,
    _session_target,
    check_id,
    validate_grants,
)
from authcore.principal import SUBJECT_IDENTITY, Source, Subject
from authcore.ratelimit import RateLimitPolicy
from authcore.records import (
    MAX_PORTAL_TTL,
    PORTAL_EXCHANGE_CODE_PREFIX,
    PORTAL_EXCHANGE_TTL,
    Actor,
    NewPortalExchange,
    NewPortalSession,
    PortalExchangeRecord,
    PortalSessionRecord,
)
from authcore.tokens import Digest, generate_id, issue_token

__all__ = [
    "exchange_is_spent",
    "plan_create_portal_exchange",
    "plan_create_portal_session",
    "plan_exchange_portal_code",
    "plan_revoke_portal_session",
    "plan_revoke_replayed_session",
]


def plan_create_portal_session(
    workspace_id: str,
    identity_id: str,
    *,
    permissions: Sequence[str],
    key_permissions: Sequence[str] = (),
    ttl: int,
    now: float,
    actor: Actor,
    rate_limit: RateLimitPolicy | None = None,
    prefix: str,
) -> tuple[NewPortalSession, AuditEvent]:
    """Generate a portal session of an identity and its ``portal_session.create`` event.

    ``permissions``: what the session may do in the portal; ``key_permissions``: the most a
    key made in the portal may hold; ``rate_limit``: the session's own limit (a maker with a
    limit of its own passes it on when none is given).

    Raises:
        PermissionDeniedError: the actor belongs to another workspace, or ``rate_limit`` is
            looser than the maker's own.
        InvalidPermissionError: a grant breaks the grammar.
        ClientError: ``ttl`` not in 1 s..30 days, or ``rate_limit`` neither a policy nor None.
    """
    _check_actor(actor, workspace_id)
    seconds = _seconds(now)
    grants = validate_grants(permissions)
    key_grants = validate_grants(key_permissions)
    lifetime = _check_int(ttl, "ttl", 1, MAX_PORTAL_TTL)
    policy = _granted_limit(actor, rate_limit)
    issued = issue_token(prefix, "ps")
    record = PortalSessionRecord(
        id=issued.id,
        workspace_id=workspace_id,
        identity_id=check_id(identity_id, "identity_id"),
        digest=issued.digest,
        permissions=grants,
        created_at=seconds,
        expires_at=seconds + lifetime,
        key_permissions=key_grants,
        rate_limit=policy,
    )
    event = _created_event(record, actor)
    return NewPortalSession(record, issued.secret), event


def plan_create_portal_exchange(
    workspace_id: str,
    identity_id: str,
    *,
    permissions: Sequence[str],
    key_permissions: Sequence[str] = (),
    ttl: int,
    now: float,
    actor: Actor,
    rate_limit: RateLimitPolicy | None = None,
) -> tuple[NewPortalExchange, PortalExchangeRecord, AuditEvent]:
    """Plan a portal session that starts with a one-time exchange code.

    The session is created now (its id can be revoked at once, its lifetime runs from now) but
    holds no token: its digest is 32 random bytes that are no token's digest, so nothing
    verifies against it. :func:`plan_exchange_portal_code` mints the token later. The event is
    ``portal_session.create``, with the caller as actor. ``rate_limit`` is as for
    :func:`plan_create_portal_session`.

    Raises:
        PermissionDeniedError: the actor belongs to another workspace, or ``rate_limit`` is
            looser than the maker's own.
        InvalidPermissionError: a grant breaks the grammar.
        ClientError: ``ttl`` not in 1 s..30 days, or ``rate_limit`` neither a policy nor None.
    """
    _check_actor(actor, workspace_id)
    seconds = _seconds(now)
    grants = validate_grants(permissions)
    key_grants = validate_grants(key_permissions)
    lifetime = _check_int(ttl, "ttl", 1, MAX_PORTAL_TTL)
    policy = _granted_limit(actor, rate_limit)
    session = PortalSessionRecord(
        id=generate_id("ps"),
        workspace_id=workspace_id,
        identity_id=check_id(identity_id, "identity_id"),
        digest=Digest(secrets.token_bytes(32)),
        permissions=grants,
        created_at=seconds,
        expires_at=seconds + lifetime,
        key_permissions=key_grants,
        rate_limit=policy,
    )
    code = issue_token(PORTAL_EXCHANGE_CODE_PREFIX, "px")
    exchange = PortalExchangeRecord(
        digest=code.digest,
        session_id=session.id,
        created_at=seconds,
        expires_at=seconds + PORTAL_EXCHANGE_TTL,
    )
    event = _created_event(session, actor)
    return NewPortalExchange(session, code.secret, exchange.expires_at), exchange, event


def _created_event(record: PortalSessionRecord, actor: Actor) -> AuditEvent:
    event = _event(
        actor,
        ACTION_PORTAL_SESSION_CREATE,
        [_session_target(record)],
        record.created_at,
        record.workspace_id,
    )
    if record.rate_limit is None:
        return event
    return attrs.evolve(event, context={"rate_limit": str(record.rate_limit)})


def exchange_is_spent(exchange: PortalExchangeRecord | None, *, now: float) -> bool:
    """Whether presenting ``exchange`` at ``now`` can change nothing: unknown, or expired
    without ever being used.

    Each of these is final (time never goes back), so a store may answer them from a read,
    before any write transaction. A *used* code is not: presenting it again ends the session
    it started (:func:`plan_revoke_replayed_session`), which is a write.
    """
    seconds = _seconds(now)
    return exchange is None or (exchange.used_at is None and seconds >= exchange.expires_at)


def plan_exchange_portal_code(
    exchange: PortalExchangeRecord,
    session: PortalSessionRecord | None,
    *,
    now: float,
    prefix: str,
) -> tuple[PortalExchangeRecord, NewPortalSession, AuditEvent] | None:
    """Spend ``exchange`` (found by its code's digest) and mint the token of its session.

    Returns the used code, the session with the digest of its new token, and the
    ``portal_session.exchange`` event (the end user is the actor: the code is their
    credential, on behalf of the session's identity). None, and nothing to write, when the
    code was used, has expired, or its
    session is gone, revoked or expired: every such code answers the same.

    Raises:
        ClientError: ``now`` is not a time.
    """
    seconds = _seconds(now)
    if exchange.used_at is not None or seconds >= exchange.expires_at:
        return None
    if (
        session is None
        or session.id != exchange.session_id
        or session.revoked_at is not None
        or seconds >= session.expires_at
    ):
        return None
    issued = issue_token(prefix, "ps")
    started = attrs.evolve(session, digest=issued.digest)
    event = AuditEvent(
        id=generate_id("evt"),
        workspace_id=session.workspace_id,
        actor=Subject(SUBJECT_IDENTITY, session.identity_id),
        action=ACTION_PORTAL_SESSION_EXCHANGE,
        targets=(_session_target(session),),
        time=seconds,
        source=Source.PORTAL_SESSION.value,
    )
    used = attrs.evolve(exchange, used_at=seconds)
    return used, NewPortalSession(started, issued.secret), event


def plan_revoke_portal_session(
    record: PortalSessionRecord, *, now: float, actor: Actor
) -> tuple[PortalSessionRecord, AuditEvent] | None:
    """Revoke (log out) ``record``; None when it already is.

    Raises:
        PermissionDeniedError: the actor belongs to another workspace.
    """
    return _plan_revoke(record, ACTION_PORTAL_SESSION_REVOKE, _session_target(record), now, actor)


def plan_revoke_replayed_session(
    record: PortalSessionRecord, *, now: float
) -> tuple[PortalSessionRecord, AuditEvent] | None:
    """End the session whose exchange code was presented again; None when already ended.

    Whoever replays a code may hold the session it started, so the session ends (the OAuth
    rule for a replayed authorization code, RFC 6749 §4.1.2). The event's actor is the
    session's identity, on whose behalf the code was issued; the reason is in its context.
    """
    seconds = _seconds(now)
    if record.revoked_at is not None:
        return None
    event = AuditEvent(
        id=generate_id("evt"),
        workspace_id=record.workspace_id,
        actor=Subject(SUBJECT_IDENTITY, record.identity_id),
        action=ACTION_PORTAL_SESSION_REVOKE,
        targets=(_session_target(record),),
        time=seconds,
        source=Source.PORTAL_SESSION.value,
        context={"reason": "exchange_code_replayed"},
    )
    return attrs.evolve(record, revoked_at=seconds), event
