"""Django and DRF specifics beyond the matrix: settings, markers, modes, logs, DRF's 401.

Each test overrides only the settings it needs (``override_settings``) on top of the once-only
configuration of ``tests/django_settings.py``.
"""

from __future__ import annotations

import importlib
import io
import logging
import re
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgiref.sync import iscoroutinefunction
from django.core.handlers.asgi import ASGIHandler
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.test import Client, override_settings
from django.urls import path
from django.views import View
from rest_framework.exceptions import AuthenticationFailed, ValidationError
from rest_framework.exceptions import PermissionDenied as DRFPermissionDenied
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from authcore.adapters import django as django_adapter
from authcore.adapters import drf
from authcore.adapters.logging import WorkspaceLogFilter
from authcore.backends import Auth, connect
from authcore.binding import bound_principal
from authcore.errors import ConfigurationError, InvalidPermissionError, MissingCredentialError
from authcore.gate import AuthOutcome, Gate
from authcore.records import OPERATOR_ACTOR
from tests.adapters.world import World, make_world
from tests.django_settings import DJANGO_SETTINGS

log = logging.getLogger("tests.django")


# --- a second app: views the matrix does not have ------------------------------------------


@django_adapter.public
class PublicPage(View):
    def get(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse("public")


@django_adapter.public
class PublicApi(APIView):
    permission_classes = (drf.HasPermission("keys.read"),)

    def get(self, request: Request) -> Response:
        return Response({})


class Whoami(APIView):
    permission_classes = (IsAuthenticated,)

    def get(self, request: Request) -> Response:
        user: object = request.user  # object: the stubs know only Django's user types
        assert isinstance(user, drf.PrincipalUser)
        # One principal: DRF's request.auth, request.user.principal and the middleware's.
        assert request.auth is user.principal is django_adapter.principal_from(request)
        return Response({"user": str(user), "workspace_id": user.principal.workspace_id})


@django_adapter.public
class PublicWhoami(Whoami):
    """Public, guarded by DRF's own IsAuthenticated: DRF raises NotAuthenticated itself."""


class Refusing(APIView):
    """Raises DRF's own exceptions: PermissionDenied (an auth error) and a ValidationError."""

    def get(self, request: Request) -> Response:
        if request.query_params.get("bad"):
            raise ValidationError({"name": ["required"]})
        raise DRFPermissionDenied("secret detail that must not reach the client")


class RefusingAuthentication(drf.AuthcoreAuthentication):
    """Another authentication class in front, which raises DRF's AuthenticationFailed."""

    def authenticate(self, request: Request) -> None:
        raise AuthenticationFailed("another scheme refused it")


class FailingAuth(APIView):
    authentication_classes = (RefusingAuthentication,)

    def get(self, request: Request) -> Response:
        return Response({})


class Both(APIView):
    permission_classes = (drf.HasPermission("keys.read AND keys.create"),)

    def get(self, request: Request) -> Response:
        return Response({"ok": True})


@django_adapter.require("keys.read")
async def async_keys(request: HttpRequest) -> JsonResponse:
    log.warning("async view")
    return JsonResponse({"workspace_id": django_adapter.principal_from(request).workspace_id})


def sync_keys(request: HttpRequest) -> JsonResponse:
    log.warning("sync view")
    return JsonResponse({"workspace_id": django_adapter.principal_from(request).workspace_id})


def broken(request: HttpRequest) -> HttpResponse:
    raise ValueError("a bug in a view, not ours to answer")


URLS = types.ModuleType("authcore_django_test_urls")
URLS.urlpatterns = [  # type: ignore[attr-defined]  # a urlconf module made here
    path("page", PublicPage.as_view()),
    path("public-api", PublicApi.as_view()),
    path("portal/public-api", PublicApi.as_view()),
    path("whoami", Whoami.as_view()),
    path("public-whoami", PublicWhoami.as_view()),
    path("refusing", Refusing.as_view()),
    path("failing-auth", FailingAuth.as_view()),
    path("both", Both.as_view()),
    path("async-keys", async_keys),
    path("sync-keys", sync_keys),
    path("broken", broken),
]

# The same paths with nothing marked public.
PLAIN_URLS = types.ModuleType("authcore_django_plain_urls")
PLAIN_URLS.urlpatterns = [  # type: ignore[attr-defined]  # a urlconf module made here
    path("page", View.as_view()),
]


@contextmanager
def app(world: World, **options: Any) -> Iterator[None]:
    config = {"GATE": world.api, "OPTIONS": {"groups": {"/portal/": world.portal}, **options}}
    with override_settings(AUTHCORE=config, ROOT_URLCONF=URLS):
        yield


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# --- settings.AUTHCORE ----------------------------------------------------------------------

FACTORY_WORLD = make_world()
#: Importable objects for the dotted-path settings below.
FACTORY_API = FACTORY_WORLD.api


def build_gate() -> Gate:
    return Gate.build(FACTORY_WORLD.api, public_paths=["/page"])


@pytest.mark.parametrize(
    "target",
    [
        "tests.adapters.test_django.FACTORY_API",
        "tests.adapters.test_django.build_gate",
        FACTORY_API,
        build_gate,
    ],
    ids=["dotted_authenticator", "dotted_factory", "object", "factory"],
)
def test_the_gate_comes_from_a_dotted_path_an_object_or_a_factory(target: object) -> None:
    key = FACTORY_WORLD.key("factory", "keys.read")
    with override_settings(AUTHCORE={"GATE": target}, ROOT_URLCONF=URLS):
        client = Client()
        assert client.get("/sync-keys").status_code == 401
        response = client.get("/sync-keys", headers=bearer(key))
    assert response.status_code == 200
    assert response.json() == {"workspace_id": "ws_factory"}


def test_the_gate_comes_from_connect_and_the_auth_starts_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, authcore_config_file: Path
) -> None:
    # The setting a service of its own uses: everything from AUTHCORE_DB, started at once
    # (Django has no lifespan) and closed when the process exits.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUTHCORE_DB", f"sqlite:///{tmp_path / 'django.db'}")
    monkeypatch.delenv("AUTHCORE_REDIS", raising=False)
    monkeypatch.setenv("AUTHCORE_CONFIG", str(authcore_config_file))
    opened: list[Auth] = []

    def connected() -> Auth:
        opened.append(connect())
        return opened[-1]

    try:
        with override_settings(AUTHCORE={"GATE": connected}, ROOT_URLCONF=URLS):
            client = Client()
            assert client.get("/sync-keys").status_code == 401
            auth = opened[0]
            workspace = auth.store.create_workspace("w", now=1.8e9, actor=OPERATOR_ACTOR)
            created = auth.store.create_root_key(
                workspace.id, permissions=["keys.read"], now=1.8e9, actor=OPERATOR_ACTOR
            )
            assert created is not None
            response = client.get("/sync-keys", headers=bearer(created.key.reveal()))
        assert response.status_code == 200
        assert auth.running  # started by the middleware's settings, not by this test
    finally:
        for auth in opened:
            auth.close()
    assert not opened[0].running


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (None, "must be a dict with a 'GATE' entry"),
        ({"OPTIONS": {}}, "must be a dict with a 'GATE' entry"),
        ({"GATE": FACTORY_API, "PUBLIC": []}, "unknown settings.AUTHCORE keys: ['PUBLIC']"),
        ({"GATE": "tests.adapters.nowhere.gate"}, "does not import"),
        ({"GATE": FACTORY_API, "OPTIONS": ["/health"]}, "'OPTIONS'] must be a dict"),
        ({"GATE": FACTORY_API, "OPTIONS": {"public": ["/x"]}}, "keys: ['public']"),
        ({"GATE": build_gate, "OPTIONS": {"public_paths": ["/x"]}}, "not beside a Gate"),
        ({"GATE": lambda: "not a gate"}, "expected an authcore.flow.Authenticator"),
    ],
    ids=[
        "missing",
        "no_gate",
        "unknown_key",
        "bad_path",
        "options_list",
        "unknown_option",
        "options_beside_gate",
        "factory_returns_junk",
    ],
)
def test_an_invalid_setting_fails_when_the_middleware_loads(config: object, message: str) -> None:
    with (
        override_settings(AUTHCORE=config, ROOT_URLCONF=URLS),
        pytest.raises(ConfigurationError) as raised,
    ):
        Client().get("/page")
    assert message in str(raised.value)


