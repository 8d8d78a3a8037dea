"""WSGI middleware: authenticate and rate-limit before the app runs (PEP 3333).

The same steps as the ASGI middleware, driven synchronously: the ``Authorization`` value, the
portal cookie and the Fetch Metadata / ``Origin`` headers go to the route group's
:class:`~authcore.flow.Authenticator`; on success the principal is stored in the environ under
:data:`authcore.session.PRINCIPAL_KEY` (and nowhere else) and bound to the log/metrics
context until the response is closed, and the ``RateLimit-*`` headers are added in
``start_response``. Any other outcome is answered with the problem document (or the
``on_error`` hook's response); a bug in the auth step is a safe 500.

WSGI servers fold repeated header fields into one value joined with ``", "`` (RFC 9110 §5.3);
``Authorization`` is not a list field and a bearer token never holds a comma, so the core
rejects such a value as malformed (400), as it rejects a repeated field under ASGI.
"""

from __future__ import annotations

import http
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import Token
from typing import TYPE_CHECKING

from authcore.adapters._common import (
    ErrorHook,
    RequestFacts,
    RouteTable,
    authenticate_request,
    log_unexpected,
    report_metrics,
    safe_response,
)
from authcore.adapters.logging import RequestMetrics
from authcore.credentials import request_origin
from authcore.errors import AuthcoreError
from authcore.flow import Authenticator
from authcore.principal import Principal
from authcore.responses import HTTPResponse, rate_limit_headers
from authcore.session import (
    attach_principal,
    bind_principal,
    reset_principal,
    workspace_id_for_logs,
)

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["AuthMiddleware", "status_line"]


def status_line(status: int) -> str:
    """Return the WSGI status string for ``status`` (``"401 Unauthorized"``)."""
    try:
        return f"{status} {http.HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Unknown"


def _header(environ: WSGIEnvironment, key: str) -> list[str]:
    value = environ.get(key)
    return [] if value is None else [value]


def _facts(environ: WSGIEnvironment) -> RequestFacts:
    # PEP 3333: values are "native strings" decoded as latin-1, so hostile bytes reach the
    # core unchanged (one character per byte) and are rejected there.
    return RequestFacts(
        method=environ.get("REQUEST_METHOD", "GET"),
        authorization=_header(environ, "HTTP_AUTHORIZATION"),
        cookie=_header(environ, "HTTP_COOKIE"),
        sec_fetch_site=_header(environ, "HTTP_SEC_FETCH_SITE"),
        origin=_header(environ, "HTTP_ORIGIN"),
        own_origin=request_origin(
            environ.get("wsgi.url_scheme", "http"), _header(environ, "HTTP_HOST")
        ),
    )


class _Exchange:
    """One request in flight: what ``start_response`` has seen, and its clean-up."""

    __slots__ = (
        "closed",
        "extra_headers",
        "metrics",
        "principal",
        "start_response",
        "started",
        "started_at",
        "status",
        "timer",
        "token",
    )

    def __init__(
        self,
        start_response: StartResponse,
        timer: Callable[[], float],
        metrics: RequestMetrics | None,
    ) -> None:
        self.start_response = start_response
        self.timer = timer
        self.started_at = timer()
        self.metrics = metrics
        self.started = False
        self.closed = False
        self.status = 0
        self.principal: Principal | None = None
        self.token: Token[Principal | None] | None = None
        self.extra_headers: list[tuple[str, str]] = []

    def tracked_start_response(
        self,
        status: str,
        headers: list[tuple[str, str]],
        exc_info: OptExcInfo | None = None,
    ) -> Callable[[bytes], object]:
        self.started = True
        self.status = int(status[:3]) if status[:3].isdigit() else 500
        return self.start_response(status, [*headers, *self.extra_headers], exc_info)

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
        duration = self.timer() - self.started_at
        report_metrics(
            self.metrics, self.status or 500, workspace_id_for_logs(self.principal), duration
        )


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
    mark more requests public.

    Raises:
        ConfigurationError: an invalid prefix or authenticator (at construction).
    """

    def __init__(
        self,
        app: WSGIApplication,
        authenticator: Authenticator,
        *,
        groups: Mapping[str, Authenticator] | None = None,
        public_paths: Iterable[str] = (),
        public_prefixes: Iterable[str] = (),
        is_public: Callable[[WSGIEnvironment], bool] | None = None,
        on_error: ErrorHook | None = None,
        metrics: RequestMetrics | None = None,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.app = app
        self.routes = RouteTable.build(
            authenticator,
            groups=groups,
            public_paths=public_paths,
            public_prefixes=public_prefixes,
        )
        self._is_public = is_public
        self._on_error = on_error
        self._metrics = metrics
        self._timer = timer

    def _public(self, environ: WSGIEnvironment, path: str) -> bool:
        if self.routes.is_public(path):
            return True
        return self._is_public is not None and self._is_public(environ)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Run one request."""
        exchange = _Exchange(start_response, self._timer, self._metrics)
        path: str = environ.get("PATH_INFO", "")
        authenticator = self.routes.authenticator_for(path)
        realm = authenticator.settings.realm
        if not self._public(environ, path):
            try:
                result = authenticate_request(authenticator, _facts(environ))
            except AuthcoreError as exc:
                return self._finish_now(exchange, safe_response(exc, realm, self._on_error))
            except Exception as exc:  # noqa: BLE001 - a bug here must be a safe 500
                log_unexpected(exc, "the authentication step")
                return self._finish_now(exchange, safe_response(None, realm, self._on_error))
            exchange.principal = result.principal
            attach_principal(environ, result.principal)
            if result.rate_limit is not None:
                exchange.extra_headers = rate_limit_headers(result.rate_limit)
        # Always bind, so a request never logs under the previous request's workspace.
        exchange.token = bind_principal(exchange.principal)
        try:
            body = self.app(environ, exchange.tracked_start_response)
        except AuthcoreError as exc:
            # A handler's authorize() or principal_from(): answer it like the auth step.
            body = exchange.deny(safe_response(exc, realm, self._on_error))
        except BaseException:
            exchange.finish()
            raise
        return _ClosingBody(body, exchange)

    def _finish_now(self, exchange: _Exchange, response: HTTPResponse) -> list[bytes]:
        body = exchange.deny(response)
        exchange.finish()
        return body
