"""The example API's usage routes: a workspace's, an identity's or a key's authentication
outcomes over time.

``GET /v1/usage`` and ``GET /v1/keys/{key_id}/usage`` take ``since`` and ``until`` (seconds
since the epoch; default: the last 24 hours) and ``granularity`` (``minute``, ``hour`` or
``day``; default ``hour``); ``GET /v1/usage?identity=EXT`` sums the keys of one identity (one
read however many keys it has; an unknown identity has none). Both need ``usage.read`` and
answer only for what the caller may see (:mod:`authcore.service._scope`): another workspace's key,
or for a caller bound to an identity another identity's, is "not found", and that caller's
``/v1/usage`` is its identity's. The portal serves both (``/portal/v1/usage``,
``/portal/v1/keys/{key_id}/usage``) over its identity. The body lists buckets oldest first, each
with its count per outcome, and the totals; a key's also says when it was last used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response

from authcore.adapters.starlette import principal_from
from authcore.errors import ClientError
from authcore.records import UsageCount
from authcore.service._fields import query_external_id
from authcore.service._http import ProblemError, json_response, path_id, query_int
from authcore.service._scope import Scope, resolve_scope, scoped_key
from authcore.store import AsyncStore
from authcore.usage import GRANULARITIES, read_usage, summarize

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
        self,
        workspace_id: str,
        request: Request,
        *,
        credential_id: str | None = None,
        identity_id: str | None = None,
        nobody: bool = False,
    ) -> dict[str, Any]:
        since, until, granularity = self._window(request)
        counts: list[UsageCount] = []
        try:
            if nobody:
                # Nothing to read, but the window gets the read's checks (a pure call).
                read_usage(workspace_id, since=since, until=until, granularity=granularity)
            else:
                counts = await self.store.ausage(
                    workspace_id,
                    credential_id=credential_id,
                    identity_id=identity_id,
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
        """``GET /v1/usage`` (``/portal/v1/usage``): what the caller may see of its workspace,
        every credential's, or with ``?identity=EXT`` that identity's keys'. The refusals of
        credentials never verified are in none of them (they belong to no workspace)."""
        principal = principal_from(request)
        principal.authorize(USAGE_READ)
        wanted = query_external_id(request, "identity")
        scope = await resolve_scope(self.store, principal, wanted)
        identity = scope.identity
        document = await self._read(
            principal.workspace_id,
            request,
            identity_id=None if identity is None else identity.id,
            nobody=scope.nobody,
        )
        if identity is not None or wanted is not None:
            document = {**_identity_fields(scope, wanted), **document}
        return json_response(document)

    async def key(self, request: Request) -> Response:
        """``GET /v1/keys/{key_id}/usage`` (``/portal/v1/keys/{key_id}/usage``): one key the
        caller may see."""
        principal = principal_from(request)
        principal.authorize(USAGE_READ)
        key_id = path_id(request, "key_id", "key")
        await scoped_key(self.store, principal, key_id)
        document = await self._read(principal.workspace_id, request, credential_id=key_id)
        used = await self.store.alast_used(principal.workspace_id)
        return json_response({"key_id": key_id, "last_used_at": used.get(key_id), **document})


def _identity_fields(scope: Scope, wanted: str | None) -> dict[str, Any]:
    """Which identity a read covered: ``identity`` (its external id) and ``identity_id`` (None
    where no identity the caller may see has that external id)."""
    identity = scope.identity
    if identity is None:
        return {"identity": wanted, "identity_id": None}
    return {"identity": identity.external_id, "identity_id": identity.id}
