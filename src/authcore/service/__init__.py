"""The service authcore runs: the example API, its dashboard, and the customers' portal.

Built only on authcore's public API, and what ``authcore serve`` runs in production
(``docs/deploy.md``): :mod:`authcore.service.api` wires the API, whose handlers are in
:mod:`~authcore.service.management`, :mod:`~authcore.service.identities`,
:mod:`~authcore.service.portal` and :mod:`~authcore.service.usage_routes`; the portal page is
:mod:`~authcore.service.portal_page`, the dashboard :mod:`~authcore.service.dashboard`, and
:mod:`~authcore.service.runner` starts the servers. (It was ``authcore.demo``.)

``authcore serve`` runs :func:`authcore.service.api.create_app`, ``authcore dashboard`` runs
:func:`authcore.service.dashboard.create_dashboard`, and ``authcore demo`` runs both.
"""
