"""Audit events: security-relevant product actions, with the principal's subject as actor.

Events record what a principal *did* (create a key, revoke a key, create a portal session),
not credential verification. The workspace and the actor always come from the principal, so
adding a credential source never changes what audit logs say. Where the store supports it,
the event is written in the same transaction as the change it records.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final, Protocol

import attrs

from authcore.principal import Principal, Subject
from authcore.tokens import generate_id

__all__ = [
    "ACTION_IDENTITY_CREATE",
    "ACTION_IDENTITY_DELETE",
    "ACTION_IDENTITY_UPDATE",
    "ACTION_KEY_CREATE",
    "ACTION_KEY_REVOKE",
    "ACTION_KEY_ROTATE",
    "ACTION_KEY_UPDATE",
    "ACTION_PORTAL_SESSION_CREATE",
    "ACTION_PORTAL_SESSION_EXCHANGE",
    "ACTION_PORTAL_SESSION_REVOKE",
    "ACTION_WORKSPACE_CREATE",
    "ACTION_WORKSPACE_DISABLE",
    "ACTION_WORKSPACE_ENABLE",
    "ACTION_WORKSPACE_UPDATE",
    "OPERATOR",
    "AsyncAuditSink",
    "AuditEvent",
    "AuditSink",
    "AuditTarget",
    "audit_event",
]

ACTION_IDENTITY_CREATE: Final = "identity.create"
ACTION_IDENTITY_DELETE: Final = "identity.delete"
ACTION_IDENTITY_UPDATE: Final = "identity.update"
ACTION_KEY_CREATE: Final = "key.create"
ACTION_KEY_REVOKE: Final = "key.revoke"
ACTION_KEY_ROTATE: Final = "key.rotate"
ACTION_KEY_UPDATE: Final = "key.update"
ACTION_PORTAL_SESSION_CREATE: Final = "portal_session.create"
ACTION_PORTAL_SESSION_EXCHANGE: Final = "portal_session.exchange"
ACTION_PORTAL_SESSION_REVOKE: Final = "portal_session.revoke"
ACTION_WORKSPACE_CREATE: Final = "workspace.create"
ACTION_WORKSPACE_DISABLE: Final = "workspace.disable"
ACTION_WORKSPACE_ENABLE: Final = "workspace.enable"
ACTION_WORKSPACE_UPDATE: Final = "workspace.update"

#: The actor for changes made by an operator on the command line, outside any request.
OPERATOR: Final = Subject("operator", "cli")


@attrs.frozen
class AuditTarget:
    """What an action touched: a key, a portal session, a workspace."""

    type: str
    id: str
    name: str | None = None

    def to_dict(self) -> dict[str, str]:
        """Return a JSON-ready mapping (``name`` only when set)."""
        out = {"type": self.type, "id": self.id}
        if self.name is not None:
            out["name"] = self.name
        return out


@attrs.frozen
class AuditEvent:
    """One recorded action. ``time`` is whole seconds since the epoch."""

    id: str
    workspace_id: str
    actor: Subject
    action: str
    targets: tuple[AuditTarget, ...]
    time: int
    request_id: str | None = None
    source: str | None = None
    context: Mapping[str, str] = attrs.field(factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready mapping."""
        return {
            "id": self.id,
            "workspace_id": self.workspace_id,
            "actor": self.actor.to_dict(),
            "action": self.action,
            "targets": [target.to_dict() for target in self.targets],
            "time": self.time,
            "request_id": self.request_id,
            "source": self.source,
            "context": dict(self.context),
        }


def audit_event(
    principal: Principal | None,
    action: str,
    targets: Iterable[AuditTarget],
    *,
    now: float,
    request_id: str | None = None,
    workspace_id: str | None = None,
    context: Mapping[str, str] | None = None,
) -> AuditEvent:
    """Build an event whose actor and workspace are the principal's.

    With ``principal=None`` the actor is :data:`OPERATOR` and ``workspace_id`` is required
    (changes made from the command line).

    Raises:
        ValueError: no principal and no workspace id.
    """
    if principal is not None:
        actor, workspace, source = principal.subject, principal.workspace_id, principal.source.value
    elif workspace_id is not None:
        actor, workspace, source = OPERATOR, workspace_id, None
    else:
        raise ValueError("an audit event needs a principal or a workspace id")
    return AuditEvent(
        id=generate_id("evt"),
        workspace_id=workspace,
        actor=actor,
        action=action,
        targets=tuple(targets),
        time=int(now),
        request_id=request_id,
        source=source,
        context=dict(context or {}),
    )


class AuditSink(Protocol):
    """Where events go (synchronous)."""

    def record(self, event: AuditEvent, /) -> None: ...


class AsyncAuditSink(Protocol):
    """Where events go (asynchronous)."""

    async def arecord(self, event: AuditEvent, /) -> None: ...
