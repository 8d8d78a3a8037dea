"""The app each worker of ``authcore serve --workers N`` runs (a uvicorn factory).

Every worker process wires itself with :func:`authcore.backends.connect` from the environment
the parent set (``AUTHCORE_DB``, ``AUTHCORE_REDIS``, ``AUTHCORE_CONFIG``): its own database pool,
its Redis clients and its invalidation subscriber, started and closed with the worker's
lifespan. The rate limit and the cache invalidations are shared through Redis, so N workers
admit exactly what one would.
"""

from __future__ import annotations

import os

from starlette.applications import Starlette

from authcore.backends import connect
from authcore.ratelimit import LimiterFailurePolicy
from authcore.service.api import app_for

__all__ = ["app"]


def app() -> Starlette:
    """Return this worker's example API (uvicorn calls it once per worker process)."""
    # The parent already said which configuration it uses; the workers stay quiet.
    down = os.environ.get("AUTHCORE_REDIS_DOWN", "refuse")
    policy = (
        LimiterFailurePolicy.LOCAL_FALLBACK if down == "local" else LimiterFailurePolicy.FAIL_CLOSED
    )
    return app_for(connect(note=None, limiter_failure=policy))
