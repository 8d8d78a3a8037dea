"""Thin framework adapters: ASGI (Starlette, FastAPI), WSGI and Flask."""
