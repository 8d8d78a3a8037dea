"""A FastAPI service protected by authcore, written the way a user would write it.

Run it with ``uvicorn examples.fastapi_app:app``. ``GET /health`` is public; ``GET /keys``
needs a root key (or dashboard JWT) whose permissions satisfy ``keys.read``.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends, FastAPI

from authcore.adapters.starlette import install_auth, public, require
from authcore.backends.memory import MemoryRateLimiter, MemoryStore
from authcore.flow import AsyncBackends, Authenticator, Settings
from authcore.principal import Principal


def build_authenticator(store: MemoryStore, limiter: MemoryRateLimiter) -> Authenticator:
    """Authenticate API requests against ``store``, rate-limited by ``limiter``."""
    return Authenticator(Settings(), clock=time.time, abackends=AsyncBackends(store, limiter))


def create_app(authenticator: Authenticator) -> FastAPI:
    """Build the service around an authenticator."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/health")
    @public
    async def health() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/keys")
    async def list_keys(
        principal: Annotated[Principal, Depends(require("keys.read"))],
    ) -> dict[str, str]:
        # Every query below is scoped to the principal's workspace, and nothing else.
        return {"workspace_id": principal.workspace_id}

    install_auth(app, authenticator)
    return app


store = MemoryStore()
app = create_app(build_authenticator(store, MemoryRateLimiter()))
