"""Hostile JWTs end to end through each adapter: 401 (or 400 before decoding), never a 500.

The keyring's unit tests (tests/test_keyring.py) prove each rule on ``Keyring.verify``; here
the same attacks travel as HTTP requests to ``GET /keys`` and we check the answer a client
gets, and that every 401 is byte-for-byte the same answer (no oracle).

Tokens are built by hand (:func:`tests.security.support.forge`), and the first test proves
the kit builds a token the API accepts, so every rejection below is the rule under test and
not a broken forgery. ``cryptography`` is not a dependency, so RS256/ES256 tokens carry
hand-built headers and signatures of the right length (and, worse, a valid HMAC: the
algorithm-confusion attack).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import pytest

from authcore.keyring import Keyring, SigningSecret
from authcore.testing import make_workspace
from authcore.tokens import Secret
from tests.adapters.drivers import SENDERS
from tests.adapters.world import INVALID, JWT_SECRET, UNKNOWN_KEY, Answer, World, make_world
from tests.security.support import (
    NOW,
    b64url,
    flip_unused_bits,
    forge,
    good_claims,
    good_header,
    without,
)

ADAPTERS = sorted(SENDERS)
WS = "ws_forged"
REMOVED_SECRET = Secret("r" * 40)


def _json_with(claims: dict[str, object], extra: str) -> bytes:
    """Claims as JSON text with ``extra`` (raw JSON members) appended."""
    text = json.dumps(claims)
    return (text[:-1] + ", " + extra + "}").encode()


def _removed_secret_token(kid: str) -> str:
    old = Keyring([SigningSecret(kid, REMOVED_SECRET)], signing_kid=kid)
    token = old.mint(subject="user_old", workspace_id=WS, permissions=["keys.read"], now=NOW)
    return token.reveal()


def _strip_signature() -> str:
    head, payload, _ = forge(good_header(), good_claims(WS)).split(".")
    return f"{head}.{payload}."


def _canonical_with_spare_bits() -> str:
    # A segment whose length is a multiple of 4 has no unused bits: grow `sub` until both the
    # payload and the signature have some (a 32-byte HMAC always has).
    for extra in range(4):
        token = forge(good_header(), good_claims(WS, sub="user" + "x" * extra))
        if len(token.split(".")[1]) % 4:
            return token
    raise AssertionError("unreachable: one of four lengths has spare bits")


def _non_canonical(part: int) -> str:
    segments = _canonical_with_spare_bits().split(".")
    segments[part] = flip_unused_bits(segments[part])
    return ".".join(segments)


H = good_header
C = good_claims

#: name -> the bearer token. Each must be refused; none may be a 500.
HOSTILE: dict[str, Callable[[], str]] = {
    # alg: only HS256, never chosen by the token (RFC 8725 §3.1)
    "alg_none_unsigned": lambda: forge(H(alg="none"), C(WS), signature=""),
    "alg_None_unsigned": lambda: forge(H(alg="None"), C(WS), signature=""),
    "alg_NONE_unsigned": lambda: forge(H(alg="NONE"), C(WS), signature=""),
    "alg_nOnE_unsigned": lambda: forge(H(alg="nOnE"), C(WS), signature=""),
    "alg_none_no_kid": lambda: forge(without(H(alg="none"), "kid"), C(WS), signature=""),
    "alg_none_with_hmac": lambda: forge(H(alg="none"), C(WS)),
    "alg_hs256_lowercase": lambda: forge(H(alg="hs256"), C(WS)),
    "alg_hs384": lambda: forge(H(alg="HS384"), C(WS), digest=hashlib.sha384),
    "alg_hs512": lambda: forge(H(alg="HS512"), C(WS), digest=hashlib.sha512),
    "alg_rs256_garbage_signature": lambda: forge(
        H(alg="RS256"), C(WS), signature=b64url(b"\x01" * 256)
    ),
    "alg_rs256_with_hmac": lambda: forge(H(alg="RS256"), C(WS)),
    "alg_es256_garbage_signature": lambda: forge(
        H(alg="ES256"), C(WS), signature=b64url(b"\x02" * 64)
    ),
    "alg_es256_with_hmac": lambda: forge(H(alg="ES256"), C(WS)),
    "alg_missing": lambda: forge(without(H(), "alg"), C(WS)),
    "alg_null": lambda: forge(H(alg=None), C(WS)),
    "alg_list": lambda: forge(H(alg=["HS256"]), C(WS)),
    # kid is a key into the configured list, never a path, query or URL
    "kid_path": lambda: forge(H(kid="../../../../etc/passwd"), C(WS)),
    "kid_sql": lambda: forge(H(kid="k1' OR '1'='1"), C(WS)),
    "kid_url": lambda: forge(H(kid="https://evil.example/jwks.json"), C(WS)),
    "kid_empty": lambda: forge(H(kid=""), C(WS)),
    "kid_integer": lambda: forge(H(kid=1), C(WS)),
    "kid_list": lambda: forge(H(kid=["k1"]), C(WS)),
    "kid_unknown": lambda: forge(H(kid="k9"), C(WS)),
    # members that point at a key of the token's choosing, or extensions
    "jku": lambda: forge(H(jku="https://evil.example/jwks.json"), C(WS)),
    "x5u": lambda: forge(H(x5u="https://evil.example/cert.pem"), C(WS)),
    "jwk": lambda: forge(H(jwk={"kty": "oct", "k": b64url(b"k" * 32)}), C(WS)),
    "x5c": lambda: forge(H(x5c=["MIIB"]), C(WS)),
    "crit": lambda: forge(H(crit=["exp"]), C(WS)),
    "crit_empty": lambda: forge(H(crit=[]), C(WS)),
    "b64_false": lambda: forge(H(b64=False, crit=["b64"]), C(WS)),
    # time claims
    "exp_missing": lambda: forge(H(), without(C(WS), "exp")),
    "iat_missing": lambda: forge(H(), without(C(WS), "iat")),
    "lifetime_over_max": lambda: forge(H(), C(WS, exp=NOW + 301)),
    "lifetime_a_year": lambda: forge(H(), C(WS, exp=NOW + 365 * 86_400)),
    "exp_string": lambda: forge(H(), C(WS, exp=str(NOW + 60))),
    "exp_float": lambda: forge(H(), C(WS, exp=NOW + 60.5)),
    "exp_float_integral": lambda: forge(H(), C(WS, exp=float(NOW + 60))),
    "exp_true": lambda: forge(H(), C(WS, exp=True)),
    "exp_false": lambda: forge(H(), C(WS, exp=False)),
    "exp_null": lambda: forge(H(), C(WS, exp=None)),
    "exp_nan": lambda: forge(H(), _json_with(without(C(WS), "exp"), '"exp": NaN')),
    "exp_infinity": lambda: forge(H(), _json_with(without(C(WS), "exp"), '"exp": Infinity')),
    "exp_1e400": lambda: forge(H(), _json_with(without(C(WS), "exp"), '"exp": 1e400')),
    "exp_5000_digits": lambda: forge(
        H(), _json_with(without(C(WS), "exp"), '"exp": ' + "9" * 5000)
    ),
    "exp_negative": lambda: forge(H(), C(WS, exp=-1)),
    "exp_before_iat": lambda: forge(H(), C(WS, exp=NOW - 1)),
    "expired": lambda: forge(H(), C(WS, now=NOW - 600)),
    "iat_in_the_future": lambda: forge(H(), C(WS, now=NOW + 3600)),
    "nbf_in_the_future": lambda: forge(H(), C(WS, nbf=NOW + 3600)),
    "nbf_string": lambda: forge(H(), C(WS, nbf=str(NOW))),
    # issuer and audience: one exact string each
    "iss_wrong": lambda: forge(H(), C(WS, iss="someone-else")),
    "iss_list": lambda: forge(H(), C(WS, iss=["authcore-dashboard"])),
    "iss_missing": lambda: forge(H(), without(C(WS), "iss")),
    "aud_wrong": lambda: forge(H(), C(WS, aud="other-api")),
    "aud_list": lambda: forge(H(), C(WS, aud=["authcore-api"])),
    "aud_list_of_two": lambda: forge(H(), C(WS, aud=["authcore-api", "other-api"])),
    "aud_missing": lambda: forge(H(), without(C(WS), "aud")),
    # duplicates: which one wins differs between parsers, so neither may
    "duplicate_claim_workspace": lambda: forge(
        H(), _json_with(C(WS), '"workspace_id": "ws_other"')
    ),
    "duplicate_claim_exp": lambda: forge(H(), _json_with(C(WS), f'"exp": {NOW + 9999}')),
    "duplicate_header_alg": lambda: forge(b'{"alg": "HS256", "kid": "k1", "alg": "none"}', C(WS)),
    "duplicate_header_kid": lambda: forge(b'{"alg": "HS256", "kid": "k9", "kid": "k1"}', C(WS)),
    # other claims
    "permissions_as_string": lambda: forge(H(), C(WS, permissions="keys.read")),
    "permissions_with_bad_grant": lambda: forge(H(), C(WS, permissions=["keys.*x"])),
    "permissions_missing": lambda: forge(H(), without(C(WS), "permissions")),
    "sub_missing": lambda: forge(H(), without(C(WS), "sub")),
    "sub_integer": lambda: forge(H(), C(WS, sub=7)),
    "workspace_missing": lambda: forge(H(), without(C(WS), "workspace_id")),
    "workspace_unknown": lambda: forge(H(), C("ws_nobody")),
    "payload_a_list": lambda: forge(H(), b"[1, 2]"),
    "payload_not_json": lambda: forge(H(), b"not json"),
    "payload_deeply_nested": lambda: forge(H(), b'{"x": ' + b"[" * 2500 + b"]" * 2500 + b"}"),
    "header_not_json": lambda: forge(b"{alg: HS256}", C(WS)),
    # encoding and signature
    "non_canonical_signature": lambda: _non_canonical(2),
    "non_canonical_payload": lambda: _non_canonical(1),
    "signature_stripped": _strip_signature,
    "signature_of_another_token": lambda: ".".join(
        [*forge(H(), C(WS)).split(".")[:2], forge(H(), C(WS, sub="x")).split(".")[2]]
    ),
    "other_secret": lambda: forge(H(), C(WS), key=b"o" * 40),
    "removed_secret_its_own_kid": lambda: _removed_secret_token("k0"),
    "removed_secret_current_kid": lambda: _removed_secret_token("k1"),
}

#: Rejected before any decoding: the answer may be 400 (too large, not three segments).
BEFORE_DECODING: dict[str, Callable[[], str]] = {
    "megabytes_payload": lambda: forge(H(), C(WS, padding="p" * (3 << 20))),
    "ten_kib_payload": lambda: forge(H(), C(WS, padding="p" * 10_000)),
    "two_segments": lambda: ".".join(forge(H(), C(WS)).split(".")[:2]),
    "four_segments": lambda: forge(H(), C(WS)) + ".e30",
    "padded_segment": lambda: forge(H(), C(WS)) + "=",
    "standard_base64_alphabet": lambda: (
        forge(H(), C(WS)).replace("-", "+").replace("_", "/") + "+/"
    ),
}


def world_with_jwt_workspace() -> World:
    world = make_world()
    make_workspace(world.store, WS)
    return world


async def ask(adapter: str, world: World, token: str) -> Answer:
    async with SENDERS[adapter](world) as send:
        answer: Answer = await send("GET", "/keys", [("Authorization", f"Bearer {token}")])
    return answer


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_the_forging_kit_builds_a_token_the_api_accepts(adapter: str) -> None:
    # Without this, every rejection below could be a broken forgery.
    answer = await ask(adapter, world_with_jwt_workspace(), forge(good_header(), good_claims(WS)))
    assert answer.status == 200, answer
    assert answer.problem() == {"workspace_id": WS}


def test_the_forging_kit_spells_non_canonical_base64_differently() -> None:
    canonical = _canonical_with_spare_bits()
    assert _non_canonical(1) != canonical
    assert _non_canonical(2) != canonical


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize("name", sorted(HOSTILE))
async def test_hostile_jwt_is_invalid_token(adapter: str, name: str) -> None:
    answer = await ask(adapter, world_with_jwt_workspace(), HOSTILE[name]())
    assert answer.status == 401, (name, answer)
    assert answer.header("www-authenticate") == INVALID
    assert answer.problem()["code"] == "credential_invalid"


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize("name", sorted(BEFORE_DECODING))
async def test_hostile_jwt_refused_before_decoding(adapter: str, name: str) -> None:
    answer = await ask(adapter, world_with_jwt_workspace(), BEFORE_DECODING[name]())
    assert answer.status in {400, 401}, (name, answer)
    if answer.status == 400:
        assert answer.problem()["code"] in {"credential_too_large", "credential_malformed"}
    else:
        assert answer.problem()["code"] == "credential_invalid"


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_megabytes_of_payload_is_refused_by_the_size_bound(adapter: str) -> None:
    answer = await ask(adapter, world_with_jwt_workspace(), BEFORE_DECODING["megabytes_payload"]())
    # credential_too_large comes only from the length check, which runs before decoding.
    assert (answer.status, answer.problem()["code"]) == (400, "credential_too_large")


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_every_invalid_jwt_gets_the_same_answer_as_an_unknown_key(adapter: str) -> None:
    world = world_with_jwt_workspace()
    async with SENDERS[adapter](world) as send:
        baseline = await send("GET", "/keys", [("Authorization", f"Bearer {UNKNOWN_KEY}")])
        answers = {
            name: await send("GET", "/keys", [("Authorization", f"Bearer {make()}")])
            for name, make in HOSTILE.items()
        }
    assert baseline.status == 401
    different = {name for name, answer in answers.items() if answer != baseline}
    assert not different, different


async def test_a_removed_secret_was_accepted_before_its_removal() -> None:
    # The control for the removed-secret cases: the same token passes while k0 is listed.
    world = world_with_jwt_workspace()
    token = _removed_secret_token("k0")
    both = Keyring(
        [SigningSecret("k1", JWT_SECRET), SigningSecret("k0", REMOVED_SECRET)], signing_kid="k1"
    )
    assert both.verify(token, NOW).workspace_id == WS
    assert (await ask("asgi", world, token)).status == 401
