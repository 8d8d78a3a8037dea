"""The core is zero-I/O: no framework, driver, socket or HTTP client, and no clock reads.

Checked two ways: statically (the import statements and calls in each core module's source)
and dynamically (importing the core in a fresh interpreter loads none of the banned modules).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

CORE_DIR = Path(__file__).resolve().parents[1] / "src" / "authcore"
# Toolkits built on top of the core, not part of it (documented in their docstrings).
NOT_CORE = {"testing.py", "__main__.py", "config.py"}
CORE_MODULES = sorted(p for p in CORE_DIR.glob("*.py") if p.name not in NOT_CORE)
# A core module that became a package of modules is core all through.
CORE_MODULES += sorted(CORE_DIR.glob("proxy/*.py"))

BANNED_IMPORTS = {
    "socket", "ssl", "select", "selectors", "asyncio", "threading", "multiprocessing",
    "subprocess", "sqlite3", "psycopg", "psycopg_pool", "redis", "httpx", "requests",
    "urllib.request", "http.client", "starlette", "fastapi", "flask", "werkzeug", "uvicorn",
    "time", "datetime", "os", "io", "pathlib", "shutil", "logging",
    "authcore.adapters", "authcore.backends",
}  # fmt: skip
BANNED_CALLS = {"open", "input", "print", "exec", "eval"}


def _imports(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _module_name(path: Path) -> str:
    parts = path.relative_to(CORE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _banned(name: str) -> bool:
    return any(name == banned or name.startswith(banned + ".") for banned in BANNED_IMPORTS)


def test_there_are_core_modules_to_check() -> None:
    assert len(CORE_MODULES) >= 10


@pytest.mark.parametrize("path", CORE_MODULES, ids=_module_name)
def test_core_module_imports_no_io_library(path: Path) -> None:
    tree = ast.parse(path.read_text())
    assert sorted(name for name in _imports(tree) if _banned(name)) == []


@pytest.mark.parametrize("path", CORE_MODULES, ids=_module_name)
def test_core_module_calls_no_io_builtin(path: Path) -> None:
    tree = ast.parse(path.read_text())
    calls = {
        node.func.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }
    assert calls & BANNED_CALLS == set()


def test_importing_the_core_loads_no_io_library() -> None:
    modules = ", ".join(f"'{_module_name(p)}'" for p in CORE_MODULES)
    script = (
        "import sys, importlib\n"
        f"for name in [{modules}]: importlib.import_module(name)\n"
        "banned = ['sqlite3', 'psycopg', 'redis', 'httpx', 'starlette', 'flask', 'uvicorn',"
        " 'requests', 'authcore.adapters', 'authcore.backends']\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in banned or"
        " m.startswith(tuple(banned))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_the_checker_would_catch_a_banned_import() -> None:
    tree = ast.parse("import sqlite3\nfrom time import time\nfrom authcore.backends import x\n")
    assert sorted(name for name in _imports(tree) if _banned(name)) == [
        "authcore.backends",
        "authcore.backends.x",
        "sqlite3",
        "time",
        "time.time",
    ]
