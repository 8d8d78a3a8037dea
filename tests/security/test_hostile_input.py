"""Finding 2: attacker input ended in 500s with tracebacks in the server log. Never again.

The review's requests, one by one, then Hypothesis: arbitrary JSON (all of Unicode, lone
surrogates, deep nesting, huge numbers) and arbitrary query strings against every route of the
example API and of the dashboard, served for real on loopback over a real SQLite file. The
rule (docs/architecture.md): bad input is a 4xx problem, never a 500, and nothing is logged as
an error.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from urllib.parse import quote

import attrs
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authcore.records import OPERATOR_ACTOR
from tests.service.stack import SAME_ORIGIN, Stack, demo_stack

pytestmark = pytest.mark.e2e

# The loggers a server writes a traceback to: uvicorn's "Exception in ASGI application",
# authcore's own "unexpected ..." lines, and anything that reaches the root logger.
_WATCHED = ("uvicorn.error", "uvicorn", "authcore", "")


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info or "Traceback" in record.msg:
            self.records.append(record)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with demo_stack(tmp_path_factory.mktemp("hostile")) as started:
        yield started


@pytest.fixture(scope="module")
def api_client(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.api_url, timeout=10, trust_env=False) as client:
        yield client


@pytest.fixture(scope="module")
def dashboard_client(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.dashboard_url, timeout=10, trust_env=False) as client:
        yield client


@pytest.fixture
def server_errors() -> Iterator[list[logging.LogRecord]]:
    """Every error record (or traceback) the servers log during the test."""
    recorder = _Recorder()
    loggers = [logging.getLogger(name) for name in _WATCHED]
    for logger in loggers:
        logger.addHandler(recorder)
    try:
        yield recorder.records
    finally:
        for logger in loggers:
            logger.removeHandler(recorder)


def _no_server_error(response: httpx.Response, errors: list[logging.LogRecord]) -> None:
    assert response.status_code < 500, (response.request.method, response.request.url)
    assert errors == [], [record.getMessage() for record in errors]


def _portal_token(stack: Stack) -> str:
    created = stack.store.create_portal_session(
        stack.workspace_id,
        "end-user-1",
        permissions=["keys.read", "keys.create", "keys.revoke", "usage.read"],
        key_permissions=["keys.read"],
        ttl=3600,
        now=time.time(),
        actor=OPERATOR_ACTOR,
    )
    assert created is not None
    return created.token.reveal()


# --- the review's requests ----------------------------------------------------------------


@pytest.mark.parametrize("limit", ["%C2%B2", "%E2%91%A2", "%E1%8D%A9", "%D9%A1%D9%A0", "1e1", "+5"])
def test_finding_2_a_limit_that_is_not_ascii_digits_is_400(
    stack: Stack, server_errors: list[logging.LogRecord], limit: str
) -> None:
    # U+00B2 superscript two, U+2462 circled three, U+1369 Ethiopic one (isdigit() says yes,
    # int() refuses), Arabic-Indic "10" (int() would read it as 10).
    with stack.api() as api:
        response = api.get(f"/v1/audit-logs?limit={limit}")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_query"
    _no_server_error(response, server_errors)


def test_finding_2_ascii_digits_still_work(stack: Stack) -> None:
    with stack.api() as api:
        response = api.get("/v1/audit-logs?limit=1")
    assert response.status_code == 200
    assert len(response.json()["events"]) == 1


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/keys", '{"name": "\\ud800", "permissions": []}'),
        ("/v1/keys", '{"name": "ok", "permissions": ["\\udfff"]}'),
        ("/v1/keys", '{"\\ud800": 1}'),
        ("/v1/keys", '{"name": "ok", "permissions": [], "identity": "\\ud800"}'),
        ("/v1/portal-sessions", '{"identity": "\\ud800", "permissions": []}'),
        ("/v1/portal-sessions", '{"identity": "a\\udbffb", "permissions": []}'),
        (
            "/v1/portal-sessions",
            '{"identity": "a", "permissions": [], "key_permissions": ["\\udfff"]}',
        ),
        ("/v1/identities", '{"external_id": "\\ud800"}'),
        ("/v1/identities", '{"external_id": "ok", "meta": {"\\udc00": 1}}'),
        ("/v1/identities", '{"external_id": "ok", "meta": {"k": "\\ud800"}}'),
    ],
)
def test_finding_2_a_lone_surrogate_in_a_body_is_400(
    stack: Stack, server_errors: list[logging.LogRecord], path: str, body: str
) -> None:
    with stack.api() as api:
        response = api.post(path, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_body"
    _no_server_error(response, server_errors)


def test_finding_2_a_surrogate_pair_is_a_character_and_is_kept(stack: Stack) -> None:
    with stack.api() as api:
        response = api.post(
            "/v1/keys",
            content='{"name": "rocket \\ud83d\\ude80", "permissions": []}',
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 201
        names = [key["name"] for key in api.get("/v1/keys").json()["keys"]]
    assert "rocket \U0001f680" in names


@pytest.mark.parametrize(
    "body",
    [
        '{"user_id": "USER", "password": "\\ud800"}',
        '{"user_id": "\\ud800", "password": "x"}',
        '{"user_id": "a\\u0085b", "password": "x"}',
        '{"user_id": "a\\u202eb", "password": "x"}',
    ],
)
def test_finding_2_a_hostile_login_is_400_or_401_never_500(
    stack: Stack, server_errors: list[logging.LogRecord], body: str
) -> None:
    with stack.dashboard(logged_in=False) as client:
        response = client.post(
            "/login",
            content=body.replace("USER", stack.user_id),
            headers={"Content-Type": "application/json", **SAME_ORIGIN},
        )
    assert response.status_code in {400, 401}
    _no_server_error(response, server_errors)


# --- Hypothesis: arbitrary JSON and query strings, every route ----------------------------

_FIELDS = (
    "name",
    "permissions",
    "expires_in",
    "identity",
    "key_permissions",
    "external_id",
    "meta",
    "rate_limit",
    "ttl",
    "code",
    "user_id",
    "password",
)
_SURROGATES = st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff"])
# All of Unicode, lone surrogates (category Cs) included.
_TEXT = st.text(
    st.characters(exclude_categories=()) | _SURROGATES,
    max_size=30,
)
# Text that surely holds something hostile: a lone surrogate, a C0 or C1 control, a bidi
# override, a line separator, a zero-width character.
_HOSTILE_TEXT = st.tuples(
    _TEXT,
    _SURROGATES | st.sampled_from(["\x00", "\n", "\x1b", "\x85", "\u202e", "\u2028", "\u200b"]),
    _TEXT,
).map("".join)
_NAMES = _HOSTILE_TEXT | _TEXT
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**60), max_value=10**60)
    | st.floats(allow_nan=True, allow_infinity=True)
    | _TEXT
    | st.sampled_from(["keys.read", "*", "keys.*", "pc_" + "A" * 43, "ak_x", "1", ""])
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=12,
)
_INTEGERS = st.integers(min_value=-(10**30), max_value=10**30) | st.integers(0, 10**7)
# Mostly grants the caller holds (so the request gets as far as the store), sometimes not.
_GRANTS = st.lists(st.sampled_from(["keys.read", "audit.read"]), max_size=2) | st.lists(
    st.sampled_from(["keys.*", "*"]) | _TEXT, max_size=3
)
# The fields each route reads, with plausible and hostile values: a body of the right shape
# gets past the shape checks to the code that uses the values (the store, the password hash).
_ROUTE_FIELDS: dict[str, dict[str, st.SearchStrategy[object]]] = {
    "keys": {
        "name": _NAMES,
        "permissions": _GRANTS,
        "expires_in": _INTEGERS | _VALUES,
        "identity": _NAMES,
    },
    "portal-sessions": {
        "identity": _NAMES,
        "permissions": _GRANTS,
        "key_permissions": _GRANTS,
        "ttl": _INTEGERS | _VALUES,
    },
    "identities": {
        "external_id": _NAMES,
        "meta": _VALUES,
        "rate_limit": _TEXT | st.sampled_from(["10/60", "0/60", "1000001/1", "5/86401"]),
    },
    "exchange": {"code": _TEXT | st.just("pc_" + "A" * 43)},
    "login": {"user_id": _NAMES, "password": _NAMES},
}


def _dump(obj: object) -> bytes:
    # ensure_ascii: every lone surrogate goes out as a "\udXXX" escape, as an attacker sends it.
    return json.dumps(obj, ensure_ascii=True).encode("ascii")


def _bodies_for(path: str) -> st.SearchStrategy[bytes]:
    kind = next((k for k in _ROUTE_FIELDS if path.rstrip("/").endswith(k)), None)
    anything = st.dictionaries(st.sampled_from(_FIELDS) | _TEXT, _VALUES, max_size=5).map(_dump)
    if kind is None:
        return anything
    fields = _ROUTE_FIELDS[kind]
    shaped = st.fixed_dictionaries(fields).map(_dump)
    some = st.fixed_dictionaries({}, optional=fields).map(_dump)
    # Weighted towards the right shape: that is where the values reach stores and hashes.
    return st.one_of(shaped, shaped, shaped, some, anything)


_DEEP = st.integers(min_value=1, max_value=8000).map(lambda n: b"[" * n + b"]" * n)
_HUGE_NUMBERS = st.integers(min_value=1, max_value=8000).map(
    lambda n: b'{"expires_in": ' + b"9" * n + b', "ttl": 1e' + str(n).encode() + b"}"
)
_RAW = _DEEP | _HUGE_NUMBERS | st.binary(max_size=64)
_CONTENT_TYPES = st.sampled_from(
    ["application/json"] * 4 + ["application/x-www-form-urlencoded", "text/plain"]
)


def _encode(text: str) -> str:
    # Lone surrogates go out as the bytes a broken encoder would send (ED A0 80 ...).
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


# Digits of every script (Nd), and other numerals (No, Nl): superscripts, circled numbers.
_NUMERALS = st.text(
    st.characters(categories=["No", "Nl"]) | st.characters(categories=["Nd"], min_codepoint=0x80),
    min_size=1,
    max_size=4,
)
_QUERIES = st.lists(
    st.tuples(
        st.sampled_from(
            ["limit", "limit", "before", "code", "identity", "after", "revoke_keys", "since"]
        )
        | _TEXT,
        _NUMERALS | _TEXT | st.integers(-5, 10**20).map(str),
    ),
    max_size=4,
).map(lambda pairs: "&".join(f"{_encode(k)}={_encode(v)}" for k, v in pairs))
_PATH_IDS = _TEXT.filter(lambda text: text not in {"", ".", ".."}).map(_encode)

# (method, path template); {id} takes an arbitrary id. Logout routes are driven with sessions
# of their own (see the tests), so that ending one does not end the shared ones.
_API_ROUTES = [
    ("GET", "/healthz"),
    ("GET", "/v1/principal"),
    ("GET", "/v1/keys"),
    ("POST", "/v1/keys"),
    ("DELETE", "/v1/keys/{id}"),
    ("GET", "/v1/keys/{id}/usage"),
    ("GET", "/v1/usage"),
    ("GET", "/v1/audit-logs"),
    ("POST", "/v1/identities"),
    ("GET", "/v1/identities"),
    ("GET", "/v1/identities/{id}"),
    ("PATCH", "/v1/identities/{id}"),
    ("DELETE", "/v1/identities/{id}"),
    ("POST", "/v1/portal-sessions"),
    ("DELETE", "/v1/portal-sessions/{id}"),
    ("POST", "/portal/exchange"),
    ("GET", "/portal/v1/principal"),
    ("GET", "/portal/v1/identity"),
    ("GET", "/portal/v1/keys"),
    ("POST", "/portal/v1/keys"),
    ("DELETE", "/portal/v1/keys/{id}"),
    ("GET", "/portal/v1/usage"),
    ("GET", "/portal/v1/keys/{id}/usage"),
    ("POST", "/portal/logout"),
]
_DASHBOARD_ROUTES = [
    ("GET", "/"),
    ("GET", "/static/{id}"),
    ("POST", "/login"),
    ("GET", "/session"),
    ("POST", "/logout"),
    ("GET", "/proxy/v1/principal"),
    ("GET", "/proxy/v1/keys"),
    ("POST", "/proxy/v1/keys"),
    ("DELETE", "/proxy/v1/keys/{id}"),
    ("GET", "/proxy/v1/audit-logs"),
    ("POST", "/proxy/v1/portal-sessions"),
    ("DELETE", "/proxy/v1/portal-sessions/{id}"),
]
_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@attrs.frozen
class _Attempt:
    """One hostile request: a route, an id for its path, a query, a body and its type."""

    route: tuple[str, str]
    path_id: str
    query: str
    body: bytes
    content_type: str
    portal_cookie: bool

    def send(self, client: httpx.Client, headers: dict[str, str]) -> httpx.Response:
        method, template = self.route
        path = template.replace("{id}", self.path_id or "x")
        target = f"{path}?{self.query}" if self.query else path
        response = client.request(
            method,
            target,
            content=self.body if method in {"POST", "PATCH"} else None,
            headers={**headers, "Content-Type": self.content_type},
        )
        client.cookies.clear()  # each request carries exactly the cookie it was given
        return response


def _attempts(route: tuple[str, str]) -> st.SearchStrategy[_Attempt]:
    return st.builds(
        _Attempt,
        route=st.just(route),
        path_id=_PATH_IDS,
        query=_QUERIES,
        body=st.one_of(_bodies_for(route[1]), _bodies_for(route[1]), _RAW),
        content_type=_CONTENT_TYPES,
        portal_cookie=st.booleans(),
    )


def _route_id(route: tuple[str, str]) -> str:
    return f"{route[0]} {route[1]}"


@pytest.mark.parametrize("route", _API_ROUTES, ids=_route_id)
@_SETTINGS
@given(data=st.data())
def test_no_input_makes_the_example_api_answer_500(
    stack: Stack,
    api_client: httpx.Client,
    server_errors: list[logging.LogRecord],
    route: tuple[str, str],
    data: st.DataObject,
) -> None:
    attempt = data.draw(_attempts(route))
    headers = dict(SAME_ORIGIN)
    path = route[1]
    if path.startswith("/portal/v1") or path == "/portal/logout":
        # A fresh session each time: logout ends the one it carries.
        token = _portal_token(stack)
        if attempt.portal_cookie:
            headers["Cookie"] = f"authcore_portal={token}"
        else:
            headers["Authorization"] = f"Bearer {token}"
    elif not path.startswith("/portal/"):
        headers["Authorization"] = f"Bearer {stack.admin_key}"
    response = attempt.send(api_client, headers)
    _no_server_error(response, server_errors)


@pytest.mark.parametrize("route", _DASHBOARD_ROUTES, ids=_route_id)
@_SETTINGS
@given(data=st.data())
def test_no_input_makes_the_dashboard_answer_500(
    stack: Stack,
    dashboard_client: httpx.Client,
    server_errors: list[logging.LogRecord],
    route: tuple[str, str],
    data: st.DataObject,
) -> None:
    attempt = data.draw(_attempts(route))
    # Logout ends the session it carries: give it one that is not the shared session.
    session = "ended-elsewhere" if route[1] == "/logout" else stack.session
    headers = {**SAME_ORIGIN, "Cookie": f"authcore_dashboard={session}"}
    response = attempt.send(dashboard_client, headers)
    _no_server_error(response, server_errors)
