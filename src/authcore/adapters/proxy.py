"""The dashboard proxy as an ASGI application: browser session in, API bearer out.

Mount it under ``/proxy`` in the dashboard. Per request it

1. checks everything that needs only the request (:func:`authcore.proxy.prepare_request`:
   no caller ``Authorization``, a clean path under an allowed prefix, a clean query, allowed
   header values, the cross-site rule, a declared ``Content-Length`` within the cap), before
   any I/O;
2. asks the injected verifier for the dashboard session (it needs only the ``Cookie`` header
   values) and the injected resolver for the organization's workspace, and refuses (401, 403)
   *before reading any of the body*: an anonymous client never makes the proxy buffer a byte;
3. reads the body, refusing it with 413 as soon as it passes ``max_body_bytes`` and with 408
   when it has not all arrived within ``body_timeout`` seconds;
4. builds the upstream request with the pure builder (which mints, or reuses, the JWT);
5. sends it with :mod:`httpx` to the configured origin only, never following redirects, with
   bounded timeouts, and streams the answer back with filtered headers
   (:func:`authcore.proxy.filter_response_headers`). An upstream redirect (3xx) is never
   passed on: it is a 502.

Failures map to problem documents with fixed messages: the builder's errors (400, 401, 403,
404, 408, 413, 431, 503), an upstream timeout (504), an unreachable upstream or a redirect
(502). When no token can be minted (no signing kid, or the keyring refuses) the answer is 503
and nothing is sent. A refusal sent while a request body is still owed closes the connection
(``Connection: close``), so the rest of that body is never read either.

The upstream client is an :class:`httpx.AsyncClient`. The default one ignores proxy
environment variables (``trust_env=False``: ``HTTPS_PROXY`` must not reroute requests that
carry a bearer) and keeps no cookies. An injected client is used only through
:meth:`httpx.AsyncClient.send` with a fully built request, so its default headers, base URL,
cookies and auth are never applied.
"""

from __future__ import annotations

import http.cookiejar
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any, Final

import attrs

from authcore.adapters._common import missing_extra

try:
    import anyio
    import httpx
except ImportError as exc:
    raise ImportError(
        missing_extra("authcore.adapters.proxy", "httpx", "proxy"), name=exc.name
    ) from exc

