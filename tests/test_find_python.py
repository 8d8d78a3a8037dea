"""scripts/find_python.py: how `make test` finds each other supported Python, or says why not.

Driven as the Makefile drives it (a subprocess with its own PATH, PYENV_ROOT and CI), against
real files: links to this very interpreter, and a stand-in for pyenv's failing shim.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "find_python.py"
THIS = f"{sys.version_info[0]}.{sys.version_info[1]}"


def run(
    version: str, path: list[Path], pyenv_root: Path, *, ci: bool = False
) -> tuple[int, str, str]:
    env = {
        "PATH": os.pathsep.join(str(p) for p in path),
        "PYENV_ROOT": str(pyenv_root),
        "HOME": str(pyenv_root.parent),
        "CI": "true" if ci else "",
    }
    result = subprocess.run(
        [sys.executable, str(SCRIPT), version],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    return result.returncode, result.stdout.strip(), result.stderr


def link_to_this_python(directory: Path, name: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    link = directory / name
    link.symlink_to(sys.executable)
    return link


def failing_shim(directory: Path, name: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    shim = directory / name
    shim.write_text(f"#!/bin/sh\necho 'pyenv: {name}: command not found' >&2\nexit 127\n")
    shim.chmod(0o755)
    return shim


def test_finds_this_interpreter_on_path(tmp_path: Path) -> None:
    link = link_to_this_python(tmp_path / "bin", f"python{THIS}")
    code, out, _ = run(THIS, [tmp_path / "bin"], tmp_path / "no-pyenv")
    assert (code, out) == (0, str(link))


def test_a_failing_shim_first_on_path_is_passed_over(tmp_path: Path) -> None:
    failing_shim(tmp_path / "shims", f"python{THIS}")
    link = link_to_this_python(tmp_path / "bin", f"python{THIS}")
    code, out, _ = run(THIS, [tmp_path / "shims", tmp_path / "bin"], tmp_path / "no-pyenv")
    assert (code, out) == (0, str(link))


def test_the_newest_pyenv_patch_release_comes_first(tmp_path: Path) -> None:
    versions = tmp_path / "pyenv" / "versions"
    for patch in ("2", "10", "9"):
        link_to_this_python(versions / f"{THIS}.{patch}" / "bin", f"python{THIS}")
    on_path = link_to_this_python(tmp_path / "bin", f"python{THIS}")
    code, out, _ = run(THIS, [tmp_path / "bin"], tmp_path / "pyenv")
    assert code == 0
    assert out == str(versions / f"{THIS}.10" / "bin" / f"python{THIS}")
    assert out != str(on_path)


def test_an_interpreter_of_another_version_does_not_count(tmp_path: Path) -> None:
    link_to_this_python(tmp_path / "bin", "python3.99")
    code, out, err = run("3.99", [tmp_path / "bin"], tmp_path / "no-pyenv")
    assert (code, out) == (0, "")
    assert f"reports {THIS} cpython" in err


def test_absence_outside_ci_is_a_skip_that_says_why(tmp_path: Path) -> None:
    failing_shim(tmp_path / "shims", "python3.99")
    code, out, err = run("3.99", [tmp_path / "shims"], tmp_path / "no-pyenv")
    assert (code, out) == (0, "")
    assert err.startswith("SKIPPED: Python 3.99 not found")
    assert "exits 127: pyenv: python3.99: command not found" in err


def test_absence_in_ci_is_a_failure(tmp_path: Path) -> None:
    code, out, err = run("3.99", [tmp_path / "bin"], tmp_path / "no-pyenv", ci=True)
    assert (code, out) == (1, "")
    assert err.startswith("FAILED (CI=true: a declared Python must run): Python 3.99 not found")


@pytest.mark.parametrize("argument", ["", "3", "3.x", "python3.12", "2.7"])
def test_anything_but_a_python_3_version_is_a_usage_error(tmp_path: Path, argument: str) -> None:
    code, out, err = run(argument, [], tmp_path)
    assert (code, out) == (2, "")
    assert err.startswith("usage:")


@pytest.mark.parametrize("ci", [False, True], ids=["local", "ci"])
def test_make_skips_a_missing_python_with_the_reason_and_ci_fails(ci: bool) -> None:
    # The Makefile's own wiring, for a version no machine has: nothing is installed or run.
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}
    env["CI"] = "true" if ci else ""
    result = subprocess.run(
        ["make", "--no-print-directory", "pytest-python3.99"],
        cwd=SCRIPT.parents[1],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    if ci:
        assert result.returncode != 0
        assert "FAILED (CI=true: a declared Python must run): Python 3.99" in result.stderr
    else:
        assert result.returncode == 0, result.stderr
        assert "SKIPPED: Python 3.99 not found" in result.stderr
    assert "== Python 3.99" not in result.stdout
