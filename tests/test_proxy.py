"""The dashboard proxy's pure request builder, token reuse and response filtering."""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from authcore.errors import (
    BodyTooLargeError,
    CallerAuthorizationError,
    ConfigurationError,
    CrossSiteRequestError,
    DashboardSessionRequiredError,
    HeadersTooLargeError,
    InvalidCredentialError,
    MethodNotAllowedError,
    MissingCredentialError,
    PathNotProxiedError,
    ProxyError,
    ProxyRequestError,
    SigningUnavailableError,
    UnavailableError,
    WorkspaceDisabledError,
    WorkspaceUnavailableError,
)
from authcore.keyring import JWTSettings, Keyring, SigningSecret
from authcore.proxy import (
    DEFAULT_ALLOWED_HEADERS,
    NEVER_FORWARDED_HEADERS,
    PROXY_OWN_HEADERS,
    DashboardSession,
    IncomingRequest,
    ProxySettings,
    TokenReuseCache,
    UpstreamRequest,
    build_upstream_request,
    filter_response_headers,
    prepare_request,
)
from authcore.records import WorkspaceRecord
from authcore.responses import error_response
from authcore.tokens import Secret
from tests.strategies import DANGEROUS_HEADER_FIELDS, proxy_header_sets

NOW = 1_800_000_000
SECRET_K1 = "k1-test-secret-0123456789abcdefghijklmnop"
SECRET_K2 = "k2-test-secret-0123456789abcdefghijklmnop"
JWT = JWTSettings(max_lifetime=300, leeway=5)
KEYRING = Keyring([SigningSecret("k1", Secret(SECRET_K1))], signing_kid="k1", settings=JWT)
SETTINGS = ProxySettings(token_ttl=60)
SESSION = DashboardSession(
    user_id="user_1", org_id="org_1", permissions=("keys.read", "keys.create"), display_name="Ada"
)
WORKSPACE = WorkspaceRecord(id="ws_1", name="one", org_id="org_1")
# What a browser sends with a request from the dashboard's own page.
SAME_ORIGIN = ("Sec-Fetch-Site", "same-origin")


def build(
    headers: Sequence[tuple[str, str]] = (),
    *,
    method: str = "GET",
    path: str = "/v1/keys",
    query: str = "",
    body: bytes = b"",
    session: DashboardSession | None = SESSION,
    workspace: WorkspaceRecord | None = WORKSPACE,
    settings: ProxySettings = SETTINGS,
    minter: Keyring = KEYRING,
    now: float = NOW,
    tokens: TokenReuseCache | None = None,
) -> UpstreamRequest:
    request = IncomingRequest(method, path, query, tuple(headers), body)
    return build_upstream_request(
        request, session, workspace, settings=settings, minter=minter, now=now, tokens=tokens
    )


def names(upstream: UpstreamRequest) -> list[str]:
    return [name for name, _ in upstream.headers]


def bearer(upstream: UpstreamRequest) -> str:
    values = [value for name, value in upstream.wire_headers() if name == "authorization"]
    assert len(values) == 1
    scheme, _, token = values[0].partition(" ")
    assert scheme == "Bearer"
    return token


# --- what goes through -------------------------------------------------------------------


def test_a_valid_request_gets_exactly_the_allowed_headers_host_and_a_minted_bearer() -> None:
    upstream = build(
        [("Accept", "application/json"), ("X-Request-Id", "req-1"), ("User-Agent", "ua")],
        query="limit=10&cursor=a%2Fb",
    )
    assert upstream.method == "GET"
    assert upstream.url == "http://127.0.0.1:8000/v1/keys?limit=10&cursor=a%2Fb"
    wire = upstream.wire_headers()
    assert wire[:3] == [
        ("host", "127.0.0.1:8000"),
        ("accept", "application/json"),
        ("x-request-id", "req-1"),
    ]
    assert names(upstream) == ["host", "accept", "x-request-id", "authorization"]
    claims = KEYRING.verify(bearer(upstream), NOW)
    assert (claims.subject, claims.workspace_id) == ("user_1", "ws_1")
    assert claims.permissions == ("keys.read", "keys.create")
    assert claims.name == "Ada"
    assert claims.expires_at - claims.issued_at == SETTINGS.token_ttl


def test_a_body_is_forwarded_with_its_content_length() -> None:
    upstream = build(
        [("Content-Type", "application/json"), SAME_ORIGIN], method="POST", body=b'{"a":1}'
    )
    assert upstream.body == b'{"a":1}'
    assert ("content-length", "7") in upstream.wire_headers()


