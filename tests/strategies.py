"""Hypothesis strategies shared by the property tests, one section per concept.

Every module-level strategy of the test suite lives here (STYLE item 12); a strategy used by a
single test may stay inside that test. This module imports only the pure core, never an adapter.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from authcore.permissions import AllOf, AnyOf, PermissionSet, Query, Require
from authcore.proxy import DEFAULT_ALLOWED_HEADERS
from authcore.ratelimit import MAX_TIME_US, RateLimitPolicy
from authcore.tokens import DEFAULT_PORTAL_TOKEN_PREFIX, DEFAULT_ROOT_KEY_PREFIX

# --------------------------------------------------------------------------------------------
# Credentials (tests/test_credentials.py, tests/security/test_pipeline_property.py)

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


def name_texts(max_size: int) -> st.SearchStrategy[str]:
    """Text the names rule accepts (authcore.names): non-blank, no Cc, Cf, Cs, Zl, Zp."""
    # authcore.names.REFUSED_CATEGORIES, spelled out for the strategy's typed parameter.
    allowed = st.characters(exclude_categories=("Cc", "Cf", "Cs", "Zl", "Zp"))
    return st.text(allowed, min_size=1, max_size=max_size).filter(str.strip)


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


# --------------------------------------------------------------------------------------------
# Permissions (tests/test_permissions.py, tests/security/test_permission_names.py)

#: One name segment from a tiny alphabet, so generated names collide often and wildcards
#: actually match things.
permission_segments = st.one_of(
    st.sampled_from(["a", "b", "keys", "read"]),
    st.from_regex(r"[a-z][a-z0-9_]{0,4}", fullmatch=True),
)
#: Valid permission names of one to four colliding segments.
permission_names = st.lists(permission_segments, min_size=1, max_size=4).map(".".join)
#: A grant segment: a name segment or the segment wildcard.
grant_segments = st.one_of(permission_segments, st.just("*"))
#: Valid grants: the global wildcard or one to four segments, some of them wildcards.
grant_names = st.one_of(
    st.just("*"),
    st.lists(grant_segments, min_size=1, max_size=4).map(".".join),
)
#: Lists of up to eight grants, as a store would hold them.
grant_lists = st.lists(grant_names, max_size=8)
#: PermissionSets built from those grant lists.
permission_sets = grant_lists.map(PermissionSet)
#: Leaf queries: one required permission.
requires = permission_names.map(Require)
#: Query trees of Require leaves under AllOf/AnyOf nodes of two or three terms.
queries: st.SearchStrategy[Query] = st.recursive(
    requires,
    lambda children: st.one_of(
        st.lists(children, min_size=2, max_size=3).map(lambda t: AllOf(tuple(t))),
        st.lists(children, min_size=2, max_size=3).map(lambda t: AnyOf(tuple(t))),
    ),
    max_leaves=12,
)
#: Query-shaped words; text made of them reaches deeper into the parser than arbitrary text.
query_words = st.sampled_from(["(", ")", "AND", "OR", "and", "a", "b.c", "*", "keys.*", "", " "])
#: Up to thirty query words joined by spaces, for the query parser.
query_like_text = st.lists(query_words, max_size=30).map(" ".join)

#: Any text a user could type, weighted toward the characters that matter.
user_text = st.text(
    alphabet=st.one_of(
        st.sampled_from("*?[].-_ az09AZ\uff0a\u0130\u0131\uff0e\u2024\x00"),
        st.characters(),
    ),
    max_size=24,
)
#: Valid permission names with longer segments than permission_names, so they rarely collide.
valid_permissions = st.from_regex(
    r"[a-z][a-z0-9_]{0,6}(\.[a-z][a-z0-9_]{0,6}){0,3}", fullmatch=True
)


# --------------------------------------------------------------------------------------------
# Rate limiting (tests/test_ratelimit.py)

NOW_US = 1_800_000_000_000_000  # about 2027 in epoch microseconds, the magnitude Redis sees
SECOND = 1_000_000  # in microseconds, the limiter's time unit

#: Any valid policy, up to a million requests per day.
policies = st.builds(
    RateLimitPolicy,
    limit=st.integers(1, 1_000_000),
    period=st.integers(1, 86_400),
)
#: Small policies make bursts, denials and refills all happen within a short simulated run.
small_policies = st.builds(RateLimitPolicy, limit=st.integers(1, 12), period=st.integers(1, 6))


@st.composite
def request_times(draw: st.DrawFn, policy: RateLimitPolicy) -> list[int]:
    """A non-decreasing run of request times: bursts (gap 0), sub-T gaps and idle stretches."""
    interval = policy.emission_interval_us
    start = draw(st.integers(NOW_US, NOW_US + 10**12))
    gaps = draw(
        st.lists(
            st.one_of(
                st.just(0),
                st.integers(1, interval),
                st.integers(interval, 3 * policy.burst_window_us),
            ),
            max_size=60,
        )
    )
    times = [start]
    for gap in gaps:
        times.append(times[-1] + gap)
    return times


@st.composite
def policy_and_times(draw: st.DrawFn) -> tuple[RateLimitPolicy, list[int]]:
    """A small policy and a run of request times against it."""
    policy = draw(small_policies)
    return policy, draw(request_times(policy))


@st.composite
def policy_and_state(draw: st.DrawFn) -> tuple[RateLimitPolicy, int | None, int]:
    """Any policy, a time, and a TAT a backend could hold (possibly stored under another policy)."""
    policy = draw(policies)
    now = draw(st.integers(0, MAX_TIME_US))
    # A stored TAT is at most now + the largest burst window any policy has.
    offset = draw(st.integers(-(10**13), 86_400 * SECOND))
    tat = draw(st.none() | st.just(max(0, now + offset)))
    return policy, tat, now


@st.composite
def lua_cases(draw: st.DrawFn) -> tuple[RateLimitPolicy, int | None, list[int]]:
    """A policy, an optional TAT to seed Redis with, and a run of request times."""
    policy = draw(st.one_of(small_policies, policies))
    times = draw(request_times(policy))
    seeded = draw(st.none() | st.integers(-(10**13), 86_400 * SECOND).map(lambda o: times[0] + o))
    return policy, seeded, times


# --------------------------------------------------------------------------------------------
# JWT (tests/test_keyring.py)

JWT_NOW = 1_700_000_000  # the time valid_claims() stamps by default, in epoch seconds

#: JSON scalars, including non-finite floats and integers beyond 64 bits.
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**12), max_value=10**12)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
#: Nested JSON values: scalars inside small lists and objects.
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
#: The claim names the keyring reads, plus one it ignores.
claim_names = st.sampled_from(
    ["iss", "aud", "sub", "workspace_id", "permissions", "iat", "exp", "nbf", "jti", "name"]
)


def valid_claims(now: int = JWT_NOW, **overrides: Any) -> dict[str, Any]:
    """Return a fresh claim set that the tests' keyring accepts at `now`."""
    claims: dict[str, Any] = {
        "iss": "authcore-dashboard",
        "aud": "authcore-api",
        "sub": "user_1",
        "workspace_id": "ws_1",
        "permissions": ["keys.read"],
        "iat": now,
        "exp": now + 60,
    }
    claims.update(overrides)
    return claims


