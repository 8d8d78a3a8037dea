"""The examples in examples/ as their users run them: keys made by the command line, each
example started by its documented command as a real server process on loopback.

The command line and the server share one SQLite file (``AUTHCORE_DB``) and one configuration
file (``AUTHCORE_CONFIG``, so neither makes development secrets).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs

from tests.service.ports import free_ports
from tests.service.servers import Process, authcore_env, process_server

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0

CONFIG = """
[jwt]
signing_kid = "k1"
max_lifetime = 300

[[jwt.secrets]]
kid = "k1"
secret = "example-test-signing-secret-0123456789abcdefghij"
"""

#: example under a server -> its command on a port (what each example's docstring says)
COMMANDS: dict[str, Callable[[int], list[str]]] = {
    "fastapi-uvicorn": lambda port: [
        *("-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"),
        "examples.fastapi_app:app",
    ],
    "flask-run": lambda port: [
        *("-m", "flask", "--app", "examples.flask_app", "run"),
        *("--host", "127.0.0.1", "--port", str(port)),
    ],
    "flask-waitress": lambda port: [
        *("-m", "waitress", f"--listen=127.0.0.1:{port}"),
        "examples.flask_app:app",
    ],
    "django-uvicorn": lambda port: [
        *("-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"),
        "examples.django_app.asgi:application",
    ],
    "django-waitress": lambda port: [
        *("-m", "waitress", f"--listen=127.0.0.1:{port}"),
        "examples.django_app.wsgi:application",
    ],
}


@attrs.frozen
class Setup:
    """A database and configuration, with a workspace and root keys the command line made."""

    db: Path
    config: Path
    workspace: str
    keys: dict[str, str]  # name -> the key, as `authcore keys create` printed it

    def env(self) -> dict[str, str]:
        return authcore_env(
            {"AUTHCORE_DB": f"sqlite:///{self.db}", "AUTHCORE_CONFIG": str(self.config)}
        )

    def cli(self, *args: str) -> dict[str, str]:
        """Run ``python -m authcore ARGS --json``; return what it printed."""
        done = subprocess.run(
            [sys.executable, "-m", "authcore", *args, "--json"],
            env=self.env(), cwd=self.db.parent, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        answer: dict[str, str] = json.loads(done.stdout)
        return answer


#: key name -> its `keys create` arguments
KEYS: dict[str, tuple[str, ...]] = {
    "reader": ("--permission", "keys.read", "--permission", "audit.read"),
    "narrow": ("--permission", "keys.read"),
    "other": ("--permission", "billing.read"),
    "limited": ("--permission", "keys.read", "--rate-limit", "2/3600"),
}


def make_setup(directory: Path) -> Setup:
    """A fresh database in ``directory`` with a workspace and the :data:`KEYS`."""
    config = directory / "authcore.toml"
    config.write_text(CONFIG)
    config.chmod(0o600)
    setup = Setup(db=directory / "app.db", config=config, workspace="", keys={})
    workspace = setup.cli("workspace", "create", "--name", "example")["workspace_id"]
    keys = {
        name: setup.cli("keys", "create", "--workspace", workspace, "--name", name, *args)["key"]
        for name, args in KEYS.items()
    }
    return attrs.evolve(setup, workspace=workspace, keys=keys)


@contextmanager
def running(example: str, setup: Setup, ready_path: str = "/health") -> Iterator[Process]:
    """Run ``example`` (a key of :data:`COMMANDS`) on ``setup``'s database; yield the process,
    whose ``stderr`` is filled in once it has stopped."""
    (port,) = free_ports(1)
    env = setup.env()
    env.pop("DJANGO_SETTINGS_MODULE", None)  # the entry point names the example's own
    argv = [sys.executable, *COMMANDS[example](port)]
    with process_server(
        argv, port, cwd=ROOT, env=env, ready_path=ready_path, name=example, timeout=START_TIMEOUT
    ) as started:
        yield started
