"""The usage steps as SQL: add to a bucket, note a last use, read, roll up, delete.

One statement per step, like every other step (:func:`authcore.backends._sql.translate`);
kept apart because usage is its own table family (``usage_counts``, ``credential_last_used``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, TypeAlias

from authcore.backends import _rows
from authcore.steps import AddUsage, DeleteUsage, MarkUsed, ReadLastUsed, ReadUsage, RollUpUsage

__all__ = ["usage_statement"]

Rows: TypeAlias = list[tuple[Any, ...]]


def _nothing(rows: Rows) -> None:
    return None


_ADD_USAGE: Final = (
    "INSERT INTO usage_counts (workspace_id, credential_id, outcome, span, bucket, count)"
    " VALUES (?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (workspace_id, span, bucket, credential_id, outcome)"
    " DO UPDATE SET count = usage_counts.count + excluded.count"
)
_MARK_USED: Final = (
    "INSERT INTO credential_last_used (credential_id, workspace_id, last_used_at)"
    " VALUES (?, ?, ?) ON CONFLICT (workspace_id, credential_id) DO UPDATE SET"
    " last_used_at = {greatest}(credential_last_used.last_used_at, excluded.last_used_at)"
)
# Minute and hour rows both: a range that reaches past the roll-up age reads the hours there.
_READ_USAGE: Final = (
    "SELECT bucket - bucket % ? AS start, outcome, SUM(count) FROM usage_counts"
    " WHERE workspace_id = ? AND bucket >= ? AND bucket < ?"
    " GROUP BY start, outcome ORDER BY start, outcome"
)
_READ_KEY_USAGE: Final = (
    "SELECT bucket - bucket % ? AS start, outcome, SUM(count) FROM usage_counts"
    " WHERE workspace_id = ? AND credential_id = ? AND bucket >= ? AND bucket < ?"
    " GROUP BY start, outcome ORDER BY start, outcome"
)
# One statement however many keys the identity has: the keys come from root_keys' identity
# index, and each key's rows from usage_counts_credential (credential_id, bucket), so the read
# costs the identity's own rows in the window. The workspace is the keys' (a key's usage is
# only ever counted in its own workspace); naming usage_counts.workspace_id as well would make
# SQLite scan the whole workspace through the primary key instead.
_READ_IDENTITY_USAGE: Final = (
    "SELECT bucket - bucket % ? AS start, outcome, SUM(count) FROM usage_counts"
    " WHERE credential_id IN"
    " (SELECT id FROM root_keys WHERE identity_id = ? AND workspace_id = ?)"
    " AND bucket >= ? AND bucket < ?"
    " GROUP BY start, outcome ORDER BY start, outcome"
)
_READ_LAST_USED: Final = (
    "SELECT credential_id, last_used_at FROM credential_last_used WHERE workspace_id = ?"
)
_ROLL_UP_USAGE: Final = (
    "INSERT INTO usage_counts (workspace_id, credential_id, outcome, span, bucket, count)"
    " SELECT workspace_id, credential_id, outcome, 3600, bucket - bucket % 3600, SUM(count)"
    " FROM usage_counts WHERE span = 60 AND bucket < ?"
    " GROUP BY workspace_id, credential_id, outcome, bucket - bucket % 3600"
    " ON CONFLICT (workspace_id, span, bucket, credential_id, outcome)"
    " DO UPDATE SET count = usage_counts.count + excluded.count"
)
_DELETE_USAGE: Final = "DELETE FROM usage_counts WHERE span = ? AND bucket < ?"


def usage_statement(
    step: AddUsage | MarkUsed | ReadUsage | ReadLastUsed | RollUpUsage | DeleteUsage,
) -> tuple[str, tuple[object, ...], Callable[[Rows], object]]:
    """The SQL, parameters and row reader of one usage step."""
    if isinstance(step, AddUsage):
        usage = step.usage
        added = (
            usage.workspace_id,
            usage.credential_id,
            usage.outcome,
            usage.span,
            usage.bucket,
            usage.count,
        )
        return _ADD_USAGE, added, _nothing
    if isinstance(step, MarkUsed):
        return _MARK_USED, (step.credential_id, step.workspace_id, step.at), _nothing
    if isinstance(step, ReadUsage):
        span = step.span
        params: tuple[object, ...]
        if step.identity_id is not None:
            sql = _READ_IDENTITY_USAGE
            params = (span, step.identity_id, step.workspace_id, step.since, step.until)
        elif step.credential_id is None:
            sql, params = _READ_USAGE, (span, step.workspace_id, step.since, step.until)
        else:
            sql = _READ_KEY_USAGE
            params = (span, step.workspace_id, step.credential_id, step.since, step.until)
        return (
            sql,
            params,
            lambda rows: _rows.usage_from_rows(rows, step.workspace_id, step.credential_id, span),
        )
    if isinstance(step, ReadLastUsed):
        return _READ_LAST_USED, (step.workspace_id,), _rows.last_used_from_rows
    if isinstance(step, RollUpUsage):
        return _ROLL_UP_USAGE, (step.before,), _nothing
    return _DELETE_USAGE, (step.span, step.before), _nothing
