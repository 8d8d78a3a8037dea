"""Flask extension specifics: the principal never outlives its request; log records."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from flask import Flask, jsonify, request

from authcore.adapters.flask import AuthCore, current_principal, principal_from, public, require
from authcore.adapters.logging import WorkspaceLogFilter
from authcore.errors import ConfigurationError, PrincipalMissingError
from tests.adapters.world import World, make_world


def _app(world: World) -> Flask:
    app = Flask("leak")

    @app.get("/whoami")
    @public
    def whoami() -> Any:
        try:
            return jsonify(workspace_id=principal_from(request).workspace_id)
        except PrincipalMissingError:
            return jsonify(workspace_id=None)

    @app.get("/keys")
    @require("keys.read")
    def keys() -> Any:
        logging.getLogger("leak").warning("in view")
        return jsonify(workspace_id=current_principal.workspace_id)

    AuthCore(app, world.api)
    return app


def test_principal_does_not_leak_into_the_next_request() -> None:
    world = make_world()
    key = world.key("leak", "keys.read")
    client = _app(world).test_client()
    assert client.get("/keys", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    assert client.get("/whoami").get_json() == {"workspace_id": None}
    assert client.get("/keys").status_code == 401


def test_principal_does_not_leak_when_the_caller_shares_one_app_context() -> None:
    world = make_world()
    key = world.key("shared", "keys.read")
    app = _app(world)
    client = app.test_client()
    # Flask reuses an app context (and so flask.g) pushed around several requests.
    with app.app_context():
        assert client.get("/keys", headers={"Authorization": f"Bearer {key}"}).status_code == 200
        assert client.get("/whoami").get_json() == {"workspace_id": None}


def test_current_principal_outside_a_request_fails_closed() -> None:
    with pytest.raises(PrincipalMissingError):
        _ = current_principal.workspace_id


def test_principal_from_a_request_the_extension_did_not_see_fails_closed() -> None:
    app = Flask("bare")
    with app.test_request_context("/keys"), pytest.raises(PrincipalMissingError):
        principal_from(request)


def test_principal_from_and_current_principal_are_the_same_principal() -> None:
    world = make_world()
    key = world.key("same", "keys.read")
    app = Flask("same")
    seen: list[bool] = []

    @app.get("/keys")
    def keys() -> Any:
        seen.append(principal_from(request) == current_principal)
        return jsonify(ok=True)

    AuthCore(app, world.api)
    assert (
        app.test_client().get("/keys", headers={"Authorization": f"Bearer {key}"}).status_code
        == 200
    )
    assert seen == [True]


def test_log_filter_puts_the_workspace_id_on_records(caplog: pytest.LogCaptureFixture) -> None:
    world = make_world()
    key = world.key("logs", "keys.read")
    client = _app(world).test_client()
    log_filter = WorkspaceLogFilter()
    caplog.handler.addFilter(log_filter)
    try:
        with caplog.at_level(logging.WARNING, "leak"):
            client.get("/keys", headers={"Authorization": f"Bearer {key}"})
            logging.getLogger("leak").warning("after the request")
    finally:
        caplog.handler.removeFilter(log_filter)
    assert [(r.getMessage(), getattr(r, "workspace_id", None)) for r in caplog.records] == [
        ("in view", "ws_logs"),
        ("after the request", ""),
    ]


def test_metrics_hook_is_called_once_per_request() -> None:
    world = make_world()
    key = world.key("metrics", "keys.read")
    calls: list[tuple[int, str]] = []
    app = Flask("metrics")

    @app.get("/keys")
    def keys() -> Any:
        return jsonify(ok=True)

    AuthCore(app, world.api, metrics=lambda status, ws, duration: calls.append((status, ws)))
    client = app.test_client()
    client.get("/keys", headers={"Authorization": f"Bearer {key}"})
    client.get("/keys")
    assert calls == [(200, "ws_metrics"), (401, "")]


def test_init_app_without_authenticator_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        AuthCore(Flask("x"))


def test_unmatched_route_is_authenticated_first() -> None:
    client = _app(make_world()).test_client()
    assert client.get("/nowhere").status_code == 401
