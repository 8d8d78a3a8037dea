"""The end user's portal page: ``GET /portal/`` and its two static files, served by the example API.

An operator hands the end user a link ``<service>/portal/#code=pc_...``. The code rides in the
URL fragment, which the browser never sends, so it is in no request line and no access log. The
page (plain HTML, CSS and JavaScript from the package, no build step, nothing from another
origin) removes the fragment from the address bar before any network call, posts the code to
``/portal/exchange`` for the HttpOnly session cookie, and from then on talks to ``/portal/v1/...``
only, with that cookie.

Both routes are public (the page must load before there is a session) and hold no data: they
answer the same bytes to everyone. Each response carries a Content-Security-Policy that admits
scripts, styles and requests of this origin only, no inline code, no framing, no ``<base>``;
``nosniff``; no referrer (the fragment is gone by then, but the page's address stays private);
and ``no-store``. Static names come from an allow-list, so no path reaches the file system.
"""

from __future__ import annotations

import importlib.resources
from typing import Final

from starlette.requests import Request
from starlette.responses import Response

from authcore.adapters.starlette import public
from authcore.service._http import problem_response

__all__ = ["SECURITY_HEADERS", "portal_page", "portal_static"]

#: Every response of the page's routes, the 404 included.
SECURITY_HEADERS: Final = {
    # Nothing is allowed unless named: this origin's script, style and fetches; images of this
    # origin or data: URLs (none yet, the charts are SVG built by the script).
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}
# The allow-list: a name not here is a 404, whatever the file system holds.
_STATIC_TYPES: Final = {
    "portal.js": "text/javascript; charset=utf-8",
    "portal.css": "text/css; charset=utf-8",
}


def _read(name: str) -> bytes:
    return (
        importlib.resources.files("authcore.service")
        .joinpath("static", "portal", name)
        .read_bytes()
    )


@public
async def portal_page(request: Request) -> Response:
    """``GET /portal/``: the page itself."""
    return Response(
        _read("index.html"), media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS
    )


@public
async def portal_static(request: Request) -> Response:
    """``GET /portal/static/{name}``: the page's script or style sheet; anything else is 404."""
    name = request.path_params["name"]
    media_type = _STATIC_TYPES.get(name)
    if media_type is None:
        return problem_response(404, "not_found", "No such resource.", headers=SECURITY_HEADERS)
    return Response(_read(name), media_type=media_type, headers=SECURITY_HEADERS)
