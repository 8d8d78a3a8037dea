"""The JWT keyring: HS256 secrets named by ``kid``, minting and verifying short-lived JWTs.

The dashboard proxy mints a JWT per forwarded request (:meth:`Keyring.mint`); the API verifies
it (:meth:`Keyring.verify`) and builds the principal from the returned :class:`VerifiedClaims`.
Both sides share an ordered list of signing secrets, each named by a ``kid``. The module is
pure: no I/O and no clock reads, ``now`` is always a parameter.

Verification is stricter than PyJWT on its own, and every rule is checked here rather than
left to library defaults:

* The size bound and the three-segment shape are checked before anything is decoded, so a
  multi-megabyte or garbage bearer costs one regular-expression pass (400).
* The header is parsed here, rejecting duplicate members (RFC 7515 §5.2 step 4). ``alg`` must
  be exactly ``HS256``: a token never chooses its own algorithm (RFC 8725 §3.1, the ``none``
  and RS/HS confusion attacks). Members that would let a token point at its own key
  (``jku``, ``x5u``, ``jwk``, ``x5c``, ``x5t``; RFC 7515 §4.1.2-4.1.7) are refused, and so are
  ``crit`` (RFC 7515 §4.1.11: we understand no extension) and ``b64`` (RFC 7797).
* ``kid`` (RFC 7515 §4.1.4) is only ever a key into the configured list, never a path, URL or
  query; an unknown ``kid`` is rejected without trying any secret. With a ``kid`` exactly one
  HMAC is computed, whatever the length of the list.
* The payload is parsed here too: duplicate claims are rejected (RFC 7519 §4), ``NaN`` and
  ``Infinity`` are not JSON (RFC 8259 §6), and every claim is type- and size-checked: ``iss``
  and ``aud`` are single strings equal to the configured ones (RFC 7519 §4.1.1, §4.1.3; a list
  ``aud`` is refused, as one token must never be good for two audiences), ``iat``/``exp``/``nbf``
  are integer NumericDates (RFC 7519 §2, §4.1.4-4.1.6) of sane magnitude, and a token may not
  live longer than ``max_lifetime``, so a leaked token is useful for minutes at most.

Every rejection is an :class:`~authcore.errors.InvalidCredentialError` (401) whose ``detail``
names the reason for developers, or a :class:`~authcore.errors.MalformedCredentialError` /
:class:`~authcore.errors.CredentialTooLargeError` (400) for what fails before decoding.
Nothing else escapes :meth:`Keyring.verify`.

Secret rotation (add the new secret to the API's list, switch the signer to it, remove the old
one once every token it signed has expired) is described, and each step checked, in
:mod:`authcore.rotation`; :class:`RotationCheck` and :func:`check_rotation` are re-exported here.
"""

from __future__ import annotations

import binascii
import json
import re
import secrets as _random
from collections.abc import Callable, Sequence
from typing import Any, Final, NoReturn

import attrs
from jwt.api_jws import PyJWS
from jwt.exceptions import InvalidKeyError, InvalidSignatureError, PyJWTError

from authcore.errors import (
    ConfigurationError,
    CredentialTooLargeError,
    InvalidCredentialError,
    MalformedCredentialError,
)
from authcore.names import unsafe_in
from authcore.rotation import RotationCheck, check_rotation
from authcore.tokens import Secret

__all__ = [
    "JWTSettings",
    "Keyring",
    "RotationCheck",
    "SigningSecret",
    "VerifiedClaims",
    "check_rotation",
]

_ALGORITHM: Final = "HS256"
_ALGORITHMS: Final = (_ALGORITHM,)
# One instance that knows only HS256, so no other algorithm can be reached even by mistake.
_JWS: Final = PyJWS(algorithms=[_ALGORITHM], options={"enforce_minimum_key_length": True})

