"""URLs of the example project."""

from __future__ import annotations

from django.urls import path

from examples.django_app import views

urlpatterns = [
    path("health", views.health),
    path("keys", views.list_keys),
    path("api/key-count", views.KeyCount.as_view()),
]
