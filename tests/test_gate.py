"""The request gate: one entry point from a request's facts to a principal or an answer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from authcore.backends.cache import CachedStore
from authcore.credentials import CredentialSettings
from authcore.errors import ConfigurationError, PermissionDeniedError
from authcore.flow import AsyncBackends, Authenticated, Authenticator, AuthSettings, Backends
from authcore.gate import AuthOutcome, Gate
from authcore.keyring import Keyring, SigningSecret
from authcore.ratelimit import RateLimitPolicy
from authcore.responses import HTTPResponse
from authcore.testing import (
    MemoryRateLimiter,
    MemoryStore,
    SettableClock,
    issue_portal_session,
    issue_root_key,
    make_workspace,
)
from authcore.tokens import Secret

NOW = 1_800_000_000.0
KEYRING = Keyring([SigningSecret("k1", Secret("gate-secret-" + "x" * 40))], signing_kid="k1")


class World:
    def __init__(self) -> None:
        self.clock = SettableClock(NOW)
        self.store = MemoryStore()
        make_workspace(self.store, "ws_gate", rate_limit=RateLimitPolicy(2, 60))
        _, key = issue_root_key(self.store, "ws_gate", ["keys.read"], now=NOW)
        _, session = issue_portal_session(self.store, "ws_gate", "end-user", ["keys.read"])
        self.key, self.session = key.reveal(), session.reveal()
        cache = CachedStore(self.store, clock=self.clock)
        limiter = MemoryRateLimiter(clock_us=self.clock.us)
        backends = Backends(store=cache, limiter=limiter)
        abackends = AsyncBackends(store=cache, limiter=limiter)
        self.api = Authenticator(
            AuthSettings(keyring=KEYRING), clock=self.clock, backends=backends, abackends=abackends
        )
        self.portal = Authenticator(
            AuthSettings(credentials=CredentialSettings.portal(), realm="portal"),
            clock=self.clock,
            backends=backends,
            abackends=abackends,
        )
        self.outcomes: list[AuthOutcome] = []
        self.bugs: list[tuple[str, str]] = []
        self.gate = Gate.build(
            self.api,
            groups={"/portal/": self.portal},
            public_paths=["/healthz"],
            public_prefixes=["/static/"],
            observer=self.outcomes.append,
            timer=lambda: 0.0,
            on_bug=lambda exc, where: self.bugs.append((type(exc).__name__, where)),
        )


@pytest.fixture
def world() -> World:
    return World()


def test_route_picks_the_group_and_skips_public_paths(world: World) -> None:
    gate = world.gate
    assert gate.route("/v1/keys") is world.api
    assert gate.route("/portal/v1/keys") is world.portal
    assert gate.route("/healthz") is None
    assert gate.route("/static/app.js") is None
    assert gate.route("/static/../v1/keys") is world.api  # never public by prefix


def test_an_admitted_request_returns_the_principal_and_is_observed(world: World) -> None:
    result = world.gate.admit(world.api, "GET", [f"Bearer {world.key}"])
    assert isinstance(result, Authenticated)
    assert result.principal.workspace_id == "ws_gate"
    (outcome,) = world.outcomes
    assert (outcome.status, outcome.code, outcome.source, outcome.workspace_id) == (
        200,
        "admitted",
        "root_key",
        "ws_gate",
    )
    assert outcome.decision == result.rate_limit
    assert outcome.replayed is False


def test_the_observer_tells_a_replay_from_a_flow(world: World) -> None:
    for _ in range(2):
        world.gate.admit(world.api, "GET", [f"Bearer {world.key}"])
    assert [outcome.replayed for outcome in world.outcomes] == [False, True]


def test_refusals_are_answered_and_observed_with_their_code(world: World) -> None:
    unknown = world.gate.admit(world.api, "GET", ["Bearer ak_" + "Q" * 43])
    missing = world.gate.admit(world.api, "GET", [])
    assert isinstance(unknown, HTTPResponse)
    assert isinstance(missing, HTTPResponse)
    assert (unknown.status, missing.status) == (401, 401)
    assert [(o.code, o.source) for o in world.outcomes] == [
        ("credential_invalid", "root_key"),
        ("credential_missing", ""),
    ]


def test_a_rate_limited_refusal_carries_its_decision(world: World) -> None:
    for _ in range(3):
        result = world.gate.admit(world.api, "GET", [f"Bearer {world.key}"])
    assert isinstance(result, HTTPResponse)
    assert result.status == 429
    last = world.outcomes[-1]
    assert last.code == "rate_limited"
    assert last.decision is not None
    assert last.decision.allowed is False


def test_the_inline_and_awaited_paths_give_the_same_answers(world: World) -> None:
    header = [f"Bearer {world.key}"]
    assert world.gate.admit_inline(world.api, header) is None  # nothing to replay yet
    first = asyncio.run(world.gate.aadmit(world.api, "GET", header))
    second = world.gate.admit_inline(world.api, header)
    third = world.gate.admit_inline(world.api, header)
    assert isinstance(first, Authenticated)
    assert isinstance(second, Authenticated)
    assert isinstance(third, HTTPResponse)
    assert third.status == 429
    assert [o.code for o in world.outcomes] == ["admitted", "admitted", "rate_limited"]


def test_a_cookie_write_from_another_site_is_refused_403(world: World) -> None:
    cookie = [f"authcore_portal={world.session}"]
    refused = world.gate.admit(world.portal, "POST", [], cookie, ["cross-site"])
    allowed = world.gate.admit(world.portal, "POST", [], cookie, ["same-origin"])
    own = world.gate.admit(
        world.portal, "POST", [], cookie, [], ["http://api.example"], "http", ["api.example"]
    )
    assert isinstance(refused, HTTPResponse)
    assert refused.status == 403
    assert isinstance(allowed, Authenticated)
    assert isinstance(own, Authenticated)
    assert world.outcomes[0].source == "portal_session"


def test_a_bug_in_the_step_is_a_safe_500_reported_to_on_bug(world: World) -> None:
    broken = Authenticator(AuthSettings(), clock=world.clock, backends=Backends(store=_Exploding()))
    result = world.gate.admit(broken, "GET", [f"Bearer {world.key}"])
    assert isinstance(result, HTTPResponse)
    assert result.status == 503  # a failing store is "unavailable", not a bug
    gate = Gate.build(world.api, on_bug=lambda exc, where: world.bugs.append(("x", where)))
    weird = Authenticator(
        AuthSettings(), clock=_raising_clock, backends=Backends(store=MemoryStore())
    )
    crashed = gate.admit(weird, "GET", [f"Bearer {world.key}"])
    assert isinstance(crashed, HTTPResponse)
    assert crashed.status == 500
    assert b"unexpected" not in crashed.body
    assert ("x", "the authentication step") in world.bugs


def test_an_observer_that_raises_changes_nothing(world: World) -> None:
    def broken(outcome: AuthOutcome) -> None:
        raise RuntimeError("observer bug")

    bugs: list[str] = []
    gate = Gate.build(
        world.api, observer=broken, timer=lambda: 0.0, on_bug=lambda e, where: bugs.append(where)
    )
    result = gate.admit(world.api, "GET", [f"Bearer {world.key}"])
    assert isinstance(result, Authenticated)
    assert bugs == ["the auth observer"]


def test_on_error_may_replace_the_answer_and_a_broken_hook_falls_back(world: World) -> None:
    custom = HTTPResponse(418, (("content-type", "text/plain"),), b"teapot")
    gate = Gate.build(world.api, on_error=lambda error: custom)
    answer = gate.answer(PermissionDeniedError())
    assert (answer.status, answer.body) == (418, b"teapot")
    assert ("content-length", "6") in answer.headers

    def broken(error: Any) -> HTTPResponse:
        raise RuntimeError("hook bug")

    fallback = Gate.build(world.api, on_error=broken).answer(PermissionDeniedError())
    assert fallback.status == 403


def test_metrics_or_an_observer_need_a_timer(world: World) -> None:
    with pytest.raises(ConfigurationError):
        Gate.build(world.api, observer=lambda outcome: None)
    with pytest.raises(ConfigurationError):
        Gate.build(world.api, metrics=lambda status, workspace, seconds: None)


class _Exploding(MemoryStore):
    def find_root_key(self, digest: bytes, /) -> Any:
        raise OSError("disk on fire")


def _raising_clock() -> float:
    raise ZeroDivisionError


def test_the_observer_hears_the_inline_path_too(world: World) -> None:
    header = [f"Bearer {world.key}"]
    asyncio.run(world.gate.aadmit(world.api, "GET", header))
    assert isinstance(world.gate.admit_inline(world.api, header), Authenticated)
    refused = world.gate.admit_inline(world.api, header)
    assert isinstance(refused, HTTPResponse)
    assert [o.code for o in world.outcomes] == ["admitted", "admitted", "rate_limited"]
    assert [o.replayed for o in world.outcomes[:2]] == [False, True]
