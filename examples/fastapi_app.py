"""A FastAPI service protected by authcore, written the way a user would write it.

Run it with ``uvicorn examples.fastapi_app:app``. ``GET /health`` is public; ``GET /keys``
needs a root key (or dashboard JWT) whose permissions satisfy ``keys.read``. ``/docs`` is
FastAPI's Swagger UI: its Authorize button takes a root key, because the dependency declares
the Bearer scheme, and every protected operation documents its 401, 403 and 429 answers.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends, FastAPI

from authcore.adapters.fastapi import problem_responses, require
from authcore.adapters.starlette import install_auth, public
from authcore.backends.memory import MemoryRateLimiter, MemoryStore
from authcore.flow import AsyncBackends, Authenticator, AuthSettings
from authcore.principal import Principal

#: The interactive documentation and the schema it reads are public; everything else is not.
DOCS_PATHS = ["/docs", "/openapi.json"]


def build_authenticator(store: MemoryStore, limiter: MemoryRateLimiter) -> Authenticator:
    """Authenticate API requests against ``store``, rate-limited by ``limiter``."""
    return Authenticator(AuthSettings(), clock=time.time, abackends=AsyncBackends(store, limiter))


def create_app(authenticator: Authenticator) -> FastAPI:
    """Build the service around an authenticator."""
    app = FastAPI(title="authcore example", redoc_url=None)

    @app.get("/health")
    @public
    async def health() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/keys", responses=problem_responses())
    async def list_keys(
        principal: Annotated[Principal, Depends(require("keys.read"))],
    ) -> dict[str, str]:
        # Every query below is scoped to the principal's workspace, and nothing else.
        return {"workspace_id": principal.workspace_id}

    install_auth(app, authenticator, public_paths=DOCS_PATHS)
    return app


store = MemoryStore()
app = create_app(build_authenticator(store, MemoryRateLimiter()))
