"""The matrix app's views and URLs on Django (ROOT_URLCONF of :func:`world.django_settings`).

Plain Django views and a DRF view side by side, so both paths answer the matrix:

- ``/health``: marked :func:`~authcore.adapters.django.public`;
- ``/unguarded``: public by path, but asks for the principal (fail closed: 500);
- ``/keys``: a DRF ``APIView`` guarded by ``HasPermission("keys.read")``;
- ``/portal/profile``: an async view (GET and POST);
- ``/down/keys``: a sync view guarded by :func:`~authcore.adapters.django.require`.

Imported by Django's resolver once settings are configured (a DRF view reads them when its
class is made).
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.http import require_http_methods
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from authcore.adapters.django import principal_from, public, require
from authcore.adapters.drf import HasPermission


@public
def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


def unguarded(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"workspace_id": principal_from(request).workspace_id})


class Keys(APIView):
    permission_classes = (HasPermission("keys.read"),)

    def get(self, request: Request) -> Response:
        # request.auth is the principal too; principal_from is typed (DRF's Request is an
        # HttpRequest to the type checker and reads META through to Django's).
        return Response({"workspace_id": principal_from(request).workspace_id})


@require_http_methods(["GET", "POST"])
async def profile(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"workspace_id": principal_from(request).workspace_id})


@require("keys.read")
def down_keys(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"workspace_id": principal_from(request).workspace_id})


urlpatterns = [
    path("health", health),
    path("unguarded", unguarded),
    path("keys", Keys.as_view()),
    path("portal/profile", profile),
    path("down/keys", down_keys),
]
