"""Views: a public health check, a plain Django view and a DRF view, each checking step 5."""

from __future__ import annotations

import logging

from django.http import HttpRequest, JsonResponse
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from authcore.adapters.django import principal_from, public, require
from authcore.adapters.drf import HasPermission

log = logging.getLogger("example")


@public
def health(request: HttpRequest) -> JsonResponse:
    """Public: the middleware skips it."""
    return JsonResponse({"ok": True})


@require("keys.read")
async def list_keys(request: HttpRequest) -> JsonResponse:
    """A plain (async) Django view guarded by ``require``."""
    log.info("listing keys")  # the record carries the workspace (settings.LOGGING)
    return JsonResponse({"workspace_id": principal_from(request).workspace_id})


class KeyCount(APIView):
    """A DRF view: the principal is ``request.auth``, the permission a DRF class."""

    permission_classes = (HasPermission("keys.read AND audit.read"),)

    def get(self, request: Request) -> Response:
        principal = principal_from(request)
        return Response({"workspace_id": principal.workspace_id, "caller": str(request.user)})
