"""What the core needs from storage: records, and the protocols that find them.

Backends (``authcore.backends``) implement these protocols in sync/async twins. A record is
what a store found for a digest or id; the core decides what it means (see
:mod:`authcore.principal`). Stores keep only digests, never a raw key or token. All times are
whole seconds since the epoch.
"""

from __future__ import annotations

from typing import Protocol

import attrs

from authcore.ratelimit import RateLimitPolicy

__all__ = [
    "AsyncCredentialStore",
    "CredentialStore",
    "PortalSessionRecord",
    "RootKeyRecord",
    "WorkspaceRecord",
]


def _tuple_of_str(value: object) -> tuple[str, ...]:
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


@attrs.frozen
class RootKeyRecord:
    """A stored root key: its digest and metadata, never the key."""

    id: str
    workspace_id: str
    digest: bytes = attrs.field(repr=False)
    start: str
    name: str | None
    permissions: tuple[str, ...] = attrs.field(converter=_tuple_of_str)
    created_at: int
    expires_at: int | None = None
    revoked_at: int | None = None


@attrs.frozen
class PortalSessionRecord:
    """A stored portal session for an end user, by digest of its token."""

    id: str
    workspace_id: str
    end_user_id: str
    digest: bytes = attrs.field(repr=False)
    permissions: tuple[str, ...] = attrs.field(converter=_tuple_of_str)
    created_at: int
    expires_at: int
    revoked_at: int | None = None


class CredentialStore(Protocol):
    """Synchronous lookups used by verification. Raise ``UnavailableError`` when down."""

    def find_root_key(self, digest: bytes, /) -> RootKeyRecord | None: ...

    def find_portal_session(self, digest: bytes, /) -> PortalSessionRecord | None: ...

    def find_workspace(self, workspace_id: str, /) -> WorkspaceRecord | None: ...


class AsyncCredentialStore(Protocol):
    """Asynchronous twin of :class:`CredentialStore`."""

    async def afind_root_key(self, digest: bytes, /) -> RootKeyRecord | None: ...

    async def afind_portal_session(self, digest: bytes, /) -> PortalSessionRecord | None: ...

    async def afind_workspace(self, workspace_id: str, /) -> WorkspaceRecord | None: ...
