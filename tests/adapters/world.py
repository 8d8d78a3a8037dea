"""One world (store, keys, clock, authenticators), one app per adapter, and the case matrix.

Every adapter serves the same routes:

- ``GET /health``: public, no principal.
- ``GET /unguarded``: public, but the handler asks for the principal (fail closed: 500).
- ``GET /keys``: needs ``keys.read``.
- ``GET|POST /portal/profile``: the portal route group (portal sessions only).
- ``GET /down/keys``: a route group whose store is down.

The Django app is the same routes (:mod:`tests.adapters.django_urls`) with the world's gate in
``settings.AUTHCORE``, for as long as :func:`django_settings` is entered.

Each case uses its own workspace, so a world can serve every case once in any order, in
process or over real HTTP, and the answers (rate-limit counters included) are the same.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import attrs
from django.test import override_settings
from flask import Flask, jsonify
from flask import request as flask_request
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from authcore.adapters import flask as flask_adapter
from authcore.adapters import starlette as starlette_adapter
from authcore.adapters.wsgi import AuthMiddleware as WSGIAuthMiddleware
from authcore.binding import principal_from
from authcore.credentials import CredentialSettings
from authcore.flow import AsyncBackends, Authenticator, AuthSettings, Backends
from authcore.keyring import JWTSettings, Keyring, SigningSecret
from authcore.ratelimit import RateLimitPolicy
from authcore.records import IdentityRecord, PortalSessionRecord, RootKeyRecord, WorkspaceRecord
from authcore.testing import (
    MemoryRateLimiter,
    MemoryStore,
    SettableClock,
    issue_portal_session,
    issue_root_key,
    make_workspace,
)
from authcore.tokens import Secret

ALLOWED_ORIGIN = "https://portal.example.com"
PORTAL_COOKIE = "authcore_portal"
JWT_SECRET = Secret("s" * 40)


class DownStore:
    """A credential store whose backing service is unreachable: every lookup fails."""

    def find_root_key(self, digest: bytes, /) -> RootKeyRecord | None:
        raise ConnectionError("connection refused")

    def find_portal_session(self, digest: bytes, /) -> PortalSessionRecord | None:
        raise ConnectionError("connection refused")

    def find_workspace(self, workspace_id: str, /) -> WorkspaceRecord | None:
        raise ConnectionError("connection refused")

    def find_identity(self, identity_id: str, /) -> IdentityRecord | None:
        raise ConnectionError("connection refused")

    async def afind_identity(self, identity_id: str, /) -> IdentityRecord | None:
        raise ConnectionError("connection refused")

    async def afind_root_key(self, digest: bytes, /) -> RootKeyRecord | None:
        raise ConnectionError("connection refused")

    async def afind_portal_session(self, digest: bytes, /) -> PortalSessionRecord | None:
        raise ConnectionError("connection refused")

    async def afind_workspace(self, workspace_id: str, /) -> WorkspaceRecord | None:
        raise ConnectionError("connection refused")


def _authenticator(
    store: Any, limiter: MemoryRateLimiter, clock: SettableClock, settings: AuthSettings
) -> Authenticator:
    return Authenticator(
        settings,
        clock=clock,
        backends=Backends(store, limiter),
        abackends=AsyncBackends(store, limiter),
    )


@attrs.define
class World:
    """The backends, authenticators and credentials one app is built on."""

    clock: SettableClock
    store: MemoryStore
    keyring: Keyring
    api: Authenticator
    portal: Authenticator
    down: Authenticator
    #: name -> raw credential
    secrets: dict[str, str] = attrs.Factory(dict)

    def key(self, name: str, *permissions: str, **options: Any) -> str:
        workspace = options.pop("workspace", None) or f"ws_{name}"
        make_workspace(
            self.store,
            workspace,
            disabled=options.pop("disabled", False),
            rate_limit=options.pop("rate_limit", None),
        )
        key_limit = options.pop("key_rate_limit", None)
        _, secret = issue_root_key(
            self.store, workspace, permissions, now=self.clock.now, rate_limit=key_limit, **options
        )
        return secret.reveal()

    def portal_token(self, name: str, *permissions: str) -> str:
        workspace = f"ws_{name}"
        make_workspace(self.store, workspace)
        _, secret = issue_portal_session(
            self.store, workspace, f"user_{name}", permissions, now=self.clock.now
        )
        return secret.reveal()

    def jwt(
        self, name: str, *permissions: str, keyring: Keyring | None = None, age: int = 0
    ) -> str:
        workspace = f"ws_{name}"
        make_workspace(self.store, workspace)
        token = (keyring or self.keyring).mint(
            subject=f"user_{name}",
            workspace_id=workspace,
            permissions=list(permissions),
            now=int(self.clock.now) - age,
            ttl=60,
        )
        return token.reveal()


def make_world(rate_limit_headers: str = "draft") -> World:
    clock = SettableClock()
    store = MemoryStore()
    limiter = MemoryRateLimiter(clock_us=clock.us)
    keyring = Keyring([SigningSecret("k1", JWT_SECRET)], signing_kid="k1")
    settings = AuthSettings(keyring=keyring, rate_limit_headers=rate_limit_headers)
    api = _authenticator(store, limiter, clock, settings)
    portal = _authenticator(
        store,
        limiter,
        clock,
        AuthSettings(
            credentials=CredentialSettings.portal(PORTAL_COOKIE, allowed_origins=[ALLOWED_ORIGIN]),
            realm="portal",
        ),
    )
    down = _authenticator(DownStore(), limiter, clock, AuthSettings(keyring=keyring))
    return World(clock, store, keyring, api, portal, down)


def groups(world: World) -> dict[str, Authenticator]:
    return {"/portal/": world.portal, "/down/": world.down}


# --- the three apps -------------------------------------------------------------------------


def starlette_app(world: World) -> Starlette:
    """The matrix app on Starlette, with the pure ASGI middleware and a route-level marker."""

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    async def unguarded(request: Request) -> JSONResponse:
        principal = starlette_adapter.principal_from(request)
        return JSONResponse({"workspace_id": principal.workspace_id})

    @starlette_adapter.requires_permission("keys.read")
    async def keys(request: Request) -> JSONResponse:
        principal = starlette_adapter.principal_from(request)
        return JSONResponse({"workspace_id": principal.workspace_id})

    async def profile(request: Request) -> JSONResponse:
        principal = starlette_adapter.principal_from(request)
        return JSONResponse({"workspace_id": principal.workspace_id})

    app = Starlette(
        routes=[
            Route("/health", starlette_adapter.public(health)),
            Route("/unguarded", unguarded),
            Route("/keys", keys),
            Route("/portal/profile", profile, methods=["GET", "POST"]),
            Route("/down/keys", keys),
        ]
    )
    # /health is public by marker, /unguarded by path: both ways are exercised.
    starlette_adapter.install_auth(
        app, world.api, groups=groups(world), public_paths=["/unguarded"]
    )
    return app


def wsgi_app(world: World) -> WSGIAuthMiddleware:
    """The matrix app as a plain WSGI callable behind the WSGI middleware."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ["PATH_INFO"]
        if path == "/health":
            payload: dict[str, Any] = {"ok": True}
        elif path in ("/unguarded", "/keys", "/portal/profile", "/down/keys"):
            principal = principal_from(environ)
            if path in ("/keys", "/down/keys"):
                principal.authorize("keys.read")
            payload = {"workspace_id": principal.workspace_id}
        else:
            start_response("404 Not Found", [("content-type", "text/plain")])
            return [b"not found"]
        body = json.dumps(payload).encode()
        start_response("200 OK", [("content-type", "application/json")])
        return [body]

    return WSGIAuthMiddleware(
        app, world.api, groups=groups(world), public_paths=["/health", "/unguarded"]
    )


