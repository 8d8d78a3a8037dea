"""Configuration for the command line, the example service and the dashboard (TOML).

The file holds the JWT keyring the API verifies with and the dashboard signs with::

    [jwt]
    issuer = "authcore-dashboard"     # default
    audience = "authcore-api"         # default
    max_lifetime = 300                # seconds, 1..86400
    leeway = 5                        # seconds, 0..60
    signing_kid = "k2"                # required when there is more than one secret

    [[jwt.secrets]]                   # ordered: the API tries them in this order
    kid = "k2"
    secret_env = "AUTHCORE_JWT_K2"    # read from the environment ...

    [[jwt.secrets]]
    kid = "k1"
    secret = "..."                    # ... or written inline (at least 32 bytes)

One more top-level key chooses the rate-limit fields responses carry (see
:class:`~authcore.ratelimit_fields.RateLimitHeaders`)::

    rate_limit_headers = "draft"      # default; or "legacy", "both", "none"

Unknown keys are errors (a typo must never silently fall back to a default). :func:`parse_config`
is pure: it takes the text and the environment as values. :func:`load_config` is the one
function here that reads a file. Every problem is a
:class:`~authcore.errors.ConfigurationError` whose ``detail`` names the file and the key, never
a secret value.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from typing import Final

import attrs

from authcore.errors import ConfigurationError
from authcore.keyring import JWTSettings, Keyring, SigningSecret
from authcore.ratelimit_fields import RateLimitHeaders, rate_limit_headers_option
from authcore.tokens import Secret

__all__ = ["Config", "JWTConfig", "load_config", "parse_config", "render_dev_config"]

_TOP_KEYS: Final = frozenset({"jwt", "rate_limit_headers"})
_JWT_KEYS: Final = frozenset(
    {"issuer", "audience", "max_lifetime", "leeway", "signing_kid", "secrets"}
)
_SECRET_KEYS: Final = frozenset({"kid", "secret", "secret_env"})
# A config file is a few hundred bytes; anything huge is a mistake (or not a config file).
_MAX_CONFIG_BYTES: Final = 1 << 20


@attrs.frozen
class JWTConfig:
    """The JWT keyring settings: ordered secrets, the signing kid and the claim rules."""

    settings: JWTSettings
    secrets: tuple[SigningSecret, ...] = attrs.field(repr=False)
    signing_kid: str | None

    @property
    def kids(self) -> tuple[str, ...]:
        """The configured kids, in verification order."""
        return tuple(s.kid for s in self.secrets)

    def verifying_keyring(self) -> Keyring:
        """Return the API's keyring: every secret, verify only."""
        return Keyring(self.secrets, settings=self.settings)

    def signing_keyring(self) -> Keyring:
        """Return the signer's keyring (dashboard, ``jwt mint``): signs with ``signing_kid``.

        Raises:
            ConfigurationError: there are several secrets and no ``signing_kid``.
        """
        kid = self.signing_kid
        if kid is None:
            if len(self.secrets) != 1:
                raise ConfigurationError(
                    "jwt.signing_kid is required when jwt.secrets has more than one entry"
                )
            kid = self.secrets[0].kid
        return Keyring(self.secrets, signing_kid=kid, settings=self.settings)


@attrs.frozen
class Config:
    """A parsed configuration file; ``origin`` says where it came from (for messages).

    ``rate_limit_headers``: which rate-limit fields the service's responses carry.
    """

    jwt: JWTConfig
    origin: str
    rate_limit_headers: RateLimitHeaders = RateLimitHeaders.DRAFT

    def signing_keyring(self) -> Keyring:
        """:meth:`JWTConfig.signing_keyring`, its refusal naming where the config came from.

        Raises:
            ConfigurationError: there are several secrets and no ``signing_kid``; the detail
                starts with ``origin``.
        """
        try:
            return self.jwt.signing_keyring()
        except ConfigurationError as exc:
            raise ConfigurationError(f"{self.origin}: {exc.detail}") from None


def _table(value: object, where: str, allowed: frozenset[str]) -> Mapping[str, object]:
    if not isinstance(value, dict):
        raise ConfigurationError(f"{where} must be a table")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise ConfigurationError(f"{where}: unknown key {unknown[0]!r}")
    return value


def _str(table: Mapping[str, object], key: str, where: str) -> str | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{where}.{key} must be a non-empty string")
    return value


def _int(table: Mapping[str, object], key: str, where: str) -> int | None:
    value = table.get(key)
    if value is None:
        return None
    if type(value) is not int:
        raise ConfigurationError(f"{where}.{key} must be an integer")
    return value


