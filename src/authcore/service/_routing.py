"""A Starlette router that finds a fixed path's route with one dict lookup.

Starlette's :class:`~starlette.routing.Router` tries every route's regular expression in order
until one matches: about 1.3 microseconds a route, so ``GET /portal/v1/keys``, the 25th route of
the example API, spent more on finding its handler than on authenticating its caller.
:class:`IndexedRouter` answers from an index of the fixed paths first and otherwise walks the
routes exactly as Starlette does.

The index holds ``(path, method) -> route`` only where the walk would pick that same route: for
every parameterless route and each of its methods, the routes before it are asked as the walk
would ask them, and the entry is kept only when none of them matches fully first; past a route
that matches by more than the path and method (a ``Host``, a ``Mount``), nothing is. A path with
a parameter (``/v1/keys/{key_id}``), a method no route serves there (405), or an unknown path
(404) all go to the walk, so every answer is the one Starlette's router gives. The index is
rebuilt when the route list changes (another list, or another length), as
:func:`authcore.adapters.starlette.public_endpoints` does for its memo.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeGuard

from starlette.routing import BaseRoute, Match, Route, Router
from starlette.types import Receive, Scope, Send

__all__ = ["IndexedRouter", "fixed_path_index"]


def fixed_path_index(routes: Sequence[BaseRoute]) -> dict[tuple[str, str], Route]:
    """Return ``(path, method) -> route`` for the parameterless routes the in-order walk picks.

    Only routes that match by path and method alone are asked (Starlette's ``Route``): from the
    first one that may read more (a ``Host`` reads the Host header, a ``Mount`` hands over to
    its own routes, a subclass may override matching), nothing further is indexed, as no
    probe could tell what it would take from a real request.
    """
    index: dict[tuple[str, str], Route] = {}
    for position, route in enumerate(routes):
        if not _plain(route):
            break
        if route.param_convertors or not route.methods:
            continue
        for method in route.methods:
            key = (route.path, method)
            if key in index:
                continue  # an earlier route of the same path and method wins
            probe: Scope = {
                "type": "http",
                "path": route.path,
                "root_path": "",
                "method": method,
                "headers": [],
            }
            if (
                all(earlier.matches(probe)[0] is not Match.FULL for earlier in routes[:position])
                and route.matches(probe)[0] is Match.FULL
            ):
                index[key] = route
    return index


def _plain(route: BaseRoute) -> TypeGuard[Route]:
    # Route's own matching reads the scope's path and method, nothing else.
    return isinstance(route, Route) and type(route).matches is Route.matches


class IndexedRouter(Router):
    """A :class:`~starlette.routing.Router` that looks fixed paths up before walking routes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._indexed: tuple[list[BaseRoute], int] | None = None
        self._index: dict[tuple[str, str], Route] = {}

    def _current_index(self) -> dict[tuple[str, str], Route]:
        routes = self.routes
        indexed = self._indexed
        if indexed is None or indexed[0] is not routes or indexed[1] != len(routes):
            # Built whole, then published: a request on another thread sees one or the other.
            self._index = fixed_path_index(routes)
            self._indexed = (routes, len(routes))
        return self._index

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            # The path the routes match against: Starlette's get_route_path, for a router that
            # is not mounted under a prefix (root_path empty); otherwise the walk decides.
            route = (
                None
                if scope.get("root_path")
                else self._current_index().get((scope["path"], scope["method"]))
            )
            if route is not None:
                if "router" not in scope:
                    scope["router"] = self
                scope["route"] = route
                scope["endpoint"] = route.endpoint
                scope["path_params"] = dict(scope.get("path_params", {}))
                await route.handle(scope, receive, send)
                return
        await super().app(scope, receive, send)
