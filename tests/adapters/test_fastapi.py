"""authcore.adapters.fastapi: the OpenAPI schema FastAPI builds, and behaviour unchanged.

Every app here is a real FastAPI app behind the real middleware (install_auth) on the memory
backends of tests/adapters/world.py; ``/openapi.json`` is read through it like any client would.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, HTTPException
from starlette.responses import PlainTextResponse

from authcore import errors
from authcore.adapters import fastapi as fastapi_adapter
from authcore.adapters.fastapi import authenticated, problem_responses, require, secured
from authcore.adapters.starlette import install_auth, public
from authcore.credentials import CredentialSettings
from authcore.errors import InvalidPermissionError
from authcore.principal import Principal
from tests.adapters.drivers import asgi_sender, run_case
from tests.adapters.world import CASES, Answer, Headers, World, check, groups, make_world

Send = Callable[[str, str, Headers], Awaitable[Answer]]

API_BEARER = {
    "type": "http",
    "scheme": "bearer",
    "description": "`Authorization: Bearer <credential>`: a root key (ak_...) or a JWT minted by "
    "the dashboard proxy.",
}
PORTAL_BEARER = {
    "type": "http",
    "scheme": "bearer",
    "description": "`Authorization: Bearer <credential>`: a portal session token (pt_...).",
}


def matrix_app(world: World) -> FastAPI:
    """The behaviour matrix's routes (tests/adapters/world.py) written with this module."""
    app = FastAPI()
    portal_credentials = world.portal.settings.credentials

    @app.get("/health")
    @public
    async def health() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/unguarded")
    async def unguarded(
        principal: Annotated[Principal, Depends(authenticated())],
    ) -> dict[str, str]:
        return {"workspace_id": principal.workspace_id}

    @app.get("/keys", responses=problem_responses())
    @app.get("/down/keys", responses=problem_responses())
    async def keys(
        principal: Annotated[Principal, Depends(require("keys.read"))],
    ) -> dict[str, str]:
        return {"workspace_id": principal.workspace_id}

    portal = APIRouter(prefix="/portal", **secured(credentials=portal_credentials))
    # A default, not an annotation: FastAPI resolves string annotations (this module uses
    # `from __future__ import annotations`) in module globals, where portal_credentials is not.
    portal_principal = Depends(authenticated(credentials=portal_credentials))

    @portal.get("/profile")
    @portal.post("/profile")
    async def profile(principal: Principal = portal_principal) -> dict[str, str]:
        return {"workspace_id": principal.workspace_id}

    app.include_router(portal)
    install_auth(app, world.api, groups=groups(world), public_paths=["/unguarded", "/openapi.json"])
    return app


@asynccontextmanager
async def fastapi_sender(app: FastAPI) -> AsyncIterator[Send]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:

        async def send(method: str, path: str, headers: Headers) -> Answer:
            raw = [(name.encode(), value.encode("latin-1")) for name, value in headers]
            response = await client.request(method, path, headers=raw)
            return Answer.of(response.status_code, response.headers.multi_items(), response.content)

        yield send


async def openapi(app: FastAPI) -> dict[str, Any]:
    async with fastapi_sender(app) as send:
        answer = await send("GET", "/openapi.json", [])
    assert answer.status == 200
    schema: dict[str, Any] = json.loads(answer.body)
    return schema


# --- the schema ---------------------------------------------------------------------------------


async def test_openapi_lists_the_api_bearer_and_the_portal_cookie_or_bearer() -> None:
    schema = await openapi(matrix_app(make_world()))
    assert schema["components"]["securitySchemes"] == {
        "RootKeyOrJWT": API_BEARER,
        "PortalToken": PORTAL_BEARER,
        "PortalCookie": {
            "type": "apiKey",
            "in": "cookie",
            "name": "authcore_portal",
            "description": "The portal session cookie (HttpOnly), set by the portal's code "
            "exchange. State-changing requests must be same-origin.",
        },
    }


async def test_each_operation_names_the_schemes_its_route_group_accepts() -> None:
    paths = (await openapi(matrix_app(make_world())))["paths"]
    assert paths["/keys"]["get"]["security"] == [{"RootKeyOrJWT": []}]
    assert paths["/down/keys"]["get"]["security"] == [{"RootKeyOrJWT": []}]
    # Alternatives: the portal token as Bearer, or the portal cookie.
    portal: list[dict[str, list[str]]] = [{"PortalToken": []}, {"PortalCookie": []}]
    assert paths["/portal/profile"]["get"]["security"] == portal
    assert paths["/portal/profile"]["post"]["security"] == portal
    assert "security" not in paths["/health"]["get"]


