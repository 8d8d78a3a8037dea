"""The example API's ``/v1`` routes: the caller's principal, and its workspace's keys, audit log
and portal sessions.

Each handler checks the permission its operation needs (``principal.authorize``) before it
touches data, and every change goes through the store's mutation methods with the principal as
the audit actor, so the change and its audit event commit together. A caller can never grant a
permission it does not hold (403). Another workspace's key or session is "not found".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response

from authcore.adapters.starlette import principal_from
from authcore.demo._http import (
    ProblemError,
    json_body,
    json_bytes_response,
    json_response,
    path_id,
    query_int,
    read_json_object,
    refuse_unknown_fields,
)
from authcore.errors import ClientError, ConfigurationError, PermissionDeniedError
from authcore.names import check_name
from authcore.permissions import MAX_GRANTS, PermissionSet
from authcore.principal import Principal
from authcore.ratelimit import RateLimitPolicy
from authcore.records import MAX_AUDIT_PAGE, MAX_PORTAL_TTL, Actor, AuditCursor
from authcore.store import AsyncStore

__all__ = ["MAX_KEY_LIFETIME", "ManagementRoutes", "request_actor"]

#: Longest root-key lifetime a caller may ask for: ten years.
MAX_KEY_LIFETIME: Final = 10 * 365 * 86_400
_MAX_NAME: Final = 200
_MAX_RENDERED: Final = 1024


def request_actor(request: Request, principal: Principal) -> Actor:
    """Return the audit actor of a change: the caller, with the request's id."""
    return Actor(principal=principal, request_id=request.state.request_id)


def _bad_field(name: str, what: str) -> ProblemError:
    return ProblemError(400, "invalid_body", f"The field {name!r} must be {what}.")


def _text(body: dict[str, Any], name: str) -> str:
    try:
        return check_name(body.get(name), name, max_length=_MAX_NAME)
    except ClientError:
        raise _bad_field(
            name,
            f"a non-empty string of at most {_MAX_NAME} characters, without control, format or"
            " line-separator characters",
        ) from None


def _int(body: dict[str, Any], name: str, high: int) -> int | None:
    if name not in body or body[name] is None:
        return None
    value = body[name]
    if type(value) is not int or not 1 <= value <= high:
        raise _bad_field(name, f"an integer in 1..{high}")
    return value


def _rate_limit(body: dict[str, Any], name: str) -> RateLimitPolicy | None:
    # The form the key list shows and the CLI takes: "N/SECONDS", ASCII digits only.
    value = body.get(name)
    if value is None:
        return None
    try:
        return RateLimitPolicy.parse(value)
    except ConfigurationError:
        raise _bad_field(
            name, 'a string "N/SECONDS" (e.g. "100/60"), N in 1..1000000 and SECONDS in 1..86400'
        ) from None


def _grants(body: dict[str, Any]) -> list[str]:
    value = body.get("permissions")
    if not isinstance(value, list) or len(value) > MAX_GRANTS:
        raise _bad_field("permissions", "a list of permission strings")
    if not all(isinstance(item, str) for item in value):
        raise _bad_field("permissions", "a list of permission strings")
    return value


def _check_grantable(principal: Principal, grants: list[str]) -> None:
    """A caller may hand out only what it holds itself (no privilege escalation).

    Raises:
        InvalidPermissionError: a grant breaks the grammar (400).
        PermissionDeniedError: the caller's permissions do not cover every grant (403).
    """
    if not principal.permissions.covers(PermissionSet(grants)):
        raise PermissionDeniedError("cannot grant a permission the caller does not hold")


