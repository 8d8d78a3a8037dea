"""What the command line refuses for one tenant's sake (issue 26, finding 3): grants beyond
the bounds of one key or session."""

from __future__ import annotations

from authcore.plans import MAX_KEY_GRANTS
from tests.cli.runner import Run


def _options(flag: str, count: int, width: int = 8) -> list[str]:
    return [part for n in range(count) for part in (flag, f"g{n:0{width - 1}d}")]


def test_keys_create_takes_the_most_grants_and_refuses_one_more(run: Run, workspace: str) -> None:
    argv = ["keys", "create", "--workspace", workspace]
    made = run.json(*argv, *_options("--permission", MAX_KEY_GRANTS))
    assert made["key_id"].startswith("key_")
    line = run.fails(*argv, *_options("--permission", MAX_KEY_GRANTS + 1), code=2)
    assert f"more than {MAX_KEY_GRANTS} grants" in line


def test_keys_create_refuses_too_many_bytes_of_grants(run: Run, workspace: str) -> None:
    argv = ["keys", "create", "--workspace", workspace]
    line = run.fails(*argv, *_options("--permission", 100, width=100), code=2)
    assert "bytes of grants" in line


def test_a_portal_session_refuses_too_many_key_permissions(run: Run, workspace: str) -> None:
    argv = ["portal", "create-session", "--workspace", workspace, "--identity", "c-1"]
    argv += ["--permission", "keys.read"]
    line = run.fails(*argv, *_options("--key-permission", MAX_KEY_GRANTS + 1), code=2)
    assert "--key-permission" in line
