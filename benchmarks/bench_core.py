"""Rows for the pure core: the hot path against the floor, JWT verification, permission checks."""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Sequence

import jwt

from authcore.backends.cache import CachedStore
from authcore.credentials import CredentialSettings, extract_credential
from authcore.flow import (
    Authenticator,
    AuthSettings,
    Backends,
    TokenCache,
    authentication_flow,
    run_flow,
)
from authcore.keyring import JWTSettings, Keyring, SigningSecret
from authcore.permissions import PermissionSet
from authcore.principal import Principal, Source, Subject
from authcore.testing import add_identity, issue_root_key
from authcore.tokens import Secret
from benchmarks.floor import FloorDeniedError, floor_authenticate, floor_authenticate_levels
from benchmarks.harness import Mode, Row, compare, loop, not_measured
from benchmarks.world import GRANTS, PERMISSION, POLICY, WORKSPACE, World, build_world, now_us

__all__ = ["authcore_request", "authenticator_for", "floor_request", "flow_request", "run"]

_ISSUER = "bench-dashboard"
_AUDIENCE = "bench-api"
# 32+ distinct bytes per kid; these are benchmark fixtures, never real secrets.
_SECRETS = [Secret(f"bench-secret-{i:02d}-" + "x" * 40) for i in range(10)]


def authenticator_for(world: World, *, replay: bool = True) -> Authenticator:
    """The world's Authenticator over ``CachedStore(MemoryStore)``, replaying or not."""
    store = CachedStore(world.store)
    return Authenticator(
        world.settings,
        clock=time.time,
        backends=Backends(store=store, limiter=world.limiter),
        replay=replay,
    )


def authcore_request(
    world: World, header: str | None = None, *, replay: bool = True
) -> Callable[[], None]:
    """Return one authcore request: Authenticator.authenticate (steps 1-4) + authorize.

    With ``replay`` (the hot path) a repeated credential replays the flow's conclusion from
    the CachedStore; without it every request runs the whole flow.
    """
    authenticator = authenticator_for(world, replay=replay)
    values = [header or world.header]

    def request() -> None:
        authenticator.authenticate(values).principal.authorize(PERMISSION)

    return request


def flow_request(world: World, header: str | None = None) -> Callable[[], None]:
    """Return one request through the flow itself: extract, digest, flow, authorize."""
    settings = world.settings
    credential_settings = settings.credentials
    backends = world.backends
    values = [header or world.header]

    def request() -> None:
        credential = extract_credential(values, None, credential_settings)
        assert credential is not None
        result = run_flow(authentication_flow(credential, settings, time.time()), backends)
        result.principal.authorize(PERMISSION)

    return request


def floor_request(world: World, *, levels: int = 1) -> Callable[[], None]:
    """Return one floor request: the same job, hand-written (with ``levels=3``, the key's,
    its identity's and its workspace's limits, all or nothing)."""
    header = world.header
    keys = world.floor_keys
    tats: dict[str, int] = {}
    interval, tau = world.interval_us, world.tau_us
    authenticate = floor_authenticate if levels == 1 else floor_authenticate_levels

    def request() -> None:
        if not header.startswith("Bearer "):
            raise FloorDeniedError
        principal = authenticate(header[7:], keys, tats, now_us(), interval, tau)
        if PERMISSION not in principal.permissions:
            raise FloorDeniedError

    return request


def _keyring(count: int) -> Keyring:
    # The signing kid is the last of the list, the worst place for a linear search.
    secrets = [SigningSecret(f"k{i}", _SECRETS[i]) for i in range(10 - count, 10)]
    return Keyring(
        secrets,
        signing_kid="k9",
        settings=JWTSettings(issuer=_ISSUER, audience=_AUDIENCE, max_lifetime=300, leeway=5),
    )


def _jwt_token(keyring: Keyring) -> str:
    return keyring.mint(
        subject="user_1",
        workspace_id=WORKSPACE,
        permissions=["keys.read", "keys.create"],
        now=int(time.time()),
        ttl=300,
    ).reveal()


