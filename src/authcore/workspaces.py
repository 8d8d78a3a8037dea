"""Workspaces read a page at a time: how an operator finds a workspace id again.

The changes that write a workspace (create, disable, enable, limit, link an org) live in
:mod:`authcore.changes`; this is the one read over all of them, kept here so that module
stays one idea. Like it, the function here decides without I/O: a backend runs the change.

Workspaces are listed by id in code-point order, on every backend, so a page's ``next_after``
means the same to memory, SQLite and PostgreSQL.
"""

from __future__ import annotations

from authcore.identities import check_list_limit
from authcore.plans import check_id
from authcore.records import DEFAULT_LIST_PAGE, WorkspacePage, WorkspaceRecord
from authcore.steps import Change, ListWorkspaces, Steps

__all__ = ["list_workspaces"]


def list_workspaces(
    *, limit: int = DEFAULT_LIST_PAGE, after: str | None = None
) -> Change[WorkspacePage]:
    """Read one page of the workspaces, by id, after the workspace id ``after``.

    Reads only: no audit event is written.

    Raises:
        ClientError: ``limit`` not in 1..500, or ``after`` not a usable id.
    """
    size = check_list_limit(limit)
    start = None if after is None else check_id(after, "after")
    return Change("list_workspaces", _page(size, start), writes=False)


def _page(limit: int, after: str | None) -> Steps[WorkspacePage]:
    # One more than the page, to know whether another follows.
    found: list[WorkspaceRecord] = yield ListWorkspaces(limit + 1, after)
    page = tuple(found[:limit])
    return WorkspacePage(page, page[-1].id if len(found) > limit else None)
