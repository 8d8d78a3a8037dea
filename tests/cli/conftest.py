"""Fixtures of the command-line tests: a runner on a fresh database, and a workspace in it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.runner import Run


@pytest.fixture
def run(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    return Run.clean(tmp_path, capsys, monkeypatch)


@pytest.fixture
def workspace(run: Run) -> str:
    return run.workspace()
