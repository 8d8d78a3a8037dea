"""Who acts through the proxy: the dashboard session, its workspace, and the seams that find them.

The dashboard's own session store and the workspace lookup are I/O, so they are injected as
protocols (sync and async twins); :func:`check_identity` decides on what they returned.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import attrs

from authcore.errors import DashboardSessionRequiredError, WorkspaceUnavailableError
from authcore.proxy._settings import str_tuple
from authcore.records import WorkspaceRecord

__all__ = [
    "AsyncDashboardSessionVerifier",
    "AsyncWorkspaceResolver",
    "DashboardSession",
    "DashboardSessionVerifier",
    "WorkspaceResolver",
    "check_identity",
]


@attrs.frozen
class DashboardSession:
    """A verified dashboard session: who the user is and what they may do."""

    user_id: str
    org_id: str
    permissions: tuple[str, ...] = attrs.field(converter=str_tuple)
    display_name: str | None = None


class DashboardSessionVerifier(Protocol):
    """Turn the request's ``Cookie`` header values into a verified session, or None."""

    def verify_session(self, cookie_headers: Sequence[str], /) -> DashboardSession | None: ...


class AsyncDashboardSessionVerifier(Protocol):
    """Asynchronous twin of :class:`DashboardSessionVerifier` (what the ASGI app uses)."""

    async def averify_session(
        self, cookie_headers: Sequence[str], /
    ) -> DashboardSession | None: ...


class WorkspaceResolver(Protocol):
    """Map an organization id to its workspace, or None. Raise ``UnavailableError`` if down."""

    def resolve_workspace(self, org_id: str, /) -> WorkspaceRecord | None: ...


class AsyncWorkspaceResolver(Protocol):
    """Asynchronous twin of :class:`WorkspaceResolver`."""

    async def aresolve_workspace(self, org_id: str, /) -> WorkspaceRecord | None: ...


def check_identity(
    session: DashboardSession | None, workspace: WorkspaceRecord | None
) -> tuple[DashboardSession, WorkspaceRecord]:
    """Return the session and its workspace if the user may act through the proxy.

    Raises:
        DashboardSessionRequiredError: ``session`` is None (401).
        WorkspaceUnavailableError: no workspace, a disabled one, or another org's (403).
    """
    if session is None:
        raise DashboardSessionRequiredError
    if workspace is None:
        raise WorkspaceUnavailableError("no workspace for the organization")
    if workspace.disabled:
        raise WorkspaceUnavailableError("workspace disabled")
    if workspace.org_id is not None and workspace.org_id != session.org_id:
        raise WorkspaceUnavailableError("workspace belongs to another organization")
    return session, workspace
