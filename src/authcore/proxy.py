"""The dashboard proxy's request builder: a browser request in, the API request (or an error) out.

Browser code calls the dashboard, never the API. The proxy verifies the dashboard session,
maps the user's organization to a workspace, mints a short-lived JWT and forwards the request
to the API with that JWT as the bearer. This module is the pure part: it takes plain values
(the request, the verified session, the resolved workspace, ``now``) and returns a frozen
:class:`UpstreamRequest` or raises one of authcore's errors. Sockets, cookies parsing of the
dashboard's own session and the HTTP client live in :mod:`authcore.adapters.proxy`.

Upstream headers are *built*, never filtered: the only request headers copied are those in
:attr:`ProxySettings.allowed_headers` (a configuration that names a header which must never cross,
such as ``cookie`` or ``x-forwarded-for``, is refused when it is built), and then the proxy adds
``host``, ``authorization`` and, for a body, ``content-length``. So a header the allow-list does
not name, however spelled (case, underscores, Unicode look-alikes), never reaches the API.

The errors it raises are part of authcore's one tree, drawn in :mod:`authcore.errors`: each
derives from :class:`~authcore.errors.ProxyError` and from the branch that says who is at fault
(:class:`~authcore.errors.ProxyRequestError` and its subclasses, 400-431, for the request;
:class:`~authcore.errors.DashboardSessionRequiredError`, 401;
:class:`~authcore.errors.WorkspaceUnavailableError`, 403;
:class:`~authcore.errors.SigningUnavailableError`, 503; :class:`~authcore.errors.UpstreamError`
and its subclasses, 502 and 504, for the API's answer).

A missing or disabled workspace is a 403, never a 401: a dashboard logs its user out on 401,
and the user's dashboard session is fine.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Final, Protocol
from urllib.parse import urlsplit

import attrs

from authcore.credentials import SAFE_METHODS, is_same_origin, request_origin
from authcore.errors import (
    BodyTooLargeError,
    CallerAuthorizationError,
    ConfigurationError,
    CrossSiteRequestError,
    DashboardSessionRequiredError,
    HeadersTooLargeError,
    MethodNotAllowedError,
    PathNotProxiedError,
    ProxyRequestError,
    SigningUnavailableError,
    WorkspaceUnavailableError,
)
from authcore.records import WorkspaceRecord
from authcore.tokens import Secret

__all__ = [
    "DEFAULT_ALLOWED_HEADERS",
    "HOP_BY_HOP_HEADERS",
    "NEVER_FORWARDED_HEADERS",
    "PROXY_OWN_HEADERS",
    "AsyncDashboardSessionVerifier",
    "AsyncWorkspaceResolver",
    "DashboardSession",
    "DashboardSessionVerifier",
    "IncomingRequest",
    "PreparedRequest",
    "ProxySettings",
    "TokenMinter",
    "TokenReuseCache",
    "UpstreamRequest",
    "WorkspaceResolver",
    "build_upstream_request",
    "check_identity",
    "filter_response_headers",
    "prepare_request",
]


# --- header rules -------------------------------------------------------------------------

#: RFC 9110 §7.6.1 and RFC 9112 §9.6: meaningful for one connection only, never forwarded.
HOP_BY_HOP_HEADERS: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",  # not standard, still sent by old clients
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-authenticate",
        "proxy-authorization",
    }
)
# Method and URL override headers: some frameworks let them change what the API executes.
_OVERRIDE_HEADERS: Final = frozenset(
    {
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
        "x-original-url",
        "x-rewrite-url",
    }
)
#: Never copied from the browser, whatever the allow-list says (checked when it is built).
NEVER_FORWARDED_HEADERS: Final = (
    HOP_BY_HOP_HEADERS
    | _OVERRIDE_HEADERS
    | frozenset(
        {
            "authorization",
            "cookie",
            "set-cookie",
            "host",
            "content-length",
            "forwarded",  # RFC 7239
            "x-real-ip",
            "x-forwarded-for",
            "x-forwarded-host",
            "x-forwarded-proto",
        }
    )
)
#: What the proxy itself sets on every upstream request (content-length only with a body).
PROXY_OWN_HEADERS: Final = frozenset({"authorization", "host", "content-length"})
#: The default allow-list of request headers copied upstream.
DEFAULT_ALLOWED_HEADERS: Final = frozenset(
    {"accept", "accept-language", "content-type", "if-match", "if-none-match", "x-request-id"}
)
_FORWARDED_PREFIX: Final = "x-forwarded-"
# Date and Server describe the hop, not the resource: the server running the proxy writes its
# own, so passing the API's on would send each twice.
_RESPONSE_DROPPED: Final = HOP_BY_HOP_HEADERS | frozenset(
    {"set-cookie", "set-cookie2", "authorization", "date", "server"}
)

# RFC 9110 §5.6.2: token = 1*tchar.
_TOKEN: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", re.ASCII)
# Header values that may reach the API: printable ASCII and SP. RFC 9110 §5.5 also allows HTAB
# and obs-text, but nothing the allow-list names needs them, and refusing them keeps every
# control character (CR, LF, NUL, HTAB, DEL) and every encoding ambiguity out.
_HEADER_VALUE: Final = re.compile(r"[\x20-\x7e]*", re.ASCII)
# RFC 3986 §3.3: path = *( "/" segment ), segment = *pchar, pchar = unreserved / pct-encoded /
# sub-delims / ":" / "@". Everything else (backslash, space, controls, non-ASCII, "?", "#") is out.
_PATH_CHARS: Final = re.compile(r"/[A-Za-z0-9\-._~!$&'()*+,;=:@%/]*", re.ASCII)
_PERCENT: Final = re.compile(r"%(.{0,2})", re.ASCII | re.DOTALL)
_HEX2: Final = re.compile(r"[0-9A-Fa-f]{2}", re.ASCII)
# Percent-encoded bytes that would change how the API splits or normalizes the path: "/" and
# "\" (a second separator), "." (dot segments), "%" (double encoding), and control characters.
_FORBIDDEN_ENCODED: Final = frozenset({0x2F, 0x5C, 0x2E, 0x25, 0x7F} | set(range(0x20)))
# A query is passed through only as visible ASCII; "#" would start a fragment.
_QUERY: Final = re.compile(r"[\x21-\x22\x24-\x7e]*", re.ASCII)
# urlsplit's hostname: a DNS name or IPv4 address, or an IPv6 address (brackets removed).
_ORIGIN_HOST: Final = re.compile(r"[A-Za-z0-9.-]{1,253}|[0-9A-Fa-f:.]{2,45}", re.ASCII)
_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})
_MAX_DISPLAY_NAME: Final = 256  # what Keyring.mint accepts for the "name" claim


def _ascii_lower(name: str) -> str | None:
    """Return ``name`` lowercased if it is an RFC 9110 token, else None.

    Only ASCII is folded: ``str.lower`` would turn the Kelvin sign into ``k``, letting a
    non-token name impersonate an allowed one.
    """
    return name.lower() if _TOKEN.fullmatch(name) else None


# --- configuration ------------------------------------------------------------------------


def _str_tuple(value: Iterable[str]) -> tuple[str, ...]:
    # Converters run before validators: anything but a collection of str fails here, as
    # configuration, never as tuple()'s TypeError.
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ConfigurationError(f"expected a collection of strings, not {type(value).__name__}")
    items = tuple(value)
    if not all(isinstance(item, str) for item in items):
        raise ConfigurationError("expected a collection of strings")
    return items


def _str_frozenset(value: Iterable[str]) -> frozenset[str]:
    return frozenset(_str_tuple(value))


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
            or _path_problem(prefix) is not None
        ):
            raise ConfigurationError("each path prefix is a clean path like '/v1/'")


def _check_allowed_headers(_instance: object, _attribute: object, value: frozenset[str]) -> None:
    for name in value:
        if not isinstance(name, str) or _ascii_lower(name) != name:
            raise ConfigurationError("allowed header names are lowercase RFC 9110 tokens")
        if "_" in name or name in NEVER_FORWARDED_HEADERS or name.startswith(_FORWARDED_PREFIX):
            raise ConfigurationError(f"header {name!r} may never be forwarded")


def _check_methods(_instance: object, _attribute: object, value: frozenset[str]) -> None:
    if not value or not all(isinstance(m, str) and _TOKEN.fullmatch(m) for m in value):
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
        default=("/v1/",), converter=_str_tuple, validator=_check_prefixes
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


# --- inputs and outputs -------------------------------------------------------------------


def _header_pairs(value: Iterable[object]) -> tuple[tuple[str, str], ...]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ProxyRequestError("headers are (name, value) pairs of str")
    pairs = tuple(value)
    for pair in pairs:
        if (
            not isinstance(pair, tuple)
            or len(pair) != 2
            or not isinstance(pair[0], str)
            or not isinstance(pair[1], str)
        ):
            raise ProxyRequestError("headers are (name, value) pairs of str")
    return pairs  # type: ignore[return-value]  # every element was checked just above


@attrs.frozen
class IncomingRequest:
    """The browser's request as the proxy received it.

    ``path`` is the raw (still percent-encoded) path *after* the proxy's mount, ``query`` the
    raw query string without ``?``, ``headers`` every field in order with repeats kept (names
    as sent; ASGI hands bytes over, decode them as latin-1). ``scheme`` is how the request
    reached the dashboard (``http`` or ``https``); with ``Host`` it is the dashboard's own
    origin for the cross-site rule.

    Raises:
        ProxyRequestError: ``headers`` is not a collection of (name, value) pairs of str.
    """

    method: str
    path: str
    query: str = ""
    headers: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_header_pairs)
    body: bytes = attrs.field(default=b"", repr=False)
    scheme: str = "http"


@attrs.frozen
class DashboardSession:
    """A verified dashboard session: who the user is and what they may do."""

    user_id: str
    org_id: str
    permissions: tuple[str, ...] = attrs.field(converter=_str_tuple)
    display_name: str | None = None


@attrs.frozen
class PreparedRequest:
    """A request that passed every check that does not need the session (see prepare_request)."""

    method: str
    path: str
    query: str
    headers: tuple[tuple[str, str], ...]
    body: bytes = attrs.field(repr=False)


def _redact_headers(headers: tuple[tuple[str, str | Secret], ...]) -> str:
    return repr(tuple((name, value) for name, value in headers))


@attrs.frozen
class UpstreamRequest:
    """The request to send to the API.

    The ``authorization`` value is a :class:`~authcore.tokens.Secret`, so printing this object
    never shows the JWT; :meth:`wire_headers` reveals it, at the last moment, for the client.
    """

    method: str
    url: str
    headers: tuple[tuple[str, str | Secret], ...] = attrs.field(repr=_redact_headers)
    body: bytes = attrs.field(repr=False)

    def wire_headers(self) -> list[tuple[str, str]]:
        """Return the headers with the bearer revealed: hand them to the HTTP client only."""
        return [
            (name, value.reveal() if isinstance(value, Secret) else value)
            for name, value in self.headers
        ]

    @property
    def token(self) -> Secret | None:
        """The minted JWT alone (without ``Bearer``), to keep it out of the response."""
        for name, value in self.headers:
            if name == "authorization" and isinstance(value, Secret):
                return Secret(value.reveal().removeprefix("Bearer "))
        return None

    @property
    def header_names(self) -> tuple[str, ...]:
        """The header names, in order (safe to log)."""
        return tuple(name for name, _value in self.headers)


# --- injected protocols -------------------------------------------------------------------


class DashboardSessionVerifier(Protocol):
    """Turn the request's ``Cookie`` header values into a verified session, or None."""

    def verify_session(self, cookie_headers: Sequence[str], /) -> DashboardSession | None: ...


