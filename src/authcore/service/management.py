"""The example API's ``/v1`` routes: the caller's principal, and its workspace's keys, audit log
and portal sessions (identities: :mod:`authcore.service.identities`); the portal serves the key
routes too, over its identity's keys.

Each handler checks the permission its operation needs (``principal.authorize``) before it
touches data, and every change goes through the store's mutation methods with the principal as
the audit actor, so the change and its audit event commit together. A caller can never grant a
permission it may not grant (403). Another workspace's key or session is "not found"; so is
another identity's, for a caller bound to an identity (:mod:`authcore.service._scope`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import attrs
from starlette.requests import Request
from starlette.responses import Response

from authcore.adapters.starlette import principal_from
from authcore.credentials import request_origin
from authcore.cursors import audit_cursor, key_cursor, parse_audit_cursor, parse_key_cursor
from authcore.errors import ClientError, PermissionDeniedError
from authcore.principal import Principal
from authcore.ratelimit import RateLimitPolicy
from authcore.records import MAX_PORTAL_TTL, Actor, AuditCursor
from authcore.service._fields import (
    check_grantable,
    external_id_field,
    grants_field,
    int_field,
    query_external_id,
    rate_limit_field,
    text_field,
)
from authcore.service._http import (
    ProblemError,
    RenderedResponse,
    json_response,
    path_id,
    read_json_object,
    refuse_unknown_fields,
)
from authcore.service._pages import next_page, page_query
from authcore.service._scope import (
    external_ids,
    key_view,
    own_identity,
    resolve_scope,
    scoped_key,
)
from authcore.store import AsyncStore

__all__ = ["MAX_KEY_LIFETIME", "PORTAL_PAGE", "ManagementRoutes", "portal_link", "request_actor"]

#: Longest root-key lifetime a caller may ask for: ten years.
MAX_KEY_LIFETIME: Final = 10 * 365 * 86_400
#: The portal page's path; its link carries the exchange code in the fragment.
PORTAL_PAGE: Final = "/portal/"
_DEFAULT_PORTAL_TTL: Final = 3600
_MAX_RENDERED: Final = 1024
_KEY_FIELDS: Final = ("name", "permissions", "expires_in", "rate_limit", "identity")
_PORTAL_KEY_FIELDS: Final = ("name", "permissions", "expires_in")
_SESSION_FIELDS: Final = ("identity", "permissions", "key_permissions", "ttl", "rate_limit")


def request_actor(request: Request, principal: Principal) -> Actor:
    """Return the audit actor of a change: the caller, with the request's id."""
    return Actor(principal=principal, request_id=request.state.request_id)


def portal_link(request: Request, code: str) -> str:
    """Return the link that opens the portal page with ``code``: this service's origin (the
    request's scheme and its one well-formed ``Host``), the page, the code in the fragment.

    A fragment is never sent to a server, so the code stays out of every access log. Without
    a usable ``Host`` the link is the path alone.
    """
    origin = request_origin(request.url.scheme, request.headers.getlist("host")) or ""
    return f"{origin}{PORTAL_PAGE}#code={code}"


def _no_such_identity() -> ProblemError:
    return ProblemError(404, "not_found", "No such identity.")


@attrs.frozen
class _NewKey:
    """The checked fields of a key to make (both key-creating routes)."""

    name: str
    grants: list[str]
    expires_in: int | None
    rate_limit: RateLimitPolicy | None = None

    @classmethod
    def read(cls, body: dict[str, object], *, rate_limit: RateLimitPolicy | None = None) -> _NewKey:
        """Read ``name``, ``permissions`` and ``expires_in`` from ``body``.

        Raises:
            ProblemError: 400, a field that is not what it must be.
        """
        return cls(
            text_field(body, "name"),
            grants_field(body, "permissions"),
            int_field(body, "expires_in", MAX_KEY_LIFETIME),
            rate_limit,
        )


def _parse_before(text: str) -> AuditCursor:
    """``?before=``: the old ``"<time>.<seq>"`` text, or a cursor of today's form."""
    try:
        return AuditCursor.parse(text)
    except ClientError:
        return parse_audit_cursor(text)


