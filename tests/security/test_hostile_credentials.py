"""Root keys and portal tokens that are almost right, through each adapter.

Near misses (right id with the wrong secret, truncated, extended, case-changed, full-width
digits) are 401 with the same answer as an unknown key, or 400 where the bytes are not even
b64token. Revocation through the library is immediate even behind the verification cache;
expiry happens at the exact second; a disabled workspace is 403 only for a verified
credential; a store that is down or answers garbage is 503.
"""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from authcore.backends.cache import CachedStore
from authcore.flow import AsyncBackends, Authenticator, AuthSettings, Backends
from authcore.records import OPERATOR_ACTOR, PortalSessionRecord, RootKeyRecord, WorkspaceRecord
from authcore.testing import MemoryRateLimiter, issue_portal_session, make_workspace
from authcore.tokens import DEFAULT_ROOT_KEY_PREFIX
from tests.adapters.drivers import SENDERS
from tests.adapters.world import (
    PORTAL_COOKIE,
    UNKNOWN_KEY,
    Answer,
    World,
    make_world,
)
from tests.security.support import Headers, on_the_wire

ADAPTERS = sorted(SENDERS)
PREFIX = DEFAULT_ROOT_KEY_PREFIX
FULL_WIDTH = str.maketrans("0123456789", "".join(chr(0xFF10 + d) for d in range(10)))


async def ask(adapter: str, world: World, headers: Headers, path: str = "/keys") -> Answer:
    async with SENDERS[adapter](world) as send:
        answer: Answer = await send("GET", path, headers)
    return answer


def bearer(token: str) -> Headers:
    return [("Authorization", f"Bearer {on_the_wire(token)}")]


def _other_char(char: str) -> str:
    return "B" if char != "B" else "C"


NEAR_MISSES = {
    # same id/start (prefix + 6 characters), every later character different
    "right_start_wrong_secret": lambda k: k[:9] + "".join(_other_char(c) for c in k[9:]),
    "last_character_changed": lambda k: k[:-1] + _other_char(k[-1]),
    "truncated_by_one": lambda k: k[:-1],
    "truncated_to_start": lambda k: k[:9],
    "prefix_only": lambda k: k[: len(PREFIX)],
    "one_extra_character": lambda k: k + "A",
    "extra_padding": lambda k: k + "=",
    "doubled": lambda k: k + k,
    "body_case_swapped": lambda k: k[: len(PREFIX)] + k[len(PREFIX) :].swapcase(),
    "all_upper_case": lambda k: k.upper(),
    "prefix_upper_case": lambda k: k[: len(PREFIX)].upper() + k[len(PREFIX) :],
}

#: Bytes that are not b64token at all: 400 before any lookup.
NOT_B64TOKEN = {
    "full_width_digits": lambda k: (
        k[: len(PREFIX)] + ("0" + k[len(PREFIX) :]).translate(FULL_WIDTH)
    ),
    "one_full_width_digit": lambda k: k[:5] + "\uff10" + k[6:],
    "full_width_prefix": lambda k: "\uff41\uff4b_" + k[len(PREFIX) :],
}


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize("name", sorted(NEAR_MISSES))
async def test_a_root_key_near_miss_answers_like_an_unknown_key(adapter: str, name: str) -> None:
    world = make_world()
    key = world.key("near", "keys.read")
    assert (await ask(adapter, world, bearer(key))).status == 200  # the key itself works
    spoiled = NEAR_MISSES[name](key)
    assert spoiled != key
    answer = await ask(adapter, world, bearer(spoiled))
    baseline = await ask(adapter, world, bearer(UNKNOWN_KEY))
    assert answer.status == 401, answer
    assert answer == baseline


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize("name", sorted(NOT_B64TOKEN))
async def test_a_root_key_with_full_width_characters_is_a_bad_request(
    adapter: str, name: str
) -> None:
    world = make_world()
    key = world.key("fw", "keys.read")
    answer = await ask(adapter, world, bearer(NOT_B64TOKEN[name](key)))
    assert answer.status == 400, answer
    assert answer.problem()["code"] == "credential_malformed"


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize("transport", ["cookie", "bearer"])
@pytest.mark.parametrize("name", sorted(NEAR_MISSES))
async def test_a_portal_token_near_miss_is_refused(adapter: str, transport: str, name: str) -> None:
    world = make_world()
    token = world.portal_token("pnear")
    spoiled = NEAR_MISSES[name](token)

    def carry(value: str) -> Headers:
        if transport == "bearer":
            return bearer(value)
        return [("Cookie", f"{PORTAL_COOKIE}={on_the_wire(value)}")]

    assert (await ask(adapter, world, carry(token), "/portal/profile")).status == 200
    answer = await ask(adapter, world, carry(spoiled), "/portal/profile")
    # A changed prefix no longer looks like a portal token: also a refusal, never a principal.
    assert answer.status in {400, 401}, answer
    assert answer.problem()["code"] in {"credential_invalid", "credential_malformed"}


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize("name", sorted(NOT_B64TOKEN))
async def test_a_portal_cookie_with_full_width_characters_is_a_bad_request(
    adapter: str, name: str
) -> None:
    world = make_world()
    token = world.portal_token("pfw")
    spoiled = NOT_B64TOKEN[name](token)
    cookie = [("Cookie", f"{PORTAL_COOKIE}={on_the_wire(spoiled)}")]
    answer = await ask(adapter, world, cookie, "/portal/profile")
    assert answer.status == 400, answer