def test_a_post_without_body_says_content_length_zero() -> None:
    assert ("content-length", "0") in build([SAME_ORIGIN], method="POST").wire_headers()


def test_a_get_without_body_has_no_content_length() -> None:
    assert "content-length" not in names(build())


def test_repeated_allowed_headers_are_all_copied_in_order() -> None:
    upstream = build([("accept", "a/b"), ("Accept", "c/d")])
    assert [v for n, v in upstream.wire_headers() if n == "accept"] == ["a/b", "c/d"]


def test_the_jwt_never_appears_in_repr_or_asdict() -> None:
    upstream = build()
    token = bearer(upstream)
    assert token not in repr(upstream)
    assert token not in repr(attrs.asdict(upstream))
    assert token not in str(upstream)
    assert upstream.token is not None
    assert upstream.token.reveal() == token


# --- caller Authorization: 400 ---------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        [("Authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig")],
        [("authorization", "Bearer x")],
        [("AUTHORIZATION", "Basic dXNlcjpwYXNz")],
        [("aUtHoRiZaTiOn", "Bearer x")],
        [("Authorization", "")],
        [("Authorization", "Bearer a"), ("Authorization", "Bearer b")],
        [("authorization", "Bearer a"), ("AUTHORIZATION", "Bearer b")],
        [("Authorization ", "Bearer x")],
    ],
    ids=["canonical", "lower", "upper-basic", "mixed", "empty", "repeated", "repeated-mixed", "ws"],
)
def test_a_caller_authorization_header_is_400(headers: list[tuple[str, str]]) -> None:
    with pytest.raises(CallerAuthorizationError) as info:
        build(headers)
    assert info.value.status == 400


def test_caller_authorization_is_refused_even_without_a_session() -> None:
    with pytest.raises(CallerAuthorizationError):
        build([("Authorization", "Bearer x")], session=None)


# --- never forwarded -------------------------------------------------------------------

# The table of dangerous fields is DANGEROUS_HEADER_FIELDS in tests/strategies.py: the
# header strategies build near misses from it.


@pytest.mark.parametrize(
    ("name", "value"), DANGEROUS_HEADER_FIELDS, ids=[name for name, _ in DANGEROUS_HEADER_FIELDS]
)
def test_a_dangerous_header_is_never_forwarded(name: str, value: str) -> None:
    upstream = build([(name, value), ("Accept", "*/*")])
    wire = upstream.wire_headers()
    assert name.lower() not in {n for n in names(upstream) if n not in PROXY_OWN_HEADERS}
    assert all(value != v for _, v in wire)
    assert ("host", "127.0.0.1:8000") in wire


@pytest.mark.parametrize("name", sorted(NEVER_FORWARDED_HEADERS | {"x-forwarded-port", "a_b"}))
def test_the_allow_list_cannot_name_a_never_forwarded_header(name: str) -> None:
    with pytest.raises(ConfigurationError):
        ProxySettings(allowed_headers=DEFAULT_ALLOWED_HEADERS | {name})


@pytest.mark.parametrize("name", ["Accept", "X-Request-ID", "accept\u212a"])
def test_the_allow_list_takes_lowercase_ascii_tokens_only(name: str) -> None:
    with pytest.raises(ConfigurationError):
        ProxySettings(allowed_headers={name})


def test_a_header_named_in_connection_is_not_forwarded() -> None:
    upstream = build([("Connection", "close, Accept, X-Request-Id"), ("Accept", "a/b")])
    assert names(upstream) == ["host", "authorization"]


def test_connection_naming_authorization_smuggles_nothing() -> None:
    upstream = build([("Connection", "close, Authorization"), ("Accept", "a/b")])
    assert names(upstream) == ["host", "accept", "authorization"]
    KEYRING.verify(bearer(upstream), NOW)


@pytest.mark.parametrize(
    "name", ["x_request_id", "content_type", "Accept_Language", "x-request_id"]
)
def test_a_header_name_with_an_underscore_is_never_forwarded(name: str) -> None:
    upstream = build([(name, "v")])
    assert names(upstream) == ["host", "authorization"]


@pytest.mark.parametrize(
    "name", ["\u212aeep-alive", "acc\u0130pt", "accept ", " accept", "acce pt", "accept:"]
)
def test_a_name_that_is_not_an_ascii_token_is_never_forwarded(name: str) -> None:
    assert names(build([(name, "v")])) == ["host", "authorization"]


