"""The configuration a service runs with: a TOML file, or development secrets made on first use.

:func:`resolve_config` is what the command line and :func:`authcore.backends.connect` read.
Without a file, the development JWT secrets live next to the SQLite database
(:data:`DEV_SECRETS_FILE`): created once, mode 0600, and trusted afterwards only if they are
still a regular file of this user that nobody else can read or write.
"""

from __future__ import annotations

import os
import secrets as _random
import stat
from collections.abc import Callable, Mapping
from typing import Final

from authcore.backends.database import sqlite_path
from authcore.config import Config, load_config, parse_config, render_dev_config
from authcore.errors import ConfigurationError
from authcore.tokens import Secret

__all__ = ["DEV_SECRETS_FILE", "resolve_config"]

#: Development JWT secrets, kept next to the SQLite database when no config file is given.
DEV_SECRETS_FILE: Final = "authcore-dev-secrets.toml"

_DEV_KID: Final = "dev-1"
_MAX_DEV_SECRETS_BYTES: Final = 64 * 1024


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


def _dev_secrets_path(db_url: str) -> str:
    path = sqlite_path(db_url)
    directory = os.path.dirname(os.path.abspath(path)) if path is not None else os.getcwd()
    return os.path.join(directory, DEV_SECRETS_FILE)


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
    path = _dev_secrets_path(db_url)
    try:
        # O_EXCL: never overwrite a file someone else created (nor follow a symlink to one);
        # 0600: only this user reads it.
        fd = os.open(
            path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
    except FileExistsError:
        text = _read_dev_secrets(path)
        message = f"no --config given: using the development JWT secrets in {path}"
    except OSError as exc:
        raise ConfigurationError(f"cannot create {path}: {exc.strerror}") from None
    else:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            # Exactly 0600 whatever the umask, so the check on the next read passes.
            os.fchmod(handle.fileno(), 0o600)
            handle.write(render_dev_config(_DEV_KID, Secret(_random.token_urlsafe(48))))
        text = _read_dev_secrets(path)
        message = f"no --config given: created development JWT secrets in {path} (do not deploy)"
    if note is not None:
        note(message)
    return parse_config(text, environ=environ, origin=f"config file {path}")
