"""What the command line refuses for one tenant's sake (issue 26, finding 3): grants beyond
the bounds of one key or session, and lists past one page (``--limit``, ``--cursor``)."""

from __future__ import annotations

from typing import Any

import pytest

from authcore.cursors import identity_cursor, key_cursor
from authcore.plans import MAX_KEY_GRANTS
from authcore.records import MAX_LIST_PAGE, KeyCursor
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


def _pages(run: Run, *argv: str, items: str) -> list[list[Any]]:
    pages, cursor = [], None
    while True:
        more = () if cursor is None else ("--cursor", cursor)
        page = run.json(*argv, *more)
        pages.append(page[items])
        cursor = page["next_cursor"]
        if cursor is None:
            return pages


def test_keys_list_pages_with_limit_and_cursor(run: Run, workspace: str) -> None:
    made = [run.key(workspace) for _ in range(5)]
    pages = _pages(run, "keys", "list", "--workspace", workspace, "--limit", "2", items="keys")
    assert [len(page) for page in pages] == [2, 2, 1]
    assert sorted(key["key_id"] for page in pages for key in page) == sorted(made)
    code, out, _ = run("keys", "list", "--workspace", workspace, "--limit", "2")
    assert code == 0
    assert out.splitlines()[-1].startswith("next page: --cursor ")


def test_identities_and_audit_list_page_with_cursor(run: Run, workspace: str) -> None:
    for n in range(3):
        run.json("identities", "create", "--workspace", workspace, f"c-{n}")
    argv = ("identities", "list", "--workspace", workspace, "--limit", "2")
    pages = _pages(run, *argv, items="identities")
    assert [[item["external_id"] for item in page] for page in pages] == [["c-0", "c-1"], ["c-2"]]
    events = _pages(run, "audit", "list", "--workspace", workspace, "--limit", "1", items="events")
    ids = [page[0]["id"] for page in events]
    assert len(ids) == len(set(ids)) >= 4


@pytest.mark.parametrize("command", ["keys", "identities", "audit"])
def test_a_bad_cursor_is_a_usage_error(run: Run, workspace: str, command: str) -> None:
    foreign = identity_cursor("c-1") if command != "identities" else key_cursor(KeyCursor(1, "k"))
    for cursor in ["nonsense!", foreign]:
        line = run.fails(command, "list", "--workspace", workspace, "--cursor", cursor, code=2)
        assert "--cursor" in line


def test_a_list_past_the_most_per_page_is_a_usage_error(run: Run, workspace: str) -> None:
    limit = str(MAX_LIST_PAGE + 1)
    line = run.fails("keys", "list", "--workspace", workspace, "--limit", limit, code=2)
    assert "--limit" in line
