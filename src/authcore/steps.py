"""The transaction protocol of management: the steps a change yields, and how it is run.

A change (:mod:`authcore.changes`, :mod:`authcore.usage`) is a generator that yields *steps*
and receives each step's result, the way :mod:`authcore.flow` yields its needs. The steps are
the whole protocol a backend implements:

=========================  =================================================================
step                       what the backend does, inside the change's one transaction
=========================  =================================================================
:class:`Load`              read one record by id (or digest); with ``lock``, hold it (row
                           lock or write lock) until the change commits
:class:`ListRootKeys`      read a workspace's keys (or one identity's), oldest first; a page
:class:`FindIdentity`      read a workspace's identity by its external id (``lock``: hold it)
:class:`EnsureIdentity`    add an identity unless its external id is taken; read the stored one
:class:`ListIdentities`    read one page of a workspace's identities, by external id
:class:`ListPortalSessions` read an identity's portal sessions
:class:`ListWorkspaces`    read one page of all workspaces, by id
:class:`ListAudit`         read one page of a workspace's audit events, newest first
:class:`Insert`            add a record (``conflict``: a taken unique value raises
                           :class:`~authcore.errors.ConflictError` with that message)
:class:`Update`            replace the stored record that has this record's id
:class:`Delete`            remove the stored record that has this record's id (identities)
:class:`Append`            add an audit event
:class:`PruneExchanges`    forget portal exchange codes that expired by then
:class:`AddUsage`,         usage counts: add to a bucket, note a credential's last use,
:class:`MarkUsed`,         read, roll minutes up into hours, delete old buckets
:class:`ReadUsage`, ...
=========================  =================================================================

A backend runs a change with :func:`drive` (or :func:`adrive`) in one transaction (a write
transaction when :attr:`Change.writes`): every write and the audit event commit together or
not at all. A change never reads what it wrote itself, so a backend may apply its writes at
the end.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any, Generic, Literal, TypeAlias, TypeVar

import attrs

from authcore.audit import AuditEvent
from authcore.records import AuditCursor, IdentityRecord, KeyCursor, Record, UsageCount

__all__ = [
    "AddUsage",
    "Append",
    "Change",
    "Delete",
    "DeleteUsage",
    "EnsureIdentity",
    "FindIdentity",
    "Insert",
    "ListAudit",
    "ListIdentities",
    "ListPortalSessions",
    "ListRootKeys",
    "ListWorkspaces",
    "Load",
    "MarkUsed",
    "PruneExchanges",
    "ReadLastUsed",
    "ReadUsage",
    "RollUpUsage",
    "Step",
    "Steps",
    "Table",
    "Update",
    "adrive",
    "drive",
]

_R = TypeVar("_R")


#: What :class:`Load` can read: a table, and for ``workspace_by_org`` the index it reads by.
Table: TypeAlias = Literal[
    "workspace",
    "workspace_by_org",
    "identity",
    "root_key",
    "portal_session",
    "portal_exchange",
    "dashboard_user",
]


@attrs.frozen
class Load:
    """Read one record (or None) by id; a portal exchange by its code's digest.

    With ``lock``, the record is held for the rest of the change: a concurrent change that
    locks it waits until this one commits, then reads what it wrote.
    """

    table: Table
    key: str | bytes = attrs.field(repr=False)
    lock: bool = False


@attrs.frozen
class ListRootKeys:
    """Read the workspace's root keys (records only), oldest first by ``(created_at, id)``:
    a ``list``.

    With ``identity_id``, only that identity's keys; with ``after``, only those after it in
    that order; with ``limit``, at most that many (None: all).
    """

    workspace_id: str
    identity_id: str | None = None
    limit: int | None = None
    after: KeyCursor | None = None


@attrs.frozen
class FindIdentity:
    """Read the workspace's identity with ``external_id`` (or None); ``lock`` as for Load."""

    workspace_id: str
    external_id: str
    lock: bool = False


@attrs.frozen
class EnsureIdentity:
    """Add ``record`` unless its workspace has an identity with its external id already.

    The result is the identity stored once the change commits: ``record`` itself, or the one
    that was there (two changes racing to create one identity both get the same); the change
    may name it in what it writes next (a key's ``identity_id``).
    """

    record: IdentityRecord