@pytest.mark.parametrize(
    "value",
    ["a\r\nX-Injected: 1", "a\nb", "a\rb", "a\x00b", "a\x01b", "a\tb", "a\x7fb", "caf\u00e9"],
    ids=["crlf", "lf", "cr", "nul", "soh", "tab", "del", "non-ascii"],
)
def test_a_control_character_in_a_forwarded_value_is_400(value: str) -> None:
    with pytest.raises(ProxyRequestError) as info:
        build([("Accept", value)])
    assert info.value.status == 400


def test_a_control_character_in_a_dropped_header_is_harmless() -> None:
    upstream = build([("X-Other", "a\r\nb"), ("Cookie", "x\x00y")])
    assert names(upstream) == ["host", "authorization"]


def test_surrounding_whitespace_is_trimmed_from_a_forwarded_value() -> None:
    assert ("accept", "a/b") in build([("Accept", "  a/b ")]).wire_headers()


def test_an_overlong_forwarded_value_is_400() -> None:
    settings = ProxySettings(max_header_value_length=16)
    with pytest.raises(ProxyRequestError):
        build([("Accept", "a" * 17)], settings=settings)


def test_too_many_header_fields_is_431() -> None:
    with pytest.raises(HeadersTooLargeError) as info:
        build([("x-a", "1")] * 200)
    assert info.value.status == 431


# --- path and query ---------------------------------------------------------------------

PATH_ATTACKS = [
    "/v1/keys%2fadmin",
    "/v1/keys%2Fadmin",
    "/v1/keys%5cadmin",
    "/v1/keys%5Cadmin",
    "/v1/./keys",
    "/v1/../admin",
    "/v1/keys/..",
    "/v1/keys/.",
    "/v1/%2e%2e/admin",
    "/v1/%2E%2E/admin",
    "/v1/.%2e/admin",
    "/v1/%2e/keys",
    "/v1/..;/admin",
    "/v1//keys",
    "/v1/keys\\..\\admin",
    "/v1/keys\\admin",
    "/v1/keys\x00",
    "/v1/keys\r\nX: y",
    "/v1/keys\t",
    "/v1/k%00eys",
    "/v1/k%0d%0aeys",
    "/v1/k%252f",
    "/v1/k%zz",
    "/v1/k%2",
    "/v1/k eys",
    "/v1/k\u00e9",
    "/v1/keys#frag",
    "/v1/keys?x=1",
    "v1/keys",
    "",
]


@pytest.mark.parametrize("path", PATH_ATTACKS)
def test_an_unsafe_path_is_400(path: str) -> None:
    with pytest.raises(ProxyRequestError) as info:
        build(path=path)
    assert info.value.status == 400


@pytest.mark.parametrize("path", ["/v2/keys", "/v1", "/admin", "/", "/v10/keys"])
def test_a_path_outside_the_prefixes_is_404(path: str) -> None:
    with pytest.raises(PathNotProxiedError) as info:
        build(path=path)
    assert info.value.status == 404


@pytest.mark.parametrize("path", ["/v1/keys/key_1", "/v1/keys/", "/v1/a%20b/c:d@e", "/v1/%C3%A9"])
def test_a_clean_path_is_forwarded_verbatim(path: str) -> None:
    assert build(path=path).url == "http://127.0.0.1:8000" + path


def test_an_overlong_path_is_400() -> None:
    with pytest.raises(ProxyRequestError):
        build(path="/v1/" + "a" * 3000)


@pytest.mark.parametrize(
    "query", ["a=\x00", "a=\r\nb", "a=b\x7f", "a=\tb", "a=\u00e9", "a=b c", "a=1#frag"]
)
def test_a_query_with_control_or_unsafe_characters_is_400(query: str) -> None:
    with pytest.raises(ProxyRequestError):
        build(query=query)


def test_a_disallowed_method_is_405_and_names_the_allowed_ones() -> None:
    for method in ("TRACE", "get", "CONNECT"):
        with pytest.raises(MethodNotAllowedError) as caught:
            build(method=method)
        assert caught.value.status == 405
        assert "GET" in caught.value.allow
        assert method not in caught.value.allow
    response = error_response(caught.value)
    assert response.status == 405
    allow = dict(response.headers)["allow"].split(", ")
    assert "GET" in allow
    assert "TRACE" not in allow


# --- body -------------------------------------------------------------------------------


