"""The asynchronous twin of :class:`authcore.store.Store`: the management API over ``arun``.

Every method is its sync twin's change, run by the backend's :meth:`AsyncStore.arun`; the
conventions and errors are those in :mod:`authcore.store`, which re-exports this class.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import TYPE_CHECKING, TypeVar

from authcore import changes, identities, workspaces
from authcore import usage as usage_changes
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

__all__ = ["AsyncStore"]

_R = TypeVar("_R")


class AsyncStore(abc.ABC):
    """Asynchronous twin of :class:`~authcore.store.Store`: same arguments, results and errors."""

    #: Prefix of the root keys this store issues (a backend option).
    root_key_prefix: str = DEFAULT_ROOT_KEY_PREFIX
    #: Prefix of the portal tokens this store issues (a backend option).
    portal_token_prefix: str = DEFAULT_PORTAL_TOKEN_PREFIX

    @abc.abstractmethod
    async def afind_root_key(self, digest: bytes, /) -> RootKeyRecord | None:
        """Async twin of :meth:`Store.find_root_key`."""

    @abc.abstractmethod
    async def afind_portal_session(self, digest: bytes, /) -> PortalSessionRecord | None:
        """Async twin of :meth:`Store.find_portal_session`."""

    @abc.abstractmethod
    async def afind_workspace(self, workspace_id: str, /) -> WorkspaceRecord | None:
        """Async twin of :meth:`Store.find_workspace`."""

    @abc.abstractmethod
    async def arun(self, change: Change[_R], /) -> _R:
        """Async twin of :meth:`Store.run`."""

    async def acreate_workspace(
        self,
        name: str,
        *,
        org_id: str | None = None,
        rate_limit: RateLimitPolicy | None = None,
        now: float,
        actor: Actor,
    ) -> WorkspaceRecord:
        """Async twin of :meth:`Store.create_workspace`."""
        return await self.arun(
            changes.create_workspace(
                name, org_id=org_id, rate_limit=rate_limit, now=now, actor=actor
            )
        )

    async def adisable_workspace(
        self, workspace_id: str, *, now: float, actor: Actor
    ) -> WorkspaceRecord | None:
        """Async twin of :meth:`Store.disable_workspace`."""
        return await self.arun(changes.disable_workspace(workspace_id, now=now, actor=actor))

    async def aenable_workspace(
        self, workspace_id: str, *, now: float, actor: Actor
    ) -> WorkspaceRecord | None:
        """Async twin of :meth:`Store.enable_workspace`."""
        return await self.arun(changes.enable_workspace(workspace_id, now=now, actor=actor))

    async def aset_rate_limit(
        self, workspace_id: str, policy: RateLimitPolicy | None, *, now: float, actor: Actor
    ) -> WorkspaceRecord | None:
        """Async twin of :meth:`Store.set_rate_limit`."""
        return await self.arun(changes.set_rate_limit(workspace_id, policy, now=now, actor=actor))

    async def alink_org(
        self, workspace_id: str, org_id: str, *, now: float, actor: Actor
    ) -> WorkspaceRecord | None:
        """Async twin of :meth:`Store.link_org`."""
        return await self.arun(changes.link_org(workspace_id, org_id, now=now, actor=actor))

    async def afind_workspace_by_org(self, org_id: str, /) -> WorkspaceRecord | None:
        """Async twin of :meth:`Store.find_workspace_by_org`."""
        return await self.arun(changes.find_workspace_by_org(org_id))

    async def alist_workspaces(
        self, *, limit: int = DEFAULT_LIST_PAGE, after: str | None = None
    ) -> WorkspacePage:
        """Async twin of :meth:`Store.list_workspaces`."""
        return await self.arun(workspaces.list_workspaces(limit=limit, after=after))

    # --- identities: the API's customers ---------------------------------------------------

    async def afind_identity(self, identity_id: str, /) -> IdentityRecord | None:
        """Async twin of :meth:`Store.find_identity`."""
        return await self.arun(identities.get_identity_by_id(identity_id))

    async def acreate_identity(
        self,
        workspace_id: str,
        external_id: str,
        *,
        meta: object = None,
        rate_limit: RateLimitPolicy | None = None,
        now: float,
        actor: Actor,
    ) -> IdentityRecord | None:
        """Async twin of :meth:`Store.create_identity`."""
        return await self.arun(
            identities.create_identity(
                workspace_id, external_id, meta=meta, rate_limit=rate_limit, now=now, actor=actor
            )
        )

    async def aget_identity(self, workspace_id: str, external_id: str, /) -> IdentityRecord | None:
        """Async twin of :meth:`Store.get_identity`."""
        return await self.arun(identities.get_identity(workspace_id, external_id))

    async def alist_identities(
        self, workspace_id: str, /, *, limit: int = 50, after: str | None = None
    ) -> IdentityPage:
        """Async twin of :meth:`Store.list_identities`."""
        return await self.arun(identities.list_identities(workspace_id, limit=limit, after=after))

    async def aset_identity_rate_limit(
        self,
        workspace_id: str,
        external_id: str,
        policy: RateLimitPolicy | None,
        *,
        now: float,
        actor: Actor,
    ) -> IdentityRecord | None:
        """Async twin of :meth:`Store.set_identity_rate_limit`."""
        return await self.arun(
            identities.set_identity_rate_limit(
                workspace_id, external_id, policy, now=now, actor=actor
            )
        )

    async def aset_identity_meta(
        self, workspace_id: str, external_id: str, meta: object, *, now: float, actor: Actor
    ) -> IdentityRecord | None:
        """Async twin of :meth:`Store.set_identity_meta`."""
        return await self.arun(
            identities.set_identity_meta(workspace_id, external_id, meta, now=now, actor=actor)
        )

    async def adelete_identity(
        self,
        workspace_id: str,
        external_id: str,
        *,
        revoke_keys: bool = False,
        now: float,
        actor: Actor,
    ) -> IdentityRecord | None:
        """Async twin of :meth:`Store.delete_identity`."""
        return await self.arun(
            identities.delete_identity(
                workspace_id, external_id, revoke_keys=revoke_keys, now=now, actor=actor
            )
        )

    async def acreate_root_key(
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
        """Async twin of :meth:`Store.create_root_key`."""
        return await self.arun(
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

    async def alist_root_keys(
        self, workspace_id: str, /, *, identity_id: str | None = None
    ) -> list[RootKeyRecord]:
        """Async twin of :meth:`Store.list_root_keys`."""
        return await self.arun(changes.list_root_keys(workspace_id, identity_id=identity_id))

    async def alist_root_keys_page(
        self,
        workspace_id: str,
        /,
        *,
        identity_id: str | None = None,
        limit: int = DEFAULT_LIST_PAGE,
        after: KeyCursor | None = None,
    ) -> KeyPage:
        """Async twin of :meth:`Store.list_root_keys_page`."""
        change = changes.list_root_keys_page(
            workspace_id, identity_id=identity_id, limit=limit, after=after
        )
        return await self.arun(change)

    async def aget_root_key(self, key_id: str, /) -> RootKeyRecord | None:
        """Async twin of :meth:`Store.get_root_key`."""
        return await self.arun(changes.get_root_key(key_id))

    async def arevoke_root_key(
        self, key_id: str, *, now: float, actor: Actor
    ) -> RootKeyRecord | None:
        """Async twin of :meth:`Store.revoke_root_key`."""
        return await self.arun(changes.revoke_root_key(key_id, now=now, actor=actor))

    async def aset_key_rate_limit(
        self, key_id: str, policy: RateLimitPolicy | None, *, now: float, actor: Actor
    ) -> RootKeyRecord | None:
        """Async twin of :meth:`Store.set_key_rate_limit`."""
        return await self.arun(changes.set_key_rate_limit(key_id, policy, now=now, actor=actor))

    async def arotate_root_key(
        self, key_id: str, *, grace_seconds: int, now: float, actor: Actor
    ) -> NewRootKey | None:
        """Async twin of :meth:`Store.rotate_root_key`."""
        return await self.arun(
            changes.rotate_root_key(
                key_id,
                grace_seconds=grace_seconds,
                now=now,
                actor=actor,
                prefix=self.root_key_prefix,
            )
        )

    async def acreate_portal_session(
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
        """Async twin of :meth:`Store.create_portal_session`."""
        return await self.arun(
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

    async def arevoke_portal_session(
        self, session_id: str, *, now: float, actor: Actor
    ) -> PortalSessionRecord | None:
        """Async twin of :meth:`Store.revoke_portal_session`."""
        return await self.arun(changes.revoke_portal_session(session_id, now=now, actor=actor))

    async def aget_portal_session(self, session_id: str, /) -> PortalSessionRecord | None:
        """Async twin of :meth:`Store.get_portal_session`."""
        return await self.arun(changes.get_portal_session(session_id))

    async def acreate_portal_exchange(
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
        """Async twin of :meth:`Store.create_portal_exchange`."""
        return await self.arun(
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

    async def aexchange_portal_code(
        self, code_digest: bytes, /, *, now: float
    ) -> NewPortalSession | None:
        """Async twin of :meth:`Store.exchange_portal_code`."""
        change = changes.exchange_portal_code(code_digest, now=now, prefix=self.portal_token_prefix)
        if exchange_is_spent(await self.arun(changes.find_portal_exchange(code_digest)), now=now):
            return None
        return await self.arun(change)

    async def aappend_audit(self, event: AuditEvent, /) -> None:
        """Async twin of :meth:`Store.append_audit`."""
        return await self.arun(changes.append_audit(event))

    async def alist_audit(
        self, workspace_id: str, *, limit: int = 50, before: AuditCursor | None = None
    ) -> AuditPage:
        """Async twin of :meth:`Store.list_audit`."""
        return await self.arun(changes.list_audit(workspace_id, limit=limit, before=before))

    async def aadd_dashboard_user(
        self, user_id: str, org_id: str, password_hash: str, permissions: Sequence[str]
    ) -> DashboardUserRecord:
        """Async twin of :meth:`Store.add_dashboard_user`."""
        return await self.arun(
            changes.add_dashboard_user(user_id, org_id, password_hash, permissions)
        )

    async def afind_dashboard_user(self, user_id: str, /) -> DashboardUserRecord | None:
        """Async twin of :meth:`Store.find_dashboard_user`."""
        return await self.arun(changes.find_dashboard_user(user_id))

    async def arecord_usage(self, counts: Sequence[UsageCount], /, *, used_at: int) -> None:
        """Async twin of :meth:`Store.record_usage`."""
        return await self.arun(usage_changes.record_usage(counts, used_at=used_at))

    async def ausage(
        self,
        workspace_id: str,
        *,
        credential_id: str | None = None,
        identity_id: str | None = None,
        since: float,
        until: float,
        granularity: str = "hour",
    ) -> list[UsageCount]:
        """Async twin of :meth:`Store.usage`."""
        return await self.arun(
            usage_changes.read_usage(
                workspace_id,
                credential_id=credential_id,
                identity_id=identity_id,
                since=since,
                until=until,
                granularity=granularity,
            )
        )

    async def alast_used(self, workspace_id: str, /) -> dict[str, int]:
        """Async twin of :meth:`Store.last_used`."""
        return await self.arun(usage_changes.last_used(workspace_id))

    async def aprune_usage(
        self,
        *,
        now: float,
        rollup_after: int = usage_changes.DEFAULT_ROLLUP_AFTER,
        retention: int = usage_changes.DEFAULT_RETENTION,
    ) -> None:
        """Async twin of :meth:`Store.prune_usage`."""
        return await self.arun(
            usage_changes.prune_usage(now=now, rollup_after=rollup_after, retention=retention)
        )
