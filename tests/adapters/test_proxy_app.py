"""The dashboard proxy end to end: browser -> proxy (uvicorn, thread) -> API (uvicorn, process).

The API is a real process on 127.0.0.1 running authcore's ASGI middleware behind a recorder
that keeps exactly the request line and headers it received (``GET /__requests`` returns them),
so every test can assert what crossed, or that nothing did.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
import uvicorn

from authcore.adapters.proxy import DashboardProxy
from authcore.keyring import JWTSettings, Keyring, SigningSecret
from authcore.proxy import DashboardSession, ProxySettings
from authcore.records import WorkspaceRecord
from authcore.tokens import Secret

pytestmark = pytest.mark.e2e

SECRET_K1 = "k1-e2e-secret-0123456789abcdefghijklmnop"
JWT = JWTSettings(max_lifetime=300, leeway=5)
SIGNER = Keyring([SigningSecret("k1", Secret(SECRET_K1))], signing_kid="k1", settings=JWT)
VERIFY_ONLY = Keyring([SigningSecret("k1", Secret(SECRET_K1))], settings=JWT)
# Signs as "k1" with a secret the API does not hold: a misconfigured proxy/API pair.
WRONG_SECRET = Keyring(
    [SigningSecret("k1", Secret("not-the-api-secret-" + "z" * 24))], signing_kid="k1", settings=JWT
)
MAX_BODY = 1024

UPSTREAM_APP = textwrap.dedent(
    """
    import asyncio, json, os, socket, sys, time

    import uvicorn

    from authcore.adapters.asgi import AuthMiddleware
    from authcore.backends.memory import MemoryStore
    from authcore.flow import AsyncBackends, Authenticator, AuthSettings
    from authcore.keyring import JWTSettings, Keyring, SigningSecret
    from authcore.binding import principal_from
    from authcore.records import WorkspaceRecord
    from authcore.tokens import Secret

    RECORDED = []
    store = MemoryStore()
    store.put_workspace(WorkspaceRecord(id="ws_1", name="one", org_id="org_1"))
    keyring = Keyring(
        [SigningSecret("k1", Secret(os.environ["AUTHCORE_TEST_K1"]))],
        settings=JWTSettings(max_lifetime=300, leeway=5),
    )
    authenticator = Authenticator(
        AuthSettings(keyring=keyring, default_rate_limit=None),
        clock=time.time,
        abackends=AsyncBackends(store=store),
    )

    async def send_json(send, status, payload, extra=()):
        body = json.dumps(payload).encode()
        headers = [(b"content-type", b"application/json"), *extra]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def api(scope, receive, send):
        principal = principal_from(scope)
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["path"] == "/v1/slow":
            await asyncio.sleep(1.5)
        if scope["path"].startswith("/v1/redirect"):
            location = [(b"location", b"http://127.0.0.1:8000/v1/keys")]
            await send_json(send, int(scope["path"].rsplit("/", 1)[1]), {}, extra=location)
            return
        extra = [
            (b"set-cookie", b"api_session=1; Path=/"),
            (b"x-upstream", b"yes"),
            (b"connection", b"x-hop"),
            (b"x-hop", b"1"),
        ]
        if scope["path"] == "/v1/echo-token":
            # A careless API that reflects the bearer: the proxy must not pass it on.
            token = dict(scope["headers"])[b"authorization"].split(b" ", 1)[1]
            extra.append((b"x-echo-token", b"sent " + token))
        payload = {"principal": principal.to_dict(), "body": body.decode("latin-1")}
        await send_json(send, 200, payload, extra=extra)

    protected = AuthMiddleware(api, authenticator)

    async def recorder(scope, receive, send):
        if scope["type"] == "http" and scope["path"] == "/__requests":
            await send_json(send, 200, RECORDED)
            return
        if scope["type"] == "http":
            RECORDED.append(
                {
                    "method": scope["method"],
                    "raw_path": scope["raw_path"].decode("latin-1"),
                    "query": scope["query_string"].decode("latin-1"),
                    "headers": [
                        [k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]
                    ],
                }
            )
        await protected(scope, receive, send)

    sock = socket.socket(fileno=int(sys.argv[1]))
    config = uvicorn.Config(
        recorder, log_level="warning", lifespan="off", ws="none", http="h11", access_log=False
    )
    uvicorn.Server(config).run(sockets=[sock])
    """
)


def _listening_socket() -> socket.socket:
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on accepted sockets whose proto says
    # TCP, and without it every two-write response waits out a 40 ms delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


@attrs.define
class Upstream:
    port: int

    def recorded(self) -> list[dict[str, Any]]:
        response = httpx.get(f"http://127.0.0.1:{self.port}/__requests", timeout=5)
        result: list[dict[str, Any]] = response.json()
        return result

    def find(self, request_id: str) -> list[dict[str, Any]]:
        return [
            entry for entry in self.recorded() if ["x-request-id", request_id] in entry["headers"]
        ]


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    script = tmp_path_factory.mktemp("upstream") / "upstream_app.py"
    script.write_text(UPSTREAM_APP)
    sock = _listening_socket()
    env = {**os.environ, "AUTHCORE_TEST_K1": SECRET_K1}
    process = subprocess.Popen(
        [sys.executable, str(script), str(sock.fileno())],
        pass_fds=(sock.fileno(),),
        env=env,
        cwd=Path(__file__).resolve().parents[2],
    )
    port = sock.getsockname()[1]
    sock.close()  # the child holds its own copy of the listening socket
    try:
        # The socket already listens, so this waits for the app, with no polling loop.
        httpx.get(f"http://127.0.0.1:{port}/__requests", timeout=15).raise_for_status()
        yield Upstream(port)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


class Sessions:
    """The dashboard's own session store: cookie ``dash=<id>`` -> session."""

    sessions: dict[str, DashboardSession] = {  # noqa: RUF012 - read-only test data
        "alice": DashboardSession("user_alice", "org_1", ("keys.read",), "Alice"),
        "mallory": DashboardSession("user_mallory", "org_disabled", ("keys.read",)),
        "nobody": DashboardSession("user_nobody", "org_none", ("keys.read",)),
    }

    async def averify_session(self, cookie_headers: Sequence[str], /) -> DashboardSession | None:
        for header in cookie_headers:
            for pair in header.split(";"):
                name, _, value = pair.strip().partition("=")
                if name == "dash":
                    return self.sessions.get(value)
        return None