@st.composite
def claim_dicts(draw: st.DrawFn) -> dict[str, Any]:
    """Claims that start valid, then get arbitrary members replaced, removed or added."""
    claims: dict[str, Any] = valid_claims()
    for name in draw(st.lists(claim_names, max_size=4)):
        if draw(st.booleans()):
            claims.pop(name, None)
        else:
            claims[name] = draw(json_values)
    claims.update(draw(st.dictionaries(st.text(max_size=8), json_values, max_size=3)))
    return claims


#: JOSE headers: known and unknown member names with arbitrary JSON values.
jwt_header_dicts = st.dictionaries(
    st.sampled_from(["alg", "typ", "kid", "jku", "crit", "cty", "x"]) | st.text(max_size=5),
    json_values,
    max_size=4,
)
#: Arbitrary text, or one to four base64url-ish segments joined by dots like a compact JWS.
token_like_text = st.text(max_size=300) | st.lists(
    st.text(
        alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=.", max_size=60
    ),
    min_size=1,
    max_size=4,
).map(".".join)


# --------------------------------------------------------------------------------------------
# Proxy (tests/test_proxy.py)

#: Header fields the proxy must never forward, whatever its allow-list says.
DANGEROUS_HEADER_FIELDS = [
    ("Cookie", "dashboard_session=abc"),
    ("Proxy-Authorization", "Basic eA=="),
    ("Forwarded", "for=1.2.3.4;host=evil"),
    ("X-Forwarded-For", "1.2.3.4"),
    ("X-Forwarded-Host", "evil.example"),
    ("X-Forwarded-Proto", "https"),
    ("X-Forwarded-Prefix", "/admin"),
    ("X-Real-IP", "1.2.3.4"),
    ("Connection", "keep-alive"),
    ("Keep-Alive", "timeout=5"),
    ("TE", "trailers"),
    ("Trailer", "Expires"),
    ("Transfer-Encoding", "chunked"),
    ("Upgrade", "websocket"),
    ("Proxy-Connection", "keep-alive"),
    ("X-HTTP-Method-Override", "DELETE"),
    ("X-HTTP-Method", "DELETE"),
    ("X-Method-Override", "DELETE"),
    ("X-Original-URL", "/admin"),
    ("X-Rewrite-URL", "/admin"),
    ("Host", "evil.example"),
    ("Content-Length", "999"),
]
# Near misses of allowed and dangerous names: case, underscores, padding, look-alike letters.
TRICKY_HEADER_NAMES = sorted(
    {name for name, _ in DANGEROUS_HEADER_FIELDS}
    | {name.upper() for name, _ in DANGEROUS_HEADER_FIELDS}
    | set(DEFAULT_ALLOWED_HEADERS)
    | {n.upper() for n in DEFAULT_ALLOWED_HEADERS}
    | {n.replace("-", "_") for n in DEFAULT_ALLOWED_HEADERS}
    | {"accept ", " accept", "acc\u0130pt", "\u212aeep-alive", "x-forwarded-for ", "cookie2"}
)
#: Header names a caller could send: tricky ones, any latin-1 text, token-like text.
proxy_header_names = st.one_of(
    st.sampled_from(TRICKY_HEADER_NAMES),
    st.text(alphabet=st.characters(codec="latin-1"), max_size=20),
    st.text(alphabet="abcdefgxyz-_ACEKOT", min_size=1, max_size=20),
)
#: Header values: any latin-1, printable ASCII, or a Connection-style list of names.
proxy_header_values = st.one_of(
    latin1_header_values,
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40),
    st.sampled_from(["close, accept", "keep-alive, Authorization", "x-request-id, cookie"]),
)
#: Up to twenty header fields of an incoming request to the proxy.
proxy_header_sets = st.lists(st.tuples(proxy_header_names, proxy_header_values), max_size=20)