def test_a_changed_setting_gives_a_new_gate() -> None:
    first, second = make_world(), make_world()
    with app(first):
        gate = django_adapter.configured_gate()
        assert django_adapter.configured_gate() is gate
        assert gate.routes.default is first.api
    with app(second):
        assert django_adapter.configured_gate().routes.default is second.api


# --- the public marker and the resolver -----------------------------------------------------


def test_a_class_based_view_marked_public_is_not_authenticated() -> None:
    with app(make_world()):
        response = Client().get("/page")
    assert response.status_code == 200
    assert "RateLimit-Policy" not in response.headers


def test_a_path_no_view_matches_is_authenticated_before_the_404() -> None:
    world = make_world()
    key = world.key("nowhere", "keys.read")
    with app(world):
        client = Client()
        assert client.get("/no/such/page").status_code == 401
        found = client.get("/no/such/page", headers=bearer(key))
    assert found.status_code == 404
    assert found.headers["RateLimit-Policy"] == '"workspace";q=600;w=60'


def test_the_marker_is_read_from_the_current_urlconf() -> None:
    with app(make_world()):
        client = Client()
        assert client.get("/page").status_code == 200
        # The same middleware instance, the same path, another urlconf: no stale answer.
        with override_settings(ROOT_URLCONF=PLAIN_URLS):
            assert client.get("/page").status_code == 401


