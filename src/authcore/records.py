"""The records stores keep, and the values management operations return.

A record is what a store found for a digest or id; the core decides what it means (see
:mod:`authcore.principal`). Stores keep only digests, never a raw key or token: a raw key or
token exists once, in the ``New*`` value its creation returns. All times are whole seconds
since the epoch.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, Final

import attrs

from authcore.errors import ClientError
from authcore.passwords import PasswordHash
from authcore.ratelimit import RateLimitPolicy
from authcore.tokens import Digest, Secret

if TYPE_CHECKING:
    from authcore.audit import AuditEvent
    from authcore.principal import Principal

__all__ = [
    "DEFAULT_LIST_PAGE",
    "MAX_AUDIT_PAGE",
    "MAX_GRACE_SECONDS",
    "MAX_IDENTITY_META_BYTES",
    "MAX_LIST_PAGE",
    "MAX_PORTAL_TTL",
    "OPERATOR_ACTOR",
    "PORTAL_EXCHANGE_CODE_PREFIX",
    "PORTAL_EXCHANGE_TTL",
    "Actor",
    "AuditCursor",
    "AuditPage",
    "DashboardUserRecord",
    "IdentityPage",
    "IdentityRecord",
    "KeyCursor",
    "KeyPage",
    "NewPortalExchange",
    "NewPortalSession",
    "NewRootKey",
    "PortalExchangeRecord",
    "PortalSessionRecord",
    "Record",
    "RootKeyRecord",
    "UsageCount",
    "WorkspacePage",
    "WorkspaceRecord",
]

#: Longest rotation grace period: 30 days.
MAX_GRACE_SECONDS: Final = 30 * 86_400
#: Largest identity metadata: a JSON object of at most this many bytes, UTF-8, as stored.
MAX_IDENTITY_META_BYTES: Final = 1024
#: Most records one page of a list (identities, keys) holds. A key is at most about 9 KiB of
#: JSON (authcore.plans.MAX_KEY_GRANT_BYTES), so a page of keys stays under about 5 MB.
MAX_LIST_PAGE: Final = 500
#: The page size of a list (keys, identities, audit events) when the caller names none.
DEFAULT_LIST_PAGE: Final = 100
#: Longest portal-session lifetime: 30 days.
MAX_PORTAL_TTL: Final = 30 * 86_400
#: Most audit events one ``list_audit`` call returns.
MAX_AUDIT_PAGE: Final = 500
#: How long a portal exchange code works (seconds): long enough for one redirect, no more.
PORTAL_EXCHANGE_TTL: Final = 60
#: Prefix of portal exchange codes (never accepted as a credential by any route).
PORTAL_EXCHANGE_CODE_PREFIX: Final = "pc_"


def _tuple_of_str(value: object) -> tuple[str, ...]:
    # A record's own invariant (a programming error, not input): management paths validate
    # grants first (authcore.plans.validate_grants) and answer InvalidPermissionError.
    if isinstance(value, str) or not hasattr(value, "__iter__"):
        raise TypeError("expected a sequence of str")
    items = tuple(value)
    if not all(isinstance(item, str) for item in items):
        raise TypeError("expected a sequence of str")
    return items


@attrs.frozen
class WorkspaceRecord:
    """A workspace: the scope for data, rate limits and audit."""

    id: str
    name: str
    disabled: bool = False
    rate_limit: RateLimitPolicy | None = None
    org_id: str | None = None
    created_at: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready mapping (``rate_limit`` as ``N/SECONDS``, or None)."""
        return {
            "workspace_id": self.id,
            "name": self.name,
            "org_id": self.org_id,
            "disabled": self.disabled,
            "rate_limit": None if self.rate_limit is None else str(self.rate_limit),
            "created_at": self.created_at,
        }


@attrs.frozen
class WorkspacePage:
    """One page of workspaces by id (code-point order); ``next_after`` None on the last."""

    workspaces: tuple[WorkspaceRecord, ...]
    next_after: str | None


