"""``--redis`` with Redis unreachable: a change still commits, then its publish fails, once.

Every topology (one server, Sentinel, Cluster), on a closed loopback port: the revocation is
in the database afterwards, the command exits 0, and it says the publish failed and which bound
applies (the servers follow the database's invalidations).
"""

from __future__ import annotations

import socket

import pytest

from tests.cli.runner import Run


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unreachable(topology: str) -> str:
    port = closed_port()
    return {
        "server": f"redis://:hunter2-secret@127.0.0.1:{port}/0",
        "sentinel": f"redis+sentinel://:hunter2-secret@127.0.0.1:{port}/mymaster",
        "cluster": f"redis+cluster://:hunter2-secret@127.0.0.1:{port}",
    }[topology]


TOPOLOGIES = ["server", "sentinel", "cluster"]


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_keys_revoke_commits_and_says_the_publish_failed(
    run: Run, workspace: str, topology: str
) -> None:
    key_id = run.json("keys", "create", "--workspace", workspace, "--permission", "keys.read")[
        "key_id"
    ]
    code, out, err = run("--redis", unreachable(topology), "keys", "revoke", key_id)
    assert code == 0, err
    assert out.splitlines() == [
        f"revoked {key_id}",
        "Running servers may still accept it for up to 1 s: they follow this database's"
        " invalidations.",
    ]
    # One line, from the command, not one log record per invalidation; no password, no id.
    assert err.splitlines() == [
        "authcore: could not publish the change to Redis (--redis); it is committed, and"
        " running servers take it from this database within 1 s"
    ]
    listed = run.json("keys", "list", "--workspace", workspace)["keys"]
    assert [k["revoked_at"] is not None for k in listed if k["key_id"] == key_id] == [True]


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_the_json_document_names_only_the_database(run: Run, workspace: str, topology: str) -> None:
    key_id = run.json("keys", "create", "--workspace", workspace, "--permission", "keys.read")[
        "key_id"
    ]
    document = run.json("keys", "revoke", key_id, "--redis", unreachable(topology))
    assert document == {
        "key_id": key_id,
        "revoked": True,
        "other_processes_may_accept_for_seconds": 1,
        "invalidated_through": ["database"],
    }


def test_identities_delete_revoke_keys_commits_with_the_cluster_down(
    run: Run, workspace: str
) -> None:
    run.json("keys", "create", "--workspace", workspace, "--identity", "c1", "--permission", "a.b")
    code, _, err = run(
        "identities", "delete", "--workspace", workspace, "c1", "--revoke-keys",
        "--redis", unreachable("cluster"),
    )  # fmt: skip
    assert code == 0, err
    assert "could not publish the change to Redis" in err
    listed = run.json("keys", "list", "--workspace", workspace)["keys"]
    assert listed
    assert all(k["revoked_at"] is not None for k in listed)
