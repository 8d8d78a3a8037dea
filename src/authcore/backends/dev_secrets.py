"""The configuration a service runs with: a TOML file, or development secrets made on first use.

:func:`resolve_config` is what the command line and :func:`authcore.backends.connect` read.
Without a file, the development JWT secrets are created once, mode 0600, and trusted afterwards
only if they are still a regular file of this user that nobody else can read or write. Where
they live (:func:`dev_secrets_path`): next to an SQLite database (:data:`DEV_SECRETS_FILE`);
for another database, in ``$XDG_STATE_HOME/authcore/`` (else ``~/.local/state/authcore/``),
named by a hash of the database URL without its password, so every process using that
database finds the same file wherever it was started.

Running on development secrets is announced every time: through the ``note`` the caller
passes (the command line prints it), else as a :class:`DevSecretsWarning` and a warning on the
``authcore.backends.dev_secrets`` logger.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets as _random
import stat
import warnings
from collections.abc import Callable, Mapping
from typing import Final

from authcore.backends.database import redact_database_url, sqlite_path
from authcore.config import Config, load_config, parse_config, render_dev_config
from authcore.errors import ConfigurationError
from authcore.tokens import Secret

__all__ = ["DEV_SECRETS_FILE", "DevSecretsWarning", "dev_secrets_path", "resolve_config"]

#: Development JWT secrets, kept next to the SQLite database when no config file is given.
DEV_SECRETS_FILE: Final = "authcore-dev-secrets.toml"

_DEV_KID: Final = "dev-1"
_MAX_DEV_SECRETS_BYTES: Final = 64 * 1024
_NO_CONFIG: Final = "no configuration given (--config, AUTHCORE_CONFIG or config=)"
_log = logging.getLogger("authcore.backends.dev_secrets")


class DevSecretsWarning(UserWarning):
    """A service runs on development JWT secrets (no configuration file): do not deploy it so.

    Anyone who can read the development secrets file can mint JWTs the service accepts.
    """


def resolve_config(
    config: str | None,
    db_url: str,
    *,
    environ: Mapping[str, str],
    note: Callable[[str], None] | None = None,
) -> Config:
    """The configuration the command line and :func:`~authcore.backends.connect` use: the
    TOML file ``config``, or without one the development secrets next to the SQLite database
    (created on first use, mode 0600; an existing one is used only if it is a regular file of
    this user, mode 0600).

    ``note`` hears which development file was used or created.

    Raises:
        ConfigurationError: the file cannot be read or parsed, or is not safe to trust.
    """
    if config:
        return load_config(config, environ=environ)
    return _load_dev_config(db_url, environ, note)


def dev_secrets_path(db_url: str) -> str:
    """Return where the development secrets for ``db_url`` live (see the module docstring).

    Read from the process environment: ``XDG_STATE_HOME`` (an absolute path, per the XDG base
    directory specification), else ``HOME``.

    Raises:
        ConfigurationError: an ``sqlite:`` URL without a path.
    """
    path = sqlite_path(db_url)
    if path is not None:
        return os.path.join(os.path.dirname(os.path.abspath(path)), DEV_SECRETS_FILE)
    state = os.environ.get("XDG_STATE_HOME", "")
    if not os.path.isabs(state):
        state = os.path.join(os.path.expanduser("~"), ".local", "state")
    # Without the password: changing it must not change the file (nor may a name derive from it).
    digest = hashlib.sha256(redact_database_url(db_url).encode()).hexdigest()[:16]
    return os.path.join(state, "authcore", f"dev-secrets-{digest}.toml")


def _announce(message: str, note: Callable[[str], None] | None) -> None:
    if note is not None:
        note(message)  # the caller (the command line) shows it; the log keeps a record
        _log.info("%s", message)
        return
    _log.warning("%s", message)
    # _load_dev_config <- resolve_config <- connect <- the caller's code: the line to show.
    warnings.warn(message, DevSecretsWarning, stacklevel=5)


def _read_dev_secrets(path: str) -> str:
    """Read the development secrets file, if it is safe to trust.

    Opened without following a symlink, then checked on the open descriptor (no race between
    the check and the read): a regular file, owned by this user, readable and writable by this
    user only (mode 0600).

    Raises:
        ConfigurationError: the file is a symlink, not a regular file, someone else's, readable
            or writable by others, too large or not UTF-8; one line naming the file.
    """
    refuse = f"refusing the development secrets file {path}"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        # ELOOP: the last component is a symlink, which O_NOFOLLOW refuses to open.
        reason = "it is a symlink" if os.path.islink(path) else exc.strerror
        raise ConfigurationError(f"{refuse}: {reason}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ConfigurationError(f"{refuse}: not a regular file")
        if info.st_uid != os.getuid():
            raise ConfigurationError(f"{refuse}: owned by another user (uid {info.st_uid})")
        mode = stat.S_IMODE(info.st_mode)
        if mode != 0o600:
            raise ConfigurationError(f"{refuse}: mode {mode:04o}, expected 0600 (chmod 600 {path})")
        raw = handle.read(_MAX_DEV_SECRETS_BYTES + 1)
    if len(raw) > _MAX_DEV_SECRETS_BYTES:
        raise ConfigurationError(f"{refuse}: larger than {_MAX_DEV_SECRETS_BYTES} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigurationError(f"{refuse}: not UTF-8") from None


def _load_dev_config(
    db_url: str, environ: Mapping[str, str], note: Callable[[str], None] | None
) -> Config:
    """Read the development secrets next to the database, creating them on first use.

    Raises:
        ConfigurationError: an existing file that is not safe to trust, or one that cannot be
            created.
    """
    path = dev_secrets_path(db_url)
    if sqlite_path(db_url) is None:
        try:
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot create {os.path.dirname(path)}: {exc.strerror}"
            ) from None
    try:
        # O_EXCL: never overwrite a file someone else created (nor follow a symlink to one);
        # 0600: only this user reads it.
        fd = os.open(
            path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
    except FileExistsError:
        text = _read_dev_secrets(path)
        message = f"{_NO_CONFIG}: using the development JWT secrets in {path}"
    except OSError as exc:
        raise ConfigurationError(f"cannot create {path}: {exc.strerror}") from None
    else:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            # Exactly 0600 whatever the umask, so the check on the next read passes.
            os.fchmod(handle.fileno(), 0o600)
            handle.write(render_dev_config(_DEV_KID, Secret(_random.token_urlsafe(48))))
        text = _read_dev_secrets(path)
        message = f"{_NO_CONFIG}: created development JWT secrets in {path} (do not deploy)"
    config = parse_config(text, environ=environ, origin=f"config file {path}")
    _announce(message, note)
    return config
