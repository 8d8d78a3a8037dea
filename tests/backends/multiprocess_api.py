"""A small API process for the two-process test: PostgreSQL + Redis, as a deployment runs.

Run as ``python -m tests.backends.multiprocess_api PORT`` with ``AUTHCORE_MP_POSTGRES``,
``AUTHCORE_MP_SCHEMA``, ``AUTHCORE_MP_REDIS`` and ``AUTHCORE_MP_NAMESPACE`` in the environment.
The verification cache TTL is deliberately long (10 minutes), so a revocation seen by the other
process within seconds can only have come through Redis pub/sub, not through expiry.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from authcore.adapters.asgi import AuthMiddleware
from authcore.adapters.starlette import principal_from
from authcore.backends.cache import CachedStore
from authcore.backends.postgres import AsyncPostgresStore
from authcore.backends.redis import AsyncRedisInvalidator, AsyncRedisRateLimiter
from authcore.flow import AsyncBackends, Authenticator, AuthSettings
from authcore.records import Actor

CACHE_TTL = 600.0


def build() -> Starlette:
    postgres = AsyncPostgresStore(
        os.environ["AUTHCORE_MP_POSTGRES"], schema=os.environ["AUTHCORE_MP_SCHEMA"], migrate=False
    )
    cache = CachedStore(postgres, ttl=CACHE_TTL, workspace_ttl=CACHE_TTL)
    namespace = os.environ["AUTHCORE_MP_NAMESPACE"]
    redis_url = os.environ["AUTHCORE_MP_REDIS"]
    invalidator = AsyncRedisInvalidator.from_url(redis_url, channel=f"{namespace}:invalidate")
    limiter = AsyncRedisRateLimiter.from_url(redis_url, namespace=f"{namespace}:rl:")

    async def whoami(request: Request) -> Response:
        return JSONResponse(principal_from(request).to_dict())

    async def revoke(request: Request) -> Response:
        principal = principal_from(request)
        principal.authorize("keys.revoke")
        record = await cache.arevoke_root_key(
            request.path_params["key_id"], now=time.time(), actor=Actor(principal)
        )
        return Response(status_code=404 if record is None else 204)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await postgres.open()
        await invalidator.attach(cache)
        await invalidator.wait_ready()
        yield
        await invalidator.aclose()
        await limiter.aclose()
        await postgres.aclose()

    app = Starlette(
        routes=[
            Route("/whoami", whoami),
            Route("/keys/{key_id}", revoke, methods=["DELETE"]),
            Route("/ready", lambda request: Response("ok")),
        ],
        lifespan=lifespan,
    )
    authenticator = Authenticator(
        AuthSettings(default_rate_limit=None),
        clock=time.time,
        abackends=AsyncBackends(cache, limiter),
    )
    app.add_middleware(AuthMiddleware, authenticator=authenticator, public_paths=["/ready"])
    return app


if __name__ == "__main__":
    uvicorn.run(build(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
