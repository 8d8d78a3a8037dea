"""What each route of the example API serves, declared once: the source of its OpenAPI document.

One :class:`~authcore.service.openapi.Operation` per route; :func:`authcore.service.api._routes`
pairs each with its handler. The schemas say what the handlers check (:mod:`._fields`,
:mod:`._http`): names are 1-200 characters of no refused Unicode category and not all
whitespace, permissions follow the grant grammar, numbers are in range. What JSON Schema cannot
say (a body's byte size, ``since`` before ``until``) is in the descriptions. Query parameters of
a list are tuples (:data:`USAGE_WINDOW`, :func:`_page`), so a new one is one more entry.

The answer that makes a resource (a key, an identity, a portal session) links to the operations
that address it (:func:`_links`): OpenAPI links, which a client generator and Schemathesis'
stateful phase follow. A link names its target by the object, so the operations on a resource
are declared before the one that makes it.
"""

from __future__ import annotations

import functools
import sys
import unicodedata
from typing import Any, Final

from authcore.cursors import MAX_CURSOR_LENGTH
from authcore.names import MAX_NAME_LENGTH, REFUSED_CATEGORIES
from authcore.permissions import MAX_GRANTS, MAX_PERMISSION_LENGTH, MAX_PERMISSION_SEGMENTS
from authcore.records import DEFAULT_LIST_PAGE, MAX_LIST_PAGE, MAX_PORTAL_TTL
from authcore.service.openapi import Access, Body, Link, Operation, Param, Reply

_MAX_KEY_LIFETIME: Final = 10 * 365 * 86_400  # management.MAX_KEY_LIFETIME (no import cycle)
_LATEST: Final = 2**53 - 1


@functools.cache
def _refused_class() -> str:
    """The characters a name may not hold, as the inside of a regex character class.

    Built from the running Python's Unicode tables, the ones :func:`authcore.names.check_name`
    reads. Surrogates are left out: no JSON text the server accepts can carry one.
    """
    ranges: list[tuple[int, int]] = []
    for code in range(sys.maxunicode + 1):
        if 0xD800 <= code <= 0xDFFF or unicodedata.category(chr(code)) not in REFUSED_CATEGORIES:
            continue
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1] = (ranges[-1][0], code)
        else:
            ranges.append((code, code))
    return "".join(chr(a) if a == b else f"{chr(a)}-{chr(b)}" for a, b in ranges)


def name_schema(description: str = "") -> dict[str, Any]:
    """A name or id: 1-200 characters, not all whitespace, no refused character."""
    refused = _refused_class()
    schema: dict[str, Any] = {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_NAME_LENGTH,
        "pattern": f"^[^{refused}]*[^\\s{refused}][^{refused}]*$",
    }
    if description:
        schema["description"] = description
    return schema


_SEGMENT: Final = "[a-z][a-z0-9_]*"
_GRANT_SEGMENT: Final = rf"(?:{_SEGMENT}|\*)"
GRANTS: Final = {
    "type": "array",
    "maxItems": MAX_GRANTS,
    "items": {
        "type": "string",
        "maxLength": MAX_PERMISSION_LENGTH,
        "pattern": (
            rf"^{_GRANT_SEGMENT}(?:\.{_GRANT_SEGMENT}){{0,{MAX_PERMISSION_SEGMENTS - 1}}}$"
        ),
    },
    "description": "Permission grants: dot-separated lowercase segments; `*` matches one.",
}
# RateLimitPolicy.parse: N in 1..1000000 requests per SECONDS in 1..86400.
RATE_LIMIT: Final = {
    "type": ["string", "null"],
    "pattern": (
        "^(?:[1-9][0-9]{0,5}|1000000)/"
        "(?:[1-9][0-9]{0,3}|[1-7][0-9]{4}|8[0-5][0-9]{3}|86[0-3][0-9]{2}|86400)$"
    ),
    "description": 'A rate limit "N/SECONDS" (e.g. "100/60"); null: none of its own.',
}
META: Final = {
    "type": ["object", "null"],
    "description": "The operator's own data: a JSON object of at most 1024 bytes, or null.",
}
_NULLABLE_INT: Final = {"type": ["integer", "null"]}
_NULLABLE_STR: Final = {"type": ["string", "null"]}
_INT: Final = {"type": "integer"}
_STR: Final = {"type": "string"}