# --- modes, logs, errors, hooks -------------------------------------------------------------


@contextmanager
def captured_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(WorkspaceLogFilter())
    handler.setFormatter(logging.Formatter("[%(workspace_id)s] %(message)s"))
    log.addHandler(handler)
    try:
        yield stream
    finally:
        log.removeHandler(handler)


@pytest.mark.parametrize("view", ["sync-keys", "async-keys"])
def test_sync_mode_binds_the_principal_for_logs_only_while_the_view_runs(view: str) -> None:
    world = make_world()
    key = world.key("logs", "keys.read")
    with app(world), captured_log() as stream:
        response = Client().get(f"/{view}", headers=bearer(key))
    assert response.status_code == 200
    assert stream.getvalue() == f"[ws_logs] {view.removesuffix('-keys')} view\n"
    assert bound_principal() is None


@pytest.mark.parametrize("view", ["sync-keys", "async-keys"])
async def test_async_mode_binds_the_principal_for_logs_only_while_the_view_runs(
    view: str,
) -> None:
    world = make_world()
    key = world.key("alogs", "keys.read")
    with app(world), captured_log() as stream:
        handler: Any = ASGIHandler()  # Any: Django types its ASGI callable with dict scopes
        transport = httpx.ASGITransport(app=handler)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            response = await c.get(f"/{view}", headers=bearer(key))
    assert response.status_code == 200
    assert response.headers["ratelimit"] == '"workspace";r=599;t=1'
    assert stream.getvalue() == f"[ws_alogs] {view.removesuffix('-keys')} view\n"
    assert bound_principal() is None


def test_the_middleware_picks_its_mode_from_the_chain_as_django_documents() -> None:
    def sync_view(request: HttpRequest) -> HttpResponse:
        return HttpResponse()

    async def async_view(request: HttpRequest) -> HttpResponse:
        return HttpResponse()

    with app(make_world()):
        sync = django_adapter.AuthcoreMiddleware(sync_view)
        asynchronous = django_adapter.AuthcoreMiddleware(async_view)
    assert not sync.async_mode
    assert asynchronous.async_mode
    assert not iscoroutinefunction(sync)
    assert iscoroutinefunction(asynchronous)


def test_a_view_bug_is_left_to_django() -> None:
    world = make_world()
    key = world.key("bug", "keys.read")
    with app(world):
        client = Client(raise_request_exception=False)
        response = client.get("/broken", headers=bearer(key))
    # Django's own 500, not a problem document: process_exception answers only our errors.
    assert response.status_code == 500
    assert response.headers["Content-Type"].startswith("text/html")


def test_metrics_and_observer_hooks_hear_of_every_request() -> None:
    world = make_world()
    key = world.key("hooks", "keys.read")
    requests: list[tuple[int, str]] = []
    outcomes: list[AuthOutcome] = []
    with app(
        world,
        metrics=lambda status, workspace, _duration: requests.append((status, workspace)),
        observer=outcomes.append,
    ):
        client = Client()
        client.get("/sync-keys", headers=bearer(key))
        client.get("/sync-keys")
        client.get("/page")
    assert requests == [(200, "ws_hooks"), (401, ""), (200, "")]
    assert [(o.code, o.source, o.workspace_id) for o in outcomes] == [
        ("admitted", "root_key", "ws_hooks"),
        ("credential_missing", "", ""),
    ]


# --- DRF ------------------------------------------------------------------------------------


def problem(response: Any) -> dict[str, Any]:
    assert response.headers["Content-Type"] == "application/problem+json"
    document: dict[str, Any] = response.json()
    return document