@attrs.frozen(cache_hash=True)
class IdentityRecord:
    """One customer of the protected API inside a workspace: who owns keys and portal sessions.

    ``external_id`` is the operator's own id for the customer (a user or org id of theirs),
    unique per workspace; ``id`` is ours (``idt_<hex>``). ``meta`` is a small JSON object as
    canonical text (sorted keys, no spaces), at most :data:`MAX_IDENTITY_META_BYTES` bytes, or
    None. ``rate_limit`` is shared by all the identity's keys and portal sessions: a request by
    one of them must pass the identity's limit as well as its workspace's and its own.
    """

    id: str
    workspace_id: str
    external_id: str
    meta: str | None = None
    rate_limit: RateLimitPolicy | None = None
    created_at: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready mapping (``meta`` as an object, ``rate_limit`` as ``N/SECONDS``)."""
        return {
            "identity_id": self.id,
            "external_id": self.external_id,
            "workspace_id": self.workspace_id,
            "meta": None if self.meta is None else json.loads(self.meta),
            "rate_limit": None if self.rate_limit is None else str(self.rate_limit),
            "created_at": self.created_at,
        }


@attrs.frozen
class IdentityPage:
    """One page of a workspace's identities by external id; ``next_after`` None on the last."""

    identities: tuple[IdentityRecord, ...]
    next_after: str | None


@attrs.frozen
class KeyCursor:
    """Where the next page of keys starts: strictly after ``(created_at, id)``.

    Keys are listed oldest first, by ``(created_at, id)``: ids are unique, so the order is
    total and a key made while a caller pages is never shown twice.
    """

    created_at: int
    id: str