class AsyncDashboardSessionVerifier(Protocol):
    """Asynchronous twin of :class:`DashboardSessionVerifier` (what the ASGI app uses)."""

    async def averify_session(
        self, cookie_headers: Sequence[str], /
    ) -> DashboardSession | None: ...


class WorkspaceResolver(Protocol):
    """Map an organization id to its workspace, or None. Raise ``UnavailableError`` if down."""

    def resolve_workspace(self, org_id: str, /) -> WorkspaceRecord | None: ...


class AsyncWorkspaceResolver(Protocol):
    """Asynchronous twin of :class:`WorkspaceResolver`."""

    async def aresolve_workspace(self, org_id: str, /) -> WorkspaceRecord | None: ...


class TokenMinter(Protocol):
    """What signs the upstream JWT: a :class:`~authcore.keyring.Keyring` or anything alike."""

    def mint(
        self,
        *,
        subject: str,
        workspace_id: str,
        permissions: Sequence[str],
        now: int,
        ttl: int | None = None,
        name: str | None = None,
    ) -> Secret: ...


# --- token reuse --------------------------------------------------------------------------


@attrs.frozen
class _Minted:
    token: Secret = attrs.field(repr=False)
    issued_at: int
    ttl: int


_ReuseKey = tuple[str | None, str, str, tuple[str, ...], str | None]


