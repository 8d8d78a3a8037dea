"""A Django project protected by authcore (middleware, plain views and a DRF view).

Run it on the database the command line writes, and call it with a key the command line made::

    AUTHCORE_DB=sqlite:///app.db uvicorn examples.django_app.asgi:application

(or any WSGI server: ``waitress-serve examples.django_app.wsgi:application``). The middleware
wires authcore with ``connect()``, which reads ``AUTHCORE_DB`` (default
``sqlite:///./authcore.db``), and ``AUTHCORE_CONFIG`` and ``AUTHCORE_REDIS`` when set, as
``authcore serve`` does.
"""
