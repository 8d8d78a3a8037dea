"""Django middleware: the request gate in front of every view, sync or async.

Add :class:`AuthcoreMiddleware` to ``MIDDLEWARE`` and say which gate it runs in
``settings.AUTHCORE``::

    AUTHCORE = {
        # A Gate, an Authenticator or an Auth, a callable returning one, or the dotted path of
        # either: "authcore.backends.connect" wires everything from AUTHCORE_DB and friends.
        "GATE": "myproject.auth.build_gate",
        # Beside an Authenticator or an Auth: the keyword options every adapter takes.
        "OPTIONS": {"public_paths": ["/health"]},
    }

Per request, in the mode Django's handler runs it (WSGI: sync; ASGI: async, with no thread hop
for the auth step), as Django documents for middleware that supports both:

- a path configured public, or whose view is marked :func:`public`, skips authentication (a
  path no view matches is authenticated, so a 404 tells strangers nothing);
- otherwise the gate reads the method, ``HTTP_AUTHORIZATION`` and, on a route group that takes
  the portal cookie, ``HTTP_COOKIE``, ``HTTP_SEC_FETCH_SITE``, ``HTTP_ORIGIN``, ``HTTP_HOST``
  from ``request.META`` and ``request.scheme`` (which honours ``SECURE_PROXY_SSL_HEADER``). A
  refusal is answered with the gate's problem document; the view never runs;
- the principal is stored in ``request.META`` under :data:`authcore.binding.PRINCIPAL_KEY`, and
  only there (:func:`principal_from` reads it back, failing closed), and bound for log records
  while the view runs;
- the rate-limit fields are added to the view's response, and the metrics hook is called;
- an :class:`~authcore.errors.AuthcoreError` a view raises (``principal.authorize``,
  :func:`principal_from` on a route the gate did not cover) is answered in ``process_exception``
  with its problem document, never its text.

The view is found with Django's resolver for ``request.urlconf`` (or ``ROOT_URLCONF``), so put
the middleware after any middleware that sets ``request.urlconf``. The DRF classes are in
:mod:`authcore.adapters.drf`.
"""

from __future__ import annotations

from authcore.adapters._common import missing_extra

try:
    import django  # noqa: F401 - the import guard: the clear error comes from here
except ImportError as exc:
    raise ImportError(
        missing_extra("authcore.adapters.django", "Django", "django"), name=exc.name
    ) from exc

import functools
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, TypeVar, cast

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.core.signals import setting_changed
from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.urls import get_resolver
from django.utils.module_loading import import_string

from authcore import binding
from authcore.adapters._common import (
    GateOptions,
    is_marked_public,
    lifecycle_of,
    make_gate,
    public,
    start_with_process,
)
from authcore.authenticator import Authenticator
from authcore.binding import PRINCIPAL_KEY, bind_principal, reset_principal
from authcore.errors import AuthcoreError, ConfigurationError
from authcore.flow import Authenticated
from authcore.gate import Gate, RouteGroups, rate_limit_fields
from authcore.permissions import Query, as_query
from authcore.principal import Principal
from authcore.responses import HTTPResponse

__all__ = [
    "AuthcoreMiddleware",
    "configured_gate",
    "gate_from_settings",
    "principal_from",
    "public",
    "require",
    "to_response",
]

F = TypeVar("F", bound=Callable[..., Any])

GetResponse = Callable[[HttpRequest], HttpResponseBase | Awaitable[HttpResponseBase]]

#: How many (resolver, path) answers the middleware remembers for the ``public`` marker.
PUBLIC_MEMO_SIZE: Final = 4096

_SETTING: Final = "AUTHCORE"
_KEYS: Final = frozenset({"GATE", "OPTIONS"})


def principal_from(request: HttpRequest) -> Principal:
    """Return the principal the middleware attached to ``request``.

    Raises:
        PrincipalMissingError: the middleware did not authenticate this request (500).
    """
    return binding.principal_from(request.META)


def require(query: Query | str) -> Callable[[F], F]:
    """Decorate a function view (sync or async) so it runs only if the principal satisfies
    ``query``; otherwise :class:`~authcore.errors.PermissionDeniedError` (403).

    Raises:
        InvalidPermissionError: ``query`` breaks the grammar (at decoration time).
    """
    parsed = as_query(query)

    def decorate(view: F) -> F:
        if iscoroutinefunction(view):

            @functools.wraps(view)
            async def async_wrapper(request: HttpRequest, /, *args: Any, **kwargs: Any) -> Any:
                principal_from(request).authorize(parsed)
                return await view(request, *args, **kwargs)

            return cast("F", async_wrapper)

        @functools.wraps(view)
        def wrapper(request: HttpRequest, /, *args: Any, **kwargs: Any) -> Any:
            principal_from(request).authorize(parsed)
            return view(request, *args, **kwargs)

        return cast("F", wrapper)

    return decorate