class TokenReuseCache:
    """Reuse a minted JWT for the same signer, user, workspace and permissions until half-life.

    Keeps the API's verified-token cache warm: one user's burst of requests carries one token.
    A token is reused while ``now < issued_at + ttl / 2`` (so it always has at least half its
    lifetime left when sent), and never after the signing kid changes. Bounded: past
    ``max_entries`` the least recently used entry goes. Clockless: ``now`` is passed in. Not
    thread-safe: use one per event loop (it never awaits between a read and its write).
    """

    __slots__ = ("_entries", "max_entries")

    def __init__(self, max_entries: int = 4096) -> None:
        if type(max_entries) is not int or max_entries < 1:
            raise ConfigurationError("max_entries must be a positive integer")
        self.max_entries = max_entries
        self._entries: OrderedDict[_ReuseKey, _Minted] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"TokenReuseCache(entries={len(self._entries)}, max_entries={self.max_entries})"

    def clear(self) -> None:
        """Forget every token (for example after rotating the signing secret)."""
        self._entries.clear()

    def token_for(
        self,
        minter: TokenMinter,
        *,
        subject: str,
        workspace_id: str,
        permissions: Sequence[str],
        name: str | None,
        now: int,
        ttl: int,
    ) -> Secret:
        """Return a reusable token for this identity, minting a new one when needed.

        Raises:
            ConfigurationError: whatever ``minter.mint`` raises.
        """
        kid = getattr(minter, "signing_kid", None)
        key: _ReuseKey = (kid, subject, workspace_id, tuple(permissions), name)
        entry = self._entries.get(key)
        # 2 * elapsed < ttl is "before half-life" without a float; a clock that went backwards
        # (now < issued_at) mints anew rather than trusting the old entry.
        if entry is not None and entry.ttl == ttl and 0 <= 2 * (now - entry.issued_at) < ttl:
            self._entries.move_to_end(key)
            return entry.token
        token = minter.mint(
            subject=subject,
            workspace_id=workspace_id,
            permissions=list(permissions),
            now=now,
            ttl=ttl,
            name=name,
        )
        self._entries[key] = _Minted(token, now, ttl)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return token


