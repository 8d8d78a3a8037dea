"""Step 1: finding exactly one credential, and classifying it by shape."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given

from authcore.credentials import (
    Credential,
    CredentialKind,
    CredentialSettings,
    Transport,
    authorization_values,
    classify_token,
    extract_credential,
    parse_cookie_header,
)
from authcore.errors import (
    AuthcoreError,
    ConfigurationError,
    CredentialTooLargeError,
    DuplicateCredentialError,
    InvalidCredentialError,
    MalformedCredentialError,
    MissingCredentialError,
    UnsupportedSchemeError,
)
from tests import strategies

API = CredentialSettings.api()
PORTAL = CredentialSettings.portal()
ROOT_KEY = "ak_" + "A" * 43
PORTAL_TOKEN = "pt_" + "b" * 43
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"


def test_no_header_and_no_cookie_is_absent_not_malformed() -> None:
    assert extract_credential([], None, API) is None


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_scheme_is_case_insensitive(scheme: str) -> None:
    credential = extract_credential([f"{scheme} {ROOT_KEY}"], None, API)
    assert credential is not None
    assert credential.secret.reveal() == ROOT_KEY


def test_several_spaces_after_the_scheme_are_accepted() -> None:
    credential = extract_credential([f"Bearer    {ROOT_KEY}"], None, API)
    assert credential is not None
    assert credential.secret.reveal() == ROOT_KEY


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (f"Bearer {ROOT_KEY}", CredentialKind.ROOT_KEY),
        (f"Bearer {JWT}", CredentialKind.JWT),
    ],
)
def test_api_route_classifies_root_keys_and_jwts(value: str, kind: CredentialKind) -> None:
    credential = extract_credential([value], None, API)
    assert credential is not None
    assert credential.secret.reveal() == value.removeprefix("Bearer ")
    assert credential.kind is kind
    assert credential.transport is Transport.BEARER


@pytest.mark.parametrize(
    "value",
    [
        f"   Bearer {ROOT_KEY}  ",
        f"Bearer {ROOT_KEY} ",
        f"\tBearer {ROOT_KEY}\t",
        f" \t Bearer {ROOT_KEY}",
    ],
)
def test_optional_whitespace_around_the_value_is_not_part_of_it(value: str) -> None:
    # RFC 9110 §5.5: OWS (SP, HTAB) around a field value is trimmed; the token is intact.
    credential = extract_credential([value], None, API)
    assert credential is not None
    assert credential.secret.reveal() == ROOT_KEY


@pytest.mark.parametrize(
    "value", [f"\x0bBearer {ROOT_KEY}", f"Bearer {ROOT_KEY}\r", f"Bearer {ROOT_KEY}\xa0"]
)
def test_only_sp_and_htab_are_trimmed(value: str) -> None:
    with pytest.raises(MalformedCredentialError):
        extract_credential([value], None, API)


def test_padding_at_the_end_is_allowed() -> None:
    credential = extract_credential([f"Bearer {ROOT_KEY}=="], None, API)
    assert credential is not None


@pytest.mark.parametrize(
    "value",
    [
        f"Bearer\t{ROOT_KEY}",  # tab as separator
        f"Bearer\u00a0{ROOT_KEY}",  # non-breaking space
        f"Bearer\u2003{ROOT_KEY}",  # em space
        f"Bearer {ROOT_KEY}\x00",  # NUL
        f"Bearer {ROOT_KEY}\x7f",  # DEL
        f"Bearer {ROOT_KEY}\r\n",  # CR/LF
        f"Bearer {ROOT_KEY}é",  # non-ASCII as latin-1 delivers it
        f"Bearer {ROOT_KEY[:10]}={ROOT_KEY[10:]}",  # '=' not at the end
        f"Bearer {ROOT_KEY}, Bearer {ROOT_KEY}",  # comma-joined repeat
        f"Bearer {ROOT_KEY} extra",  # two tokens
        "Bearer ",  # empty token
        "Bearer",  # no token at all
        "",  # empty header
        "   ",  # blank header
        "Bearer ak_abc!def",  # outside the b64token alphabet
        "Bearer ak_abc def",
    ],
)
def test_malformed_authorization_is_400(value: str) -> None:
    with pytest.raises(MalformedCredentialError) as info:
        extract_credential([value], None, API)
    assert info.value.status == 400
    assert info.value.bearer_error == "invalid_request"


@pytest.mark.parametrize("value", ["Basic dXNlcjpwYXNz", "Token abc", "Digest x", "Basic"])
def test_other_schemes_get_the_bearer_challenge(value: str) -> None:
    with pytest.raises(UnsupportedSchemeError) as info:
        extract_credential([value], None, API)
    assert info.value.status == 401
    assert info.value.bearer_error is None
    assert isinstance(info.value, MissingCredentialError)


def test_repeated_authorization_header_is_400() -> None:
    with pytest.raises(DuplicateCredentialError):
        extract_credential([f"Bearer {ROOT_KEY}", f"Bearer {ROOT_KEY}"], None, API)


def test_header_plus_portal_cookie_is_400() -> None:
    with pytest.raises(DuplicateCredentialError):
        extract_credential([f"Bearer {PORTAL_TOKEN}"], PORTAL_TOKEN, PORTAL)


def test_oversized_header_is_rejected_before_decoding() -> None:
    huge = "Bearer " + "A" * (1024 * 1024)
    with pytest.raises(CredentialTooLargeError):
        extract_credential([huge], None, API)


def test_oversized_header_with_garbage_is_still_too_large_not_parsed() -> None:
    huge = "\x00" * (API.max_length + 1)
    with pytest.raises(CredentialTooLargeError):
        extract_credential([huge], None, API)


def test_portal_token_on_api_route_is_rejected_as_invalid() -> None:
    with pytest.raises(InvalidCredentialError):
        extract_credential([f"Bearer {PORTAL_TOKEN}"], None, API)


def test_root_key_on_portal_route_is_rejected_as_invalid() -> None:
    with pytest.raises(InvalidCredentialError):
        extract_credential([f"Bearer {ROOT_KEY}"], None, PORTAL)


def test_jwt_on_portal_route_is_rejected_as_invalid() -> None:
    with pytest.raises(InvalidCredentialError):
        extract_credential([f"Bearer {JWT}"], None, PORTAL)


def test_unknown_shape_is_invalid_not_malformed() -> None:
    with pytest.raises(InvalidCredentialError):
        extract_credential(["Bearer sometoken"], None, API)


def test_jwt_shape_needs_three_segments() -> None:
    with pytest.raises(InvalidCredentialError):
        extract_credential(["Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0"], None, API)


def test_portal_cookie_is_a_credential_on_portal_routes() -> None:
    credential = extract_credential([], PORTAL_TOKEN, PORTAL)
    assert credential is not None
    assert credential.kind is CredentialKind.PORTAL_TOKEN
    assert credential.transport is Transport.COOKIE


def test_portal_token_as_bearer_on_portal_routes() -> None:
    credential = extract_credential([f"Bearer {PORTAL_TOKEN}"], None, PORTAL)
    assert credential is not None
    assert credential.transport is Transport.BEARER


def test_api_routes_ignore_the_portal_cookie() -> None:
    assert extract_credential([], PORTAL_TOKEN, API) is None


@pytest.mark.parametrize("cookie", ["pt_abc;def", "pt_\x00", "pt_é", ""])
def test_malformed_portal_cookie_is_400(cookie: str) -> None:
    with pytest.raises(MalformedCredentialError):
        extract_credential([], cookie, PORTAL)


def test_oversized_portal_cookie_is_400() -> None:
    with pytest.raises(CredentialTooLargeError):
        extract_credential([], "pt_" + "a" * PORTAL.max_length, PORTAL)


def test_portal_cookie_without_prefix_is_invalid() -> None:
    with pytest.raises(InvalidCredentialError):
        extract_credential([], "ak_" + "a" * 20, PORTAL)


def test_secret_never_appears_in_repr() -> None:
    credential = extract_credential([f"Bearer {ROOT_KEY}"], None, API)
    assert ROOT_KEY not in repr(credential)
    assert ROOT_KEY not in str(credential)


def test_classify_token_checks_acceptance() -> None:
    assert classify_token(ROOT_KEY, API) is CredentialKind.ROOT_KEY
    with pytest.raises(InvalidCredentialError):
        classify_token(PORTAL_TOKEN, API)


@pytest.mark.parametrize(
    ("root", "portal"),
    [("ak_", "ak_"), ("pt_", "pt_"), ("Ak_", "pt_"), ("ak", "pt_"), ("a.b_", "pt_")],
)
def test_bad_or_overlapping_prefixes_are_configuration_errors(root: str, portal: str) -> None:
    with pytest.raises(ConfigurationError):
        CredentialSettings(root_key_prefix=root, portal_token_prefix=portal)


def test_authorization_values_from_pairs_keeps_repeats() -> None:
    pairs = [("Authorization", "Bearer a"), ("accept", "x"), ("AUTHORIZATION", "Bearer b")]
    assert authorization_values(pairs) == ["Bearer a", "Bearer b"]


def test_authorization_values_from_plain_mapping() -> None:
    assert authorization_values({"Authorization": "Bearer a", "Accept": "x"}) == ["Bearer a"]


def test_authorization_values_uses_getlist_when_present() -> None:
    class MultiDict(dict[str, str]):
        def getlist(self, name: str) -> list[str]:
            return ["one", "two"] if name == "authorization" else []

    assert authorization_values(MultiDict()) == ["one", "two"]


def test_parse_cookie_header_finds_the_named_cookie() -> None:
    assert parse_cookie_header(["a=1; authcore_portal=pt_x; b=2"], "authcore_portal") == "pt_x"
    assert parse_cookie_header(["a=1"], "authcore_portal") is None
    assert parse_cookie_header(["authcore_portalx=1"], "authcore_portal") is None


def test_parse_cookie_header_rejects_a_repeated_cookie() -> None:
    with pytest.raises(DuplicateCredentialError):
        parse_cookie_header(["authcore_portal=pt_a", "authcore_portal=pt_b"], "authcore_portal")


@given(strategies.authorization_lists, strategies.portal_cookies)
def test_extraction_returns_credential_none_or_our_error(
    values: list[str], cookie: str | None
) -> None:
    for settings in (API, PORTAL):
        outcome: object
        try:
            outcome = extract_credential(values, cookie, settings)
        except AuthcoreError as exc:
            outcome = exc
        assert (
            outcome is None
            or isinstance(outcome, Credential)
            or (isinstance(outcome, AuthcoreError) and 400 <= outcome.status < 500)
        )


@given(strategies.shaped_tokens)
def test_well_formed_bearer_is_never_malformed(token: str) -> None:
    # A shape this route does not accept (401) is fine; a 400 would not be.
    with contextlib.suppress(InvalidCredentialError):
        extract_credential([f"Bearer {token}"], None, API)


@pytest.mark.parametrize(
    "options",
    [
        {"accepts": 5},
        {"accepts": ["root_key"]},
        {"accepts": "root_key"},
        {"allowed_origins": 5},
        {"max_length": "8192"},
        {"max_length": 0},
        {"max_length": True},
        {"portal_cookie": 5},
        {"portal_cookie": "two words"},
        {"portal_cookie": ""},
    ],
)
def test_bad_settings_are_configuration_errors_not_type_errors(options: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        CredentialSettings(**options)  # type: ignore[arg-type]  # wrong types on purpose
