"""Hypothesis strategies shared by the core's property tests."""

from __future__ import annotations

from hypothesis import strategies as st

from authcore.tokens import DEFAULT_PORTAL_TOKEN_PREFIX, DEFAULT_ROOT_KEY_PREFIX

B64TOKEN_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/"

#: Header values as ASGI hands them over: any byte, decoded as latin-1.
latin1_header_values = st.binary(max_size=300).map(lambda raw: raw.decode("latin-1"))

#: Syntactically valid b64tokens (RFC 6750 §2.1).
b64tokens = st.builds(
    lambda body, pad: body + "=" * pad,
    st.text(alphabet=B64TOKEN_ALPHABET, min_size=1, max_size=80),
    st.integers(min_value=0, max_value=2),
)

#: Tokens shaped like ours, so classification is exercised, not just syntax.
shaped_tokens = st.one_of(
    b64tokens,
    b64tokens.map(lambda t: DEFAULT_ROOT_KEY_PREFIX + t),
    b64tokens.map(lambda t: DEFAULT_PORTAL_TOKEN_PREFIX + t),
    st.lists(st.text(alphabet="abcXYZ019-_", min_size=1, max_size=20), min_size=3, max_size=3).map(
        lambda parts: "eyJ" + ".".join(parts)
    ),
)

#: Authorization header values: mostly well-formed Bearer, with hostile variations.
authorization_values = st.one_of(
    latin1_header_values,
    st.builds(
        lambda scheme, spaces, token: f"{scheme}{spaces}{token}",
        st.sampled_from(["Bearer", "bearer", "BEARER", "Basic", "Token", "Bearer\t", "Bear er"]),
        st.sampled_from([" ", "  ", "\t", "\u00a0", "\u2003", ""]),
        shaped_tokens,
    ),
)

#: The full list of Authorization fields on a request: none, one, or repeated.
authorization_lists = st.lists(authorization_values, max_size=3)

#: A portal cookie value, or none.
portal_cookies = st.one_of(
    st.none(),
    latin1_header_values,
    b64tokens.map(lambda t: DEFAULT_PORTAL_TOKEN_PREFIX + t),
)
