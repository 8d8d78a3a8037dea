"""``python -m authcore``: the same command line as the ``authcore`` console script."""

from __future__ import annotations

import sys

from authcore.cli import main

if __name__ == "__main__":
    sys.exit(main())