# --- the builder --------------------------------------------------------------------------


def _path_problem(path: str) -> str | None:
    """Return why ``path`` (raw, percent-encoded) is unsafe to forward, or None."""
    if not _PATH_CHARS.fullmatch(path):
        # Backslashes, spaces, control characters, non-ASCII, "?", "#".
        return "path has a character outside RFC 3986 pchar"
    for match in _PERCENT.finditer(path):
        escape = match.group(1)
        if not _HEX2.fullmatch(escape):
            return "path has a malformed percent escape"
        if int(escape, 16) in _FORBIDDEN_ENCODED:
            return "path has an encoded '/', '\\', '.', '%' or control character"
    if "//" in path:
        return "path has an empty segment"
    for segment in path.split("/")[1:]:
        # ";" starts path parameters that some servers strip before normalizing ("..;").
        if segment.partition(";")[0] in {".", ".."}:
            return "path has a dot segment"
    return None


def _check_cross_site(
    method: str, scheme: str, headers: Sequence[tuple[str, str]], settings: ProxySettings
) -> None:
    """Apply the one cross-site rule of the core to a state-changing request.

    Every proxied request is carried by the dashboard's session cookie, so every method that
    is not safe must come from the dashboard's own pages.

    Raises:
        CrossSiteRequestError: not ``Sec-Fetch-Site: same-origin``, nor (without that header)
            an ``Origin`` equal to the dashboard's own or one of ``settings.trusted_origins``.
    """
    if method in SAFE_METHODS:
        return
    fetch_site: list[str] = []
    origin: list[str] = []
    host: list[str] = []
    for name, value in headers:
        lowered = _ascii_lower(name)
        if lowered == "sec-fetch-site":
            fetch_site.append(value)
        elif lowered == "origin":
            origin.append(value)
        elif lowered == "host":
            host.append(value)
    if not is_same_origin(
        fetch_site,
        origin,
        own_origin=request_origin(scheme, host),
        allowed_origins=settings.trusted_origins,
    ):
        raise CrossSiteRequestError("state-changing request from another site")