@attrs.frozen(cache_hash=True)
class RootKeyRecord:
    """A stored root key: its digest and metadata, never the key.

    ``rate_limit`` is the key's own limit, applied on top of its workspace's (a request must
    pass both); None: only the workspace's limit applies. ``identity_id`` names the identity
    the key belongs to (None: the workspace's own key); its limit applies too.
    """

    id: str
    workspace_id: str
    digest: Digest = attrs.field(repr=False, converter=Digest)
    start: str
    name: str | None
    permissions: tuple[str, ...] = attrs.field(converter=_tuple_of_str)
    created_at: int
    expires_at: int | None = None
    revoked_at: int | None = None
    rate_limit: RateLimitPolicy | None = None
    identity_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return what may be shown of a key (JSON-ready): never the key, never its digest.

        ``rate_limit`` is the key's own limit as ``"N/SECONDS"`` (e.g. ``"100/60"``), or None.
        """
        return {
            "key_id": self.id,
            "workspace_id": self.workspace_id,
            "name": self.name,
            "start": self.start,
            "permissions": list(self.permissions),
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
            "rate_limit": None if self.rate_limit is None else str(self.rate_limit),
            "identity_id": self.identity_id,
        }


@attrs.frozen(cache_hash=True)
class PortalSessionRecord:
    """A stored portal session of one identity's end user, by digest of its token.

    ``permissions`` is what the session may do in the portal (``keys.read``, ``keys.create``,
    ...), always over its identity's keys only; ``key_permissions`` is the most a key made in
    the portal may hold: the operator's decision, of which the end user may take less.
    ``rate_limit`` is the session's own limit, applied on top of its workspace's (a request
    must pass both), and the loosest a key made in the portal may get; None: none of its own.
    A session made by a credential with a limit of its own never gets a looser one.
    """

    id: str
    workspace_id: str
    identity_id: str
    digest: Digest = attrs.field(repr=False, converter=Digest)
    permissions: tuple[str, ...] = attrs.field(converter=_tuple_of_str)
    created_at: int
    expires_at: int
    revoked_at: int | None = None
    key_permissions: tuple[str, ...] = attrs.field(default=(), converter=_tuple_of_str)
    rate_limit: RateLimitPolicy | None = None


@attrs.frozen(cache_hash=True)
class PortalExchangeRecord:
    """A one-time code that turns into a portal session's token, stored by the code's digest.

    ``session_id`` names the session it starts. ``used_at`` is set by the one exchange that
    succeeds; a used or expired code never works again.
    """

    digest: Digest = attrs.field(repr=False, converter=Digest)
    session_id: str
    created_at: int
    expires_at: int
    used_at: int | None = None


@attrs.frozen
class DashboardUserRecord:
    """A dashboard user: an organization member who signs in with a password.

    ``password_hash`` is what :func:`authcore.passwords.hash_password` produced; it is kept out
    of ``repr``.
    """

    user_id: str
    org_id: str
    password_hash: PasswordHash = attrs.field(repr=False, converter=PasswordHash)
    permissions: tuple[str, ...] = attrs.field(converter=_tuple_of_str)


@attrs.frozen
class Actor:
    """Who makes a change, for its audit event: a principal, or the operator (``None``).

    With ``principal=None`` the change is made by an operator on the command line and the
    event's actor is :data:`authcore.audit.OPERATOR`. A principal may only change its own
    workspace (a change by it elsewhere raises :class:`~authcore.errors.PermissionDeniedError`).
    """

    principal: Principal | None = None
    request_id: str | None = None


#: The operator on the command line, outside any request.
OPERATOR_ACTOR: Final = Actor()


@attrs.frozen
class NewRootKey:
    """A freshly created root key: its record and the raw key, shown once."""

    record: RootKeyRecord
    key: Secret = attrs.field(repr=False)


@attrs.frozen
class NewPortalSession:
    """A freshly created portal session: its record and the raw token, shown once."""

    record: PortalSessionRecord
    token: Secret = attrs.field(repr=False)


@attrs.frozen
class NewPortalExchange:
    """A portal session waiting for its exchange, and the one-time code, shown once.

    The session exists (it can be revoked, and its lifetime runs from creation) but no token
    does yet: its stored digest has no preimage anyone holds. The exchange mints the token and
    replaces the digest; the code works once, until ``code_expires_at``.
    """

    record: PortalSessionRecord
    code: Secret = attrs.field(repr=False)
    code_expires_at: int


_CURSOR_TEXT = re.compile(r"([0-9]{1,12})\.([0-9]{1,18})", re.ASCII)


@attrs.frozen
class AuditCursor:
    """Where the next audit page starts: strictly older than ``(time, seq)``.

    Events are listed by ``(time, seq)`` descending, where ``seq`` is the store's insertion
    order. A cursor is only meaningful for the store that produced it. ``str(cursor)`` is
    ``"<time>.<seq>"`` and :meth:`parse` reads it back (for query strings).
    """

    time: int
    seq: int

    @classmethod
    def parse(cls, text: str) -> AuditCursor:
        """Read the ``"<time>.<seq>"`` form.

        Raises:
            ClientError: the text is not a cursor (400).
        """
        match = _CURSOR_TEXT.fullmatch(text) if isinstance(text, str) else None
        if match is None:
            raise ClientError("invalid audit cursor")
        return cls(int(match.group(1)), int(match.group(2)))

    def __str__(self) -> str:
        return f"{self.time}.{self.seq}"


@attrs.frozen
class AuditPage:
    """One page of audit events, newest first; ``next_cursor`` is None on the last page."""

    events: tuple[AuditEvent, ...]
    next_cursor: AuditCursor | None


@attrs.frozen
class KeyPage:
    """One page of keys, oldest first; ``next_cursor`` is None on the last page."""

    keys: tuple[RootKeyRecord, ...]
    next_cursor: KeyCursor | None


@attrs.frozen
class UsageCount:
    """How many authentication outcomes of one kind a credential had in one time bucket.

    ``outcome`` is ``"allowed"`` or the refusal's stable error code (``credential_invalid``,
    ``workspace_disabled``, ``rate_limited``, ``service_unavailable``, ...). A credential that
    was never verified (unknown, malformed, missing) counts with ``workspace_id`` and
    ``credential_id`` empty: never one row per bogus token. A JWT has no stored credential: it
    counts in its workspace with ``credential_id`` empty. ``bucket`` is the bucket's first
    second and ``span`` its width in seconds (60 or 3600). Nothing of a credential beyond its
    id is kept.
    """

    workspace_id: str
    credential_id: str
    outcome: str
    bucket: int
    count: int
    span: int = 60

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready mapping."""
        return {
            "workspace_id": self.workspace_id,
            "credential_id": self.credential_id,
            "outcome": self.outcome,
            "bucket": self.bucket,
            "span": self.span,
            "count": self.count,
        }


#: Every record a store keeps, as management changes write them (:mod:`authcore.changes`).
Record = (
    WorkspaceRecord
    | IdentityRecord
    | RootKeyRecord
    | PortalSessionRecord
    | PortalExchangeRecord
    | DashboardUserRecord
)
