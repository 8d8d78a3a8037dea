"""The example API's OpenAPI 3.1 document, generated from its route table.

Each route of ``authcore serve`` is a :class:`DocumentedRoute`: a Starlette route that carries
the :class:`Operation` it serves (summary, who may call it, parameters, body, answers), declared
in :mod:`authcore.service.operations`. :func:`openapi_document` walks the app's routes and
writes the document from those declarations alone, so a route cannot be served undocumented
and the document cannot name a route that is not served (``tests/service/test_openapi.py``).

What every operation shares is written here once: the problem document (RFC 9457) of every
refusal, the refusals each kind of caller can meet (:data:`Access`), the security schemes (a
root key or a dashboard JWT as ``Authorization: Bearer``, the portal session as the
``authcore_portal`` cookie or a Bearer token) and the response headers. The rate-limit fields
are the ones the app's option sends (:func:`rate_limit_headers`, the IETF draft's by default).
A :class:`Reply` may carry links (:class:`Link`) to the operations its values address; the test
checks each names a served operation, its parameters and a member the answer always has.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

import attrs
from starlette.routing import BaseRoute, Route

from authcore.credentials import DEFAULT_PORTAL_COOKIE
from authcore.ratelimit_fields import RateLimitHeaders, openapi_fields

__all__ = [
    "Access",
    "Body",
    "DocumentedRoute",
    "Link",
    "Operation",
    "Param",
    "Reply",
    "openapi_document",
    "openapi_path",
    "rate_limit_headers",
]

OPENAPI_VERSION: Final = "3.1.0"
_PROBLEM: Final = "application/problem+json"
_JSON: Final = "application/json"
_PROBLEM_REF: Final = {"$ref": "#/components/schemas/Problem"}
_CONVERTOR: Final = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*):[a-z]+\}")


class Access(enum.Enum):
    """Who may call an operation, and so which refusals it can answer before its handler runs."""

    PUBLIC = "public"  # no credential is read
    API = "api"  # a root key or a dashboard JWT (Bearer)
    PORTAL = "portal"  # a portal session: the cookie, or the session token as Bearer


@attrs.frozen
class Param:
    """A path or query parameter: its name, where it goes, its JSON schema."""

    name: str
    location: str  # "path" or "query"
    schema: Mapping[str, Any]
    description: str = ""
    required: bool = False


@attrs.frozen
class Body:
    """A request body: its JSON schema and the media types it may come in."""

    schema: Mapping[str, Any]
    media_types: tuple[str, ...] = (_JSON,)
    description: str = ""


@attrs.frozen
class Link:
    """An OpenAPI link: an operation this answer's values lead to (what a client, or
    Schemathesis' stateful phase, may call next with them).

    ``parameters`` maps each of the target's parameters to a runtime expression
    (``$response.body#/key_id``: OpenAPI 3.1 §4.8.20.4).
    """

    name: str
    target: Operation
    parameters: Mapping[str, str]
    description: str = ""


@attrs.frozen
class Reply:
    """A successful answer: status, what it means, its body (None: no body), and the links
    from it to the operations its values address."""

    status: int
    description: str
    schema: Mapping[str, Any] | None = None
    media_types: tuple[str, ...] = (_JSON,)
    headers: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    links: tuple[Link, ...] = ()


@attrs.frozen
class Operation:
    """What a route serves, for its OpenAPI operation.

    ``errors`` are the problem statuses the handler itself can answer; those the caller's
    credential and the rate limit can cause are added from ``access``.
    """

    operation_id: str
    summary: str
    access: Access
    replies: tuple[Reply, ...]
    permission: str | None = None
    params: tuple[Param, ...] = ()
    body: Body | None = None
    errors: frozenset[int] = frozenset()
    tag: str = "api"
    description: str = ""


class DocumentedRoute(Route):
    """A Starlette route with the :class:`Operation` it serves (one method per route)."""

    def __init__(
        self, path: str, endpoint: Callable[..., Any], method: str, operation: Operation
    ) -> None:
        super().__init__(path, endpoint, methods=[method])
        self.method = method
        self.operation = operation


def openapi_path(path: str) -> str:
    """Return a Starlette route path as an OpenAPI path: ``{name:path}`` becomes ``{name}``."""
    return _CONVERTOR.sub(r"{\1}", path)


def rate_limit_headers(style: RateLimitHeaders) -> dict[str, dict[str, Any]]:
    """The rate-limit fields an answer of the API carries, by the route groups' option
    (:class:`authcore.ratelimit_fields.RateLimitHeaders`): the one place they are described."""
    return openapi_fields(style)


def _header_ref(name: str, *, required: bool = False) -> dict[str, Any]:
    ref: dict[str, Any] = {"$ref": f"#/components/headers/{name}"}
    # A $ref may not carry "required": a required header is its own component.
    return {"$ref": f"#/components/headers/{name}Required"} if required else ref


def _components_headers(style: RateLimitHeaders) -> dict[str, Any]:
    seconds = {"type": "integer", "minimum": 1}
    headers: dict[str, Any] = {
        **rate_limit_headers(style),
        "X-Request-Id": {
            "description": "The request's id, as its audit events record it.",
            "schema": {"type": "string"},
        },
        "WWW-Authenticate": {
            "description": "RFC 6750 §3: the Bearer challenge (``error=`` names the reason).",
            "schema": {"type": "string"},
        },
        "Retry-After": {"description": "Seconds to wait before retrying.", "schema": seconds},
        "Allow": {"description": "The methods the path serves.", "schema": {"type": "string"}},
    }
    for name in ("WWW-Authenticate", "Retry-After", "Allow"):
        headers[f"{name}Required"] = {**headers[name], "required": True}
    return headers


#: Each problem status, what it means, and the headers it always carries.
_PROBLEMS: Final[Mapping[int, tuple[str, tuple[str, ...]]]] = {
    400: ("Bad request: a malformed credential, query or body.", ()),
    401: (
        "No credential, or one that is unknown, wrong, expired or revoked.",
        ("WWW-Authenticate",),
    ),
    403: ("The caller lacks the permission, or the request is cross-site.", ()),
    404: ("No such resource (another workspace's is not found either).", ()),
    405: ("The method is not served on this path.", ("Allow",)),
    408: ("The request body did not arrive in time.", ()),
    409: ("The change conflicts with the current state.", ()),
    413: ("The request body is too large.", ()),
    415: ("The body's media type is not accepted.", ()),
    429: ("Over a rate limit (workspace, identity or key).", ("Retry-After",)),
    503: ("A store or the limiter is unavailable.", ("Retry-After",)),
}
#: Refusals the gate gives before a protected route's handler runs.
_GATE_ERRORS: Final = frozenset({400, 401, 403, 429, 503})


def _problem_response(status: int, style: RateLimitHeaders) -> dict[str, Any]:
    description, required = _PROBLEMS[status]
    headers = {name: _header_ref(name, required=True) for name in required}
    headers["X-Request-Id"] = _header_ref("X-Request-Id")
    if status in (400, 403):
        headers["WWW-Authenticate"] = _header_ref("WWW-Authenticate")
    if status != 401:
        headers.update({name: _header_ref(name) for name in rate_limit_headers(style)})
    return {
        "description": description,
        "headers": headers,
        "content": {_PROBLEM: {"schema": _PROBLEM_REF}},
    }


def _components(style: RateLimitHeaders) -> dict[str, Any]:
    problem = {
        "type": "object",
        "description": "RFC 9457 problem details: fixed, safe fields only.",
        "required": ["type", "title", "status", "code"],
        "properties": {
            "type": {"type": "string", "description": "urn:authcore:problem:<code>"},
            "title": {"type": "string", "description": "A fixed, human-readable message."},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "code": {"type": "string", "description": "A stable machine-readable code."},
        },
    }
    return {
        "schemas": {"Problem": problem},
        "headers": _components_headers(style),
        "responses": {f"Problem{status}": _problem_response(status, style) for status in _PROBLEMS},
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "A root key (authcore keys create) or a dashboard JWT.",
            },
            "portalCookie": {
                "type": "apiKey",
                "in": "cookie",
                "name": DEFAULT_PORTAL_COOKIE,
                "description": "The portal session set by POST /portal/exchange.",
            },
        },
    }


def _security(access: Access) -> list[dict[str, list[str]]]:
    if access is Access.PUBLIC:
        return []
    if access is Access.API:
        return [{"bearer": []}]
    return [{"portalCookie": []}, {"bearer": []}]


def _reply(reply: Reply, access: Access, *, head: bool, style: RateLimitHeaders) -> dict[str, Any]:
    headers: dict[str, Any] = {"X-Request-Id": _header_ref("X-Request-Id")}
    if access is not Access.PUBLIC:
        headers.update({name: _header_ref(name) for name in rate_limit_headers(style)})
    headers.update(reply.headers)
    answer: dict[str, Any] = {"description": reply.description, "headers": headers}
    if reply.schema is not None and not head:
        answer["content"] = {media: {"schema": dict(reply.schema)} for media in reply.media_types}
    if reply.links and not head:
        answer["links"] = {link.name: _link(link) for link in reply.links}
    return answer


def _link(link: Link) -> dict[str, Any]:
    declared: dict[str, Any] = {
        "operationId": link.target.operation_id,
        "parameters": dict(link.parameters),
    }
    if link.description:
        declared["description"] = link.description
    return declared


def _parameter(param: Param) -> dict[str, Any]:
    declared: dict[str, Any] = {
        "name": param.name,
        "in": param.location,
        "required": param.required or param.location == "path",
        "schema": dict(param.schema),
    }
    if param.description:
        declared["description"] = param.description
    return declared


def _operation(operation: Operation, *, head: bool, style: RateLimitHeaders) -> dict[str, Any]:
    """Return the OpenAPI operation object (``head``: the HEAD twin of a GET)."""
    responses: dict[str, Any] = {
        str(reply.status): _reply(reply, operation.access, head=head, style=style)
        for reply in operation.replies
    }
    errors = set(operation.errors)
    if operation.access is not Access.PUBLIC:
        errors |= _GATE_ERRORS
    for status in sorted(errors):
        responses[str(status)] = {"$ref": f"#/components/responses/Problem{status}"}
    lines = [operation.description] if operation.description else []
    if operation.permission is not None:
        lines.append(f"Needs the permission `{operation.permission}`.")
    declared: dict[str, Any] = {
        "operationId": f"{operation.operation_id}_head" if head else operation.operation_id,
        "summary": operation.summary,
        "tags": [operation.tag],
        "security": _security(operation.access),
        "responses": responses,
    }
    if lines:
        declared["description"] = " ".join(lines)
    if operation.permission is not None:
        declared["x-permission"] = operation.permission
    if operation.params:
        declared["parameters"] = [_parameter(param) for param in operation.params]
    if operation.body is not None and not head:
        body = operation.body
        declared["requestBody"] = {
            "required": True,
            "description": body.description or "A JSON object.",
            "content": {media: {"schema": dict(body.schema)} for media in body.media_types},
        }
    return declared


def documented_routes(routes: Iterable[BaseRoute]) -> list[DocumentedRoute]:
    """Return the routes that carry an operation, in table order."""
    return [route for route in routes if isinstance(route, DocumentedRoute)]


def openapi_document(
    routes: Sequence[BaseRoute],
    *,
    title: str,
    version: str,
    description: str = "",
    style: RateLimitHeaders = RateLimitHeaders.DRAFT,
) -> dict[str, Any]:
    """Return the OpenAPI 3.1 document of ``routes`` (each GET also serves HEAD); ``style`` is
    the route groups' rate-limit fields option, the fields the document names."""
    paths: dict[str, dict[str, Any]] = {}
    for route in documented_routes(routes):
        item = paths.setdefault(openapi_path(route.path), {})
        item[route.method.lower()] = _operation(route.operation, head=False, style=style)
        if route.method == "GET":
            item["head"] = _operation(route.operation, head=True, style=style)
    info: dict[str, Any] = {"title": title, "version": version}
    if description:
        info["description"] = description
    return {
        "openapi": OPENAPI_VERSION,
        "info": info,
        "paths": paths,
        "components": _components(style),
    }
