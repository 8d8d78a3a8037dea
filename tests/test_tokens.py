"""Secrets never print; keys and tokens have the documented shape; digests compare safely."""

from __future__ import annotations

import hashlib
import pickle
import traceback

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from authcore.errors import ConfigurationError
from authcore.tokens import (
    IssuedToken,
    Secret,
    digest,
    digests_equal,
    generate_id,
    issue_token,
    redact_headers,
    validate_prefix,
)


@given(st.text(min_size=8))
def test_secret_never_prints(value: str) -> None:
    secret = Secret(value)
    for text in (repr(secret), str(secret), f"{secret}", f"{secret!r}", f"{secret:>20}"):
        assert value not in text or value in "Secret('[secure]')"


def test_secret_reveals_on_request_only() -> None:
    assert Secret("abc").reveal() == "abc"


def test_secret_equality_is_by_value() -> None:
    assert Secret("abc") == Secret("abc")
    assert Secret("abc") != Secret("abd")
    assert Secret("abc") != "abc"
    assert hash(Secret("abc")) == hash(Secret("abc"))


def test_secret_fingerprint_is_short_and_not_the_value() -> None:
    secret = Secret("a-very-long-secret-value")
    assert len(secret.fingerprint) == 8
    assert secret.fingerprint == hashlib.sha256(b"a-very-long-secret-value").hexdigest()[:8]


def test_secret_refuses_pickling() -> None:
    with pytest.raises(TypeError):
        pickle.dumps(Secret("abc"))


def test_secret_requires_str() -> None:
    with pytest.raises(TypeError):
        Secret(b"abc")  # type: ignore[arg-type]  # the wrong type is the point


def test_secret_absent_from_traceback_of_an_error_mentioning_it() -> None:
    secret = Secret("ak_TRACEBACK_SENTINEL")
    try:
        raise ValueError(f"bad key {secret}")
    except ValueError:
        text = traceback.format_exc()
    assert "ak_TRACEBACK_SENTINEL" not in text


def test_issued_token_shape() -> None:
    issued = issue_token("ak_", "key")
    value = issued.secret.reveal()
    assert value.startswith("ak_")
    assert len(value) == 3 + 43  # 256 bits of base64url
    assert issued.start == value[:9]
    assert issued.id.startswith("key_")
    assert issued.digest == hashlib.sha256(value.encode()).digest()


def test_issued_tokens_are_unique() -> None:
    values = {issue_token("ak_", "key").secret.reveal() for _ in range(200)}
    assert len(values) == 200


def test_issued_token_repr_and_asdict_hide_the_secret() -> None:
    issued = issue_token("pt_", "ps")
    value = issued.secret.reveal()
    assert value not in repr(issued)
    assert value not in repr(attrs.asdict(issued))
    assert issued.digest.hex() not in repr(issued)
    assert isinstance(issued, IssuedToken)


def test_digest_is_sha256_of_whole_value() -> None:
    assert digest("ak_x") == hashlib.sha256(b"ak_x").digest()


def test_digests_compare_in_constant_time_helper() -> None:
    assert digests_equal(digest("a"), digest("a"))
    assert not digests_equal(digest("a"), digest("b"))


def test_generate_id_has_kind_and_96_bits() -> None:
    ident = generate_id("key")
    assert ident.startswith("key_")
    assert len(ident) == 4 + 24


@pytest.mark.parametrize("prefix", ["", "ak", "_", "AK_", "a.b_", "ak__", "a" * 17 + "_", "éa_"])
def test_invalid_prefixes_are_rejected(prefix: str) -> None:
    with pytest.raises(ConfigurationError):
        validate_prefix(prefix)


def test_issue_token_checks_prefix() -> None:
    with pytest.raises(ConfigurationError):
        issue_token("eyJ.", "key")


def test_redact_headers_hides_credentials_and_keeps_the_rest() -> None:
    pairs = [
        ("Authorization", "Bearer ak_SECRET"),
        ("Cookie", "authcore_portal=pt_SECRET"),
        ("set-cookie", "s=pt_SECRET"),
        ("Accept", "application/json"),
    ]
    assert redact_headers(pairs) == [
        ("Authorization", "[secure]"),
        ("Cookie", "[secure]"),
        ("set-cookie", "[secure]"),
        ("Accept", "application/json"),
    ]
    assert redact_headers({"authorization": "x"}) == [("authorization", "[secure]")]
