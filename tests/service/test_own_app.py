"""The quickstart's "Protect your own app", run as written on PostgreSQL + Redis.

``tests/test_docs.py`` runs the whole quickstart, this section included, on SQLite
without Redis (where the revoked key is refused once the other process's cache lets go of it).
Here the same Python files and the same commands run against a database of their own and a
real Redis, for the FastAPI app (under uvicorn) and for the Flask version (under Flask's own
server): with Redis the command line publishes the revocation and the app refuses the key at
once, long before the 30 s cache bound.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs_pages import ROOT, blocks
from tests.service.ports import free_ports

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]

QUICKSTART = ROOT / "docs" / "quickstart.md"
SECTION = "## Protect your own app"
#: The files the section asks the reader to save (shop.py) or run (shop_flask), in its order.
OWN_APP_FILES = ("shop.py", "shop_flask.py")


def _section_line() -> int:
    lines = QUICKSTART.read_text(encoding="utf-8").splitlines()
    return lines.index(SECTION) + 1


def section_commands() -> str:
    """The bash blocks of the section, joined as the reader would run them."""
    start = _section_line()
    return "\n".join(b.code for b in blocks(QUICKSTART) if b.lang == "bash" and b.line > start)


def own_app_files() -> dict[str, str]:
    start = _section_line()
    found = [b.code for b in blocks(QUICKSTART) if b.lang == "python" and b.line > start]
    return dict(zip(OWN_APP_FILES, found, strict=True))


def run_script(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    (app_port,) = free_ports(1)
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
        os.killpg(process.pid, signal.SIGKILL)  # its servers too: one process group
        out, err = process.communicate()
        pytest.fail(f"the section did not finish in time\nstdout:\n{out}\nstderr:\n{err}")
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


@pytest.mark.parametrize(
    "server",
    ["uvicorn shop:app --port 8002", "flask --app shop_flask run --port 8002"],
    ids=["fastapi", "flask"],
)
def test_your_own_app_on_postgres_and_redis(
    server: str, tmp_path: Path, fresh_postgres_database: str, redis_url: str
) -> None:
    for name, code in own_app_files().items():
        (tmp_path / name).write_text(code, encoding="utf-8")
    script = section_commands().replace("uvicorn shop:app --port 8002", server)
    assert server in script
    script = (
        f"export AUTHCORE_DB='{fresh_postgres_database}'\n"
        f"export AUTHCORE_REDIS='{redis_url}'\n" + script
    )
    result = run_script(script, tmp_path)
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    # The key's workspace (200), then 401 without a credential (the servers' access log may
    # come between them on stdout).
    assert re.search(r'\{"workspace":"ws_[0-9a-f]+"\}(.*\n)*?.*401\n', result.stdout)
    found = re.search(r"after revocation: 401 \(attempt (\d+)\)", result.stdout)
    assert found is not None, result.stdout
    # Published through Redis, not waited out: far fewer attempts than the 30 s cache bound.
    assert int(found.group(1)) < 10


def test_the_section_has_its_two_files_and_its_commands() -> None:
    assert set(own_app_files()) == set(OWN_APP_FILES)
    assert "uvicorn shop:app --port 8002" in section_commands()
