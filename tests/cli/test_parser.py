"""The parser: options are never abbreviated, and the global options work after the command."""

from __future__ import annotations

from pathlib import Path

import pytest

from authcore.cli import main
from authcore.cli.program import build_parser
from tests.cli.runner import Run


def test_serve_takes_redis_after_the_command_not_as_redis_down() -> None:
    # Issue 26: prefix matching read "serve --redis URL" as "--redis-down URL".
    args = build_parser().parse_args(["serve", "--redis", "redis://127.0.0.1:6379/0"])
    assert args.redis == "redis://127.0.0.1:6379/0"
    assert args.redis_down == "refuse"


@pytest.mark.parametrize(
    "argv",
    [
        ["keys", "create", "--workspace", "ws_x", "--permission", "a", "--exp", "60"],
        ["keys", "list", "--workspace", "ws_x", "--js"],
    ],
)
def test_an_abbreviated_option_is_a_usage_error(run: Run, argv: list[str]) -> None:
    assert "unrecognized arguments" in run.fails(*argv, code=2)


def test_an_abbreviated_global_option_is_a_usage_error(run: Run, tmp_path: Path) -> None:
    assert main(["--d", f"sqlite:///{tmp_path / 'x.db'}", "init"]) == 2
    assert len(run.capsys.readouterr().err.splitlines()) == 1
    assert not (tmp_path / "x.db").exists()


def test_global_options_after_the_command_mean_the_same(run: Run, tmp_path: Path) -> None:
    other = f"sqlite:///{tmp_path / 'other.db'}"
    created = main(["workspace", "create", "--name", "after", "--db", other, "--json"])
    assert created == 0
    run.capsys.readouterr()
    assert (tmp_path / "other.db").exists()
    # Before the command, it names the same database.
    assert main(["--db", other, "audit", "list", "--workspace", "ws_none"]) == 1
    assert "not found" in run.capsys.readouterr().err


def test_a_global_option_after_the_command_wins_over_one_before_it(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = f"sqlite:///{tmp_path / 'before.db'}"
    after = f"sqlite:///{tmp_path / 'after.db'}"
    args = build_parser().parse_args(["--db", before, "keys", "revoke", "key_x", "--db", after])
    assert args.db == after
    assert build_parser().parse_args(["--db", before, "keys", "revoke", "key_x"]).db == before
    monkeypatch.setenv("AUTHCORE_DB", before)
    monkeypatch.setenv("AUTHCORE_REDIS", "redis://env")
    args = build_parser().parse_args(["init", "--db", after, "--redis", "redis://flag"])
    assert (args.db, args.redis, args.config) == (after, "redis://flag", None)
    assert build_parser().parse_args(["init"]).redis == "redis://env"


def test_keys_revoke_takes_redis_after_the_key_id() -> None:
    args = build_parser().parse_args(["keys", "revoke", "key_x", "--redis", "redis://h:6379/0"])
    assert (args.key_id, args.redis) == ("key_x", "redis://h:6379/0")


def test_every_commands_help_lists_the_global_options(run: Run) -> None:
    assert main(["keys", "revoke", "--help"]) == 0
    out = run.capsys.readouterr().out
    assert "global options" in out
    for option in ("--db URL", "--config PATH", "--redis URL"):
        assert option in out


def test_workspace_help_names_every_subcommand(run: Run) -> None:
    # Issue 26: the group said "create and disable workspaces" though enable exists.
    assert main(["--help"]) == 0
    out = run.capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.strip().startswith("workspace "))
    assert "enable" in line
    assert "list" in line
    assert main(["workspace", "--help"]) == 0
    assert "create, list, disable and enable workspaces" in run.capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["init", "--bogus"], "authcore: error: unrecognized arguments: --bogus"),
        (["keys", "create", "--workspace", "ws_x"], "authcore: error: keys create: the following"),
    ],
)
def test_a_usage_error_names_the_program_once_and_the_command(
    run: Run, argv: list[str], said: str
) -> None:
    assert main(argv) == 2
    err = run.capsys.readouterr().err
    assert err.startswith(said)
    assert err.count("authcore") == 1