_KID = re.compile(r"[A-Za-z0-9._-]{1,64}", re.ASCII)
# RFC 7515 §7.1: compact serialization, base64url without padding (§2). Header and payload are
# never empty in a JWT; an empty signature is let through so that it fails as "alg" or
# "signature" (401), like any other forgery.
_COMPACT = re.compile(r"([A-Za-z0-9_-]+)\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*", re.ASCII)
_TO_STANDARD_B64: Final = bytes.maketrans(b"-_", b"+/")
_MIN_SECRET_BYTES: Final = 32  # RFC 7518 §3.2: a key of at least the hash output size
# Header members that would let the token choose its own key, or extensions we do not
# implement (RFC 7515 §4.1.2-4.1.7, §4.1.11; RFC 7797 §3).
_FORBIDDEN_HEADER: Final = frozenset({"jku", "x5u", "jwk", "x5c", "x5t", "x5t#S256", "crit", "b64"})
_MAX_NUMERIC_DATE: Final = 10**11  # year ~5138: rejects absurd magnitudes cheaply
_MAX_SUBJECT: Final = 256
_MAX_WORKSPACE_ID: Final = 128
_MAX_PERMISSION: Final = 128
_MAX_JTI: Final = 128
_MAX_NAME: Final = 256
# JSON nesting we read. Our tokens nest two deep (an object holding a list). The bound is ours,
# not the interpreter's: json's C scanner stops at a depth that follows the recursion limits,
# and those moved between releases (a 1000-deep list is a RecursionError on 3.11 and parses on
# 3.12; 2500 parses on 3.13), so leaning on RecursionError would make the answer to one token
# depend on the Python version.
_MAX_JSON_DEPTH: Final = 32


def _positive_int(low: int, high: int) -> Callable[[object, attrs.Attribute[int], object], None]:
    """Return an attrs validator: an ``int`` (not ``bool``) in ``low..high``."""

    def validate(_instance: object, attribute: attrs.Attribute[int], value: object) -> None:
        if type(value) is not int or not low <= value <= high:
            raise ConfigurationError(f"{attribute.name} must be an integer in {low}..{high}")

    return validate


def _non_empty_str(_instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str) or not value or len(value) > 256:
        raise ConfigurationError(f"{attribute.name} must be a non-empty string (<= 256 chars)")


def _validate_kid(_instance: object, _attribute: attrs.Attribute[str], kid: object) -> None:
    if not isinstance(kid, str) or not _KID.fullmatch(kid):
        raise ConfigurationError("a kid is 1-64 characters from [A-Za-z0-9._-]")


def _validate_secret(instance: object, _attribute: attrs.Attribute[Secret], secret: object) -> None:
    # The detail names the kid, never the value.
    kid = getattr(instance, "kid", "?")
    if not isinstance(secret, Secret):
        raise ConfigurationError(f"the secret for kid {kid!r} must be an authcore Secret")
    key = secret.reveal().encode()
    if len(key) < _MIN_SECRET_BYTES:
        raise ConfigurationError(
            f"the secret for kid {kid!r} is shorter than {_MIN_SECRET_BYTES} bytes"
        )
    try:
        _JWS.get_algorithm_by_name(_ALGORITHM).prepare_key(key)
    except InvalidKeyError:
        # PyJWT refuses HMAC secrets that look like PEM/SSH/DER/JWK keys (algorithm confusion).
        raise ConfigurationError(
            f"the secret for kid {kid!r} looks like an asymmetric key or a JWK"
        ) from None


@attrs.frozen
class SigningSecret:
    """One HS256 secret and the ``kid`` that names it.

    Raises:
        ConfigurationError: the kid is not 1-64 of ``[A-Za-z0-9._-]``, or the secret is not a
            :class:`~authcore.tokens.Secret` of at least 32 UTF-8 bytes.
    """

    kid: str = attrs.field(validator=_validate_kid)
    secret: Secret = attrs.field(repr=False, validator=_validate_secret)


