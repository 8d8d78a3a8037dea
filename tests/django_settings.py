"""The Django settings of the test suite, configured once per run by tests/conftest.py.

Once, and before any test module is imported: DRF's views read settings when their module is
imported, and Django allows one ``settings.configure`` per process. Tests never change these
values; each one overrides only what it needs (``override_settings``: ``AUTHCORE`` for the
matrix apps, ``ROOT_URLCONF`` and the like elsewhere) for as long as it needs it, so nothing
leaks from one test into another. Not pytest-django: the suite needs no database and no test
runner of Django's, only one configuration and Django's own ``override_settings``.
"""

from __future__ import annotations

from typing import Any

import django
from django.conf import settings

DJANGO_SETTINGS: dict[str, Any] = {
    "DEBUG": False,
    "SECRET_KEY": "tests-only, signs nothing",
    "ALLOWED_HOSTS": ["testserver", "127.0.0.1", "localhost"],
    "ROOT_URLCONF": "tests.adapters.django_urls",
    "MIDDLEWARE": ["authcore.adapters.django.AuthcoreMiddleware"],
    "INSTALLED_APPS": [],
    "DATABASES": {},
    # Leave the logging configuration to pytest: Django's would be process-wide.
    "LOGGING_CONFIG": None,
    "REST_FRAMEWORK": {
        "DEFAULT_AUTHENTICATION_CLASSES": ["authcore.adapters.drf.AuthcoreAuthentication"],
        "DEFAULT_PERMISSION_CLASSES": [],
        "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
        "EXCEPTION_HANDLER": "authcore.adapters.drf.exception_handler",
        "UNAUTHENTICATED_USER": None,
    },
}


def configure_django() -> None:
    """Configure Django for this test process, once."""
    if not settings.configured:
        settings.configure(**DJANGO_SETTINGS)
        django.setup()