def test_a_body_over_the_cap_is_413() -> None:
    settings = ProxySettings(max_body_bytes=10)
    assert build([SAME_ORIGIN], method="POST", body=b"x" * 10, settings=settings).body == b"x" * 10
    with pytest.raises(BodyTooLargeError) as info:
        build([SAME_ORIGIN], method="POST", body=b"x" * 11, settings=settings)
    assert info.value.status == 413


# --- session and workspace ----------------------------------------------------------------


def test_no_dashboard_session_is_401() -> None:
    with pytest.raises(DashboardSessionRequiredError) as info:
        build(session=None)
    assert info.value.status == 401
    assert isinstance(info.value, MissingCredentialError)


def test_an_org_without_a_workspace_is_403_not_401() -> None:
    with pytest.raises(WorkspaceUnavailableError) as info:
        build(workspace=None)
    assert info.value.status == 403


def test_a_disabled_workspace_is_403_not_401() -> None:
    with pytest.raises(WorkspaceUnavailableError) as info:
        build(workspace=attrs.evolve(WORKSPACE, disabled=True))
    assert info.value.status == 403
    assert isinstance(info.value, WorkspaceDisabledError)


def test_a_workspace_of_another_org_is_403() -> None:
    with pytest.raises(WorkspaceUnavailableError):
        build(workspace=attrs.evolve(WORKSPACE, org_id="org_2"))


# --- signing ------------------------------------------------------------------------------


def test_a_verify_only_keyring_is_503() -> None:
    verify_only = Keyring([SigningSecret("k1", Secret(SECRET_K1))], settings=JWT)
    with pytest.raises(SigningUnavailableError) as info:
        build(minter=verify_only)
    assert info.value.status == 503
    assert isinstance(info.value, UnavailableError)


def test_a_ttl_over_the_keyring_max_lifetime_is_503() -> None:
    with pytest.raises(SigningUnavailableError):
        build(settings=ProxySettings(token_ttl=301))


def test_an_overlong_display_name_is_left_out_of_the_token() -> None:
    upstream = build(session=attrs.evolve(SESSION, display_name="x" * 300))
    assert KEYRING.verify(bearer(upstream), NOW).name is None


# --- cross-site ---------------------------------------------------------------------------


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
def test_a_cross_site_state_change_is_403(site: str) -> None:
    with pytest.raises(CrossSiteRequestError):
        build([("Sec-Fetch-Site", site)], method="POST")
    build([("Sec-Fetch-Site", site)], method="GET")


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_a_write_with_neither_fetch_metadata_nor_origin_is_403(method: str) -> None:
    # Finding 4: a cookie write without Sec-Fetch-Site used to pass when no origin was trusted.
    with pytest.raises(CrossSiteRequestError):
        build(method=method)
    with pytest.raises(CrossSiteRequestError):
        build([("Origin", "https://evil.example")], method=method)
    with pytest.raises(CrossSiteRequestError):
        build([("Sec-Fetch-Site", "none")], method=method)


def test_the_dashboards_own_origin_passes_without_fetch_metadata() -> None:
    own = [("Host", "dash.example:8001"), ("Origin", "http://dash.example:8001")]
    build(own, method="POST")
    https = IncomingRequest("POST", "/v1/keys", "", (("Host", "dash.example"),
                            ("Origin", "https://dash.example")), scheme="https")  # fmt: skip
    prepare_request(https, SETTINGS)
    with pytest.raises(CrossSiteRequestError):  # the scheme is part of the origin
        build([("Host", "dash.example"), ("Origin", "https://dash.example")], method="POST")


def test_fetch_metadata_outranks_an_own_origin() -> None:
    with pytest.raises(CrossSiteRequestError):
        build(
            [
                ("Sec-Fetch-Site", "cross-site"),
                ("Host", "d.example"),
                ("Origin", "http://d.example"),
            ],
            method="POST",
        )


def test_the_body_cap_defaults_to_what_the_api_accepts_and_is_bounded() -> None:
    assert ProxySettings().max_body_bytes == 16 * 1024
    assert ProxySettings(max_body_bytes=64 * 1024).max_body_bytes == 64 * 1024
    with pytest.raises(ConfigurationError):
        ProxySettings(max_body_bytes=64 * 1024 + 1)
    with pytest.raises(ConfigurationError):
        ProxySettings(body_timeout=0)
    assert ProxySettings().body_timeout == 10


