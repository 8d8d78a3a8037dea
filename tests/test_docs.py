"""Every Python sample in README.md and docs/*.md runs.

Blocks fenced as ```python are executed in order, one namespace per document, in a temporary
working directory, so a sample that drifts from the API fails here. A sample that is only an
excerpt of a file that a test already runs is fenced as ```python title="path" and checked to
be a verbatim excerpt of that file instead.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from authcore.backends import Auth

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```python(?P<info>[^\n]*)\n(?P<code>.*?)^```", re.DOTALL | re.MULTILINE)
TITLE = re.compile(r'title="(?P<path>[^"]+)"')


def blocks(path: Path) -> list[tuple[str, str]]:
    return [(m["info"], m["code"]) for m in FENCE.finditer(path.read_text(encoding="utf-8"))]


DOCS_WITH_SAMPLES = [path for path in DOCS if blocks(path)]


def test_readme_has_a_python_sample() -> None:
    assert blocks(ROOT / "README.md")


@pytest.mark.parametrize("path", DOCS_WITH_SAMPLES, ids=lambda p: p.name)
def test_python_samples_run(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, authcore_config_file: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    # A configured service, as the docs advise beyond a laptop (so connect() does not warn).
    monkeypatch.setenv("AUTHCORE_CONFIG", str(authcore_config_file))
    namespace: dict[str, object] = {"__name__": f"docs_{path.stem}"}
    opened: list[Auth] = []
    for info, code in blocks(path):
        title = TITLE.search(info)
        if title:
            source = (ROOT / title["path"]).read_text(encoding="utf-8")
            assert code.strip() in source, (
                f"{path.name}: sample is not an excerpt of {title['path']}"
            )
            continue
        exec(compile(code, f"{path.name}:sample", "exec"), namespace)  # noqa: S102 - our own docs
        # not isinstance: a LocalProxy (Flask's current_principal) would resolve itself
        opened.extend(value for value in namespace.values() if type(value) is Auth)
    # What a sample opened with connect() is closed, as the app's lifecycle would.
    for auth in opened:
        auth.close()


TEST_REFERENCE = re.compile(r"`(tests/[\w/]+\.py)(?:::(\w+))?`")


@pytest.mark.parametrize("path", [ROOT / "SECURITY.md", *DOCS], ids=lambda p: p.name)
def test_every_test_a_document_cites_exists(path: Path) -> None:
    # SECURITY.md backs each promise with the tests that hold it: a renamed test must not
    # leave a promise pointing at nothing.
    for match in TEST_REFERENCE.finditer(path.read_text(encoding="utf-8")):
        cited = ROOT / match[1]
        assert cited.is_file(), f"{path.name} cites {match[1]}"
        if match[2]:
            assert f"def {match[2]}(" in cited.read_text(encoding="utf-8"), match[0]


def test_the_install_section_names_no_unpublished_distribution_and_this_wheel() -> None:
    # Nothing is on PyPI yet: the README installs from a clone or a wheel built there, and
    # the wheel it names is the one this version builds.
    version = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "version"
    ]
    install = (ROOT / "README.md").read_text(encoding="utf-8").partition("## Install")[2]
    install = install.partition("\n## ")[0]
    commands = re.findall(r"^pip install .*$", install, re.MULTILINE)
    assert commands
    assert not [c for c in commands if "authcore-auth[" in c or c.split()[2:3] == ["authcore"]]
    assert f"dist/authcore_auth-{version}-py3-none-any.whl[" in install
