"""The quickstart's "Protect your own app", run as written on PostgreSQL + Redis.

``tests/service/test_docs_commands.py`` runs the whole quickstart, this section included, on SQLite
without Redis (where the revoked key is refused once the other process's cache lets go of it).
Here the same Python files and the same commands run against a database of their own and a
real Redis, for the FastAPI app (under uvicorn) and for the Flask version (under Flask's own
server): with Redis the command line publishes the revocation and the app refuses the key at
once, long before the 30 s cache bound.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.service.test_docs_commands import DOCS, bash_blocks, own_app_files, run_script

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]


def section_commands() -> str:
    """The bash blocks of the section, joined as the reader would run them."""
    section = (
        DOCS["quickstart.md"].read_text(encoding="utf-8").partition("## Protect your own app")[2]
    )
    path = DOCS["quickstart.md"].parent / "_section.md"
    _ = path  # the section is parsed from text; no file is written next to the docs
    return "\n".join(block for block in bash_blocks_of(section))


def bash_blocks_of(text: str) -> list[str]:
    fence = re.compile(r"^```bash\n(?P<code>.*?)^```", re.DOTALL | re.MULTILINE)
    return [m["code"] for m in fence.finditer(text)]


@pytest.mark.parametrize(
    "server",
    ["uvicorn shop:app --port 8002", "flask --app shop_flask run --port 8002"],
    ids=["fastapi", "flask"],
)
def test_your_own_app_on_postgres_and_redis(
    server: str, tmp_path: Path, fresh_postgres_database: str, redis_url: str
) -> None:
    for name, code in own_app_files(DOCS["quickstart.md"]).items():
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


def test_the_section_is_what_the_whole_quickstart_runs() -> None:
    # The commands here are those test_docs_commands runs within the whole page.
    whole = "\n".join(bash_blocks(DOCS["quickstart.md"]))
    assert section_commands() in whole