def test_an_untrusted_origin_cannot_change_state() -> None:
    settings = ProxySettings(trusted_origins={"https://dash.example"})
    build([("Origin", "https://dash.example")], method="DELETE", settings=settings)
    with pytest.raises(CrossSiteRequestError):
        build([("Origin", "https://evil.example")], method="DELETE", settings=settings)


# --- configuration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "upstream",
    [
        "http://127.0.0.1:8000/",
        "http://127.0.0.1:8000/api",
        "http://127.0.0.1:8000?x=1",
        "http://user:pw@127.0.0.1:8000",
        "ftp://127.0.0.1",
        "http://127.0.0.1:99999",
        "127.0.0.1:8000",
        "http://",
    ],
)
def test_the_upstream_must_be_a_bare_origin(upstream: str) -> None:
    with pytest.raises(ConfigurationError):
        ProxySettings(upstream=upstream)


@pytest.mark.parametrize("prefix", ["/v1", "v1/", "/v1/../", "//", "/a%2f/"])
def test_a_path_prefix_must_be_clean(prefix: str) -> None:
    with pytest.raises(ConfigurationError):
        ProxySettings(path_prefixes=(prefix,))


def test_the_errors_map_to_problem_documents_with_fixed_messages() -> None:
    for error in (CallerAuthorizationError("detail"), SigningUnavailableError("secret?")):
        response = error_response(error)
        assert b"detail" not in response.body
        assert b"secret" not in response.body
        assert response.status == error.status
        assert isinstance(error, ProxyError)


# --- token reuse --------------------------------------------------------------------------


def test_a_token_is_reused_until_half_its_lifetime_then_reminted() -> None:
    tokens = TokenReuseCache()
    first = bearer(build(now=NOW, tokens=tokens))
    assert bearer(build(now=NOW + 29, tokens=tokens)) == first  # ttl 60: half-life at +30
    second = bearer(build(now=NOW + 30, tokens=tokens))
    assert second != first
    assert KEYRING.verify(second, NOW + 30).issued_at == NOW + 30
    assert bearer(build(now=NOW + 59, tokens=tokens)) == second


def test_a_reused_token_is_per_user_workspace_and_permissions() -> None:
    tokens = TokenReuseCache()
    base = bearer(build(tokens=tokens))
    other_user = bearer(build(session=attrs.evolve(SESSION, user_id="user_2"), tokens=tokens))
    other_perms = bearer(build(session=attrs.evolve(SESSION, permissions=("x",)), tokens=tokens))
    other_ws = bearer(
        build(
            session=attrs.evolve(SESSION, org_id="org_9"),
            workspace=WorkspaceRecord(id="ws_9", name="n", org_id="org_9"),
            tokens=tokens,
        )
    )
    assert len({base, other_user, other_perms, other_ws}) == 4
    assert bearer(build(tokens=tokens)) == base


def test_a_new_signing_kid_mints_a_new_token() -> None:
    tokens = TokenReuseCache()
    first = bearer(build(tokens=tokens))
    k2 = Keyring(
        [SigningSecret("k1", Secret(SECRET_K1)), SigningSecret("k2", Secret(SECRET_K2))],
        signing_kid="k2",
        settings=JWT,
    )
    second = bearer(build(tokens=tokens, minter=k2))
    assert second != first
    assert k2.verify(second, NOW).subject == "user_1"


def test_a_clock_that_goes_backwards_mints_anew() -> None:
    tokens = TokenReuseCache()
    first = bearer(build(now=NOW, tokens=tokens))
    assert bearer(build(now=NOW - 1, tokens=tokens)) != first


def test_the_reuse_cache_is_bounded() -> None:
    tokens = TokenReuseCache(max_entries=3)
    for index in range(10):
        build(session=attrs.evolve(SESSION, user_id=f"user_{index}"), tokens=tokens)
    assert len(tokens) == 3
    assert "eyJ" not in repr(tokens)


def test_a_verify_only_keyring_is_503_even_with_a_cached_token() -> None:
    tokens = TokenReuseCache()
    build(tokens=tokens)
    verify_only = Keyring([SigningSecret("k1", Secret(SECRET_K1))], settings=JWT)
    with pytest.raises(SigningUnavailableError):
        build(tokens=tokens, minter=verify_only)


# --- responses back to the browser -------------------------------------------------------