def flask_app(world: World) -> Flask:
    """The matrix app on Flask, with the extension and a view-level marker."""
    app = Flask("matrix")

    @app.get("/health")
    @flask_adapter.public
    def health() -> Any:
        return jsonify(ok=True)

    @app.get("/unguarded")
    def unguarded() -> Any:
        return jsonify(workspace_id=flask_adapter.current_principal.workspace_id)

    @app.get("/keys", endpoint="keys")
    @app.get("/down/keys", endpoint="down_keys")
    @flask_adapter.require("keys.read")
    def keys() -> Any:
        return jsonify(workspace_id=flask_adapter.principal_from(flask_request).workspace_id)

    @app.route("/portal/profile", methods=["GET", "POST"])
    def profile() -> Any:
        return jsonify(workspace_id=flask_adapter.principal_from(flask_request).workspace_id)

    flask_adapter.AuthCore(app, world.api, groups=groups(world), public_paths=["/unguarded"])
    return app


@contextmanager
def django_settings(world: World) -> Iterator[None]:
    """The matrix app on Django: the world's gate in ``settings.AUTHCORE`` while entered.

    Only AUTHCORE is overridden, on top of tests/django_settings.py (configured once by
    tests/conftest.py), and only while the app serves: nothing leaks into the next test.
    """
    authcore = {
        "GATE": world.api,
        "OPTIONS": {"groups": groups(world), "public_paths": ["/unguarded"]},
    }
    with override_settings(AUTHCORE=authcore):
        yield


