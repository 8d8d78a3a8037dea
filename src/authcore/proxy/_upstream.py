"""The upstream side: the API request built for a verified session, with a minted bearer.

The bearer is a short-lived JWT minted per user, workspace and permissions; a
:class:`TokenReuseCache` reuses one until half its lifetime has passed, so the API's cache of
verified tokens stays warm.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Final, Protocol

import attrs

from authcore.errors import ConfigurationError, SigningUnavailableError
from authcore.proxy._identity import DashboardSession, check_identity
from authcore.proxy._request import IncomingRequest, PreparedRequest, prepare_request
from authcore.proxy._settings import ProxySettings
from authcore.records import WorkspaceRecord
from authcore.tokens import Secret

__all__ = ["TokenMinter", "TokenReuseCache", "UpstreamRequest", "build_upstream_request"]

_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})
_MAX_DISPLAY_NAME: Final = 256  # what Keyring.mint accepts for the "name" claim


def _redact_headers(headers: tuple[tuple[str, str | Secret], ...]) -> str:
    return repr(tuple((name, value) for name, value in headers))


@attrs.frozen
class UpstreamRequest:
    """The request to send to the API.

    The ``authorization`` value is a :class:`~authcore.tokens.Secret`, so printing this object
    never shows the JWT; :meth:`wire_headers` reveals it, at the last moment, for the client.
    """

    method: str
    url: str
    headers: tuple[tuple[str, str | Secret], ...] = attrs.field(repr=_redact_headers)
    body: bytes = attrs.field(repr=False)

    def wire_headers(self) -> list[tuple[str, str]]:
        """Return the headers with the bearer revealed: hand them to the HTTP client only."""
        return [
            (name, value.reveal() if isinstance(value, Secret) else value)
            for name, value in self.headers
        ]

    @property
    def token(self) -> Secret | None:
        """The minted JWT alone (without ``Bearer``), to keep it out of the response."""
        for name, value in self.headers:
            if name == "authorization" and isinstance(value, Secret):
                return Secret(value.reveal().removeprefix("Bearer "))
        return None


class TokenMinter(Protocol):
    """What signs the upstream JWT: a :class:`~authcore.keyring.Keyring` or anything alike."""

    def mint(
        self,
        *,
        subject: str,
        workspace_id: str,
        permissions: Sequence[str],
        now: int,
        ttl: int | None = None,
        name: str | None = None,
    ) -> Secret: ...


@attrs.frozen
class _Minted:
    token: Secret = attrs.field(repr=False)
    issued_at: int
    ttl: int


_ReuseKey = tuple[str | None, str, str, tuple[str, ...], str | None]


class TokenReuseCache:
    """Reuse a minted JWT for the same signer, user, workspace and permissions until half-life.

    Keeps the API's verified-token cache warm: one user's burst of requests carries one token.
    A token is reused while ``now < issued_at + ttl / 2`` (so it always has at least half its
    lifetime left when sent), and never after the signing kid changes. Bounded: past
    ``max_entries`` the least recently used entry goes. Clockless: ``now`` is passed in. Not
    thread-safe: use one per event loop (it never awaits between a read and its write).
    """

    __slots__ = ("_entries", "max_entries")

    def __init__(self, max_entries: int = 4096) -> None:
        if type(max_entries) is not int or max_entries < 1:
            raise ConfigurationError("max_entries must be a positive integer")
        self.max_entries = max_entries
        self._entries: OrderedDict[_ReuseKey, _Minted] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"TokenReuseCache(entries={len(self._entries)}, max_entries={self.max_entries})"

    def clear(self) -> None:
        """Forget every token (for example after rotating the signing secret)."""
        self._entries.clear()

    def token_for(
        self,
        minter: TokenMinter,
        *,
        subject: str,
        workspace_id: str,
        permissions: Sequence[str],
        name: str | None,
        now: int,
        ttl: int,
    ) -> Secret:
        """Return a reusable token for this identity, minting a new one when needed.

        Raises:
            ConfigurationError: whatever ``minter.mint`` raises.
        """
        kid = getattr(minter, "signing_kid", None)
        key: _ReuseKey = (kid, subject, workspace_id, tuple(permissions), name)
        entry = self._entries.get(key)
        # 2 * elapsed < ttl is "before half-life" without a float; a clock that went backwards
        # (now < issued_at) mints anew rather than trusting the old entry.
        if entry is not None and entry.ttl == ttl and 0 <= 2 * (now - entry.issued_at) < ttl:
            self._entries.move_to_end(key)
            return entry.token
        token = minter.mint(
            subject=subject,
            workspace_id=workspace_id,
            permissions=list(permissions),
            now=now,
            ttl=ttl,
            name=name,
        )
        self._entries[key] = _Minted(token, now, ttl)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return token


def _mint(
    session: DashboardSession,
    workspace: WorkspaceRecord,
    *,
    settings: ProxySettings,
    minter: TokenMinter,
    now: float,
    tokens: TokenReuseCache | None,
) -> Secret:
    """Return the bearer JWT for ``session`` in ``workspace``: minted, or reused from ``tokens``.

    Raises:
        SigningUnavailableError: the minter cannot sign (503); nothing may be forwarded.
    """
    name = session.display_name
    if name is not None and len(name) > _MAX_DISPLAY_NAME:
        name = None  # a cosmetic claim; an overlong one must not make the request fail
    issued_at = int(now)
    try:
        if tokens is None:
            return minter.mint(
                subject=session.user_id,
                workspace_id=workspace.id,
                permissions=list(session.permissions),
                now=issued_at,
                ttl=settings.token_ttl,
                name=name,
            )
        return tokens.token_for(
            minter,
            subject=session.user_id,
            workspace_id=workspace.id,
            permissions=session.permissions,
            name=name,
            now=issued_at,
            ttl=settings.token_ttl,
        )
    except ConfigurationError as exc:
        # No signing kid, a ttl over max_lifetime, a claim the keyring refuses: the proxy
        # cannot produce a token the API would accept, so nothing goes out.
        raise SigningUnavailableError(f"cannot mint: {type(exc).__name__}") from None


def build_upstream_request(
    request: IncomingRequest | PreparedRequest,
    session: DashboardSession | None,
    workspace: WorkspaceRecord | None,
    *,
    settings: ProxySettings,
    minter: TokenMinter,
    now: float,
    tokens: TokenReuseCache | None = None,
) -> UpstreamRequest:
    """Build the API request for a verified dashboard session, with a freshly minted bearer.

    ``workspace`` is what the resolver returned for ``session.org_id``. ``tokens`` reuses
    minted JWTs (see :class:`TokenReuseCache`); without it every call mints.

    Raises:
        ProxyRequestError: any rule of :func:`prepare_request` (400, 404, 413, 431).
        CrossSiteRequestError: a state-changing request from another site (403).
        DashboardSessionRequiredError: ``session`` is None (401).
        WorkspaceUnavailableError: no workspace, or a disabled one (403).
        SigningUnavailableError: the minter cannot sign (503); nothing may be forwarded.
    """
    prepared = (
        request if isinstance(request, PreparedRequest) else prepare_request(request, settings)
    )
    session, workspace = check_identity(session, workspace)
    token = _mint(session, workspace, settings=settings, minter=minter, now=now, tokens=tokens)

    headers: list[tuple[str, str | Secret]] = [("host", settings.upstream_host)]
    headers.extend(prepared.headers)
    if prepared.body or prepared.method in _BODY_METHODS:
        headers.append(("content-length", str(len(prepared.body))))
    headers.append(("authorization", Secret(f"Bearer {token.reveal()}")))
    url = settings.upstream + prepared.path
    if prepared.query:
        url += "?" + prepared.query
    return UpstreamRequest(
        method=prepared.method, url=url, headers=tuple(headers), body=prepared.body
    )