# --- revocation behind the verification cache -----------------------------------------------

CACHE_TTL = 30.0


def cached_world() -> tuple[World, CachedStore]:
    """A world whose API and portal groups verify through a CachedStore on the world's clock."""
    world = make_world()
    cache = CachedStore(world.store, ttl=CACHE_TTL, clock=world.clock)
    limiter = MemoryRateLimiter(clock_us=world.clock.us)
    cached: Any = cache  # the cache implements both lookup twins

    def authenticator(settings: AuthSettings) -> Authenticator:
        return Authenticator(
            settings,
            clock=world.clock,
            backends=Backends(cached, limiter),
            abackends=AsyncBackends(cached, limiter),
        )

    return (
        attrs.evolve(
            world,
            api=authenticator(world.api.settings),
            portal=authenticator(world.portal.settings),
        ),
        cache,
    )


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_a_root_key_revoked_through_the_library_is_refused_at_once(adapter: str) -> None:
    world, cache = cached_world()
    make_workspace(world.store, "ws_cached")
    created = cache.create_root_key(
        "ws_cached", permissions=["keys.read"], now=world.clock.now, actor=OPERATOR_ACTOR
    )
    assert created is not None
    headers = bearer(created.key.reveal())
    assert (await ask(adapter, world, headers)).status == 200
    assert cache.size >= 1  # the record is now served from the cache
    cache.revoke_root_key(created.record.id, now=world.clock.now, actor=OPERATOR_ACTOR)
    answer = await ask(adapter, world, headers)
    assert answer.status == 401, answer
    assert answer.problem()["code"] == "credential_invalid"


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_a_portal_session_revoked_through_the_library_is_refused_at_once(
    adapter: str,
) -> None:
    world, cache = cached_world()
    make_workspace(world.store, "ws_pcached")
    created = cache.create_portal_session(
        "ws_pcached",
        "user_1",
        permissions=[],
        ttl=3600,
        now=world.clock.now,
        actor=OPERATOR_ACTOR,
    )
    assert created is not None
    cookie = [("Cookie", f"{PORTAL_COOKIE}={created.token.reveal()}")]
    assert (await ask(adapter, world, cookie, "/portal/profile")).status == 200
    cache.revoke_portal_session(created.record.id, now=world.clock.now, actor=OPERATOR_ACTOR)
    answer = await ask(adapter, world, cookie, "/portal/profile")
    assert answer.status == 401, answer


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_a_revocation_behind_the_cache_holds_for_at_most_the_ttl(adapter: str) -> None:
    # The documented bound for other processes (SECURITY.md "does not"): a revocation that
    # bypasses this cache is served from it until the entry's TTL runs out, never longer.
    world, cache = cached_world()
    make_workspace(world.store, "ws_behind")
    created = cache.create_root_key(
        "ws_behind", permissions=["keys.read"], now=world.clock.now, actor=OPERATOR_ACTOR
    )
    assert created is not None
    headers = bearer(created.key.reveal())
    assert (await ask(adapter, world, headers)).status == 200
    world.store.revoke_root_key(created.record.id, now=world.clock.now, actor=OPERATOR_ACTOR)
    assert (await ask(adapter, world, headers)).status == 200  # still cached
    world.clock.advance(CACHE_TTL)
    assert (await ask(adapter, world, headers)).status == 401