@attrs.frozen
class JWTSettings:
    """What a JWT must say and how long it may live.

    Raises:
        ConfigurationError: a value is out of its documented range.
    """

    issuer: str = attrs.field(default="authcore-dashboard", validator=_non_empty_str)
    audience: str = attrs.field(default="authcore-api", validator=_non_empty_str)
    #: Longest allowed ``exp - iat`` in seconds (1..86400).
    max_lifetime: int = attrs.field(default=300, validator=_positive_int(1, 86_400))
    #: Clock skew tolerated between the minting and the verifying host (0..60 s).
    leeway: int = attrs.field(default=5, validator=_positive_int(0, 60))
    max_token_bytes: int = attrs.field(default=8192, validator=_positive_int(64, 1 << 20))
    max_permissions: int = attrs.field(default=256, validator=_positive_int(0, 65_536))


@attrs.frozen
class VerifiedClaims:
    """The claims of a JWT whose signature, header and claims all passed verification."""

    subject: str
    workspace_id: str
    permissions: tuple[str, ...]
    issued_at: int
    expires_at: int
    not_before: int | None = None
    jwt_id: str | None = None
    name: str | None = None
    #: The kid of the configured secret that verified the signature. A cache of verified
    #: tokens checks it is still configured, so removing a secret also retires cached tokens.
    key_id: str | None = None


class _KeyTable:
    """Pre-encoded HMAC keys by kid; prints as ``[secure]`` so no dump of a Keyring leaks."""

    __slots__ = ("by_kid", "kids", "ordered")

    def __init__(self, secrets: Sequence[SigningSecret]) -> None:
        self.ordered: tuple[bytes, ...] = tuple(s.secret.reveal().encode() for s in secrets)
        self.kids: tuple[str, ...] = tuple(s.kid for s in secrets)
        self.by_kid: dict[str, bytes] = dict(zip(self.kids, self.ordered, strict=True))

    def __repr__(self) -> str:
        return "[secure]"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a key table cannot be pickled")


def _reject(detail: str) -> NoReturn:
    raise InvalidCredentialError(detail)


class _DuplicateMemberError(ValueError):
    pass


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # RFC 7515 §5.2 step 4 and RFC 7519 §4: reject duplicate member names rather than let two
    # JSON parsers (ours, and whatever else reads the token) disagree on which one counts.
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _DuplicateMemberError
    return obj


def _no_constant(name: str) -> NoReturn:
    # RFC 8259 §6: NaN and Infinity are not JSON numbers.
    raise ValueError(name)


# Built once: json.loads() would build a decoder per call when given hooks.
_JSON: Final = json.JSONDecoder(object_pairs_hook=_unique_object, parse_constant=_no_constant)


def _nests_deeper_than(text: str, limit: int) -> bool:
    """True if arrays and objects in the JSON ``text`` nest more than ``limit`` deep.

    Brackets inside strings do not count. Malformed text is left to the parser.
    """
    # Fewer openers than the limit cannot nest deeper: one C-speed count for every real token.
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def _parse_json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        # RFC 8259 §8.1: JSON exchanged between systems is UTF-8.
        text = data.decode()
    except UnicodeDecodeError:
        _reject(f"{what} is not valid JSON")
    # RFC 8259 §9: a parser may limit nesting; ours does, at one depth on every Python.
    if _nests_deeper_than(text, _MAX_JSON_DEPTH):
        _reject(f"{what} is not valid JSON")
    try:
        value = _JSON.decode(text)
    except _DuplicateMemberError:
        _reject(f"duplicate {what} member")
    except (ValueError, TypeError, RecursionError, OverflowError):
        # ValueError covers bad JSON and ints over the 4300-digit conversion limit;
        # RecursionError cannot happen under the depth bound, and is kept as a second wall.
        _reject(f"{what} is not valid JSON")
    if not isinstance(value, dict):
        _reject(f"{what} is not a JSON object")
    return value


