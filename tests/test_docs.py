"""Every page of README.md and docs/*.md runs as written, and says what it runs.

Each page's shell and Python blocks run in page order (``tests/docs_pages.py`` says how, and
what a page may promise about output); a block that cannot run here carries a
``<!-- not run: REASON -->`` marker, and :data:`NOT_RUN` lists every one, so a new marker is a
visible change. A failure names the page, the line of the block's fence and what was wrong.
"""

from __future__ import annotations

import os
import re
import tomllib
import warnings
from pathlib import Path

import pytest

from authcore.backends import Auth, DevSecretsWarning
from tests.docs_pages import (
    PAGES,
    SHELLS,
    Block,
    Shell,
    blocks,
    matches_output,
    missing_promise,
    page_environment,
    page_ports,
    substitute_ports,
)

ROOT = Path(__file__).resolve().parents[1]
DOCS = PAGES
TITLE = re.compile(r'title="(?P<path>[^"]+)"')

#: Every block that does not run, by page and the start of its first line (each says why).
NOT_RUN = {
    ("README.md", "make bench  # benchmarks: prints a table and rewri"),
    ("README.md", "make demo"),
    ("README.md", "make demo   # the example API on 127.0.0.1:8000 an"),
    ("README.md", "make test-latest   # the whole `make test` on the "),
    ("README.md", "pip install -e '.[fastapi,redis]'     # from the c"),
    ("README.md", "pip wheel --no-deps -w dist .         # or: python"),
    ("deploy.md", "authcore --db postgresql://authcore@db/authcore --"),
    ("frameworks.md", "export AUTHCORE_DB=sqlite:///app.db"),
    ("deploy.md", "authcore --db sqlite:////var/lib/authcore/authcore"),
    ("quickstart.md", "make demo"),
}


def test_readme_has_a_python_sample() -> None:
    assert [block for block in blocks(ROOT / "README.md") if block.lang == "python"]


def test_every_block_that_does_not_run_says_why_and_is_listed() -> None:
    skipped = [block for page in PAGES for block in blocks(page) if block.skipped is not None]
    for block in skipped:
        assert block.skipped, f"{block.where}: a not-run marker needs a reason"
        assert block.lang in SHELLS or block.lang == "python", f"{block.where}: marks no code"
    listed = {(block.page, block.code.splitlines()[0][:50]) for block in skipped}
    assert listed == NOT_RUN


def _run_python(block: Block, namespace: dict[str, object], directory: Path) -> None:
    title = TITLE.search(block.info)
    if title:
        source = (ROOT / title["path"]).read_text(encoding="utf-8")
        assert block.code.strip() in source, f"{block.where}: not an excerpt of {title['path']}"
        return
    if block.save_as is not None:
        (directory / block.save_as).write_text(block.code, encoding="utf-8")
    code = compile(block.code, block.where, "exec")
    with warnings.catch_warnings():
        # The pages run as a reader's laptop would, on the development secrets; connect()
        # announces them (DevSecretsWarning, docs/backends.md), which is not a failure here.
        warnings.simplefilter("ignore", DevSecretsWarning)
        exec(code, namespace)  # noqa: S102 - our own docs


def _run_shell(block: Block, shell: Shell, ports: dict[int, int]) -> None:
    finished, out, err = shell.run(substitute_ports(block.commands(), ports))
    shown = f"stdout:\n{out}\nstderr:\n{err}"
    assert finished, f"{block.where} failed (or ran over its time):\n{shown}"
    assert "Traceback" not in err, f"{block.where}:\n{shown}"
    promise = missing_promise(block.promises(), out)
    assert promise is None, f"{block.where} promises {promise!r}; it printed:\n{shown}"
    if block.output is not None:
        line = matches_output(substitute_ports(block.output, ports), out)
        assert line is None, f"{block.where}: output lacks {line!r}; it printed:\n{shown}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_the_page_runs_as_written(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env, ports = page_environment(tmp_path), page_ports()
    monkeypatch.chdir(tmp_path)
    for name in [name for name in os.environ if name.startswith("AUTHCORE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AUTHCORE_DB", env["AUTHCORE_DB"])
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
    shell: Shell | None = None
    opened: list[Auth] = []
    try:
        for block in (block for block in blocks(page) if block.runs):
            if block.lang == "python":
                _run_python(block, namespace, tmp_path)
                # A later sample may rebind the name (quickstart's `auth = connect()` twice):
                # every Auth a sample opened is kept here to be closed.
                # (not isinstance: a LocalProxy, Flask's current_principal, would resolve itself)
                opened += [v for v in namespace.values() if type(v) is Auth and v not in opened]
                continue
            shell = shell or Shell(tmp_path, env)
            _run_shell(block, shell, ports)
    finally:
        if shell is not None:
            shell.close()
        # What a sample opened with connect() is closed, as the app's lifecycle would.
        for auth in opened:
            auth.close()


TEST_REFERENCE = re.compile(r"`(tests/[\w/]+\.py)(?:::(\w+))?`")


@pytest.mark.parametrize("path", [ROOT / "SECURITY.md", *PAGES], ids=lambda p: p.name)
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


def test_output_blocks_and_promises_fail_when_the_output_differs() -> None:
    out = 'revoked key_1\n{"workspace":"ws_9"}401\nRunning servers may accept it for 1 s.\n'
    assert matches_output("revoked key_...\n...\nRunning servers ... 1 s.\n", out) is None
    assert matches_output("Running servers ... 30 s.\n", out) == "Running servers ... 30 s."
    assert missing_promise(['{"workspace":"ws_', "401"], out) is None
    assert missing_promise(["401", '{"workspace"'], out) == '{"workspace"'  # order counts