# --- the cases ------------------------------------------------------------------------------

Headers = list[tuple[str, str]]


@attrs.frozen
class Case:
    """One request (built from a world) and what every adapter must answer."""

    name: str
    method: str
    path: str
    headers: Callable[[World], Headers]
    status: int
    code: str | None = None  # problem "code", None for a success
    challenge: str | None = None  # the exact WWW-Authenticate, None: header absent
    rate_limited: bool = False  # expect the rate-limit fields (the draft's, by default)
    fields: tuple[tuple[str, str], ...] = ()  # their exact values, where the case pins them
    retry_after: bool = False
    repeat: int = 1  # send this many times; the last answer counts
    codes: frozenset[str] = frozenset()  # alternative codes (see duplicate_header)


def bearer(value: str) -> Headers:
    return [("Authorization", f"Bearer {value}")]


def cookie(value: str) -> Headers:
    return [("Cookie", f"theme=dark; {PORTAL_COOKIE}={value}")]


UNKNOWN_KEY = "ak_" + "A" * 43
API_CHALLENGE = 'Bearer realm="api"'
INVALID = 'Bearer realm="api", error="invalid_token"'
BAD_REQUEST = 'Bearer realm="api", error="invalid_request"'


def _wrong_audience(world: World) -> Headers:
    other = Keyring(
        [SigningSecret("k1", JWT_SECRET)],
        signing_kid="k1",
        settings=JWTSettings(audience="someone-else"),
    )
    return bearer(world.jwt("jwt_aud", "keys.read", keyring=other))


