"""Find exactly one credential on a request, and say which source it belongs to.

Step 1 of the flow. The input is plain data: the values of every ``Authorization`` header field
(repeated fields stay separate) and the value of the portal cookie, if any. The result is a
:class:`Credential`, ``None`` when the request carries no credential at all, or one of our
errors. "Absent" is not "malformed": no header and no cookie is ``None``; ``Bearer`` with an
empty token is a 400.

Classification is by unambiguous shape: a configured prefix per opaque token type (root key,
portal token), the three-segment base64url shape for a JWT. Prefixes end in ``_`` and contain no
``.``, so no opaque token can take the JWT shape, and no JWT (which starts ``eyJ``) can carry a
prefix. Anything that fits no shape is an unknown credential (401).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

import attrs

from authcore.errors import (
    ConfigurationError,
    CredentialTooLargeError,
    CrossSiteRequestError,
    DuplicateCredentialError,
    InvalidCredentialError,
    MalformedCredentialError,
    UnsupportedSchemeError,
)
from authcore.tokens import (
    DEFAULT_PORTAL_TOKEN_PREFIX,
    DEFAULT_ROOT_KEY_PREFIX,
    Secret,
    validate_prefix,
)

__all__ = [
    "DEFAULT_PORTAL_COOKIE",
    "SAFE_METHODS",
    "Credential",
    "CredentialKind",
    "CredentialSettings",
    "Transport",
    "authorization_values",
    "check_cross_site",
    "classify_token",
    "extract_credential",
    "is_same_origin",
    "parse_cookie_header",
    "request_origin",
]

DEFAULT_PORTAL_COOKIE: Final = "authcore_portal"

# RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token;
# b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
# The scheme is an RFC 9110 §11.1 token, compared case-insensitively.
_AUTHORIZATION: Final = re.compile(r"([!#$%&'*+.^_`|~0-9A-Za-z-]+)( +)(.*)", re.ASCII | re.DOTALL)
_B64TOKEN: Final = re.compile(r"[A-Za-z0-9\-._~+/]+=*", re.ASCII)
# RFC 7515 §7.1: three base64url segments; a JOSE header always starts with '{"' -> "eyJ".
_JWT_SHAPE: Final = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*", re.ASCII)
_BEARER: Final = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9\-._~+/]+=*)", re.ASCII)
# Printable ASCII (no controls, no DEL): the only bytes a header value may hold here.
_VISIBLE: Final = re.compile(r"[\x20-\x7e]*", re.ASCII)
# RFC 6265 §4.1.1 cookie-octet; the portal token alphabet is narrower still.
_COOKIE_VALUE: Final = re.compile(r"[A-Za-z0-9\-._~+/]+=*", re.ASCII)
# RFC 6454 §6.1 serialized origin: scheme "://" host [":" port], no path, no trailing slash.
_ORIGIN: Final = re.compile(r"[a-z][a-z0-9+.-]*://[A-Za-z0-9.:\[\]-]+", re.ASCII)
# RFC 9110 §7.2 Host = uri-host [ ":" port ], lowercased: a reg-name or an IP literal.
_HOST: Final = re.compile(r"(?:[a-z0-9.-]+|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?", re.ASCII)

#: RFC 9110 §9.2.1 safe methods; method names are case-sensitive (§9.1), so "post" is unsafe.
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# RFC 9110 §5.6.2: token = 1*tchar.
_TOKEN: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", re.ASCII)
# RFC 9110 §5.6.3: OWS = *( SP / HTAB ).
_OWS: Final = " \t"


class CredentialKind(enum.Enum):
    """Which verifier a credential goes to."""

    ROOT_KEY = "root_key"
    PORTAL_TOKEN = "portal_token"  # noqa: S105 - an enum label, not a secret
    JWT = "jwt"

    # Members are singletons compared by identity, so identity hashing agrees with equality;
    # Enum's own __hash__ is Python code, and `kind in settings.accepts` runs on every request.
    __hash__ = object.__hash__


class Transport(enum.Enum):
    """Where the credential travelled."""

    BEARER = "bearer"
    COOKIE = "cookie"


@attrs.frozen
class Credential:
    """One credential found on a request. ``secret`` never prints."""

    kind: CredentialKind
    secret: Secret = attrs.field(repr=False)
    transport: Transport = Transport.BEARER


def _frozenset(value: object, what: str) -> frozenset[object]:
    # Converters run before validators: a non-collection must fail as configuration here, not
    # as frozenset()'s TypeError. One string is a collection of characters: refused too.
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ConfigurationError(f"{what} is a collection, not {type(value).__name__}")
    return frozenset(value)


def _kinds(value: Iterable[CredentialKind]) -> frozenset[CredentialKind]:
    kinds = _frozenset(value, "accepts")
    if not all(isinstance(kind, CredentialKind) for kind in kinds):
        raise ConfigurationError("accepts holds CredentialKind members only")
    return kinds  # type: ignore[return-value]  # every element was checked just above


def _origins(value: Iterable[str]) -> frozenset[str]:
    return _frozenset(value, "allowed_origins")  # type: ignore[return-value]  # _check_origins


def _check_cookie_name(instance: object, attribute: object, value: str | None) -> None:
    # RFC 6265 §4.1.1: cookie-name = token (RFC 9110 §5.6.2).
    if value is not None and (not isinstance(value, str) or not _TOKEN.fullmatch(value)):
        raise ConfigurationError("portal_cookie is None or a cookie name (an RFC 9110 token)")


def _check_max_length(instance: object, attribute: object, value: int) -> None:
    if type(value) is not int or value < 1:
        raise ConfigurationError("max_length is a positive integer")


def _check_prefixes(instance: CredentialSettings, attribute: object, value: object) -> None:
    validate_prefix(instance.root_key_prefix)
    validate_prefix(instance.portal_token_prefix)
    a, b = instance.root_key_prefix, instance.portal_token_prefix
    if a.startswith(b) or b.startswith(a):
        raise ConfigurationError("root key and portal token prefixes must not overlap")


def _check_origins(instance: object, attribute: object, value: frozenset[str]) -> None:
    # "null" (sandboxed frames, file: URLs) and "*" would let any site through.
    for origin in value:
        if not isinstance(origin, str) or len(origin) > 256 or not _ORIGIN.fullmatch(origin):
            raise ConfigurationError("allowed origins look like 'https://portal.example.com'")


@attrs.frozen
class CredentialSettings:
    """What a route group accepts and the bounds on what it reads.

    API routes accept root keys and JWTs as Bearer; portal routes accept only portal sessions
    (the cookie, or its token as Bearer). Use :meth:`api` and :meth:`portal`.
    """

    accepts: frozenset[CredentialKind] = attrs.field(
        default=frozenset({CredentialKind.ROOT_KEY, CredentialKind.JWT}),
        converter=_kinds,
    )
    root_key_prefix: str = attrs.field(default=DEFAULT_ROOT_KEY_PREFIX, validator=_check_prefixes)
    portal_token_prefix: str = DEFAULT_PORTAL_TOKEN_PREFIX
    portal_cookie: str | None = attrs.field(default=None, validator=_check_cookie_name)
    #: Bound on one Authorization value, checked before any other work (bytes == chars here).
    max_length: int = attrs.field(default=8192, validator=_check_max_length)
    #: Origins (``https://host[:port]``) whose state-changing cookie requests are accepted
    #: without ``Sec-Fetch-Site: same-origin`` (see :func:`check_cross_site`).
    allowed_origins: frozenset[str] = attrs.field(
        default=frozenset(), converter=_origins, validator=_check_origins
    )

    @classmethod
    def api(
        cls,
        *,
        root_key_prefix: str = DEFAULT_ROOT_KEY_PREFIX,
        portal_token_prefix: str = DEFAULT_PORTAL_TOKEN_PREFIX,
        max_length: int = 8192,
    ) -> CredentialSettings:
        """Root keys and JWTs as Bearer; no cookie.

        Raises:
            ConfigurationError: a prefix is invalid or the prefixes overlap.
        """
        return cls(
            frozenset({CredentialKind.ROOT_KEY, CredentialKind.JWT}),
            root_key_prefix=root_key_prefix,
            portal_token_prefix=portal_token_prefix,
            max_length=max_length,
        )

    @classmethod
    def portal(
        cls,
        cookie: str = DEFAULT_PORTAL_COOKIE,
        *,
        root_key_prefix: str = DEFAULT_ROOT_KEY_PREFIX,
        portal_token_prefix: str = DEFAULT_PORTAL_TOKEN_PREFIX,
        max_length: int = 8192,
        allowed_origins: Iterable[str] = (),
    ) -> CredentialSettings:
        """Portal tokens only, from the cookie ``cookie`` or as Bearer.

        ``allowed_origins`` are the origins whose cookie-borne writes pass the cross-site check
        without ``Sec-Fetch-Site: same-origin``.

        Raises:
            ConfigurationError: a prefix or an origin is invalid.
        """
        return cls(
            frozenset({CredentialKind.PORTAL_TOKEN}),
            root_key_prefix=root_key_prefix,
            portal_token_prefix=portal_token_prefix,
            portal_cookie=cookie,
            max_length=max_length,
            allowed_origins=_origins(allowed_origins),
        )


def classify_token(token: str, settings: CredentialSettings) -> CredentialKind:
    """Say which source a syntactically valid bearer token belongs to.

    Raises:
        InvalidCredentialError: it fits no configured shape, or a shape this route does not
            accept (a portal token on an API route, a root key on a portal route).
    """
    if token.startswith(settings.root_key_prefix):
        kind = CredentialKind.ROOT_KEY
    elif token.startswith(settings.portal_token_prefix):
        kind = CredentialKind.PORTAL_TOKEN
    elif _JWT_SHAPE.fullmatch(token):
        kind = CredentialKind.JWT
    else:
        raise InvalidCredentialError("unrecognized token shape")
    if kind not in settings.accepts:
        raise InvalidCredentialError(f"{kind.value} not accepted on this route")
    return kind


def _parse_authorization(value: str, settings: CredentialSettings) -> Credential:
    if len(value) > settings.max_length:
        raise CredentialTooLargeError
    # Fast path for the common case, the whole RFC 6750 §2.1 grammar in one match; anything
    # else goes through the step-by-step checks below, which say what is wrong.
    fast = _BEARER.fullmatch(value)
    if fast is None:
        # RFC 9110 §5.5: optional whitespace (SP, HTAB) around a field value is not part of
        # it. Servers that do not trim it hand it on; nothing else is trimmed or repaired.
        value = value.strip(_OWS)
        fast = _BEARER.fullmatch(value)
    if fast is not None:
        token = fast.group(1)
        return Credential(classify_token(token, settings), Secret(token), Transport.BEARER)
    # Non-ASCII (as ASGI delivers it: latin-1), controls, tabs, DEL: malformed, never decoded.
    if not _VISIBLE.fullmatch(value):
        raise MalformedCredentialError("non-printable or non-ASCII bytes")
    match = _AUTHORIZATION.fullmatch(value)
    if match is None:
        if value.lower() == "bearer":
            raise MalformedCredentialError("empty bearer token")
        if value.strip(" ") == "":
            raise MalformedCredentialError("empty Authorization header")
        # A bare word ("Basic") is an unknown scheme with no credentials.
        if _B64TOKEN.fullmatch(value) and value.isalpha():
            raise UnsupportedSchemeError
        raise MalformedCredentialError("not 'scheme SP credentials'")
    scheme, _spaces, token = match.groups()
    if scheme.lower() != "bearer":
        raise UnsupportedSchemeError
    if not token:
        raise MalformedCredentialError("empty bearer token")
    if not _B64TOKEN.fullmatch(token):
        # Covers comma-joined repeats ("Bearer a, Bearer b"), trailing spaces, '=' inside.
        raise MalformedCredentialError("bearer token is not a b64token")
    return Credential(classify_token(token, settings), Secret(token), Transport.BEARER)


def extract_credential(
    authorization: Sequence[str],
    portal_cookie: str | None,
    settings: CredentialSettings,
) -> Credential | None:
    """Find exactly one credential: from the ``Authorization`` field values and the cookie.

    ``authorization`` holds every ``Authorization`` field value in order (repeated fields stay
    separate). ``portal_cookie`` is the portal cookie's value, or None. Cookies other than the
    portal cookie are never credentials. A route whose settings have no ``portal_cookie`` ignores
    the cookie entirely.

    Raises:
        DuplicateCredentialError: two Authorization fields, or a header and the portal cookie.
        MalformedCredentialError: bad syntax (including :class:`CredentialTooLargeError`).
        UnsupportedSchemeError: a scheme other than Bearer (401 with the Bearer challenge).
        InvalidCredentialError: a token of no known shape, or one this route does not accept.
    """
    if settings.portal_cookie is None:
        portal_cookie = None
    if len(authorization) > 1:
        raise DuplicateCredentialError("repeated Authorization header")
    if authorization:
        if portal_cookie is not None:
            raise DuplicateCredentialError("Authorization header and portal cookie")
        return _parse_authorization(authorization[0], settings)
    if portal_cookie is None:
        return None
    if len(portal_cookie) > settings.max_length:
        raise CredentialTooLargeError
    if not _COOKIE_VALUE.fullmatch(portal_cookie):
        raise MalformedCredentialError("portal cookie is not a token")
    if not portal_cookie.startswith(settings.portal_token_prefix):
        raise InvalidCredentialError("portal cookie without the portal prefix")
    return Credential(CredentialKind.PORTAL_TOKEN, Secret(portal_cookie), Transport.COOKIE)


def check_cross_site(
    method: str,
    authorization: Sequence[str],
    portal_cookie: str | None,
    settings: CredentialSettings,
    *,
    sec_fetch_site: Sequence[str] = (),
    origin: Sequence[str] = (),
    own_origin: str | None = None,
    websocket: bool = False,
) -> None:
    """Refuse a state-changing request carried by the portal cookie unless it is same-origin.

    Only a cookie is sent by the browser on its own, so only a request whose credential would
    be the portal cookie (no ``Authorization`` field, the cookie present, the route reads it)
    is checked; Bearer requests skip the check. Safe methods pass. Any other method, and any
    WebSocket handshake (cross-site WebSocket hijacking), passes only if ``Sec-Fetch-Site`` is
    ``same-origin``, or, where that header is absent, ``Origin`` is the serving site's own
    origin (``own_origin``, the request's scheme and ``Host``) or one of
    ``settings.allowed_origins``. A repeated header counts as unreadable. No header at all is a
    refusal: fail closed.

    This is the one cross-site rule: the portal routes and the dashboard proxy both use it.

    Raises:
        CrossSiteRequestError: the request is state-changing, cookie-borne and not same-origin.
    """
    if settings.portal_cookie is None or authorization or portal_cookie is None:
        return
    if method in SAFE_METHODS and not websocket:
        return
    if not is_same_origin(
        sec_fetch_site, origin, own_origin=own_origin, allowed_origins=settings.allowed_origins
    ):
        raise CrossSiteRequestError("state-changing cookie request from another site")


def is_same_origin(
    sec_fetch_site: Sequence[str],
    origin: Sequence[str],
    *,
    own_origin: str | None = None,
    allowed_origins: frozenset[str] = frozenset(),
) -> bool:
    """Return whether the browser says a request came from the serving site itself.

    ``Sec-Fetch-Site: same-origin`` says so (W3C Fetch Metadata); any other value, ``none``
    and ``same-site`` included, does not. Only when ``Sec-Fetch-Site`` is absent is ``Origin``
    read: it must equal ``own_origin`` or be one of ``allowed_origins``. Values are compared
    after trimming OWS (RFC 9110 §5.5); a repeated field is unreadable, so it does not pass.
    """
    if sec_fetch_site:
        return len(sec_fetch_site) == 1 and sec_fetch_site[0].strip(_OWS) == "same-origin"
    if len(origin) != 1:
        return False
    value = origin[0].strip(_OWS)
    # "null" (sandboxed frames, file: URLs) never equals a configured or computed origin.
    return (own_origin is not None and value == own_origin) or value in allowed_origins


def request_origin(scheme: str, host: Sequence[str]) -> str | None:
    """Return the serving site's origin, ``scheme://host``, from the request's one ``Host``.

    None when the request has no single well-formed ``Host`` (then only configured origins
    can vouch for a cookie request). A browser sets ``Host`` itself, so a cross-site page
    cannot make it match its own ``Origin``.
    """
    if len(host) != 1 or scheme not in ("http", "https", "ws", "wss"):
        return None
    value = host[0].strip(_OWS).lower()
    if not _HOST.fullmatch(value):
        return None
    # The browser's Origin for a page over ws(s) is the page's http(s) origin.
    web_scheme = {"ws": "http", "wss": "https"}.get(scheme, scheme)
    return f"{web_scheme}://{value}"


def authorization_values(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> list[str]:
    """Return every ``Authorization`` value from a mapping or a list of (name, value) pairs.

    Mappings that can hold repeated fields (``getlist`` / ``get_all``, as in Werkzeug and
    Starlette) are asked for all of them; names compare case-insensitively (RFC 9110 §5.1).
    """
    for getter in ("getlist", "get_all"):
        method = getattr(headers, getter, None)
        if callable(method):
            return list(method("authorization"))
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [value for name, value in items if name.lower() == "authorization"]


def parse_cookie_header(values: Iterable[str], name: str) -> str | None:
    """Return the value of cookie ``name`` from ``Cookie`` header values, or None.

    Raises:
        DuplicateCredentialError: the cookie appears more than once (which would be ambiguous).
    """
    found: str | None = None
    for header in values:
        for pair in header.split(";"):
            key, sep, value = pair.strip(_OWS).partition("=")
            if sep and key == name:
                if found is not None:
                    raise DuplicateCredentialError("portal cookie repeated")
                found = value
    return found
