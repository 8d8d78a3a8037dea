"""A Django project protected by authcore (middleware, plain views and a DRF view).

Serve it with ``DJANGO_SETTINGS_MODULE=examples.django_app.settings uvicorn
examples.django_app.asgi:application`` (or any WSGI server on ``examples.django_app.wsgi``).
Keys live in the SQLite file named by ``AUTHCORE_DB_PATH`` (default ``./authcore.db``, what
``authcore init`` and ``authcore keys create`` write).
"""