def _numeric_date(claims: dict[str, Any], name: str) -> int | None:
    # RFC 7519 §2 NumericDate; we accept integers only (no floats, strings or booleans).
    value = claims.get(name)
    if value is None:
        if name in claims:
            _reject(f"{name} is not an integer")
        return None
    if type(value) is not int:
        _reject(f"{name} is not an integer")
    if not 0 <= value < _MAX_NUMERIC_DATE:
        _reject(f"{name} is out of range")
    return value


def _id_claim(claims: dict[str, Any], name: str, limit: int) -> str:
    # The names rule (authcore.names): an id reaches audit events, logs and stores, so a blank
    # one, or one holding a control, format (bidi), line-separator or surrogate character, is
    # refused here, before any store sees it: every backend answers the same 401.
    value = claims[name]
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        _reject(f"{name} is not a non-blank string of at most {limit} characters")
    if unsafe_in(value):
        _reject(f"{name} holds a control, format, line-separator or surrogate character")
    return value


def _optional_str(claims: dict[str, Any], name: str, limit: int) -> str | None:
    if claims.get(name) is None and name not in claims:
        return None
    return _id_claim(claims, name, limit)


def _required_str(claims: dict[str, Any], name: str, limit: int) -> str:
    if name not in claims:
        _reject(f"{name} missing")
    return _id_claim(claims, name, limit)


def _check_claims(
    claims: dict[str, Any], settings: JWTSettings, now: float, key_id: str | None = None
) -> VerifiedClaims:
    """Validate a parsed payload; raise InvalidCredentialError naming the first failed rule."""
    # RFC 7519 §4.1.1 / §4.1.3: one issuer, one audience, compared as exact strings. A list
    # `aud` is refused: a token must never be accepted by two audiences.
    if "iss" not in claims:
        _reject("iss missing")
    if claims["iss"] != settings.issuer:
        _reject("iss")
    if "aud" not in claims:
        _reject("aud missing")
    if claims["aud"] != settings.audience:
        _reject("aud")
    subject = _required_str(claims, "sub", _MAX_SUBJECT)
    workspace_id = _required_str(claims, "workspace_id", _MAX_WORKSPACE_ID)
    if "permissions" not in claims:
        _reject("permissions missing")
    permissions = claims["permissions"]
    if not isinstance(permissions, list):
        _reject("permissions is not a list")
    if len(permissions) > settings.max_permissions:
        _reject("too many permissions")
    for permission in permissions:
        if not isinstance(permission, str) or len(permission) > _MAX_PERMISSION:
            _reject(f"a permission is not a string of at most {_MAX_PERMISSION} characters")
    issued_at = _numeric_date(claims, "iat")
    if issued_at is None:
        _reject("iat missing")
    expires_at = _numeric_date(claims, "exp")
    if expires_at is None:
        _reject("exp missing")
    not_before = _numeric_date(claims, "nbf")
    jwt_id = _optional_str(claims, "jti", _MAX_JTI)
    name = _optional_str(claims, "name", _MAX_NAME)

    leeway = settings.leeway
    if expires_at <= issued_at:
        _reject("exp is not after iat")
    if expires_at - issued_at > settings.max_lifetime:
        _reject("lifetime over max_lifetime")
    # RFC 7519 §4.1.4: reject on or after exp (plus leeway for clock skew).
    if not now < expires_at + leeway:
        _reject("expired")
    if not issued_at <= now + leeway:
        _reject("issued in the future")
    # RFC 7519 §4.1.5: reject before nbf (minus leeway).
    if not_before is not None and not not_before <= now + leeway:
        _reject("not yet valid (nbf)")
    return VerifiedClaims(
        subject=subject,
        workspace_id=workspace_id,
        permissions=tuple(permissions),
        issued_at=issued_at,
        expires_at=expires_at,
        not_before=not_before,
        jwt_id=jwt_id,
        name=name,
        key_id=key_id,
    )


