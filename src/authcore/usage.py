"""Usage: every authentication outcome counted in memory, flushed in batches, read back.

The request path pays one dictionary increment (:meth:`UsageCounter.count`, under a lock it
holds for that increment only): no clock, no I/O, no write per request. A recorder
(:class:`authcore.backends.usage_recorder.UsageRecorder`) drains the counter every few
seconds and at every minute boundary and adds the counts to the store with
:func:`record_usage`: one upsert per (workspace, credential, outcome, minute), so any
number of API processes add up. A key's "last used" comes from the same flush, at minute
precision.

Counts are per workspace, credential id and outcome (``"allowed"`` or the refusal's error
code). A credential that was never verified counts as ``("", "", outcome)``: a flood of bogus
tokens is one row, not one per token. Losing a process loses what it counted since its last
flush (one flush interval, 5 seconds by default).

Retention (:func:`prune_usage`): minute buckets older than ``rollup_after`` (a day) are added
into hour buckets and deleted; every bucket older than ``retention`` (30 days) is deleted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, Literal, Protocol

from authcore.errors import ClientError
from authcore.records import UsageCount
from authcore.steps import (
    AddUsage,
    Change,
    DeleteUsage,
    MarkUsed,
    ReadLastUsed,
    ReadUsage,
    RollUpUsage,
    Steps,
)

__all__ = [
    "ALLOWED",
    "DEFAULT_RETENTION",
    "DEFAULT_ROLLUP_AFTER",
    "GRANULARITIES",
    "MAX_BUCKETS",
    "Granularity",
    "UsageSink",
    "last_used",
    "prune_usage",
    "read_usage",
    "record_usage",
    "summarize",
]

#: The outcome of an admitted request.
ALLOWED: Final = "allowed"
#: Minute buckets older than this many seconds are rolled up into hours (one day).
DEFAULT_ROLLUP_AFTER: Final = 86_400
#: Buckets older than this many seconds are deleted (30 days).
DEFAULT_RETENTION: Final = 30 * 86_400
#: Most buckets one read may span (a week of minutes is 10,080).
MAX_BUCKETS: Final = 20_000

Granularity = Literal["minute", "hour", "day"]
#: Bucket width in seconds of each granularity.
GRANULARITIES: Final[dict[str, int]] = {"minute": 60, "hour": 3600, "day": 86_400}

_MAX_TIME: Final = 2**53


class UsageSink(Protocol):
    """Where the request gate counts outcomes (``backends.usage_recorder.UsageCounter``).

    ``count`` is on every request's path: one increment, no I/O, never raising.
    """

    def count(self, key: tuple[str, str, str], /) -> None:
        """Count one ``(workspace_id, credential_id, outcome)``."""


def _time(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ClientError(f"{what} must be seconds since the epoch")
    if not 0 <= value < _MAX_TIME:
        raise ClientError(f"{what} must be seconds since the epoch")
    return int(value)


def record_usage(counts: Sequence[UsageCount], *, used_at: int) -> Change[None]:
    """Add ``counts`` to their buckets; each credential allowed among them was used at
    ``used_at``. One transaction: a flush is stored whole or not at all."""

    def steps() -> Steps[None]:
        for usage in counts:
            yield AddUsage(usage)
        seen: set[tuple[str, str]] = set()
        for usage in counts:
            pair = (usage.workspace_id, usage.credential_id)
            if usage.outcome == ALLOWED and usage.credential_id and pair not in seen:
                seen.add(pair)
                yield MarkUsed(usage.workspace_id, usage.credential_id, used_at)

    return Change("record_usage", steps())


def read_usage(
    workspace_id: str,
    *,
    credential_id: str | None = None,
    identity_id: str | None = None,
    since: float,
    until: float,
    granularity: str = "hour",
) -> Change[list[UsageCount]]:
    """Read counts in ``[since, until)`` summed per ``granularity`` bucket and outcome.

    The workspace's, one credential's (``credential_id``), or the sum over the root keys of one
    identity (``identity_id``: the keys that name it, revoked ones included; one read however
    many keys it has). ``since`` is rounded down and ``until`` up to whole buckets. Minute
    buckets older than the roll-up age are gone: ask for ``hour`` or ``day`` there.

    Raises:
        ClientError: an unknown granularity, ``since`` not before ``until``, a range over
            :data:`MAX_BUCKETS` buckets, or both ``credential_id`` and ``identity_id``.
    """
    if credential_id is not None and identity_id is not None:
        raise ClientError("credential_id and identity_id exclude each other")
    span = GRANULARITIES.get(granularity) if isinstance(granularity, str) else None
    if span is None:
        raise ClientError("granularity must be minute, hour or day")
    start, end = _time(since, "since"), _time(until, "until")
    # Before rounding: rounded out to whole buckets, a reversed window would become one bucket.
    if start >= end:
        raise ClientError("since must be before until")
    start -= start % span
    end += -end % span
    if (end - start) // span > MAX_BUCKETS:
        raise ClientError(f"at most {MAX_BUCKETS} buckets per read")

    def steps() -> Steps[list[UsageCount]]:
        found: list[UsageCount] = yield ReadUsage(
            workspace_id, credential_id, start, end, span, identity_id
        )
        return found

    return Change("read_usage", steps(), writes=False)


def last_used(workspace_id: str) -> Change[dict[str, int]]:
    """Read when each credential of the workspace was last allowed (minute precision)."""

    def steps() -> Steps[dict[str, int]]:
        found: dict[str, int] = yield ReadLastUsed(workspace_id)
        return found

    return Change("last_used", steps(), writes=False)


def prune_usage(
    *,
    now: float,
    rollup_after: int = DEFAULT_ROLLUP_AFTER,
    retention: int = DEFAULT_RETENTION,
) -> Change[None]:
    """Roll minute buckets older than ``rollup_after`` into hours; delete what is older than
    ``retention``.

    Raises:
        ClientError: ``rollup_after`` not in 1 hour..``retention``, or ``retention`` over a
            year.
    """
    seconds = _time(now, "now")
    if isinstance(retention, bool) or not isinstance(retention, int):
        raise ClientError("retention must be whole seconds")
    if not 3600 <= retention <= 366 * 86_400:
        raise ClientError("retention must be between an hour and a year")
    if isinstance(rollup_after, bool) or not isinstance(rollup_after, int):
        raise ClientError("rollup_after must be whole seconds")
    if not 3600 <= rollup_after <= retention:
        raise ClientError("rollup_after must be between an hour and the retention")
    # Whole hours only: an hour is rolled up once its last minute is old enough.
    boundary = seconds - rollup_after
    boundary -= boundary % 3600
    oldest = seconds - retention

    def steps() -> Steps[None]:
        yield RollUpUsage(boundary)
        yield DeleteUsage(60, boundary)
        yield DeleteUsage(60, oldest)
        yield DeleteUsage(3600, oldest)

    return Change("prune_usage", steps())


def summarize(counts: Sequence[UsageCount]) -> dict[str, Any]:
    """The JSON-ready shape every reader shows: buckets oldest first, each with its count per
    outcome, and the totals per outcome (``{"buckets": [{"start", "outcomes"}], "totals"}``).
    """
    buckets: dict[int, dict[str, int]] = {}
    totals: dict[str, int] = {}
    for count in counts:
        buckets.setdefault(count.bucket, {})[count.outcome] = count.count
        totals[count.outcome] = totals.get(count.outcome, 0) + count.count
    return {
        "buckets": [{"start": start, "outcomes": outcomes} for start, outcomes in buckets.items()],
        "totals": totals,
    }
