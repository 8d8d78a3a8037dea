"""Signing-secret rotation under continuous traffic, with a settable clock: no valid request lost.

The proxy side is the pure builder with its token-reuse cache; the API side is the real flow
(:class:`authcore.flow.Authenticator` with a verified-token cache). Requests reach the API a
few seconds after their token was minted, so tokens signed with the old secret are still in
flight after the proxy has switched.
"""

from __future__ import annotations

import base64
import json
from collections import deque
from collections.abc import Sequence

import attrs
import pytest

from authcore.backends.cache import VerifiedTokenCache
from authcore.errors import InvalidCredentialError
from authcore.flow import Authenticator, AuthSettings, Backends
from authcore.keyring import JWTSettings, Keyring, SigningSecret, check_rotation
from authcore.proxy import (
    DashboardSession,
    IncomingRequest,
    ProxySettings,
    TokenReuseCache,
    build_upstream_request,
)
from authcore.testing import MemoryStore, SettableClock, make_workspace
from authcore.tokens import Secret

START = 1_800_000_000
JWT = JWTSettings(max_lifetime=300, leeway=5)
# The proxy mints for the whole max_lifetime, the worst case for the wait before removal.
PROXY_SETTINGS = ProxySettings(token_ttl=300)
SECRETS = {
    "k1": SigningSecret("k1", Secret("k1-drill-secret-0123456789abcdefghijklmn")),
    "k2": SigningSecret("k2", Secret("k2-drill-secret-0123456789abcdefghijklmn")),
}
USERS = [
    DashboardSession(f"user_{index}", "org_1", ("keys.read",), f"User {index}")
    for index in range(5)
]
DELAYS = (0, 1, 2, 4)  # seconds between minting and the API seeing the request


def kid_of(authorization: str) -> str:
    header = authorization.removeprefix("Bearer ").split(".")[0]
    kid: str = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]
    return kid


@attrs.define
class Drill:
    clock: SettableClock
    store: MemoryStore
    api_kids: list[str]
    signing_kid: str
    api: Authenticator
    proxy_keyring: Keyring
    tokens: TokenReuseCache = attrs.Factory(TokenReuseCache)
    in_flight: deque[tuple[float, str, str]] = attrs.Factory(deque)
    accepted: int = 0
    rejected: int = 0
    accepted_by_kid: dict[str, int] = attrs.Factory(dict)

    @classmethod
    def start(cls) -> Drill:
        clock = SettableClock(float(START))
        store = MemoryStore()
        make_workspace(store, "ws_1", org_id="org_1")
        return cls(clock, store, ["k1"], "k1", _api(store, clock, ["k1"]), _signer(["k1"], "k1"))

    def set_api(self, kids: Sequence[str]) -> None:
        # A new keyring comes with a new verified-token cache: a cache that outlived the
        # removal of a secret would keep accepting tokens signed with it until they expire.
        self.api_kids = list(kids)
        self.api = _api(self.store, self.clock, kids)

    def switch_signer(self, kid: str) -> None:
        self.signing_kid = kid
        self.proxy_keyring = _signer(self.api_kids, kid)

    def tick(self, seconds: int) -> None:
        """Run ``seconds`` of traffic: every user sends one request per second."""
        for _ in range(seconds):
            now = self.clock()
            for index, user in enumerate(USERS):
                upstream = build_upstream_request(
                    IncomingRequest("GET", "/v1/keys"),
                    user,
                    self.store.find_workspace("ws_1"),
                    settings=PROXY_SETTINGS,
                    minter=self.proxy_keyring,
                    now=now,
                    tokens=self.tokens,
                )
                [authorization] = [v for n, v in upstream.wire_headers() if n == "authorization"]
                delay = DELAYS[(int(now) + index) % len(DELAYS)]
                self.in_flight.append((now + delay, authorization, user.user_id))
            self.clock.advance(1)
            self.deliver()

    def deliver(self) -> None:
        """Let the API see every request whose delivery time has come."""
        now = self.clock()
        pending: deque[tuple[float, str, str]] = deque()
        while self.in_flight:
            due, authorization, user_id = self.in_flight.popleft()
            if due > now:
                pending.append((due, authorization, user_id))
                continue
            try:
                result = self.api.authenticate([authorization])
            except InvalidCredentialError:
                self.rejected += 1
                continue
            assert result.principal.subject.id == user_id
            assert result.principal.workspace_id == "ws_1"
            self.accepted += 1
            kid = kid_of(authorization)
            self.accepted_by_kid[kid] = self.accepted_by_kid.get(kid, 0) + 1
        self.in_flight = pending

    def check(self, signing_kid: str, **kwargs: object) -> tuple[bool, tuple[str, ...]]:
        result = check_rotation(
            self.api_kids,
            signing_kid,
            now=int(self.clock()),
            settings=JWT,
            **kwargs,  # type: ignore[arg-type]  # switched_at / removing, typed by check_rotation
        )
        return result.safe, result.problems


