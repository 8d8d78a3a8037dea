"""``authcore identities ...`` and the identity options of ``keys``: the API's customers."""

from __future__ import annotations

from authcore.backends.outbox import REVOCATION_BOUND
from tests.cli.runner import Run


def test_create_then_show_with_meta_limit_and_live_keys(run: Run, workspace: str) -> None:
    created = run.json(
        "identities", "create", "--workspace", workspace, "customer-1",
        "--meta", '{"plan": "pro", "seats": 5}', "--rate-limit", "100/60",
    )  # fmt: skip
    assert created["identity_id"].startswith("idt_")
    assert created["external_id"] == "customer-1"
    assert created["meta"] == {"plan": "pro", "seats": 5}
    assert created["rate_limit"] == "100/60"
    key = run.key(workspace, "--identity", "customer-1")
    run.key(workspace, "--identity", "customer-1")
    run.json("keys", "revoke", key)
    shown = run.json("identities", "show", "--workspace", workspace, "customer-1")
    assert shown == {**created, "live_keys": 1}
    code, out, _ = run("identities", "show", "--workspace", workspace, "customer-1")
    assert code == 0
    assert "rate_limit:  100/60" in out
    assert 'meta:        {"plan":"pro","seats":5}' in out
    assert "live keys:   1" in out


def test_create_refuses_a_taken_external_id_and_bad_values(run: Run, workspace: str) -> None:
    run.json("identities", "create", "--workspace", workspace, "customer-1")
    taken = run.fails("identities", "create", "--workspace", workspace, "customer-1", code=1)
    assert "already exists" in taken
    create = ("identities", "create", "--workspace", workspace, "c2")
    assert "JSON object" in run.fails(*create, "--meta", "[1, 2]", code=2)
    assert "JSON object" in run.fails(*create, "--meta", '{"a": NaN}', code=2)
    assert "1024 bytes" in run.fails(*create, "--meta", '{"a": "' + "x" * 2000 + '"}', code=2)
    assert "N/SECONDS" in run.fails(*create, "--rate-limit", "0/60", code=2)
    assert "not found" in run.fails("identities", "create", "--workspace", "ws_no", "c", code=1)


def test_list_pages_by_external_id_and_prints_the_cursor(run: Run, workspace: str) -> None:
    for name in ("c", "a", "b"):
        run.json("identities", "create", "--workspace", workspace, name)
    first = run.json("identities", "list", "--workspace", workspace, "--limit", "2")
    assert [i["external_id"] for i in first["identities"]] == ["a", "b"]
    assert first["next_after"] == "b"
    rest = run.json("identities", "list", "--workspace", workspace, "--after", "b")
    assert [i["external_id"] for i in rest["identities"]] == ["c"]
    assert rest["next_after"] is None
    code, out, _ = run("identities", "list", "--workspace", workspace, "--limit", "2")
    assert code == 0
    assert out.splitlines()[-1] == f"next page: --cursor {first['next_cursor']}"
    assert "in 1..500" in run.fails("identities", "list", "--workspace", workspace,
                                    "--limit", "501", code=2)  # fmt: skip
    assert "not found" in run.fails("identities", "list", "--workspace", "ws_nope", code=1)


def test_set_limit_and_set_meta_set_and_clear(run: Run, workspace: str) -> None:
    run.json("identities", "create", "--workspace", workspace, "customer-1")
    ids = ("--workspace", workspace, "customer-1")
    limited = run.json("identities", "set-limit", *ids, "10/60")
    assert limited["rate_limit"] == "10/60"
    assert run.json("identities", "set-limit", *ids, "none")["rate_limit"] is None
    described = run.json("identities", "set-meta", *ids, '{"tier": 2}')
    assert described["meta"] == {"tier": 2}
    assert run.json("identities", "set-meta", *ids, "none")["meta"] is None
    shown = run.json("identities", "show", *ids)
    assert (shown["rate_limit"], shown["meta"]) == (None, None)
    nobody = ("--workspace", workspace, "nobody")
    assert "not found" in run.fails("identities", "set-limit", *nobody, "1/1", code=1)
    assert "not found" in run.fails("identities", "set-meta", *nobody, "{}", code=1)
    assert "not found" in run.fails("identities", "show", *nobody, code=1)
    events = run.json("audit", "list", "--workspace", workspace)["events"]
    assert [e["action"] for e in events[:4]] == ["identity.update"] * 4
    assert {e["actor"]["id"] for e in events} == {"cli"}


