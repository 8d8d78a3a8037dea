"""The Pythons the package declares are exactly the ones `make test` runs.

The Makefile's ``PYTHONS`` is what runs (the whole suite on the default interpreter, the core,
adapter and backend tests on the others); ``requires-python`` and the classifiers in
pyproject.toml must name the same versions, and so must the installed distribution.
"""

from __future__ import annotations

import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def _make_pythons() -> list[tuple[int, int]]:
    match = re.search(r"^PYTHONS := (.+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert match, "Makefile defines PYTHONS"
    versions = [tuple(int(n) for n in v.split(".")) for v in match[1].split()]
    return [(major, minor) for major, minor in versions]


MAKE_PYTHONS = _make_pythons()


def test_the_makefile_runs_consecutive_python_3_versions() -> None:
    assert MAKE_PYTHONS
    assert {major for major, _ in MAKE_PYTHONS} == {3}
    minors = [minor for _, minor in MAKE_PYTHONS]
    assert minors == list(range(minors[0], minors[-1] + 1))


def test_classifiers_name_exactly_the_versions_make_test_runs() -> None:
    prefix = "Programming Language :: Python :: 3."
    declared = {
        (3, int(c.removeprefix(prefix)))
        for c in PROJECT["classifiers"]
        if c.startswith(prefix) and c.removeprefix(prefix).isdigit()
    }
    assert declared == set(MAKE_PYTHONS)


def test_requires_python_admits_exactly_the_versions_make_test_runs() -> None:
    (_, lowest), (_, highest) = MAKE_PYTHONS[0], MAKE_PYTHONS[-1]
    assert PROJECT["requires-python"] == f">=3.{lowest},<3.{highest + 1}"


def test_the_installed_distribution_declares_the_same_range() -> None:
    # The venv's install is redone whenever pyproject.toml changes (the Makefile's stamp).
    installed = metadata.metadata("authcore-auth")
    assert installed["Requires-Python"].replace(" ", "") in {
        PROJECT["requires-python"],
        ",".join(reversed(PROJECT["requires-python"].split(","))),
    }


def test_this_interpreter_is_one_the_package_declares() -> None:
    # Every run of the suite, on any venv `make test` builds, is on a declared version.
    assert sys.version_info[:2] in MAKE_PYTHONS


def test_the_c_accelerators_the_extras_name_are_the_ones_in_use() -> None:
    # The extras ask for psycopg[binary], redis[hiredis] and httptools: on every Python that
    # `make test` runs, each must install as a wheel that loads, not fall back to pure Python.
    import httptools  # noqa: F401 - importing is the check
    import psycopg
    import redis.utils
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol  # noqa: F401 - same

    assert psycopg.pq.__impl__ == "binary"
    assert redis.utils.HIREDIS_AVAILABLE