def _pipeline_row(mode: Mode) -> Row:
    world = build_world()
    return compare(
        "core.pipeline",
        "core hot path, root key: Authenticator.authenticate (conclusion replayed from "
        "CachedStore over MemoryStore, MemoryRateLimiter decision) + authorize",
        subject=loop(authcore_request(world)),
        baseline=loop(floor_request(world)),
        baseline_what="floor (sha256 + dict + frozen principal + inline GCRA + set)",
        mode=mode,
        target=2.0,
        note="target: the adapter rows' bound (2x the floor) applied to the core alone",
    )


def _miss_row(mode: Mode) -> Row:
    world = build_world()
    return compare(
        "core.flow",
        "the whole flow on every request: extract + digest + flow (MemoryStore lookups, "
        "principal, MemoryRateLimiter) + authorize, what a replay skips",
        subject=loop(flow_request(world)),
        baseline=loop(authcore_request(world)),
        baseline_what="the hot path (core.pipeline)",
        mode=mode,
        target=None,
        note="info: the cost of a miss against a replay",
    )


def _identity_row(mode: Mode) -> Row:
    world = build_world()
    # A key of an identity, with limits at all three levels (its own, its identity's, its
    # workspace's), generous enough never to refuse: the all-or-nothing three-level decision.
    owner = add_identity(world.store, WORKSPACE, "customer-1", rate_limit=POLICY)
    _, secret = issue_root_key(
        world.store, WORKSPACE, GRANTS, now=time.time(), identity_id=owner.id,
        rate_limit=POLICY,
    )  # fmt: skip
    return compare(
        "core.identity",
        "core hot path, root key of an identity with its own limit: three levels decided "
        "together (MemoryRateLimiter.hit_levels) + authorize",
        subject=loop(authcore_request(world, f"Bearer {secret.reveal()}")),
        baseline=loop(authcore_request(world)),
        baseline_what="the same request with the workspace limit only (core.pipeline)",
        mode=mode,
        target=1.15,
        note="core.identity_floor: what the same two extra levels cost the floor",
    )


def _identity_floor_row(mode: Mode) -> Row:
    world = build_world()
    return compare(
        "core.identity_floor",
        "floor request with three limits (key, identity, workspace), all or nothing: one "
        "inline GCRA step per level, writes only when all admit",
        subject=loop(floor_request(world, levels=3)),
        baseline=loop(floor_request(world)),
        baseline_what="the floor request with the workspace limit only",
        mode=mode,
        target=None,
        note="info: the floor's own cost of two more levels, the least core.identity can be",
    )


def _pyjwt_decode(token: str) -> Callable[[], None]:
    """Return PyJWT's decode with the options Keyring.verify enforces (as far as PyJWT can)."""
    key = _SECRETS[9].reveal()
    options = {"require": ["exp", "iat", "iss", "aud", "sub"]}

    def decode() -> None:
        jwt.decode(
            token,
            key,
            algorithms=["HS256"],
            audience=_AUDIENCE,
            issuer=_ISSUER,
            options=options,  # type: ignore[arg-type]  # PyJWT types options as a TypedDict
            leeway=5,
        )

    return decode


_PYJWT_WHAT = "PyJWT jwt.decode (HS256, aud, iss, require exp/iat/iss/aud/sub)"


def _jwt_cold_row(mode: Mode) -> Row:
    keyring = _keyring(1)
    token = _jwt_token(keyring)

    def authcore_verify() -> None:
        keyring.verify(token, time.time())

    return compare(
        "jwt.cold",
        "JWT cold verification: Keyring.verify (1 secret, kid)",
        subject=loop(authcore_verify),
        baseline=loop(_pyjwt_decode(token)),
        baseline_what=_PYJWT_WHAT,
        mode=mode,
        target=1.2,
    )


def _jwt_cold_request_row(mode: Mode) -> Row:
    keyring = _keyring(1)
    world = build_world(AuthSettings(credentials=CredentialSettings.api(), keyring=keyring))
    token = _jwt_token(keyring)
    return compare(
        "jwt.cold_request",
        "JWT request, no token cache: extract + verify + principal + limiter + authorize",
        subject=loop(flow_request(world, f"Bearer {token}")),
        baseline=loop(_pyjwt_decode(token)),
        baseline_what=_PYJWT_WHAT,
        mode=mode,
        target=None,
        note="info: the whole request against decode alone; jwt.cold holds the 1.2x target",
    )


