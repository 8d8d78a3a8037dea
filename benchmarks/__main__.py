"""Entry point: ``python -m benchmarks [--quick | --smoke] [--only NAME]``."""

from __future__ import annotations

import sys

from benchmarks.suite import main

sys.exit(main())