def to_response(response: HTTPResponse) -> HttpResponse:
    """Turn a framework-neutral response into a Django one."""
    answer = HttpResponse(response.body, status=response.status)
    for name, value in response.headers:
        answer[name] = value
    return answer


# --- settings -----------------------------------------------------------------------------


def gate_from_settings(config: object) -> Gate:
    """Build the gate ``settings.AUTHCORE`` describes (see the module docstring).

    Raises:
        ConfigurationError: a missing or malformed setting, a dotted path that does not
            import, an unknown option, or what :func:`~authcore.adapters._common.make_gate`
            rejects.
    """
    if not isinstance(config, Mapping) or "GATE" not in config:
        raise ConfigurationError("settings.AUTHCORE must be a dict with a 'GATE' entry")
    unknown = sorted(set(config) - _KEYS)
    if unknown:
        raise ConfigurationError(f"unknown settings.AUTHCORE keys: {unknown}")
    target = config["GATE"]
    if isinstance(target, str):
        try:
            target = import_string(target)
        except ImportError:
            raise ConfigurationError(f"AUTHCORE['GATE'] {target!r} does not import") from None
    if not isinstance(target, Gate | Authenticator | RouteGroups) and callable(target):
        target = target()
    options = config.get("OPTIONS") or {}
    if not isinstance(options, Mapping):
        raise ConfigurationError("settings.AUTHCORE['OPTIONS'] must be a dict")
    unknown = sorted(set(options) - GateOptions.__optional_keys__)
    if unknown:
        raise ConfigurationError(f"unknown settings.AUTHCORE['OPTIONS'] keys: {unknown}")
    gate = make_gate(target, cast("GateOptions", dict(options)))
    # An Auth from connect(): Django has no lifespan, so start it now, close it at exit.
    start_with_process(lifecycle_of(target))
    return gate


# One gate per settings.AUTHCORE: the middleware and the DRF classes share it, and a factory
# (which may open a connection pool) runs once. A change of the setting (override_settings in
# tests) forgets it.
_gate_lock = threading.Lock()
_gates: dict[str, Gate] = {}


def configured_gate() -> Gate:
    """Return the gate of ``settings.AUTHCORE``, built once.

    Raises:
        ConfigurationError: as :func:`gate_from_settings`.
    """
    gate = _gates.get(_SETTING)
    if gate is None:
        with _gate_lock:
            gate = _gates.get(_SETTING)
            if gate is None:
                gate = _gates[_SETTING] = gate_from_settings(getattr(settings, _SETTING, None))
    return gate


def _forget_gate(*, setting: str, **_: object) -> None:
    if setting == _SETTING:
        with _gate_lock:
            _gates.clear()


setting_changed.connect(_forget_gate, dispatch_uid="authcore.adapters.django")


# --- the middleware -------------------------------------------------------------------------


def _values(meta: Mapping[str, Any], key: str) -> list[str]:
    value = meta.get(key)
    return [] if value is None else [value]


def _admit(
    gate: Gate, authenticator: Authenticator, request: HttpRequest
) -> Authenticated | HTTPResponse:
    """Read the facts the gate needs off ``request.META`` and ask it (sync)."""
    # WSGI: META is the environ (latin-1 "native strings"); ASGI: Django decodes latin-1 and
    # joins a repeated field with ",", which the core rejects as malformed, as under WSGI.
    meta = request.META
    authorization = _values(meta, "HTTP_AUTHORIZATION")
    if not authenticator.reads_cookie:
        return gate.admit(authenticator, request.method or "GET", authorization)
    return gate.admit(authenticator, *_cookie_facts(request, authorization))


async def _aadmit(
    gate: Gate, authenticator: Authenticator, request: HttpRequest
) -> Authenticated | HTTPResponse:
    """Asynchronous twin of :func:`_admit`; a replay with an in-process limiter never awaits."""
    authorization = _values(request.META, "HTTP_AUTHORIZATION")
    if not authenticator.reads_cookie:
        outcome = gate.admit_inline(authenticator, authorization)
        if outcome is not None:
            return outcome
        return await gate.aadmit(authenticator, request.method or "GET", authorization)
    return await gate.aadmit(authenticator, *_cookie_facts(request, authorization))


