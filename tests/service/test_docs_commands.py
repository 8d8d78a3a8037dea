"""Every ``bash`` sample in docs/quickstart.md and docs/cli.md runs, in order, and succeeds.

Each document's blocks are joined into one ``set -euo pipefail`` script and run by bash in a
temporary directory (so the default ``sqlite:///./authcore.db`` lands there), with this
virtual environment's ``authcore`` first on ``PATH`` and the documented ports 8000-8002
replaced by free ones. The quickstart's "Protect your own app" Python blocks are first saved
as the files it names. A block directly preceded by ``<!-- not run: reason -->`` is skipped;
only ``make demo`` is (it installs and then serves forever; test_demo_command.py runs the
``authcore demo`` it calls).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.service.ports import free_ports

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
DOCS = {name: ROOT / "docs" / name for name in ("quickstart.md", "cli.md")}
FENCE = re.compile(r"(?P<before>[^\n]*)\n```bash\n(?P<code>.*?)^```", re.DOTALL | re.MULTILINE)


def bash_blocks(path: Path) -> list[str]:
    """Return the runnable bash blocks of ``path``, in order."""
    text = "\n" + path.read_text(encoding="utf-8")
    return [m["code"] for m in FENCE.finditer(text) if not m["before"].startswith("<!-- not run:")]


def skipped_blocks(path: Path) -> list[str]:
    text = "\n" + path.read_text(encoding="utf-8")
    return [m["code"] for m in FENCE.finditer(text) if m["before"].startswith("<!-- not run:")]


PYTHON_FENCE = re.compile(r"^```python\n(?P<code>.*?)^```", re.DOTALL | re.MULTILINE)
#: The files the "Protect your own app" section asks the reader to save, in its order.
OWN_APP_FILES = ("shop.py", "shop_flask.py")


def own_app_files(path: Path) -> dict[str, str]:
    """The Python blocks of the quickstart's "Protect your own app" section, by file name."""
    section = path.read_text(encoding="utf-8").partition("## Protect your own app")[2]
    blocks = [m["code"] for m in PYTHON_FENCE.finditer(section)]
    return dict(zip(OWN_APP_FILES, blocks, strict=True))


def run_script(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    api_port, dashboard_port, app_port = free_ports(3)
    script = re.sub(r"\b8000\b", str(api_port), script)
    script = re.sub(r"\b8001\b", str(dashboard_port), script)
    script = re.sub(r"\b8002\b", str(app_port), script)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHCORE_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(cwd)
    env.pop("PYTHONPATH", None)
    process = subprocess.Popen(
        ["bash", "-c", "set -euo pipefail\n" + script],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        # The script's own process group: its background servers go with it.
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        pytest.fail(f"the samples did not finish in time\nstdout:\n{out}\nstderr:\n{err}")
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def test_only_make_demo_is_skipped() -> None:
    skipped = [block.strip() for path in DOCS.values() for block in skipped_blocks(path)]
    assert skipped == ["make demo"]


@pytest.mark.parametrize("name", sorted(DOCS))
def test_bash_samples_run(name: str, tmp_path: Path) -> None:
    blocks = bash_blocks(DOCS[name])
    assert len(blocks) >= 4
    if name == "quickstart.md":
        for file_name, code in own_app_files(DOCS[name]).items():
            (tmp_path / file_name).write_text(code, encoding="utf-8")
    result = run_script("\n".join(blocks), tmp_path)
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "Traceback" not in result.stderr
    if name == "quickstart.md":
        # The two status-code lines: no credential, then a permission the key does not hold.
        assert "401\n403\n" in result.stdout
        assert '"source":"root_key"' in result.stdout
        # The portal section: exchange, a portal principal, logout (204), then refused (401).
        assert '"source":"portal_session"' in result.stdout
        assert "204\n401\n" in result.stdout
        # Your own app: the key's workspace (200), no credential (401), revoked (401); the
        # app's access log may come between them on stdout.
        assert re.search(r'\{"workspace":"ws_[0-9a-f]+"\}(.*\n)*?.*401\n', result.stdout)
        assert "after revocation: 401" in result.stdout
    else:
        assert "SAFE" in result.stdout
        assert "not yet: exit 1" in result.stdout