def _secret(entry: object, index: int, environ: Mapping[str, str]) -> SigningSecret:
    where = f"jwt.secrets[{index}]"
    table = _table(entry, where, _SECRET_KEYS)
    kid = _str(table, "kid", where)
    if kid is None:
        raise ConfigurationError(f"{where}: kid is missing")
    inline = _str(table, "secret", where)
    env_name = _str(table, "secret_env", where)
    if (inline is None) == (env_name is None):
        raise ConfigurationError(f"{where} (kid {kid!r}): set exactly one of secret, secret_env")
    if env_name is None:
        value = inline or ""
    else:
        value = environ.get(env_name, "")
        if not value:
            raise ConfigurationError(
                f"{where} (kid {kid!r}): environment variable {env_name} is not set"
            )
    try:
        return SigningSecret(kid, Secret(value))
    except ConfigurationError as exc:
        raise ConfigurationError(f"{where}: {exc.detail}") from None


def parse_config(text: str, *, environ: Mapping[str, str], origin: str = "config") -> Config:
    """Parse TOML ``text``; ``secret_env`` names are looked up in ``environ``.

    Raises:
        ConfigurationError: invalid TOML, an unknown key, a wrong type or an unknown
            ``rate_limit_headers``, a missing environment
            variable, a short or duplicate secret, a duplicate kid, or a ``signing_kid`` that
            names no secret. The detail starts with ``origin`` and never holds a secret.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # The decoder's message names the line and column, never more than one value.
        raise ConfigurationError(f"{origin}: invalid TOML: {exc}") from None
    try:
        table = _table(data, "the file", _TOP_KEYS)
        headers = rate_limit_headers_option(table.get("rate_limit_headers", "draft"))
        return Config(_parse_jwt(table.get("jwt"), environ), origin, headers)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{origin}: {exc.detail}") from None


def _parse_jwt(value: object, environ: Mapping[str, str]) -> JWTConfig:
    if value is None:
        raise ConfigurationError("[jwt] is missing")
    table = _table(value, "[jwt]", _JWT_KEYS)
    issuer = _str(table, "issuer", "jwt")
    audience = _str(table, "audience", "jwt")
    max_lifetime = _int(table, "max_lifetime", "jwt")
    leeway = _int(table, "leeway", "jwt")
    defaults = JWTSettings()
    try:
        settings = JWTSettings(
            issuer=defaults.issuer if issuer is None else issuer,
            audience=defaults.audience if audience is None else audience,
            max_lifetime=defaults.max_lifetime if max_lifetime is None else max_lifetime,
            leeway=defaults.leeway if leeway is None else leeway,
        )
    except ConfigurationError as exc:
        raise ConfigurationError(f"jwt: {exc.detail}") from None
    entries = table.get("secrets")
    if not isinstance(entries, list) or not entries:
        raise ConfigurationError("jwt.secrets must be a non-empty array of tables")
    secrets = tuple(_secret(entry, index, environ) for index, entry in enumerate(entries))
    signing_kid = _str(table, "signing_kid", "jwt")
    try:
        # Built once here so duplicate kids, shared values and an unknown signing_kid are
        # reported when the file is read, not on the first request.
        Keyring(secrets, signing_kid=signing_kid, settings=settings)
    except ConfigurationError as exc:
        raise ConfigurationError(f"jwt: {exc.detail}") from None
    return JWTConfig(settings=settings, secrets=secrets, signing_kid=signing_kid)


def load_config(path: str, *, environ: Mapping[str, str]) -> Config:
    """Read and parse the TOML file at ``path`` (the only file access in this module).

    Raises:
        ConfigurationError: the file cannot be read, is not UTF-8, is too large, or
            :func:`parse_config` rejects it.
    """
    try:
        with open(path, "rb") as handle:
            raw = handle.read(_MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigurationError(f"config file {path}: {exc.strerror or 'cannot read'}") from None
    if len(raw) > _MAX_CONFIG_BYTES:
        raise ConfigurationError(f"config file {path}: larger than {_MAX_CONFIG_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigurationError(f"config file {path}: not UTF-8") from None
    return parse_config(text, environ=environ, origin=f"config file {path}")


def render_dev_config(kid: str, secret: Secret) -> str:
    """Return the text of a development config file holding one inline secret."""
    return (
        "# authcore development secrets: generated for local use only; do not deploy.\n"
        "# Use a real config file (see docs/cli.md) with secret_env in production.\n"
        "[jwt]\n"
        f'signing_kid = "{kid}"\n\n'
        "[[jwt.secrets]]\n"
        f'kid = "{kid}"\n'
        f'secret = "{secret.reveal()}"\n'
    )
