"""The runnable example: an API built only on authcore's public API, and its dashboard.

``authcore serve`` runs :func:`authcore.demo.service.create_app`, ``authcore dashboard`` runs
:func:`authcore.demo.dashboard.create_dashboard`, and ``authcore demo`` runs both.
"""
