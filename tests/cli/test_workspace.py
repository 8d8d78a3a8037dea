"""``authcore workspace list``: every workspace, a page at a time, by id."""

from __future__ import annotations

import pytest

from authcore.cursors import identity_cursor, workspace_cursor
from authcore.records import WorkspaceRecord
from authcore.steps import Change, Insert, Steps
from tests.cli.runner import Run


def _create(run: Run, *options: str) -> str:
    workspace_id: str = run.json("workspace", "create", *options)["workspace_id"]
    return workspace_id


def test_list_shows_each_workspace_once_in_id_order(run: Run) -> None:
    ids = sorted(_create(run, "--name", f"w{i}") for i in range(5))
    first = run.json("workspace", "list", "--limit", "2")
    assert [w["workspace_id"] for w in first["workspaces"]] == ids[:2]
    assert first["next_cursor"] == workspace_cursor(ids[1])
    second = run.json("workspace", "list", "--limit", "2", "--cursor", first["next_cursor"])
    assert [w["workspace_id"] for w in second["workspaces"]] == ids[2:4]
    last = run.json("workspace", "list", "--limit", "2", "--cursor", second["next_cursor"])
    assert [w["workspace_id"] for w in last["workspaces"]] == ids[4:]
    assert last["next_cursor"] is None


def test_list_json_carries_each_workspace(run: Run) -> None:
    ws = _create(run, "--name", "acme", "--org", "org_acme", "--rate-limit", "100/60")
    run.json("workspace", "disable", ws)
    [shown] = run.json("workspace", "list")["workspaces"]
    assert shown == {
        "workspace_id": ws,
        "name": "acme",
        "org_id": "org_acme",
        "disabled": True,
        "rate_limit": "100/60",
        "created_at": shown["created_at"],
    }
    assert isinstance(shown["created_at"], int)


def test_list_text_is_one_line_each_then_the_next_page(run: Run) -> None:
    limited = _create(run, "--name", "acme", "--org", "org_acme", "--rate-limit", "100/60")
    plain = _create(run, "--name", "staging")
    run.json("workspace", "disable", plain)
    lines = {
        limited: f"{limited}  acme  org org_acme  active  limit 100/60",
        plain: f"{plain}  staging  org -  disabled  limit -",
    }
    code, out, _ = run("workspace", "list")
    assert code == 0
    assert out.splitlines() == [lines[i] for i in sorted(lines)]
    first = min(lines)
    code, out, _ = run("workspace", "list", "--limit", "1")
    assert out.splitlines() == [lines[first], f"next page: --cursor {workspace_cursor(first)}"]


def test_list_of_no_workspaces(run: Run) -> None:
    code, out, _ = run("workspace", "list")
    assert (code, out) == (0, "(no workspaces)\n")
    assert run.json("workspace", "list") == {"workspaces": [], "next_cursor": None}


def test_list_escapes_what_an_older_database_may_hold(run: Run) -> None:
    def seed() -> Steps[None]:
        yield Insert(WorkspaceRecord("ws_old", "evil\u202ename\x1b[2J"))

    run("init")
    store = run.store()
    try:
        store.run(Change("seed", seed()))
    finally:
        getattr(store, "close")()  # noqa: B009 - Store has no close(); every backend does
    code, out, _ = run("workspace", "list")
    assert code == 0
    assert "\x1b" not in out
    assert "\u202e" not in out
    assert run.json("workspace", "list")["workspaces"][0]["name"] == "evil\u202ename\x1b[2J"


@pytest.mark.parametrize("limit", ["0", "501", "-1", "\u0661\u0660", "1_0", "+10", " 10", "ten"])
def test_a_bad_limit_is_a_usage_error(run: Run, limit: str) -> None:
    assert "1..500" in run.fails("workspace", "list", "--limit", limit, code=2)


@pytest.mark.parametrize("cursor", ["nonsense!", identity_cursor("ws_1"), workspace_cursor(" ")])
def test_a_cursor_this_list_did_not_print_is_a_usage_error(run: Run, cursor: str) -> None:
    message = run.fails("workspace", "list", "--cursor", cursor, code=2)
    assert "is not a cursor this list printed" in message


def test_list_writes_no_audit_event(run: Run) -> None:
    ws = _create(run, "--name", "acme")
    before = run.json("audit", "list", "--workspace", ws)["events"]
    run.json("workspace", "list")
    assert run.json("audit", "list", "--workspace", ws)["events"] == before