def _cookie_facts(
    request: HttpRequest, authorization: list[str]
) -> tuple[str, list[str], list[str], list[str], list[str], str, list[str]]:
    meta = request.META
    cookie = meta.get("HTTP_COOKIE")
    return (
        request.method or "GET",
        authorization,
        # Django's test clients send an empty Cookie field; a browser never does.
        [cookie] if cookie else [],
        _values(meta, "HTTP_SEC_FETCH_SITE"),
        _values(meta, "HTTP_ORIGIN"),
        request.scheme or "http",
        _values(meta, "HTTP_HOST"),
    )


def _view_is_public(view: object) -> bool:
    # Class-based views: Django's as_view() keeps the class as view_class, DRF's as cls.
    return (
        is_marked_public(view)
        or is_marked_public(getattr(view, "view_class", None))
        or is_marked_public(getattr(view, "cls", None))
    )


class AuthcoreMiddleware:
    """Run the request gate before every view (see the module docstring).

    Raises:
        ConfigurationError: ``settings.AUTHCORE`` is missing or invalid (when Django loads
            the middleware).
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response
        self.gate = configured_gate()
        self._public: dict[tuple[object, str], bool] = {}
        # As Django's MiddlewareMixin: async when the rest of the chain is, so an ASGI request
        # never holds a thread for the auth step.
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        """Run one request (returns a coroutine in async mode)."""
        if self.async_mode:
            return self.__acall__(request)
        gate = self.gate
        started_at = gate.timer() if gate.metrics is not None and gate.timer is not None else 0.0
        authenticator = self._authenticator(request)
        principal: Principal | None = None
        admitted: Authenticated | None = None
        if authenticator is not None:
            outcome = _admit(gate, authenticator, request)
            if isinstance(outcome, HTTPResponse):
                return self._refuse(outcome, started_at)
            principal, admitted = outcome[0], outcome
            request.META[PRINCIPAL_KEY] = principal
        # Always bind, so a request never logs under the previous request's workspace.
        token = bind_principal(principal)
        try:
            response = cast("HttpResponseBase", self.get_response(request))
        finally:
            reset_principal(token)
        return self._finish(response, principal, admitted, started_at)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        """Asynchronous twin of :meth:`__call__`, used when the chain is async."""
        gate = self.gate
        started_at = gate.timer() if gate.metrics is not None and gate.timer is not None else 0.0
        authenticator = self._authenticator(request)
        principal: Principal | None = None
        admitted: Authenticated | None = None
        if authenticator is not None:
            outcome = await _aadmit(gate, authenticator, request)
            if isinstance(outcome, HTTPResponse):
                return self._refuse(outcome, started_at)
            principal, admitted = outcome[0], outcome
            request.META[PRINCIPAL_KEY] = principal
        token = bind_principal(principal)
        try:
            response = await cast("Awaitable[HttpResponseBase]", self.get_response(request))
        finally:
            reset_principal(token)
        return self._finish(response, principal, admitted, started_at)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        """Answer an :class:`~authcore.errors.AuthcoreError` a view raised; leave the rest."""
        if not isinstance(exception, AuthcoreError):
            return None
        gate = self.gate
        return to_response(gate.answer(exception, gate.routes.authenticator_for(request.path_info)))

    def _authenticator(self, request: HttpRequest) -> Authenticator | None:
        path = request.path_info
        authenticator = self.gate.route(path)
        if authenticator is None or not self._marked_public(request, path):
            return authenticator
        return None

    def _marked_public(self, request: HttpRequest, path: str) -> bool:
        # The resolver object is Django's cached one for this urlconf: a changed urlconf (or
        # clear_url_caches) gives a new one, so old answers are never reused for it.
        resolver = get_resolver(getattr(request, "urlconf", None))
        key = (resolver, path)
        answer = self._public.get(key)
        if answer is None:
            try:
                answer = _view_is_public(resolver.resolve(path).func)
            except Http404:
                answer = False  # no view: authenticate, so a 404 tells strangers nothing
            if len(self._public) >= PUBLIC_MEMO_SIZE:
                self._public.clear()
            self._public[key] = answer
        return answer

    def _refuse(self, outcome: HTTPResponse, started_at: float) -> HttpResponse:
        gate = self.gate
        if gate.metrics is not None:
            gate.report(outcome.status, None, started_at)
        return to_response(outcome)

    def _finish(
        self,
        response: HttpResponseBase,
        principal: Principal | None,
        admitted: Authenticated | None,
        started_at: float,
    ) -> HttpResponseBase:
        if admitted is not None:
            for name, value in rate_limit_fields(admitted):
                response[name] = value
        gate = self.gate
        if gate.metrics is not None:
            gate.report(response.status_code, principal, started_at)
        return response
