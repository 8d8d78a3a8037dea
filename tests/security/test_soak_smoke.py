"""The soak command (``python -m benchmarks.soak``) runs briefly and reports zero 500s."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
def test_a_five_second_soak_has_no_500_and_no_exception() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.soak", "--seconds", "5", "--workers", "4"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,  # generous: only a hang fails here, never a slow machine
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK: zero 500s, zero exceptions" in result.stdout
    assert "200:" in result.stdout  # valid traffic got through, so the mix is not all refusals
