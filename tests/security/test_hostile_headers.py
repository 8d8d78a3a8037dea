"""Hostile Authorization headers through each adapter (ASGI, WSGI, Flask): RFC 6750 §2.1 exactly.

Every case sends a request to ``GET /keys`` (needs ``keys.read``) of the matrix apps in
:mod:`tests.adapters.world`. Wherever it matters the token is a *valid* root key, so a 400 or
401 is the header syntax being refused, not an unknown key.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from tests.adapters.drivers import SENDERS
from tests.adapters.world import API_CHALLENGE, BAD_REQUEST, Answer, World, make_world
from tests.security.support import Headers, on_the_wire

ADAPTERS = sorted(SENDERS)
ONE_MIB = 1 << 20
# Generous: only a hang fails this, never a slow machine.
HANG_TIMEOUT = 60.0


async def send(
    adapter: str, world: World, headers: Headers, path: str = "/keys", method: str = "GET"
) -> Answer:
    async with SENDERS[adapter](world) as sender:
        return await asyncio.wait_for(sender(method, path, headers), HANG_TIMEOUT)


def assert_bad_request(answer: Answer, *codes: str) -> None:
    assert answer.status == 400, answer
    assert answer.header("www-authenticate") == BAD_REQUEST
    assert answer.problem()["code"] in (codes or {"credential_malformed", "credential_ambiguous"})


# --- accepted spellings ---------------------------------------------------------------------


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
async def test_scheme_in_any_letter_case_is_accepted(adapter: str, scheme: str) -> None:
    world = make_world()
    key = world.key("case", "keys.read")
    answer = await send(adapter, world, [("Authorization", f"{scheme} {key}")])
    assert answer.status == 200, answer


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize("spaces", [2, 5, 40])
async def test_several_spaces_after_the_scheme_are_accepted(adapter: str, spaces: int) -> None:
    world = make_world()
    key = world.key("spaces", "keys.read")
    answer = await send(adapter, world, [("Authorization", "Bearer" + " " * spaces + key)])
    assert answer.status == 200, answer


# --- separators -----------------------------------------------------------------------------

SEPARATORS = {
    "tab": "\t",
    "space_then_tab": " \t",
    "vertical_tab": "\x0b",
    "form_feed": "\x0c",
    "nbsp": "\u00a0",
    "ogham_space": "\u1680",
    "en_quad": "\u2000",
    "em_space": "\u2003",
    "thin_space": "\u2009",
    "zero_width_space": "\u200b",
    "narrow_nbsp": "\u202f",
    "ideographic_space": "\u3000",
    "next_line": "\u0085",
}


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize("name", sorted(SEPARATORS))
async def test_a_separator_other_than_ascii_space_is_rejected(adapter: str, name: str) -> None:
    world = make_world()
    key = world.key("sep", "keys.read")
    value = on_the_wire("Bearer" + SEPARATORS[name] + key)
    assert_bad_request(await send(adapter, world, [("Authorization", value)]))


# --- the token ------------------------------------------------------------------------------


def _spoil(key: str, how: str) -> str:
    middle = len(key) // 2
    return {
        "bang": key[:middle] + "!" + key[middle:],
        "comma": key[:middle] + "," + key[middle:],
        "semicolon": key[:middle] + ";" + key[middle:],
        "quote": '"' + key + '"',
        "at": key[:middle] + "@" + key[middle:],
        "percent_encoded": key[:middle] + "%41" + key[middle:],
        "backslash": key[:middle] + "\\" + key[middle:],
        "inner_space": key[:middle] + " " + key[middle:],
        "equals_inside": key[:middle] + "=" + key[middle:],
        "equals_first": "=" + key,
        "latin1_e_acute": key[:middle] + "\xe9" + key[middle:],
        "latin1_ff": key + "\xff",
        "utf8_full_width_digit": key[:middle] + on_the_wire("\uff11") + key[middle:],
        "nul": key[:middle] + "\x00" + key[middle:],
        "soh": key + "\x01",
        "escape": key[:middle] + "\x1b" + key[middle:],
        "unit_separator": key + "\x1f",
        "delete": key[:middle] + "\x7f" + key[middle:],
    }[how]


SPOILERS = [
    "at",
    "backslash",
    "bang",
    "comma",
    "delete",
    "equals_first",
    "equals_inside",
    "escape",
    "inner_space",
    "latin1_e_acute",
    "latin1_ff",
    "nul",
    "percent_encoded",
    "quote",
    "semicolon",
    "soh",
    "unit_separator",
    "utf8_full_width_digit",
]


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize("how", SPOILERS)
async def test_a_token_outside_b64token_is_a_bad_request(adapter: str, how: str) -> None:
    world = make_world()
    key = world.key("spoil", "keys.read")
    answer = await send(adapter, world, [("Authorization", "Bearer " + _spoil(key, how))])
    assert_bad_request(answer)


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_trailing_padding_is_b64token_syntax_but_another_key(adapter: str) -> None:
    # RFC 6750 allows "=" at the end only; it is then a different (unknown) key, not a 400.
    world = make_world()
    key = world.key("pad", "keys.read")
    answer = await send(adapter, world, [("Authorization", f"Bearer {key}==")])
    assert answer.status == 401
    assert answer.problem()["code"] == "credential_invalid"


# --- more than one credential ---------------------------------------------------------------


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_authorization_repeated_is_a_bad_request(adapter: str) -> None:
    world = make_world()
    one, two = world.key("rep1", "keys.read"), world.key("rep2", "keys.read")
    headers = [("Authorization", f"Bearer {one}"), ("Authorization", f"Bearer {two}")]
    assert_bad_request(await send(adapter, world, headers))


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_the_same_valid_key_twice_is_still_a_bad_request(adapter: str) -> None:
    world = make_world()
    key = world.key("same", "keys.read")
    headers = [("Authorization", f"Bearer {key}")] * 2
    assert_bad_request(await send(adapter, world, headers))


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize("joiner", [", ", ",", " , "])
async def test_authorization_comma_joined_is_a_bad_request(adapter: str, joiner: str) -> None:
    world = make_world()
    one, two = world.key("cj1", "keys.read"), world.key("cj2", "keys.read")
    headers = [("Authorization", f"Bearer {one}{joiner}Bearer {two}")]
    assert_bad_request(await send(adapter, world, headers))


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_a_bearer_and_a_basic_field_together_are_a_bad_request(adapter: str) -> None:
    world = make_world()
    key = world.key("mixed", "keys.read")
    headers = [("Authorization", f"Bearer {key}"), ("Authorization", "Basic dXNlcjpwYXNz")]
    assert_bad_request(await send(adapter, world, headers))


# --- size -----------------------------------------------------------------------------------

HUGE: dict[str, Callable[[World], str]] = {
    "letters": lambda w: "Bearer " + "a" * ONE_MIB,
    "valid_key_then_padding": lambda w: f"Bearer {w.key('huge', 'keys.read')}" + "=" * ONE_MIB,
    "jwt_shaped": lambda w: "Bearer eyJ" + "A" * ONE_MIB + ".eyJ.sig",
    "spaces": lambda w: "Bearer" + " " * ONE_MIB + "ak_x",
    "nul_bytes": lambda w: "Bearer " + "\x00" * ONE_MIB,
}


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize("shape", sorted(HUGE))
async def test_a_one_mib_header_is_rejected_before_decoding(adapter: str, shape: str) -> None:
    world = make_world()
    answer = await send(adapter, world, [("Authorization", HUGE[shape](world))])
    # credential_too_large is only raised by the length check, which runs before any parsing
    # or decoding; a 431 would be a server refusing it even earlier.
    assert answer.status in {400, 431}, answer
    if answer.status == 400:
        assert answer.problem()["code"] == "credential_too_large"


# --- other schemes --------------------------------------------------------------------------


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize(
    "value",
    [
        "Basic dXNlcjpwYXNz",
        "basic dXNlcjpwYXNz",
        "Token {key}",
        "Digest username=x",
        "Negotiate YII=",
        "ApiKey {key}",
        "Bearer-Token {key}",
    ],
)
async def test_another_scheme_gets_the_bearer_challenge(adapter: str, value: str) -> None:
    world = make_world()
    key = world.key("scheme", "keys.read")
    answer = await send(adapter, world, [("Authorization", value.format(key=key))])
    assert answer.status == 401, answer
    assert answer.header("www-authenticate") == API_CHALLENGE
    assert answer.problem()["code"] == "unsupported_scheme"


# --- credentials anywhere but the Authorization header ---------------------------------------


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize("parameter", ["access_token", "api_key", "token", "key", "apikey"])
async def test_a_credential_in_the_query_string_is_not_accepted(
    adapter: str, parameter: str
) -> None:
    world = make_world()
    key = world.key("query", "keys.read")
    answer = await send(adapter, world, [], path=f"/keys?{parameter}={key}")
    assert answer.status == 401, answer
    assert answer.header("www-authenticate") == API_CHALLENGE
    assert answer.problem()["code"] == "credential_missing"


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize("header", ["X-Api-Key", "Api-Key", "X-Auth-Token", "Proxy-Authorization"])
async def test_a_credential_in_another_header_is_not_accepted(adapter: str, header: str) -> None:
    world = make_world()
    key = world.key("other", "keys.read")
    value = f"Bearer {key}" if header == "Proxy-Authorization" else key
    answer = await send(adapter, world, [(header, value)])
    assert answer.status == 401, answer
    assert answer.problem()["code"] == "credential_missing"


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_a_root_key_in_a_cookie_is_not_accepted_on_api_routes(adapter: str) -> None:
    world = make_world()
    key = world.key("cookie", "keys.read")
    answer = await send(adapter, world, [("Cookie", f"authcore_portal={key}; api_key={key}")])
    assert answer.status == 401, answer
    assert answer.problem()["code"] == "credential_missing"
