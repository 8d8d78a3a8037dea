"""The principal: the one identity everything after authentication trusts.

Step 3 of the flow. Pure functions turn a verified record (root key, portal session) or
verified JWT claims into a :class:`Principal`, or raise one uniform
:class:`~authcore.errors.InvalidCredentialError`: unknown, wrong, expired and revoked all look
the same from outside. A disabled workspace is a 403, since the credential itself is fine.

A principal never holds a secret, a raw token or a digest, and it is immutable. It owns the
handler-side check, :meth:`Principal.authorize`, which fails closed.
"""

from __future__ import annotations

import enum
import functools
from typing import Any, Final

import attrs

from authcore.errors import (
    InvalidCredentialError,
    InvalidPermissionError,
    PermissionDeniedError,
    WorkspaceDisabledError,
)
from authcore.keyring import VerifiedClaims
from authcore.permissions import PermissionSet, Query
from authcore.ratelimit import RateLimitPolicy
from authcore.records import PortalSessionRecord, RootKeyRecord, WorkspaceRecord
from authcore.tokens import digests_equal

__all__ = [
    "SUBJECT_IDENTITY",
    "SUBJECT_ROOT_KEY",
    "SUBJECT_USER",
    "Principal",
    "Source",
    "Subject",
    "check_workspace",
    "principal_from_claims",
    "principal_from_portal_session",
    "principal_from_root_key",
]

SUBJECT_ROOT_KEY: Final = "root_key"
SUBJECT_USER: Final = "user"
#: A portal session acts for its identity, the API's customer: the subject is the identity.
SUBJECT_IDENTITY: Final = "identity"


class Source(enum.Enum):
    """Which credential source produced a principal."""

    ROOT_KEY = "root_key"
    PORTAL_SESSION = "portal_session"
    JWT = "jwt"


@attrs.frozen
class Subject:
    """The actor in audit logs: a type (``root_key``, ``user``, ...) and an id."""

    type: str
    id: str
    name: str | None = None

    def to_dict(self) -> dict[str, str]:
        """Return a JSON-ready mapping (``name`` only when set)."""
        out = {"type": self.type, "id": self.id}
        if self.name is not None:
            out["name"] = self.name
        return out


