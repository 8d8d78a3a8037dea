"""What a caller of the example API may see: its workspace, or one identity inside it.

A caller bound to an identity (a portal session, or a root key that belongs to one: its
principal's ``identity_id``) acts for that identity only: its keys, its usage, its portal
sessions. Another identity's key is answered exactly like an unknown one, and a filter that
names another identity matches nothing, as a filter naming an unknown one does. A caller bound
to no identity (a workspace's own root key, a dashboard JWT) sees the whole workspace and may
narrow a read to one identity.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import attrs

from authcore.principal import Principal
from authcore.records import IdentityRecord, RootKeyRecord
from authcore.service._http import ProblemError
from authcore.store import AsyncStore

__all__ = [
    "Scope",
    "external_ids",
    "key_view",
    "no_such_key",
    "own_identity",
    "resolve_scope",
    "scoped_key",
]

_NO_SUCH_KEY: Final = "No such key."


@attrs.frozen
class Scope:
    """Whose keys a read covers: the workspace's (``identity`` None), one identity's, or
    nobody's (``nobody``: a filter that names no identity the caller may see)."""

    workspace_id: str
    identity: IdentityRecord | None = None
    nobody: bool = False


def no_such_key() -> ProblemError:
    """The one answer for an unknown key, another workspace's and another identity's."""
    return ProblemError(404, "not_found", _NO_SUCH_KEY)


async def own_identity(store: AsyncStore, principal: Principal) -> IdentityRecord | None:
    """Return the identity ``principal`` is bound to (None: bound to none, or it is gone)."""
    if principal.identity_id is None:
        return None
    record = await store.afind_identity(principal.identity_id)
    if record is None or record.workspace_id != principal.workspace_id:
        return None
    return record


async def resolve_scope(store: AsyncStore, principal: Principal, wanted: str | None) -> Scope:
    """Return the scope of a read by ``principal`` narrowed to the external id ``wanted``."""
    workspace_id = principal.workspace_id
    if principal.identity_id is not None:
        own = await own_identity(store, principal)
        if own is None or (wanted is not None and wanted != own.external_id):
            return Scope(workspace_id, nobody=True)
        return Scope(workspace_id, own)
    if wanted is None:
        return Scope(workspace_id)
    found = await store.aget_identity(workspace_id, wanted)
    return Scope(workspace_id, found, nobody=found is None)


async def scoped_key(store: AsyncStore, principal: Principal, key_id: str) -> RootKeyRecord:
    """Return the key ``key_id`` if ``principal`` may see it.

    Raises:
        ProblemError: 404 for an unknown key, another workspace's or another identity's, alike.
    """
    record = await store.aget_root_key(key_id)
    if record is None or record.workspace_id != principal.workspace_id:
        raise no_such_key()
    if principal.identity_id is not None and record.identity_id != principal.identity_id:
        raise no_such_key()
    return record


async def external_ids(
    store: AsyncStore, workspace_id: str, records: Iterable[RootKeyRecord]
) -> dict[str, str]:
    """Return the external id of each identity the keys belong to, by identity id.

    One lookup per distinct identity (the flow's own lookup, which a cached store answers
    from memory); an identity since deleted is left out.
    """
    found: dict[str, str] = {}
    for identity_id in sorted({r.identity_id for r in records if r.identity_id is not None}):
        record = await store.afind_identity(identity_id)
        if record is not None and record.workspace_id == workspace_id:
            found[identity_id] = record.external_id
    return found


def key_view(
    record: RootKeyRecord, names: dict[str, str], last_used: dict[str, int] | None = None
) -> dict[str, object]:
    """What a key response shows of ``record``: never the key, never its digest.

    ``identity_id`` and ``identity`` (its external id, where known from ``names``) say whose
    key it is; ``last_used_at`` is read from ``last_used`` when given.
    """
    view: dict[str, object] = record.to_dict()
    identity_id = record.identity_id
    view["identity"] = None if identity_id is None else names.get(identity_id)
    if last_used is not None:
        view["last_used_at"] = last_used.get(record.id)
    return view