CASES: tuple[Case, ...] = (
    Case("public_health", "GET", "/health", lambda w: [], 200),
    Case("no_credential", "GET", "/keys", lambda w: [], 401, "credential_missing", API_CHALLENGE),
    Case(
        "basic_scheme",
        "GET",
        "/keys",
        lambda w: [("Authorization", "Basic dXNlcjpwYXNz")],
        401,
        "unsupported_scheme",
        API_CHALLENGE,
    ),
    Case(
        "malformed",
        "GET",
        "/keys",
        lambda w: [("Authorization", "Bearer ak_abc def")],
        400,
        "credential_malformed",
        BAD_REQUEST,
    ),
    # ASGI keeps repeated fields apart (two credentials); WSGI servers join them with ", "
    # (a malformed value). Both are 400 invalid_request.
    Case(
        "duplicate_header",
        "GET",
        "/keys",
        lambda w: bearer(w.key("dup", "keys.read")) + bearer(w.key("dup2", "keys.read")),
        400,
        None,
        BAD_REQUEST,
        codes=frozenset({"credential_ambiguous", "credential_malformed"}),
    ),
    Case(
        "header_plus_cookie",
        "GET",
        "/portal/profile",
        lambda w: bearer(w.portal_token("hpc")) + cookie(w.portal_token("hpc2")),
        400,
        "credential_ambiguous",
        'Bearer realm="portal", error="invalid_request"',
    ),
    Case(
        "unknown_key",
        "GET",
        "/keys",
        lambda w: bearer(UNKNOWN_KEY),
        401,
        "credential_invalid",
        INVALID,
    ),
    Case(
        "revoked_key",
        "GET",
        "/keys",
        lambda w: bearer(w.key("revoked", "keys.read", revoked=True)),
        401,
        "credential_invalid",
        INVALID,
    ),
    Case(
        "expired_key",
        "GET",
        "/keys",
        lambda w: bearer(w.key("expired", "keys.read", expires_at=int(w.clock.now))),
        401,
        "credential_invalid",
        INVALID,
    ),
    Case(
        "valid_key",
        "GET",
        "/keys",
        lambda w: bearer(w.key("valid", "keys.read")),
        200,
        rate_limited=True,
    ),
    Case(
        "key_without_permission",
        "GET",
        "/keys",
        lambda w: bearer(w.key("noperm", "billing.read")),
        403,
        "permission_denied",
        'Bearer realm="api", error="insufficient_scope"',
        rate_limited=True,
    ),
    Case(
        "disabled_workspace",
        "GET",
        "/keys",
        lambda w: bearer(w.key("disabled", "keys.read", disabled=True)),
        403,
        "workspace_disabled",
    ),
    Case(
        "portal_token_on_api_route",
        "GET",
        "/keys",
        lambda w: bearer(w.portal_token("pt_api", "keys.read")),
        401,
        "credential_invalid",
        INVALID,
    ),
    Case(
        "root_key_on_portal_route",
        "GET",
        "/portal/profile",
        lambda w: bearer(w.key("rk_portal", "keys.read")),
        401,
        "credential_invalid",
        'Bearer realm="portal", error="invalid_token"',
    ),
    Case(
        "jwt_valid",
        "GET",
        "/keys",
        lambda w: bearer(w.jwt("jwt_ok", "keys.read")),
        200,
        rate_limited=True,
    ),
    Case(
        "jwt_expired",
        "GET",
        "/keys",
        lambda w: bearer(w.jwt("jwt_old", "keys.read", age=600)),
        401,
        "credential_invalid",
        INVALID,
    ),
    Case("jwt_wrong_audience", "GET", "/keys", _wrong_audience, 401, "credential_invalid", INVALID),
    Case(
        "rate_limit_reached",
        "GET",
        "/keys",
        lambda w: bearer(w.key("limited", "keys.read", rate_limit=RateLimitPolicy(1, 60))),
        429,
        "rate_limited",
        rate_limited=True,
        retry_after=True,
        repeat=2,
    ),
    Case(
        "key_with_its_own_limit",
        "GET",
        "/keys",
        lambda w: bearer(w.key("own", "keys.read", key_rate_limit=RateLimitPolicy(5, 60))),
        200,
        rate_limited=True,
        repeat=2,
        fields=(
            ("ratelimit", '"key";r=3;t=24, "workspace";r=598;t=1'),
            ("ratelimit-policy", '"key";q=5;w=60, "workspace";q=600;w=60'),
        ),
    ),
    Case(
        "key_limit_reached",
        "GET",
        "/keys",
        lambda w: bearer(w.key("own1", "keys.read", key_rate_limit=RateLimitPolicy(1, 60))),
        429,
        "rate_limited",
        rate_limited=True,
        retry_after=True,
        repeat=2,
        # The refused request charged no level; the workspace's item says where it stands:
        # 599 left after the first request, as the refused one took nothing.
        fields=(
            ("ratelimit", '"key";r=0;t=60, "workspace";r=599;t=1'),
            ("ratelimit-policy", '"key";q=1;w=60, "workspace";q=600;w=60'),
        ),
    ),
    Case(
        "store_down",
        "GET",
        "/down/keys",
        lambda w: bearer(w.key("down", "keys.read")),
        503,
        "service_unavailable",
        retry_after=True,
    ),
    Case("route_without_middleware", "GET", "/unguarded", lambda w: [], 500, "principal_missing"),
    Case(
        "portal_cookie_get",
        "GET",
        "/portal/profile",
        lambda w: cookie(w.portal_token("pc_get")),
        200,
        rate_limited=True,
    ),
    Case(
        "portal_cookie_post_cross_site",
        "POST",
        "/portal/profile",
        lambda w: [
            *cookie(w.portal_token("pc_xs")),
            ("Sec-Fetch-Site", "cross-site"),
            ("Origin", "https://evil.example"),
        ],
        403,
        "cross_site_request",
    ),
    Case(
        "portal_cookie_post_no_site_headers",
        "POST",
        "/portal/profile",
        lambda w: cookie(w.portal_token("pc_none")),
        403,
        "cross_site_request",
    ),
    Case(
        "portal_cookie_post_same_origin",
        "POST",
        "/portal/profile",
        lambda w: [*cookie(w.portal_token("pc_same")), ("Sec-Fetch-Site", "same-origin")],
        200,
        rate_limited=True,
    ),
    Case(
        "portal_cookie_post_allowed_origin",
        "POST",
        "/portal/profile",
        lambda w: [*cookie(w.portal_token("pc_origin")), ("Origin", ALLOWED_ORIGIN)],
        200,
        rate_limited=True,
    ),
    Case(
        "portal_bearer_post_skips_site_check",
        "POST",
        "/portal/profile",
        lambda w: bearer(w.portal_token("pb_post")),
        200,
        rate_limited=True,
    ),
)