class ManagementRoutes:
    """The ``/v1`` handlers (the portal serves two of them too), bound to one store and clock."""

    def __init__(
        self, store: AsyncStore, clock: Callable[[], float], *, body_timeout: float
    ) -> None:
        self.store = store
        self.clock = clock
        self.body_timeout = body_timeout
        # Principals are immutable and shared per record, so each one's JSON is rendered once
        # (rendering takes about 24 microseconds, a hit about 2). Keyed by the principal itself:
        # it is hashable, and equal principals render the same JSON. Never by id(principal): an
        # id is reused by the next object once its own is collected.
        self._rendered: dict[Principal, bytes] = {}

    async def principal(self, request: Request) -> Response:
        principal = principal_from(request)
        body = self._rendered.get(principal)
        if body is None:
            if len(self._rendered) >= _MAX_RENDERED:
                self._rendered.clear()
            body = json_body(principal.to_dict())
            self._rendered[principal] = body
        return json_bytes_response(body)

    async def list_keys(self, request: Request) -> Response:
        principal = principal_from(request)
        principal.authorize("keys.read")
        records = await self.store.alist_root_keys(principal.workspace_id)
        used = await self.store.alast_used(principal.workspace_id)
        keys = [{**record.to_dict(), "last_used_at": used.get(record.id)} for record in records]
        return json_response({"keys": keys})

    async def create_key(self, request: Request) -> Response:
        principal = principal_from(request)
        principal.authorize("keys.create")
        body = await read_json_object(request, time_limit=self.body_timeout)
        refuse_unknown_fields(body, ("name", "permissions", "expires_in", "rate_limit"))
        name = _text(body, "name")
        grants = _grants(body)
        expires_in = _int(body, "expires_in", MAX_KEY_LIFETIME)
        rate_limit = _rate_limit(body, "rate_limit")
        _check_grantable(principal, grants)
        now = self.clock()
        created = await self.store.acreate_root_key(
            principal.workspace_id,
            permissions=grants,
            name=name,
            expires_at=None if expires_in is None else int(now) + expires_in,
            now=now,
            actor=request_actor(request, principal),
            rate_limit=rate_limit,
        )
        if created is None:
            raise ProblemError(404, "not_found", "The workspace does not exist.")
        return json_response({"key_id": created.record.id, "key": created.key.reveal()}, 201)

    async def revoke_key(self, request: Request) -> Response:
        principal = principal_from(request)
        principal.authorize("keys.revoke")
        key_id = path_id(request, "key_id", "key")
        record = await self.store.aget_root_key(key_id)
        # Another workspace's key is "not found": its existence is not this caller's business.
        if record is None or record.workspace_id != principal.workspace_id:
            raise ProblemError(404, "not_found", "No such key.")
        await self.store.arevoke_root_key(
            key_id, now=self.clock(), actor=request_actor(request, principal)
        )
        return Response(status_code=204, headers={"cache-control": "no-store"})

    async def audit_logs(self, request: Request) -> Response:
        principal = principal_from(request)
        principal.authorize("audit.read")
        limit = query_int(request, "limit", default=50, low=1, high=MAX_AUDIT_PAGE)
        before_values = request.query_params.getlist("before")
        if len(before_values) > 1:
            raise ProblemError(400, "invalid_query", "before may be given once.")
        before = AuditCursor.parse(before_values[0]) if before_values else None
        page = await self.store.alist_audit(principal.workspace_id, limit=limit, before=before)
        return json_response(
            {
                "events": [event.to_dict() for event in page.events],
                "next_cursor": None if page.next_cursor is None else str(page.next_cursor),
            }
        )

    async def create_portal_session(self, request: Request) -> Response:
        principal = principal_from(request)
        principal.authorize("portal.create_session")
        body = await read_json_object(request, time_limit=self.body_timeout)
        refuse_unknown_fields(body, ("end_user_id", "permissions", "ttl"))
        end_user_id = _text(body, "end_user_id")
        grants = _grants(body)
        ttl = _int(body, "ttl", MAX_PORTAL_TTL) or 3600
        _check_grantable(principal, grants)
        created = await self.store.acreate_portal_exchange(
            principal.workspace_id,
            end_user_id,
            permissions=grants,
            ttl=ttl,
            now=self.clock(),
            actor=request_actor(request, principal),
        )
        if created is None:
            raise ProblemError(404, "not_found", "The workspace does not exist.")
        return json_response(
            {
                "session_id": created.record.id,
                "code": created.code.reveal(),
                "code_expires_at": created.code_expires_at,
                "expires_at": created.record.expires_at,
            },
            201,
        )

    async def revoke_portal_session(self, request: Request) -> Response:
        principal = principal_from(request)
        principal.authorize("portal.revoke_session")
        session_id = path_id(request, "session_id", "portal session")
        record = await self.store.aget_portal_session(session_id)
        # As for keys: another workspace's session is "not found".
        if record is None or record.workspace_id != principal.workspace_id:
            raise ProblemError(404, "not_found", "No such portal session.")
        await self.store.arevoke_portal_session(
            session_id, now=self.clock(), actor=request_actor(request, principal)
        )
        return Response(status_code=204, headers={"cache-control": "no-store"})
