"""The example API's identity routes: the workspace's customers, under ``/v1/identities``.

An identity is named in paths and queries by its ``external_id`` (the operator's own id for the
customer). Each handler checks its permission (``identities.create``, ``identities.read``,
``identities.update``, ``identities.delete``) before it touches data; every change goes through
the store with the caller as the audit actor. Deleting an identity whose keys still work is a
409 unless ``?revoke_keys=true`` revokes them (and its portal sessions) in the same change.

Identities are the operator's to manage: a caller bound to an identity (a root key of one)
manages none of them (403), so no customer can raise its own shared limit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from starlette.requests import Request
from starlette.responses import Response

from authcore.adapters.starlette import principal_from
from authcore.cursors import identity_cursor, parse_identity_cursor
from authcore.errors import ClientError, ConflictError, PermissionDeniedError
from authcore.identities import IDENTITY_HAS_KEYS, IDENTITY_TAKEN, check_external_id, is_live
from authcore.principal import Principal
from authcore.records import IdentityRecord
from authcore.service._fields import (
    external_id_field,
    meta_field,
    query_flag,
    rate_limit_field,
)
from authcore.service._http import (
    ProblemError,
    json_response,
    read_json_object,
    refuse_unknown_fields,
)
from authcore.service._pages import next_page, page_query
from authcore.service.management import request_actor
from authcore.store import AsyncStore

__all__ = ["IdentityRoutes"]

_CREATE_FIELDS: Final = ("external_id", "meta", "rate_limit")
_UPDATE_FIELDS: Final = ("meta", "rate_limit")


def _authorize(principal: Principal, permission: str) -> None:
    """``principal.authorize``, and no identity management by a caller bound to an identity.

    Raises:
        PermissionDeniedError: the permission is missing, or the caller is bound (403).
    """
    principal.authorize(permission)
    if principal.identity_id is not None:
        raise PermissionDeniedError("a caller bound to an identity manages no identities")


def _path_external_id(request: Request) -> str:
    """Return the external id in the path, or answer 404: an id no identity can have names
    nothing."""
    try:
        return check_external_id(request.path_params["external_id"])
    except ClientError:
        raise _no_such_identity() from None


def _identity_cursor(token: str) -> str:
    """The external id a cursor of this list starts after.

    Raises:
        ClientError: not a cursor of this list, or one naming no possible external id.
    """
    return check_external_id(parse_identity_cursor(token))


def _no_such_identity() -> ProblemError:
    return ProblemError(404, "not_found", "No such identity.")


# The store's conflicts on identities are fixed texts (never the caller's input): each gets a
# title that says what to do, under the same stable code.
_CONFLICT_TITLES: Final = {
    IDENTITY_TAKEN: "An identity with this external_id already exists in the workspace.",
    IDENTITY_HAS_KEYS: (
        "The identity still has working keys: revoke them, or delete with ?revoke_keys=true."
    ),
}


def _conflict(error: ConflictError) -> ProblemError | ConflictError:
    """The 409 to answer ``error`` with: its own title when it is an identity's conflict."""
    title = _CONFLICT_TITLES.get(error.detail or "")
    return error if title is None else ProblemError(409, "conflict", title)


