"""The dashboard: a small web page for dashboard users, talking to the API through the proxy.

``GET /`` serves the page (plain HTML, CSS and a little JavaScript, no build step). A user logs
in with ``POST /login`` (user id and password of a dashboard user, checked with
:func:`authcore.passwords.verify_password`) and gets a session cookie: HttpOnly,
SameSite=Strict, ``Secure`` when served over TLS. The session lives on the server, stored by
the SHA-256 digest of its token (the cookie holds the token). Everything the page shows
comes from the API through ``/proxy/...`` (:class:`authcore.adapters.proxy.DashboardProxy`),
which mints a short-lived JWT for the user's organization's workspace; the API still decides
what the user may do.

State-changing requests (``/login``, ``/logout``) must come from this page: they pass the one
cross-site rule of :func:`authcore.credentials.is_same_origin` (``Sec-Fetch-Site:
same-origin``, or, from a browser that sends no ``Sec-Fetch-Site``, an ``Origin`` equal to the
dashboard's own), and carry a JSON body (which a cross-site HTML form cannot send without a
CORS preflight). Bodies are bounded in size and in the time they take to arrive; a path with a
trailing slash is a 404, never a redirect built from ``Host``; a 405 carries ``Allow``.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Final

import anyio.to_thread
import attrs
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from authcore.backends.memory import MemoryRateLimiter
from authcore.credentials import is_same_origin, parse_cookie_header, request_origin
from authcore.errors import ClientError, DuplicateCredentialError
from authcore.names import check_name
from authcore.passwords import hash_password, verify_password
from authcore.proxy import DashboardSession
from authcore.ratelimit import RateLimitPolicy
from authcore.records import WorkspaceRecord
from authcore.service._http import (
    BODY_TIMEOUT,
    ProblemError,
    allowed_methods,
    json_response,
    problem_response,
    read_json_object,
)
from authcore.store import AsyncStore
from authcore.tokens import digest

__all__ = [
    "SESSION_COOKIE",
    "DashboardSessions",
    "StoreWorkspaceResolver",
    "create_dashboard",
]

SESSION_COOKIE: Final = "authcore_dashboard"
_SESSION_TTL: Final = 8 * 3600
_MAX_SESSIONS: Final = 10_000
_SECURITY_HEADERS: Final = {
    # Scripts and styles come from this origin only: no inline code, nothing framed.
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}
_STATIC_TYPES: Final = {
    "app.js": "text/javascript; charset=utf-8",
    "identities.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}


@attrs.frozen
class _Entry:
    session: DashboardSession
    expires_at: float


class DashboardSessions:
    """Server-side dashboard sessions in memory, by digest of the cookie's token.

    Bounded: when full, the oldest session is dropped (its user logs in again). Thread-safe.
    Implements :class:`authcore.proxy.AsyncDashboardSessionVerifier` for the proxy.
    """

    def __init__(
        self,
        *,
        ttl: float = _SESSION_TTL,
        max_sessions: int = _MAX_SESSIONS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._ttl = ttl
        self._max = max_sessions
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(sessions={len(self._entries)})"

    def create(self, session: DashboardSession) -> str:
        """Start a session; return the token for the cookie (never stored)."""
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._entries[digest(token)] = _Entry(session, self._clock() + self._ttl)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        return token

    def end(self, token: str) -> None:
        """End the session of ``token`` (logout); unknown tokens are ignored."""
        with self._lock:
            self._entries.pop(digest(token), None)

    def lookup(self, token: str | None) -> DashboardSession | None:
        """Return the live session for ``token``, or None."""
        if not token or len(token) > 128:
            return None
        key = digest(token)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if self._clock() >= entry.expires_at:
                del self._entries[key]
                return None
            return entry.session

    def token_from(self, cookie_headers: Sequence[str]) -> str | None:
        """Return the session token from ``Cookie`` header values (None if absent or repeated)."""
        try:
            return parse_cookie_header(cookie_headers, SESSION_COOKIE)
        except DuplicateCredentialError:
            return None

    async def averify_session(self, cookie_headers: Sequence[str], /) -> DashboardSession | None:
        """Return the session the request's cookies carry, or None (the proxy answers 401)."""
        return self.lookup(self.token_from(cookie_headers))


