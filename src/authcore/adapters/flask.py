"""Flask extension: authenticate in ``before_request``, answer errors as problem documents.

``AuthCore(app, authenticator)`` (or ``init_app`` later) registers:

- a ``before_request`` hook that authenticates every request whose view is not marked
  :func:`public` and whose path is not configured public, storing the principal with this
  request only;
- an ``after_request`` hook that adds the rate-limit fields;
- an error handler that answers any :class:`~authcore.errors.AuthcoreError` a view raises with
  :func:`authcore.responses.error_response` (never the exception text);
- a ``teardown_request`` hook that unbinds the principal and reports metrics.

Views read the principal with :data:`current_principal` (Flask's idiom, like ``current_user``)
or :func:`principal_from` (``principal_from(request)``, the spelling every adapter shares) and
guard themselves with :func:`require`. On a request where the extension did not authenticate,
both raise :class:`~authcore.errors.PrincipalMissingError` (500, safe body): never anonymous.

The principal is kept in the request's own WSGI environ (not on ``flask.g``, which belongs to
the application context and may be shared by several requests), so it can never leak into
the next request.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, Final, TypeVar, cast

from authcore.adapters._common import (
    GateOptions,
    GateSource,
    is_marked_public,
    lifecycle_of,
    make_gate,
    missing_extra,
    public,
    start_with_process,
)

try:
    from flask import Flask, Request, Response, has_request_context, request
    from werkzeug.local import LocalProxy
except ImportError as exc:
    raise ImportError(
        missing_extra("authcore.adapters.flask", "Flask", "flask"), name=exc.name
    ) from exc

from typing_extensions import Unpack

from authcore.adapters.wsgi import admit_environ
from authcore.authenticator import Authenticator
from authcore.binding import bind_principal, reset_principal
from authcore.errors import AuthcoreError, ConfigurationError, PrincipalMissingError
from authcore.flow import Authenticated
from authcore.gate import Gate, RouteTable, rate_limit_fields
from authcore.permissions import Query, as_query
from authcore.principal import Principal
from authcore.responses import HTTPResponse

__all__ = [
    "AuthCore",
    "current_principal",
    "principal_from",
    "public",
    "require",
]

F = TypeVar("F", bound=Callable[..., Any])

_EXTENSION: Final = "authcore"
# A key no header can produce (WSGI names those HTTP_*).
_STATE: Final = "authcore.flask.state"


class _RequestState:
    """What the extension keeps for one request, in that request's own WSGI environ."""

    __slots__ = ("admitted", "principal", "started_at", "status", "token")

    def __init__(self, started_at: float) -> None:
        self.started_at = started_at
        self.principal: Principal | None = None
        self.admitted: Authenticated | None = None
        self.token: Any = None
        self.status = 0


def _state() -> _RequestState | None:
    if not has_request_context():
        return None
    state = request.environ.get(_STATE)
    return state if isinstance(state, _RequestState) else None


def principal_from(request: Request) -> Principal:
    """Return the principal the extension attached to ``request`` (in a view: ``flask.request``).

    Raises:
        PrincipalMissingError: the extension did not authenticate this request (500).
    """
    state = request.environ.get(_STATE)
    if not isinstance(state, _RequestState) or state.principal is None:
        raise PrincipalMissingError("route served without authcore authentication")
    return state.principal


def _current_principal() -> Principal:
    if not has_request_context():
        raise PrincipalMissingError("no request: outside a view")
    return principal_from(request)


#: The current request's principal; any use raises PrincipalMissingError when there is none.
current_principal: Principal = cast("Principal", LocalProxy(_current_principal))


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
                _current_principal().authorize(parsed)
                return await view(*args, **kwargs)

            return cast("F", async_wrapper)

        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            _current_principal().authorize(parsed)
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
        authenticator: GateSource | None = None,
        **options: Unpack[GateOptions],
    ) -> None:
        self.authenticator = authenticator
        self._options = options
        self.gate: Gate | None = None
        if app is not None:
            self.init_app(app)

    @property
    def routes(self) -> RouteTable | None:
        """The gate's route table (None before ``init_app``)."""
        return None if self.gate is None else self.gate.routes

    def init_app(self, app: Flask) -> None:
        """Register the hooks and the error handler on ``app``.

        Raises:
            ConfigurationError: no authenticator, or an invalid prefix.
        """
        if self.authenticator is None:
            raise ConfigurationError("AuthCore needs an authenticator")
        self.gate = make_gate(self.authenticator, self._options)
        start_with_process(lifecycle_of(self.authenticator))
        app.extensions[_EXTENSION] = self
        app.before_request(self._authenticate)
        app.after_request(self._add_headers)
        app.teardown_request(self._finish)
        app.register_error_handler(AuthcoreError, self._handle_error)

    def _gate(self) -> Gate:
        if self.gate is None:
            raise ConfigurationError("AuthCore.init_app was not called")
        return self.gate

    def _respond(self, response: HTTPResponse) -> Response:
        return Response(response.body, status=response.status, headers=list(response.headers))

    def _authenticator(self, gate: Gate, path: str) -> Authenticator | None:
        authenticator = gate.route(path)
        if authenticator is None:
            return None
        endpoint = request.endpoint
        if endpoint is None:
            # No route matched: authenticate anyway, so a 404 reveals nothing to strangers.
            return authenticator
        from flask import current_app  # noqa: PLC0415 - only needed here, keeps import light

        return None if is_marked_public(current_app.view_functions.get(endpoint)) else authenticator

    def _authenticate(self) -> Response | None:
        gate = self._gate()
        started_at = gate.timer() if gate.metrics is not None and gate.timer is not None else 0.0
        environ = request.environ
        state = _RequestState(started_at)
        environ[_STATE] = state
        response: Response | None = None
        authenticator = self._authenticator(gate, request.path)
        if authenticator is not None:
            outcome = admit_environ(gate, authenticator, environ)
            if isinstance(outcome, HTTPResponse):
                response = self._respond(outcome)
            else:
                state.principal, state.admitted = outcome[0], outcome
        # Always bind, so a request never logs under the previous request's workspace.
        state.token = bind_principal(state.principal)
        return response

    def _add_headers(self, response: Response) -> Response:
        state = _state()
        if state is not None:
            state.status = response.status_code
            if state.admitted is not None:
                for name, value in rate_limit_fields(state.admitted):
                    response.headers[name] = value
        return response

    def _handle_error(self, exc: AuthcoreError) -> Response:
        gate = self._gate()
        return self._respond(gate.answer(exc, gate.routes.authenticator_for(request.path)))

    def _finish(self, exc: BaseException | None) -> None:
        state = _state()
        if state is None:
            return
        request.environ.pop(_STATE, None)
        if state.token is not None:
            reset_principal(state.token)
        # after_request did not run when a view raised past every error handler.
        status = state.status or (500 if exc is not None else 200)
        self._gate().report(status, state.principal, state.started_at)