@attrs.frozen
class ListIdentities:
    """Read up to ``limit`` identities of the workspace whose external id sorts after
    ``after`` (None: from the first), in external-id order: a ``list``."""

    workspace_id: str
    limit: int
    after: str | None = None


@attrs.frozen
class ListPortalSessions:
    """Read the identity's portal sessions (records only), oldest first: a ``list``."""

    workspace_id: str
    identity_id: str


@attrs.frozen
class ListWorkspaces:
    """Read up to ``limit`` workspaces whose id sorts after ``after`` (None: from the first),
    in id order by code point: a ``list``."""

    limit: int
    after: str | None = None


@attrs.frozen
class ListAudit:
    """Read up to ``limit`` events of the workspace older than ``before``: an ``AuditPage``."""

    workspace_id: str
    limit: int
    before: AuditCursor | None


@attrs.frozen
class Insert:
    """Add ``record``; a taken unique value raises ``ConflictError(conflict)`` when set."""

    record: Record
    conflict: str | None = None


@attrs.frozen
class Update:
    """Replace the stored record with ``record``'s id (and table) by ``record``."""

    record: Record
    conflict: str | None = None


@attrs.frozen
class Delete:
    """Remove the stored record with ``record``'s id (and table); only identities are deleted."""

    record: IdentityRecord


@attrs.frozen
class Append:
    """Add an audit event, in the same transaction as the change it records."""

    event: AuditEvent


@attrs.frozen
class PruneExchanges:
    """Forget the portal exchange codes that expired at or before ``now`` (they never work)."""

    now: int


@attrs.frozen
class AddUsage:
    """Add ``usage.count`` to its bucket (created at zero when absent)."""

    usage: UsageCount


@attrs.frozen
class MarkUsed:
    """Record that a credential was allowed at ``at``; an earlier time never replaces a later."""

    workspace_id: str
    credential_id: str
    at: int


@attrs.frozen
class ReadUsage:
    """Read a workspace's counts in ``[since, until)``: one credential's when
    ``credential_id`` is set, the workspace's root keys of one identity (revoked ones too)
    when ``identity_id`` is; never both.

    The result is a ``list`` of :class:`~authcore.records.UsageCount` summed per ``span``-wide
    bucket and outcome, oldest first.
    """

    workspace_id: str
    credential_id: str | None
    since: int
    until: int
    span: int
    identity_id: str | None = None


@attrs.frozen
class ReadLastUsed:
    """Read when each credential of the workspace was last allowed: ``dict[id, time]``."""

    workspace_id: str


@attrs.frozen
class RollUpUsage:
    """Add the minute buckets that start before ``before`` into their hour buckets."""

    before: int


@attrs.frozen
class DeleteUsage:
    """Delete the ``span``-wide buckets that start before ``before``."""

    span: int
    before: int


#: One step of a change.
Step: TypeAlias = (
    Load
    | ListRootKeys
    | ListAudit
    | FindIdentity
    | EnsureIdentity
    | ListIdentities
    | ListPortalSessions
    | ListWorkspaces
    | Insert
    | Update
    | Delete
    | Append
    | PruneExchanges
    | AddUsage
    | MarkUsed
    | ReadUsage
    | ReadLastUsed
    | RollUpUsage
    | DeleteUsage
)

#: What a change is made of: a generator of steps, fed each step's result.
Steps: TypeAlias = Generator[Step, Any, _R]


@attrs.frozen
class Change(Generic[_R]):
    """One management operation ready to run: its steps, and whether it writes.

    A backend runs ``steps`` with :func:`drive` in one transaction (a write transaction
    when ``writes``). A change runs once.
    """

    name: str
    steps: Steps[_R] = attrs.field(repr=False)
    writes: bool = True


def drive(change: Change[_R], perform: Callable[[Step], object]) -> _R:
    """Run ``change``, feeding it what ``perform`` returns for each step."""
    steps = change.steps
    try:
        step = next(steps)
        while True:
            step = steps.send(perform(step))
    except StopIteration as stop:
        result: _R = stop.value
        return result
    finally:
        steps.close()


async def adrive(change: Change[_R], perform: Callable[[Step], Awaitable[object]]) -> _R:
    """Async twin of :func:`drive`: the same changes, an awaiting ``perform``."""
    steps = change.steps
    try:
        step = next(steps)
        while True:
            result = await perform(step)
            step = steps.send(result)
    except StopIteration as stop:
        value: _R = stop.value
        return value
    finally:
        steps.close()
