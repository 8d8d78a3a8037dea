"""Step 4: attach the principal to the request, bind it to the context, read it back fail-closed.

The session stores only the principal, under :data:`PRINCIPAL_KEY`, in whatever per-request
mapping the framework offers (ASGI ``scope``, WSGI ``environ``). There is no separate
workspace id anywhere: request metadata reads it from the principal.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from contextvars import ContextVar, Token
from typing import Final

from authcore.errors import PrincipalMissingError
from authcore.principal import Principal

__all__ = [
    "PRINCIPAL_KEY",
    "attach_principal",
    "bind_principal",
    "bound_principal",
    "principal_from",
    "reset_principal",
    "workspace_id_for_logs",
]

PRINCIPAL_KEY: Final = "authcore.principal"

# The principal of the request being handled in this context (thread or task), for log
# filters and metrics hooks. Adapters bind it for the duration of a request and reset it after.
_current: ContextVar[Principal | None] = ContextVar("authcore_principal", default=None)


def attach_principal(state: MutableMapping[str, object], principal: Principal) -> None:
    """Store the principal in the per-request mapping."""
    state[PRINCIPAL_KEY] = principal


def principal_from(state: Mapping[str, object]) -> Principal:
    """Return the principal the middleware attached.

    Raises:
        PrincipalMissingError: the middleware never ran for this request (a 500 with a safe
            body: a route registered without authentication fails closed, never anonymous).
    """
    principal = state.get(PRINCIPAL_KEY)
    if not isinstance(principal, Principal):
        raise PrincipalMissingError("route registered without the auth middleware")
    return principal


#: ``bind_principal(principal)`` makes ``principal`` the current one for log records and
#: metrics and returns a reset token; ``reset_principal(token)`` undoes it. They are the
#: context variable's own methods: adapters call them on every request.
bind_principal: Final[Callable[[Principal | None], Token[Principal | None]]] = _current.set
reset_principal: Final[Callable[[Token[Principal | None]], None]] = _current.reset


def bound_principal() -> Principal | None:
    """Return the principal bound to the current context (for logs and metrics), if any.

    Not for handlers: they read their request's principal with :func:`principal_from` (or the
    adapter's), which fails closed instead of answering None.
    """
    return _current.get()


def workspace_id_for_logs(principal: Principal | None = None) -> str:
    """Return the workspace id for request metadata: the principal's, or ``""`` without one."""
    if principal is None:
        principal = _current.get()
    return "" if principal is None else principal.workspace_id
