"""The wheel is what users get: build it from the sdist, install it into a fresh virtual
environment with the locked versions of what ``authcore-auth[all]`` needs, and use it there
with the checkout nowhere on the path.

A file that is in the checkout's package but not in the wheel (a dashboard asset, ``py.typed``,
a module) fails here, before a user finds it missing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from importlib import metadata
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.service.ports import free_ports
from tests.service.servers import authcore_env, process_server

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "authcore"
LOCK = ROOT / "requirements" / "test.lock"

pytestmark = pytest.mark.e2e


def _run(argv: list[str], cwd: Path, timeout: float = 300) -> str:
    done = subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{argv}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _runtime_closure() -> set[str]:
    """Names of the distributions ``authcore-auth[all]`` needs here, transitively."""
    names: set[str] = set()
    wanted = [Requirement("authcore-auth[all]")]
    while wanted:
        req = wanted.pop()
        name = canonicalize_name(req.name)
        env = {"extra": ""}
        for requirement in metadata.requires(req.name) or []:
            dep = Requirement(requirement)
            marker_ok = dep.marker is None or any(
                dep.marker.evaluate({**env, "extra": extra}) for extra in ["", *req.extras]
            )
            if not marker_ok:
                continue
            dep_name = canonicalize_name(dep.name)
            if dep_name == name:
                wanted.append(Requirement(f"{dep.name}[{','.join(dep.extras)}]"))
            elif dep_name not in names:
                names.add(dep_name)
                wanted.append(dep)
    return names


def _runtime_lock(target: Path) -> Path:
    """The lock's entries (pins and hashes) for the runtime closure only: no test tools."""
    keep = _runtime_closure()
    out: list[str] = []
    taking = False
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            taking = canonicalize_name(line.split("==", 1)[0]) in keep
        if taking and not line.lstrip().startswith("#"):
            out.append(line)
    path = target / "runtime.lock"
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    python = sys.executable
    # sdist first, then the wheel from the unpacked sdist (as `python -m build` does): a file
    # the sdist leaves out is then missing from the wheel too.
    _run([python, "-m", "hatchling", "build", "-t", "sdist", "-d", str(work)], cwd=ROOT)
    (sdist,) = work.glob("authcore_auth-*.tar.gz")
    with tarfile.open(sdist) as archive:
        archive.extractall(work, filter="data")
    (unpacked,) = (p for p in work.iterdir() if p.is_dir())
    _run([python, "-m", "hatchling", "build", "-t", "wheel", "-d", str(work)], cwd=unpacked)
    (wheel,) = work.glob("authcore_auth-*.whl")

    venv = work / "venv"
    _run([python, "-m", "venv", str(venv)], cwd=work)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps"]
    _run([*pip, "--require-hashes", "-r", str(_runtime_lock(work))], cwd=work)
    _run([*pip, str(wheel)], cwd=work)
    # pip check: the wheel's own metadata asks for nothing the locked closure lacks.
    _run([str(venv / "bin" / "python"), "-m", "pip", "check"], cwd=work)
    return venv


def _python(venv: Path, code: str) -> str:
    # -I: no PYTHONPATH, no user site, and not the current directory on sys.path.
    return _run([str(venv / "bin" / "python"), "-I", "-c", code], cwd=venv)


def test_the_wheel_holds_every_file_of_the_package(wheel_venv: Path) -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "src/authcore"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    expected = {str(Path(f).relative_to("src/authcore")) for f in tracked}
    installed = json.loads(
        _python(
            wheel_venv,
            "import authcore, json, pathlib;"
            "root = pathlib.Path(authcore.__file__).parent;"
            "print(json.dumps([str(p.relative_to(root)) for p in root.rglob('*')"
            " if p.is_file() and '__pycache__' not in p.parts]))",
        )
    )
    assert expected - set(installed) == set()
    assert "py.typed" in installed
    assert any(name.startswith("service/static/") for name in installed)


def test_the_installed_package_is_not_the_checkout(wheel_venv: Path) -> None:
    where = _python(wheel_venv, "import authcore; print(authcore.__file__)").strip()
    assert Path(where).is_relative_to(wheel_venv)
    assert not Path(where).is_relative_to(ROOT / "src")


def test_every_module_imports_from_the_wheel(wheel_venv: Path) -> None:
    # Every adapter and backend included: [all] brings each one's library.
    names = json.loads(
        _python(
            wheel_venv,
            "import authcore, importlib, json, pkgutil;"
            "names = [m.name for m in pkgutil.walk_packages(authcore.__path__, 'authcore.')];"
            "[importlib.import_module(n) for n in names];"
            "print(json.dumps(names))",
        )
    )
    expected = {
        ".".join(("authcore", *p.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(
            ".__init__"
        )
        for p in PACKAGE.rglob("*.py")
    } - {"authcore"}
    assert expected <= set(names)
    assert "authcore.adapters.flask" in names
    assert "authcore.backends.postgres" in names


def test_the_command_line_runs_from_the_wheel(wheel_venv: Path) -> None:
    out = _run([str(wheel_venv / "bin" / "authcore"), "--help"], cwd=wheel_venv)
    assert "usage: authcore" in out


def test_the_demo_serves_the_dashboard_and_portal_files_from_the_wheel(wheel_venv: Path) -> None:
    api_port, dashboard_port = free_ports(2)
    argv = [
        str(wheel_venv / "bin" / "authcore"),
        "demo",
        "--api-port",
        str(api_port),
        "--dashboard-port",
        str(dashboard_port),
    ]
    env = authcore_env()
    env.pop("PYTHONPATH", None)
    with process_server(
        argv,
        dashboard_port,
        cwd=wheel_venv,
        env=env,
        ready_path="/",
        name="authcore demo (wheel)",
    ) as server:
        static = PACKAGE / "service" / "static"
        files = sorted(p.name for p in static.iterdir() if p.is_file())
        assert "index.html" in files
        for name in files:
            path = "/" if name == "index.html" else f"/static/{name}"
            answer = httpx.get(server.url + path, timeout=10)
            assert answer.status_code == 200, name
            assert answer.content == (static / name).read_bytes()
        # The end user's portal page, served by the API.
        api_url = f"http://127.0.0.1:{api_port}"
        portal = sorted(p.name for p in (static / "portal").iterdir())
        assert "index.html" in portal
        for name in portal:
            path = "/portal/" if name == "index.html" else f"/portal/static/{name}"
            answer = httpx.get(api_url + path, timeout=10)
            assert answer.status_code == 200, name
            assert answer.content == (static / "portal" / name).read_bytes()


def test_the_wheel_ships_its_type_information(wheel_venv: Path) -> None:
    # py.typed in the wheel is what lets a user's mypy read authcore's annotations.
    out = _python(
        wheel_venv,
        "import importlib.resources as r;print(r.files('authcore').joinpath('py.typed').is_file())",
    )
    assert out.strip() == "True"