class IdentityRoutes:
    """The ``/v1/identities`` handlers, bound to one store and clock."""

    def __init__(
        self, store: AsyncStore, clock: Callable[[], float], *, body_timeout: float
    ) -> None:
        self.store = store
        self.clock = clock
        self.body_timeout = body_timeout

    async def create_identity(self, request: Request) -> Response:
        """``POST /v1/identities`` -> 201 the identity; 409 when the external id is taken."""
        principal = principal_from(request)
        _authorize(principal, "identities.create")
        body = await read_json_object(request, time_limit=self.body_timeout)
        refuse_unknown_fields(body, _CREATE_FIELDS)
        external_id = external_id_field(body, "external_id")
        meta = meta_field(body, "meta")
        rate_limit = rate_limit_field(body, "rate_limit")
        try:
            created = await self.store.acreate_identity(
                principal.workspace_id,
                external_id,
                meta=meta,
                rate_limit=rate_limit,
                now=self.clock(),
                actor=request_actor(request, principal),
            )
        except ConflictError as error:
            raise _conflict(error) from None
        if created is None:
            raise ProblemError(404, "not_found", "The workspace does not exist.")
        return json_response(created.to_dict(), 201)

    async def list_identities(self, request: Request) -> Response:
        """``GET /v1/identities?limit=N&cursor=C``: one page, by external id (``?after=EXT``
        and ``next_after``, from before cursors, still work)."""
        principal = principal_from(request)
        _authorize(principal, "identities.read")
        limit, after = page_query(
            request, _identity_cursor, legacy="after", parse_legacy=check_external_id
        )
        page = await self.store.alist_identities(principal.workspace_id, limit=limit, after=after)
        token = None if page.next_after is None else identity_cursor(page.next_after)
        return json_response(
            {
                "identities": [record.to_dict() for record in page.identities],
                **next_page(request, token),
                "next_after": page.next_after,
            }
        )

    async def _find(self, principal: Principal, external_id: str) -> IdentityRecord:
        found = await self.store.aget_identity(principal.workspace_id, external_id)
        if found is None:
            raise _no_such_identity()
        return found

    async def get_identity(self, request: Request) -> Response:
        """``GET /v1/identities/{external_id}``: the identity and how many live keys it has."""
        principal = principal_from(request)
        _authorize(principal, "identities.read")
        record = await self._find(principal, _path_external_id(request))
        keys = await self.store.alist_root_keys(principal.workspace_id, identity_id=record.id)
        now = int(self.clock())
        live = sum(1 for key in keys if is_live(key, now))
        return json_response({**record.to_dict(), "keys": live})

    async def update_identity(self, request: Request) -> Response:
        """``PATCH /v1/identities/{external_id}``: set or clear (null) ``rate_limit`` and
        ``meta``; a field left out is left alone."""
        principal = principal_from(request)
        _authorize(principal, "identities.update")
        external_id = _path_external_id(request)
        body = await read_json_object(request, time_limit=self.body_timeout)
        refuse_unknown_fields(body, _UPDATE_FIELDS)
        # Every field is checked before the first change runs.
        rate_limit = rate_limit_field(body, "rate_limit")
        meta = meta_field(body, "meta")
        record = await self._find(principal, external_id)
        actor = request_actor(request, principal)
        workspace_id = principal.workspace_id
        updated: IdentityRecord | None = record
        if "rate_limit" in body:
            updated = await self.store.aset_identity_rate_limit(
                workspace_id, external_id, rate_limit, now=self.clock(), actor=actor
            )
        if "meta" in body and updated is not None:
            updated = await self.store.aset_identity_meta(
                workspace_id, external_id, meta, now=self.clock(), actor=actor
            )
        if updated is None:  # deleted meanwhile
            raise _no_such_identity()
        return json_response(updated.to_dict())

    async def delete_identity(self, request: Request) -> Response:
        """``DELETE /v1/identities/{external_id}?revoke_keys=true`` -> 204; 409 while keys of
        it still work and ``revoke_keys`` is not set."""
        principal = principal_from(request)
        _authorize(principal, "identities.delete")
        external_id = _path_external_id(request)
        revoke_keys = query_flag(request, "revoke_keys")
        try:
            deleted = await self.store.adelete_identity(
                principal.workspace_id,
                external_id,
                revoke_keys=revoke_keys,
                now=self.clock(),
                actor=request_actor(request, principal),
            )
        except ConflictError as error:
            raise _conflict(error) from None
        if deleted is None:
            raise _no_such_identity()
        return Response(status_code=204, headers={"cache-control": "no-store"})
