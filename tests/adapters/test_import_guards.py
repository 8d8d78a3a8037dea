"""Every adapter whose framework is missing says which extra to install, and how.

Each import runs in a fresh interpreter with the framework's package set to ``None`` in
``sys.modules`` (what Python does for a package that is not installed), so no module
this process has already imported can hide a bare ``ModuleNotFoundError``.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

_PROBE = """
import sys
for name in sys.argv[2].split(","):
    sys.modules[name] = None
try:
    __import__(sys.argv[1])
except ImportError as exc:
    print(type(exc).__name__)
    print(exc)
"""


@pytest.mark.parametrize(
    ("module", "missing", "extra"),
    [
        ("authcore.adapters.flask", "flask", "flask"),
        ("authcore.adapters.starlette", "starlette", "asgi"),
        ("authcore.adapters.fastapi", "fastapi", "fastapi"),
        ("authcore.adapters.django", "django", "django"),
        ("authcore.adapters.drf", "rest_framework", "drf"),
        ("authcore.adapters.prometheus", "prometheus_client", "prometheus"),
        ("authcore.adapters.proxy", "httpx", "proxy"),
    ],
)
def test_a_missing_framework_names_the_extra_and_how_to_install_it(
    module: str, missing: str, extra: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, module, missing],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    kind, message = done.stdout.splitlines()
    assert kind == "ImportError"  # ours, not the bare ModuleNotFoundError
    assert message.startswith(f"{module} needs ")
    assert f"authcore's '{extra}' extra" in message
    assert f"pip install -e '.[{extra}]'" in message
    # Nothing is published yet, and the bare name is someone else's project.
    assert "pip install 'authcore-auth" not in message
    assert "'pip install authcore' is an unrelated project" in message