class Workspaces:
    records: dict[str, WorkspaceRecord] = {  # noqa: RUF012 - read-only test data
        "org_1": WorkspaceRecord(id="ws_1", name="one", org_id="org_1"),
        "org_disabled": WorkspaceRecord(
            id="ws_2", name="two", org_id="org_disabled", disabled=True
        ),
    }

    async def aresolve_workspace(self, org_id: str, /) -> WorkspaceRecord | None:
        return self.records.get(org_id)


class Router:
    """Several proxies on one server, each under its own mount, with one lifespan."""

    def __init__(self, proxies: dict[str, DashboardProxy]) -> None:
        self.proxies = proxies

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    for proxy in self.proxies.values():
                        await proxy.aclose()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        mount = "/" + scope["path"].split("/")[1]
        await self.proxies[mount](scope, receive, send)


@attrs.define
class ProxyServer:
    port: int

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture(scope="module")
def proxy(upstream: Upstream) -> Iterator[ProxyServer]:
    closed = _listening_socket()
    down_port = closed.getsockname()[1]
    closed.close()  # nothing listens here any more: connection refused
    settings = ProxySettings(upstream=f"http://127.0.0.1:{upstream.port}", max_body_bytes=MAX_BODY)

    def make(mount: str, upstream_settings: ProxySettings, keyring: Keyring, timeout: float) -> Any:
        return DashboardProxy(
            upstream_settings, Sessions(), Workspaces(), keyring, mount=mount, timeout=timeout
        )

    router = Router(
        {
            "/proxy": make("/proxy", settings, SIGNER, 1.0),
            "/fast": make("/fast", settings, SIGNER, 0.5),
            "/impatient": make("/impatient", attrs.evolve(settings, body_timeout=1), SIGNER, 1.0),
            "/nosign": make("/nosign", settings, VERIFY_ONLY, 1.0),
            "/wrongkey": make("/wrongkey", settings, WRONG_SECRET, 1.0),
            "/down": make(
                "/down",
                attrs.evolve(settings, upstream=f"http://127.0.0.1:{down_port}"),
                SIGNER,
                1.0,
            ),
        }
    )
    sock = _listening_socket()
    server = uvicorn.Server(
        uvicorn.Config(
            router, log_level="warning", lifespan="on", ws="none", http="h11", access_log=False
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        httpx.get(f"http://127.0.0.1:{sock.getsockname()[1]}/proxy/", timeout=15)
        yield ProxyServer(sock.getsockname()[1])
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
def browser(proxy: ProxyServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=proxy.url(""), trust_env=False, timeout=10) as client:
        yield client


def _raw(
    proxy: ProxyServer, method: str, path: str, headers: Sequence[tuple[str, str]]
) -> tuple[int, dict[str, str], bytes]:
    """Send a request exactly as written (no URL normalisation, any header name)."""
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        connection.putheader("Host", f"127.0.0.1:{proxy.port}")
        for name, value in headers:
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


ALICE = ("Cookie", "dash=alice; theme=dark")


# --- what crosses -------------------------------------------------------------------------


def test_only_the_built_headers_cross_and_the_api_sees_the_dashboard_user(
    browser: httpx.Client, upstream: Upstream
) -> None:
    response = browser.get(
        "/proxy/v1/echo-token?limit=5&cursor=a%2Fb",
        headers={
            "Cookie": "dash=alice; theme=dark",
            "Accept": "application/json",
            "X-Request-Id": "e2e-cross",
            "X-Forwarded-For": "1.2.3.4",
            "X-Real-IP": "1.2.3.4",
            "Forwarded": "for=1.2.3.4",
            "X-HTTP-Method-Override": "DELETE",
            "X-Original-URL": "/admin",
            "Proxy-Authorization": "Basic eA==",
            "Keep-Alive": "timeout=5",
            "X_Forwarded_Host": "evil.example",
            "User-Agent": "browser/1.0",
        },
    )
    assert response.status_code == 200
    assert response.json()["principal"] == {
        "workspace_id": "ws_1",
        "subject": {"type": "user", "id": "user_alice", "name": "Alice"},
        "source": "jwt",
        "permissions": ["keys.read"],
    }
    [entry] = upstream.find("e2e-cross")
    assert entry["method"] == "GET"
    assert entry["raw_path"] == "/v1/echo-token"
    assert entry["query"] == "limit=5&cursor=a%2Fb"
    names = [name for name, _ in entry["headers"]]
    assert names == ["host", "accept", "x-request-id", "authorization"]
    headers = dict(entry["headers"])
    assert headers["host"] == f"127.0.0.1:{upstream.port}"
    token = headers["authorization"].removeprefix("Bearer ")
    claims = SIGNER.verify(token, time.time())
    assert (claims.subject, claims.workspace_id) == ("user_alice", "ws_1")

    # Back to the browser: no cookie from the API, no hop-by-hop, nothing with the token.
    assert "set-cookie" not in response.headers
    assert "x-echo-token" not in response.headers
    assert "x-hop" not in response.headers
    assert response.headers["x-upstream"] == "yes"
    assert token not in response.text
    assert all(token not in value for value in response.headers.values())


def test_a_body_crosses_with_its_length(browser: httpx.Client, upstream: Upstream) -> None:
    response = browser.post(
        "/proxy/v1/echo",
        content=b'{"name":"k"}',
        headers={
            "Cookie": "dash=alice",
            "Content-Type": "application/json",
            "X-Request-Id": "e2e-body",
            "Sec-Fetch-Site": "same-origin",
        },
    )
    assert response.status_code == 200
    assert response.json()["body"] == '{"name":"k"}'
    [entry] = upstream.find("e2e-body")
    headers = dict(entry["headers"])
    assert headers["content-length"] == "12"
    assert headers["content-type"] == "application/json"
    # httpx sends "Accept: */*" like a browser; it is on the allow-list.
    assert [name for name, _ in entry["headers"]] == [
        "host",
        "accept",
        "content-type",
        "x-request-id",
        "content-length",
        "authorization",
    ]


def test_a_token_is_reused_across_requests(browser: httpx.Client, upstream: Upstream) -> None:
    for _ in range(2):
        response = browser.get(
            "/proxy/v1/echo", headers={"Cookie": "dash=alice", "X-Request-Id": "e2e-reuse"}
        )
        assert response.status_code == 200
    first, second = upstream.find("e2e-reuse")
    assert dict(first["headers"])["authorization"] == dict(second["headers"])["authorization"]


def test_connection_naming_authorization_smuggles_nothing(
    proxy: ProxyServer, upstream: Upstream
) -> None:
    status, _, _ = _raw(
        proxy,
        "GET",
        "/proxy/v1/echo",
        [ALICE, ("Connection", "close, Authorization, X-Request-Id"), ("X-Request-Id", "e2e-conn")],
    )
    assert status == 200
    # X-Request-Id was named in Connection, so it did not cross: find the request by count.
    last = upstream.recorded()[-1]
    assert [name for name, _ in last["headers"]] == ["host", "authorization"]
    SIGNER.verify(dict(last["headers"])["authorization"].removeprefix("Bearer "), time.time())


# --- refusals: nothing crosses ------------------------------------------------------------


def _refused(
    proxy: ProxyServer,
    upstream: Upstream,
    path: str,
    headers: Sequence[tuple[str, str]],
    method: str = "GET",
) -> tuple[int, dict[str, Any]]:
    before = len(upstream.recorded())
    status, response_headers, body = _raw(proxy, method, path, headers)
    assert len(upstream.recorded()) == before, "the request reached the API"
    assert "set-cookie" not in {name.lower() for name in response_headers}
    if not body:
        return status, {}
    assert response_headers.get("content-type") == "application/problem+json"
    problem: dict[str, Any] = json.loads(body)
    assert problem["status"] == status
    return status, problem


@pytest.mark.parametrize(
    "authorization",
    [[("Authorization", "Bearer x")], [("authorization", "")], [("AUTHORIZATION", "Basic eA==")]],
)
def test_a_caller_authorization_is_400(
    proxy: ProxyServer, upstream: Upstream, authorization: list[tuple[str, str]]
) -> None:
    status, problem = _refused(proxy, upstream, "/proxy/v1/echo", [ALICE, *authorization])
    assert status == 400
    assert problem["code"] == "authorization_not_allowed"


def test_no_dashboard_session_is_401(proxy: ProxyServer, upstream: Upstream) -> None:
    status, problem = _refused(proxy, upstream, "/proxy/v1/echo", [("Cookie", "dash=stranger")])
    assert (status, problem["code"]) == (401, "dashboard_session_required")


@pytest.mark.parametrize("user", ["mallory", "nobody"])
def test_an_org_without_an_active_workspace_is_403(
    proxy: ProxyServer, upstream: Upstream, user: str
) -> None:
    status, problem = _refused(proxy, upstream, "/proxy/v1/echo", [("Cookie", f"dash={user}")])
    assert (status, problem["code"]) == (403, "workspace_unavailable")


@pytest.mark.parametrize(
    "path",
    [
        "/proxy/v1/keys%2fadmin",
        "/proxy/v1/keys%2Fadmin",
        "/proxy/v1/keys%5cadmin",
        "/proxy/v1/./echo",
        "/proxy/v1/../admin",
        "/proxy/v1/%2e%2e/admin",
        "/proxy/v1//echo",
        "/proxy/v1/keys\\..\\admin",
    ],
)
def test_an_unsafe_path_is_400(proxy: ProxyServer, upstream: Upstream, path: str) -> None:
    status, problem = _refused(proxy, upstream, path, [ALICE])
    assert (status, problem["code"]) == (400, "proxy_request_invalid")


def test_a_method_the_proxy_never_forwards_is_405_with_allow(
    proxy: ProxyServer, upstream: Upstream
) -> None:
    status, problem = _refused(proxy, upstream, "/proxy/v1/keys", [ALICE], method="TRACE")
    assert (status, problem["code"]) == (405, "method_not_allowed")
    _, headers, _ = _raw(proxy, "TRACE", "/proxy/v1/keys", [ALICE])
    lowered = {name.lower(): value for name, value in headers.items()}
    allowed = {method.strip() for method in lowered["allow"].split(",")}
    assert "GET" in allowed
    assert "TRACE" not in allowed


def test_a_path_outside_the_prefixes_is_404(proxy: ProxyServer, upstream: Upstream) -> None:
    status, _ = _refused(proxy, upstream, "/proxy/admin/users", [ALICE])
    assert status == 404


def test_a_control_character_in_a_forwarded_header_is_400(
    proxy: ProxyServer, upstream: Upstream
) -> None:
    # The server (h11) already refuses raw control bytes; the proxy refuses what is left, such
    # as a tab inside an allowed header's value.
    status, _ = _refused(proxy, upstream, "/proxy/v1/echo", [ALICE, ("Accept", "a\tb")])
    assert status == 400


def test_a_body_over_the_cap_is_413(proxy: ProxyServer, upstream: Upstream) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    before = len(upstream.recorded())
    try:
        connection.request(
            "POST",
            "/proxy/v1/echo",
            body=b"x" * (MAX_BODY + 1),
            headers=dict([ALICE, ("Sec-Fetch-Site", "same-origin")]),
        )
        response = connection.getresponse()
        assert response.status == 413
        assert json.loads(response.read())["code"] == "body_too_large"
    finally:
        connection.close()
    assert len(upstream.recorded()) == before


def test_a_chunked_body_over_the_cap_is_413(proxy: ProxyServer, upstream: Upstream) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(4):
            yield b"y" * (MAX_BODY // 2)

    before = len(upstream.recorded())
    with httpx.Client(trust_env=False, timeout=10) as client:
        response = client.post(
            proxy.url("/proxy/v1/echo"),
            content=chunks(),
            headers={"Cookie": "dash=alice", "Sec-Fetch-Site": "same-origin"},
        )
    assert response.status_code == 413
    assert len(upstream.recorded()) == before


def test_a_body_that_does_not_arrive_in_time_is_408(proxy: ProxyServer, upstream: Upstream) -> None:
    before = len(upstream.recorded())
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=15) as sock:
        sock.sendall(
            b"POST /impatient/v1/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: dash=alice\r\n"
            b"Sec-Fetch-Site: same-origin\r\nContent-Length: 100\r\n\r\n" + b"x" * 10
        )
        answer = b""
        while chunk := sock.recv(4096):  # the proxy closes the connection after its answer
            answer += chunk
    head = answer.partition(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"http/1.1 408")
    assert b"connection: close" in head
    assert b"body_timeout" in answer
    assert len(upstream.recorded()) == before


# --- upstream failures --------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_an_upstream_redirect_is_502_and_never_relayed(browser: httpx.Client, status: int) -> None:
    response = browser.get(f"/proxy/v1/redirect/{status}", headers={"Cookie": "dash=alice"})
    assert response.status_code == 502
    assert response.json()["code"] == "upstream_redirect"
    assert "location" not in response.headers
    assert "127.0.0.1:8000" not in response.text


def test_an_unreachable_upstream_is_502(browser: httpx.Client) -> None:
    response = browser.get("/down/v1/echo", headers={"Cookie": "dash=alice"})
    assert response.status_code == 502
    assert response.json()["code"] == "upstream_unavailable"
    assert response.headers["content-type"] == "application/problem+json"


def test_a_slow_upstream_is_504(browser: httpx.Client, upstream: Upstream) -> None:
    response = browser.get(
        "/fast/v1/slow", headers={"Cookie": "dash=alice", "X-Request-Id": "e2e-slow"}
    )
    assert response.status_code == 504
    assert response.json()["code"] == "upstream_timeout"
    assert len(upstream.find("e2e-slow")) == 1  # it did reach the API, which was too slow


def test_an_api_refusing_the_minted_token_is_502_not_a_logout(browser: httpx.Client) -> None:
    response = browser.get("/wrongkey/v1/echo", headers={"Cookie": "dash=alice"})
    assert response.status_code == 502
    assert response.json()["code"] == "upstream_rejected_token"
    assert "www-authenticate" not in response.headers


def test_date_and_server_are_sent_once(browser: httpx.Client) -> None:
    response = browser.get("/proxy/v1/echo", headers={"Cookie": "dash=alice"})
    assert response.status_code == 200
    assert len(response.headers.get_list("date")) == 1
    assert len(response.headers.get_list("server")) <= 1


def test_no_signing_secret_is_503_and_nothing_is_forwarded(
    proxy: ProxyServer, upstream: Upstream
) -> None:
    status, problem = _refused(proxy, upstream, "/nosign/v1/echo", [ALICE])
    assert (status, problem["code"]) == (503, "signing_unavailable")


def test_the_proxy_logs_no_token(
    browser: httpx.Client, upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("DEBUG"):
        browser.get("/proxy/v1/echo", headers={"Cookie": "dash=alice", "X-Request-Id": "e2e-log"})
        browser.get("/proxy/v1/echo", headers={"Cookie": "dash=alice", "Authorization": "x"})
        browser.get("/nosign/v1/echo", headers={"Cookie": "dash=alice"})
    [entry] = upstream.find("e2e-log")
    token = dict(entry["headers"])["authorization"].removeprefix("Bearer ")
    assert caplog.records
    assert all(token not in record.getMessage() for record in caplog.records)
