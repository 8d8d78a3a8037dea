"""The Pythons the package declares are exactly the ones `make test` runs.

The Makefile's ``PYTHONS`` is what runs (the whole suite on the default interpreter, the core,
adapter and backend tests on the others); ``requires-python`` and the classifiers in
pyproject.toml must name the same versions, and so must the installed distribution.
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT = PYPROJECT["project"]
PROJECT_BUILD_REQUIRES = PYPROJECT["build-system"]["requires"]


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


# The lock (requirements/test.lock) is the only place the test environment's versions are
# chosen; pyproject.toml keeps ranges. The lock must satisfy every range, on every Python the
# suite runs, and pin each package with its hashes.
LOCK = ROOT / "requirements" / "test.lock"
BUILD_IN = ROOT / "requirements" / "build.in"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")


def _locked() -> list[tuple[str, str, str | None]]:
    """Each pin of the lock: (canonical name, version, environment marker or None)."""
    from packaging.utils import canonicalize_name

    pins: list[tuple[str, str, str | None]] = []
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        match = _PIN.match(line)
        if match:
            pins.append((canonicalize_name(match[1]), match[2], match[3]))
    return pins


def _environment(minor: int) -> dict[str, str]:
    # A Linux CPython of that minor version: the machine the suite runs on.
    return {
        "python_version": f"3.{minor}",
        "python_full_version": f"3.{minor}.0",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "platform_machine": "x86_64",
        "extra": "",
    }


def _pinned_for(name: str, minor: int) -> list[str]:
    from packaging.markers import Marker

    env = _environment(minor)
    return [
        version
        for pinned, version, marker in _locked()
        if pinned == name and (marker is None or Marker(marker).evaluate(env))
    ]


def _requirements_of_test_extra() -> list[str]:
    """pyproject's requirements that `make test` installs: the core, the test extra, recursively."""
    from packaging.requirements import Requirement

    extras = PROJECT["optional-dependencies"]
    wanted, seen, texts = ["test"], set[str](), list(PROJECT["dependencies"])
    while wanted:
        extra = wanted.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for text in extras[extra]:
            req = Requirement(text)
            if req.name == PROJECT["name"]:
                wanted.extend(req.extras)
            else:
                texts.append(text)
    return texts


def test_the_lock_pins_every_package_with_hashes() -> None:
    lines = LOCK.read_text(encoding="utf-8").splitlines()
    pins = [i for i, line in enumerate(lines) if _PIN.match(line)]
    assert len(pins) > 50
    for i in pins:
        assert lines[i + 1].strip().startswith("--hash=sha256:"), lines[i]


def test_the_lock_is_made_by_make_lock() -> None:
    assert "#    make lock" in LOCK.read_text(encoding="utf-8")


@pytest.mark.parametrize("minor", [minor for _, minor in MAKE_PYTHONS])
def test_the_lock_satisfies_every_range_of_pyproject(minor: int) -> None:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    env = _environment(minor)
    build_in = [t for t in BUILD_IN.read_text().splitlines() if t and not t.startswith("#")]
    texts = [*_requirements_of_test_extra(), *PROJECT_BUILD_REQUIRES, *build_in]
    for text in texts:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        versions = _pinned_for(canonicalize_name(req.name), minor)
        assert len(versions) == 1, f"{req.name} on 3.{minor}: pinned {versions}"
        assert req.specifier.contains(versions[0], prereleases=True), (
            f"{req.name}=={versions[0]} does not satisfy {req} (3.{minor})"
        )


def test_the_installed_environment_is_the_locked_one() -> None:
    # `make test` installed this venv from the lock (DEPS=latest, `make test-latest`, is the
    # one deliberate exception: it tries the newest releases the ranges admit).
    if os.environ.get("AUTHCORE_DEPS") == "latest":
        pytest.skip("make test-latest runs on the newest releases, not the lock")
    minor = sys.version_info[1]
    for name in ("pyjwt", "attrs", "redis", "psycopg", "starlette", "fastapi", "django", "mypy"):
        (version,) = _pinned_for(name, minor)
        assert metadata.version(name) == version, name
