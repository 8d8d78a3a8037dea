"""The example API's body fields and query parameters, each read by one function: the value,
or a 400 problem that names the field and never quotes what was sent.

Bodies come from :func:`authcore.service._http.read_json_object` (valid Unicode, no duplicate
members); what is checked here is each field's type, range and character rules. A caller can
never grant what it may not grant itself (:func:`check_grantable`, 403).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from starlette.requests import Request

from authcore.errors import (
    ClientError,
    ConfigurationError,
    PermissionDeniedError,
    TooManyGrantsError,
)
from authcore.identities import check_external_id, check_identity_meta
from authcore.names import check_name
from authcore.permissions import PermissionSet
from authcore.plans import MAX_KEY_GRANTS
from authcore.ratelimit import RateLimitPolicy
from authcore.records import MAX_IDENTITY_META_BYTES
from authcore.service._http import ProblemError

__all__ = [
    "bad_field",
    "check_grantable",
    "external_id_field",
    "grants_field",
    "int_field",
    "meta_field",
    "query_external_id",
    "query_flag",
    "query_value",
    "rate_limit_field",
    "text_field",
]

_MAX_NAME: Final = 200
_RATE_LIMIT_FORM: Final = (
    'a string "N/SECONDS" (e.g. "100/60"), N in 1..1000000 and SECONDS in 1..86400'
)
_TEXT_RULE: Final = (
    f"a non-empty string of at most {_MAX_NAME} characters, without control, format or"
    " line-separator characters"
)


def bad_field(name: str, what: str) -> ProblemError:
    """The 400 problem of a body field that is not ``what`` it must be."""
    return ProblemError(400, "invalid_body", f"The field {name!r} must be {what}.")


def text_field(body: Mapping[str, Any], name: str) -> str:
    """Return the body's name-like string ``name`` (required).

    Raises:
        ProblemError: 400, absent, blank, too long or holding a refused character.
    """
    try:
        return check_name(body.get(name), name, max_length=_MAX_NAME)
    except ClientError:
        raise bad_field(name, _TEXT_RULE) from None


def external_id_field(body: Mapping[str, Any], name: str) -> str:
    """Return the body's identity external id ``name`` (required).

    Raises:
        ProblemError: 400, absent or not a usable external id.
    """
    try:
        return check_external_id(body.get(name))
    except ClientError:
        raise bad_field(name, _TEXT_RULE) from None


def int_field(body: Mapping[str, Any], name: str, high: int) -> int | None:
    """Return the body's optional integer ``name`` in ``1..high`` (None: absent or null).

    JSON has one number type: ``60.0`` is the integer 60, as JSON Schema's ``integer`` says
    (the published OpenAPI document uses it).

    Raises:
        ProblemError: 400, not a JSON integer in range (``true`` is not one, nor ``60.5``).
    """
    if name not in body or body[name] is None:
        return None
    value = body[name]
    if type(value) is float and value.is_integer() and 1 <= value <= high:
        value = int(value)
    if type(value) is not int or not 1 <= value <= high:
        raise bad_field(name, f"an integer in 1..{high}")
    return value


def rate_limit_field(body: Mapping[str, Any], name: str) -> RateLimitPolicy | None:
    """Return the body's optional rate limit ``name`` (None: absent or null).

    The form the key list shows and the command line takes: ``"N/SECONDS"``, ASCII digits.

    Raises:
        ProblemError: 400, not that form or out of range.
    """
    value = body.get(name)
    if value is None:
        return None
    try:
        return RateLimitPolicy.parse(value)
    except ConfigurationError:
        raise bad_field(name, _RATE_LIMIT_FORM) from None


def meta_field(body: Mapping[str, Any], name: str) -> object:
    """Return the body's optional identity metadata ``name``: a small JSON object, or None.

    Raises:
        ProblemError: 400, not an object, or over the size bound once written as JSON.
    """
    value = body.get(name)
    try:
        check_identity_meta(value)
    except ClientError:
        raise bad_field(
            name, f"a JSON object of at most {MAX_IDENTITY_META_BYTES} bytes, or null"
        ) from None
    return value


def grants_field(body: Mapping[str, Any], name: str, *, required: bool = True) -> list[str]:
    """Return the body's list of permission strings ``name`` (``[]`` when optional and absent).

    The grammar is checked by :func:`check_grantable` (400 ``invalid_permission``).

    Raises:
        ProblemError: 400, not a list of strings.
        TooManyGrantsError: 400, more than ``MAX_KEY_GRANTS`` of them (checked here, before
            any is parsed; the store checks the bytes bound).
    """
    if not required and body.get(name) is None:
        return []
    value = body.get(name)
    if not isinstance(value, list):
        raise bad_field(name, "a list of permission strings")
    if len(value) > MAX_KEY_GRANTS:
        raise TooManyGrantsError(f"{name}: more than {MAX_KEY_GRANTS} grants")
    if not all(isinstance(item, str) for item in value):
        raise bad_field(name, "a list of permission strings")
    return value


def check_grantable(grantable: PermissionSet, grants: list[str]) -> None:
    """A caller may hand out only what it may grant (no privilege escalation).

    ``grantable`` is the caller's :attr:`~authcore.principal.Principal.grantable`: its own
    permissions, or less (a portal session: what its operator let keys made there hold).

    Raises:
        InvalidPermissionError: a grant breaks the grammar (400).
        PermissionDeniedError: ``grantable`` does not cover every grant (403).
    """
    if not grantable.covers(PermissionSet(grants)):
        raise PermissionDeniedError("cannot grant a permission the caller does not hold")


def query_value(request: Request, name: str) -> str | None:
    """Return the query parameter ``name`` (None: absent).

    Raises:
        ProblemError: 400, it is repeated (two parsers could disagree on which one counts).
    """
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise ProblemError(400, "invalid_query", f"{name} may be given once.")
    return values[0] if values else None


def query_external_id(request: Request, name: str) -> str | None:
    """Return the query parameter ``name`` as an identity external id (None: absent).

    Raises:
        ProblemError: 400, repeated or not a usable external id.
    """
    value = query_value(request, name)
    if value is None:
        return None
    try:
        return check_external_id(value)
    except ClientError:
        raise ProblemError(
            400, "invalid_query", f"{name} must be an external id ({_TEXT_RULE})."
        ) from None


def query_flag(request: Request, name: str) -> bool:
    """Return the query parameter ``name`` as a boolean: ``true`` or ``false`` (absent: false).

    Raises:
        ProblemError: 400, repeated or any other spelling (``1``, ``yes``, ``True``).
    """
    value = query_value(request, name)
    if value is None or value == "false":
        return False
    if value == "true":
        return True
    raise ProblemError(400, "invalid_query", f"{name} must be true or false.")
