"""What the authentication flow asks of the outside world: its needs.

:func:`authcore.flow.authentication_flow` yields these and receives the answers; the drivers
(:func:`authcore.flow.run_flow`, :func:`~authcore.flow.arun_flow`) perform the I/O each names.
Plain frozen values: a digest is never shown in a repr. :mod:`authcore.flow` re-exports them.
"""

from __future__ import annotations

from typing import TypeAlias

import attrs

from authcore.ratelimit import Level, RateLimitPolicy

__all__ = [
    "CheckRateLimit",
    "CheckRateLimits",
    "LimitNeed",
    "LookupIdentity",
    "LookupPortalSession",
    "LookupRootKey",
    "LookupWorkspace",
    "Need",
    "UseFallbackLimiter",
    "UseFallbackLimiters",
]


@attrs.frozen
class LookupRootKey:
    """Need: the root-key record stored under ``digest`` (or None)."""

    digest: bytes = attrs.field(repr=False)


@attrs.frozen
class LookupPortalSession:
    """Need: the portal-session record stored under ``digest`` (or None)."""

    digest: bytes = attrs.field(repr=False)


@attrs.frozen
class LookupWorkspace:
    """Need: the workspace record for ``workspace_id`` (or None)."""

    workspace_id: str


@attrs.frozen
class LookupIdentity:
    """Need: the identity record for ``identity_id`` (or None): a key's owner and its limit."""

    identity_id: str


@attrs.frozen
class CheckRateLimit:
    """Need: one atomic limiter decision for ``bucket`` under ``policy``.

    ``bucket`` is the workspace's id, or within it a root key's, a portal session's or an
    identity's own bucket (:func:`authcore.ratelimit.key_bucket`,
    :func:`~authcore.ratelimit.session_bucket`, :func:`~authcore.ratelimit.identity_bucket`).
    """

    bucket: str
    policy: RateLimitPolicy


@attrs.frozen
class CheckRateLimits:
    """Need: one atomic all-or-nothing decision over several levels of one workspace.

    The answer is one decision per level (:meth:`authcore.ratelimit.RateLimiter.hit_levels`).
    """

    levels: tuple[Level, ...]


@attrs.frozen
class UseFallbackLimiter:
    """Need: the bounded local limiter's decision, after the shared limiter failed.

    ``bucket`` is as in :class:`CheckRateLimit`.
    """

    bucket: str
    policy: RateLimitPolicy


@attrs.frozen
class UseFallbackLimiters:
    """Need: the bounded local limiter's all-or-nothing decision over several levels."""

    levels: tuple[Level, ...]


#: What a rate-limit step asks for (all that a replay asks for).
LimitNeed: TypeAlias = CheckRateLimit | UseFallbackLimiter | CheckRateLimits | UseFallbackLimiters
Need: TypeAlias = LookupRootKey | LookupPortalSession | LookupWorkspace | LookupIdentity | LimitNeed
