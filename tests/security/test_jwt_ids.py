"""Issue 26: ids inside a validly signed JWT follow the names rule, on every backend.

A ``workspace_id`` holding a lone surrogate, or a ``sub`` holding NUL or a bidi override, was
answered differently by the memory, SQLite and PostgreSQL stores (the SQL drivers cannot encode
a surrogate; the memory store just found no workspace). The keyring now applies the names rule
(:func:`authcore.names.check_name`'s characters) to ``sub``, ``workspace_id``, ``name`` and
``jti`` while verifying, so each such token is a plain 401 ``credential_invalid`` before any
store is asked. The tokens are signed with the configured secret: only the ids are hostile.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from authcore.backends import Auth
from authcore.backends.memory import MemoryStore
from authcore.backends.sqlite import SQLiteStore
from authcore.config import Config, parse_config
from authcore.keyring import Keyring, SigningSecret
from authcore.records import OPERATOR_ACTOR
from authcore.service.runner import build_api
from authcore.tokens import Secret
from tests.security.support import forge, good_claims, good_header
from tests.service.conftest import SIGNING_SECRET
from tests.service.servers import serve

pytestmark = pytest.mark.e2e

#: claim -> hostile value; ``{ws}`` is the real workspace id.
HOSTILE: dict[str, tuple[str, str]] = {
    "workspace-lone-surrogate": ("workspace_id", "\ud800"),
    "workspace-real-id-plus-surrogate": ("workspace_id", "{ws}\udfff"),
    "workspace-real-id-plus-bidi": ("workspace_id", "{ws}\u202e"),
    "workspace-real-id-plus-nul": ("workspace_id", "{ws}\x00"),
    "workspace-blank": ("workspace_id", "   "),
    "sub-nul": ("sub", "user\x00admin"),
    "sub-bidi-override": ("sub", "user\u202egnp.exe"),
    "sub-lone-surrogate": ("sub", "user\udc00"),
    "sub-line-separator": ("sub", "user\u2028x"),
    "sub-c1-control": ("sub", "user\x9bx"),
    "sub-blank": ("sub", " "),
    "name-bidi-isolate": ("name", "Alice\u2066x"),
    "name-newline": ("name", "Alice\nINFO forged log line"),
    "jti-nul": ("jti", "j\x00"),
}


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "memory":
        yield MemoryStore()
    elif request.param == "sqlite":
        with SQLiteStore(tmp_path / "ids.db") as opened:
            yield opened
    else:
        import psycopg

        from authcore.backends.postgres import PostgresStore

        url = request.getfixturevalue("postgres_url")
        schema = f"authcore_ids_{secrets.token_hex(6)}"
        try:
            with PostgresStore(url, schema=schema, timeout=5.0, max_size=2) as opened:
                yield opened
        finally:
            with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture
def config() -> Config:
    text = f"""
[jwt]
signing_kid = "k1"

[[jwt.secrets]]
kid = "k1"
secret = "{SIGNING_SECRET}"
"""
    return parse_config(text, environ={}, origin="test config")


@pytest.fixture
def api(store: Any, config: Config) -> Iterator[tuple[httpx.Client, str]]:
    workspace = store.create_workspace("acme", now=time.time(), actor=OPERATOR_ACTOR)
    auth = Auth.wire(store, config)
    try:
        with (
            serve(build_api(auth, own_lifecycle=False)) as url,
            httpx.Client(base_url=url, timeout=10, trust_env=False) as client,
        ):
            yield client, workspace.id
    finally:
        auth.close()


def _token(workspace_id: str, **claims: str) -> str:
    now = int(time.time())
    header = good_header(kid="k1")
    return forge(header, good_claims(workspace_id, now, **claims), key=SIGNING_SECRET.encode())


def _get_principal(client: httpx.Client, token: str) -> httpx.Response:
    return client.get("/v1/principal", headers={"Authorization": f"Bearer {token}"})


def test_the_forged_token_kit_makes_tokens_the_api_accepts(api: tuple[httpx.Client, str]) -> None:
    client, workspace = api
    response = _get_principal(client, _token(workspace, name="Alice", jti="j1"))
    assert response.status_code == 200, response.text
    assert response.json()["workspace_id"] == workspace


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_an_id_breaking_the_names_rule_is_401_on_every_backend(
    api: tuple[httpx.Client, str], case: str
) -> None:
    client, workspace = api
    claim, value = HOSTILE[case]
    value = value.replace("{ws}", workspace)
    claims = {claim: value} if claim != "workspace_id" else {}
    token = _token(value if claim == "workspace_id" else workspace, **claims)
    response = _get_principal(client, token)
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "credential_invalid"
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_the_keyring_refuses_such_a_token_and_will_not_mint_one(case: str) -> None:
    claim, value = HOSTILE[case]
    value = value.replace("{ws}", "ws_1")
    keyring = Keyring([SigningSecret("k1", Secret(SIGNING_SECRET))], signing_kid="k1")
    names = {"workspace_id": "workspace_id", "sub": "subject", "name": "name", "jti": "jwt_id"}
    arguments: dict[str, Any] = {"subject": "user_1", "workspace_id": "ws_1", names[claim]: value}
    with pytest.raises(Exception, match="cannot mint") as raised:
        keyring.mint(permissions=["keys.read"], now=int(time.time()), **arguments)
    # The message names the claim, never its value (a blank value is only spaces).
    assert not value.strip() or value not in str(raised.value)
