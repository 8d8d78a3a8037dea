"""docs/deploy.md's systemd unit, parsed and started as systemd would run it.

Its ``Environment=`` lines and ``ExecStart=`` are taken from the page; the only substitutions
are this machine's: the database (a fresh one), Redis, a config file, the port and the path of
the ``authcore`` executable. The service must answer, then stop cleanly on ``KillSignal``.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from authcore.config import render_dev_config
from authcore.tokens import Secret
from tests.service.ports import free_ports

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]

DEPLOY = Path(__file__).resolve().parents[2] / "docs" / "deploy.md"
UNIT = re.compile(r'^```ini title="authcore.service"\n(?P<unit>.*?)^```', re.DOTALL | re.MULTILINE)


def unit() -> dict[str, list[str]]:
    """The unit's ``key=value`` lines, by key (repeated keys kept in order)."""
    found = UNIT.search(DEPLOY.read_text(encoding="utf-8"))
    assert found is not None, "docs/deploy.md has no authcore.service block"
    entries: dict[str, list[str]] = {}
    for line in found["unit"].splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            entries.setdefault(key.strip(), []).append(value.strip())
    return entries


def test_the_unit_names_what_the_service_needs() -> None:
    entries = unit()
    variables = dict(value.partition("=")[::2] for value in entries["Environment"])
    assert {"AUTHCORE_DB", "AUTHCORE_REDIS", "AUTHCORE_CONFIG", "AUTHCORE_WORKERS"} <= set(
        variables
    )
    assert entries["KillSignal"] == ["SIGTERM"]
    assert shlex.split(entries["ExecStart"][0])[1] == "serve"


def test_the_unit_starts_the_service_and_stops_on_sigterm(
    tmp_path: Path, fresh_postgres_database: str, redis_url: str
) -> None:
    entries = unit()
    variables = dict(value.partition("=")[::2] for value in entries["Environment"])
    config = tmp_path / "authcore.toml"
    config.write_text(render_dev_config("k1", Secret("deploy-test-" + "s" * 40)), "utf-8")
    os.chmod(config, 0o600)
    this_machine = {
        "AUTHCORE_DB": fresh_postgres_database,
        "AUTHCORE_REDIS": redis_url,
        "AUTHCORE_CONFIG": str(config),
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHCORE_")}
    env.update({name: this_machine.get(name, value) for name, value in variables.items()})
    (port,) = free_ports(1)
    command = shlex.split(entries["ExecStart"][0])
    command[0] = str(Path(sys.executable).parent / "authcore")
    command[command.index("--port") + 1] = str(port)
    init = subprocess.run(
        [command[0], "init"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert init.returncode == 0, init.stderr
    process = subprocess.Popen(
        command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        answered = False
        for _ in range(150):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    answered = True
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert answered
        unauthenticated = httpx.get(f"http://127.0.0.1:{port}/v1/principal", timeout=5)
        assert unauthenticated.status_code == 401
    finally:
        process.send_signal(getattr(signal, entries["KillSignal"][0]))
        _, stderr = process.communicate(timeout=int(entries["TimeoutStopSec"][0]))
    assert process.returncode == 0
    assert "Traceback" not in stderr
