"""What a replay replays: the flow's conclusion about one credential, and the table that keeps it.

The flow (:mod:`authcore.flow`) ends every verified credential in a :class:`Conclusion`. A
bounded table of them (:class:`ConclusionTable`, kept by a store that is a
:class:`ConclusionSource` such as :class:`authcore.backends.cache.CachedStore`) lets
:class:`authcore.authenticator.Authenticator` skip steps 1-3 for a credential it has already
verified: it checks the conclusion's ``valid_until`` against its clock and always takes a fresh
rate-limit decision. Whoever keeps the table invalidates it on every event that could change a
conclusion.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import attrs

from authcore.principal import Principal, Source
from authcore.ratelimit import Level, RateLimitPolicy, identity_bucket, key_bucket, session_bucket
from authcore.ratelimit_fields import LimitFields, RateLimitHeaders
from authcore.usage import ALLOWED

__all__ = ["Conclusion", "ConclusionSource", "ConclusionTable"]


@attrs.frozen
class Conclusion:
    """What the flow concluded about one credential, replayable until ``valid_until``.

    Everything a later request with the same credential needs in order to skip steps 1-3:
    the principal, the workspace's rate-limit policy (None: unlimited), and the moment the
    conclusion stops being true on its own (the key's or session's expiry, the JWT's ``exp``;
    infinity when it never expires). ``key_id`` is the kid of the secret that verified a JWT
    (a replay checks it is still in the keyring); ``credential_id`` is the root key's or
    portal session's id, by which revocation and rotation find it. ``credential_policy`` is
    a root key's or portal session's own limit (None for one without, and always for JWTs);
    it is only ever set together with ``credential_id``. It never holds a secret.
    ``usage_key`` is what an admitted request with this credential counts as in usage
    (workspace id, credential id, ``"allowed"``), built once here rather than per request.
    ``fields`` are the rate-limit header fields of its ``levels`` in the route group's
    ``rate_limit_headers`` style (None: none to send), made once here too.
    """

    principal: Principal
    policy: RateLimitPolicy | None
    valid_until: float
    key_id: str | None = None
    credential_id: str | None = None
    credential_policy: RateLimitPolicy | None = None
    identity_policy: RateLimitPolicy | None = None
    rate_limit_headers: RateLimitHeaders = RateLimitHeaders.DRAFT
    usage_key: tuple[str, str, str] = attrs.field(init=False, eq=False, repr=False)
    levels: tuple[Level, ...] = attrs.field(init=False, eq=False, repr=False)
    fields: LimitFields | None = attrs.field(init=False, eq=False, repr=False)

    @usage_key.default
    def _usage_key(self) -> tuple[str, str, str]:
        return (self.principal.workspace_id, self.credential_id or "", ALLOWED)

    @levels.default
    def _levels(self) -> tuple[Level, ...]:
        # Every limit the request must pass, most specific first: the key's or session's own,
        # its identity's, the workspace's. Built once here, read on every replay.
        principal = self.principal
        workspace_id = principal.workspace_id
        levels: list[Level] = []
        own, credential_id = self.credential_policy, self.credential_id
        if own is not None and credential_id is not None:
            bucket_of = session_bucket if principal.source is Source.PORTAL_SESSION else key_bucket
            levels.append((bucket_of(workspace_id, credential_id), own))
        if self.identity_policy is not None and principal.identity_id is not None:
            bucket = identity_bucket(workspace_id, principal.identity_id)
            levels.append((bucket, self.identity_policy))
        if self.policy is not None:
            levels.append((workspace_id, self.policy))
        return tuple(levels)

    @fields.default
    def _fields(self) -> LimitFields | None:
        return LimitFields.for_levels(self.rate_limit_headers, self.levels)


class ConclusionTable(Protocol):
    """A bounded table of conclusions, kept true by its owner's invalidations.

    Keyed by the SHA-256 digest of the credential's token (the stored digest for root keys
    and portal sessions). ``get`` is a plain read: the caller checks ``valid_until`` against
    its clock. A conclusion is stored only under a ``ticket`` taken before the flow started,
    so one reached from a record that was invalidated meanwhile is never stored; the owner
    also shortens ``valid_until`` to what its own caches promise (their TTLs).
    """

    def get(self, key: bytes, /) -> Conclusion | None: ...

    def ticket(self) -> int: ...

    def put(self, key: bytes, conclusion: Conclusion, ticket: int, now: float, /) -> None: ...


@runtime_checkable
class ConclusionSource(Protocol):
    """A store that can keep conclusions (``CachedStore``): one table per authenticator."""

    def verified_results(self) -> ConclusionTable: ...