@pytest.mark.parametrize("view", ["public-api", "public-whoami"])
def test_drf_answers_401_problem_json_with_the_bearer_challenge_when_nobody_authenticated(
    view: str,
) -> None:
    # public-api: authcore's HasPermission; public-whoami: DRF's own IsAuthenticated.
    with app(make_world()):
        client = Client()
        api = client.get(f"/{view}")
        portal = client.get("/portal/public-api")
    assert api.status_code == 401
    assert api.headers["WWW-Authenticate"] == 'Bearer realm="api"'
    assert problem(api) == {
        "type": "urn:authcore:problem:credential_missing",
        "title": MissingCredentialError.message,
        "status": 401,
        "code": "credential_missing",
    }
    # The realm of the route group the path belongs to.
    assert portal.status_code == 401
    assert portal.headers["WWW-Authenticate"] == 'Bearer realm="portal"'
    assert problem(portal)["code"] == "credential_missing"


def test_has_permission_answers_the_401_problem_document_without_the_exception_handler() -> None:
    # HasPermission raises authcore's own error, which the middleware answers: no setting needed.
    drf_defaults = {**DJANGO_SETTINGS["REST_FRAMEWORK"]}
    del drf_defaults["EXCEPTION_HANDLER"]
    with app(make_world()), override_settings(REST_FRAMEWORK=drf_defaults):
        response = Client().get("/public-api")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'
    assert problem(response)["code"] == "credential_missing"


def test_drf_own_permission_denied_is_the_403_problem_document() -> None:
    world = make_world()
    key = world.key("drf_refused")
    with app(world):
        client = Client()
        denied = client.get("/refusing", headers=bearer(key))
        invalid = client.get("/refusing?bad=1", headers=bearer(key))
    assert denied.status_code == 403
    assert problem(denied)["code"] == "permission_denied"
    assert b"secret detail" not in denied.content
    assert denied.headers["WWW-Authenticate"] == 'Bearer realm="api", error="insufficient_scope"'
    # Not an auth error: DRF's own answer, unchanged.
    assert invalid.status_code == 400
    assert invalid.json() == {"name": ["required"]}


def test_drf_authentication_failed_is_the_401_invalid_token_document() -> None:
    world = make_world()
    key = world.key("drf_failed")
    with app(world):
        response = Client().get("/failing-auth", headers=bearer(key))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="api", error="invalid_token"'
    assert problem(response)["code"] == "credential_invalid"
    assert b"another scheme" not in response.content


def test_drf_sees_the_middleware_principal_as_an_authenticated_user() -> None:
    world = make_world()
    key = world.key("drf_user")
    with app(world):
        response = Client().get("/whoami", headers=bearer(key))
    assert response.status_code == 200, response.content
    assert response.json()["workspace_id"] == "ws_drf_user"
    assert response.json()["user"].startswith("root_key:")


def test_has_permission_takes_the_whole_query_grammar() -> None:
    world = make_world()
    both = world.key("both", "keys.read", "keys.create")
    one = world.key("one", "keys.read")
    with app(world):
        client = Client()
        allowed = client.get("/both", headers=bearer(both))
        denied = client.get("/both", headers=bearer(one))
    assert allowed.status_code == 200
    assert denied.status_code == 403
    assert denied.headers["Content-Type"] == "application/problem+json"
    assert denied.headers["WWW-Authenticate"] == 'Bearer realm="api", error="insufficient_scope"'
    assert denied.headers["RateLimit-Policy"] == '"workspace";q=600;w=60'


def test_has_permission_refuses_a_bad_query_at_once() -> None:
    with pytest.raises(InvalidPermissionError):
        drf.HasPermission("keys.read AND")
    with pytest.raises(InvalidPermissionError):
        django_adapter.require("keys.*")
    permission = drf.HasPermission("keys.read OR keys.create")
    assert permission.__name__ == "HasPermission"
    assert repr(permission()) == "HasPermission('keys.read OR keys.create')"


# --- import guards --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "missing", "extra"),
    [
        ("authcore.adapters.django", "django", ".[django]"),
        ("authcore.adapters.drf", "rest_framework", ".[drf]"),
    ],
)
def test_a_missing_framework_is_a_clear_import_error(
    monkeypatch: pytest.MonkeyPatch, module: str, missing: str, extra: str
) -> None:
    monkeypatch.setitem(sys.modules, missing, None)  # what Python does for a missing module
    monkeypatch.delitem(sys.modules, module)
    with pytest.raises(ImportError, match=re.escape(f"pip install -e '{extra}'")):
        importlib.import_module(module)
