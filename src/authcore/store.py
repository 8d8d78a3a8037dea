"""What the core needs from storage, and the management API every store shares.

Verification needs four lookups (:class:`CredentialStore`, :class:`AsyncCredentialStore`):
the flow calls nothing else, and a cache (:class:`authcore.backends.cache.CachedStore`) can
sit in front of any store that answers them.

Management (create a workspace, revoke a key, ...) is written once, in
:mod:`authcore.changes`, as changes over a small transaction protocol. :class:`Store` and
:class:`AsyncStore` turn each operation into a change and hand it to the backend's
:meth:`Store.run`: a backend implements the three lookups and ``run`` (and their async twins),
nothing more. The records live in :mod:`authcore.records`; :class:`AsyncStore` lives in
:mod:`authcore.async_store` and is re-exported here.

Conventions for every backend:

- ``now`` is seconds since the epoch (stored as whole seconds); stores never read a clock.
- An operation on an unknown id returns ``None`` and changes nothing.
- Every mutation writes its audit event atomically with the change: both are stored or
  neither is.
- Only digests of keys and tokens are stored; the raw value is returned once.
- A portal exchange code works once: of any number of concurrent ``exchange_portal_code``
  calls with its digest, in any number of processes, exactly one returns the new session
  (with its token); every other call, and every later one, returns ``None``, as for an
  expired or unknown code, or one whose session was revoked.

Raises (any management method):
    UnavailableError: the backing system failed or timed out (503).
    PermissionDeniedError: ``actor`` has a principal of another workspace.
    InvalidPermissionError: a grant in ``permissions`` breaks the grammar.
    ConflictError: an org id or dashboard user id is already taken (409).
    ClientError: another argument is out of range or of the wrong type (empty name, ttl,
        grace, limit), or a text argument that is not valid Unicode (SQL backends).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, TypeVar

from authcore import changes, identities, workspaces
from authcore import usage as usage_changes
from authcore.async_store import AsyncStore
from authcore.portal_sessions import exchange_is_spent
from authcore.records import (
    DEFAULT_LIST_PAGE,
    Actor,
    AuditCursor,
    AuditPage,
    DashboardUserRecord,
    IdentityPage,
    IdentityRecord,
    KeyCursor,
    KeyPage,
    NewPortalExchange,
    NewPortalSession,
    NewRootKey,
    PortalSessionRecord,
    RootKeyRecord,
    UsageCount,
    WorkspacePage,
    WorkspaceRecord,
)
from authcore.tokens import DEFAULT_PORTAL_TOKEN_PREFIX, DEFAULT_ROOT_KEY_PREFIX

if TYPE_CHECKING:
    from authcore.audit import AuditEvent
    from authcore.ratelimit import RateLimitPolicy
    from authcore.steps import Change

__all__ = [
    "AsyncCredentialStore",
    "AsyncStore",
    "CredentialStore",
    "Store",
]

_R = TypeVar("_R")


class CredentialStore(Protocol):
    """Synchronous lookups used by verification. Raise ``UnavailableError`` when down."""

    def find_root_key(self, digest: bytes, /) -> RootKeyRecord | None: ...

    def find_portal_session(self, digest: bytes, /) -> PortalSessionRecord | None: ...

    def find_workspace(self, workspace_id: str, /) -> WorkspaceRecord | None: ...

    def find_identity(self, identity_id: str, /) -> IdentityRecord | None: ...


class AsyncCredentialStore(Protocol):
    """Asynchronous twin of :class:`CredentialStore`."""

    async def afind_root_key(self, digest: bytes, /) -> RootKeyRecord | None: ...

    async def afind_portal_session(self, digest: bytes, /) -> PortalSessionRecord | None: ...

    async def afind_workspace(self, workspace_id: str, /) -> WorkspaceRecord | None: ...

    async def afind_identity(self, identity_id: str, /) -> IdentityRecord | None: ...


class Store(abc.ABC):
    """A synchronous store: the three lookups, :meth:`run`, and the management API over it.

    A backend subclasses this and implements ``find_root_key``, ``find_portal_session``,
    ``find_workspace`` and ``run``; every management method below is one change from
    :mod:`authcore.changes`. See the module docstring for the conventions and errors.
    """

    #: Prefix of the root keys this store issues (a backend option).
    root_key_prefix: str = DEFAULT_ROOT_KEY_PREFIX
    #: Prefix of the portal tokens this store issues (a backend option).
    portal_token_prefix: str = DEFAULT_PORTAL_TOKEN_PREFIX

    @abc.abstractmethod
    def find_root_key(self, digest: bytes, /) -> RootKeyRecord | None:
        """Return the root key stored under ``digest``."""

    @abc.abstractmethod
    def find_portal_session(self, digest: bytes, /) -> PortalSessionRecord | None:
        """Return the portal session stored under ``digest``."""

    @abc.abstractmethod
    def find_workspace(self, workspace_id: str, /) -> WorkspaceRecord | None:
        """Return the workspace ``workspace_id``."""

    @abc.abstractmethod
    def run(self, change: Change[_R], /) -> _R:
        """Run ``change`` in one transaction (a write transaction when it writes)."""

    def create_workspace(
        self,
        name: str,
        *,
        org_id: str | None = None,
        rate_limit: RateLimitPolicy | None = None,
        now: float,
        actor: Actor,
    ) -> WorkspaceRecord:
        """Create a workspace."""
        return self.run(
            changes.create_workspace(
                name, org_id=org_id, rate_limit=rate_limit, now=now, actor=actor
            )
        )

    def disable_workspace(
        self, workspace_id: str, *, now: float, actor: Actor
    ) -> WorkspaceRecord | None:
        """Disable a workspace (credentials of it get 403); None when unknown."""
        return self.run(changes.disable_workspace(workspace_id, now=now, actor=actor))

    def enable_workspace(
        self, workspace_id: str, *, now: float, actor: Actor
    ) -> WorkspaceRecord | None:
        """Enable a disabled workspace again; None when unknown."""
        return self.run(changes.enable_workspace(workspace_id, now=now, actor=actor))

    def set_rate_limit(
        self, workspace_id: str, policy: RateLimitPolicy | None, *, now: float, actor: Actor
    ) -> WorkspaceRecord | None:
        """Set or clear (None) the workspace's rate-limit policy; None when unknown."""
        return self.run(changes.set_rate_limit(workspace_id, policy, now=now, actor=actor))

    def link_org(
        self, workspace_id: str, org_id: str, *, now: float, actor: Actor
    ) -> WorkspaceRecord | None:
        """Link an organization id to the workspace; None when unknown (409 if taken)."""
        return self.run(changes.link_org(workspace_id, org_id, now=now, actor=actor))

    def find_workspace_by_org(self, org_id: str, /) -> WorkspaceRecord | None:
        """Return the workspace linked to ``org_id``."""
        return self.run(changes.find_workspace_by_org(org_id))

    def list_workspaces(
        self, *, limit: int = DEFAULT_LIST_PAGE, after: str | None = None
    ) -> WorkspacePage:
        """Return one page of the workspaces, by id after the workspace id ``after``.

        Ids are in code-point order on every backend; a page's ``next_after`` is the
        ``after`` of the next page (None: this was the last). Reads only: no audit event.
        """
        return self.run(workspaces.list_workspaces(limit=limit, after=after))

    # --- identities: the API's customers ---------------------------------------------------

    def find_identity(self, identity_id: str, /) -> IdentityRecord | None:
        """Return the identity with our id ``identity_id`` (the flow's fourth lookup).

        A change through :meth:`run`; SQL backends answer it with one indexed read instead.
        """
        return self.run(identities.get_identity_by_id(identity_id))

    def create_identity(
        self,
        workspace_id: str,
        external_id: str,
        *,
        meta: object = None,
        rate_limit: RateLimitPolicy | None = None,
        now: float,
        actor: Actor,
    ) -> IdentityRecord | None:
        """Create an identity; None: unknown workspace.

        Raises:
            ConflictError: the workspace has an identity with this external id (409).
        """
        return self.run(
            identities.create_identity(
                workspace_id, external_id, meta=meta, rate_limit=rate_limit, now=now, actor=actor
            )
        )

    def get_identity(self, workspace_id: str, external_id: str, /) -> IdentityRecord | None:
        """Return the workspace's identity with ``external_id``."""
        return self.run(identities.get_identity(workspace_id, external_id))

    def list_identities(
        self, workspace_id: str, /, *, limit: int = 50, after: str | None = None
    ) -> IdentityPage:
        """Return one page of the workspace's identities, by external id after ``after``."""
        return self.run(identities.list_identities(workspace_id, limit=limit, after=after))

    def set_identity_rate_limit(
        self,
        workspace_id: str,
        external_id: str,
        policy: RateLimitPolicy | None,
        *,
        now: float,
        actor: Actor,
    ) -> IdentityRecord | None:
        """Set or clear (None) the limit the identity's keys share; None: no such identity."""
        return self.run(
            identities.set_identity_rate_limit(
                workspace_id, external_id, policy, now=now, actor=actor
            )
        )

    def set_identity_meta(
        self, workspace_id: str, external_id: str, meta: object, *, now: float, actor: Actor
    ) -> IdentityRecord | None:
        """Replace or clear (None) the identity's metadata; None: no such identity."""
        return self.run(
            identities.set_identity_meta(workspace_id, external_id, meta, now=now, actor=actor)
        )

    def delete_identity(
        self,
        workspace_id: str,
        external_id: str,
        *,
        revoke_keys: bool = False,
        now: float,
        actor: Actor,
    ) -> IdentityRecord | None:
        """Delete an identity (as it was); None: no such identity.

        Raises:
            ConflictError: live keys remain and ``revoke_keys`` is false (409).
        """
        return self.run(
            identities.delete_identity(
                workspace_id, external_id, revoke_keys=revoke_keys, now=now, actor=actor
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
        rate_limit: RateLimitPolicy | None = None,
        identity: str | None = None,
    ) -> NewRootKey | None:
        """Create a root key; the raw key is in the result, once. None: unknown workspace.

        ``rate_limit`` is the key's own limit, applied on top of the workspace's.

        Raises:
            ClientError: an invalid name, expiry or grant, or ``rate_limit`` not a
                :class:`~authcore.ratelimit.RateLimitPolicy` or None.
        """
        return self.run(
            changes.create_root_key(
                workspace_id,
                permissions=permissions,
                name=name,
                expires_at=expires_at,
                now=now,
                actor=actor,
                prefix=self.root_key_prefix,
                rate_limit=rate_limit,
                identity=identity,
            )
        )

    def list_root_keys(
        self, workspace_id: str, /, *, identity_id: str | None = None
    ) -> list[RootKeyRecord]:
        """Return the workspace's root keys (records only), oldest first; with
        ``identity_id``, only that identity's. All of them: what a caller is shown is
        :meth:`list_root_keys_page`."""
        return self.run(changes.list_root_keys(workspace_id, identity_id=identity_id))

    def list_root_keys_page(
        self,
        workspace_id: str,
        /,
        *,
        identity_id: str | None = None,
        limit: int = DEFAULT_LIST_PAGE,
        after: KeyCursor | None = None,
    ) -> KeyPage:
        """Return one page of the workspace's root keys (one identity's, if set), oldest
        first, after ``after`` (the page before's ``next_cursor``).

        Raises:
            ClientError: ``limit`` not in 1..500, or ``after`` not a :class:`KeyCursor`.
        """
        change = changes.list_root_keys_page(
            workspace_id, identity_id=identity_id, limit=limit, after=after
        )
        return self.run(change)

    def get_root_key(self, key_id: str, /) -> RootKeyRecord | None:
        """Return the root key with id ``key_id``."""
        return self.run(changes.get_root_key(key_id))

    def revoke_root_key(self, key_id: str, *, now: float, actor: Actor) -> RootKeyRecord | None:
        """Revoke a root key and return it; None when unknown. Revoking twice keeps the first."""
        return self.run(changes.revoke_root_key(key_id, now=now, actor=actor))

    def set_key_rate_limit(
        self, key_id: str, policy: RateLimitPolicy | None, *, now: float, actor: Actor
    ) -> RootKeyRecord | None:
        """Set or clear (None) a key's own rate limit; None when the key is unknown."""
        return self.run(changes.set_key_rate_limit(key_id, policy, now=now, actor=actor))

    def rotate_root_key(
        self, key_id: str, *, grace_seconds: int, now: float, actor: Actor
    ) -> NewRootKey | None:
        """Replace a key; the old one lives on for the grace period. None: not rotatable."""
        return self.run(
            changes.rotate_root_key(
                key_id,
                grace_seconds=grace_seconds,
                now=now,
                actor=actor,
                prefix=self.root_key_prefix,
            )
        )

    def create_portal_session(
        self,
        workspace_id: str,
        identity: str,
        *,
        permissions: Sequence[str],
        key_permissions: Sequence[str] = (),
        ttl: int,
        now: float,
        actor: Actor,
        rate_limit: RateLimitPolicy | None = None,
    ) -> NewPortalSession | None:
        """Create a portal session; the raw token is in the result, once. None: no workspace.

        ``rate_limit`` is the session's own limit: at most the actor's own, which it inherits
        when None (a looser one raises :class:`~authcore.errors.PermissionDeniedError`).
        """
        return self.run(
            changes.create_portal_session(
                workspace_id,
                identity,
                permissions=permissions,
                key_permissions=key_permissions,
                ttl=ttl,
                now=now,
                actor=actor,
                rate_limit=rate_limit,
                prefix=self.portal_token_prefix,
            )
        )

    def revoke_portal_session(
        self, session_id: str, *, now: float, actor: Actor
    ) -> PortalSessionRecord | None:
        """Revoke (log out) a portal session and return it; None when unknown."""
        return self.run(changes.revoke_portal_session(session_id, now=now, actor=actor))

    def get_portal_session(self, session_id: str, /) -> PortalSessionRecord | None:
        """Return the portal session with id ``session_id``."""
        return self.run(changes.get_portal_session(session_id))

    def create_portal_exchange(
        self,
        workspace_id: str,
        identity: str,
        *,
        permissions: Sequence[str],
        key_permissions: Sequence[str] = (),
        ttl: int,
        now: float,
        actor: Actor,
        rate_limit: RateLimitPolicy | None = None,
    ) -> NewPortalExchange | None:
        """Create a portal session that starts with a one-time exchange code (shown once).

        ``rate_limit`` is as for :meth:`create_portal_session`.
        """
        return self.run(
            changes.create_portal_exchange(
                workspace_id,
                identity,
                permissions=permissions,
                key_permissions=key_permissions,
                ttl=ttl,
                now=now,
                actor=actor,
                rate_limit=rate_limit,
            )
        )

    def exchange_portal_code(self, code_digest: bytes, /, *, now: float) -> NewPortalSession | None:
        """Spend a code once: the session's token (shown once), or None for any unusable code.

        An unknown, used or expired code is answered from a read: a flood of made-up codes
        never takes a write lock.
        """
        change = changes.exchange_portal_code(code_digest, now=now, prefix=self.portal_token_prefix)
        if exchange_is_spent(self.run(changes.find_portal_exchange(code_digest)), now=now):
            return None
        return self.run(change)

    def append_audit(self, event: AuditEvent, /) -> None:
        """Append an event made elsewhere (e.g. by a handler with ``audit_event``)."""
        return self.run(changes.append_audit(event))

    def list_audit(
        self, workspace_id: str, *, limit: int = 50, before: AuditCursor | None = None
    ) -> AuditPage:
        """Return up to ``limit`` events of the workspace older than ``before``, newest first."""
        return self.run(changes.list_audit(workspace_id, limit=limit, before=before))

    def add_dashboard_user(
        self, user_id: str, org_id: str, password_hash: str, permissions: Sequence[str]
    ) -> DashboardUserRecord:
        """Add a dashboard user (409 if the user id is taken)."""
        return self.run(changes.add_dashboard_user(user_id, org_id, password_hash, permissions))

    def find_dashboard_user(self, user_id: str, /) -> DashboardUserRecord | None:
        """Return the dashboard user ``user_id``."""
        return self.run(changes.find_dashboard_user(user_id))

    def record_usage(self, counts: Sequence[UsageCount], /, *, used_at: int) -> None:
        """Add usage counts to their buckets (see :mod:`authcore.usage`); one transaction."""
        return self.run(usage_changes.record_usage(counts, used_at=used_at))

    def usage(
        self,
        workspace_id: str,
        *,
        credential_id: str | None = None,
        identity_id: str | None = None,
        since: float,
        until: float,
        granularity: str = "hour",
    ) -> list[UsageCount]:
        """Return the workspace's counts per bucket and outcome (or one credential's, or those
        of one identity's root keys summed)."""
        return self.run(
            usage_changes.read_usage(
                workspace_id,
                credential_id=credential_id,
                identity_id=identity_id,
                since=since,
                until=until,
                granularity=granularity,
            )
        )

    def last_used(self, workspace_id: str, /) -> dict[str, int]:
        """Return when each credential of the workspace was last allowed, by id."""
        return self.run(usage_changes.last_used(workspace_id))

    def prune_usage(
        self,
        *,
        now: float,
        rollup_after: int = usage_changes.DEFAULT_ROLLUP_AFTER,
        retention: int = usage_changes.DEFAULT_RETENTION,
    ) -> None:
        """Roll old minute buckets into hours and delete buckets past the retention."""
        return self.run(
            usage_changes.prune_usage(now=now, rollup_after=rollup_after, retention=retention)
        )