def prepare_request(request: IncomingRequest, settings: ProxySettings) -> PreparedRequest:
    """Apply every rule that needs only the request; return what would be forwarded.

    Call it before any I/O (session lookup, workspace lookup): a request it refuses costs none.

    Raises:
        CallerAuthorizationError: an ``Authorization`` header in any letter case, even empty.
        HeadersTooLargeError: more than ``max_headers`` fields.
        MethodNotAllowedError: a method the proxy does not forward (405, with ``Allow``).
        ProxyRequestError: an unsafe path, query or header value.
        PathNotProxiedError: the path is under no allowed prefix.
        BodyTooLargeError: the body is over ``max_body_bytes``.
        CrossSiteRequestError: a state-changing request from another site.
    """
    headers = request.headers
    if len(headers) > settings.max_headers:
        raise HeadersTooLargeError
    # First, before anything else is looked at: a caller-supplied Authorization is refused in
    # any spelling (RFC 9110 §5.1: names are case-insensitive), however many times, even empty.
    if any(name.strip(" \t").lower() == "authorization" for name, _value in headers):
        raise CallerAuthorizationError

    if request.method not in settings.methods:
        raise MethodNotAllowedError(settings.methods)
    if len(request.path) > settings.max_path_length:
        raise ProxyRequestError("path too long")
    problem = _path_problem(request.path)
    if problem is not None:
        raise ProxyRequestError(problem)
    if not any(request.path.startswith(prefix) for prefix in settings.path_prefixes):
        raise PathNotProxiedError
    if len(request.query) > settings.max_query_length:
        raise ProxyRequestError("query too long")
    if not _QUERY.fullmatch(request.query):
        raise ProxyRequestError("query has a control, space, '#' or non-ASCII character")
    if len(request.body) > settings.max_body_bytes:
        raise BodyTooLargeError

    # RFC 9110 §7.6.1: a header named in Connection is hop-by-hop too, so it is not copied.
    hop_by_hop = set(HOP_BY_HOP_HEADERS)
    for name, value in headers:
        if _ascii_lower(name) == "connection":
            hop_by_hop.update(option.strip(" \t").lower() for option in value.split(","))

    copied: list[tuple[str, str]] = []
    for name, value in headers:
        lowered = _ascii_lower(name)
        if lowered is None or lowered not in settings.allowed_headers or lowered in hop_by_hop:
            continue
        # RFC 9110 §5.5: leading and trailing whitespace is not part of the value.
        value = value.strip(" \t")  # noqa: PLW2901 - the stripped value is the value
        if len(value) > settings.max_header_value_length:
            raise ProxyRequestError(f"header {lowered} too long")
        if not _HEADER_VALUE.fullmatch(value):
            raise ProxyRequestError(f"header {lowered} has a control or non-ASCII character")
        copied.append((lowered, value))

    _check_cross_site(request.method, request.scheme, headers, settings)
    return PreparedRequest(
        method=request.method,
        path=request.path,
        query=request.query,
        headers=tuple(copied),
        body=request.body,
    )


