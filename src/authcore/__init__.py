"""authcore: API authentication with one normalized principal.

Per request: find exactly one credential, verify it with the system that owns it, normalize
it into a :class:`Principal`, attach it to the request and apply the workspace rate limit;
then the handler checks the permission its operation needs. The names below are the public
API of the zero-I/O core; adapters live in ``authcore.adapters`` and backends in
``authcore.backends``.
"""

from authcore.audit import AuditEvent, AuditTarget, audit_event
from authcore.authenticator import Authenticator
from authcore.binding import attach_principal, principal_from, workspace_id_for_logs
from authcore.credentials import (
    Credential,
    CredentialKind,
    CredentialSettings,
    extract_credential,
)
from authcore.errors import (
    AuthcoreError,
    ClientError,
    ConfigurationError,
    CredentialTooLargeError,
    CrossSiteRequestError,
    DuplicateCredentialError,
    InvalidCredentialError,
    InvalidPermissionError,
    MalformedCredentialError,
    MissingCredentialError,
    PermissionDeniedError,
    PrincipalMissingError,
    RateLimitedError,
    ServerError,
    TooManyGrantsError,
    UnavailableError,
    UnsupportedSchemeError,
    WorkspaceDisabledError,
)
from authcore.flow import (
    AsyncBackends,
    Authenticated,
    AuthSettings,
    Backends,
    arun_flow,
    authentication_flow,
    run_flow,
)
from authcore.keyring import JWTSettings, Keyring, SigningSecret, VerifiedClaims, check_rotation
from authcore.permissions import (
    AllOf,
    AnyOf,
    PermissionSet,
    Query,
    Require,
    parse_query,
    permission_from_parts,
    validate_grant,
    validate_permission,
)
from authcore.principal import Principal, Source, Subject
from authcore.ratelimit import (
    LimiterFailurePolicy,
    RateLimitDecision,
    RateLimitPolicy,
    decide,
)
from authcore.records import PortalSessionRecord, RootKeyRecord, WorkspaceRecord
from authcore.responses import HTTPResponse, error_response
from authcore.tokens import Secret

__all__ = [
    "AllOf",
    "AnyOf",
    "AsyncBackends",
    "AuditEvent",
    "AuditTarget",
    "AuthSettings",
    "AuthcoreError",
    "Authenticated",
    "Authenticator",
    "Backends",
    "ClientError",
    "ConfigurationError",
    "Credential",
    "CredentialKind",
    "CredentialSettings",
    "CredentialTooLargeError",
    "CrossSiteRequestError",
    "DuplicateCredentialError",
    "HTTPResponse",
    "InvalidCredentialError",
    "InvalidPermissionError",
    "JWTSettings",
    "Keyring",
    "LimiterFailurePolicy",
    "MalformedCredentialError",
    "MissingCredentialError",
    "PermissionDeniedError",
    "PermissionSet",
    "PortalSessionRecord",
    "Principal",
    "PrincipalMissingError",
    "Query",
    "RateLimitDecision",
    "RateLimitPolicy",
    "RateLimitedError",
    "Require",
    "RootKeyRecord",
    "Secret",
    "ServerError",
    "SigningSecret",
    "Source",
    "Subject",
    "TooManyGrantsError",
    "UnavailableError",
    "UnsupportedSchemeError",
    "VerifiedClaims",
    "WorkspaceDisabledError",
    "WorkspaceRecord",
    "arun_flow",
    "attach_principal",
    "audit_event",
    "authentication_flow",
    "check_rotation",
    "decide",
    "error_response",
    "extract_credential",
    "parse_query",
    "permission_from_parts",
    "principal_from",
    "run_flow",
    "validate_grant",
    "validate_permission",
    "workspace_id_for_logs",
]

__version__ = "0.1.0.dev0"