_DEFAULT_SETTINGS: Final = JWTSettings()  # frozen, so one shared default is safe


@attrs.frozen(init=False)
class Keyring:
    """An ordered list of HS256 secrets; mints with one of them, verifies with all of them.

    ``signing_kid=None`` makes a verify-only keyring (the API side): :meth:`mint` then raises.

    Raises:
        ConfigurationError: no secret, two secrets with one kid or one value, or a
            ``signing_kid`` that names none of them.
    """

    _secrets: tuple[SigningSecret, ...]
    _signing_kid: str | None
    _settings: JWTSettings
    _keys: _KeyTable = attrs.field(repr=False, eq=False, hash=False)

    def __init__(
        self,
        secrets: Sequence[SigningSecret],
        *,
        signing_kid: str | None = None,
        settings: JWTSettings = _DEFAULT_SETTINGS,
    ) -> None:
        ordered = tuple(secrets)
        if not ordered:
            raise ConfigurationError("a keyring needs at least one secret")
        if not all(isinstance(s, SigningSecret) for s in ordered):
            raise ConfigurationError("secrets must be a sequence of SigningSecret")
        kids = [s.kid for s in ordered]
        if len(set(kids)) != len(kids):
            raise ConfigurationError("two secrets share a kid")
        if len({s.secret.reveal() for s in ordered}) != len(ordered):
            # The kid would no longer identify the key that signed a token.
            raise ConfigurationError("two kids share one secret value")
        if signing_kid is not None and signing_kid not in kids:
            raise ConfigurationError("signing_kid is not one of the configured kids")
        if not isinstance(settings, JWTSettings):
            raise ConfigurationError("settings must be a JWTSettings")
        self.__attrs_init__(ordered, signing_kid, settings, _KeyTable(ordered))

    @property
    def kids(self) -> tuple[str, ...]:
        """The configured kids, in verification order."""
        return self._keys.kids

    @property
    def signing_kid(self) -> str | None:
        """The kid :meth:`mint` signs with, or None for a verify-only keyring."""
        return self._signing_kid

    @property
    def settings(self) -> JWTSettings:
        """The issuer, audience and bounds tokens are minted and verified with."""
        return self._settings

    def mint(
        self,
        *,
        subject: str,
        workspace_id: str,
        permissions: Sequence[str],
        now: int,
        ttl: int | None = None,
        name: str | None = None,
        jwt_id: str | None = None,
    ) -> Secret:
        """Return a new HS256 JWT signed with the signing secret, valid from ``now`` for ``ttl``.

        ``ttl`` defaults to ``settings.max_lifetime``; ``jwt_id`` defaults to 128 random bits.

        Raises:
            ConfigurationError: no signing kid; ``ttl`` outside 1..max_lifetime; a claim that
                :meth:`verify` would reject; or a token over ``max_token_bytes``.
        """
        settings = self._settings
        if self._signing_kid is None:
            raise ConfigurationError("this keyring has no signing kid: it can only verify")
        if ttl is None:
            ttl = settings.max_lifetime
        if type(ttl) is not int or not 1 <= ttl <= settings.max_lifetime:
            raise ConfigurationError("ttl must be an integer in 1..max_lifetime")
        if isinstance(permissions, str) or not isinstance(permissions, Sequence):
            raise ConfigurationError("permissions must be a sequence of strings")
        if type(now) is not int:
            raise ConfigurationError("now must be an integer (seconds since the epoch)")
        claims: dict[str, Any] = {
            "iss": settings.issuer,
            "aud": settings.audience,
            "sub": subject,
            "workspace_id": workspace_id,
            "permissions": list(permissions),
            "iat": now,
            "exp": now + ttl,
            "jti": _random.token_urlsafe(16) if jwt_id is None else jwt_id,
        }
        if name is not None:
            claims["name"] = name
        try:
            # The same rules verify() applies, so whatever is minted verifies.
            _check_claims(claims, settings, now)
        except InvalidCredentialError as exc:
            raise ConfigurationError(f"cannot mint: {exc.detail}") from None
        payload = json.dumps(claims, separators=(",", ":")).encode()
        token = _JWS.encode(
            payload,
            self._keys.by_kid[self._signing_kid],
            algorithm=_ALGORITHM,
            headers={"kid": self._signing_kid},  # PyJWS adds "alg" and "typ": "JWT"
        )
        if len(token) > settings.max_token_bytes:
            raise ConfigurationError("the minted token is over max_token_bytes")
        return Secret(token)

    def verify(self, token: str, now: float) -> VerifiedClaims:
        """Verify ``token`` at time ``now`` and return its claims.

        Raises:
            CredentialTooLargeError: over ``max_token_bytes`` (nothing decoded).
            MalformedCredentialError: not a str, or not three base64url segments.
            InvalidCredentialError: anything else; ``detail`` names the failed rule.
        """
        if not isinstance(token, str):
            raise MalformedCredentialError("token is not a str")
        # len() counts characters, which is at most the byte length; the shape check below
        # admits ASCII only, where the two are equal.
        if len(token) > self._settings.max_token_bytes:
            raise CredentialTooLargeError("token over max_token_bytes")
        shape = _COMPACT.fullmatch(token)
        if shape is None:
            raise MalformedCredentialError("not three base64url segments")

        # RFC 7515 §2: base64url without padding. Decoded here with the standard alphabet; the
        # re-encoding must match the input, so one header has one spelling (RFC 4648 §3.5).
        header_b64 = shape.group(1).encode().translate(_TO_STANDARD_B64)
        header_b64 += b"=" * (-len(header_b64) % 4)
        try:
            header_bytes = binascii.a2b_base64(header_b64)
        except binascii.Error:
            _reject("header encoding")
        if binascii.b2a_base64(header_bytes, newline=False) != header_b64:
            _reject("header encoding")
        header = _parse_json_object(header_bytes, "header")
        # RFC 8725 §3.1 / §2.1: the verifier, not the token, chooses the algorithm.
        if header.get("alg") != _ALGORITHM:
            _reject("alg")
        if not _FORBIDDEN_HEADER.isdisjoint(header):
            _reject("forbidden header member")
        if header.get("typ", "JWT") != "JWT":  # RFC 7519 §5.1
            _reject("typ")

        keys = self._keys
        try:
            if "kid" in header:
                kid = header["kid"]
                # RFC 7515 §4.1.4: a hint only; here strictly a key into the configured list.
                key = keys.by_kid.get(kid) if isinstance(kid, str) else None
                if key is None:
                    _reject("kid unknown")
                payload_bytes = _JWS.decode_complete(token, key, algorithms=_ALGORITHMS)["payload"]
            else:
                kid, payload_bytes = self._decode_trying_each(token)
        except InvalidSignatureError:
            _reject("signature")
        except PyJWTError:
            _reject("encoding")
        except (ValueError, TypeError, RecursionError, OverflowError):
            _reject("unreadable")
        payload = _parse_json_object(payload_bytes, "payload")
        return _check_claims(payload, self._settings, now, kid)

    def _decode_trying_each(self, token: str) -> tuple[str, bytes]:
        """Without a kid: try the secrets in order, moving on only after a wrong signature."""
        keys = self._keys
        for kid, key in zip(keys.kids[:-1], keys.ordered[:-1], strict=True):
            try:
                payload: bytes = _JWS.decode_complete(token, key, algorithms=_ALGORITHMS)["payload"]
            except InvalidSignatureError:
                continue
            return kid, payload
        # Any error from the last secret, a wrong signature included, is the answer.
        last: bytes = _JWS.decode_complete(token, keys.ordered[-1], algorithms=_ALGORITHMS)[
            "payload"
        ]
        return keys.kids[-1], last
