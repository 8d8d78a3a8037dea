"""Flask extension: authenticate in ``before_request``, answer errors as problem documents.

``AuthCore(app, authenticator)`` (or ``init_app`` later) registers:

- a ``before_request`` hook that authenticates every request whose view is not marked
  :func:`public` and whose path is not configured public, storing the principal on
  :data:`flask.g` for this request only;
- an ``after_request`` hook that adds the ``RateLimit-*`` headers;
- an error handler that answers any :class:`~authcore.errors.AuthcoreError` a view raises with
  :func:`authcore.responses.error_response` (never the exception text);
- a ``teardown_request`` hook that unbinds the principal and reports metrics.

Views read the principal with :data:`current_principal` / :func:`get_principal` and guard
themselves with :func:`require`. On a request where the extension did not authenticate, both
raise :class:`~authcore.errors.PrincipalMissingError` (500, safe body): never anonymous.

``flask.g`` belongs to the application context, which Flask may share between requests (an
app context pushed by the caller around several requests). The principal is therefore stored
together with the request it belongs to and read back only for that same request, so it can
never leak into the next one.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, TypeVar, cast

import attrs
from flask import Flask, Response, g, has_request_context, request
from werkzeug.local import LocalProxy

from authcore.adapters._common import (
    ErrorHook,
    RequestFacts,
    RouteTable,
    authenticate_request,
    is_marked_public,
    log_unexpected,
    public,
    report_metrics,
    safe_response,
)
from authcore.adapters.logging import RequestMetrics
from authcore.credentials import request_origin
from authcore.errors import AuthcoreError, ConfigurationError, PrincipalMissingError
from authcore.flow import Authenticator
from authcore.permissions import Query, as_query
from authcore.principal import Principal
from authcore.ratelimit import RateLimitDecision
from authcore.responses import HTTPResponse, rate_limit_headers
from authcore.session import bind_principal, reset_principal, workspace_id_for_logs

__all__ = [
    "AuthCore",
    "current_principal",
    "get_principal",
    "public",
    "require",
]

F = TypeVar("F", bound=Callable[..., Any])

_EXTENSION: Final = "authcore"
_STATE: Final = "_authcore_request_state"


@attrs.define
class _RequestState:
    """What the extension keeps for one request (on ``g``, tagged with that request)."""

    #: The request's WSGI environ: one dict per request, so its identity names the request.
    request: object
    started_at: float
    principal: Principal | None = None
    rate_limit: RateLimitDecision | None = None
    token: Any = None
    status: int = 0


def _state() -> _RequestState | None:
    if not has_request_context():
        return None
    state = g.get(_STATE)
    # Only this request's own state counts (see the module docstring).
    if isinstance(state, _RequestState) and state.request is request.environ:
        return state
    return None


def get_principal() -> Principal:
    """Return the principal of the current request.

    Raises:
        PrincipalMissingError: the extension did not authenticate this request (500).
    """
    state = _state()
    if state is None or state.principal is None:
        raise PrincipalMissingError("route served without authcore authentication")
    return state.principal


#: The current request's principal; any use raises PrincipalMissingError when there is none.
current_principal: Principal = cast("Principal", LocalProxy(get_principal))


def require(query: Query | str) -> Callable[[F], F]:
    """Decorate a view so it runs only if the principal satisfies ``query``.

    Raises:
        InvalidPermissionError: ``query`` breaks the grammar (at decoration time).
    """
    parsed = as_query(query)

    def decorate(view: F) -> F:
        if inspect.iscoroutinefunction(view):

            @functools.wraps(view)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                get_principal().authorize(parsed)
                return await view(*args, **kwargs)

            return cast("F", async_wrapper)

        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            get_principal().authorize(parsed)
            return view(*args, **kwargs)

        return cast("F", wrapper)

    return decorate


class AuthCore:
    """The Flask extension. Options as for :class:`authcore.adapters.wsgi.AuthMiddleware`.

    Raises:
        ConfigurationError: no authenticator, or an invalid prefix (in ``init_app``).
    """

    def __init__(
        self,
        app: Flask | None = None,
        authenticator: Authenticator | None = None,
        *,
        groups: Mapping[str, Authenticator] | None = None,
        public_paths: Iterable[str] = (),
        public_prefixes: Iterable[str] = (),
        on_error: ErrorHook | None = None,
        metrics: RequestMetrics | None = None,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.authenticator = authenticator
        self._groups = groups
        self._public_paths = tuple(public_paths)
        self._public_prefixes = tuple(public_prefixes)
        self._on_error = on_error
        self._metrics = metrics
        self._timer = timer
        self.routes: RouteTable | None = None
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Register the hooks and the error handler on ``app``.

        Raises:
            ConfigurationError: no authenticator, or an invalid prefix.
        """
        if self.authenticator is None:
            raise ConfigurationError("AuthCore needs an authenticator")
        self.routes = RouteTable.build(
            self.authenticator,
            groups=self._groups,
            public_paths=self._public_paths,
            public_prefixes=self._public_prefixes,
        )
        app.extensions[_EXTENSION] = self
        app.before_request(self._authenticate)
        app.after_request(self._add_headers)
        app.teardown_request(self._finish)
        app.register_error_handler(AuthcoreError, self._handle_error)

    def _table(self) -> RouteTable:
        if self.routes is None:
            raise ConfigurationError("AuthCore.init_app was not called")
        return self.routes

    def _respond(self, response: HTTPResponse) -> Response:
        return Response(response.body, status=response.status, headers=list(response.headers))

    def _realm(self) -> str:
        return self._table().authenticator_for(request.path).settings.realm

    def _is_public(self, path: str) -> bool:
        if self._table().is_public(path):
            return True
        endpoint = request.endpoint
        if endpoint is None:
            # No route matched: authenticate anyway, so a 404 reveals nothing to strangers.
            return False
        from flask import current_app  # noqa: PLC0415 - only needed here, keeps import light

        return is_marked_public(current_app.view_functions.get(endpoint))

    def _authenticate(self) -> Response | None:
        state = _RequestState(request.environ, self._timer())
        setattr(g, _STATE, state)
        path = request.path
        response: Response | None = None
        if not self._is_public(path):
            authenticator = self._table().authenticator_for(path)
            realm = authenticator.settings.realm
            headers = request.headers
            facts = RequestFacts(
                method=request.method,
                authorization=headers.getlist("Authorization"),
                cookie=headers.getlist("Cookie"),
                sec_fetch_site=headers.getlist("Sec-Fetch-Site"),
                origin=headers.getlist("Origin"),
                own_origin=request_origin(request.scheme, headers.getlist("Host")),
            )
            try:
                result = authenticate_request(authenticator, facts)
            except AuthcoreError as exc:
                response = self._respond(safe_response(exc, realm, self._on_error))
            except Exception as exc:  # noqa: BLE001 - a bug here must be a safe 500
                log_unexpected(exc, "the authentication step")
                response = self._respond(safe_response(None, realm, self._on_error))
            else:
                state.principal = result.principal
                state.rate_limit = result.rate_limit
        # Always bind, so a request never logs under the previous request's workspace.
        state.token = bind_principal(state.principal)
        return response

    def _add_headers(self, response: Response) -> Response:
        state = _state()
        if state is not None:
            state.status = response.status_code
            if state.rate_limit is not None:
                for name, value in rate_limit_headers(state.rate_limit):
                    response.headers[name] = value
        return response

    def _handle_error(self, exc: AuthcoreError) -> Response:
        return self._respond(safe_response(exc, self._realm(), self._on_error))

    def _finish(self, exc: BaseException | None) -> None:
        state = _state()
        if state is None:
            return
        g.pop(_STATE, None)
        if state.token is not None:
            reset_principal(state.token)
        # after_request did not run when a view raised past every error handler.
        status = state.status or (500 if exc is not None else 200)
        duration = self._timer() - state.started_at
        report_metrics(self._metrics, status, workspace_id_for_logs(state.principal), duration)
