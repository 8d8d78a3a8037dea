"""Cursor pages of the example API's lists: ``?limit=N&cursor=C`` in, ``next`` and
``next_cursor`` out.

``limit`` defaults to :data:`~authcore.records.DEFAULT_LIST_PAGE` and is at most
:data:`~authcore.records.MAX_LIST_PAGE`; ``cursor`` is the opaque text a page gave as
``next_cursor`` (:mod:`authcore.cursors`), and one that is not is a 400 ``invalid_query``.
``next`` is the relative link of the next page (the same path and filters, the cursor in
place), or null on the last page: a client follows it and never builds a cursor itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar
from urllib.parse import urlencode

from starlette.requests import Request

from authcore.errors import ClientError
from authcore.records import DEFAULT_LIST_PAGE, MAX_LIST_PAGE
from authcore.service._fields import query_value
from authcore.service._http import ProblemError, query_int

__all__ = ["next_page", "page_query"]

_T = TypeVar("_T")


def page_query(
    request: Request,
    parse: Callable[[str], _T],
    *,
    legacy: str | None = None,
    parse_legacy: Callable[[str], _T] | None = None,
) -> tuple[int, _T | None]:
    """Return the page size and where the page starts (None: at the first record).

    ``legacy`` names an older parameter that also says where to start (``after``,
    ``before``), read by ``parse_legacy``; giving it and ``cursor`` is a 400.

    Raises:
        ProblemError: 400, a bad or repeated ``limit`` or ``cursor``, or both ``cursor`` and
            the legacy parameter.
    """
    limit = query_int(request, "limit", default=DEFAULT_LIST_PAGE, low=1, high=MAX_LIST_PAGE)
    token = query_value(request, "cursor")
    old = None if legacy is None else query_value(request, legacy)
    if token is not None and old is not None:
        raise ProblemError(400, "invalid_query", f"Give cursor or {legacy}, not both.")
    try:
        if token is not None:
            return limit, parse(token)
        if old is not None and parse_legacy is not None:
            return limit, parse_legacy(old)
    except ClientError:
        name = "cursor" if token is not None else legacy
        raise ProblemError(400, "invalid_query", f"{name} is not one this list gave.") from None
    return limit, None


def next_page(
    request: Request, token: str | None, *, keep: Sequence[str] = ("limit",)
) -> dict[str, str | None]:
    """The ``next`` link and ``next_cursor`` of a page whose next cursor is ``token``.

    The link keeps the query parameters named in ``keep`` (already checked by the handler)
    and puts ``token`` in ``cursor``; the legacy parameters are left out.
    """
    if token is None:
        return {"next": None, "next_cursor": None}
    params = [(name, value) for name, value in request.query_params.multi_items() if name in keep]
    query = urlencode([*params, ("cursor", token)])
    return {"next": f"{request.url.path}?{query}", "next_cursor": token}
