"""A Flask service protected by authcore, written the way a user would write it.

Run it with ``flask --app examples.flask_app run``. ``GET /health`` is public; ``GET /keys``
needs a root key (or dashboard JWT) whose permissions satisfy ``keys.read``.
"""

from __future__ import annotations

import logging
import time
from typing import TextIO

from flask import Flask, jsonify
from flask.typing import ResponseReturnValue

from authcore.adapters.flask import AuthCore, current_principal, public, require
from authcore.adapters.logging import WorkspaceLogFilter
from authcore.backends.memory import MemoryRateLimiter, MemoryStore
from authcore.flow import Authenticator, AuthSettings, Backends

log = logging.getLogger("example")


def build_authenticator(store: MemoryStore, limiter: MemoryRateLimiter) -> Authenticator:
    """Authenticate API requests against ``store``, rate-limited by ``limiter``."""
    return Authenticator(AuthSettings(), clock=time.time, backends=Backends(store, limiter))


def create_app(authenticator: Authenticator) -> Flask:
    """Build the service around an authenticator."""
    app = Flask(__name__)
    AuthCore(app, authenticator)

    @app.get("/health")
    @public
    def health() -> ResponseReturnValue:
        return jsonify(ok=True)

    @app.get("/keys")
    @require("keys.read")
    def list_keys() -> ResponseReturnValue:
        log.info("listing keys")  # the record carries workspace_id (see the filter below)
        return jsonify(workspace_id=current_principal.workspace_id)

    return app


def configure_logging(stream: TextIO | None = None) -> logging.Handler:
    """Log every record with the workspace of the request it belongs to."""
    handler = logging.StreamHandler(stream)
    handler.addFilter(WorkspaceLogFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s [%(workspace_id)s] %(message)s"))
    return handler


store = MemoryStore()
app = create_app(build_authenticator(store, MemoryRateLimiter()))