def test_delete_refuses_while_live_keys_remain_unless_told_to_revoke_them(
    run: Run, workspace: str
) -> None:
    key = run.key(workspace, "--identity", "customer-1")
    session = run.json(
        "portal", "create-session", "--workspace", workspace, "--identity", "customer-1",
        "--permission", "keys.read",
    )["session_id"]  # fmt: skip
    ids = ("--workspace", workspace, "customer-1")
    refused = run.fails("identities", "delete", *ids, code=1)
    assert "live keys" in refused
    assert "--revoke-keys" in refused
    deleted = run.json("identities", "delete", *ids, "--revoke-keys")
    assert deleted["deleted"] is True
    assert deleted["external_id"] == "customer-1"
    assert deleted["other_processes_may_accept_for_seconds"] == REVOCATION_BOUND
    assert deleted["invalidated_through"] == ["database"]
    assert run.json("keys", "list", "--workspace", workspace)["keys"][0]["revoked_at"] is not None
    actions = [e["action"] for e in run.json("audit", "list", "--workspace", workspace)["events"]]
    assert actions[:3] == ["identity.delete", "portal_session.revoke", "key.revoke"]
    store = run.store()
    try:
        record = store.get_portal_session(session)
        assert record is not None
        assert record.revoked_at is not None
    finally:
        getattr(store, "close")()  # noqa: B009 - Store has no close(); every backend does
    assert "not found" in run.fails("identities", "delete", *ids, code=1)
    assert key


def test_delete_without_live_keys_needs_no_flag(run: Run, workspace: str) -> None:
    key = run.key(workspace, "--identity", "customer-1")
    run.json("keys", "revoke", key)
    code, out, _ = run("identities", "delete", "--workspace", workspace, "customer-1")
    assert code == 0
    assert out.startswith("deleted customer-1 (idt_")


def test_keys_create_with_an_identity_makes_it_on_first_use(run: Run, workspace: str) -> None:
    argv = ("keys", "create", "--workspace", workspace, "--permission", "keys.read")
    first = run.json(*argv, "--identity", "customer-1")
    second = run.json(*argv, "--identity", "customer-1")
    assert set(first) == {"key_id", "key", "identity_id"}
    assert first["identity_id"] == second["identity_id"]
    assert set(run.json(*argv)) == {"key_id", "key"}
    listed = run.json("identities", "list", "--workspace", workspace)["identities"]
    assert [(i["identity_id"], i["external_id"]) for i in listed] == [
        (first["identity_id"], "customer-1")
    ]


def test_keys_list_filters_by_identity_and_names_each_keys_identity(
    run: Run, workspace: str
) -> None:
    mine = run.key(workspace, "--identity", "customer-1")
    theirs = run.key(workspace, "--identity", "customer-2")
    plain = run.key(workspace)
    everything = run.json("keys", "list", "--workspace", workspace)["keys"]
    assert {k["key_id"]: k["identity_external_id"] for k in everything} == {
        mine: "customer-1",
        theirs: "customer-2",
        plain: None,
    }
    only = run.json("keys", "list", "--workspace", workspace, "--identity", "customer-1")["keys"]
    assert [k["key_id"] for k in only] == [mine]
    _, text, _ = run("keys", "list", "--workspace", workspace)
    lines = {line.split()[0]: line for line in text.splitlines()}
    assert "  identity customer-1  " in lines[mine]
    assert "  identity -  " in lines[plain]
    missing = run.fails("keys", "list", "--workspace", workspace, "--identity", "nobody", code=1)
    assert "identity 'nobody' not found" in missing
