"""Django is configured once for the adapter tests, before any of them is imported.

Test modules here import DRF's views, which read settings when they are imported; tests
elsewhere (tests/security) reach Django only through :func:`tests.adapters.world.django_settings`,
which configures it the same way on first use. Every test then overrides only what it needs
(``override_settings``), so no setting leaks from one test into another.
"""

from __future__ import annotations

from tests.adapters.world import configure_django

configure_django()