# --------------------------------------------------------------------------------------------
# Secrets (tests/test_repr_hygiene.py)

#: Secret-like text: a distinctive alphabet, long enough that it cannot occur in a repr by chance.
secrets_text = st.text(alphabet="QWXZqwxz0123456789", min_size=32, max_size=64)


# --------------------------------------------------------------------------------------------
# Whole pipeline (tests/security/test_pipeline_property.py)


def pipeline_requests(
    credentials: list[str], portal_cookie: str
) -> st.SearchStrategy[tuple[str, str, list[tuple[str, str]]]]:
    """Requests (method, target, header fields) carrying real, near-miss and hostile credentials.

    `portal_cookie` is the app's cookie name; it is a parameter so this module needs no adapter.
    """
    real = st.sampled_from(credentials)
    token = st.one_of(real, shaped_tokens, real.map(lambda c: c[:-1]), real.map(lambda c: c + "A"))
    authorization = st.one_of(
        token.map(lambda t: f"Bearer {t}"),
        st.builds(
            lambda scheme, t: f"{scheme} {t}", st.sampled_from(["bearer", "BEARER", "Basic"]), token
        ),
        authorization_values,
    )
    cookie = st.one_of(
        token.map(lambda t: f"{portal_cookie}={t}"),
        st.builds(lambda t, u: f"a=b; {portal_cookie}={t}; {portal_cookie}={u}", token, token),
        latin1_header_values,
    )
    field = st.one_of(
        st.tuples(
            st.sampled_from(["Authorization", "authorization", "AUTHORIZATION"]), authorization
        ),
        st.tuples(st.sampled_from(["Cookie", "cookie"]), cookie),
        st.tuples(
            st.just("Sec-Fetch-Site"), st.sampled_from(["same-origin", "cross-site", "none", "x"])
        ),
        st.tuples(
            st.just("Origin"),
            st.sampled_from(["https://portal.example.com", "null", "https://evil.example"]),
        ),
        st.tuples(
            st.sampled_from(["X-Api-Key", "Proxy-Authorization", "X-Other"]), latin1_header_values
        ),
    )
    methods = st.sampled_from(
        ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "get", "BREW"]
    )
    paths = st.one_of(
        st.sampled_from(
            ["/keys", "/portal/profile", "/down/keys", "/health", "/keys/", "/portal/", "/nope"]
        ),
        st.text(alphabet="/abcdkeysportal.%-_", min_size=1, max_size=20).map(lambda p: "/" + p),
        st.sampled_from(["/keys?access_token=", "/keys?token="]).flatmap(
            lambda p: real.map(lambda c: p + c)
        ),
    )
    # A plain valid request now and then, so the success path is exercised too.
    plain = real.map(lambda c: [("Authorization", f"Bearer {c}")])
    return st.tuples(methods, paths, st.one_of(plain, st.lists(field, max_size=6)))


@st.composite
def levels_and_times(draw: st.DrawFn) -> tuple[list[RateLimitPolicy], list[int]]:
    """One to three small policies (a key's, an identity's, a workspace's) and request times."""
    levels = draw(st.lists(small_policies, min_size=1, max_size=3))
    tightest = min(levels, key=lambda policy: policy.emission_interval_us)
    return levels, draw(request_times(tightest))
