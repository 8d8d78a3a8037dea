"""Django REST framework: an authentication class and a permission factory.

Both read the principal :class:`~authcore.adapters.django.AuthcoreMiddleware` attached to the
request; neither authenticates anything itself (one gate per request, in the middleware)::

    REST_FRAMEWORK = {
        "DEFAULT_AUTHENTICATION_CLASSES": ["authcore.adapters.drf.AuthcoreAuthentication"],
        # authcore has no Django users: without contrib.auth, anonymous is None.
        "UNAUTHENTICATED_USER": None,
    }

    class KeyList(APIView):
        permission_classes = [HasPermission("keys.read AND keys.create")]

- :class:`AuthcoreAuthentication` gives DRF the principal as ``request.auth`` (and a
  :class:`PrincipalUser` as ``request.user``, which DRF's ``IsAuthenticated`` understands). Its
  ``authenticate_header`` is the Bearer challenge of the route group's realm, so a DRF view
  reached without a principal (a path configured public, a view marked ``public``) answers 401
  with ``WWW-Authenticate``, not 403.
- :func:`HasPermission` returns a permission class for a query in authcore's grammar (parsed
  once, when the class is made). A principal that lacks the permission raises
  :class:`~authcore.errors.PermissionDeniedError`, which the middleware answers with the same
  403 problem document (``error="insufficient_scope"``) as every other adapter; no principal
  is :class:`~authcore.errors.MissingCredentialError`, the same 401 problem document with the
  route group's Bearer challenge. Combine permissions in the query (``AND``/``OR``), not with
  DRF's ``|`` or ``~``, which cannot see past a raised denial.
- :func:`exception_handler` (``REST_FRAMEWORK["EXCEPTION_HANDLER"]``) answers the auth errors
  DRF raises itself (``NotAuthenticated`` from ``IsAuthenticated``, ``AuthenticationFailed``,
  ``PermissionDenied``) with authcore's problem documents too, so a DRF view answers 401 and
  403 exactly as every other adapter does; anything else is DRF's own answer.
"""

from __future__ import annotations

from authcore.adapters._common import missing_extra

try:
    import rest_framework  # noqa: F401 - the import guard: the clear error comes from here
except ImportError as exc:
    raise ImportError(
        missing_extra("authcore.adapters.drf", "Django REST framework", "drf"), name=exc.name
    ) from exc

from typing import TYPE_CHECKING, Any, ClassVar, Final

import attrs
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import HttpResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from authcore.adapters.django import configured_gate, to_response
from authcore.binding import PRINCIPAL_KEY
from authcore.errors import (
    AuthcoreError,
    InvalidCredentialError,
    MissingCredentialError,
    PermissionDeniedError,
)
from authcore.permissions import Query, as_query
from authcore.principal import Principal
from authcore.responses import error_response

if TYPE_CHECKING:
    # Annotation only: rest_framework.views imports the authentication classes named in the
    # settings (this module) while it is being made.
    from rest_framework.views import APIView

__all__ = ["AuthcoreAuthentication", "HasPermission", "PrincipalUser", "exception_handler"]

_CHALLENGE: Final = "www-authenticate"


def _principal(request: Request) -> Principal | None:
    # The middleware's one place; DRF's Request reads META through to Django's request.
    principal = request.META.get(PRINCIPAL_KEY)
    return principal if isinstance(principal, Principal) else None


@attrs.frozen
class PrincipalUser:
    """What DRF sees as ``request.user`` for an authenticated request: the principal, with
    the two flags DRF's permissions and throttles ask a user for."""

    principal: Principal
    is_authenticated: ClassVar[bool] = True
    is_anonymous: ClassVar[bool] = False

    def __str__(self) -> str:
        subject = self.principal.subject
        return f"{subject.type}:{subject.id}"


class AuthcoreAuthentication(BaseAuthentication):
    """DRF authentication that returns the middleware's principal (see the module docstring)."""

    def authenticate(self, request: Request) -> tuple[PrincipalUser, Principal] | None:
        """Return ``(PrincipalUser, Principal)``, or None when the middleware attached none."""
        principal = _principal(request)
        return None if principal is None else (PrincipalUser(principal), principal)

    def authenticate_header(self, request: Request) -> str:
        """The Bearer challenge of the request's route group (RFC 6750 §3), for DRF's 401.

        Raises:
            ConfigurationError: ``settings.AUTHCORE`` is missing or invalid.
        """
        gate = configured_gate()
        realm = gate.routes.authenticator_for(request.path_info).settings.realm
        headers = dict(error_response(MissingCredentialError(), realm=realm).headers)
        return headers[_CHALLENGE]


def HasPermission(query: Query | str) -> type[BasePermission]:  # noqa: N802 - used as a class
    """Return a DRF permission class that admits a principal satisfying ``query``.

    Raises:
        InvalidPermissionError: ``query`` breaks the grammar (at once, so a typo fails at
            import time).
    """
    parsed = as_query(query)

    class _HasPermission(BasePermission):
        #: The parsed query this class checks.
        query: ClassVar[Query] = parsed

        def has_permission(self, request: Request, view: APIView) -> bool:
            principal = _principal(request)
            if principal is None:
                # Nobody authenticated (a public path or view): the middleware's 401 problem
                # document, as on every adapter, with or without exception_handler.
                raise MissingCredentialError
            principal.authorize(parsed)  # PermissionDeniedError: the middleware's 403
            return True

        def __repr__(self) -> str:
            return f"HasPermission({str(parsed)!r})"

    _HasPermission.__name__ = _HasPermission.__qualname__ = "HasPermission"
    return _HasPermission


def _authcore_error(exc: Exception) -> AuthcoreError | None:
    """The authcore error a DRF (or Django) auth exception stands for, if it is one."""
    if isinstance(exc, AuthcoreError):
        return exc
    if isinstance(exc, drf_exceptions.NotAuthenticated):
        return MissingCredentialError()
    if isinstance(exc, drf_exceptions.AuthenticationFailed):
        return InvalidCredentialError()
    if isinstance(exc, (drf_exceptions.PermissionDenied, DjangoPermissionDenied)):
        return PermissionDeniedError()
    return None


def exception_handler(exc: Exception, context: dict[str, Any]) -> HttpResponse | None:
    """DRF's ``EXCEPTION_HANDLER``: auth errors as authcore's problem documents.

    ``NotAuthenticated`` is the 401 with the route group's Bearer challenge,
    ``AuthenticationFailed`` the 401 ``invalid_token``, ``PermissionDenied`` (DRF's or
    Django's) the 403 ``permission_denied``, an ``AuthcoreError`` its own answer; their text
    never reaches the client. Everything else goes to DRF's default handler.

    Raises:
        ConfigurationError: ``settings.AUTHCORE`` is missing or invalid.
    """
    error = _authcore_error(exc)
    if error is None:
        # Imported here: rest_framework.views reads Django's settings as it is imported, and
        # this module must import without them (a wheel's import check, a settings module).
        from rest_framework import views as drf_views  # noqa: PLC0415 - see above

        response: HttpResponse | None = drf_views.exception_handler(exc, context)
        return response
    request = context.get("request")
    path = request.path_info if request is not None else "/"
    gate = configured_gate()
    return to_response(gate.answer(error, gate.routes.authenticator_for(path)))