def _object(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "required": sorted(required),
        "properties": {**required, **(optional or {})},
    }


def _strict(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict[str, Any]:
    """A request body: these members only (an unknown one is a 400)."""
    return {**_object(required, optional), "additionalProperties": False}


def _integer(low: int, high: int, description: str = "") -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer", "minimum": low, "maximum": high}
    if description:
        schema["description"] = description
    return schema


PRINCIPAL: Final = _object(
    {
        "workspace_id": _STR,
        "subject": _object({"type": _STR, "id": _STR}, {"name": _STR}),
        "source": {"type": "string", "enum": ["root_key", "portal_session", "jwt"]},
        "permissions": {"type": "array", "items": _STR},
    },
    {"identity_id": _STR},
)
KEY: Final = _object(
    {
        "key_id": _STR,
        "workspace_id": _STR,
        "name": _NULLABLE_STR,
        "start": _STR,
        "permissions": {"type": "array", "items": _STR},
        "created_at": _INT,
        "expires_at": _NULLABLE_INT,
        "revoked_at": _NULLABLE_INT,
        "rate_limit": _NULLABLE_STR,
        "identity_id": _NULLABLE_STR,
        "identity": _NULLABLE_STR,
    },
    {"last_used_at": _NULLABLE_INT},
)
NEW_KEY: Final = _object(
    {"key_id": _STR, "key": _STR, "identity_id": _NULLABLE_STR, "identity": _NULLABLE_STR}
)
IDENTITY: Final = _object(
    {
        "identity_id": _STR,
        "external_id": _STR,
        "workspace_id": _STR,
        "meta": META,
        "rate_limit": _NULLABLE_STR,
        "created_at": _INT,
    }
)
USAGE: Final = _object(
    {
        "workspace_id": _STR,
        "granularity": {"type": "string", "enum": ["minute", "hour", "day"]},
        "since": _INT,
        "until": _INT,
        "buckets": {
            "type": "array",
            "items": _object(
                {"start": _INT, "outcomes": {"type": "object", "additionalProperties": _INT}}
            ),
        },
        "totals": {"type": "object", "additionalProperties": _INT},
    },
    {"identity": _NULLABLE_STR, "identity_id": _NULLABLE_STR},
)
KEY_USAGE: Final = {
    **USAGE,
    "properties": {**USAGE["properties"], "key_id": _STR, "last_used_at": _NULLABLE_INT},
}

KEY_ID: Final = Param("key_id", "path", name_schema(), "A key's id (`key_...`).")
EXTERNAL_ID: Final = Param(
    "external_id", "path", name_schema(), "The identity's external id (URL-encoded)."
)
IDENTITY_QUERY: Final = Param(
    "identity", "query", name_schema(), "Only this identity's (an external id)."
)
USAGE_WINDOW: Final = (
    Param("since", "query", _integer(0, _LATEST), "Epoch seconds (default: until - 24 h)."),
    Param("until", "query", _integer(1, _LATEST), "Epoch seconds (default: now)."),
    Param(
        "granularity",
        "query",
        {"type": "string", "enum": ["minute", "hour", "day"]},
        "Bucket size (default: hour).",
    ),
)
_USAGE_RULE: Final = (
    "`since` must be before `until`, and the window holds a bounded number of buckets (400)."
)


CURSOR: Final = Param(
    "cursor",
    "query",
    {"type": "string", "pattern": "^[A-Za-z0-9_-]+$", "maxLength": MAX_CURSOR_LENGTH},
    "Where the page starts: the previous page's `next_cursor` (opaque; one this list did not "
    "give is a 400). Following `next` sets it.",
)
#: What every cursor-paged list answers beside its items (service/_pages.py).
PAGE_LINKS: Final = {
    "next": {
        "type": ["string", "null"],
        "description": "The next page's relative link; null on the last page.",
    },
    "next_cursor": {"type": ["string", "null"], "description": "The next page's `cursor`."},
}


def _page(*older: Param) -> tuple[Param, ...]:
    """A list's paging parameters: ``limit``, ``cursor``, and an older parameter that also
    says where to start (``after``, ``before``; not together with ``cursor``)."""
    size = _integer(1, MAX_LIST_PAGE, f"Page size (default {DEFAULT_LIST_PAGE}).")
    return (Param("limit", "query", size, "Page size."), CURSOR, *older)


_OK: Final = "OK."
_DELETED: Final = Reply(204, "Done; no body.")
_BODY_ERRORS: Final = frozenset({408, 413, 415})
_NAME: Final = name_schema("A name shown in lists and audit logs.")


def _links(field: str, *targets: Operation) -> tuple[Link, ...]:
    """Links from a made resource to each operation on it: the answer's ``field`` (a body
    member) fills the target's path parameter of the same name."""
    return tuple(
        Link(target.operation_id, target, {field: f"$response.body#/{field}"}) for target in targets
    )


HEALTHZ: Final = Operation(
    "healthz",
    "Liveness",
    Access.PUBLIC,
    (Reply(200, "The service is up.", _object({"status": {"const": "ok"}})),),
    tag="service",
)
PRINCIPAL_OP: Final = Operation(
    "get_principal", "The caller's principal", Access.API, (Reply(200, _OK, PRINCIPAL),)
)
LIST_KEYS: Final = Operation(
    "list_keys",
    "The workspace's keys",
    Access.API,
    (Reply(200, _OK, _object({"keys": {"type": "array", "items": KEY}, **PAGE_LINKS})),),
    permission="keys.read",
    params=(IDENTITY_QUERY, *_page()),
)


def _new_key_body(**optional: Any) -> Body:
    """A new key's body: its name and permissions, an expiry, and what else the route takes."""
    expires_in = {
        **_integer(1, _MAX_KEY_LIFETIME, "Seconds until it expires."),
        "type": ["integer", "null"],
    }
    return Body(
        _strict({"name": _NAME, "permissions": GRANTS}, {"expires_in": expires_in, **optional})
    )


REVOKE_KEY: Final = Operation(
    "revoke_key",
    "Revoke a key",
    Access.API,
    (_DELETED,),
    permission="keys.revoke",
    params=(KEY_ID,),
    errors=frozenset({404}),
)
KEY_USAGE_OP: Final = Operation(
    "key_usage",
    "One key's usage",
    Access.API,
    (Reply(200, _OK, KEY_USAGE),),
    permission="usage.read",
    params=(KEY_ID, *USAGE_WINDOW),
    errors=frozenset({404}),
    description=_USAGE_RULE,
)
CREATE_KEY: Final = Operation(
    "create_key",
    "Make a root key (shown once)",
    Access.API,
    (
        Reply(
            201,
            "The key, shown this once.",
            NEW_KEY,
            links=_links("key_id", REVOKE_KEY, KEY_USAGE_OP),
        ),
    ),
    permission="keys.create",
    body=_new_key_body(
        rate_limit=RATE_LIMIT,
        identity={
            **name_schema("The identity it belongs to (made on first use)."),
            "type": ["string", "null"],
        },
    ),
    errors=frozenset({404}) | _BODY_ERRORS,
    description="A caller never grants what it does not hold (403).",
)
WORKSPACE_USAGE: Final = Operation(
    "usage",
    "The workspace's (or one identity's) usage",
    Access.API,
    (Reply(200, _OK, USAGE),),
    permission="usage.read",
    params=(IDENTITY_QUERY, *USAGE_WINDOW),
    description=_USAGE_RULE,
)
AUDIT_LOGS: Final = Operation(
    "audit_logs",
    "The workspace's audit log, newest first",
    Access.API,
    (
        Reply(
            200,
            _OK,
            _object({"events": {"type": "array", "items": {"type": "object"}}, **PAGE_LINKS}),
        ),
    ),
    permission="audit.read",
    params=_page(
        Param(
            "before",
            "query",
            {"type": "string", "maxLength": MAX_CURSOR_LENGTH},
            "Older form of `cursor` (a `next_cursor`, or `TIME.SEQ`).",
        ),
    ),
)
GET_IDENTITY: Final = Operation(
    "get_identity",
    "One identity, with its count of live keys",
    Access.API,
    (Reply(200, _OK, {**IDENTITY, "properties": {**IDENTITY["properties"], "keys": _INT}}),),
    permission="identities.read",
    params=(EXTERNAL_ID,),
    errors=frozenset({404}),
    tag="identities",
)
UPDATE_IDENTITY: Final = Operation(
    "update_identity",
    "Set or clear (null) an identity's rate limit and meta",
    Access.API,
    (Reply(200, "The identity.", IDENTITY),),
    permission="identities.update",
    params=(EXTERNAL_ID,),
    body=Body(_strict({}, {"meta": META, "rate_limit": RATE_LIMIT})),
    errors=frozenset({404}) | _BODY_ERRORS,
    tag="identities",
)
DELETE_IDENTITY: Final = Operation(
    "delete_identity",
    "Delete an identity",
    Access.API,
    (_DELETED,),
    permission="identities.delete",
    params=(
        EXTERNAL_ID,
        Param(
            "revoke_keys",
            "query",
            {"type": "string", "enum": ["true", "false"]},
            "true: revoke its keys and portal sessions in the same change.",
        ),
    ),
    errors=frozenset({404, 409}),
    tag="identities",
    description="409 while keys of it still work and `revoke_keys` is not true.",
)
CREATE_IDENTITY: Final = Operation(
    "create_identity",
    "Make an identity (one of the API's customers)",
    Access.API,
    (
        Reply(
            201,
            "The identity.",
            IDENTITY,
            links=_links("external_id", GET_IDENTITY, UPDATE_IDENTITY, DELETE_IDENTITY),
        ),
    ),
    permission="identities.create",
    body=Body(
        _strict(
            {"external_id": name_schema("The operator's own id for the customer.")},
            {"meta": META, "rate_limit": RATE_LIMIT},
        )
    ),
    errors=frozenset({404, 409}) | _BODY_ERRORS,
    tag="identities",
    description="409 when the external id is taken.",
)
LIST_IDENTITIES: Final = Operation(
    "list_identities",
    "The workspace's identities, by external id",
    Access.API,
    (
        Reply(
            200,
            _OK,
            _object(
                {
                    "identities": {"type": "array", "items": IDENTITY},
                    "next_after": _NULLABLE_STR,
                    **PAGE_LINKS,
                }
            ),
        ),
    ),
    permission="identities.read",
    params=_page(
        Param("after", "query", name_schema(), "Older form of `cursor`: an external id."),
    ),
    tag="identities",
)
REVOKE_PORTAL_SESSION: Final = Operation(
    "revoke_portal_session",
    "End a portal session",
    Access.API,
    (_DELETED,),
    permission="portal.revoke_session",
    params=(Param("session_id", "path", name_schema(), "The session's id."),),
    errors=frozenset({404}),
    tag="portal",
)
CREATE_PORTAL_SESSION: Final = Operation(
    "create_portal_session",
    "Start a portal session for an identity's end user",
    Access.API,
    (
        Reply(
            201,
            "The session and its one-time exchange code (60 s).",
            _object(
                {
                    "session_id": _STR,
                    "identity_id": _STR,
                    "code": _STR,
                    "code_expires_at": _INT,
                    "expires_at": _INT,
                    "rate_limit": _NULLABLE_STR,
                    "portal_url": _STR,
                }
            ),
            links=_links("session_id", REVOKE_PORTAL_SESSION),
        ),
    ),
    permission="portal.create_session",
    body=Body(
        _strict(
            {"identity": name_schema("The identity (made on first use)."), "permissions": GRANTS},
            {
                "key_permissions": {**GRANTS, "type": ["array", "null"]},
                "ttl": {**_integer(1, MAX_PORTAL_TTL, "Seconds."), "type": ["integer", "null"]},
                "rate_limit": RATE_LIMIT,
            },
        )
    ),
    errors=frozenset({404}) | _BODY_ERRORS,
    tag="portal",
    description="`rate_limit` is at most the caller's own, which it inherits when none is"
    " given (a looser one is 403).",
)
_SESSION: Final = _object({"session_id": _STR, "expires_at": _INT})
PORTAL_EXCHANGE: Final = Operation(
    "portal_exchange",
    "Swap a one-time code for the portal session cookie",
    Access.PUBLIC,
    (
        Reply(
            200,
            "The session; its token is set as the HttpOnly cookie `authcore_portal`.",
            _SESSION,
            headers={"Set-Cookie": {"schema": _STR, "required": True}},
        ),
    ),
    body=Body(
        _strict({"code": {"type": "string", "description": "The code (`pc_...`)."}}),
        media_types=("application/json", "application/x-www-form-urlencoded"),
    ),
    errors=frozenset({400, 403}) | _BODY_ERRORS,
    tag="portal",
    description=(
        "Same-origin writes only (403). A code in the URL is spent and answers 400; an unknown,"
        " used or expired code answers 400 `exchange_code_invalid`."
    ),
)
PORTAL_LOGOUT: Final = Operation(
    "portal_logout",
    "End the caller's portal session and clear the cookie",
    Access.PORTAL,
    (Reply(204, "Done; the cookie is cleared."),),
    tag="portal",
)
PORTAL_PRINCIPAL: Final = Operation(
    "portal_principal",
    "The portal caller's principal",
    Access.PORTAL,
    (Reply(200, _OK, PRINCIPAL),),
    tag="portal",
)
PORTAL_IDENTITY: Final = Operation(
    "portal_identity",
    "The session's identity and what a key made here may hold",
    Access.PORTAL,
    (
        Reply(
            200,
            _OK,
            _object(
                {
                    "identity_id": _STR,
                    "external_id": _STR,
                    "meta": META,
                    "rate_limit": _NULLABLE_STR,
                    "permissions": {"type": "array", "items": _STR},
                    "key_permissions": {"type": "array", "items": _STR},
                }
            ),
        ),
    ),
    errors=frozenset({404}),
    tag="portal",
)
PORTAL_LIST_KEYS: Final = Operation(
    "portal_list_keys",
    "The session's identity's keys",
    Access.PORTAL,
    LIST_KEYS.replies,
    permission="keys.read",
    params=_page(),
    tag="portal",
)
PORTAL_REVOKE_KEY: Final = Operation(
    "portal_revoke_key",
    "Revoke one of the identity's keys",
    Access.PORTAL,
    (_DELETED,),
    permission="keys.revoke",
    params=(KEY_ID,),
    errors=frozenset({404}),
    tag="portal",
)
PORTAL_KEY_USAGE: Final = Operation(
    "portal_key_usage",
    "One of the identity's keys' usage",
    Access.PORTAL,
    (Reply(200, _OK, KEY_USAGE),),
    permission="usage.read",
    params=(KEY_ID, *USAGE_WINDOW),
    errors=frozenset({404}),
    tag="portal",
    description=_USAGE_RULE,
)
PORTAL_CREATE_KEY: Final = Operation(
    "portal_create_key",
    "Make a key of the session's identity (shown once)",
    Access.PORTAL,
    (
        Reply(
            201,
            "The key, shown this once.",
            NEW_KEY,
            links=_links("key_id", PORTAL_REVOKE_KEY, PORTAL_KEY_USAGE),
        ),
    ),
    permission="keys.create",
    body=_new_key_body(),
    errors=frozenset({404}) | _BODY_ERRORS,
    tag="portal",
    description="At most what the session's `key_permissions` allow (403).",
)
PORTAL_USAGE: Final = Operation(
    "portal_usage",
    "The identity's usage",
    Access.PORTAL,
    (Reply(200, _OK, USAGE),),
    permission="usage.read",
    params=(IDENTITY_QUERY, *USAGE_WINDOW),
    tag="portal",
    description=_USAGE_RULE,
)


def _page_op(operation_id: str, summary: str, *media_types: str, **extra: Any) -> Operation:
    return Operation(
        operation_id,
        summary,
        Access.PUBLIC,
        (Reply(200, _OK, _STR, media_types=media_types),),
        tag="pages",
        **extra,
    )


def _static(names: tuple[str, ...]) -> Param:
    return Param("name", "path", {"type": "string", "enum": list(names)}, "A file of the page.")


_SCRIPT_AND_STYLE: Final = ("text/javascript", "text/css")
PORTAL_PAGE: Final = _page_op("portal_page", "The portal page", "text/html")
PORTAL_STATIC: Final = _page_op(
    "portal_static",
    "The portal page's script and style sheet",
    *_SCRIPT_AND_STYLE,
    params=(_static(("portal.js", "portal.css")),),
    errors=frozenset({404}),
)
OPENAPI: Final = Operation(
    "openapi",
    "This document",
    Access.PUBLIC,
    (Reply(200, "The OpenAPI 3.1 document.", {"type": "object"}),),
    tag="service",
)
DOCS_PAGE: Final = _page_op("docs_page", "This document as a page", "text/html")
DOCS_STATIC: Final = _page_op(
    "docs_static",
    "The documentation page's script and style sheet",
    *_SCRIPT_AND_STYLE,
    params=(_static(("docs.js", "docs.css")),),
    errors=frozenset({404}),
)
