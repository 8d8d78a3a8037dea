"""The example API's usage routes: a workspace's or a key's authentication outcomes over time.

``GET /v1/usage`` and ``GET /v1/keys/{key_id}/usage`` take ``since`` and ``until`` (seconds
since the epoch; default: the last 24 hours) and ``granularity`` (``minute``, ``hour`` or
``day``; default ``hour``). Both need ``usage.read`` and answer only for the caller's own
workspace: another workspace's key is "not found". The body lists buckets oldest first, each
with its count per outcome, and the totals; a key's also says when it was last used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response

from authcore.adapters.starlette import principal_from
from authcore.demo._http import ProblemError, json_response, path_id, query_int
from authcore.errors import ClientError
from authcore.store import AsyncStore
from authcore.usage import GRANULARITIES, summarize

__all__ = ["UsageRoutes"]

#: The permission both routes check.
USAGE_READ: Final = "usage.read"
_DAY: Final = 86_400
_LATEST: Final = 2**53 - 1


class UsageRoutes:
    """The two handlers, over the service's store and clock."""

    def __init__(self, store: AsyncStore, clock: Callable[[], float]) -> None:
        self.store = store
        self.clock = clock

    def _window(self, request: Request) -> tuple[int, int, str]:
        now = int(self.clock())
        until = query_int(request, "until", default=now, low=1, high=_LATEST)
        since = query_int(request, "since", default=max(0, until - _DAY), low=0, high=_LATEST)
        values = request.query_params.getlist("granularity")
        granularity = values[0] if len(values) == 1 else "hour" if not values else ""
        if granularity not in GRANULARITIES:
            raise ProblemError(400, "invalid_query", "granularity must be minute, hour or day.")
        return since, until, granularity

    async def _read(
        self, workspace_id: str, credential_id: str | None, request: Request
    ) -> dict[str, Any]:
        since, until, granularity = self._window(request)
        try:
            counts = await self.store.ausage(
                workspace_id,
                credential_id=credential_id,
                since=since,
                until=until,
                granularity=granularity,
            )
        except ClientError as exc:
            raise ProblemError(400, "invalid_query", f"{exc.detail}.") from None
        return {
            "workspace_id": workspace_id,
            "granularity": granularity,
            "since": since,
            "until": until,
            **summarize(counts),
        }

    async def workspace(self, request: Request) -> Response:
        """``GET /v1/usage``: the caller's workspace, every credential and the unknown ones'
        refusals excluded (they belong to no workspace)."""
        principal = principal_from(request)
        principal.authorize(USAGE_READ)
        return json_response(await self._read(principal.workspace_id, None, request))

    async def key(self, request: Request) -> Response:
        """``GET /v1/keys/{key_id}/usage``: one key of the caller's workspace."""
        principal = principal_from(request)
        principal.authorize(USAGE_READ)
        key_id = path_id(request, "key_id", "key")
        record = await self.store.aget_root_key(key_id)
        if record is None or record.workspace_id != principal.workspace_id:
            raise ProblemError(404, "not_found", "No such key.")
        document = await self._read(principal.workspace_id, key_id, request)
        used = await self.store.alast_used(principal.workspace_id)
        return json_response({"key_id": key_id, "last_used_at": used.get(key_id), **document})
