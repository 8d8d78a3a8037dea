"""Finding 6: an existing development secrets file was used without any check.

Without ``--config`` the command line signs and verifies JWTs with the secret in
``authcore-dev-secrets.toml`` next to the database. Whoever can replace that file (a symlink
to a file they control, a file others may write) mints dashboard JWTs the API accepts. It is
now used only if it is a regular file, owned by the current user, with mode 0600, opened
without following symlinks and checked on the open descriptor; anything else is a one-line
error (exit 2) and the file is not read.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from authcore.cli import DEV_SECRETS_FILE, main

SECRET = "attacker-chosen-secret-0123456789abcdefghijklmnop"
PLANTED = f'[jwt]\n[[jwt.secrets]]\nkid = "dev-1"\nsecret = "{SECRET}"\n'


def _mint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(
        [
            "--db", f"sqlite:///{tmp_path / 'authcore.db'}",
            "jwt", "mint", "--workspace", "ws_1", "--subject", "s", "--permission", "keys.read",
        ]
    )  # fmt: skip
    out, err = capsys.readouterr()
    return code, out, err


def _refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], reason: str) -> None:
    code, out, err = _mint(tmp_path, capsys)
    assert code == 2
    assert out == ""  # no JWT signed with the planted secret
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("authcore: error: refusing the development secrets file")
    assert reason in lines[0]
    assert SECRET not in err


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AUTHCORE_DB", "AUTHCORE_CONFIG", "AUTHCORE_DEBUG"):
        monkeypatch.delenv(name, raising=False)


def test_finding_6_a_symlink_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "elsewhere.toml"
    target.write_text(PLANTED)
    target.chmod(0o600)
    (tmp_path / DEV_SECRETS_FILE).symlink_to(target)
    _refused(tmp_path, capsys, "symlink")


def test_finding_6_a_dangling_symlink_is_refused_and_not_followed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "created-through-the-link.toml"
    (tmp_path / DEV_SECRETS_FILE).symlink_to(target)
    _refused(tmp_path, capsys, "symlink")
    assert not target.exists()  # the command did not create a file where the link points


@pytest.mark.parametrize("mode", [0o644, 0o666, 0o640, 0o400, 0o700])
def test_finding_6_a_file_with_another_mode_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mode: int
) -> None:
    planted = tmp_path / DEV_SECRETS_FILE
    planted.write_text(PLANTED)
    planted.chmod(mode)
    _refused(tmp_path, capsys, f"mode {mode:04o}")


def test_finding_6_a_file_of_another_user_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if os.getuid() != 0:
        pytest.skip("giving a file to another user needs root (CI runs as root)")
    planted = tmp_path / DEV_SECRETS_FILE
    planted.write_text(PLANTED)
    planted.chmod(0o600)
    os.chown(planted, 65534, 65534)
    _refused(tmp_path, capsys, "owned by another user")


def test_finding_6_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    # In a process of its own: opening a FIFO for reading would block forever.
    os.mkfifo(tmp_path / DEV_SECRETS_FILE, 0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHCORE_")}
    result = subprocess.run(
        [
            sys.executable, "-m", "authcore", "--db", f"sqlite:///{tmp_path / 'authcore.db'}",
            "jwt", "mint", "--workspace", "w", "--subject", "s", "--permission", "keys.read",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "authcore: error: refusing the development secrets file "
        f"{tmp_path / DEV_SECRETS_FILE}: not a regular file"
    ]


def test_a_file_the_command_line_created_is_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old_umask = os.umask(0o277)  # a umask stricter than 0600 must not make it unusable
    try:
        first = _mint(tmp_path, capsys)
    finally:
        os.umask(old_umask)
    assert first[0] == 0, first[2]
    info = (tmp_path / DEV_SECRETS_FILE).lstat()
    assert stat.S_ISREG(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == 0o600
    second = _mint(tmp_path, capsys)
    assert second[0] == 0, second[2]
    assert "using the development JWT secrets" in second[2]
