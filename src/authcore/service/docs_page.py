"""The example API's description of itself: ``GET /openapi.json`` and the ``/docs`` page.

The document is generated from the app's own route table (:mod:`authcore.service.openapi`) on
the first request and kept: the routes do not change while the app runs. The page is plain
HTML, CSS and JavaScript from the package that fetches ``/openapi.json`` and lists every
operation, its parameters, body and answers; nothing comes from another origin, so it works
offline, under the same Content-Security-Policy as the portal page. All three are public and
answer the same bytes to everyone.
"""

from __future__ import annotations

import importlib.resources
import json
from typing import Final

from starlette.requests import Request
from starlette.responses import Response

from authcore.adapters.starlette import public
from authcore.ratelimit_fields import RateLimitHeaders
from authcore.service._http import problem_response
from authcore.service.openapi import openapi_document
from authcore.service.portal_page import SECURITY_HEADERS

__all__ = ["DOCS_PATH", "OPENAPI_PATH", "DocsRoutes"]

OPENAPI_PATH: Final = "/openapi.json"
DOCS_PATH: Final = "/docs"
_STATIC_TYPES: Final = {
    "docs.js": "text/javascript; charset=utf-8",
    "docs.css": "text/css; charset=utf-8",
}
_DESCRIPTION: Final = (
    "The example service of authcore (`authcore serve`). Every refusal is an"
    " `application/problem+json` document; a method a path does not serve is a 405 with"
    " `Allow`; every answer carries `X-Request-Id`."
)


def _read(name: str) -> bytes:
    return (
        importlib.resources.files("authcore.service").joinpath("static", "docs", name).read_bytes()
    )


class DocsRoutes:
    """The three handlers; the document is rendered once per app."""

    def __init__(
        self, *, title: str, version: str, style: RateLimitHeaders = RateLimitHeaders.DRAFT
    ) -> None:
        self.title = title
        self.version = version
        self.style = style
        self._document: bytes | None = None

    @public
    async def openapi(self, request: Request) -> Response:
        """``GET /openapi.json``: the OpenAPI 3.1 document of the app serving the request."""
        if self._document is None:
            document = openapi_document(
                request.app.routes,
                title=self.title,
                version=self.version,
                description=_DESCRIPTION,
                style=self.style,
            )
            self._document = json.dumps(document, ensure_ascii=False).encode()
        return Response(self._document, media_type="application/json", headers=SECURITY_HEADERS)

    @public
    async def page(self, request: Request) -> Response:
        """``GET /docs``: the page that renders the document."""
        return Response(
            _read("index.html"), media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS
        )

    @public
    async def static(self, request: Request) -> Response:
        """``GET /docs/static/{name}``: the page's script or style sheet; anything else 404."""
        name = request.path_params["name"]
        media_type = _STATIC_TYPES.get(name)
        if media_type is None:
            return problem_response(404, "not_found", "No such resource.", headers=SECURITY_HEADERS)
        return Response(_read(name), media_type=media_type, headers=SECURITY_HEADERS)
