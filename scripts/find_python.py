"""Find a CPython interpreter of one minor version for `make test`'s other-Python runs.

Usage: ``python scripts/find_python.py 3.12``

- Found: print its path on stdout, exit 0.
- Absent, outside CI: print why on stderr (every place looked at), print nothing on stdout,
  exit 0, so the Makefile skips that version with the reason shown.
- Absent with ``CI=true``: the same reason, then exit 1. The versions the package declares
  are the ones CI runs, so CI may not pass without one of them (like PostgreSQL and Redis).

Places, in order: ``$PYENV_ROOT/versions/X.Y.*`` (``~/.pyenv`` by default; the newest patch
release first), then every ``pythonX.Y`` on ``PATH``. A candidate counts only if running it
reports that very version and it can build a virtual environment (``venv`` and ``ensurepip``
import): pyenv puts a ``python3.12`` shim on ``PATH`` that fails unless 3.12 is selected, and
Debian's Python lacks ``ensurepip`` without ``python3-venv``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

_VERSION = re.compile(r"3\.(\d+)")
_PROBE = (
    "import sys, venv, ensurepip; "
    "print(f'{sys.version_info[0]}.{sys.version_info[1]}', sys.implementation.name)"
)


def _patch_key(path: Path) -> tuple[int, ...]:
    # "3.12.10" after "3.12.9"; pre-releases ("3.13.0rc1") sort by their leading digits.
    return tuple(int(part) for part in re.findall(r"\d+", path.name))


def candidates(version: str) -> Iterator[Path]:
    """Every path worth trying for ``version``, best first (may not exist or may not work)."""
    pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    versions = pyenv_root / "versions"
    if versions.is_dir():
        # "3.12.1" and "3.12.10", never "3.120.0"; pyenv virtualenvs are symlinks, skipped.
        found = [
            d
            for d in versions.iterdir()
            if re.fullmatch(re.escape(version) + r"\.\d+", d.name) and not d.is_symlink()
        ]
        for directory in sorted(found, key=_patch_key, reverse=True):
            yield directory / "bin" / f"python{version}"
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        if entry:
            yield Path(entry) / f"python{version}"


def probe(path: Path, version: str) -> str | None:
    """Return why ``path`` is not a usable CPython ``version``, or None if it is."""
    if not os.access(path, os.X_OK) or path.is_dir():
        return "not an executable"
    try:
        result = subprocess.run(
            [str(path), "-I", "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"does not run ({type(error).__name__})"
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        return f"exits {result.returncode}" + (f": {lines[0]}" if lines else "")
    reported = result.stdout.split()
    if reported != [version, "cpython"]:
        return f"reports {' '.join(reported) or 'nothing'}"
    return None


def find(version: str) -> tuple[Path | None, list[str]]:
    """Return the first usable interpreter for ``version``, and what was wrong with the others."""
    tried: list[str] = []
    seen: set[Path] = set()
    for path in candidates(version):
        if path in seen:
            continue
        seen.add(path)
        if not path.exists():
            continue
        problem = probe(path, version)
        if problem is None:
            return path, tried
        tried.append(f"{path}: {problem}")
    return None, tried


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not _VERSION.fullmatch(argv[0]):
        print("usage: find_python.py 3.X", file=sys.stderr)
        return 2
    version = argv[0]
    path, tried = find(version)
    if path is not None:
        print(path)
        return 0
    in_ci = os.environ.get("CI", "").lower() == "true"
    verdict = "FAILED (CI=true: a declared Python must run)" if in_ci else "SKIPPED"
    print(f"{verdict}: Python {version} not found", file=sys.stderr)
    for line in tried or ["no candidate exists (pyenv versions directory, PATH)"]:
        print(f"  {line}", file=sys.stderr)
    print(f"  install it (for example `pyenv install {version}`) to test on it", file=sys.stderr)
    return 1 if in_ci else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
