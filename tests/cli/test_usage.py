"""``authcore usage`` and ``prune-usage``: a workspace's, a key's and an identity's counts."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from authcore.cli.commands import usage as usage_command
from authcore.records import UsageCount
from tests.cli.runner import Run

HOUR = 1_800_000_000 - 1_800_000_000 % 3600
WINDOW = ("--since", str(HOUR), "--until", str(HOUR + 3600))


def _record(run: Run, counts: Sequence[UsageCount]) -> None:
    store = run.store()
    try:
        store.record_usage(counts, used_at=HOUR + 120)
    finally:
        getattr(store, "close")()  # noqa: B009 - Store has no close(); every backend does


def test_usage_prints_a_table_and_json_scoped_to_the_workspace(run: Run, workspace: str) -> None:
    key_id = run.key(workspace)
    other = run.key(workspace)
    _record(
        run,
        [
            UsageCount(workspace, key_id, "allowed", HOUR, 5),
            UsageCount(workspace, key_id, "rate_limited", HOUR + 60, 2),
            UsageCount(workspace, key_id, "workspace_disabled", HOUR + 120, 1),
            UsageCount(workspace, other, "allowed", HOUR, 7),
            UsageCount("ws_elsewhere", key_id, "allowed", HOUR, 100),
            UsageCount("", "", "credential_invalid", HOUR + 60, 9),
        ],
    )
    doc = run.json("usage", "--workspace", workspace, "--key", key_id, *WINDOW)
    assert doc["totals"] == {"allowed": 5, "rate_limited": 2, "workspace_disabled": 1}
    assert doc["buckets"] == [
        {"start": HOUR, "outcomes": {"allowed": 5, "rate_limited": 2, "workspace_disabled": 1}}
    ]
    assert doc["identity_id"] is None
    whole = run.json("usage", "--workspace", workspace, *WINDOW, "--granularity", "minute")
    assert whole["totals"] == {"allowed": 12, "rate_limited": 2, "workspace_disabled": 1}
    assert [b["start"] for b in whole["buckets"]] == [HOUR, HOUR + 60, HOUR + 120]
    code, out, _ = run("usage", "--workspace", workspace, "--key", key_id, *WINDOW)
    assert code == 0
    assert out.splitlines()[-1].split() == ["total", "5", "1", "2", "0"]
    listed = {
        k["key_id"]: k["last_used_at"]
        for k in run.json("keys", "list", "--workspace", workspace)["keys"]
    }
    assert listed == {key_id: HOUR + 120, other: HOUR + 120}
    assert "not found" in run.fails("usage", "--workspace", workspace, "--key", "key_nope", code=1)
    assert "not found" in run.fails("usage", "--workspace", "ws_nope", code=1)
    unknown = run.json("usage", "--unknown", *WINDOW)
    assert unknown["workspace_id"] is None
    assert unknown["totals"] == {"credential_invalid": 9}
    assert "--key" in run.fails("usage", "--unknown", "--key", key_id, code=2)
    assert "--workspace" in run.fails("usage", "--key", key_id, code=2)
    assert run.json("prune-usage", "--retention-days", "30") == {
        "retention_days": 30,
        "rollup_after_hours": 24,
    }


def test_usage_of_an_identity_sums_its_keys_and_only_its_keys(run: Run, workspace: str) -> None:
    first = run.key(workspace, "--identity", "customer-1")
    second = run.key(workspace, "--identity", "customer-1")
    revoked = run.key(workspace, "--identity", "customer-1")
    stranger = run.key(workspace, "--identity", "customer-2")
    plain = run.key(workspace)
    run.json("keys", "revoke", revoked)
    _record(
        run,
        [
            # The same bucket and outcome for two keys: summed, not one in place of the other.
            UsageCount(workspace, first, "allowed", HOUR, 5),
            UsageCount(workspace, second, "allowed", HOUR, 7),
            UsageCount(workspace, second, "rate_limited", HOUR, 2),
            UsageCount(workspace, revoked, "allowed", HOUR + 3600 - 60, 1),
            UsageCount(workspace, stranger, "allowed", HOUR, 100),
            UsageCount(workspace, plain, "allowed", HOUR, 1000),
        ],
    )
    doc = run.json("usage", "--workspace", workspace, "--identity", "customer-1", *WINDOW)
    assert doc["identity_id"].startswith("idt_")
    assert doc["key_id"] is None
    assert doc["totals"] == {"allowed": 13, "rate_limited": 2}
    assert doc["buckets"] == [{"start": HOUR, "outcomes": {"allowed": 13, "rate_limited": 2}}]
    minutes = run.json(
        "usage", "--workspace", workspace, "--identity", "customer-1", *WINDOW,
        "--granularity", "minute",
    )  # fmt: skip
    assert [b["start"] for b in minutes["buckets"]] == [HOUR, HOUR + 3600 - 60]
    code, out, _ = run("usage", "--workspace", workspace, "--identity", "customer-1", *WINDOW)
    assert code == 0
    assert out.splitlines()[-1].split() == ["total", "13", "0", "2", "0"]


def test_usage_of_an_identity_refuses_what_does_not_fit(
    run: Run, workspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run.key(workspace, "--identity", "customer-1")
    run.key(workspace, "--identity", "customer-1")
    whose = ("usage", "--workspace", workspace)
    assert "not found" in run.fails(*whose, "--identity", "nobody", code=1)
    assert "not allowed with" in run.fails(*whose, "--identity", "a", "--key", "k", code=2)
    assert "--identity" in run.fails("usage", "--unknown", "--identity", "a", code=2)
    run.json("identities", "create", "--workspace", workspace, "keyless")
    reversed_window = ("--since", "2000", "--until", "1000")
    assert "before" in run.fails(*whose, "--identity", "keyless", *reversed_window, code=2)
    monkeypatch.setattr(usage_command, "MAX_IDENTITY_KEYS", 1)
    line = run.fails(*whose, "--identity", "customer-1", code=1)
    assert "has 2 keys" in line
    assert "--key" in line