async def test_the_cookie_name_comes_from_the_credential_policy() -> None:
    world = make_world()
    policy = CredentialSettings.portal("acme_session")
    app = FastAPI()

    portal_principal = Depends(authenticated(credentials=policy))  # see matrix_app

    @app.get("/portal/me")
    async def me(principal: Principal = portal_principal) -> dict[str, str]:
        return {"workspace_id": principal.workspace_id}

    install_auth(app, world.api, public_paths=["/openapi.json"])
    schema = await openapi(app)
    cookie = schema["components"]["securitySchemes"]["PortalCookie.acme_session"]
    assert (cookie["in"], cookie["name"]) == ("cookie", "acme_session")
    operation = schema["paths"]["/portal/me"]["get"]
    assert operation["security"] == [{"PortalToken": []}, {"PortalCookie.acme_session": []}]


async def test_operations_document_401_403_and_429_as_problem_documents() -> None:
    paths = (await openapi(matrix_app(make_world())))["paths"]
    for operation in (paths["/keys"]["get"], paths["/portal/profile"]["post"]):
        responses = operation["responses"]
        assert {"400", "401", "403", "429", "503"} <= set(responses)
        for status in ("401", "403", "429"):
            content = responses[status]["content"]
            assert list(content) == ["application/problem+json"]
            schema = content["application/problem+json"]["schema"]
            assert schema["required"] == ["type", "title", "status", "code"]
            assert schema["properties"]["status"]["enum"] == [int(status)]
        assert set(responses["401"]["content"]["application/problem+json"]["examples"]) == {
            "credential_missing",
            "unsupported_scheme",
            "credential_invalid",
        }
        assert "WWW-Authenticate" in responses["401"]["headers"]
        assert {"Retry-After", "RateLimit-Policy", "RateLimit"} == set(responses["429"]["headers"])
    assert "401" not in paths["/health"]["get"]["responses"]


async def test_every_refusal_the_server_sends_fits_the_documented_schema() -> None:
    world = make_world()
    app = matrix_app(world)
    paths = (await openapi(app))["paths"]
    refusals = 0
    async with fastapi_sender(app) as send:
        for case in CASES:
            answer = await run_case(send, world, case)
            if answer.status < 400 or answer.status == 500:
                continue
            refusals += 1
            documented = paths[case.path][case.method.lower()]["responses"].get(str(answer.status))
            assert documented is not None, case.name
            assert answer.header("content-type") == "application/problem+json", case.name
            media = documented["content"]["application/problem+json"]
            schema, problem = media["schema"], answer.problem()
            assert set(problem) == set(schema["required"]), case.name
            assert problem["status"] in schema["properties"]["status"]["enum"], case.name
            assert problem["code"] in schema["properties"]["code"]["enum"], case.name
            # The example for the code is the very document the server sent.
            assert media["examples"][problem["code"]]["value"] == problem, case.name
    assert refusals >= 15


def test_every_refusal_class_is_documented_under_its_status() -> None:
    documented = problem_responses()
    examples = {
        int(status): set(response["content"]["application/problem+json"]["examples"])
        for status, response in documented.items()
    }
    # Raised by code that parses permissions and by the store, never by the middleware or
    # the dependency: not a refusal of a protected operation.
    # The dashboard proxy's errors are the dashboard's answers, never the API's.
    not_refusals = {errors.InvalidPermissionError, errors.ConflictError}  # and subclasses
    for name in errors.__all__:
        cls = getattr(errors, name)
        if issubclass(cls, errors.ProxyError):
            continue
        if (
            cls.status in examples
            and not issubclass(cls, tuple(not_refusals))
            and cls.code != "bad_request"
        ):
            assert cls.code in examples[cls.status], name


def test_problem_responses_are_fresh_copies() -> None:
    first = problem_responses([401])
    first[401]["headers"]["WWW-Authenticate"]["description"] = "changed"
    assert problem_responses([401])[401]["headers"]["WWW-Authenticate"]["description"] != "changed"


