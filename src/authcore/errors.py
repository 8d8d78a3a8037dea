"""authcore's one exception root and its branches.

Every public entry point raises only these. Each class carries its HTTP status, its RFC 6750
error code (or ``None`` where the RFC wants no error attribute), a stable machine-readable
``code`` and a fixed public ``message``. The public message never depends on the input, so a
response built from an error is never an oracle and never echoes a secret.

::

    AuthcoreError
    ├── ClientError                         the caller is at fault (4xx)
    │   ├── MissingCredentialError          401, no error attribute
    │   │   ├── UnsupportedSchemeError      401, e.g. Basic or Token instead of Bearer
    │   │   └── DashboardSessionRequiredError *  401, no (valid) dashboard session
    │   ├── MalformedCredentialError        400 invalid_request
    │   │   ├── DuplicateCredentialError    400 invalid_request (two headers, header + cookie)
    │   │   └── CredentialTooLargeError     400 invalid_request (rejected before decoding)
    │   ├── InvalidCredentialError          401 invalid_token (unknown, wrong, expired, revoked)
    │   ├── PermissionDeniedError           403 insufficient_scope
    │   ├── WorkspaceDisabledError          403
    │   │   └── WorkspaceUnavailableError * 403, the organization has no active workspace
    │   ├── RateLimitedError                429 (carries the limiter's decision)
    │   ├── InvalidPermissionError          400 (a permission or query that breaks the grammar)
    │   │   └── TooManyGrantsError          400, a key or portal session over its grant bounds
    │   ├── ConflictError                   409 (an org id or user id that is already taken)
    │   ├── CrossSiteRequestError           403 (a state-changing cookie request from elsewhere)
    │   └── ProxyRequestError *             400, the request cannot be forwarded as it is
    │       ├── CallerAuthorizationError    400, the caller sent its own Authorization header
    │       ├── PathNotProxiedError         404, the path is under no allowed prefix
    │       ├── MethodNotAllowedError       405 with Allow, a method the proxy never forwards
    │       ├── BodyTimeoutError            408, the body did not arrive within body_timeout
    │       ├── BodyTooLargeError           413, the body is over max_body_bytes
    │       └── HeadersTooLargeError        431, too many header fields
    ├── UnavailableError                    503, a backing system (store, limiter) is down
    │   └── SigningUnavailableError *       503, no usable signing secret: nothing forwarded
    ├── ServerError                         500, the server is misconfigured
    │   ├── PrincipalMissingError           500, route registered without the middleware
    │   └── ConfigurationError              500, invalid configuration (raised at start-up)
    └── ProxyError                          marker base of what only the dashboard proxy raises
        └── UpstreamError                   502, the API answered nothing usable
            ├── UpstreamUnavailableError    502, connection refused / unreachable
            ├── UpstreamRejectedError       502, the API refused the minted token (401)
            ├── UpstreamRedirectError       502, the API answered with a redirect (3xx)
            └── UpstreamTimeoutError        504, the API did not answer in time

A ``*`` marks a class that also derives from :class:`ProxyError`, so ``except ProxyError``
catches everything the dashboard proxy (:mod:`authcore.proxy`, :mod:`authcore.adapters.proxy`)
adds. A missing or disabled workspace there is a 403, never a 401: a dashboard logs its user
out on 401, and the user's dashboard session is fine.

``detail`` is for developers only: it may say *why* (``"revoked"``), is never put in a response
and never holds a secret. ``rank`` orders errors when a resolver chain must report one of
several: "unavailable" outranks "forbidden", which outranks "unauthenticated", so a 503 is
never masked as a 401.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, ClassVar, Self

if TYPE_CHECKING:
    from authcore.ratelimit import RateLimitDecision
    from authcore.ratelimit_fields import LimitFields

__all__ = [
    "AuthcoreError",
    "BodyTimeoutError",
    "BodyTooLargeError",
    "CallerAuthorizationError",
    "ClientError",
    "ConfigurationError",
    "ConflictError",
    "CredentialTooLargeError",
    "CrossSiteRequestError",
    "DashboardSessionRequiredError",
    "DuplicateCredentialError",
    "HeadersTooLargeError",
    "InvalidCredentialError",
    "InvalidPermissionError",
    "MalformedCredentialError",
    "MethodNotAllowedError",
    "MissingCredentialError",
    "PathNotProxiedError",
    "PermissionDeniedError",
    "PrincipalMissingError",
    "ProxyError",
    "ProxyRequestError",
    "RateLimitedError",
    "ServerError",
    "SigningUnavailableError",
    "TooManyGrantsError",
    "UnavailableError",
    "UnsupportedSchemeError",
    "UpstreamError",
    "UpstreamRedirectError",
    "UpstreamRejectedError",
    "UpstreamTimeoutError",
    "UpstreamUnavailableError",
    "WorkspaceDisabledError",
    "WorkspaceUnavailableError",
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


class TooManyGrantsError(InvalidPermissionError):
    """A key, portal session or dashboard user would hold more grants than one may.

    The bounds are :data:`authcore.plans.MAX_KEY_GRANTS` grants and
    :data:`authcore.plans.MAX_KEY_GRANT_BYTES` bytes of grant text in all; the message names
    them (a test keeps it in step).
    """

    code = "too_many_grants"
    message = "Too many permissions: at most 256 grants and 8192 bytes of grants in all."


class ConflictError(ClientError):
    """The change collides with existing state (an org id or user id already taken)."""

    status = 409
    code = "conflict"
    message = "The request conflicts with existing data."
    rank = 20


class RateLimitedError(ClientError):
    """Over a rate limit: the workspace's, the identity's or the key's own.

    The message names no level: the decision does not say which bucket refused, and a key
    over its own limit is not its workspace over the workspace's.
    """

    status = 429
    code = "rate_limited"
    message = "Too many requests."
    rank = 45

    def __init__(
        self,
        decision: RateLimitDecision,
        detail: str | None = None,
        *,
        fields: LimitFields | None = None,
        decisions: tuple[RateLimitDecision, ...] = (),
    ) -> None:
        self.decision = decision
        #: The rate-limit fields of the refused request's levels (None: built by hand) and
        #: every level's decision where there are several.
        self.fields = fields
        self.decisions = decisions
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


# --- the dashboard proxy's errors (authcore.proxy, authcore.adapters.proxy) ---------------


class ProxyError(AuthcoreError):
    """Marker base of every error only the dashboard proxy raises; each carries its status."""


class ProxyRequestError(ClientError, ProxyError):
    """The request cannot be forwarded as it is (bad path, query, header value or method)."""

    status = 400
    code = "proxy_request_invalid"
    message = "The request cannot be forwarded."
    rank = 20


class CallerAuthorizationError(ProxyRequestError):
    """The browser sent its own ``Authorization`` header; only the proxy sets that."""

    code = "authorization_not_allowed"
    message = "Requests through the dashboard proxy must not carry an Authorization header."


class PathNotProxiedError(ProxyRequestError):
    """The path is under none of the allowed prefixes."""

    status = 404
    code = "path_not_proxied"
    message = "The dashboard proxy does not forward this path."


class MethodNotAllowedError(ProxyRequestError):
    """A method the proxy never forwards; the answer lists the ones it does (``Allow``)."""

    status = 405
    code = "method_not_allowed"
    message = "This method is not allowed here."

    def __init__(self, allow: Iterable[str], detail: str | None = None) -> None:
        self.allow = tuple(sorted(allow))
        super().__init__(detail)


class BodyTimeoutError(ProxyRequestError):
    """The request body did not arrive within ``body_timeout`` seconds."""

    status = 408
    code = "body_timeout"
    message = "The request body did not arrive in time."


class BodyTooLargeError(ProxyRequestError):
    """The request body is over ``max_body_bytes``."""

    status = 413
    code = "body_too_large"
    message = "The request body is too large."


class HeadersTooLargeError(ProxyRequestError):
    """The request carries more header fields than ``max_headers``."""

    status = 431
    code = "headers_too_large"
    message = "The request has too many header fields."


class DashboardSessionRequiredError(MissingCredentialError, ProxyError):
    """No valid dashboard session: the user must sign in to the dashboard."""

    code = "dashboard_session_required"
    message = "Sign in to the dashboard."


class WorkspaceUnavailableError(WorkspaceDisabledError, ProxyError):
    """The organization has no workspace, or a disabled one (403: the session stays valid)."""

    code = "workspace_unavailable"
    message = "The organization has no active workspace."


class SigningUnavailableError(UnavailableError, ProxyError):
    """No usable signing secret, so nothing can be forwarded."""

    code = "signing_unavailable"
    message = "The dashboard cannot reach the API right now."


class UpstreamError(ProxyError):
    """The API answered nothing usable (502)."""

    status = 502
    code = "upstream_error"
    message = "The API did not answer."
    rank = 50


class UpstreamUnavailableError(UpstreamError):
    """The API is unreachable: connection refused, reset or not routable."""

    code = "upstream_unavailable"
    message = "The API is unreachable."


class UpstreamRejectedError(UpstreamError):
    """The API answered 401 to the token the proxy minted: the two are misconfigured.

    A 401 reaching the browser would read as "your dashboard session ended" and log the user
    out; the dashboard session is fine, the proxy/API pairing is not (keyring, issuer or
    audience), so this is a 502.
    """

    code = "upstream_rejected_token"
    message = "The API did not accept the dashboard's credential."


class UpstreamRedirectError(UpstreamError):
    """The API answered with a redirect (3xx), which is never passed to the browser.

    A ``Location`` would tell the browser the API's address (or one the API built from a
    ``Host`` header) and send it there, around the proxy.
    """

    code = "upstream_redirect"
    message = "The API answered with a redirect, which the dashboard does not follow."


class UpstreamTimeoutError(UpstreamError):
    """The API did not answer within the proxy's timeout."""

    status = 504
    code = "upstream_timeout"
    message = "The API did not answer in time."