def test_response_headers_lose_hop_by_hop_set_cookie_and_authorization() -> None:
    kept = filter_response_headers(
        [
            ("Content-Type", "application/json"),
            ("Set-Cookie", "api=1"),
            ("set-cookie", "api=2"),
            ("Connection", "keep-alive, X-Internal"),
            ("X-Internal", "secret route"),
            ("Keep-Alive", "timeout=5"),
            ("Transfer-Encoding", "chunked"),
            ("Authorization", "Bearer x"),
            ("Proxy-Authenticate", "Basic"),
            ("Upgrade", "h2c"),
            ("RateLimit-Remaining", "9"),
            ("RateLimit", '"workspace";r=9;t=1'),
            ("X-Bad", "a\r\nb"),
        ]
    )
    assert kept == (
        ("content-type", "application/json"),
        ("ratelimit-remaining", "9"),
        ("ratelimit", '"workspace";r=9;t=1'),
    )


def test_response_headers_never_carry_the_minted_token() -> None:
    upstream = build()
    token = bearer(upstream)
    kept = filter_response_headers(
        [("X-Echo", f"you sent {token}"), ("X-Fine", "ok")], token=upstream.token
    )
    assert kept == (("x-fine", "ok"),)


# --- properties ---------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(headers=proxy_header_sets)
def test_upstream_headers_are_only_allowed_ones_and_the_proxys_own(
    headers: list[tuple[str, str]],
) -> None:
    # The only refusals header content may cause: a caller Authorization or a bad value of a
    # header that would have been copied (both 400). Any other error fails the test.
    refused: ProxyRequestError | None = None
    try:
        upstream = build(headers)
    except ProxyRequestError as exc:
        refused = exc
    if refused is not None:
        assert refused.status == 400
        return
    assert not any(name.strip(" \t").lower() == "authorization" for name, _ in headers)
    wire = upstream.wire_headers()
    allowed = SETTINGS.allowed_headers | PROXY_OWN_HEADERS
    assert {name for name, _ in wire} <= allowed
    assert "cookie" not in {name for name, _ in wire}
    assert [name for name, _ in wire].count("authorization") == 1
    assert [name for name, _ in wire].count("host") == 1
    assert ("host", "127.0.0.1:8000") in wire
    KEYRING.verify(bearer(upstream), NOW)
    sent = {(name.lower(), value.strip(" \t")) for name, value in headers if name.isascii()}
    for name, value in wire:
        if name not in PROXY_OWN_HEADERS:
            assert (name, value) in sent
            assert all(0x20 <= ord(char) <= 0x7E for char in value)


@settings(max_examples=200, deadline=None)
@given(path=st.text(max_size=40), query=st.text(max_size=20))
def test_any_path_or_query_is_forwarded_clean_or_refused_with_our_error(
    path: str, query: str
) -> None:
    refused: ProxyRequestError | None = None
    try:
        prepared = prepare_request(IncomingRequest("GET", "/v1/" + path, query), SETTINGS)
    except ProxyRequestError as exc:
        refused = exc
    if refused is not None:
        assert refused.status in {400, 404}
        return
    segments = prepared.path.split("/")
    assert "." not in segments
    assert ".." not in segments
    assert "\\" not in prepared.path
    assert "%2f" not in prepared.path.lower()
    assert all(0x21 <= ord(char) <= 0x7E for char in prepared.path + prepared.query)


def test_invalid_credential_is_not_a_proxy_outcome() -> None:
    # The proxy never answers 401 invalid_token for a dashboard user: only "sign in".
    assert not issubclass(DashboardSessionRequiredError, InvalidCredentialError)


@pytest.mark.parametrize(
    "options",
    [
        {"path_prefixes": 5},
        {"methods": 5},
        {"trusted_origins": 5},
        {"allowed_headers": [b"accept"]},
        {"path_prefixes": [b"/v1/"]},
    ],
)
def test_bad_proxy_settings_are_configuration_errors(options: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        ProxySettings(**options)  # type: ignore[arg-type]  # wrong types on purpose


@pytest.mark.parametrize("headers", [5, "accept: x", [("accept", 1)], [("accept",)]])
def test_incoming_headers_of_the_wrong_shape_are_our_error(headers: object) -> None:
    with pytest.raises(ProxyRequestError):
        IncomingRequest("GET", "/v1/keys", headers=headers)  # type: ignore[arg-type]


def test_a_session_with_non_string_permissions_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        DashboardSession(user_id="u", org_id="o", permissions=5)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        DashboardSession(user_id="u", org_id="o", permissions=[5])  # type: ignore[list-item]
