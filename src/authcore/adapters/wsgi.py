"""WSGI middleware: authenticate and rate-limit before the app runs (PEP 3333).

The same steps as the ASGI middleware, driven synchronously: the ``Authorization`` value, the
portal cookie and the Fetch Metadata / ``Origin`` headers go to the route group's
:class:`~authcore.authenticator.Authenticator`; on success the principal is stored in the
environ under :data:`authcore.binding.PRINCIPAL_KEY` (and nowhere else) and bound to the
log/metrics context until the response is closed, and the rate-limit fields are added in
``start_response``. Any other outcome is answered with the problem document (or the
``on_error`` hook's response); a bug in the auth step is a safe 500.

WSGI servers fold repeated header fields into one value joined with ``", "`` (RFC 9110 §5.3);
``Authorization`` is not a list field and a bearer token never holds a comma, so the core
rejects such a value as malformed (400), as it rejects a repeated field under ASGI.
"""

from __future__ import annotations

import http
import sys
from collections.abc import Callable, Iterable, Iterator
from contextvars import Token
from typing import TYPE_CHECKING

from typing_extensions import Unpack

from authcore.adapters._common import (
    GateOptions,
    GateSource,
    lifecycle_of,
    make_gate,
    start_with_process,
)
from authcore.authenticator import Authenticator
from authcore.binding import PRINCIPAL_KEY, bind_principal, reset_principal
from authcore.binding import principal_from as _principal_in
from authcore.errors import AuthcoreError
from authcore.flow import Authenticated
from authcore.gate import Gate, rate_limit_fields
from authcore.principal import Principal
from authcore.responses import HTTPResponse

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["AuthMiddleware", "admit_environ", "principal_from", "status_line"]


def principal_from(environ: WSGIEnvironment) -> Principal:
    """Return the principal the middleware attached to this request's environ.

    Raises:
        PrincipalMissingError: the middleware did not authenticate this request (500).
    """
    return _principal_in(environ)


def status_line(status: int) -> str:
    """Return the WSGI status string for ``status`` (``"401 Unauthorized"``)."""
    try:
        return f"{status} {http.HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Unknown"


def _values(environ: WSGIEnvironment, key: str) -> list[str]:
    value = environ.get(key)
    return [] if value is None else [value]


def admit_environ(
    gate: Gate, authenticator: Authenticator, environ: WSGIEnvironment
) -> Authenticated | HTTPResponse:
    """Read the facts the gate needs off a WSGI ``environ`` (Flask's too) and ask it."""
    # PEP 3333: values are "native strings" decoded as latin-1, so hostile bytes reach the
    # core unchanged (one character per byte) and are rejected there.
    method: str = environ.get("REQUEST_METHOD", "GET")
    value = environ.get("HTTP_AUTHORIZATION")
    authorization = [] if value is None else [value]
    if not authenticator.reads_cookie:
        return gate.admit(authenticator, method, authorization)
    return gate.admit(
        authenticator,
        method,
        authorization,
        _values(environ, "HTTP_COOKIE"),
        _values(environ, "HTTP_SEC_FETCH_SITE"),
        _values(environ, "HTTP_ORIGIN"),
        environ.get("wsgi.url_scheme", "http"),
        _values(environ, "HTTP_HOST"),
    )


