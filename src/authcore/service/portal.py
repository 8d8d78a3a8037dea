"""The example API's portal routes of its own: how an end user's browser gets, and ends, a
portal session, and what the session's identity is.

The customer's backend asks ``POST /v1/portal-sessions`` for a session and gets a code that
works once within 60 seconds, and a link to the portal page with the code in the URL fragment
(never sent to a server); the page posts the code to ``/portal/exchange``, which mints the
session's token and sets it as an HttpOnly, SameSite=Strict cookie (``Secure`` over TLS) for
``/portal``. A long-lived token never travels in a URL, and a code that does (in the query) is
taken as leaked: it is spent, and the session it started ends. Both the exchange and the logout
are writes a browser makes with this site's cookie, so both pass the one cross-site rule
(:func:`authcore.credentials.is_same_origin`). ``GET /portal/v1/identity`` tells the page whose
keys it shows and what a key made there may hold; the key and usage routes the portal shares
with ``/v1`` (:mod:`authcore.service.management`, :mod:`authcore.service.usage_routes`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from starlette.requests import Request
from starlette.responses import Response

from authcore.adapters.starlette import principal_from
from authcore.credentials import (
    DEFAULT_PORTAL_COOKIE,
    CredentialSettings,
    authorization_values,
    extract_credential,
    is_same_origin,
    parse_cookie_header,
    request_origin,
)
from authcore.errors import CrossSiteRequestError
from authcore.records import PORTAL_EXCHANGE_CODE_PREFIX
from authcore.service._http import ProblemError, json_response, read_fields, refuse_unknown_fields
from authcore.service._scope import own_identity
from authcore.service.management import request_actor
from authcore.store import AsyncStore
from authcore.tokens import digest

__all__ = ["MAX_LEAKED_CODES", "PORTAL_COOKIE_PATH", "PortalRoutes"]

#: The portal cookie is sent to the portal routes only.
PORTAL_COOKIE_PATH: Final = "/portal"
#: Most exchange codes one request's query may spend.
MAX_LEAKED_CODES: Final = 4
# What issue_token makes for an exchange code: the prefix and 43 base64url characters.
_EXCHANGE_CODE: Final = re.compile(
    re.escape(PORTAL_EXCHANGE_CODE_PREFIX) + r"[A-Za-z0-9_-]{43}", re.ASCII
)


class PortalRoutes:
    """``POST /portal/exchange``, ``POST /portal/logout`` and ``GET /portal/v1/identity``,
    bound to one store and clock."""

    def __init__(
        self,
        store: AsyncStore,
        clock: Callable[[], float],
        *,
        portal_credentials: CredentialSettings,
        secure_cookies: bool | None,
        body_timeout: float,
    ) -> None:
        self.store = store
        self.clock = clock
        self.portal_credentials = portal_credentials
        self.secure_cookies = secure_cookies
        self.body_timeout = body_timeout

    def _secure(self, request: Request) -> bool:
        if self.secure_cookies is not None:
            return self.secure_cookies
        return request.url.scheme == "https"

    def _check_same_origin(self, request: Request) -> None:
        """The one cross-site rule, for a portal write the middleware does not see.

        Raises:
            CrossSiteRequestError: not ``Sec-Fetch-Site: same-origin``, nor (without that
                header) an ``Origin`` equal to this site's or a configured one (403).
        """
        headers = request.headers
        if not is_same_origin(
            headers.getlist("sec-fetch-site"),
            headers.getlist("origin"),
            own_origin=request_origin(request.url.scheme, headers.getlist("host")),
            allowed_origins=self.portal_credentials.allowed_origins,
        ):
            raise CrossSiteRequestError("portal exchange from another site")

    async def spend_leaked_codes(self, request: Request) -> None:
        """Spend every exchange code in the request's query: a code in a URL is leaked (access
        logs, history, ``Referer``), so it must never start a session anyone holds.

        Each is presented twice: the first presentation spends it (starting its session, whose
        token is dropped here), the second is a replay, for which the store ends the session
        the code started and audits why; a code someone already used is ended by the first.
        At most :data:`MAX_LEAKED_CODES` distinct codes per request; anything else is ignored.
        """
        codes = {
            value
            for value in request.query_params.getlist("code")[:MAX_LEAKED_CODES]
            if _EXCHANGE_CODE.fullmatch(value)
        }
        for code in sorted(codes):
            code_digest = digest(code)
            for _presentation in range(2):
                await self.store.aexchange_portal_code(code_digest, now=self.clock())

    async def exchange(self, request: Request) -> Response:
        if request.url.query:
            # Before the cross-site rule: a leaked code dies whoever presents it.
            await self.spend_leaked_codes(request)
            raise ProblemError(
                400, "code_in_url", "The exchange code goes in the request body, never the URL."
            )
        # Refused before the body is read: a page of another site cannot plant its own
        # session in this browser (login CSRF).
        self._check_same_origin(request)
        fields = await read_fields(request, time_limit=self.body_timeout)
        refuse_unknown_fields(fields, ("code",))
        code = fields.get("code")
        # Unknown, malformed, used and expired codes all answer the same.
        invalid = ProblemError(400, "exchange_code_invalid", "The exchange code is not valid.")
        if not isinstance(code, str) or not _EXCHANGE_CODE.fullmatch(code):
            raise invalid
        now = self.clock()
        started = await self.store.aexchange_portal_code(digest(code), now=now)
        if started is None:
            raise invalid
        record = started.record
        response = json_response({"session_id": record.id, "expires_at": record.expires_at})
        response.set_cookie(
            DEFAULT_PORTAL_COOKIE,
            started.token.reveal(),
            max_age=max(1, record.expires_at - int(now)),
            path=PORTAL_COOKIE_PATH,
            secure=self._secure(request),
            httponly=True,
            samesite="strict",
        )
        return response

    async def identity(self, request: Request) -> Response:
        """``GET /portal/v1/identity``: the session's identity, and what the end user may do
        (``permissions``) and give a key made here (``key_permissions``)."""
        principal = principal_from(request)
        record = await own_identity(self.store, principal)
        if record is None:  # deleted since the session was verified
            raise ProblemError(404, "not_found", "No such identity.")
        view = record.to_dict()
        return json_response(
            {
                "identity_id": record.id,
                "external_id": record.external_id,
                "meta": view["meta"],
                "rate_limit": view["rate_limit"],
                "permissions": principal.permissions.to_list(),
                "key_permissions": principal.grantable.to_list(),
            }
        )

    async def logout(self, request: Request) -> Response:
        principal = principal_from(request)
        # Which session to end: the credential the middleware just verified (cookie or
        # Bearer), read with the same core parser, found by its digest.
        credential = extract_credential(
            authorization_values(request.headers),
            parse_cookie_header(request.headers.getlist("cookie"), DEFAULT_PORTAL_COOKIE),
            self.portal_credentials,
        )
        if credential is not None:
            record = await self.store.afind_portal_session(digest(credential.secret.reveal()))
            if record is not None and record.workspace_id == principal.workspace_id:
                await self.store.arevoke_portal_session(
                    record.id, now=self.clock(), actor=request_actor(request, principal)
                )
        response = Response(status_code=204, headers={"cache-control": "no-store"})
        response.delete_cookie(
            DEFAULT_PORTAL_COOKIE,
            path=PORTAL_COOKIE_PATH,
            secure=self._secure(request),
            httponly=True,
            samesite="strict",
        )
        return response