# --- expiry at the exact second -------------------------------------------------------------


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_a_root_key_expires_at_the_exact_second(adapter: str) -> None:
    world = make_world()
    expires_at = int(world.clock.now) + 10
    headers = bearer(world.key("exact", "keys.read", expires_at=expires_at))
    world.clock.set(expires_at - 1)
    assert (await ask(adapter, world, headers)).status == 200
    world.clock.set(expires_at - 0.001)
    assert (await ask(adapter, world, headers)).status == 200
    world.clock.set(expires_at)
    answer = await ask(adapter, world, headers)
    assert answer.status == 401, answer
    assert answer.problem()["code"] == "credential_invalid"


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_a_portal_session_expires_at_the_exact_second(adapter: str) -> None:
    world = make_world()
    make_workspace(world.store, "ws_pexact")
    record, token = issue_portal_session(
        world.store, "ws_pexact", "user_1", now=world.clock.now, ttl=60
    )
    cookie = [("Cookie", f"{PORTAL_COOKIE}={token.reveal()}")]
    world.clock.set(record.expires_at - 1)
    assert (await ask(adapter, world, cookie, "/portal/profile")).status == 200
    world.clock.set(record.expires_at)
    assert (await ask(adapter, world, cookie, "/portal/profile")).status == 401


# --- workspace and store --------------------------------------------------------------------


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_a_disabled_workspace_is_403_for_a_verified_key(adapter: str) -> None:
    world = make_world()
    answer = await ask(adapter, world, bearer(world.key("off", "keys.read", disabled=True)))
    assert answer.status == 403, answer
    assert answer.problem()["code"] == "workspace_disabled"


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_a_disabled_workspace_is_no_oracle_for_a_wrong_secret(adapter: str) -> None:
    world = make_world()
    key = world.key("off2", "keys.read", disabled=True)
    answer = await ask(adapter, world, bearer(NEAR_MISSES["right_start_wrong_secret"](key)))
    assert answer == await ask(adapter, world, bearer(UNKNOWN_KEY))


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize("credential", ["valid", "unknown", "portal_token"])
async def test_store_down_is_503(adapter: str, credential: str) -> None:
    world = make_world()
    token = {
        "valid": lambda: world.key("down", "keys.read"),
        "unknown": lambda: UNKNOWN_KEY,
        "portal_token": lambda: world.portal_token("down_pt"),
    }[credential]()
    answer = await ask(adapter, world, bearer(token), "/down/keys")
    if credential == "portal_token":
        # A portal token on an API route is refused by its shape, before any lookup.
        assert answer.status == 401
        return
    assert answer.status == 503, answer
    assert answer.header("retry-after") is not None
    assert answer.problem()["code"] == "service_unavailable"


class GarbageStore:
    """A store whose driver answers something that is not a record."""

    def find_root_key(self, digest: bytes, /) -> RootKeyRecord | None:
        return "row" * 3  # type: ignore[return-value]  # the garbage under test

    def find_portal_session(self, digest: bytes, /) -> PortalSessionRecord | None:
        return {"id": "x"}  # type: ignore[return-value]  # the garbage under test

    def find_workspace(self, workspace_id: str, /) -> WorkspaceRecord | None:
        return 42  # type: ignore[return-value]  # the garbage under test

    async def afind_root_key(self, digest: bytes, /) -> RootKeyRecord | None:
        return self.find_root_key(digest)

    async def afind_portal_session(self, digest: bytes, /) -> PortalSessionRecord | None:
        return self.find_portal_session(digest)

    async def afind_workspace(self, workspace_id: str, /) -> WorkspaceRecord | None:
        return self.find_workspace(workspace_id)


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_a_store_answering_garbage_is_503_never_a_principal(adapter: str) -> None:
    world = make_world()
    garbage: Any = GarbageStore()
    down = Authenticator(
        world.down.settings,
        clock=world.clock,
        backends=Backends(garbage),
        abackends=AsyncBackends(garbage),
    )
    world = attrs.evolve(world, down=down)
    answer = await ask(adapter, world, bearer(world.key("garbage", "keys.read")), "/down/keys")
    assert answer.status == 503, answer