@attrs.frozen(cache_hash=True)
class Principal:
    """A verified caller: workspace, subject, source and permissions. Holds no secret.

    ``identity_id`` is the identity (the API's customer) the caller acts for: the owner of a
    root key that has one, a portal session's identity, None otherwise. ``key_permissions`` is
    the most a key this caller makes may hold, where that is less than ``permissions`` (a
    portal session: the operator's choice for keys made in the portal); None: its permissions.
    ``rate_limit`` is the credential's own limit (a root key's or a portal session's), the
    most quota a key or session it makes may get: a credential hands out no more quota than it
    holds.
    """

    workspace_id: str
    subject: Subject
    source: Source
    permissions: PermissionSet
    identity_id: str | None = None
    key_permissions: PermissionSet | None = None
    rate_limit: RateLimitPolicy | None = None

    @property
    def grantable(self) -> PermissionSet:
        """The most a key made by this caller may hold (never more than it holds itself)."""
        return self.permissions if self.key_permissions is None else self.key_permissions

    def can(self, query: Query | str) -> bool:
        """Return whether the permissions satisfy ``query``; an invalid query is False."""
        try:
            return self.permissions.satisfies(query)
        except InvalidPermissionError:
            return False

    def authorize(self, query: Query | str) -> None:
        """Fail closed unless the permissions satisfy ``query``.

        Raises:
            PermissionDeniedError: the permission is missing, or the query is invalid (a
                handler bug must never grant access).
        """
        permissions = self.permissions
        # satisfies()'s own fast path, without its frame: every handler's check runs this.
        if type(query) is str and query in permissions._exact:
            return
        try:
            allowed = permissions.satisfies(query)
        except InvalidPermissionError:
            allowed = False
        if not allowed:
            raise PermissionDeniedError

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready mapping of the principal (``identity_id`` only when set)."""
        out: dict[str, Any] = {
            "workspace_id": self.workspace_id,
            "subject": self.subject.to_dict(),
            "source": self.source.value,
            "permissions": self.permissions.to_list(),
        }
        if self.identity_id is not None:
            out["identity_id"] = self.identity_id
        return out


def _permission_set(grants: tuple[str, ...]) -> PermissionSet:
    try:
        return PermissionSet.compiled(grants)
    except InvalidPermissionError as exc:
        # A stored grant that no longer parses must never widen access.
        raise InvalidCredentialError("stored permissions invalid") from exc


# A principal is a pure function of its record, and both are immutable: build it once per
# record and share it (the checks that depend on ``now`` run before, on every request). The
# memo is bounded by entries, so only records with few grants enter it; a bigger one is built
# afresh (the replay keeps its principal anyway; issue 26, finding 3).
_MEMO_MAX_GRANTS: Final = 32


@functools.lru_cache(maxsize=4096)
def _root_key_principal(record: RootKeyRecord) -> Principal:
    return Principal(
        workspace_id=record.workspace_id,
        subject=Subject(SUBJECT_ROOT_KEY, record.id, record.name),
        source=Source.ROOT_KEY,
        permissions=_permission_set(record.permissions),
        identity_id=record.identity_id,
        rate_limit=record.rate_limit,
    )


@functools.lru_cache(maxsize=4096)
def _portal_session_principal(record: PortalSessionRecord) -> Principal:
    return Principal(
        workspace_id=record.workspace_id,
        subject=Subject(SUBJECT_IDENTITY, record.identity_id),
        source=Source.PORTAL_SESSION,
        permissions=_permission_set(record.permissions),
        identity_id=record.identity_id,
        # What keys made in the portal may hold, never more than the operator chose; and a
        # portal session holds no permission beyond its own portal actions to lend out.
        key_permissions=_permission_set(record.key_permissions),
        rate_limit=record.rate_limit,
    )


def principal_from_root_key(
    record: RootKeyRecord | None, presented_digest: bytes, now: float
) -> Principal:
    """Turn the record found for ``presented_digest`` into a principal.

    Raises:
        InvalidCredentialError: no record, digest mismatch, revoked, or expired (``now`` at
            or past ``expires_at``).
    """
    if record is None:
        raise InvalidCredentialError("unknown")
    if not digests_equal(record.digest, presented_digest):
        raise InvalidCredentialError("digest mismatch")
    if record.revoked_at is not None:
        raise InvalidCredentialError("revoked")
    if record.expires_at is not None and now >= record.expires_at:
        raise InvalidCredentialError("expired")
    if len(record.permissions) > _MEMO_MAX_GRANTS:
        return _root_key_principal.__wrapped__(record)
    return _root_key_principal(record)


def principal_from_portal_session(
    record: PortalSessionRecord | None, presented_digest: bytes, now: float
) -> Principal:
    """Turn the portal-session record found for ``presented_digest`` into a principal.

    Raises:
        InvalidCredentialError: no record, digest mismatch, revoked (logged out) or expired.
    """
    if record is None:
        raise InvalidCredentialError("unknown")
    if not digests_equal(record.digest, presented_digest):
        raise InvalidCredentialError("digest mismatch")
    if record.revoked_at is not None:
        raise InvalidCredentialError("revoked")
    if now >= record.expires_at:
        raise InvalidCredentialError("expired")
    if len(record.permissions) + len(record.key_permissions) > _MEMO_MAX_GRANTS:
        return _portal_session_principal.__wrapped__(record)
    return _portal_session_principal(record)


def principal_from_claims(claims: VerifiedClaims) -> Principal:
    """Turn verified JWT claims (see :class:`~authcore.keyring.Keyring`) into a principal.

    Raises:
        InvalidCredentialError: the permissions claim breaks the grammar.
    """
    return Principal(
        workspace_id=claims.workspace_id,
        subject=Subject(SUBJECT_USER, claims.subject, claims.name),
        source=Source.JWT,
        permissions=_permission_set(claims.permissions),
    )


def check_workspace(workspace: WorkspaceRecord | None, workspace_id: str) -> WorkspaceRecord:
    """Return the principal's workspace if it may act.

    Raises:
        InvalidCredentialError: the workspace does not exist (a credential for nothing).
        WorkspaceDisabledError: the workspace is disabled (403: the credential is valid).
    """
    if workspace is None or workspace.id != workspace_id:
        raise InvalidCredentialError("workspace unknown")
    if workspace.disabled:
        raise WorkspaceDisabledError
    return workspace
