"""The rate-limit header fields of a response: the IETF draft's two, the legacy three, or none.

draft-ietf-httpapi-ratelimit-headers-11 (May 2026) defines two structured fields (RFC 9651),
each a List of Items whose value is a String naming a quota policy:

- ``RateLimit-Policy: "workspace";q=600;w=60`` (§3): the policy: ``q`` the quota, ``w`` the
  window in seconds. It stays the same from one response to the next.
- ``RateLimit: "workspace";r=42;t=17`` (§4): the current state: ``r`` the requests left now,
  ``t`` the seconds until the bucket is full again.

A request passes one level per limit it has (a root key's or portal session's own, its
identity's, its workspace's: :attr:`authcore.replay.Conclusion.levels`), and each level is one
item in each field, named ``"key"``, ``"session"``, ``"identity"`` or ``"workspace"``, most
specific first. The legacy fields
(``RateLimit-Limit``, ``RateLimit-Remaining``, ``RateLimit-Reset``: the draft up to -06) can
describe one level only: they describe the deciding one (:func:`authcore.ratelimit.deciding`).
Which fields go out is a route group's option, :class:`RateLimitHeaders` (default: the draft's).

Everything that does not change from request to request (the policy field's value, each item's
name) is made once, in :class:`LimitFields`, kept with the conclusion it describes; a request
formats two integers per level. Names and values are ASCII, so the ``str`` and ``bytes`` forms
are the same text.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Final

import attrs

from authcore.errors import ConfigurationError
from authcore.ratelimit import Level, RateLimitDecision

__all__ = [
    "IDENTITY_LEVEL",
    "KEY_LEVEL",
    "SESSION_LEVEL",
    "WORKSPACE_LEVEL",
    "LimitFields",
    "RateLimitHeaders",
    "level_name",
    "openapi_fields",
    "rate_limit_headers_option",
]

#: The policy names of the levels, as the fields' items name them.
WORKSPACE_LEVEL: Final = "workspace"
IDENTITY_LEVEL: Final = "identity"
KEY_LEVEL: Final = "key"
SESSION_LEVEL: Final = "session"
# The name of a lone decision's item when nothing says which level it was (a RateLimitedError
# built by hand): the draft's own example name.
_UNNAMED: Final = "default"


class RateLimitHeaders(enum.Enum):
    """Which rate-limit fields an admitted (or 429) response carries."""

    #: ``RateLimit-Policy`` and ``RateLimit`` (draft-ietf-httpapi-ratelimit-headers-11); default.
    DRAFT = "draft"
    #: ``RateLimit-Limit``, ``RateLimit-Remaining``, ``RateLimit-Reset`` (the draft up to -06).
    LEGACY = "legacy"
    #: Both sets: for clients of either while they move over.
    BOTH = "both"
    #: None of them (a 429 still carries ``Retry-After``).
    NONE = "none"


def rate_limit_headers_option(value: object) -> RateLimitHeaders:
    """Read the option from its name (``"draft"``, ``"legacy"``, ``"both"``, ``"none"``).

    Raises:
        ConfigurationError: anything else.
    """
    if isinstance(value, RateLimitHeaders):
        return value
    if isinstance(value, str):
        for option in RateLimitHeaders:
            if option.value == value:
                return option
    # Echoing the value is fine: it is a developer's setting, never a secret or a response.
    shown = repr(value) if isinstance(value, str) and len(value) <= 32 else type(value).__name__
    raise ConfigurationError(
        f"rate_limit_headers must be one of 'draft', 'legacy', 'both', 'none', got {shown}"
    )


def level_name(bucket: str) -> str:
    """The policy name of the level whose limiter bucket is ``bucket``.

    A workspace's bucket is its id, which holds no colon; a key's is ``<ws>:key:<id>``, a
    portal session's ``<ws>:session:<id>`` and an identity's ``<ws>:identity:<id>``
    (:func:`authcore.ratelimit.key_bucket`, :func:`~authcore.ratelimit.session_bucket`,
    :func:`~authcore.ratelimit.identity_bucket`).
    """
    _, colon, rest = bucket.partition(":")
    if not colon:
        return WORKSPACE_LEVEL
    if rest.startswith("key:"):
        return KEY_LEVEL
    return SESSION_LEVEL if rest.startswith("session:") else IDENTITY_LEVEL


def _quoted(name: str) -> bytes:
    # RFC 9651 §4.1.6: a String is DQUOTE, its characters (\ and " escaped), DQUOTE. The
    # names here are fixed lowercase words; the escape keeps the writer right for any ASCII.
    return b'"' + name.encode("ascii").replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


@attrs.frozen
class LimitFields:
    """The rate-limit fields of one set of levels, with all that never changes made once.

    ``items`` holds one ``(name, policy parameters)`` pair per level, in the order the limiter
    decides them (:attr:`authcore.ratelimit.RateLimitPolicy.field_params`). Build it with
    :meth:`for_levels`; :meth:`header_bytes` (ASGI) and :meth:`headers` (WSGI and the rest)
    write a response's fields from the request's decisions.
    """

    style: RateLimitHeaders
    items: tuple[tuple[str, bytes], ...]
    # Made once: the policy field (bytes and str), and the RateLimit item of each level with
    # its two integers left to fill in (bytes and str), so a request formats, never joins.
    _policy: tuple[bytes, bytes] = attrs.field(init=False, eq=False, repr=False)
    _policy_text: tuple[str, str] = attrs.field(init=False, eq=False, repr=False)
    _format: bytes = attrs.field(init=False, eq=False, repr=False)
    _format_text: str = attrs.field(init=False, eq=False, repr=False)
    _draft: bool = attrs.field(init=False, eq=False, repr=False)
    _legacy: bool = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        names = [_quoted(name) for name, _ in self.items]
        # RFC 9651 §4.1.1: list members are joined by "," and one SP.
        policy = b", ".join(_quoted(name) + params for name, params in self.items)
        item_format = b", ".join(name + b";r=%d;t=%d" for name in names)
        setattr_ = object.__setattr__
        setattr_(self, "_policy", (b"ratelimit-policy", policy))
        setattr_(self, "_policy_text", ("ratelimit-policy", policy.decode("ascii")))
        setattr_(self, "_format", item_format)
        setattr_(self, "_format_text", item_format.decode("ascii"))
        style = self.style
        both = style is RateLimitHeaders.BOTH
        setattr_(self, "_draft", both or style is RateLimitHeaders.DRAFT)
        setattr_(self, "_legacy", both or style is RateLimitHeaders.LEGACY)

    @classmethod
    def for_levels(cls, style: RateLimitHeaders, levels: Sequence[Level]) -> LimitFields | None:
        """The fields of ``levels`` (a conclusion's), or None when there are no levels (with
        the style ``NONE`` they write no field)."""
        if not levels:
            return None
        items = tuple((level_name(bucket), policy.field_params) for bucket, policy in levels)
        return cls(style, items)

    @classmethod
    def for_decision(cls, decision: RateLimitDecision) -> LimitFields:
        """The draft's fields for a lone decision whose level and window are unknown (a
        :class:`~authcore.errors.RateLimitedError` built by hand): ``q`` is its limit, and
        ``w`` is left out (optional in the draft)."""
        return cls(RateLimitHeaders.DRAFT, ((_UNNAMED, b";q=%d" % decision[1]),))

    def header_bytes(
        self, sent: RateLimitDecision, decisions: Sequence[RateLimitDecision] = ()
    ) -> list[tuple[bytes, bytes]]:
        """The fields for one response, as ASGI wants them (lowercase names, bytes).

        ``sent`` is the deciding decision (:attr:`authcore.flow.Authenticated.rate_limit`);
        ``decisions`` one per item when there are several (``()``: ``sent`` is the one).

        Raises:
            TypeError: ``decisions`` is not one decision per item (a bug in the caller).
        """
        if self._draft:
            state = (sent[2], sent[3]) if not decisions else _numbers(decisions)
            fields = [self._policy, (b"ratelimit", self._format % state)]
            if not self._legacy:
                return fields
        else:
            fields = []
        if self._legacy:
            fields.append((b"ratelimit-limit", b"%d" % sent[1]))
            fields.append((b"ratelimit-remaining", b"%d" % sent[2]))
            fields.append((b"ratelimit-reset", b"%d" % sent[3]))
        return fields

    def headers(
        self, sent: RateLimitDecision, decisions: Sequence[RateLimitDecision] = ()
    ) -> list[tuple[str, str]]:
        """:meth:`header_bytes` as ``str`` pairs (WSGI, Flask, Django, problem responses).

        Raises:
            TypeError: ``decisions`` is not one decision per item (a bug in the caller).
        """
        if self._draft:
            state = (sent[2], sent[3]) if not decisions else _numbers(decisions)
            fields = [self._policy_text, ("ratelimit", self._format_text % state)]
            if not self._legacy:
                return fields
        else:
            fields = []
        if self._legacy:
            fields.append(("ratelimit-limit", str(sent[1])))
            fields.append(("ratelimit-remaining", str(sent[2])))
            fields.append(("ratelimit-reset", str(sent[3])))
        return fields


def _numbers(decisions: Sequence[RateLimitDecision]) -> tuple[int, ...]:
    # (r, t) of every level, in order: what the RateLimit item format takes.
    numbers: list[int] = []
    for decision in decisions:
        numbers.append(decision[2])
        numbers.append(decision[3])
    return tuple(numbers)


# What each field means, for OpenAPI documents (the FastAPI adapter's and ``authcore serve``'s):
# draft-ietf-httpapi-ratelimit-headers-11 §3 and §4 (structured fields, one item per level),
# and the three legacy integer fields.
_TEXT: Final[dict[str, object]] = {"type": "string"}
_SECONDS: Final[dict[str, object]] = {"type": "integer", "minimum": 0}
_DRAFT_DOCS: Final[dict[str, tuple[str, dict[str, object]]]] = {
    "RateLimit-Policy": (
        'The quota policies, one item per level, most specific first: `"workspace";q=600;w=60` '
        "(q: requests, w: window in seconds).",
        _TEXT,
    ),
    "RateLimit": (
        'The state of each policy: `"workspace";r=42;t=17` '
        "(r: requests left now, t: seconds until the quota is full again).",
        _TEXT,
    ),
}
_LEGACY_DOCS: Final[dict[str, tuple[str, dict[str, object]]]] = {
    "RateLimit-Limit": ("Requests per window of the deciding limit.", _SECONDS),
    "RateLimit-Remaining": ("Requests left now under the deciding limit.", _SECONDS),
    "RateLimit-Reset": ("Seconds until the deciding limit's window is full again.", _SECONDS),
}


def openapi_fields(style: RateLimitHeaders) -> dict[str, dict[str, object]]:
    """The OpenAPI header objects (``description`` and ``schema``) of the fields ``style`` sends."""
    docs = {
        RateLimitHeaders.DRAFT: _DRAFT_DOCS,
        RateLimitHeaders.LEGACY: _LEGACY_DOCS,
        RateLimitHeaders.BOTH: {**_DRAFT_DOCS, **_LEGACY_DOCS},
        RateLimitHeaders.NONE: {},
    }[style]
    return {
        name: {"description": text, "schema": dict(schema)} for name, (text, schema) in docs.items()
    }
