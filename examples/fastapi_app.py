"""A FastAPI service protected by authcore, written the way a user would write it.

Run it on the database the command line writes, and call it with a key the command line made::

    AUTHCORE_DB=sqlite:///app.db uvicorn examples.fastapi_app:app

``connect()`` reads ``AUTHCORE_DB`` (default ``sqlite:///./authcore.db``), and ``AUTHCORE_CONFIG``
and ``AUTHCORE_REDIS`` when set, as ``authcore serve`` does. ``GET /health`` is public (``HEAD``
too); ``GET /keys`` needs a root key (or dashboard JWT) whose permissions satisfy ``keys.read``.
``/docs`` is FastAPI's Swagger UI: its Authorize button takes a root key, because the dependency
declares the Bearer scheme, and every protected operation documents its 401, 403 and 429 answers
and the ``RateLimit-*`` headers of its 200. A 404 or 405 is a problem document, like every
refusal.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI

from authcore.adapters.fastapi import install_auth, problem_responses, require
from authcore.adapters.starlette import public
from authcore.backends import connect
from authcore.principal import Principal

#: The interactive documentation and the schema it reads are public; everything else is not.
DOCS_PATHS = ["/docs", "/openapi.json"]

app = FastAPI(title="authcore example", redoc_url=None)


@app.get("/health")
@public  # below the route decorator, so FastAPI registers the marked function
async def health() -> dict[str, bool]:
    return {"ok": True}


@app.get("/keys", responses=problem_responses())
async def list_keys(
    principal: Annotated[Principal, Depends(require("keys.read"))],
) -> dict[str, str]:
    # Every query below is scoped to the principal's workspace, and nothing else.
    return {"workspace_id": principal.workspace_id}


# AUTHCORE_DB, and AUTHCORE_CONFIG / AUTHCORE_REDIS when set; starts and stops with the app.
install_auth(app, connect(), public_paths=DOCS_PATHS)