# --- answers --------------------------------------------------------------------------------

COMPARED_HEADERS = (
    "content-type",
    "www-authenticate",
    "retry-after",
    "ratelimit-policy",
    "ratelimit",
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    "cache-control",
)
DRAFT_FIELDS = ("ratelimit-policy", "ratelimit")
LEGACY_FIELDS = ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset")


@attrs.frozen
class Answer:
    """What a response said, reduced to what must be equal across adapters."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    @classmethod
    def of(cls, status: int, headers: Iterable[tuple[str, str]], body: bytes) -> Answer:
        wanted = tuple(
            sorted(
                (name.lower(), value) for name, value in headers if name.lower() in COMPARED_HEADERS
            )
        )
        return cls(status, wanted, body)

    def header(self, name: str) -> str | None:
        values = [value for key, value in self.headers if key == name]
        assert len(values) <= 1, f"{name} sent {len(values)} times"
        return values[0] if values else None

    def problem(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.body)
        return document

    def comparable(self) -> tuple[int, tuple[tuple[str, str], ...], int | None]:
        """Status, compared headers (content-type without parameters) and problem status."""
        headers = tuple(
            (name, value.split(";")[0]) if name == "content-type" else (name, value)
            for name, value in self.headers
        )
        problem = self.problem().get("status") if self.status >= 400 else None
        return self.status, headers, problem


def check(case: Case, answer: Answer) -> None:
    """Assert that ``answer`` is what ``case`` expects."""
    assert answer.status == case.status, (case.name, answer)
    assert answer.header("www-authenticate") == case.challenge, case.name
    for name in DRAFT_FIELDS:
        assert (answer.header(name) is not None) == case.rate_limited, (case.name, name)
    for name in LEGACY_FIELDS:
        assert answer.header(name) is None, (case.name, name)  # the draft's alone, by default
    for name, value in case.fields:
        assert answer.header(name) == value, (case.name, name)
    assert (answer.header("retry-after") is not None) == case.retry_after, case.name
    if case.status >= 400:
        assert answer.header("content-type") == "application/problem+json", case.name
        problem = answer.problem()
        assert problem["status"] == case.status
        expected = case.codes or {case.code}
        assert problem["code"] in expected, (case.name, problem)
        # Fixed, safe fields only: nothing from the request or a lower layer.
        assert set(problem) == {"type", "title", "status", "code"}
    else:
        assert "workspace_id" in answer.problem() or "ok" in answer.problem()


__all__ = [
    "CASES",
    "Answer",
    "Case",
    "World",
    "check",
    "django_settings",
    "flask_app",
    "make_world",
    "starlette_app",
    "wsgi_app",
]
