"""A sentinel secret driven through every failure path of each adapter never shows up in text.

The core-level twin is ``test_secret_hygiene.py``; here the request travels through the ASGI,
WSGI and Flask adapters (built with an ``on_error`` hook that records the exception each
adapter saw). Collected for every request: every log record at every level on the root
logger (message, arguments, formatted exception), the response status line, headers and
body, and the ``str``/``repr``/traceback of the exception, plus ``attrs.asdict`` where it is
an attrs instance. None may contain the sentinel, a raw credential or a credential's digest.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Callable, Iterable
from typing import Any

import attrs
import pytest
from flask import Flask, jsonify

from authcore.adapters import flask as flask_adapter
from authcore.adapters.asgi import AuthMiddleware as ASGIAuthMiddleware
from authcore.adapters.wsgi import AuthMiddleware as WSGIAuthMiddleware
from authcore.binding import principal_from
from authcore.credentials import CredentialSettings
from authcore.errors import AuthcoreError
from authcore.flow import AsyncBackends, Authenticator, AuthSettings, Backends
from authcore.keyring import Keyring, SigningSecret
from authcore.ratelimit import RateLimitDecision, RateLimitPolicy
from authcore.records import RootKeyRecord
from authcore.responses import HTTPResponse
from authcore.testing import (
    MemoryRateLimiter,
    MemoryStore,
    SettableClock,
    issue_portal_session,
    issue_root_key,
    make_workspace,
)
from authcore.tokens import Secret, digest
from tests.adapters.world import Answer
from tests.security.support import Headers, send_asgi_raw, send_wsgi_raw

SENTINEL = "SENTINELq7Zx3"
SIGNING = Secret("sign-" + SENTINEL + "-" + "p" * 24)
OTHER_SIGNING = Secret("other-" + SENTINEL + "-" + "q" * 24)
NOW = 1_800_000_000
COOKIE = "authcore_portal"


class LeakyStore(MemoryStore):
    """A store whose driver error quotes a connection string with the sentinel as password."""

    def find_root_key(self, digest: bytes, /) -> RootKeyRecord | None:
        raise ConnectionError(f"lookup {digest.hex()} on postgres://u:{SENTINEL}@db failed")

    async def afind_root_key(self, digest: bytes, /) -> RootKeyRecord | None:
        self.find_root_key(digest)
        return None


class LeakyLimiter:
    """A limiter whose client error quotes the sentinel (a Redis URL with a password)."""

    def hit(self, bucket: str, policy: RateLimitPolicy) -> RateLimitDecision:
        raise TimeoutError(f"redis://:{SENTINEL}@cache:6379 timed out")

    async def ahit(self, bucket: str, policy: RateLimitPolicy) -> RateLimitDecision:
        return self.hit(bucket, policy)


@attrs.define
class Bench:
    """The authenticators, the raw credentials in play, and the exceptions the hook saw."""

    api: Authenticator
    portal: Authenticator
    down: Authenticator
    no_limiter: Authenticator
    store: MemoryStore
    secrets: list[str] = attrs.Factory(list)
    seen: list[AuthcoreError] = attrs.Factory(list)

    def remember(self, value: str) -> str:
        self.secrets.append(value)
        return value

    def hook(self, error: AuthcoreError) -> HTTPResponse | None:
        self.seen.append(error)
        return None

    def groups(self) -> dict[str, Authenticator]:
        return {"/portal/": self.portal, "/down/": self.down, "/nolimit/": self.no_limiter}


def make_bench() -> Bench:
    clock = SettableClock(NOW)
    store = MemoryStore()
    limiter = MemoryRateLimiter(clock_us=clock.us)
    keyring = Keyring([SigningSecret("k1", SIGNING)], signing_kid="k1")

    def auth(settings: AuthSettings, store_: Any, limiter_: Any) -> Authenticator:
        return Authenticator(
            settings,
            clock=clock,
            backends=Backends(store_, limiter_),
            abackends=AsyncBackends(store_, limiter_),
        )

    api_settings = AuthSettings(keyring=keyring)
    portal_settings = AuthSettings(credentials=CredentialSettings.portal(COOKIE), realm="portal")
    leaky = LeakyStore()
    return Bench(
        api=auth(api_settings, store, limiter),
        portal=auth(portal_settings, store, limiter),
        down=auth(api_settings, leaky, limiter),
        no_limiter=auth(api_settings, store, LeakyLimiter()),
        store=store,
    )


# --- apps -----------------------------------------------------------------------------------


def asgi_app(bench: Bench) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        principal_from(scope).authorize("keys.read")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return ASGIAuthMiddleware(app, bench.api, groups=bench.groups(), on_error=bench.hook)


def wsgi_app(bench: Bench) -> Any:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        principal_from(environ).authorize("keys.read")
        start_response("200 OK", [])
        return [b"ok"]

    return WSGIAuthMiddleware(app, bench.api, groups=bench.groups(), on_error=bench.hook)


def flask_app(bench: Bench) -> Any:
    app = Flask("hygiene")

    @app.route("/<path:anything>", methods=["GET", "POST"])
    @flask_adapter.require("keys.read")
    def anything(anything: str) -> Any:
        return jsonify(ok=True)

    flask_adapter.AuthCore(app, bench.api, groups=bench.groups(), on_error=bench.hook)
    return app


async def send(adapter: str, bench: Bench, method: str, path: str, headers: Headers) -> Answer:
    if adapter == "asgi":
        return await send_asgi_raw(asgi_app(bench), method, path, headers)
    app = wsgi_app(bench) if adapter == "wsgi" else flask_app(bench)
    return send_wsgi_raw(app, method, path, headers)


# --- failure paths --------------------------------------------------------------------------

Request = tuple[str, str, Headers]


def _key(bench: Bench, workspace: str, *permissions: str, **options: Any) -> str:
    make_workspace(bench.store, workspace, rate_limit=options.pop("rate_limit", None))
    _, secret = issue_root_key(bench.store, workspace, permissions, now=NOW, **options)
    return bench.remember(secret.reveal())


def _jwt(bench: Bench, signing: Secret, *, now: int) -> str:
    ring = Keyring([SigningSecret("k1", signing)], signing_kid="k1")
    token = ring.mint(subject=SENTINEL, workspace_id="ws_" + SENTINEL, permissions=[], now=now)
    return bench.remember(token.reveal())


def _portal(bench: Bench) -> str:
    make_workspace(bench.store, "ws_portal")
    _, token = issue_portal_session(bench.store, "ws_portal", "user_" + SENTINEL, now=NOW)
    return bench.remember(token.reveal())


PATHS: dict[str, Callable[[Bench], Request]] = {
    "unknown_root_key": lambda b: ("GET", "/keys", [("Authorization", f"Bearer ak_{SENTINEL}")]),
    "nul_in_token": lambda b: ("GET", "/keys", [("Authorization", f"Bearer ak_{SENTINEL}\x00")]),
    "latin1_in_token": lambda b: ("GET", "/keys", [("Authorization", f"Bearer {SENTINEL}\xe9")]),
    "tab_separator": lambda b: ("GET", "/keys", [("Authorization", f"Bearer\tak_{SENTINEL}")]),
    "basic_scheme": lambda b: ("GET", "/keys", [("Authorization", f"Basic {SENTINEL}")]),
    "token_scheme": lambda b: ("GET", "/keys", [("Authorization", f"Token {SENTINEL}")]),
    "repeated": lambda b: (
        "GET",
        "/keys",
        [("Authorization", f"Bearer {_key(b, 'ws_r', 'keys.read')}")] * 2,
    ),
    "too_large": lambda b: (
        "GET",
        "/keys",
        [("Authorization", f"Bearer ak_{SENTINEL}" + "A" * 20_000)],
    ),
    "jwt_other_secret": lambda b: (
        "GET",
        "/keys",
        [("Authorization", f"Bearer {_jwt(b, OTHER_SIGNING, now=NOW)}")],
    ),
    "jwt_expired": lambda b: (
        "GET",
        "/keys",
        [("Authorization", f"Bearer {_jwt(b, SIGNING, now=NOW - 9999)}")],
    ),
    "jwt_unknown_workspace": lambda b: (
        "GET",
        "/keys",
        [("Authorization", f"Bearer {_jwt(b, SIGNING, now=NOW)}")],
    ),
    "jwt_garbage": lambda b: (
        "GET",
        "/keys",
        [("Authorization", f"Bearer eyJ{SENTINEL}.eyJ{SENTINEL}.{SENTINEL}")],
    ),
    "portal_token_on_api": lambda b: ("GET", "/keys", [("Authorization", f"Bearer {_portal(b)}")]),
    "unknown_portal_cookie": lambda b: (
        "GET",
        "/portal/profile",
        [("Cookie", f"{COOKIE}=pt_{SENTINEL}")],
    ),
    "portal_cookie_and_bearer": lambda b: (
        "GET",
        "/portal/profile",
        [("Cookie", f"{COOKIE}={_portal(b)}"), ("Authorization", f"Bearer {_portal(b)}")],
    ),
    "portal_cookie_cross_site_post": lambda b: (
        "POST",
        "/portal/profile",
        [("Cookie", f"{COOKIE}={_portal(b)}"), ("Sec-Fetch-Site", "cross-site")],
    ),
    "credential_in_query": lambda b: ("GET", f"/keys?access_token=ak_{SENTINEL}", []),
    "store_driver_error": lambda b: (
        "GET",
        "/down/keys",
        [("Authorization", f"Bearer {_key(b, 'ws_down', 'keys.read')}")],
    ),
    "limiter_driver_error": lambda b: (
        "GET",
        "/nolimit/keys",
        [("Authorization", f"Bearer {_key(b, 'ws_nolimit', 'keys.read')}")],
    ),
    "permission_denied": lambda b: (
        "GET",
        "/keys",
        [("Authorization", f"Bearer {_key(b, 'ws_denied', 'billing.read')}")],
    ),
    "disabled_workspace": lambda b: (
        "GET",
        "/keys",
        [("Authorization", f"Bearer {_disabled_key(b)}")],
    ),
}


def _disabled_key(bench: Bench) -> str:
    make_workspace(bench.store, "ws_off", disabled=True)
    _, secret = issue_root_key(bench.store, "ws_off", ["keys.read"], now=NOW)
    return bench.remember(secret.reveal())


def texts_of_error(error: BaseException) -> list[str]:
    texts = [str(error), repr(error), "".join(traceback.format_exception(error))]
    if attrs.has(type(error)):
        texts.append(repr(attrs.asdict(error)))  # type: ignore[arg-type]  # attrs.has checked it
    return texts


def texts_of_logs(records: list[logging.LogRecord]) -> list[str]:
    formatter = logging.Formatter()
    texts: list[str] = []
    for record in records:
        texts += [record.getMessage(), repr(record.args), record.name]
        if record.exc_info:
            texts.append(formatter.formatException(record.exc_info))
        if record.exc_text:
            texts.append(record.exc_text)
        texts.append(repr(vars(record)))
    return texts


@pytest.mark.parametrize("adapter", ["asgi", "wsgi", "flask"])
@pytest.mark.parametrize("name", sorted(PATHS))
def test_no_secret_in_any_text_of_a_failure(
    adapter: str, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # the root logger, every level
    bench = make_bench()
    method, path, headers = PATHS[name](bench)
    answer = asyncio.run(send(adapter, bench, method, path, headers))
    assert answer.status >= 400, answer
    # Each adapter ran the hook for this failure (or it is a 401 missing credential).
    assert bench.seen, name
    forbidden = [SENTINEL, *bench.secrets, *(digest(s).hex() for s in bench.secrets)]
    texts = [
        str(answer.status),
        answer.body.decode("latin-1"),
        *(f"{k}: {v}" for k, v in answer.headers),
        *(text for error in bench.seen for text in texts_of_error(error)),
        *texts_of_logs(caplog.records),
    ]
    leaks = [(secret[:12], text[:80]) for secret in forbidden for text in texts if secret in text]
    assert not leaks, leaks


def test_the_leak_check_sees_a_sentinel_where_there_is_one() -> None:
    # Guards against a vacuous check: the collectors do see text that holds the sentinel.
    error = RuntimeError(f"password {SENTINEL}")
    record = logging.LogRecord("x", logging.DEBUG, __file__, 1, "%s", (SENTINEL,), None)
    assert any(SENTINEL in text for text in texts_of_error(error))
    assert any(SENTINEL in text for text in texts_of_logs([record]))
