"""Cache invalidations: what every verification cache must drop, and how it travels.

An :class:`Invalidation` names one thing (a digest, a workspace, an identity, a key or
session id, or everything). :class:`authcore.backends.cache.CachedStore` applies it and
derives the ones a change needs from what the change wrote; an
:class:`InvalidationPublisher` (the Redis one, :class:`authcore.backends.redis.RedisInvalidator`)
carries the same messages to the other processes, in the wire form of
:meth:`Invalidation.encode`.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any, Final, Literal, Protocol, TypeVar

import attrs

from authcore.records import (
    IdentityRecord,
    PortalSessionRecord,
    Record,
    RootKeyRecord,
    WorkspaceRecord,
)
from authcore.steps import Change, Delete, FindIdentity, Insert, Load, Step, Update

_T = TypeVar("_T")

__all__ = [
    "Invalidation",
    "InvalidationKind",
    "InvalidationPublisher",
    "invalidations_for",
    "observed",
]

InvalidationKind = Literal["digest", "workspace", "identity", "root_key", "portal_session", "all"]
_WIRE_PREFIX: Final[dict[str, InvalidationKind]] = {
    "d": "digest",
    "w": "workspace",
    "i": "identity",
    "k": "root_key",
    "s": "portal_session",
    "*": "all",
}
_WIRE_KIND: Final = {kind: prefix for prefix, kind in _WIRE_PREFIX.items()}
# A message names one digest (64 hex) or one id; anything longer is not ours.
_MAX_MESSAGE: Final = 512


@attrs.frozen
class Invalidation:
    """One thing to drop from every cache: a digest (hex), a workspace, an identity, a key or
    session id."""

    kind: InvalidationKind
    # Out of the repr: a digest names a credential, and reprs end up in logs and tracebacks.
    value: str = attrs.field(default="", repr=False)

    def encode(self) -> str:
        """Return the wire form, ``"<letter>:<value>"`` (``"*:"`` for everything)."""
        return f"{_WIRE_KIND[self.kind]}:{self.value}"

    @classmethod
    def decode(cls, data: bytes | str) -> Invalidation | None:
        """Read the wire form; None when it is not an invalidation message."""
        if isinstance(data, bytes):
            try:
                data = data.decode("utf-8")
            except UnicodeDecodeError:
                return None
        if not isinstance(data, str) or len(data) > _MAX_MESSAGE or data[1:2] != ":":
            return None
        kind = _WIRE_PREFIX.get(data[0])
        value = data[2:]
        if kind is None or (kind != "all" and not value):
            return None
        if kind == "digest":
            try:
                bytes.fromhex(value)
            except ValueError:
                return None
        return cls(kind, value)


class InvalidationPublisher(Protocol):
    """Tells the other processes' caches to drop something (see ``RedisInvalidator``).

    Publishing is best effort: the change is already committed when it is published, so a
    publisher logs a failure and returns; those processes then fall back to the TTL bound.
    """

    def publish(self, invalidation: Invalidation, /) -> None: ...

    async def apublish(self, invalidation: Invalidation, /) -> None: ...


def observed(change: Change[_T], touched: list[tuple[Record, bool]]) -> Change[_T]:
    """``change``, noting each record it writes or locks: ``(record, it existed before)``."""

    def steps() -> Generator[Step, Any, _T]:
        inner = change.steps
        try:
            step = next(inner)
            while True:
                if isinstance(step, Insert | Update | Delete):
                    touched.append((step.record, not isinstance(step, Insert)))
                result = yield step
                if isinstance(step, Load | FindIdentity) and step.lock and result is not None:
                    touched.append((result, True))
                step = inner.send(result)
        except StopIteration as stop:
            value: _T = stop.value
            return value
        finally:
            inner.close()

    return Change(change.name, steps(), change.writes)


def invalidations_for(touched: Sequence[tuple[Record, bool]]) -> list[Invalidation]:
    """What every cache must drop once a change that touched these records has committed.

    A workspace: itself and everything cached of it. An identity: itself and every conclusion
    reached for its keys and sessions. A key or session: its digest (a new one
    may sit in a negative entry: dropping it means a token tried before it existed works the
    moment it does) and, when it existed before, its id (a rotation changes the *old* key).
    Exchange codes and dashboard users are never cached.
    """
    found: dict[Invalidation, None] = {}
    for record, existed in touched:
        if isinstance(record, WorkspaceRecord):
            found[Invalidation("workspace", record.id)] = None
        elif isinstance(record, IdentityRecord):
            found[Invalidation("identity", record.id)] = None
        elif isinstance(record, RootKeyRecord | PortalSessionRecord):
            found[Invalidation("digest", record.digest.hex())] = None
            if existed:
                kind: InvalidationKind = (
                    "root_key" if isinstance(record, RootKeyRecord) else "portal_session"
                )
                found[Invalidation(kind, record.id)] = None
    return list(found)
