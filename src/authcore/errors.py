"""authcore's one exception root and its branches.

Every public entry point raises only these. Each class carries its HTTP status, its RFC 6750
error code (or ``None`` where the RFC wants no error attribute), a stable machine-readable
``code`` and a fixed public ``message``. The public message never depends on the input, so a
response built from an error is never an oracle and never echoes a secret.

::

    AuthcoreError
    ├── ClientError                         the caller is at fault (4xx)
    │   ├── MissingCredentialError          401, no error attribute
    │   │   └── UnsupportedSchemeError      401, e.g. Basic or Token instead of Bearer
    │   ├── MalformedCredentialError        400 invalid_request
    │   │   ├── DuplicateCredentialError    400 invalid_request (two headers, header + cookie)
    │   │   └── CredentialTooLargeError     400 invalid_request (rejected before decoding)
    │   ├── InvalidCredentialError          401 invalid_token (unknown, wrong, expired, revoked)
    │   ├── PermissionDeniedError           403 insufficient_scope
    │   ├── WorkspaceDisabledError          403
    │   ├── RateLimitedError                429 (carries the limiter's decision)
    │   ├── InvalidPermissionError          400 (a permission or query that breaks the grammar)
    │   ├── ConflictError                   409 (an org id or user id that is already taken)
    │   └── CrossSiteRequestError           403 (a state-changing cookie request from elsewhere)
    ├── UnavailableError                    503, a backing system (store, limiter) is down
    └── ServerError                         500, the server is misconfigured
        ├── PrincipalMissingError           500, route registered without the middleware
        └── ConfigurationError              500, invalid configuration (raised at start-up)

``detail`` is for developers only: it may say *why* (``"revoked"``), is never put in a response
and never holds a secret. ``rank`` orders errors when a resolver chain must report one of
several: "unavailable" outranks "forbidden", which outranks "unauthenticated", so a 503 is
never masked as a 401.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Self

if TYPE_CHECKING:
    from authcore.ratelimit import RateLimitDecision

__all__ = [
    "AuthcoreError",
    "ClientError",
    "ConfigurationError",
    "ConflictError",
    "CredentialTooLargeError",
    "CrossSiteRequestError",
    "DuplicateCredentialError",
    "InvalidCredentialError",
    "InvalidPermissionError",
    "MalformedCredentialError",
    "MissingCredentialError",
    "PermissionDeniedError",
    "PrincipalMissingError",
    "RateLimitedError",
    "ServerError",
    "UnavailableError",
    "UnsupportedSchemeError",
    "WorkspaceDisabledError",
]


class AuthcoreError(Exception):
    """Root of every error authcore raises on purpose."""

    status: ClassVar[int] = 500
    #: RFC 6750 §3.1 error code for the ``WWW-Authenticate`` challenge, or None.
    bearer_error: ClassVar[str | None] = None
    code: ClassVar[str] = "internal_error"
    message: ClassVar[str] = "The server could not complete the request."
    #: Higher wins when several sources each reject (see module docstring).
    rank: ClassVar[int] = 0
    #: Whose request was refused, once the credential was verified (a disabled workspace, a
    #: rate limit, a limiter outage): ids only, for usage counts. None before verification.
    workspace_id: str | None = None
    credential_id: str | None = None

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail
        super().__init__(self.message if detail is None else f"{self.message} ({detail})")

    def refused(self, workspace_id: str, credential_id: str | None) -> Self:
        """Name whose verified request this refuses (ids only); return the error itself."""
        self.workspace_id = workspace_id
        self.credential_id = credential_id
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}(detail={self.detail!r})"


class ClientError(AuthcoreError):
    """The request is at fault; the status is in the 4xx range."""

    status = 400
    code = "bad_request"
    message = "The request is invalid."
    rank = 10


class MissingCredentialError(ClientError):
    """No credential on the request (RFC 6750 §3.1: the challenge has no error code)."""

    status = 401
    code = "credential_missing"
    message = "Authentication is required."
    rank = 10


class UnsupportedSchemeError(MissingCredentialError):
    """An ``Authorization`` scheme other than Bearer: answered like a missing credential."""

    code = "unsupported_scheme"
    message = "Authentication is required: use the Bearer scheme."


class MalformedCredentialError(ClientError):
    """The credential cannot be parsed (RFC 6750 §3.1 ``invalid_request``)."""

    status = 400
    bearer_error = "invalid_request"
    code = "credential_malformed"
    message = "The credential is malformed."
    rank = 20


class DuplicateCredentialError(MalformedCredentialError):
    """More than one credential: a repeated header, or a header and a portal cookie."""

    code = "credential_ambiguous"
    message = "The request carries more than one credential."


class CredentialTooLargeError(MalformedCredentialError):
    """The credential is over the size bound; nothing was decoded."""

    code = "credential_too_large"
    message = "The credential is too large."


class InvalidCredentialError(ClientError):
    """Unknown, wrong, expired or revoked: one public answer for all (no oracle)."""

    status = 401
    bearer_error = "invalid_token"
    code = "credential_invalid"
    message = "The credential is invalid."
    rank = 30


class PermissionDeniedError(ClientError):
    """Authenticated, but the principal lacks the permission the operation needs."""

    status = 403
    bearer_error = "insufficient_scope"
    code = "permission_denied"
    message = "The credential lacks the permission this operation needs."
    rank = 40


class WorkspaceDisabledError(ClientError):
    """The credential is valid but its workspace is disabled."""

    status = 403
    code = "workspace_disabled"
    message = "The workspace is disabled."
    rank = 40


class CrossSiteRequestError(ClientError):
    """A state-changing request authenticated by cookie came from another site."""

    status = 403
    code = "cross_site_request"
    message = "Cross-site requests are not allowed."
    rank = 40


class InvalidPermissionError(ClientError):
    """A permission name, grant or query does not follow the grammar."""

    status = 400
    code = "invalid_permission"
    message = "The permission is invalid."
    rank = 20


class ConflictError(ClientError):
    """The change collides with existing state (an org id or user id already taken)."""

    status = 409
    code = "conflict"
    message = "The request conflicts with existing data."
    rank = 20


class RateLimitedError(ClientError):
    """The workspace is over its rate limit."""

    status = 429
    code = "rate_limited"
    message = "Too many requests for this workspace."
    rank = 45

    def __init__(self, decision: RateLimitDecision, detail: str | None = None) -> None:
        self.decision = decision
        super().__init__(detail)


class UnavailableError(AuthcoreError):
    """A backing system (key store, session store, limiter) is unavailable."""

    status = 503
    code = "service_unavailable"
    message = "The service is temporarily unavailable."
    rank = 50

    def __init__(self, detail: str | None = None, *, retry_after: int = 1) -> None:
        self.retry_after = retry_after
        super().__init__(detail)


class ServerError(AuthcoreError):
    """The server is at fault (misconfiguration); never the caller."""

    status = 500
    code = "internal_error"
    message = "The server could not complete the request."
    rank = 60


class PrincipalMissingError(ServerError):
    """A handler asked for the principal on a route the auth middleware did not run for."""

    code = "principal_missing"


class ConfigurationError(ServerError):
    """authcore was configured with invalid values; raised when the configuration is built."""

    code = "configuration_invalid"