class StoreWorkspaceResolver:
    """Map an organization to its workspace through the store (for the proxy)."""

    def __init__(self, store: AsyncStore) -> None:
        self._store = store

    async def aresolve_workspace(self, org_id: str, /) -> WorkspaceRecord | None:
        """Return the workspace linked to ``org_id``, or None."""
        return await self._store.afind_workspace_by_org(org_id)


def _static(name: str) -> bytes:
    return importlib.resources.files("authcore.service").joinpath("static", name).read_bytes()


def _secure_headers(response: Response) -> Response:
    for name, value in _SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _check_same_origin(request: Request) -> None:
    """Refuse a state-changing request that did not come from this page (the core's rule).

    Raises:
        ProblemError: 403 unless ``Sec-Fetch-Site`` is ``same-origin`` or, where the browser
            sends none, ``Origin`` is this site's own origin (scheme and ``Host``).
    """
    headers = request.headers
    own_origin = request_origin(request.url.scheme, headers.getlist("host"))
    if not is_same_origin(
        headers.getlist("sec-fetch-site"), headers.getlist("origin"), own_origin=own_origin
    ):
        raise ProblemError(403, "cross_site_request", "Cross-site requests are not allowed.")


def _could_be_user_id(user_id: str) -> bool:
    try:
        check_name(user_id, "user_id")
    except ClientError:
        return False
    return True


#: Login budgets: 10 attempts per user id and 30 per client address, refilling over a minute.
_LOGIN_PER_USER: Final = RateLimitPolicy(limit=10, period=60)
_LOGIN_PER_CLIENT: Final = RateLimitPolicy(limit=30, period=60)


class _Dashboard:
    def __init__(
        self,
        store: AsyncStore,
        sessions: DashboardSessions,
        secure_cookies: bool | None,
        body_timeout: float,
    ) -> None:
        self.store = store
        self.sessions = sessions
        self.secure_cookies = secure_cookies
        self.body_timeout = body_timeout
        # Checked against when the user id is unknown, so a wrong user id costs as much as a
        # wrong password and the timing does not tell which one was wrong.
        self._decoy_hash = hash_password(secrets.token_urlsafe(16))
        self._login_attempts = MemoryRateLimiter(max_workspaces=100_000)

    def _throttle(self, user_id: str, request: Request) -> None:
        """Refuse a login attempt over the per-user or per-client budget, before any hashing.

        Online password guessing is bounded per user id (whatever the client) and per client
        address (whatever the user ids it sprays). Attempts are counted whether they succeed or
        not; the budgets are small enough to stop guessing and large enough for typos.

        Raises:
            ProblemError: 429 with ``Retry-After``.
        """
        client = request.client.host if request.client is not None else "unknown"
        for key, policy in (
            (f"user:{user_id}", _LOGIN_PER_USER),
            (f"client:{client}", _LOGIN_PER_CLIENT),
        ):
            decision = self._login_attempts.hit(key, policy)
            if not decision.allowed:
                raise ProblemError(
                    429,
                    "too_many_login_attempts",
                    "Too many login attempts; try again later.",
                    retry_after=decision.retry_after,
                )

    def _secure(self, request: Request) -> bool:
        if self.secure_cookies is not None:
            return self.secure_cookies
        return request.url.scheme == "https"

    async def page(self, request: Request) -> Response:
        return _secure_headers(Response(_static("index.html"), media_type="text/html"))

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        media_type = _STATIC_TYPES.get(name)
        if media_type is None:
            return _secure_headers(problem_response(404, "not_found", "No such resource."))
        return _secure_headers(Response(_static(name), media_type=media_type))

    async def login(self, request: Request) -> Response:
        _check_same_origin(request)
        body = await read_json_object(request, time_limit=self.body_timeout)
        user_id = body.get("user_id")
        password = body.get("password")
        if not isinstance(user_id, str) or not isinstance(password, str):
            raise ProblemError(400, "invalid_body", "user_id and password must be strings.")
        if not 0 < len(password) <= 1024 or not _could_be_user_id(user_id):
            # No such user can exist (ids pass the store's name check): the answer of a wrong
            # password, without a store lookup for text that cannot be stored.
            raise ProblemError(401, "login_failed", "The user id or password is wrong.")
        self._throttle(user_id, request)
        user = await self.store.afind_dashboard_user(user_id)
        stored = user.password_hash if user is not None else self._decoy_hash
        # scrypt takes tens of milliseconds: keep it off the event loop.
        matches = await anyio.to_thread.run_sync(verify_password, password, stored)
        if user is None or not matches:
            raise ProblemError(401, "login_failed", "The user id or password is wrong.")
        session = DashboardSession(
            user_id=user.user_id,
            org_id=user.org_id,
            permissions=user.permissions,
        )
        token = self.sessions.create(session)
        response = json_response(self._describe(session))
        response.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=_SESSION_TTL,
            path="/",
            secure=self._secure(request),
            httponly=True,
            samesite="strict",
        )
        return _secure_headers(response)

    async def logout(self, request: Request) -> Response:
        _check_same_origin(request)
        token = self.sessions.token_from(request.headers.getlist("cookie"))
        if token is not None:
            self.sessions.end(token)
        response = Response(status_code=204)
        response.delete_cookie(
            SESSION_COOKIE,
            path="/",
            secure=self._secure(request),
            httponly=True,
            samesite="strict",
        )
        return _secure_headers(response)

    async def session(self, request: Request) -> Response:
        session = await self.sessions.averify_session(request.headers.getlist("cookie"))
        if session is None:
            return _secure_headers(problem_response(401, "login_required", "Please log in."))
        return _secure_headers(json_response(self._describe(session)))

    @staticmethod
    def _describe(session: DashboardSession) -> dict[str, Any]:
        return {
            "user_id": session.user_id,
            "org_id": session.org_id,
            "permissions": list(session.permissions),
        }


