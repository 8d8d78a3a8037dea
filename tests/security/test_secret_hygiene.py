"""A sentinel secret driven through every failure path never shows up in text.

For each path we collect every piece of text a user could see or store: the exception's
``str``/``repr``/formatted traceback (with chained causes), log records at every level, the
HTTP response (body and headers), and ``repr``/``attrs.asdict`` of every value involved.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Callable

import attrs
import pytest

from authcore.credentials import CredentialSettings, extract_credential
from authcore.errors import AuthcoreError
from authcore.flow import AsyncBackends, Authenticator, AuthSettings, Backends
from authcore.keyring import JWTSettings, Keyring, SigningSecret
from authcore.records import RootKeyRecord
from authcore.responses import error_response
from authcore.testing import (
    MemoryRateLimiter,
    MemoryStore,
    SettableClock,
    issue_root_key,
    make_workspace,
)
from authcore.tokens import Secret

SENTINEL = "SENTINELx9Qz7"
SIGNING = Secret("signing-" + SENTINEL + "-" + "p" * 24)
NOW = 1_800_000_000


def keyring(kid: str = "k1") -> Keyring:
    return Keyring([SigningSecret(kid, SIGNING)], signing_kid=kid, settings=JWTSettings())


def texts_of(exc: BaseException) -> list[str]:
    out = [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    if isinstance(exc, AuthcoreError):
        response = error_response(exc)
        out.append(response.body.decode())
        out.extend(f"{name}: {value}" for name, value in response.headers)
        out.append(repr(response))
    return out


class LeakyStore(MemoryStore):
    """A failing store whose driver error quotes the digest and a connection password."""

    def find_root_key(self, digest: bytes, /) -> RootKeyRecord | None:
        raise ConnectionError(f"lookup {digest.hex()} failed for postgres://u:{SENTINEL}@db")

    async def afind_root_key(self, digest: bytes, /) -> RootKeyRecord | None:
        raise ConnectionError(f"lookup {digest.hex()} failed for postgres://u:{SENTINEL}@db")


def failing_requests() -> list[tuple[str, list[str], Callable[[MemoryStore], None] | None]]:
    key = f"ak_{SENTINEL}" + "A" * 30
    jwt_other = (
        Keyring([SigningSecret("k2", Secret("other-" + "q" * 40))], signing_kid="k2")
        .mint(subject=SENTINEL, workspace_id="ws", permissions=[], now=NOW)
        .reveal()
    )
    expired = keyring().mint(subject=SENTINEL, workspace_id="ws", permissions=[], now=NOW - 9999)
    return [
        ("unknown root key", [f"Bearer {key}"], None),
        ("malformed", [f"Bearer {key}\x00"], None),
        ("tab separator", [f"Bearer\t{key}"], None),
        ("basic scheme", [f"Basic {SENTINEL}"], None),
        ("duplicate", [f"Bearer {key}", f"Bearer {key}"], None),
        ("too large", [f"Bearer {key}" + "A" * 10_000], None),
        ("jwt wrong secret", [f"Bearer {jwt_other}"], None),
        ("jwt expired", [f"Bearer {expired.reveal()}"], None),
        ("jwt garbage", [f"Bearer eyJ{SENTINEL}.eyJ{SENTINEL}.{SENTINEL}"], None),
        ("portal token on api", [f"Bearer pt_{SENTINEL}"], None),
    ]


@pytest.mark.parametrize(("name", "values", "_"), failing_requests(), ids=lambda v: str(v)[:20])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_sentinel_absent_from_every_failure(
    name: str,
    values: list[str],
    _: object,
    mode: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    clock = SettableClock(NOW)
    store = MemoryStore()
    make_workspace(store, "ws")
    limiter = MemoryRateLimiter(clock_us=clock.us)
    auth = Authenticator(
        AuthSettings(keyring=keyring()),
        clock=clock,
        backends=Backends(store, limiter),
        abackends=AsyncBackends(store, limiter),
    )

    def attempt() -> None:
        if mode == "sync":
            auth.authenticate(values)
        else:
            asyncio.run(auth.aauthenticate(values))

    with pytest.raises(AuthcoreError) as info:
        attempt()
    seen = [*texts_of(info.value), caplog.text]
    assert all(SENTINEL not in text for text in seen), name


def test_sentinel_absent_when_the_store_driver_leaks_it(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    store = LeakyStore()
    make_workspace(store, "ws")
    _, key = issue_root_key(store, "ws")
    auth = Authenticator(AuthSettings(), clock=SettableClock(NOW), backends=Backends(store))
    with pytest.raises(AuthcoreError) as info:
        auth.authenticate([f"Bearer {key.reveal()}"])
    # The chained ConnectionError is deliberately not attached: flow.throw() raises a fresh
    # UnavailableError, so the driver's message stays out of the traceback too.
    seen = [*texts_of(info.value), caplog.text]
    assert all(SENTINEL not in text for text in seen)


def test_sentinel_absent_from_values_that_hold_it() -> None:
    ring = keyring()
    token = ring.mint(subject="u", workspace_id="ws", permissions=[], now=NOW)
    credential = extract_credential([f"Bearer {token.reveal()}"], None, CredentialSettings.api())
    signing = SigningSecret("k1", SIGNING)
    assert credential is not None
    for value in (ring, token, credential, signing, SIGNING):
        assert SENTINEL not in repr(value)
        assert SENTINEL not in str(value)
    for record in (ring, credential, signing):
        assert SENTINEL not in repr(attrs.asdict(record))
    assert token.reveal() not in repr(credential)