def _jwt_kid_row(mode: Mode) -> Row:
    one, ten = _keyring(1), _keyring(10)
    token = _jwt_token(ten)  # signed with k9: the same bytes verify under both keyrings

    def verify_ten() -> None:
        ten.verify(token, time.time())

    def verify_one() -> None:
        one.verify(token, time.time())

    return compare(
        "jwt.kid10",
        "JWT verification, 10 secrets in the keyring, token with kid (the last one)",
        subject=loop(verify_ten),
        baseline=loop(verify_one),
        baseline_what="the same token, 1 secret in the keyring",
        mode=mode,
        target=1.1,
    )


def _verified_token_cache() -> TokenCache | None:
    try:
        cache_module = importlib.import_module("authcore.backends.cache")
    except ImportError:
        return None
    factory = getattr(cache_module, "VerifiedTokenCache", None)
    if factory is None:
        return None
    cache: TokenCache = factory()
    return cache


def _jwt_cache_row(mode: Mode) -> Row:
    cache = _verified_token_cache()
    name, what = "jwt.cache_hit", "JWT request, conclusion replayed (core hot path)"
    if cache is None:
        return not_measured(
            name, what, "authcore.backends.cache.VerifiedTokenCache not written yet", target=1.2
        )
    keyring = _keyring(1)
    world = build_world(
        AuthSettings(credentials=CredentialSettings.api(), keyring=keyring, token_cache=cache)
    )
    token = _jwt_token(keyring)
    return compare(
        name,
        what,
        subject=loop(authcore_request(world, f"Bearer {token}")),
        baseline=loop(authcore_request(world)),
        baseline_what="root-key request (core hot path)",
        mode=mode,
        target=1.2,
    )


def _grants(count: int, *, wildcard: bool) -> list[str]:
    if not wildcard:
        return ["keys.read", *(f"res{i}.read" for i in range(count - 1))]
    # Wildcards on both sides of the dot, so the trie has wide levels to walk.
    half = (count - 1) // 2
    return [
        "keys.*",
        *(f"res{i}.*" for i in range(half)),
        *(f"*.act{i}" for i in range(count - 1 - half)),
    ]


def _permission_row(mode: Mode, *, wildcard: bool) -> Row:
    def principal(count: int) -> Principal:
        grants = PermissionSet(_grants(count, wildcard=wildcard))
        assert len(grants) == count
        return Principal(WORKSPACE, Subject("root_key", "key_1"), Source.ROOT_KEY, grants)

    big, small = principal(1000), principal(10)
    kind = "wildcard match (keys.*)" if wildcard else "exact grant"
    return compare(
        f"perm.{'wildcard' if wildcard else 'exact'}",
        f"principal.authorize('keys.read'), 1,000 grants, {kind}",
        subject=loop(lambda: big.authorize(PERMISSION)),
        baseline=loop(lambda: small.authorize(PERMISSION)),
        baseline_what="the same with 10 grants",
        mode=mode,
        target=1.5,
    )


#: (row name, measure): the suite runs only the rows ``--only`` selects.
ROWS: list[tuple[str, Callable[[Mode], Row]]] = [
    ("core.pipeline", _pipeline_row),
    ("core.flow", _miss_row),
    ("core.identity", _identity_row),
    ("core.identity_floor", _identity_floor_row),
    ("jwt.cache_hit", _jwt_cache_row),
    ("jwt.cold", _jwt_cold_row),
    ("jwt.cold_request", _jwt_cold_request_row),
    ("jwt.kid10", _jwt_kid_row),
    ("perm.exact", lambda mode: _permission_row(mode, wildcard=False)),
    ("perm.wildcard", lambda mode: _permission_row(mode, wildcard=True)),
]


def run(mode: Mode, only: Sequence[str] = ()) -> list[Row]:
    """Return the core rows (those whose name starts with an entry of ``only``, if given)."""
    # Self-check before timing: both sides must take the admitted path.
    world = build_world()
    authcore_request(world)()
    floor_request(world)()
    return [
        measure(mode)
        for name, measure in ROWS
        if not only or any(name.startswith(o) or o == "core" for o in only)
    ]
