"""The proxy's configuration: what it forwards, where to, and the bound on every input."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Final
from urllib.parse import urlsplit

import attrs

from authcore.errors import ConfigurationError
from authcore.proxy._rules import (
    DEFAULT_ALLOWED_HEADERS,
    FORWARDED_PREFIX,
    NEVER_FORWARDED_HEADERS,
    TOKEN,
    ascii_lower,
    path_problem,
)

__all__ = ["ProxySettings", "str_tuple"]

# urlsplit's hostname: a DNS name or IPv4 address, or an IPv6 address (brackets removed).
_ORIGIN_HOST: Final = re.compile(r"[A-Za-z0-9.-]{1,253}|[0-9A-Fa-f:.]{2,45}", re.ASCII)


def str_tuple(value: Iterable[str]) -> tuple[str, ...]:
    """Return ``value`` as a tuple of str (an attrs converter).

    Raises:
        ConfigurationError: ``value`` is a single string, not iterable, or holds a non-str.
    """
    # Converters run before validators: anything but a collection of str fails here, as
    # configuration, never as tuple()'s TypeError.
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ConfigurationError(f"expected a collection of strings, not {type(value).__name__}")
    items = tuple(value)
    if not all(isinstance(item, str) for item in items):
        raise ConfigurationError("expected a collection of strings")
    return items


def _str_frozenset(value: Iterable[str]) -> frozenset[str]:
    return frozenset(str_tuple(value))


def _check_upstream(_instance: object, _attribute: object, value: object) -> None:
    if not isinstance(value, str):
        raise ConfigurationError("upstream must be a string like 'http://127.0.0.1:8000'")
    parts = urlsplit(value)
    try:
        parts.port  # noqa: B018 - parsing the port is the check (ValueError when invalid)
    except ValueError:
        raise ConfigurationError("upstream has an invalid port") from None
    if (
        parts.scheme not in {"http", "https"}
        or not parts.hostname
        or not _ORIGIN_HOST.fullmatch(parts.hostname)
        or "@" in parts.netloc
        or value != f"{parts.scheme}://{parts.netloc}"
    ):
        # The origin is fixed by configuration; a path here would be prepended to every
        # request and change what the prefix check means.
        raise ConfigurationError("upstream must be scheme://host[:port] with nothing after it")


def _check_prefixes(_instance: object, _attribute: object, value: tuple[str, ...]) -> None:
    if not value:
        raise ConfigurationError("path_prefixes must name at least one prefix")
    for prefix in value:
        if (
            not isinstance(prefix, str)
            or not prefix.startswith("/")
            or not prefix.endswith("/")
            or path_problem(prefix) is not None
        ):
            raise ConfigurationError("each path prefix is a clean path like '/v1/'")


def _check_allowed_headers(_instance: object, _attribute: object, value: frozenset[str]) -> None:
    for name in value:
        if not isinstance(name, str) or ascii_lower(name) != name:
            raise ConfigurationError("allowed header names are lowercase RFC 9110 tokens")
        if "_" in name or name in NEVER_FORWARDED_HEADERS or name.startswith(FORWARDED_PREFIX):
            raise ConfigurationError(f"header {name!r} may never be forwarded")


def _check_methods(_instance: object, _attribute: object, value: frozenset[str]) -> None:
    if not value or not all(isinstance(m, str) and TOKEN.fullmatch(m) for m in value):
        raise ConfigurationError("methods are RFC 9110 tokens")
    if value & {"CONNECT", "TRACE"}:
        raise ConfigurationError("CONNECT and TRACE are never forwarded")


def _in_range(low: int, high: int) -> Callable[[object, attrs.Attribute[int], object], None]:
    def validate(_instance: object, attribute: attrs.Attribute[int], value: object) -> None:
        if type(value) is not int or not low <= value <= high:
            raise ConfigurationError(f"{attribute.name} must be an integer in {low}..{high}")

    return validate


def _check_origins(_instance: object, _attribute: object, value: frozenset[str]) -> None:
    for origin in value:
        if not isinstance(origin, str) or origin.endswith("/") or "://" not in origin:
            raise ConfigurationError("trusted origins look like 'https://dashboard.example'")


@attrs.frozen
class ProxySettings:
    """What the proxy forwards, where to, and the bounds on every input.

    Raises:
        ConfigurationError: an upstream that is not a bare origin, a prefix that is not a clean
            path, an allow-list naming a header that may never be forwarded, or a bound out of
            its range.
    """

    #: The API origin, fixed here: scheme, host and port only.
    upstream: str = attrs.field(default="http://127.0.0.1:8000", validator=_check_upstream)
    #: A request path (after the proxy's mount) must start with one of these.
    path_prefixes: tuple[str, ...] = attrs.field(
        default=("/v1/",), converter=str_tuple, validator=_check_prefixes
    )
    #: Request headers copied upstream (lowercase names); everything else is left behind.
    allowed_headers: frozenset[str] = attrs.field(
        default=DEFAULT_ALLOWED_HEADERS, converter=_str_frozenset, validator=_check_allowed_headers
    )
    methods: frozenset[str] = attrs.field(
        default=frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}),
        converter=_str_frozenset,
        validator=_check_methods,
    )
    #: Largest request body forwarded: what the API accepts (16 KiB), at most 64 KiB. The
    #: proxy buffers a body before it forwards it, so this bounds its memory per request.
    max_body_bytes: int = attrs.field(default=16 * 1024, validator=_in_range(0, 64 * 1024))
    #: Seconds a whole request body may take to arrive; a client trickling bytes gets 408.
    body_timeout: int = attrs.field(default=10, validator=_in_range(1, 300))
    #: Lifetime of a minted JWT; at most the keyring's ``max_lifetime``.
    token_ttl: int = attrs.field(default=60, validator=_in_range(2, 86_400))
    max_path_length: int = attrs.field(default=2048, validator=_in_range(1, 65_536))
    max_query_length: int = attrs.field(default=4096, validator=_in_range(0, 65_536))
    max_header_value_length: int = attrs.field(default=8192, validator=_in_range(1, 65_536))
    max_headers: int = attrs.field(default=128, validator=_in_range(1, 1024))
    #: Origins (besides the dashboard's own) whose state-changing requests pass when the
    #: browser sends no ``Sec-Fetch-Site`` (see :func:`authcore.credentials.is_same_origin`).
    trusted_origins: frozenset[str] = attrs.field(
        default=frozenset(), converter=_str_frozenset, validator=_check_origins
    )

    @property
    def upstream_host(self) -> str:
        """The ``host`` header the proxy sends: the upstream's host and port."""
        return urlsplit(self.upstream).netloc
