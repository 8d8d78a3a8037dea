"""A Flask service protected by authcore, written the way a user would write it.

Run it on the database the command line writes, and call it with a key the command line made::

    AUTHCORE_DB=sqlite:///app.db flask --app examples.flask_app run

(or any WSGI server: ``waitress-serve examples.flask_app:app``). ``connect()`` reads
``AUTHCORE_DB`` (default ``sqlite:///./authcore.db``), and ``AUTHCORE_CONFIG`` and
``AUTHCORE_REDIS`` when set, as ``authcore serve`` does. ``GET /health`` is public; ``GET /keys``
needs a root key (or dashboard JWT) whose permissions satisfy ``keys.read``. Log records go to
stderr with the workspace of their request.
"""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from flask.typing import ResponseReturnValue

from authcore.adapters.flask import AuthCore, current_principal, public, require
from authcore.adapters.logging import WorkspaceLogFilter
from authcore.backends import connect

log = logging.getLogger("example")
handler = logging.StreamHandler()  # stderr
handler.addFilter(WorkspaceLogFilter())
handler.setFormatter(logging.Formatter("%(levelname)s [%(workspace_id)s] %(message)s"))
log.addHandler(handler)
log.setLevel(logging.INFO)

app = Flask(__name__)
# AUTHCORE_DB, and AUTHCORE_CONFIG / AUTHCORE_REDIS when set; closes when the process exits.
AuthCore(app, connect())


@app.get("/health")
@public
def health() -> ResponseReturnValue:
    return jsonify(ok=True)


@app.get("/keys")
@require("keys.read")
def list_keys() -> ResponseReturnValue:
    log.info("listing keys")  # the record carries workspace_id (the filter above)
    return jsonify(workspace_id=current_principal.workspace_id)
