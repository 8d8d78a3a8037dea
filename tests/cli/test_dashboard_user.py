"""``authcore dashboard-user add``: the password comes from standard input, and is long."""

from __future__ import annotations

import io
import sys

import pytest

from authcore.cli import main
from tests.cli.runner import Run

ADD = (
    "dashboard-user", "add", "--user-id", "alice", "--org", "org_acme",
    "--permission", "keys.read",
)  # fmt: skip


def test_the_help_marks_password_stdin_required(run: Run) -> None:
    # Issue 26: the usage line showed [--password-stdin] though the command refused to run
    # without it.
    assert main(["dashboard-user", "add", "--help"]) == 0
    out = run.capsys.readouterr().out
    usage = out.split("\n\n", 1)[0]
    assert "--password-stdin" in usage
    assert "[--password-stdin]" not in usage


def test_without_password_stdin_it_is_a_usage_error(run: Run) -> None:
    assert "--password-stdin" in run.fails(*ADD, code=2)


@pytest.mark.parametrize("password", ["short", "fourteen chars", "é" * 14])
def test_a_password_under_15_characters_is_refused(
    run: Run, monkeypatch: pytest.MonkeyPatch, password: str
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(password + "\n"))
    line = run.fails(*ADD, "--password-stdin", code=2)
    assert "at least 15 characters" in line
    assert password not in line


@pytest.mark.parametrize("password", ["fifteen chars!!", "é" * 15])
def test_a_password_of_15_characters_is_taken(
    run: Run, monkeypatch: pytest.MonkeyPatch, password: str
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(password + "\n"))
    code, _, err = run(*ADD, "--password-stdin")
    assert code == 0, err
