"""What the command-line tests share: :class:`Run`, ``main()`` against one temporary database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from authcore.backends import open_store
from authcore.cli import main
from authcore.store import Store


class Run:
    """Runs ``main()`` against one temporary database and captures what it printed."""

    def __init__(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.db = f"sqlite:///{tmp_path / 'authcore.db'}"
        self.tmp_path = tmp_path
        self.capsys = capsys

    @classmethod
    def clean(
        cls, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> Run:
        """A runner whose environment names no database, configuration or Redis."""
        for name in ("AUTHCORE_DB", "AUTHCORE_CONFIG", "AUTHCORE_DEBUG", "AUTHCORE_REDIS"):
            monkeypatch.delenv(name, raising=False)
        return cls(tmp_path, capsys)

    def __call__(self, *argv: str, config: Path | None = None) -> tuple[int, str, str]:
        prefix = ["--db", self.db]
        if config is not None:
            prefix += ["--config", str(config)]
        code = main([*prefix, *argv])
        out, err = self.capsys.readouterr()
        assert "Traceback" not in err
        return code, out, err

    def json(self, *argv: str, config: Path | None = None) -> Any:
        code, out, err = self(*argv, "--json", config=config)
        assert code == 0, err
        assert out.count("\n") == 1, "exactly one JSON object on one line"
        return json.loads(out)

    def fails(self, *argv: str, code: int, config: Path | None = None) -> str:
        got, out, err = self(*argv, config=config)
        assert got == code, (got, err)
        assert out == ""
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert lines[0].startswith("authcore: ")
        return lines[0]

    def workspace(self) -> str:
        """Create a workspace (linked to ``org_acme``); return its id."""
        result = self.json("workspace", "create", "--name", "acme", "--org", "org_acme")
        workspace_id: str = result["workspace_id"]
        return workspace_id

    def key(self, workspace_id: str, *options: str) -> str:
        """Create a key with ``keys.read`` (and ``options``); return its id."""
        argv = ("keys", "create", "--workspace", workspace_id, "--permission", "keys.read")
        key_id: str = self.json(*argv, *options)["key_id"]
        return key_id

    def store(self) -> Store:
        """The store the commands use (close it)."""
        return open_store(self.db)


def write_config(path: Path, body: str) -> Path:
    path.write_text(body, encoding="utf-8")
    return path