from authcore.errors import (
    AuthcoreError,
    BodyTimeoutError,
    BodyTooLargeError,
    ConfigurationError,
    PathNotProxiedError,
    UnavailableError,
    UpstreamRedirectError,
    UpstreamRejectedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from authcore.proxy import (
    AsyncDashboardSessionVerifier,
    AsyncWorkspaceResolver,
    DashboardSession,
    IncomingRequest,
    ProxySettings,
    TokenMinter,
    TokenReuseCache,
    UpstreamRequest,
    build_upstream_request,
    check_identity,
    filter_response_headers,
    prepare_request,
)
from authcore.records import WorkspaceRecord
from authcore.responses import error_response

__all__ = ["DEFAULT_TIMEOUT", "DashboardProxy"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: Connect quickly or give up; the API answers in well under ten seconds or the user gets 504.
DEFAULT_TIMEOUT: Final = httpx.Timeout(10.0, connect=2.0)
_LOG: Final = logging.getLogger("authcore.proxy")
# RFC 6455 §7.4.1: 1008 "policy violation". The proxy forwards HTTP only.
_WS_POLICY_VIOLATION: Final = 1008


class _DisconnectedError(Exception):
    """The browser went away while the body was being read."""


class _RefusedUnreadError(Exception):
    """An error answered before (all of) the request body was read.

    ``close``: some of the body is still owed, so the answer closes the connection.
    """

    def __init__(self, error: AuthcoreError, *, close: bool = True) -> None:
        self.error = error
        self.close = close
        super().__init__(error.code)


def _body_owed(headers: Iterable[tuple[str, str]]) -> bool:
    """Whether the request announces a body (RFC 9112 §6.3: Content-Length or chunked)."""
    for name, value in headers:
        lowered = name.lower()
        if lowered == "transfer-encoding" or (lowered == "content-length" and value.strip() != "0"):
            return True
    return False


def _no_cookies() -> http.cookiejar.CookieJar:
    # A shared client must not collect the API's cookies for one user and keep them around.
    return http.cookiejar.CookieJar(policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))


def _latin1(headers: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    return [(name.decode("latin-1"), value.decode("latin-1")) for name, value in headers]


def _encode(headers: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]


class DashboardProxy:
    """Forward dashboard requests to the API with a minted bearer JWT.

    ``keyring`` signs the JWTs (a :class:`~authcore.keyring.Keyring` with a signing kid);
    assign :attr:`keyring` to switch signing secrets at run time (rotation). ``clock`` returns
    seconds since the epoch. ``mount`` is the prefix the proxy is served under; the rest of
    the raw path is what the prefix rules of ``settings`` see.

    Raises:
        ConfigurationError: a mount that is not ``/name`` (at construction).
    """

    def __init__(
        self,
        settings: ProxySettings,
        session_verifier: AsyncDashboardSessionVerifier,
        workspace_resolver: AsyncWorkspaceResolver,
        keyring: TokenMinter,
        *,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        mount: str = "/proxy",
        tokens: TokenReuseCache | None = None,
        realm: str = "dashboard",
    ) -> None:
        if not isinstance(settings, ProxySettings):
            raise ConfigurationError("settings must be a ProxySettings")
        if not mount.startswith("/") or mount.endswith("/") or "//" in mount:
            raise ConfigurationError("mount is a path like '/proxy' (no trailing slash)")
        self.settings = settings
        self.keyring = keyring
        self._verifier = session_verifier
        self._resolver = workspace_resolver
        self._clock = clock
        self._timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self._mount = mount
        self._tokens = TokenReuseCache() if tokens is None else tokens
        self._realm = realm
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(
            follow_redirects=False,
            trust_env=False,
            timeout=self._timeout,
            cookies=_no_cookies(),
        )

    async def aclose(self) -> None:
        """Close the HTTP client if the proxy created it."""
        if self._owns_client:
            await self._client.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection (``http``; ``lifespan`` closes the client at shutdown)."""
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if kind == "websocket":
            await send({"type": "websocket.close", "code": _WS_POLICY_VIOLATION})
            return
        if kind != "http":
            raise ValueError(f"authcore proxy: refusing unknown ASGI scope type {kind!r}")
        try:
            upstream = await self._build(scope, receive)
        except _DisconnectedError:
            return
        except _RefusedUnreadError as unread:
            await self._refuse(send, unread.error, close=unread.close)
            return
        except AuthcoreError as exc:
            await self._refuse(send, exc)
            return
        await self._forward(upstream, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _refuse(self, send: Send, exc: AuthcoreError, *, close: bool = False) -> None:
        # detail is for developers and never holds a token; the response uses fixed fields only.
        _LOG.info("dashboard proxy refused a request: %s (%s)", exc.code, exc.detail)
        response = error_response(exc, realm=self._realm)
        headers = list(response.headers)
        if close:
            # RFC 9112 §9.6: the body (or its rest) was not read, so the connection cannot
            # carry another request; the server closes it after this answer.
            headers.append(("connection", "close"))
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": _encode(headers),
            }
        )
        await send({"type": "http.response.body", "body": response.body, "more_body": False})

    async def _build(self, scope: Scope, receive: Receive) -> UpstreamRequest:
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
        path = raw_path.decode("latin-1")
        headers = _latin1(list(scope.get("headers", ())))
        if not path.startswith(self._mount + "/"):
            raise _RefusedUnreadError(
                PathNotProxiedError("outside the mount"), close=_body_owed(headers)
            )
        head = IncomingRequest(
            method=scope["method"],
            path=path[len(self._mount) :],
            query=bytes(scope.get("query_string", b"")).decode("latin-1"),
            headers=tuple(headers),
            scheme=str(scope.get("scheme", "http")),
        )
        settings = self.settings
        try:
            # Every rule that needs only the request runs before any I/O ...
            prepared = prepare_request(head, settings)
            for name, value in headers:
                # The server has validated Content-Length; an oversized one is refused unread.
                declared = value.strip()
                if (
                    name.lower() == "content-length"
                    and declared.isascii()
                    and declared.isdigit()
                    and (len(declared) > 18 or int(declared) > settings.max_body_bytes)
                ):
                    raise BodyTooLargeError("declared content-length")
            # ... and the session (it needs only the cookie) before any byte of the body: a
            # client without a session never makes the proxy buffer or wait for one.
            cookies = [value for name, value in headers if name.lower() == "cookie"]
            session = await self._session(cookies)
            workspace = None if session is None else await self._workspace(session.org_id)
            session, workspace = check_identity(session, workspace)
        except AuthcoreError as exc:
            raise _RefusedUnreadError(exc, close=_body_owed(headers)) from None
        body = await self._read_body(receive, settings.max_body_bytes, settings.body_timeout)
        return build_upstream_request(
            attrs.evolve(prepared, body=body),
            session,
            workspace,
            settings=settings,
            minter=self.keyring,
            now=self._clock(),
            tokens=self._tokens,
        )

    async def _session(self, cookies: list[str]) -> DashboardSession | None:
        try:
            session = await self._verifier.averify_session(cookies)
        except AuthcoreError:
            raise
        except Exception as exc:  # noqa: BLE001 - a failing session store means "unavailable"
            raise UnavailableError(f"session verifier failed: {type(exc).__name__}") from None
        if session is not None and not isinstance(session, DashboardSession):
            raise UnavailableError("session verifier returned an unexpected value")
        return session

    async def _workspace(self, org_id: str) -> WorkspaceRecord | None:
        try:
            workspace = await self._resolver.aresolve_workspace(org_id)
        except AuthcoreError:
            raise
        except Exception as exc:  # noqa: BLE001 - a failing store means "unavailable"
            raise UnavailableError(f"workspace resolver failed: {type(exc).__name__}") from None
        if workspace is not None and not isinstance(workspace, WorkspaceRecord):
            raise UnavailableError("workspace resolver returned an unexpected value")
        return workspace

    @staticmethod
    async def _read_body(receive: Receive, limit: int, time_limit: float) -> bytes:
        chunks: list[bytes] = []
        size = 0
        try:
            with anyio.fail_after(time_limit):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise _DisconnectedError
                    chunk = bytes(message.get("body", b""))
                    size += len(chunk)
                    if size > limit:
                        # Stop reading at once: the rest of an oversized body is never buffered.
                        raise _RefusedUnreadError(BodyTooLargeError("streamed body"))
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        return b"".join(chunks)
        except TimeoutError:
            # A client trickling bytes holds a connection and the buffer: cut it off.
            raise _RefusedUnreadError(BodyTimeoutError("body not received in time")) from None

    async def _forward(self, upstream: UpstreamRequest, send: Send) -> None:
        request = httpx.Request(
            upstream.method,
            upstream.url,
            headers=_encode(upstream.wire_headers()),
            content=upstream.body or None,
            # A request built by hand carries no timeout unless it is put here.
            extensions={"timeout": self._timeout.as_dict()},
        )
        try:
            response = await self._client.send(
                request, stream=True, follow_redirects=False, auth=None
            )
        except httpx.TimeoutException as exc:
            await self._refuse(send, UpstreamTimeoutError(type(exc).__name__))
            return
        except httpx.TransportError as exc:
            await self._refuse(send, UpstreamUnavailableError(type(exc).__name__))
            return
        if 300 <= response.status_code < 400:
            # Never relayed: its Location names the API (or whatever Host the API trusted), and
            # following it would send the browser around the proxy.
            await response.aclose()
            _LOG.warning("dashboard proxy: the API answered with a redirect; not passed on")
            await self._refuse(send, UpstreamRedirectError(f"upstream {response.status_code}"))
            return
        if response.status_code == 401:
            await response.aclose()
            _LOG.warning(
                "dashboard proxy: the API refused a minted token; check that its keyring, issuer"
                " and audience match the proxy's"
            )
            await self._refuse(send, UpstreamRejectedError("upstream 401"))
            return
        try:
            headers = filter_response_headers(
                _latin1(list(response.headers.raw)), token=upstream.token
            )
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": _encode(headers),
                }
            )
            try:
                async for chunk in response.aiter_raw():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except httpx.TransportError as exc:
                # The status line is already out: the only honest signal left is to abort the
                # connection, so the browser sees a truncated response, not a complete one.
                _LOG.warning("dashboard proxy: upstream failed mid-body (%s)", type(exc).__name__)
                raise UpstreamUnavailableError(type(exc).__name__) from None
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await response.aclose()
