"""Tests for authcore.keyring: minting, every verification rule, configuration, rotation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import pickle
from typing import Any

import attrs
import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import authcore.keyring as keyring_module
from authcore.errors import (
    ConfigurationError,
    CredentialTooLargeError,
    InvalidCredentialError,
    MalformedCredentialError,
)
from authcore.keyring import (
    JWTSettings,
    Keyring,
    RotationCheck,
    SigningSecret,
    VerifiedClaims,
    check_rotation,
)
from authcore.tokens import Secret
from tests.strategies import (
    JWT_NOW,
    claim_dicts,
    jwt_header_dicts,
    name_texts,
    token_like_text,
    valid_claims,
)

# --- helpers (the strategies live in tests/strategies.py) ---------------------------------------

RAW1 = "s1-" + "a" * 40
RAW2 = "s2-" + "b" * 40
RAW_OLD = "old-" + "c" * 40
NOW = JWT_NOW  # the time valid_claims() stamps by default
SETTINGS = JWTSettings()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value: object) -> str:
    return b64(json.dumps(value, separators=(",", ":")).encode())


def raw_token(
    header: object | str,
    payload: object | str,
    key: str = RAW1,
    *,
    digest: Any = hashlib.sha256,
    signature: str | None = None,
) -> str:
    """Build a compact JWS by hand; a str header/payload is used as raw JSON text."""
    head = b64(header.encode()) if isinstance(header, str) else b64json(header)
    body = b64(payload.encode()) if isinstance(payload, str) else b64json(payload)
    signing_input = f"{head}.{body}"
    if signature is None:
        signature = b64(hmac.new(key.encode(), signing_input.encode(), digest).digest())
    return f"{signing_input}.{signature}"


HEADER1 = {"alg": "HS256", "typ": "JWT", "kid": "k1"}


def make_keyring(*pairs: tuple[str, str], signing_kid: str | None = "k1", **kw: Any) -> Keyring:
    pairs = pairs or (("k1", RAW1), ("k2", RAW2))
    secrets = [SigningSecret(kid, Secret(raw)) for kid, raw in pairs]
    return Keyring(secrets, signing_kid=signing_kid, **kw)


def invalid_detail(kr: Keyring, token: str, now: float = NOW) -> str | None:
    with pytest.raises(InvalidCredentialError) as info:
        kr.verify(token, now)
    return info.value.detail


@pytest.fixture
def kr() -> Keyring:
    return make_keyring()


# --- mint / verify round trip -------------------------------------------------------------------


def test_mint_then_verify_round_trips(kr: Keyring) -> None:
    token = kr.mint(
        subject="user_1",
        workspace_id="ws_1",
        permissions=["keys.read", "keys.create"],
        now=NOW,
        ttl=60,
        name="Ann",
        jwt_id="id-1",
    )
    assert kr.verify(token.reveal(), NOW + 1) == VerifiedClaims(
        subject="user_1",
        workspace_id="ws_1",
        permissions=("keys.read", "keys.create"),
        issued_at=NOW,
        expires_at=NOW + 60,
        jwt_id="id-1",
        name="Ann",
        key_id="k1",
    )


def test_mint_returns_a_secret(kr: Keyring) -> None:
    token = kr.mint(subject="u", workspace_id="w", permissions=[], now=NOW)
    assert isinstance(token, Secret)
    assert "[secure]" in repr(token)


def test_mint_header_is_hs256_jwt_with_signing_kid() -> None:
    kr = make_keyring(signing_kid="k2")
    token = kr.mint(subject="u", workspace_id="w", permissions=[], now=NOW).reveal()
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT", "kid": "k2"}


def test_mint_default_ttl_is_max_lifetime_and_jti_is_random(kr: Keyring) -> None:
    one = kr.verify(kr.mint(subject="u", workspace_id="w", permissions=[], now=NOW).reveal(), NOW)
    two = kr.verify(kr.mint(subject="u", workspace_id="w", permissions=[], now=NOW).reveal(), NOW)
    assert one.expires_at - one.issued_at == SETTINGS.max_lifetime
    assert one.jwt_id
    assert one.jwt_id != two.jwt_id
    assert one.name is None


def test_minted_claims_are_plain_json_types(kr: Keyring) -> None:
    token = kr.mint(subject="u", workspace_id="w", permissions=("a", "b"), now=NOW).reveal()
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["permissions"] == ["a", "b"]
    assert claims["iss"] == "authcore-dashboard"
    assert claims["aud"] == "authcore-api"


def test_mint_without_signing_kid_raises() -> None:
    kr = make_keyring(signing_kid=None)
    with pytest.raises(ConfigurationError):
        kr.mint(subject="u", workspace_id="w", permissions=[], now=NOW)


@pytest.mark.parametrize("ttl", [0, -1, SETTINGS.max_lifetime + 1, True, 1.5])
def test_mint_rejects_ttl_outside_range(kr: Keyring, ttl: Any) -> None:
    with pytest.raises(ConfigurationError):
        kr.mint(subject="u", workspace_id="w", permissions=[], now=NOW, ttl=ttl)


def test_mint_rejects_permissions_as_a_string(kr: Keyring) -> None:
    with pytest.raises(ConfigurationError):
        kr.mint(subject="u", workspace_id="w", permissions="keys.read", now=NOW)


@pytest.mark.parametrize(
    "overrides",
    [
        {"subject": ""},
        {"subject": "x" * 257},
        {"workspace_id": ""},
        {"permissions": [1]},
        {"name": 5},
        {"jwt_id": "j" * 129},
    ],
)
def test_mint_rejects_claims_verify_would_reject(kr: Keyring, overrides: dict[str, Any]) -> None:
    args: dict[str, Any] = {"subject": "u", "workspace_id": "w", "permissions": [], "now": NOW}
    args.update(overrides)
    with pytest.raises(ConfigurationError, match="cannot mint"):
        kr.mint(**args)


@pytest.mark.parametrize("now", [1.5, "1700000000", -10])
def test_mint_rejects_bad_now(kr: Keyring, now: Any) -> None:
    with pytest.raises(ConfigurationError):
        kr.mint(subject="u", workspace_id="w", permissions=[], now=now)


def test_mint_rejects_token_over_max_token_bytes() -> None:
    kr = make_keyring(settings=JWTSettings(max_token_bytes=512))
    with pytest.raises(ConfigurationError, match="max_token_bytes"):
        kr.mint(subject="u", workspace_id="w", permissions=["p" * 100] * 5, now=NOW)


# --- 400: before any decoding -------------------------------------------------------------------


@pytest.mark.parametrize("token", [b"a.b.c", None, 42, ["a.b.c"]])
def test_verify_rejects_non_str_as_malformed(kr: Keyring, token: Any) -> None:
    with pytest.raises(MalformedCredentialError):
        kr.verify(token, NOW)


def test_verify_rejects_multi_megabyte_token_as_too_large(kr: Keyring) -> None:
    token = raw_token(HEADER1, valid_claims(pad="x" * 3_000_000))
    with pytest.raises(CredentialTooLargeError):
        kr.verify(token, NOW)


def test_verify_checks_size_before_shape(kr: Keyring) -> None:
    with pytest.raises(CredentialTooLargeError):
        kr.verify("!" * 9000, NOW)


def test_verify_size_cap_does_not_decode(kr: Keyring, monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*_args: object, **_kw: object) -> object:
        raise AssertionError("decoded")

    monkeypatch.setattr(keyring_module._JWS, "decode_complete", explode)
    monkeypatch.setattr("authcore.keyring.binascii.a2b_base64", explode)
    with pytest.raises(CredentialTooLargeError):
        kr.verify(raw_token(HEADER1, valid_claims(pad="x" * 10_000)), NOW)


def test_verify_rejects_multibyte_token_under_char_cap_as_malformed(kr: Keyring) -> None:
    # 3000 characters but 9000 UTF-8 bytes: the shape check (ASCII only) refuses it.
    with pytest.raises(MalformedCredentialError):
        kr.verify("\u20ac" * 3000, NOW)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "a..c",
        ".b.c",
        "a b.c.d",
        "eyJhbGciOiJIUzI1NiJ9=.eyJ4IjoxfQ.sig",
        "a.b.c\n",
        "é.b.c",
    ],
)
def test_verify_rejects_non_three_segment_base64url_as_malformed(kr: Keyring, token: str) -> None:
    with pytest.raises(MalformedCredentialError):
        kr.verify(token, NOW)


def test_malformed_is_not_invalid(kr: Keyring) -> None:
    with pytest.raises(MalformedCredentialError) as info:
        kr.verify("nope", NOW)
    assert not isinstance(info.value, InvalidCredentialError)
    assert info.value.status == 400


# --- header rules -------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE", "", None])
@pytest.mark.parametrize("signature", ["", "AAAA"])
def test_verify_rejects_alg_none(kr: Keyring, alg: Any, signature: str) -> None:
    token = raw_token({"alg": alg, "typ": "JWT"}, valid_claims(), signature=signature)
    assert invalid_detail(kr, token) == "alg"


def test_verify_rejects_hs384_even_with_the_right_key(kr: Keyring) -> None:
    token = raw_token({"alg": "HS384", "kid": "k1"}, valid_claims(), digest=hashlib.sha384)
    assert invalid_detail(kr, token) == "alg"


@pytest.mark.parametrize("alg", ["RS256", "ES256", "PS256", "EdDSA", "HS512", "hs256", "HS256 "])
def test_verify_rejects_other_algorithms(kr: Keyring, alg: str) -> None:
    token = raw_token({"alg": alg, "kid": "k1"}, valid_claims(), signature=b64(b"\x01" * 64))
    assert invalid_detail(kr, token) == "alg"


def test_verify_rejects_rs256_confusion_signed_with_hmac_of_the_secret(kr: Keyring) -> None:
    token = raw_token({"alg": "RS256", "kid": "k1"}, valid_claims())
    assert invalid_detail(kr, token) == "alg"


def test_verify_rejects_missing_alg(kr: Keyring) -> None:
    assert invalid_detail(kr, raw_token({"typ": "JWT", "kid": "k1"}, valid_claims())) == "alg"


@pytest.mark.parametrize("alg", [["HS256"], {"HS256": 1}, 256])
def test_verify_rejects_non_string_alg(kr: Keyring, alg: object) -> None:
    assert invalid_detail(kr, raw_token({"alg": alg, "kid": "k1"}, valid_claims())) == "alg"


@pytest.mark.parametrize(
    "kid",
    [
        "../../etc/passwd",
        "' OR 1=1",
        "' OR '1'='1' --",
        "https://x",
        "file:///dev/null",
        "k3",
        "K1",
        "k1 ",
        "",
        123,
        None,
        ["k1"],
        {"k1": 1},
    ],
)
def test_verify_rejects_kid_that_is_not_a_configured_kid(kr: Keyring, kid: object) -> None:
    token = raw_token({"alg": "HS256", "kid": kid}, valid_claims())
    assert invalid_detail(kr, token) == "kid unknown"


@pytest.mark.parametrize("member", ["jku", "x5u", "jwk", "x5c", "x5t", "x5t#S256", "crit", "b64"])
def test_verify_rejects_key_selecting_and_critical_header_members(kr: Keyring, member: str) -> None:
    values = {"crit": ["b64"], "b64": True, "jwk": {"kty": "oct", "k": "AAAA"}}
    header = {**HEADER1, member: values.get(member, "https://attacker.example/k")}
    assert invalid_detail(kr, raw_token(header, valid_claims())) == "forbidden header member"


@pytest.mark.parametrize("typ", ["at+jwt", "jwt", "JWS", None, 1])
def test_verify_rejects_typ_other_than_jwt(kr: Keyring, typ: object) -> None:
    token = raw_token({"alg": "HS256", "kid": "k1", "typ": typ}, valid_claims())
    assert invalid_detail(kr, token) == "typ"


def test_verify_accepts_header_without_typ(kr: Keyring) -> None:
    claims = kr.verify(raw_token({"alg": "HS256", "kid": "k1"}, valid_claims()), NOW)
    assert claims.subject == "user_1"


def test_verify_ignores_unknown_non_critical_header_members(kr: Keyring) -> None:
    # RFC 7515 §4: unknown header parameters that are not critical are ignored.
    token = raw_token({**HEADER1, "cty": "x", "foo": [1]}, valid_claims())
    assert kr.verify(token, NOW).subject == "user_1"


def test_verify_rejects_duplicate_header_members(kr: Keyring) -> None:
    header = '{"alg":"none","kid":"k1","alg":"HS256"}'
    assert invalid_detail(kr, raw_token(header, valid_claims())) == "duplicate header member"


@pytest.mark.parametrize("header", ["[]", '"HS256"', "null", "1"])
def test_verify_rejects_header_that_is_not_an_object(kr: Keyring, header: str) -> None:
    assert invalid_detail(kr, raw_token(header, valid_claims())) == "header is not a JSON object"


@pytest.mark.parametrize("header", ["{", "{'alg':'HS256'}", '{"alg":NaN}', "\xff\xfe"])
def test_verify_rejects_header_that_is_not_json(kr: Keyring, header: str) -> None:
    token = raw_token(header, valid_claims())
    assert invalid_detail(kr, token) == "header is not valid JSON"


def test_verify_rejects_header_that_is_not_utf8(kr: Keyring) -> None:
    head = b64(b'{"alg":"' + b"\xff" + b'"}')
    token = f"{head}.{b64json(valid_claims())}.AAAA"
    assert invalid_detail(kr, token) == "header is not valid JSON"


def test_verify_rejects_header_segment_of_impossible_length(kr: Keyring) -> None:
    token = "eyJhbGciOiJIUzI1NiJ9A." + b64json(valid_claims()) + ".AAAA"
    assert invalid_detail(kr, token) == "header encoding"


def test_verify_rejects_non_canonical_header_encoding(kr: Keyring) -> None:
    head = b64json(HEADER1)
    assert len(head) % 4 in (2, 3)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    # Flip a padding bit in the last character: same bytes decoded, different spelling.
    last = alphabet[alphabet.index(head[-1]) ^ 1]
    forged = head[:-1] + last
    assert base64.urlsafe_b64decode(forged + "==") == base64.urlsafe_b64decode(head + "==")
    token = raw_token(HEADER1, valid_claims())
    token = forged + token[len(head) :]
    assert invalid_detail(kr, token) == "header encoding"


# --- signature ----------------------------------------------------------------------------------


def test_verify_rejects_stripped_signature(kr: Keyring) -> None:
    token = raw_token(HEADER1, valid_claims())
    stripped = token.rsplit(".", 1)[0] + "."
    assert invalid_detail(kr, stripped) == "signature"


def test_verify_rejects_non_canonical_signature_encoding(kr: Keyring) -> None:
    token = raw_token(HEADER1, valid_claims())
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    forged = token[:-1] + alphabet[alphabet.index(token[-1]) ^ 1]
    assert invalid_detail(kr, forged) == "encoding"


def test_verify_rejects_wrong_secret(kr: Keyring) -> None:
    token = raw_token(HEADER1, valid_claims(), key="z" * 40)
    assert invalid_detail(kr, token) == "signature"


def test_verify_rejects_tampered_payload(kr: Keyring) -> None:
    head, _, sig = raw_token(HEADER1, valid_claims()).split(".")
    body = b64json(valid_claims(permissions=["*"]))
    assert invalid_detail(kr, f"{head}.{body}.{sig}") == "signature"


def test_verify_rejects_token_whose_secret_left_the_list() -> None:
    old = make_keyring(("old", RAW_OLD), ("k1", RAW1), signing_kid="old")
    token = old.mint(subject="u", workspace_id="w", permissions=[], now=NOW).reveal()
    new = make_keyring(("k1", RAW1), ("k2", RAW2))
    assert invalid_detail(new, token) == "kid unknown"


def test_verify_rejects_kidless_token_whose_secret_left_the_list() -> None:
    token = raw_token({"alg": "HS256"}, valid_claims(), key=RAW_OLD)
    assert invalid_detail(make_keyring(), token) == "signature"


def test_verify_rejects_token_signed_with_another_kids_secret(kr: Keyring) -> None:
    token = raw_token({"alg": "HS256", "kid": "k1"}, valid_claims(), key=RAW2)
    assert invalid_detail(kr, token) == "signature"


def test_verify_with_kid_computes_one_signature_however_long_the_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pairs = [(f"k{i}", f"secret-{i:04d}-" + "x" * 32) for i in range(200)]
    kr = make_keyring(*pairs, signing_kid="k199")
    token = kr.mint(subject="u", workspace_id="w", permissions=[], now=NOW).reveal()
    calls: list[object] = []
    original = keyring_module._JWS.decode_complete

    def spy(*args: Any, **kw: Any) -> dict[str, Any]:
        calls.append(args[1])
        return original(*args, **kw)

    monkeypatch.setattr(keyring_module._JWS, "decode_complete", spy)
    kr.verify(token, NOW)
    assert calls == [pairs[-1][1].encode()]


# --- rotation at the verifier -------------------------------------------------------------------


@pytest.mark.parametrize("order", [(("k1", RAW1), ("k2", RAW2)), (("k2", RAW2), ("k1", RAW1))])
def test_token_signed_with_k1_verifies_whatever_the_list_order(order: Any) -> None:
    token = make_keyring().mint(subject="u", workspace_id="w", permissions=[], now=NOW).reveal()
    assert make_keyring(*order, signing_kid="k2").verify(token, NOW).subject == "u"


@pytest.mark.parametrize("key", [RAW1, RAW2])
def test_kidless_token_verifies_with_any_secret_in_the_list(kr: Keyring, key: str) -> None:
    assert kr.verify(raw_token({"alg": "HS256"}, valid_claims(), key=key), NOW).subject == "user_1"


def test_kidless_token_tries_secrets_in_order(kr: Keyring, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []
    original = keyring_module._JWS.decode_complete

    def spy(*args: Any, **kw: Any) -> dict[str, Any]:
        calls.append(args[1])
        return original(*args, **kw)

    monkeypatch.setattr(keyring_module._JWS, "decode_complete", spy)
    kr.verify(raw_token({"alg": "HS256"}, valid_claims(), key=RAW2), NOW)
    assert calls == [RAW1.encode(), RAW2.encode()]


def test_kidless_token_stops_at_first_error_other_than_signature(
    kr: Keyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = raw_token({"alg": "HS256"}, valid_claims(), key=RAW2)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    forged = token[:-1] + alphabet[alphabet.index(token[-1]) ^ 1]
    calls: list[object] = []
    original = keyring_module._JWS.decode_complete

    def spy(*args: Any, **kw: Any) -> dict[str, Any]:
        calls.append(args[1])
        return original(*args, **kw)

    monkeypatch.setattr(keyring_module._JWS, "decode_complete", spy)
    assert invalid_detail(kr, forged) == "encoding"
    assert len(calls) == 1


@pytest.mark.parametrize("error", [ValueError, TypeError, RecursionError, OverflowError])
def test_verify_turns_parsing_errors_from_pyjwt_into_invalid(
    kr: Keyring, monkeypatch: pytest.MonkeyPatch, error: type[Exception]
) -> None:
    def boom(*_args: object, **_kw: object) -> object:
        raise error

    monkeypatch.setattr(keyring_module._JWS, "decode_complete", boom)
    assert invalid_detail(kr, raw_token(HEADER1, valid_claims())) == "unreadable"


# --- payload rules ------------------------------------------------------------------------------


def test_verify_rejects_duplicate_claims(kr: Keyring) -> None:
    payload = json.dumps(valid_claims())[:-1] + ',"sub":"admin"}'
    assert invalid_detail(kr, raw_token(HEADER1, payload)) == "duplicate payload member"


def test_verify_rejects_duplicate_members_in_nested_objects(kr: Keyring) -> None:
    payload = json.dumps(valid_claims())[:-1] + ',"extra":{"a":1,"a":2}}'
    assert invalid_detail(kr, raw_token(HEADER1, payload)) == "duplicate payload member"


@pytest.mark.parametrize("payload", ["[]", '"x"', "1", "null"])
def test_verify_rejects_payload_that_is_not_an_object(kr: Keyring, payload: str) -> None:
    assert invalid_detail(kr, raw_token(HEADER1, payload)) == "payload is not a JSON object"


@pytest.mark.parametrize(
    "payload", ["{", "not json", '{"exp":NaN}', '{"exp":Infinity}', '{"exp":-Infinity}']
)
def test_verify_rejects_payload_that_is_not_json(kr: Keyring, payload: str) -> None:
    assert invalid_detail(kr, raw_token(HEADER1, payload)) == "payload is not valid JSON"


def _nested_claim(depth: int) -> str:
    """Valid claims plus ``"x"``: lists nested so the payload nests ``depth`` deep in all."""
    inner = depth - 1  # the payload object itself is one level
    return json.dumps(valid_claims())[:-1] + ',"x":' + "[" * inner + "]" * inner + "}"


# 1000 is a RecursionError in json on Python 3.11 but parses on 3.12; 2500 parses on 3.13.
@pytest.mark.parametrize("depth", [33, 1000, 2500])
def test_verify_rejects_deeply_nested_payload_on_every_python(depth: int) -> None:
    kr = make_keyring(settings=JWTSettings(max_token_bytes=16384))
    token = raw_token(HEADER1, _nested_claim(depth))
    assert invalid_detail(kr, token) == "payload is not valid JSON"


def test_verify_reads_a_payload_nested_exactly_to_the_bound(kr: Keyring) -> None:
    claims = kr.verify(raw_token(HEADER1, _nested_claim(32)), NOW)
    assert claims.subject == valid_claims()["sub"]


def test_verify_rejects_deeply_nested_header(kr: Keyring) -> None:
    header = '{"alg":"HS256","kid":"k1","x":' + "{" * 40 + "}" * 40 + "}"
    assert invalid_detail(kr, raw_token(header, valid_claims())) == "header is not valid JSON"


def test_brackets_inside_strings_do_not_count_as_nesting(kr: Keyring) -> None:
    # 80 openers in all, but every one inside a string (an escaped quote keeps the string open).
    claims = {**valid_claims(), "name": '\\"' + "[{" * 40}
    assert kr.verify(raw_token(HEADER1, claims), NOW).name == claims["name"]


@pytest.mark.parametrize(
    "claim", ["iss", "aud", "sub", "workspace_id", "permissions", "iat", "exp"]
)
def test_verify_rejects_missing_required_claim(kr: Keyring, claim: str) -> None:
    claims = valid_claims()
    del claims[claim]
    assert invalid_detail(kr, raw_token(HEADER1, claims)) == f"{claim} missing"


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("iss", "someone-else"),
        ("iss", ["authcore-dashboard"]),
        ("iss", None),
        ("aud", "another-api"),
        ("aud", ["authcore-api"]),
        ("aud", ["authcore-api", "another-api"]),
        ("aud", None),
    ],
)
def test_verify_rejects_wrong_or_list_valued_iss_and_aud(
    kr: Keyring, claim: str, value: object
) -> None:
    assert invalid_detail(kr, raw_token(HEADER1, {**valid_claims(), claim: value})) == claim


def test_verify_checks_issuer_and_audience_from_settings() -> None:
    kr = make_keyring(settings=JWTSettings(issuer="me", audience="you"))
    token = raw_token(HEADER1, valid_claims(iss="me", aud="you"))
    assert kr.verify(token, NOW).subject == "user_1"
    assert invalid_detail(kr, raw_token(HEADER1, valid_claims())) == "iss"


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("sub", ""),
        ("sub", "x" * 257),
        ("sub", 1),
        ("sub", None),
        ("sub", ["u"]),
        ("workspace_id", ""),
        ("workspace_id", "w" * 129),
        ("workspace_id", 7),
    ],
)
def test_verify_rejects_bad_subject_or_workspace(kr: Keyring, claim: str, value: object) -> None:
    detail = invalid_detail(kr, raw_token(HEADER1, {**valid_claims(), claim: value}))
    assert detail is not None
    assert detail.startswith(claim)


def test_verify_accepts_subject_at_its_length_limit(kr: Keyring) -> None:
    token = raw_token(HEADER1, valid_claims(sub="x" * 256, workspace_id="w" * 128))
    assert len(kr.verify(token, NOW).subject) == 256


def test_verify_rejects_permissions_as_a_string(kr: Keyring) -> None:
    token = raw_token(HEADER1, valid_claims(permissions="keys.read"))
    assert invalid_detail(kr, token) == "permissions is not a list"


@pytest.mark.parametrize("value", [None, {"keys.read": True}, 1])
def test_verify_rejects_permissions_not_a_list(kr: Keyring, value: object) -> None:
    token = raw_token(HEADER1, valid_claims(permissions=value))
    assert invalid_detail(kr, token) == "permissions is not a list"


def test_verify_rejects_too_many_permissions() -> None:
    kr = make_keyring(settings=JWTSettings(max_permissions=3))
    token = raw_token(HEADER1, valid_claims(permissions=["a", "b", "c", "d"]))
    assert invalid_detail(kr, token) == "too many permissions"


def test_verify_accepts_max_permissions_exactly() -> None:
    kr = make_keyring(settings=JWTSettings(max_permissions=3))
    token = raw_token(HEADER1, valid_claims(permissions=["a", "b", "c"]))
    assert kr.verify(token, NOW).permissions == ("a", "b", "c")


@pytest.mark.parametrize("value", [[1], [None], [["a"]], ["p" * 129]])
def test_verify_rejects_bad_permission_entries(kr: Keyring, value: object) -> None:
    detail = invalid_detail(kr, raw_token(HEADER1, valid_claims(permissions=value)))
    assert detail is not None
    assert detail.startswith("a permission")


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
@pytest.mark.parametrize("value", [str(NOW + 10), float(NOW + 10), True, False, None, [NOW]])
def test_verify_rejects_non_integer_numeric_dates(kr: Keyring, claim: str, value: object) -> None:
    token = raw_token(HEADER1, {**valid_claims(), claim: value})
    assert invalid_detail(kr, token) == f"{claim} is not an integer"


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
@pytest.mark.parametrize("value", [-1, 10**11, 10**30])
def test_verify_rejects_numeric_dates_out_of_range(kr: Keyring, claim: str, value: int) -> None:
    token = raw_token(HEADER1, {**valid_claims(), claim: value})
    assert invalid_detail(kr, token) == f"{claim} is out of range"


@pytest.mark.parametrize(
    ("exp_text", "detail"),
    [
        ("NaN", "payload is not valid JSON"),
        ("Infinity", "payload is not valid JSON"),
        ("1e400", "exp is not an integer"),
        ("1" * 5000, "payload is not valid JSON"),  # over Python's int-parsing digit limit
    ],
)
def test_verify_rejects_exp_as_nan_infinity_or_huge_number(exp_text: str, detail: str) -> None:
    payload = json.dumps(valid_claims()).replace(str(NOW + 60), exp_text)
    kr = make_keyring(settings=JWTSettings(max_token_bytes=16384))
    assert invalid_detail(kr, raw_token(HEADER1, payload)) == detail


def test_verify_rejects_4000_digit_exp_as_out_of_range() -> None:
    payload = json.dumps(valid_claims()).replace(str(NOW + 60), "9" * 4000)
    detail = invalid_detail(make_keyring(), raw_token(HEADER1, payload))
    assert detail == "exp is out of range"


@pytest.mark.parametrize(
    ("claim", "value"), [("jti", 1), ("jti", "j" * 129), ("name", 1), ("name", "n" * 257)]
)
def test_verify_rejects_bad_optional_claims(kr: Keyring, claim: str, value: object) -> None:
    detail = invalid_detail(kr, raw_token(HEADER1, {**valid_claims(), claim: value}))
    assert detail is not None
    assert detail.startswith(claim)


@pytest.mark.parametrize("claim", ["jti", "name"])
def test_verify_rejects_null_optional_string_claims(kr: Keyring, claim: str) -> None:
    detail = invalid_detail(kr, raw_token(HEADER1, {**valid_claims(), claim: None}))
    assert detail is not None
    assert detail.startswith(claim)


def test_verify_returns_optional_claims(kr: Keyring) -> None:
    token = raw_token(HEADER1, valid_claims(nbf=NOW, jti="j1", name="Ann"))
    claims = kr.verify(token, NOW)
    assert (claims.not_before, claims.jwt_id, claims.name) == (NOW, "j1", "Ann")


def test_verify_ignores_unknown_claims(kr: Keyring) -> None:
    assert kr.verify(raw_token(HEADER1, valid_claims(extra={"a": [1]})), NOW).subject == "user_1"


# --- time rules ---------------------------------------------------------------------------------


def test_verify_rejects_lifetime_over_max(kr: Keyring) -> None:
    token = raw_token(HEADER1, valid_claims(exp=NOW + SETTINGS.max_lifetime + 1))
    assert invalid_detail(kr, token) == "lifetime over max_lifetime"


def test_verify_accepts_lifetime_equal_to_max(kr: Keyring) -> None:
    token = raw_token(HEADER1, valid_claims(exp=NOW + SETTINGS.max_lifetime))
    assert kr.verify(token, NOW).expires_at == NOW + SETTINGS.max_lifetime


@pytest.mark.parametrize("exp", [NOW, NOW - 1])
def test_verify_rejects_exp_not_after_iat(kr: Keyring, exp: int) -> None:
    assert invalid_detail(kr, raw_token(HEADER1, valid_claims(exp=exp))) == "exp is not after iat"


def test_verify_rejects_expired_exactly_at_exp_plus_leeway(kr: Keyring) -> None:
    token = raw_token(HEADER1, valid_claims())
    assert invalid_detail(kr, token, NOW + 60 + SETTINGS.leeway) == "expired"


def test_verify_accepts_just_before_exp_plus_leeway(kr: Keyring) -> None:
    token = raw_token(HEADER1, valid_claims())
    assert kr.verify(token, NOW + 60 + SETTINGS.leeway - 0.001).subject == "user_1"


def test_verify_with_zero_leeway_rejects_at_exp() -> None:
    kr = make_keyring(settings=JWTSettings(leeway=0))
    token = raw_token(HEADER1, valid_claims())
    assert invalid_detail(kr, token, NOW + 60) == "expired"


def test_verify_rejects_iat_in_the_future_beyond_leeway(kr: Keyring) -> None:
    token = raw_token(HEADER1, valid_claims(now=NOW + SETTINGS.leeway + 1))
    assert invalid_detail(kr, token) == "issued in the future"


def test_verify_accepts_iat_in_the_future_within_leeway(kr: Keyring) -> None:
    token = raw_token(HEADER1, valid_claims(now=NOW + SETTINGS.leeway))
    assert kr.verify(token, NOW).issued_at == NOW + SETTINGS.leeway


def test_verify_rejects_nbf_in_the_future_beyond_leeway(kr: Keyring) -> None:
    token = raw_token(HEADER1, valid_claims(nbf=NOW + SETTINGS.leeway + 1))
    assert invalid_detail(kr, token) == "not yet valid (nbf)"


def test_verify_accepts_nbf_in_the_future_within_leeway(kr: Keyring) -> None:
    token = raw_token(HEADER1, valid_claims(nbf=NOW + SETTINGS.leeway))
    assert kr.verify(token, NOW).not_before == NOW + SETTINGS.leeway


def test_verify_with_nan_now_fails_closed(kr: Keyring) -> None:
    with pytest.raises(InvalidCredentialError):
        kr.verify(raw_token(HEADER1, valid_claims()), float("nan"))


# --- configuration ------------------------------------------------------------------------------


def test_signing_secret_rejects_short_secret() -> None:
    with pytest.raises(ConfigurationError) as info:
        SigningSecret("k1", Secret("x" * 31))
    assert "x" * 31 not in str(info.value)
    assert "x" * 31 not in repr(info.value)


def test_signing_secret_counts_utf8_bytes() -> None:
    assert SigningSecret("k1", Secret("\u20ac" * 11)).kid == "k1"  # 33 bytes, 11 characters


@pytest.mark.parametrize(
    "kid", ["", "k" * 65, "a/b", "../x", "k 1", "k\n", "é", "' OR 1=1", "https://x", 1, None]
)
def test_signing_secret_rejects_bad_kid(kid: Any) -> None:
    with pytest.raises(ConfigurationError):
        SigningSecret(kid, Secret(RAW1))


@pytest.mark.parametrize("kid", ["k", "k" * 64, "2024-06.v1_A"])
def test_signing_secret_accepts_kid_charset(kid: str) -> None:
    assert SigningSecret(kid, Secret(RAW1)).kid == kid


def test_signing_secret_rejects_raw_str_secret() -> None:
    with pytest.raises(ConfigurationError) as info:
        SigningSecret("k1", RAW1)  # type: ignore[arg-type]  # a raw str on purpose
    assert RAW1 not in str(info.value)


@pytest.mark.parametrize(
    "raw",
    [
        "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n"
        "-----END PUBLIC KEY-----",
        '{"kty":"oct","k":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}',
    ],
)
def test_signing_secret_rejects_key_shaped_secrets(raw: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        SigningSecret("k1", Secret(raw))
    assert raw not in str(info.value)


def test_keyring_rejects_empty_list() -> None:
    with pytest.raises(ConfigurationError):
        Keyring([])


def test_keyring_rejects_duplicate_kids() -> None:
    with pytest.raises(ConfigurationError, match="kid"):
        make_keyring(("k1", RAW1), ("k1", RAW2))


def test_keyring_rejects_duplicate_secret_values() -> None:
    with pytest.raises(ConfigurationError) as info:
        make_keyring(("k1", RAW1), ("k2", RAW1))
    assert RAW1 not in str(info.value)


def test_keyring_rejects_unknown_signing_kid() -> None:
    with pytest.raises(ConfigurationError):
        make_keyring(signing_kid="k3")


def test_keyring_rejects_non_signing_secret_entries() -> None:
    with pytest.raises(ConfigurationError):
        Keyring([Secret(RAW1)])  # type: ignore[list-item]  # the wrong item type on purpose


def test_keyring_rejects_settings_of_wrong_type() -> None:
    with pytest.raises(ConfigurationError):
        make_keyring(settings={"leeway": 5})


def test_keyring_exposes_kids_in_order_signing_kid_and_settings() -> None:
    custom = JWTSettings(leeway=0)
    kr = make_keyring(("b", RAW2), ("a", RAW1), signing_kid="a", settings=custom)
    assert kr.kids == ("b", "a")
    assert kr.signing_kid == "a"
    assert kr.settings is custom


def test_keyring_without_signing_kid_verifies() -> None:
    token = make_keyring().mint(subject="u", workspace_id="w", permissions=[], now=NOW).reveal()
    verifier = make_keyring(signing_kid=None)
    assert verifier.signing_kid is None
    assert verifier.verify(token, NOW).subject == "u"


def test_keyring_is_immutable(kr: Keyring) -> None:
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        kr._signing_kid = "k2"  # type: ignore[misc]  # frozen: the point of the test


def test_keyring_defaults_to_default_settings() -> None:
    assert make_keyring().settings == JWTSettings()


@pytest.mark.parametrize(
    "overrides",
    [
        {"leeway": -1},
        {"leeway": 61},
        {"leeway": True},
        {"leeway": 1.0},
        {"max_lifetime": 0},
        {"max_lifetime": 86_401},
        {"max_token_bytes": 0},
        {"max_permissions": -1},
        {"issuer": ""},
        {"audience": ["authcore-api"]},
    ],
)
def test_settings_reject_out_of_range_values(overrides: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        JWTSettings(**overrides)


def test_settings_accept_bounds() -> None:
    assert JWTSettings(leeway=0, max_lifetime=1).leeway == 0
    assert JWTSettings(leeway=60, max_lifetime=86_400).max_lifetime == 86_400


# --- secrets never print ------------------------------------------------------------------------


def _dumps(obj: Any) -> list[str]:
    # Any: called with attrs instances only; attrs.asdict wants its AttrsInstance protocol.
    return [repr(obj), str(obj), f"{obj}", repr(attrs.asdict(obj)), str(attrs.asdict(obj))]


def test_signing_secret_never_shows_the_secret() -> None:
    secret = SigningSecret("k1", Secret(RAW1))
    for text in _dumps(secret):
        assert RAW1 not in text
        assert "k1" in text


def test_keyring_never_shows_the_secrets(kr: Keyring) -> None:
    for text in _dumps(kr):
        assert RAW1 not in text
        assert RAW2 not in text
        assert repr(RAW1.encode()) not in text
        assert "k1" in text


def test_keyring_cannot_be_pickled(kr: Keyring) -> None:
    with pytest.raises(TypeError):
        pickle.dumps(kr)


def test_keyring_key_table_cannot_be_pickled_on_its_own(kr: Keyring) -> None:
    with pytest.raises(TypeError):
        pickle.dumps(kr._keys)


def test_errors_never_contain_the_token(kr: Keyring) -> None:
    token = raw_token(HEADER1, valid_claims(), key="z" * 40)
    with pytest.raises(InvalidCredentialError) as info:
        kr.verify(token, NOW)
    assert token not in str(info.value)
    assert token not in repr(info.value)


# --- hypothesis: nothing but our errors ---------------------------------------------------------

HYPOTHESIS_KEYRING = make_keyring()


def _verify_outcome(token: object, now: float) -> None:
    try:
        result = HYPOTHESIS_KEYRING.verify(token, now)  # type: ignore[arg-type]  # arbitrary input
    except (MalformedCredentialError, InvalidCredentialError):
        return  # CredentialTooLargeError is a MalformedCredentialError; anything else fails
    assert isinstance(result, VerifiedClaims)


@given(token=token_like_text, now=st.integers(min_value=0, max_value=2 * NOW))
def test_verify_arbitrary_text_raises_only_authcore_errors(token: str, now: int) -> None:
    _verify_outcome(token, now)


@given(token=st.binary(max_size=100) | st.integers() | st.none())
def test_verify_arbitrary_non_str_is_malformed(token: object) -> None:
    with pytest.raises(MalformedCredentialError):
        HYPOTHESIS_KEYRING.verify(token, NOW)  # type: ignore[arg-type]  # arbitrary input


@settings(max_examples=300)
@given(claims=claim_dicts(), now=st.integers(min_value=NOW - 400, max_value=NOW + 400))
def test_verify_validly_signed_arbitrary_claims_raises_only_authcore_errors(
    claims: dict[str, Any], now: int
) -> None:
    try:
        token = jwt.encode(claims, RAW1, algorithm="HS256", headers={"kid": "k1"})
    except (TypeError, ValueError):
        return  # PyJWT itself refuses to encode it (e.g. a non-string iss)
    _verify_outcome(token, now)


@given(header=jwt_header_dicts, claims=claim_dicts())
def test_verify_arbitrary_headers_raises_only_authcore_errors(
    header: dict[str, Any], claims: dict[str, Any]
) -> None:
    try:
        token = raw_token(header, claims)
    except (TypeError, ValueError):
        return
    _verify_outcome(token, NOW)


@given(
    # Ids follow the names rule (issue 26): test_jwt_ids.py holds the refused ones.
    subject=name_texts(256),
    workspace_id=name_texts(128),
    permissions=st.lists(st.text(max_size=128), max_size=10),
    ttl=st.integers(min_value=1, max_value=SETTINGS.max_lifetime),
    name=st.none() | name_texts(256),
)
def test_mint_verify_round_trips_for_any_valid_claims(
    subject: str, workspace_id: str, permissions: list[str], ttl: int, name: str | None
) -> None:
    kr = HYPOTHESIS_KEYRING
    token = kr.mint(
        subject=subject,
        workspace_id=workspace_id,
        permissions=permissions,
        now=NOW,
        ttl=ttl,
        name=name,
    )
    claims = kr.verify(token.reveal(), NOW + ttl - 1)
    assert (claims.subject, claims.workspace_id, claims.permissions, claims.name) == (
        subject,
        workspace_id,
        tuple(permissions),
        name,
    )


# --- check_rotation -----------------------------------------------------------------------------

LATER = SETTINGS.max_lifetime + SETTINGS.leeway


def test_rotation_adding_a_kid_is_safe() -> None:
    assert check_rotation(["k1", "k2"], "k1", switched_at=None, now=NOW, settings=SETTINGS) == (
        RotationCheck(safe=True, problems=())
    )


def test_rotation_switching_to_a_kid_in_the_api_list_is_safe() -> None:
    check = check_rotation(["k1", "k2"], "k2", switched_at=NOW, now=NOW, settings=SETTINGS)
    assert check.safe


def test_rotation_signing_kid_missing_from_api_list_is_unsafe() -> None:
    check = check_rotation(["k1"], "k2", switched_at=NOW, now=NOW, settings=SETTINGS)
    assert not check.safe
    assert "not in the API list" in check.problems[0]


def test_rotation_removing_the_signing_kid_is_unsafe() -> None:
    check = check_rotation(
        ["k1", "k2"], "k2", switched_at=0, removing=["k2"], now=NOW, settings=SETTINGS
    )
    assert not check.safe
    assert "signing kid" in check.problems[0]


def test_rotation_removing_after_max_lifetime_plus_leeway_is_safe() -> None:
    check = check_rotation(
        ["k1", "k2"], "k2", switched_at=NOW, removing=["k1"], now=NOW + LATER, settings=SETTINGS
    )
    assert check == RotationCheck(safe=True, problems=())


def test_rotation_removing_one_second_too_early_is_unsafe() -> None:
    check = check_rotation(
        ["k1", "k2"],
        "k2",
        switched_at=NOW,
        removing=["k1"],
        now=NOW + LATER - 1,
        settings=SETTINGS,
    )
    assert not check.safe
    assert "1 s to go" in check.problems[0]


def test_rotation_removing_with_unknown_switch_time_is_unsafe() -> None:
    check = check_rotation(
        ["k1", "k2"], "k2", switched_at=None, removing=["k1"], now=NOW, settings=SETTINGS
    )
    assert not check.safe
    assert "unknown" in check.problems[0]


def test_rotation_uses_the_settings_lifetime_and_leeway() -> None:
    short = JWTSettings(max_lifetime=10, leeway=0)
    check = check_rotation(
        ["k1", "k2"], "k2", switched_at=NOW, removing=["k1"], now=NOW + 10, settings=short
    )
    assert check.safe


def test_rotation_removing_a_kid_not_in_the_api_list_is_unsafe() -> None:
    check = check_rotation(
        ["k1", "k2"], "k2", switched_at=0, removing=["k9"], now=NOW, settings=SETTINGS
    )
    assert not check.safe
    assert "'k9' is not in the API list" in check.problems[0]


def test_rotation_duplicate_kids_in_api_list_are_unsafe() -> None:
    check = check_rotation(["k1", "k1"], "k1", switched_at=None, now=NOW, settings=SETTINGS)
    assert not check.safe


def test_rotation_reports_every_problem() -> None:
    check = check_rotation(
        ["k1"], "k2", switched_at=None, removing=["k1", "k2"], now=NOW, settings=SETTINGS
    )
    assert len(check.problems) == 3
    assert all(isinstance(p, str) and p for p in check.problems)


def test_verified_claims_name_the_secret_that_verified_them() -> None:
    first = SigningSecret("k1", Secret("1" * 40))
    second = SigningSecret("k2", Secret("2" * 40))
    with_kid = Keyring([second], signing_kid="k2").mint(
        subject="u", workspace_id="w", permissions=[], now=NOW
    )
    claims = {
        "iss": "authcore-dashboard",
        "aud": "authcore-api",
        "sub": "u",
        "workspace_id": "w",
        "permissions": [],
        "iat": NOW,
        "exp": NOW + 60,
    }
    # Without a kid the list is tried in order: the second secret verifies it.
    without_kid = jwt.encode(claims, "2" * 40, algorithm="HS256")
    both = Keyring([first, second])
    assert both.verify(with_kid.reveal(), NOW).key_id == "k2"
    assert both.verify(without_kid, NOW).key_id == "k2"