async def _on_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemError)  # noqa: S101 - registered for ProblemError only
    return _secure_headers(
        problem_response(
            exc.status, exc.code, exc.title, retry_after=exc.retry_after, headers=exc.headers
        )
    )


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)  # noqa: S101 - registered for HTTPException only
    if exc.status_code == 405:
        # RFC 9110 §15.5.6: a 405 names the methods the resource does support.
        allow = allowed_methods(request.app.routes, request.scope)
        return _secure_headers(
            problem_response(
                405,
                "method_not_allowed",
                "The method is not allowed here.",
                headers={"allow": allow},
            )
        )
    if exc.status_code == 404:
        return _secure_headers(problem_response(404, "not_found", "No such resource."))
    return _secure_headers(problem_response(exc.status_code, "http_error", "The request failed."))


async def _on_bug(request: Request, exc: Exception) -> Response:
    return _secure_headers(
        problem_response(500, "internal_error", "The server could not complete the request.")
    )


def create_dashboard(
    store: AsyncStore,
    proxy: Any,
    *,
    sessions: DashboardSessions,
    secure_cookies: bool | None = None,
    body_timeout: float = BODY_TIMEOUT,
) -> Starlette:
    """Return the dashboard ASGI app, with ``proxy`` (an ASGI app) mounted at ``/proxy``.

    ``sessions`` must be the verifier the proxy was built with. ``secure_cookies=None`` sets
    ``Secure`` on the cookie exactly when the request came over TLS. ``body_timeout`` bounds
    the time a login or logout body may take to arrive.
    """
    dashboard = _Dashboard(store, sessions, secure_cookies, body_timeout)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Starlette does not pass lifespan events to mounted apps: close the proxy's client.
        yield
        aclose = getattr(proxy, "aclose", None)
        if aclose is not None:
            await aclose()

    app = Starlette(
        lifespan=lifespan,
        routes=[
            Route("/", dashboard.page, methods=["GET"]),
            Route("/static/{name}", dashboard.static, methods=["GET"]),
            Route("/login", dashboard.login, methods=["POST"]),
            Route("/logout", dashboard.logout, methods=["POST"]),
            Route("/session", dashboard.session, methods=["GET"]),
            Mount("/proxy", app=proxy),
        ],
        exception_handlers={
            ProblemError: _on_problem,
            HTTPException: _on_http_error,
            Exception: _on_bug,
        },
    )
    # "/login/" is a 404, not a redirect whose Location Starlette would build from Host.
    app.router.redirect_slashes = False
    return app