def check_identity(
    session: DashboardSession | None, workspace: WorkspaceRecord | None
) -> tuple[DashboardSession, WorkspaceRecord]:
    """Return the session and its workspace if the user may act through the proxy.

    Raises:
        DashboardSessionRequiredError: ``session`` is None (401).
        WorkspaceUnavailableError: no workspace, a disabled one, or another org's (403).
    """
    if session is None:
        raise DashboardSessionRequiredError
    if workspace is None:
        raise WorkspaceUnavailableError("no workspace for the organization")
    if workspace.disabled:
        raise WorkspaceUnavailableError("workspace disabled")
    if workspace.org_id is not None and workspace.org_id != session.org_id:
        raise WorkspaceUnavailableError("workspace belongs to another organization")
    return session, workspace


def build_upstream_request(
    request: IncomingRequest | PreparedRequest,
    session: DashboardSession | None,
    workspace: WorkspaceRecord | None,
    *,
    settings: ProxySettings,
    minter: TokenMinter,
    now: float,
    tokens: TokenReuseCache | None = None,
) -> UpstreamRequest:
    """Build the API request for a verified dashboard session, with a freshly minted bearer.

    ``workspace`` is what the resolver returned for ``session.org_id``. ``tokens`` reuses
    minted JWTs (see :class:`TokenReuseCache`); without it every call mints.

    Raises:
        ProxyRequestError: any rule of :func:`prepare_request` (400, 404, 413, 431).
        CrossSiteRequestError: a state-changing request from another site (403).
        DashboardSessionRequiredError: ``session`` is None (401).
        WorkspaceUnavailableError: no workspace, or a disabled one (403).
        SigningUnavailableError: the minter cannot sign (503); nothing may be forwarded.
    """
    prepared = (
        request if isinstance(request, PreparedRequest) else prepare_request(request, settings)
    )
    session, workspace = check_identity(session, workspace)

    name = session.display_name
    if name is not None and len(name) > _MAX_DISPLAY_NAME:
        name = None  # a cosmetic claim; an overlong one must not make the request fail
    issued_at = int(now)
    try:
        if tokens is None:
            token = minter.mint(
                subject=session.user_id,
                workspace_id=workspace.id,
                permissions=list(session.permissions),
                now=issued_at,
                ttl=settings.token_ttl,
                name=name,
            )
        else:
            token = tokens.token_for(
                minter,
                subject=session.user_id,
                workspace_id=workspace.id,
                permissions=session.permissions,
                name=name,
                now=issued_at,
                ttl=settings.token_ttl,
            )
    except ConfigurationError as exc:
        # No signing kid, a ttl over max_lifetime, a claim the keyring refuses: the proxy
        # cannot produce a token the API would accept, so nothing goes out.
        raise SigningUnavailableError(f"cannot mint: {type(exc).__name__}") from None

    headers: list[tuple[str, str | Secret]] = [("host", settings.upstream_host)]
    headers.extend(prepared.headers)
    if prepared.body or prepared.method in _BODY_METHODS:
        headers.append(("content-length", str(len(prepared.body))))
    headers.append(("authorization", Secret(f"Bearer {token.reveal()}")))
    url = settings.upstream + prepared.path
    if prepared.query:
        url += "?" + prepared.query
    return UpstreamRequest(
        method=prepared.method, url=url, headers=tuple(headers), body=prepared.body
    )


# --- responses back to the browser --------------------------------------------------------


def filter_response_headers(
    headers: Iterable[tuple[str, str]], *, token: Secret | None = None
) -> tuple[tuple[str, str], ...]:
    """Return the API's response headers that may reach the browser.

    Dropped: hop-by-hop headers and any named in ``Connection``, ``Set-Cookie`` (the API's
    cookies are not the dashboard's), any ``Authorization``, names that are not tokens, values
    with control characters, and anything that contains ``token`` (the minted JWT).
    """
    pairs = list(headers)
    dropped = set(_RESPONSE_DROPPED)
    for name, value in pairs:
        if _ascii_lower(name) == "connection":
            dropped.update(option.strip(" \t").lower() for option in value.split(","))
    raw_token = None if token is None else token.reveal()
    kept: list[tuple[str, str]] = []
    for name, value in pairs:
        lowered = _ascii_lower(name)
        if lowered is None or lowered in dropped:
            continue
        if not _HEADER_VALUE.fullmatch(value):
            continue
        if raw_token and (raw_token in value or raw_token in name):
            continue
        kept.append((lowered, value))
    return tuple(kept)