def test_all_names_exactly_the_public_api() -> None:
    public = {
        name
        for name, value in vars(fastapi_adapter).items()
        if not name.startswith("_")
        and getattr(value, "__module__", None) == fastapi_adapter.__name__
    }
    assert set(fastapi_adapter.__all__) == public | {"install_auth"}
    assert fastapi_adapter.__all__ == sorted(fastapi_adapter.__all__)


def test_problem_responses_refuse_a_status_authcore_never_answers() -> None:
    with pytest.raises(ValueError, match="418"):
        problem_responses([401, 418])
    assert set(problem_responses([401, 429])) == {401, 429}


# --- behaviour ----------------------------------------------------------------------------------


async def test_the_fastapi_app_answers_every_case_as_the_starlette_app_does() -> None:
    answers: dict[str, list[tuple[str, object]]] = {}

    def matrix_sender(world: World) -> AbstractAsyncContextManager[Send]:
        return fastapi_sender(matrix_app(world))

    senders = {"starlette": asgi_sender, "fastapi": matrix_sender}
    for name, sender in senders.items():
        world = make_world()
        async with sender(world) as send:
            answers[name] = []
            for case in CASES:
                answer = await run_case(send, world, case)
                check(case, answer)
                answers[name].append((case.name, answer.comparable()))
    assert answers["fastapi"] == answers["starlette"]


async def test_the_dependency_never_authenticates_on_its_own() -> None:
    # /unguarded is a public path: the middleware does not run there. A valid key on the
    # request must not make the dependency accept it; it fails closed instead.
    world = make_world()
    key = world.key("valid", "keys.read")
    async with fastapi_sender(matrix_app(world)) as send:
        answer = await send("GET", "/unguarded", [("Authorization", f"Bearer {key}")])
    assert answer.status == 500
    assert answer.problem()["code"] == "principal_missing"


async def test_a_secured_router_checks_its_query_on_every_route() -> None:
    world = make_world()
    app = FastAPI()
    router = APIRouter(prefix="/v1", **secured("keys.read AND keys.create"))

    @router.get("/a")
    async def a() -> dict[str, str]:
        return {"route": "a"}

    @router.post("/b")
    async def b() -> dict[str, str]:
        return {"route": "b"}

    app.include_router(router)
    install_auth(app, world.api, public_paths=["/openapi.json"])
    both = [("Authorization", f"Bearer {world.key('both', 'keys.read', 'keys.create')}")]
    one = [("Authorization", f"Bearer {world.key('one', 'keys.read')}")]
    async with fastapi_sender(app) as send:
        assert (await send("GET", "/v1/a", both)).status == 200
        assert (await send("POST", "/v1/b", both)).status == 200
        denied = await send("POST", "/v1/b", one)
        assert denied.status == 403
        assert denied.header("www-authenticate") == 'Bearer realm="api", error="insufficient_scope"'
        assert (await send("GET", "/v1/a", [])).status == 401
    paths = (await openapi(app))["paths"]
    for operation in (paths["/v1/a"]["get"], paths["/v1/b"]["post"]):
        assert operation["security"] == [{"RootKeyOrJWT": []}]
        assert {"401", "403", "429"} <= set(operation["responses"])


def test_require_parses_the_query_at_once() -> None:
    with pytest.raises(InvalidPermissionError):
        require("keys.read AND")
    with pytest.raises(InvalidPermissionError):
        secured("Keys.*")


def test_importing_without_fastapi_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "authcore.adapters.fastapi")
    monkeypatch.setitem(sys.modules, "fastapi", None)  # what an absent package looks like
    with pytest.raises(ImportError, match=r"pip install -e '\.\[fastapi\]'"):
        importlib.import_module("authcore.adapters.fastapi")


# --- install_auth: the app answers like the rest of authcore -------------------------------------