class _Exchange:
    """One request in flight: what ``start_response`` has seen, and its clean-up."""

    __slots__ = (
        "closed",
        "extra_headers",
        "gate",
        "principal",
        "start_response",
        "started",
        "started_at",
        "status",
        "status_line",
        "token",
    )

    def __init__(
        self,
        start_response: StartResponse,
        gate: Gate,
        principal: Principal | None,
        extra_headers: list[tuple[str, str]],
        started_at: float,
    ) -> None:
        self.start_response = start_response
        self.gate = gate
        self.principal = principal
        self.extra_headers = extra_headers
        self.started_at = started_at
        self.started = False
        self.closed = False
        self.status = 0
        self.status_line = ""
        self.token: Token[Principal | None] | None = None

    def tracked_start_response(
        self,
        status: str,
        headers: list[tuple[str, str]],
        exc_info: OptExcInfo | None = None,
    ) -> Callable[[bytes], object]:
        self.started = True
        self.status_line = status  # read by finish(), only when there are metrics
        if self.extra_headers:
            headers = [*headers, *self.extra_headers]
        return self.start_response(status, headers, exc_info)

    def deny(self, response: HTTPResponse) -> list[bytes]:
        """Answer with ``response``; replaces a started-but-unsent response (PEP 3333)."""
        exc_info = sys.exc_info() if self.started else None
        self.tracked_start_response(status_line(response.status), list(response.headers), exc_info)
        self.status = response.status
        return [response.body]

    def finish(self) -> None:
        """Unbind the principal and report metrics, once."""
        if self.closed:
            return
        self.closed = True
        if self.token is not None:
            try:
                reset_principal(self.token)
            except ValueError:
                # close() ran in another context than the call (an unusual server): unbind
                # there instead, so nothing logs under this request's workspace.
                bind_principal(None)
        if self.gate.metrics is not None:
            self.gate.report(self._status(), self.principal, self.started_at)

    def _status(self) -> int:
        if self.status:  # deny() set it
            return self.status
        code = self.status_line[:3]
        return int(code) if code.isdigit() else 500


class _ClosingBody:
    """The app's body, with our clean-up run after the server closes it."""

    __slots__ = ("_body", "_exchange")

    def __init__(self, body: Iterable[bytes], exchange: _Exchange) -> None:
        self._body = body
        self._exchange = exchange

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._body)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._exchange.finish()


class AuthMiddleware:
    """Authenticate every request before the WSGI ``app`` sees it.

    Options as for :class:`authcore.adapters.asgi.AuthMiddleware`; ``is_public(environ)`` may
    mark more requests public. WSGI has no lifespan: an :class:`authcore.backends.Auth` is
    started here and closed when the process exits (``atexit``).

    Raises:
        ConfigurationError: an invalid prefix or authenticator (at construction).
    """

    def __init__(
        self,
        app: WSGIApplication,
        authenticator: GateSource,
        *,
        is_public: Callable[[WSGIEnvironment], bool] | None = None,
        **options: Unpack[GateOptions],
    ) -> None:
        self.app = app
        self.gate = make_gate(authenticator, options)
        self._is_public = is_public
        start_with_process(lifecycle_of(authenticator))

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Run one request."""
        gate = self.gate
        started_at = gate.timer() if gate.metrics is not None and gate.timer is not None else 0.0
        authenticator = gate.route(environ.get("PATH_INFO", ""))
        if authenticator is not None and self._is_public is not None and self._is_public(environ):
            authenticator = None
        principal: Principal | None = None
        extra: list[tuple[str, str]] = []
        if authenticator is not None:
            if authenticator.reads_cookie:
                outcome = admit_environ(gate, authenticator, environ)
            else:
                # admit_environ's first branch, inline: the API's hot path.
                value = environ.get("HTTP_AUTHORIZATION")
                outcome = gate.admit(authenticator, "", () if value is None else (value,))
            if isinstance(outcome, HTTPResponse):
                refusal = _Exchange(start_response, gate, None, extra, started_at)
                answer = refusal.deny(outcome)
                refusal.finish()
                return answer
            principal = outcome[0]
            environ[PRINCIPAL_KEY] = principal
            if outcome[1] is not None:
                extra = rate_limit_fields(outcome)
        exchange = _Exchange(start_response, gate, principal, extra, started_at)
        # Always bind, so a request never logs under the previous request's workspace.
        exchange.token = bind_principal(principal)
        try:
            body = self.app(environ, exchange.tracked_start_response)
        except AuthcoreError as exc:
            # A handler's authorize() or principal_from(): answer it like the auth step.
            body = exchange.deny(gate.answer(exc, authenticator))
        except BaseException:
            exchange.finish()
            raise
        if type(body) is list:
            # A body already in memory runs no code of the app's while the server sends it:
            # nothing can log under the principal any more, so unbind now and skip the wrapper.
            exchange.finish()
            return body
        return _ClosingBody(body, exchange)
