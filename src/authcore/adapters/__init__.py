"""Thin framework adapters: ASGI (Starlette, FastAPI), WSGI, Flask, Django (and DRF), and a
Prometheus exporter for the gate's hooks."""
