"""The ``authcore`` command line, in-process through ``main()`` and as ``python -m authcore``."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from authcore.cli import OTHER_PROCESSES_MAY_ACCEPT_FOR, main
from tests.cli.runner import Run, write_config

SECRET_A = "cli-test-secret-aaaaaaaaaaaaaaaaaaaaaaaaaaaa"
SECRET_B = "cli-test-secret-bbbbbbbbbbbbbbbbbbbbbbbbbbbb"


@pytest.fixture
def run(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    return Run.clean(tmp_path, capsys, monkeypatch)


@pytest.fixture
def workspace(run: Run) -> str:
    return run.workspace()


def test_init_creates_the_database(run: Run, tmp_path: Path) -> None:
    code, out, _ = run("init")
    assert code == 0
    assert (tmp_path / "authcore.db").exists()
    assert "initialized" in out
    assert run.json("init") == {"db": run.db}


def test_workspace_create_json_has_exactly_workspace_id(run: Run) -> None:
    result = run.json("workspace", "create", "--name", "acme", "--rate-limit", "100/60")
    assert list(result) == ["workspace_id"]
    assert result["workspace_id"].startswith("ws_")


def test_an_organization_has_one_workspace(run: Run) -> None:
    first = run.json("workspace", "create", "--name", "acme", "--org", "org_x")["workspace_id"]
    message = run.fails("workspace", "create", "--name", "acme-2", "--org", "org_x", code=1)
    assert f"organization 'org_x' already has a workspace ({first})" in message
    assert "an organization has one workspace" in message
    # Without --org, or with another org id, a second workspace is made.
    assert run.json("workspace", "create", "--name", "acme-2")["workspace_id"] != first
    assert run.json("workspace", "create", "--name", "acme-3", "--org", "org_y")


def test_workspace_disable(run: Run, workspace: str) -> None:
    code, out, _ = run("workspace", "disable", workspace)
    assert code == 0
    assert workspace in out
    assert "not found" in run.fails("workspace", "disable", "ws_nope", code=1)


def test_workspace_enable_undoes_disable_and_is_audited(run: Run, workspace: str) -> None:
    assert run.json("workspace", "disable", workspace) == {
        "workspace_id": workspace,
        "disabled": True,
    }
    code, out, _ = run("workspace", "enable", workspace)
    assert code == 0
    assert out == f"enabled {workspace}\n"
    events = run.json("audit", "list", "--workspace", workspace)["events"]
    assert [(e["action"], e["actor"]["id"]) for e in events] == [
        ("workspace.enable", "cli"),
        ("workspace.disable", "cli"),
        ("workspace.create", "cli"),
    ]
    assert "not found" in run.fails("workspace", "enable", "ws_nope", code=1)


def test_keys_set_limit_sets_and_clears_a_keys_own_limit(run: Run, workspace: str) -> None:
    key_id = run.json("keys", "create", "--workspace", workspace, "--permission", "keys.read")[
        "key_id"
    ]
    assert run.json("keys", "set-limit", key_id, "10/60") == {
        "key_id": key_id,
        "rate_limit": "10/60",
    }
    listed = run.json("keys", "list", "--workspace", workspace)["keys"]
    assert [k["rate_limit"] for k in listed] == ["10/60"]
    code, out, _ = run("keys", "set-limit", key_id, "none")
    assert code == 0
    assert "only its workspace limit applies" in out
    assert run.json("keys", "list", "--workspace", workspace)["keys"][0]["rate_limit"] is None
    assert "not found" in run.fails("keys", "set-limit", "key_nope", "1/1", code=1)
    run.fails("keys", "set-limit", key_id, "0/60", code=2)
    run.fails("keys", "set-limit", key_id, "lots", code=2)


def test_keys_create_json_has_exactly_key_id_and_key(run: Run, workspace: str) -> None:
    result = run.json(
        "keys", "create", "--workspace", workspace,
        "--permission", "keys.read", "--permission", "audit.*",
        "--name", "ci", "--expires-in", "3600",
    )  # fmt: skip
    assert set(result) == {"key_id", "key"}
    assert result["key"].startswith("ak_")


def test_keys_list_never_contains_a_key(run: Run, workspace: str) -> None:
    key = run.json("keys", "create", "--workspace", workspace, "--permission", "keys.read")["key"]
    listed = run.json("keys", "list", "--workspace", workspace)
    assert [k["permissions"] for k in listed["keys"]] == [["keys.read"]]
    _, text, _ = run("keys", "list", "--workspace", workspace)
    for output in (json.dumps(listed), text):
        assert key not in output
        assert key[3:] not in output


def test_keys_create_with_a_rate_limit_and_list_shows_it(run: Run, workspace: str) -> None:
    limited = run.json(
        "keys", "create", "--workspace", workspace, "--permission", "keys.read",
        "--rate-limit", "100/60",
    )["key_id"]  # fmt: skip
    plain = run.json("keys", "create", "--workspace", workspace, "--permission", "keys.read")[
        "key_id"
    ]
    listed = {
        k["key_id"]: k["rate_limit"]
        for k in run.json("keys", "list", "--workspace", workspace)["keys"]
    }
    assert listed == {limited: "100/60", plain: None}
    _, text, _ = run("keys", "list", "--workspace", workspace)
    lines = {line.split()[0]: line for line in text.splitlines()}
    assert "  limit 100/60  " in lines[limited]
    assert "  limit -  " in lines[plain]


def test_keys_revoke(run: Run, workspace: str) -> None:
    key_id = run.json("keys", "create", "--workspace", workspace, "--permission", "keys.read")[
        "key_id"
    ]
    assert run.json("keys", "revoke", key_id) == {
        "key_id": key_id,
        "revoked": True,
        "other_processes_may_accept_for_seconds": OTHER_PROCESSES_MAY_ACCEPT_FOR,
        "invalidated_through": ["database"],
    }
    listed = run.json("keys", "list", "--workspace", workspace)
    assert listed["keys"][0]["revoked_at"] is not None
    assert "not found" in run.fails("keys", "revoke", "key_nope", code=1)


def test_keys_revoke_says_how_long_running_servers_may_still_accept_it(
    run: Run, workspace: str
) -> None:
    key_id = run.json("keys", "create", "--workspace", workspace, "--permission", "keys.read")[
        "key_id"
    ]
    code, out, _ = run("keys", "revoke", key_id)
    assert code == 0
    assert f"revoked {key_id}" in out
    assert f"up to {OTHER_PROCESSES_MAY_ACCEPT_FOR} s" in out


def test_portal_create_session_json(run: Run, workspace: str) -> None:
    result = run.json(
        "portal", "create-session", "--workspace", workspace, "--identity", "u1",
        "--permission", "keys.read", "--ttl", "600",
    )  # fmt: skip
    assert set(result) == {
        "session_id", "identity_id", "code", "code_expires_at", "expires_at", "rate_limit",
        "portal_url",
    }  # fmt: skip
    assert result["rate_limit"] is None  # none was asked
    assert result["code"].startswith("pc_")
    assert result["identity_id"].startswith("idt_")
    assert result["portal_url"] == f"http://127.0.0.1:8000/portal/#code={result['code']}"
    assert result["expires_at"] - result["code_expires_at"] == 600 - 60


def test_portal_create_session_prints_a_one_time_code_not_a_token(run: Run, workspace: str) -> None:
    code, out, _ = run(
        "portal", "create-session", "--workspace", workspace, "--identity", "u1",
        "--permission", "keys.read",
    )  # fmt: skip
    assert code == 0
    assert "code:        pc_" in out
    assert "portal link: http://127.0.0.1:8000/portal/#code=pc_" in out
    assert "pt_" not in out
    assert "/portal/exchange" in out


def test_portal_revoke_session(run: Run, workspace: str) -> None:
    session_id = run.json(
        "portal", "create-session", "--workspace", workspace, "--identity", "u1",
        "--permission", "keys.read",
    )["session_id"]  # fmt: skip
    assert run.json("portal", "revoke-session", session_id) == {
        "session_id": session_id,
        "revoked": True,
        "other_processes_may_accept_for_seconds": OTHER_PROCESSES_MAY_ACCEPT_FOR,
        "invalidated_through": ["database"],
    }
    code, out, _ = run("portal", "revoke-session", session_id)
    assert code == 0
    assert f"up to {OTHER_PROCESSES_MAY_ACCEPT_FOR} s" in out
    events = run.json("audit", "list", "--workspace", workspace)["events"]
    assert events[0]["action"] == "portal_session.revoke"
    assert events[0]["actor"] == {"type": "operator", "id": "cli"}
    assert events[0]["targets"][0]["id"] == session_id
    assert "not found" in run.fails("portal", "revoke-session", "ps_nope", code=1)


def test_dashboard_user_add_reads_the_password_from_stdin(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("correct horse battery staple\n"))
    code, out, err = run(
        "dashboard-user", "add", "--user-id", "alice", "--org", "org_acme",
        "--password-stdin", "--permission", "keys.read",
    )  # fmt: skip
    assert code == 0, err
    assert "correct horse" not in out + err
    monkeypatch.setattr(sys, "stdin", io.StringIO("another password\n"))
    duplicate = run.fails(
        "dashboard-user", "add", "--user-id", "alice", "--org", "org_acme",
        "--password-stdin", "--permission", "keys.read", code=1,
    )  # fmt: skip
    assert "another" not in duplicate


def test_dashboard_user_add_needs_a_password(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    args = ("dashboard-user", "add", "--user-id", "a", "--org", "o", "--permission", "keys.read")
    assert "--password-stdin" in run.fails(*args, code=2)
    assert "no password" in run.fails(*args, "--password-stdin", code=2)


def test_audit_list_json(run: Run, workspace: str) -> None:
    key_id = run.json("keys", "create", "--workspace", workspace, "--permission", "keys.read")[
        "key_id"
    ]
    events = run.json("audit", "list", "--workspace", workspace)["events"]
    assert [e["action"] for e in events] == ["key.create", "workspace.create"]
    assert events[0]["actor"] == {"type": "operator", "id": "cli"}
    assert events[0]["targets"][0]["id"] == key_id
    _, text, _ = run("audit", "list", "--workspace", workspace)
    assert "key.create" in text


def test_jwt_mint_with_a_config(run: Run, tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "authcore.toml",
        f'[jwt]\nsigning_kid = "k1"\n[[jwt.secrets]]\nkid = "k1"\nsecret = "{SECRET_A}"\n',
    )
    result = run.json(
        "jwt", "mint", "--workspace", "ws_1", "--subject", "alice", "--permission", "keys.read",
        "--ttl", "60", config=config,
    )  # fmt: skip
    assert set(result) == {"token", "kid", "expires_at"}
    assert result["kid"] == "k1"
    from authcore.config import load_config

    claims = (
        load_config(str(config), environ={})
        .jwt.verifying_keyring()
        .verify(result["token"], result["expires_at"] - 30)
    )
    assert claims.subject == "alice"
    assert claims.permissions == ("keys.read",)


def test_jwt_mint_without_config_creates_a_private_dev_secret(run: Run, tmp_path: Path) -> None:
    code, out, err = run("jwt", "mint", "--workspace", "w", "--subject", "s", "--permission", "a")
    assert code == 0
    assert out.count(".") == 2
    secrets_file = tmp_path / "authcore-dev-secrets.toml"
    assert str(secrets_file) in err
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    assert "secret" not in err.replace("secrets", "")  # names the file, never the value
    code, _, err = run("jwt", "mint", "--workspace", "w", "--subject", "s", "--permission", "a")
    assert code == 0
    assert "using" in err


def test_jwt_mint_ttl_over_the_maximum_is_a_usage_error(run: Run, tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "authcore.toml", f'[jwt]\n[[jwt.secrets]]\nkid = "k1"\nsecret = "{SECRET_A}"\n'
    )
    line = run.fails(
        "jwt", "mint", "--workspace", "w", "--subject", "s", "--permission", "a",
        "--ttl", "1000", code=2, config=config,
    )  # fmt: skip
    assert "max_lifetime" in line


def test_jwt_check_rotation(run: Run, tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "rotation.toml",
        '[jwt]\nsigning_kid = "k2"\n'
        f'[[jwt.secrets]]\nkid = "k2"\nsecret = "{SECRET_B}"\n'
        f'[[jwt.secrets]]\nkid = "k1"\nsecret = "{SECRET_A}"\n',
    )
    code, out, _ = run("jwt", "check-rotation", config=config)
    assert code == 0
    assert "SAFE" in out
    assert SECRET_A not in out
    code, out, _ = run("jwt", "check-rotation", "--remove", "k1", config=config)
    assert code == 1
    assert "UNSAFE" in out
    code, out, _ = run("jwt", "check-rotation", "--signing-kid", "k3", "--json", config=config)
    assert code == 1
    result = json.loads(out)
    assert result["safe"] is False
    assert any("k3" in problem for problem in result["problems"])
    assert set(result) == {"safe", "problems", "api_kids", "signing_kid"}


def test_jwt_check_rotation_allows_removal_after_max_lifetime(run: Run, tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "rotation.toml",
        '[jwt]\nsigning_kid = "k2"\nmax_lifetime = 60\nleeway = 5\n'
        f'[[jwt.secrets]]\nkid = "k2"\nsecret = "{SECRET_B}"\n'
        f'[[jwt.secrets]]\nkid = "k1"\nsecret = "{SECRET_A}"\n',
    )
    result = run.json(
        "jwt", "check-rotation", "--remove", "k1", "--switched-at", "1000000000", config=config
    )
    assert result["safe"] is True


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("[jwt\n", "invalid TOML"),
        ("[jwt]\n", "jwt.secrets"),
        ("[jwt]\nissuer = 5\n[[jwt.secrets]]\nkid='a'\nsecret='" + SECRET_A + "'\n", "issuer"),
        (
            "[jwt]\n[[jwt.secrets]]\nkid = 'a'\nsecret_env = 'AUTHCORE_TEST_UNSET'\n",
            "AUTHCORE_TEST_UNSET",
        ),
        ("[jwt]\n[[jwt.secrets]]\nkid = 'a'\nsecret = 'short'\n", "shorter than 32"),
        (
            "[jwt]\n[[jwt.secrets]]\nkid = 'a'\nsecret = '" + SECRET_A + "'\n"
            "[[jwt.secrets]]\nkid = 'a'\nsecret = '" + SECRET_B + "'\n",
            "kid",
        ),
        (
            "[jwt]\n[[jwt.secrets]]\nkid = 'a'\nsecret = '" + SECRET_A + "'\nsecret_env = 'X'\n",
            "exactly one",
        ),
        (
            "[jwt]\nleeway = 600\n[[jwt.secrets]]\nkid = 'a'\nsecret = '" + SECRET_A + "'\n",
            "leeway",
        ),
        (
            "[jwt]\nsigning_kid = 'b'\n[[jwt.secrets]]\nkid = 'a'\nsecret = '" + SECRET_A + "'\n",
            "signing_kid",
        ),
        (
            # Found only when signing (jwt mint, the dashboard), and still named by the file.
            "[jwt]\n[[jwt.secrets]]\nkid = 'a'\nsecret = '" + SECRET_A + "'\n"
            "[[jwt.secrets]]\nkid = 'b'\nsecret = '" + SECRET_B + "'\n",
            "signing_kid is required",
        ),
        (
            "[jwt]\nissuer_typo = 'x'\n[[jwt.secrets]]\nkid = 'a'\nsecret = '" + SECRET_A + "'\n",
            "issuer_typo",
        ),
        ("[server]\n", "server"),
    ],
)
def test_config_errors_are_one_line(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str, expected: str
) -> None:
    monkeypatch.delenv("AUTHCORE_TEST_UNSET", raising=False)
    config = write_config(tmp_path / "bad.toml", body)
    line = run.fails(
        "jwt", "mint", "--workspace", "w", "--subject", "s", "--permission", "a",
        config=config, code=2,
    )  # fmt: skip
    assert expected in line
    assert str(config) in line
    assert SECRET_A not in line
    assert SECRET_B not in line


def test_the_dashboard_names_the_config_file_without_a_signing_kid(tmp_path: Path) -> None:
    # The dashboard signs (its proxy mints JWTs), so it needs the signing kid that serve does
    # not; the refusal comes before any port is bound, one line naming the file.
    config = write_config(
        tmp_path / "two.toml",
        f"[jwt]\n[[jwt.secrets]]\nkid = 'a'\nsecret = '{SECRET_A}'\n"
        f"[[jwt.secrets]]\nkid = 'b'\nsecret = '{SECRET_B}'\n",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHCORE_")}
    done = subprocess.run(
        [
            sys.executable, "-m", "authcore", "--db", f"sqlite:///{tmp_path / 'a.db'}",
            "--config", str(config), "dashboard", "--port", "1",
        ],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"authcore: error: config file {config}: jwt.signing_kid is required when "
        "jwt.secrets has more than one entry"
    ]


def test_config_secret_env_is_read_from_the_environment(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTHCORE_TEST_SECRET", SECRET_B)
    config = write_config(
        tmp_path / "env.toml",
        "[jwt]\n[[jwt.secrets]]\nkid = 'k9'\nsecret_env = 'AUTHCORE_TEST_SECRET'\n",
    )
    result = run.json(
        "jwt", "mint", "--workspace", "w", "--subject", "s", "--permission", "a", config=config
    )
    assert result["kid"] == "k9"


def test_missing_config_file_is_one_line(run: Run, tmp_path: Path) -> None:
    line = run.fails("jwt", "check-rotation", config=tmp_path / "nope.toml", code=2)
    assert "nope.toml" in line


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["frobnicate"], "invalid choice"),
        (["keys", "create", "--workspace", "w"], "--permission"),
        (["keys", "create", "--workspace", "w", "--permission", "Keys.Read"], "Keys.Read"),
        (
            ["keys", "create", "--workspace", "w", "--permission", "a", "--expires-in", "soon"],
            "soon",
        ),
        (
            ["keys", "create", "--workspace", "w", "--permission", "a", "--expires-in", "0"],
            "in 1..",
        ),
        (
            ["keys", "create", "--workspace", "w", "--permission", "a", "--rate-limit", "lots"],
            "N/SECONDS",
        ),
        (
            ["keys", "create", "--workspace", "w", "--permission", "a", "--rate-limit", "5/0"],
            "rate limit",
        ),
        (["workspace", "create", "--name", "x", "--rate-limit", "lots"], "N/SECONDS"),
        (["workspace", "create", "--name", "x", "--rate-limit", "0/60"], "rate limit"),
        (["workspace", "create", "--name", ""], "--name"),
        (["serve", "--port", "70000"], "TCP port"),
        (["audit", "list"], "--workspace"),
    ],
)
def test_usage_errors_are_one_line_with_exit_2(run: Run, argv: list[str], expected: str) -> None:
    assert expected in run.fails(*argv, code=2)


def test_bad_database_urls(run: Run, tmp_path: Path) -> None:
    for url, expected in [
        ("mysql://localhost/db", "unsupported"),
        ("sqlite://relative.db", "sqlite:///PATH"),
        ("nonsense", "unsupported"),
    ]:
        code = main(["--db", url, "init"])
        _, err = run.capsys.readouterr()
        assert code == 2
        assert expected in err
        assert len(err.strip().splitlines()) == 1
    unreachable = f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}"
    assert main(["--db", unreachable, "init"]) == 1
    _, err = run.capsys.readouterr()
    assert "unavailable" in err
    assert "Traceback" not in err


def test_unreachable_postgres_is_one_line(run: Run) -> None:
    pytest.importorskip("authcore.backends.postgres")
    # Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    url = "postgresql://user:hunter2@127.0.0.1:9/db?connect_timeout=2"
    code = main(["--db", url, "init"])
    _, err = run.capsys.readouterr()
    assert code == 1
    assert len(err.strip().splitlines()) == 1
    assert "hunter2" not in err
    assert "Traceback" not in err


def test_help_exits_zero(run: Run) -> None:
    assert main(["--help"]) == 0
    out, _ = run.capsys.readouterr()
    assert "keys" in out
    assert "dashboard-user" in out


def test_environment_selects_the_database(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "from-env.db"
    monkeypatch.setenv("AUTHCORE_DB", f"sqlite:///{other}")
    assert main(["init"]) == 0
    run.capsys.readouterr()
    assert other.exists()


def _module(tmp_path: Path, *argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHCORE_")}
    return subprocess.run(
        [sys.executable, "-m", "authcore", "--db", f"sqlite:///{tmp_path / 'sub.db'}", *argv],
        capture_output=True,
        text=True,
        input=stdin,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )


def test_python_dash_m_authcore_end_to_end(tmp_path: Path) -> None:
    created = _module(tmp_path, "workspace", "create", "--name", "sub", "--json")
    assert created.returncode == 0, created.stderr
    workspace_id = json.loads(created.stdout)["workspace_id"]
    key = _module(
        tmp_path,
        "keys",
        "create",
        "--workspace",
        workspace_id,
        "--permission",
        "keys.read",
        "--json",
    )
    assert key.returncode == 0, key.stderr
    assert set(json.loads(key.stdout)) == {"key_id", "key"}


def test_python_dash_m_authcore_errors_have_no_traceback(tmp_path: Path) -> None:
    result = _module(tmp_path, "keys", "list", "--workspace", "ws_missing")
    assert result.returncode == 1
    assert result.stderr.strip() == "authcore: error: workspace 'ws_missing' not found"
    usage = _module(tmp_path, "keys", "create")
    assert usage.returncode == 2
    assert len(usage.stderr.strip().splitlines()) == 1
    assert "Traceback" not in usage.stderr


def test_serve_on_a_taken_port_is_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _module(tmp_path, "serve", "--port", str(port))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert errors == [f"authcore: error: cannot listen on 127.0.0.1:{port}: Address already in use"]
