"""Settings of the example project: authcore's middleware, its gate, DRF, workspace logs."""

from __future__ import annotations

import os

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only: set DJANGO_SECRET_KEY")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "examples.django_app.urls"
INSTALLED_APPS = ["rest_framework"]
DATABASES: dict[str, object] = {}  # authcore keeps its own store; this project has no models
USE_TZ = True

MIDDLEWARE = [
    # First, so every view, and any 404, runs behind the gate.
    "authcore.adapters.django.AuthcoreMiddleware",
]

AUTHCORE = {
    # Called once when the middleware loads: AUTHCORE_DB, and AUTHCORE_CONFIG / AUTHCORE_REDIS
    # when set, the command line's database and settings.
    "GATE": "authcore.backends.connect",
    # Public by path; views can be marked public instead (see views.health).
    "OPTIONS": {"public_paths": ["/robots.txt"]},
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["authcore.adapters.drf.AuthcoreAuthentication"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # DRF's own auth errors (IsAuthenticated's 401, ...) as authcore's problem documents.
    "EXCEPTION_HANDLER": "authcore.adapters.drf.exception_handler",
    # No django.contrib.auth here: an unauthenticated DRF request has user None.
    "UNAUTHENTICATED_USER": None,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"workspace": {"()": "authcore.adapters.logging.WorkspaceLogFilter"}},
    "formatters": {"plain": {"format": "%(levelname)s [%(workspace_id)s] %(message)s"}},
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "filters": ["workspace"],
            "formatter": "plain",
        }
    },
    "loggers": {"example": {"handlers": ["stderr"], "level": "INFO"}},
}