class ManagementRoutes:
    """The ``/v1`` handlers (the portal serves the key handlers too), bound to one store and
    clock."""

    def __init__(
        self, store: AsyncStore, clock: Callable[[], float], *, body_timeout: float
    ) -> None:
        self.store = store
        self.clock = clock
        self.body_timeout = body_timeout
        # Principals are immutable and shared per record, so each one's answer (its JSON and
        # header fields) is built once (building takes about 24 microseconds, sending a built
        # one under 1). Keyed by the principal itself: it is hashable, and equal principals
        # render the same JSON. Never by id(principal): an id is reused by the next object
        # once its own is collected.
        self._rendered: dict[Principal, Response] = {}

    async def principal(self, request: Request) -> Response:
        principal = principal_from(request)
        template = self._rendered.get(principal)
        if template is None:
            if len(self._rendered) >= _MAX_RENDERED:
                self._rendered.clear()
            template = json_response(principal.to_dict())
            self._rendered[principal] = template
        return RenderedResponse(template)

    async def list_keys(self, request: Request) -> Response:
        """``GET /v1/keys`` and ``GET /portal/v1/keys``: one page of the keys the caller may
        see (``?limit=N&cursor=C``), with ``?identity=EXT`` only that identity's (unknown, or
        not the caller's: none)."""
        principal = principal_from(request)
        principal.authorize("keys.read")
        wanted = query_external_id(request, "identity")
        limit, after = page_query(request, parse_key_cursor)
        scope = await resolve_scope(self.store, principal, wanted)
        if scope.nobody:
            return json_response({"keys": [], **next_page(request, None)})
        workspace_id = principal.workspace_id
        identity = scope.identity
        page = await self.store.alist_root_keys_page(
            workspace_id,
            identity_id=None if identity is None else identity.id,
            limit=limit,
            after=after,
        )
        if identity is None:
            names = await external_ids(self.store, workspace_id, page.keys)
        else:
            names = {identity.id: identity.external_id}
        used = await self.store.alast_used(workspace_id)
        token = None if page.next_cursor is None else key_cursor(page.next_cursor)
        return json_response(
            {
                "keys": [key_view(record, names, used) for record in page.keys],
                **next_page(request, token, keep=("limit", "identity")),
            }
        )

    async def create_key(self, request: Request) -> Response:
        """``POST /v1/keys``: a key of the workspace, or of the identity named by ``identity``
        (made on first use)."""
        principal = principal_from(request)
        principal.authorize("keys.create")
        body = await read_json_object(request, time_limit=self.body_timeout)
        refuse_unknown_fields(body, _KEY_FIELDS)
        wanted = None if body.get("identity") is None else external_id_field(body, "identity")
        new = _NewKey.read(body, rate_limit=rate_limit_field(body, "rate_limit"))
        check_grantable(principal.grantable, new.grants)
        owner = await self._owner(principal, wanted)
        return await self._create_key(request, principal, new, owner)

    async def create_portal_key(self, request: Request) -> Response:
        """``POST /portal/v1/keys``: a key of the session's identity, holding at most what the
        session's ``key_permissions`` allow."""
        principal = principal_from(request)
        principal.authorize("keys.create")
        body = await read_json_object(request, time_limit=self.body_timeout)
        refuse_unknown_fields(body, _PORTAL_KEY_FIELDS)
        new = _NewKey.read(body)
        check_grantable(principal.grantable, new.grants)
        owner = await self._owner(principal, None)
        return await self._create_key(request, principal, new, owner)

    async def _owner(self, principal: Principal, wanted: str | None) -> str | None:
        """Return the external id of the identity a key or session the caller makes belongs to.

        A caller bound to an identity makes them for that identity only: what it makes never
        escapes the identity's shared limit.

        Raises:
            ProblemError: 404, the caller's identity is gone.
            PermissionDeniedError: the caller is bound to another identity than ``wanted``.
        """
        if principal.identity_id is None:
            return wanted
        own = await own_identity(self.store, principal)
        if own is None:
            raise _no_such_identity()
        if wanted is not None and wanted != own.external_id:
            raise PermissionDeniedError("a caller bound to an identity acts for it only")
        return own.external_id

    async def _create_key(
        self, request: Request, principal: Principal, new: _NewKey, owner: str | None
    ) -> Response:
        now = self.clock()
        actor = request_actor(request, principal)
        created = await self.store.acreate_root_key(
            principal.workspace_id,
            permissions=new.grants,
            name=new.name,
            expires_at=None if new.expires_in is None else int(now) + new.expires_in,
            now=now,
            actor=actor,
            rate_limit=new.rate_limit,
            identity=owner,
        )
        if created is None:
            raise ProblemError(404, "not_found", "The workspace does not exist.")
        record = created.record
        bound = principal.identity_id
        if bound is not None and record.identity_id != bound:
            # The caller's identity was deleted and made again under the same external id
            # between the lookup and the write: the new identity is not the caller's.
            await self.store.arevoke_root_key(record.id, now=now, actor=actor)
            raise _no_such_identity()
        body = {
            "key_id": record.id,
            "key": created.key.reveal(),
            "identity_id": record.identity_id,
            "identity": owner,
        }
        return json_response(body, 201)

    async def revoke_key(self, request: Request) -> Response:
        """``DELETE /v1/keys/{key_id}`` and ``DELETE /portal/v1/keys/{key_id}``."""
        principal = principal_from(request)
        principal.authorize("keys.revoke")
        key_id = path_id(request, "key_id", "key")
        # Another workspace's (or identity's) key is "not found": not this caller's business.
        await scoped_key(self.store, principal, key_id)
        await self.store.arevoke_root_key(
            key_id, now=self.clock(), actor=request_actor(request, principal)
        )
        return Response(status_code=204, headers={"cache-control": "no-store"})

    async def audit_logs(self, request: Request) -> Response:
        principal = principal_from(request)
        principal.authorize("audit.read")
        # ?before= (the "<time>.<seq>" text this route gave before cursors) still works.
        limit, before = page_query(
            request, parse_audit_cursor, legacy="before", parse_legacy=_parse_before
        )
        page = await self.store.alist_audit(principal.workspace_id, limit=limit, before=before)
        token = None if page.next_cursor is None else audit_cursor(page.next_cursor)
        return json_response(
            {"events": [event.to_dict() for event in page.events], **next_page(request, token)}
        )

    async def create_portal_session(self, request: Request) -> Response:
        """``POST /v1/portal-sessions``: a session of one identity (made on first use), started
        by a one-time code; ``portal_url`` opens the portal page with it. Its ``rate_limit`` is
        at most the caller's own (inherited when none is asked; a looser one is 403)."""
        principal = principal_from(request)
        principal.authorize("portal.create_session")
        body = await read_json_object(request, time_limit=self.body_timeout)
        refuse_unknown_fields(body, _SESSION_FIELDS)
        wanted = external_id_field(body, "identity")
        grants = grants_field(body, "permissions")
        key_grants = grants_field(body, "key_permissions", required=False)
        ttl = int_field(body, "ttl", MAX_PORTAL_TTL) or _DEFAULT_PORTAL_TTL
        policy = rate_limit_field(body, "rate_limit")
        check_grantable(principal.grantable, grants)
        check_grantable(principal.grantable, key_grants)
        owner = await self._owner(principal, wanted)
        created = await self.store.acreate_portal_exchange(
            principal.workspace_id,
            owner or wanted,
            permissions=grants,
            key_permissions=key_grants,
            ttl=ttl,
            now=self.clock(),
            actor=request_actor(request, principal),
            rate_limit=policy,
        )
        if created is None:
            raise ProblemError(404, "not_found", "The workspace does not exist.")
        code, policy = created.code.reveal(), created.record.rate_limit
        return json_response(
            {
                "session_id": created.record.id,
                "identity_id": created.record.identity_id,
                "code": code,
                "code_expires_at": created.code_expires_at,
                "expires_at": created.record.expires_at,
                "rate_limit": None if policy is None else str(policy),
                "portal_url": portal_link(request, code),
            },
            201,
        )

    async def revoke_portal_session(self, request: Request) -> Response:
        principal = principal_from(request)
        principal.authorize("portal.revoke_session")
        session_id = path_id(request, "session_id", "portal session")
        record = await self.store.aget_portal_session(session_id)
        # As for keys: another workspace's (or identity's) session is "not found".
        if (
            record is None
            or record.workspace_id != principal.workspace_id
            or principal.identity_id not in (None, record.identity_id)
        ):
            raise ProblemError(404, "not_found", "No such portal session.")
        await self.store.arevoke_portal_session(
            session_id, now=self.clock(), actor=request_actor(request, principal)
        )
        return Response(status_code=204, headers={"cache-control": "no-store"})