def answering_app(world: World) -> FastAPI:
    """An app wired by this module's install_auth: one route per method on /items, a handler's
    own HTTPException, a route that answers HEAD itself, a secured router that answers 201."""
    app = FastAPI()

    @app.get("/items")
    async def list_items(principal: Annotated[Principal, Depends(authenticated())]) -> list[str]:
        return ["a"]

    @app.post("/items")
    async def add_item() -> dict[str, str]:
        return {}

    @app.get("/items/{name}")
    async def get_item(name: str) -> dict[str, str]:
        raise HTTPException(404, detail=f"no item {name}")

    @app.delete("/items/{name}", status_code=204)
    async def remove_item(name: str) -> None:
        raise HTTPException(304)

    @app.patch("/items/{name}")
    async def patch_item(name: str) -> None:
        raise HTTPException(499, detail="client closed")

    @app.get("/ping")
    @public
    async def ping() -> PlainTextResponse:
        return PlainTextResponse("GET", headers={"x-method": "GET"})

    @app.head("/ping")
    @public
    async def ping_head() -> PlainTextResponse:
        return PlainTextResponse("", headers={"x-method": "HEAD"})

    @app.post("/hook")
    @public
    async def hook() -> dict[str, str]:
        return {}

    router = APIRouter(**secured("keys.create"))

    @router.post("/made", status_code=201)
    async def made() -> dict[str, str]:
        return {}

    app.include_router(router)
    fastapi_adapter.install_auth(app, world.api, public_paths=["/openapi.json"])
    return app


@asynccontextmanager
async def answering_client(world: World) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=answering_app(world))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def test_no_route_and_a_wrong_method_are_problem_documents() -> None:
    world = make_world()
    key = {"Authorization": f"Bearer {world.key('k', 'keys.read')}"}
    async with answering_client(world) as client:
        missing = await client.get("/nowhere", headers=key)
        wrong = await client.put("/items", headers=key)
        public_wrong = await client.get("/hook")
        included = await client.get("/made", headers=key)  # a route of an included router
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json() == {
        "type": "urn:authcore:problem:not_found",
        "title": "No such resource.",
        "status": 404,
        "code": "not_found",
    }
    assert wrong.status_code == 405
    assert wrong.json()["code"] == "method_not_allowed"
    # Every method of the path, though FastAPI made one route per method (RFC 9110 §15.5.6).
    assert wrong.headers["allow"] == "GET, HEAD, POST"
    assert public_wrong.status_code == 405
    assert public_wrong.headers["allow"] == "POST"
    assert included.status_code == 405
    assert included.headers["allow"] == "POST"


async def test_a_handlers_http_exception_keeps_its_detail_in_the_problem() -> None:
    world = make_world()
    key = {"Authorization": f"Bearer {world.key('k', 'keys.read')}"}
    async with answering_client(world) as client:
        raised = await client.get("/items/x", headers=key)
        bodiless = await client.delete("/items/x", headers=key)
        unnamed = await client.patch("/items/x", headers=key)
    assert raised.status_code == 404
    assert raised.headers["content-type"] == "application/problem+json"
    assert raised.json()["code"] == "not_found"
    assert raised.json()["detail"] == "no item x"
    assert bodiless.status_code == 304
    assert bodiless.content == b""
    assert unnamed.status_code == 499  # a status http.HTTPStatus does not know
    assert unnamed.json()["code"] == "http_error"
    assert unnamed.json()["detail"] == "client closed"


async def test_head_is_answered_as_get_without_the_body() -> None:
    world = make_world()
    key = {"Authorization": f"Bearer {world.key('k', 'keys.read')}"}
    async with answering_client(world) as client:
        get = await client.get("/items", headers=key)
        head = await client.head("/items", headers=key)
        anonymous = await client.head("/items")
        own = await client.head("/ping")
        post_only = await client.head("/hook")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"]
    # The HEAD was charged like a GET: one request fewer left (`r` of the RateLimit field).
    remaining = [int(h.headers["ratelimit"].split(";r=")[1].split(";")[0]) for h in (get, head)]
    assert remaining[1] == remaining[0] - 1
    assert anonymous.status_code == 401  # HEAD is authenticated exactly as GET
    assert own.headers["x-method"] == "HEAD"  # a route that serves HEAD gets it unchanged
    assert post_only.status_code == 405  # nothing serves GET there either


async def test_openapi_lists_the_rate_limit_headers_where_a_credential_is_declared() -> None:
    paths = (await openapi(answering_app(make_world())))["paths"]
    rate_limit = {"RateLimit-Policy", "RateLimit"}
    assert set(paths["/items"]["get"]["responses"]["200"]["headers"]) == rate_limit
    assert set(paths["/made"]["post"]["responses"]["201"]["headers"]) == rate_limit
    # No authcore credential declared: nothing is claimed for it.
    assert "headers" not in paths["/items"]["post"]["responses"]["200"]
    assert "headers" not in paths["/ping"]["get"]["responses"]["200"]
