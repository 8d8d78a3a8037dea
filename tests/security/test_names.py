"""Finding 9: names accepted C1 controls, bidi overrides and U+2028 through the API.

Names and ids reach audit logs, server logs, ``authcore keys list`` and the dashboard. One
check (:func:`authcore.names.check_name`: no Unicode Cc, Cf, Zl, Zp or Cs character) now guards
the store, the example API (400) and the command line (exit 2, one line); and ``keys list``
escapes what an older database may still hold.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from authcore.backends.sqlite import SQLiteStore
from authcore.cli import main
from authcore.errors import ClientError
from authcore.names import check_name, printable, unsafe_in
from authcore.records import OPERATOR_ACTOR
from tests.service.stack import Stack, demo_stack

HOSTILE = [
    pytest.param("build\u0085server", id="C1-NEL"),
    pytest.param("build\u009b31mred", id="C1-CSI"),
    pytest.param("invoice\u202efdp.exe", id="RLO"),
    pytest.param("a\u2066b\u2069", id="isolate"),
    pytest.param("zero\u200bwidth", id="ZWSP"),
    pytest.param("soft\u00adhyphen", id="SHY"),
    pytest.param("two\u2028lines", id="LS"),
    pytest.param("two\u2029paras", id="PS"),
    pytest.param("nul\x00byte", id="NUL"),
    pytest.param("esc\x1b[2J", id="ESC"),
    pytest.param("tab\tname", id="TAB"),
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with demo_stack(tmp_path_factory.mktemp("names")) as started:
        yield started


@pytest.mark.e2e
@pytest.mark.parametrize("name", HOSTILE)
def test_finding_9_the_api_refuses_such_a_key_name(stack: Stack, name: str) -> None:
    with stack.api() as api:
        response = api.post("/v1/keys", json={"name": name, "permissions": []})
        listed = api.get("/v1/keys").json()["keys"]
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_body"
    assert name not in [key["name"] for key in listed]


@pytest.mark.e2e
@pytest.mark.parametrize("name", HOSTILE)
def test_finding_9_the_api_refuses_such_an_identity(stack: Stack, name: str) -> None:
    with stack.api() as api:
        answers = [
            api.post("/v1/portal-sessions", json={"identity": name, "permissions": []}),
            api.post("/v1/identities", json={"external_id": name}),
            api.post("/v1/keys", json={"name": "k", "permissions": [], "identity": name}),
            api.get("/v1/keys", params={"identity": name}),
            api.get("/v1/usage", params={"identity": name}),
        ]
        listed = api.get("/v1/identities", params={"limit": "100"}).json()["identities"]
    assert [a.status_code for a in answers] == [400] * len(answers)
    assert [a.json()["code"] for a in answers] == ["invalid_body"] * 3 + ["invalid_query"] * 2
    assert name not in [identity["external_id"] for identity in listed]


@pytest.mark.e2e
def test_finding_9_the_dashboard_proxy_gets_the_same_answer(stack: Stack) -> None:
    with stack.dashboard() as dashboard:
        response = dashboard.post(
            "/proxy/v1/keys",
            json={"name": "invoice\u202efdp.exe", "permissions": []},
            headers={"Sec-Fetch-Site": "same-origin"},
        )
    assert response.status_code == 400


@pytest.mark.e2e
def test_names_in_any_script_still_work(stack: Stack) -> None:
    name = "d\u00e9ploiement \u6771\u4eac \u0661\u0660 \U0001f680"
    with stack.api() as api:
        assert api.post("/v1/keys", json={"name": name, "permissions": []}).status_code == 201
        assert name in [key["name"] for key in api.get("/v1/keys").json()["keys"]]


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    for variable in ("AUTHCORE_DB", "AUTHCORE_CONFIG", "AUTHCORE_DEBUG"):
        monkeypatch.delenv(variable, raising=False)
    return f"sqlite:///{tmp_path / 'authcore.db'}"


def _fails_in_one_line(capsys: pytest.CaptureFixture[str], code: int, name: str) -> None:
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("authcore: error: ")
    assert name not in err  # the hostile value is never echoed to the terminal


@pytest.mark.parametrize("name", HOSTILE)
def test_finding_9_the_command_line_refuses_such_names_in_one_line(
    cli: str, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    code = main(["--db", cli, "workspace", "create", "--name", name])
    _fails_in_one_line(capsys, code, name)
    assert main(["--db", cli, "workspace", "create", "--name", "ok", "--json"]) == 0
    workspace = capsys.readouterr().out.split('"')[3]
    for argv in (
        ["keys", "create", "--workspace", workspace, "--permission", "a", "--name", name],
        ["portal", "create-session", "--workspace", workspace, "--identity", name,
         "--permission", "a"],
        ["keys", "create", "--workspace", workspace, "--permission", "a", "--identity", name],
        ["identities", "create", "--workspace", workspace, name],
        ["keys", "revoke", name],
    ):  # fmt: skip
        _fails_in_one_line(capsys, main(["--db", cli, *argv]), name)


def test_finding_9_keys_list_escapes_a_name_stored_before_the_check(
    cli: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with SQLiteStore(tmp_path / "authcore.db") as store:
        workspace = store.create_workspace("old", now=time.time(), actor=OPERATOR_ACTOR)
        created = store.create_root_key(
            workspace.id, permissions=[], name="placeholder", now=time.time(), actor=OPERATOR_ACTOR
        )
        assert created is not None
    # As an older version (or a hand edit) could have left it.
    with contextlib.closing(sqlite3.connect(tmp_path / "authcore.db")) as raw, raw:
        raw.execute(
            "UPDATE root_keys SET name = ? WHERE id = ?",
            ("evil\u202efdp.exe\x1b[2J\u2028", created.record.id),
        )
    assert main(["--db", cli, "keys", "list", "--workspace", workspace.id]) == 0
    out = capsys.readouterr().out
    assert "\u202e" not in out
    assert "\x1b" not in out
    assert "\u2028" not in out
    assert "evil\\u202efdp.exe\\u001b[2J\\u2028" in out


@pytest.mark.parametrize("name", HOSTILE)
def test_the_one_check_refuses_them_and_printable_escapes_them(name: str) -> None:
    with pytest.raises(ClientError, match="must not contain"):
        check_name(name, "name")
    shown = printable(name)
    assert not unsafe_in(shown)
    assert "\\u" in shown


def test_printable_leaves_ordinary_text_alone() -> None:
    text = "plain ascii, caf\u00e9, \u6771\u4eac, \U0001f680"
    assert printable(text) == text