def _api(store: MemoryStore, clock: SettableClock, kids: Sequence[str]) -> Authenticator:
    keyring = Keyring([SECRETS[kid] for kid in kids], settings=JWT)
    settings = AuthSettings(
        keyring=keyring, default_rate_limit=None, token_cache=VerifiedTokenCache()
    )
    return Authenticator(settings, clock=clock, backends=Backends(store=store))


def _signer(kids: Sequence[str], signing_kid: str) -> Keyring:
    return Keyring([SECRETS[kid] for kid in kids], signing_kid=signing_kid, settings=JWT)


def test_rotation_under_traffic_rejects_no_valid_request() -> None:
    drill = Drill.start()

    # Step 0: API [k1], proxy signs with k1.
    assert drill.check("k1", switched_at=None) == (True, ())
    drill.tick(60)

    # Switching first would be unsafe: the API does not know k2 yet.
    safe, problems = drill.check("k2", switched_at=None)
    assert not safe
    assert problems == ("the signing kid 'k2' is not in the API list",)

    # Step 1: API [k1, k2]; the proxy still signs with k1.
    drill.set_api(["k1", "k2"])
    assert drill.check("k1", switched_at=None) == (True, ())
    assert drill.check("k2", switched_at=None) == (True, ())
    drill.tick(60)

    # Step 2: the proxy signs with k2. Tokens signed with k1 are still in flight and reused.
    switched_at = int(drill.clock())
    drill.switch_signer("k2")
    late_k1 = _signer(["k1"], "k1").mint(
        subject="user_0", workspace_id="ws_1", permissions=["keys.read"], now=switched_at - 1
    )
    accepted_k1_before_switch = drill.accepted_by_kid.get("k1", 0)
    drill.tick(30)
    assert drill.accepted_by_kid.get("k1", 0) > accepted_k1_before_switch  # the overlap happened

    # Removing k1 now would be unsafe, and the check says how long to wait.
    safe, problems = drill.check("k2", switched_at=switched_at, removing=["k1"])
    assert not safe
    assert "s to go" in problems[0]

    drill.tick(JWT.max_lifetime + JWT.leeway - 30)
    # The last k1 token minted before the switch is still honoured at the very end of its life.
    assert int(drill.clock()) == switched_at + JWT.max_lifetime + JWT.leeway
    drill.clock.set(switched_at - 1 + JWT.max_lifetime + JWT.leeway - 1)
    assert drill.api.authenticate([f"Bearer {late_k1.reveal()}"]).principal.subject.id == "user_0"
    drill.clock.set(switched_at + JWT.max_lifetime + JWT.leeway)

    # Step 3: every k1 token has expired; remove k1.
    assert drill.check("k2", switched_at=switched_at, removing=["k1"]) == (True, ())
    drill.set_api(["k2"])
    drill.switch_signer("k2")
    drill.tick(60)
    drill.clock.advance(max(DELAYS))
    drill.deliver()

    assert drill.rejected == 0
    assert not drill.in_flight
    assert drill.accepted == len(USERS) * (60 + 60 + JWT.max_lifetime + JWT.leeway + 60)
    assert drill.accepted_by_kid["k2"] > 0

    # A token signed with k1 after its removal is rejected with 401.
    now = int(drill.clock())
    fresh_k1 = _signer(["k1"], "k1").mint(
        subject="user_0", workspace_id="ws_1", permissions=["keys.read"], now=now
    )
    with pytest.raises(InvalidCredentialError) as info:
        drill.api.authenticate([f"Bearer {fresh_k1.reveal()}"])
    assert info.value.status == 401
    with pytest.raises(InvalidCredentialError):
        drill.api.authenticate([f"Bearer {late_k1.reveal()}"])


def test_removing_the_old_secret_too_early_rejects_valid_requests() -> None:
    # The control experiment: the drill above would notice a wrong step order.
    drill = Drill.start()
    drill.tick(10)
    drill.set_api(["k1", "k2"])
    drill.switch_signer("k2")
    drill.set_api(["k2"])  # removal right after the switch: k1 tokens are still in flight
    drill.tick(10)
    assert drill.rejected > 0


def test_switching_before_the_api_knows_the_new_secret_rejects_valid_requests() -> None:
    drill = Drill.start()
    drill.tick(5)
    drill.proxy_keyring = _signer(["k1", "k2"], "k2")  # the API still has only k1
    drill.tick(5)
    assert drill.rejected > 0
