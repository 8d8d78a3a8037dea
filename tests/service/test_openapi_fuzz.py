"""Schemathesis against a real ``authcore serve``: the service keeps the contract it publishes.

One ``authcore serve`` process on a loopback port, over a fresh SQLite file, with a workspace
and a ``*`` key made by the command line. Schemathesis reads the service's own
``/openapi.json`` and runs every check it has on every operation, three times: with that key,
with no credential and with a well-formed key that does not exist. Examples are few per
operation so the file fits the suite's time; the seed is fixed so a failure reproduces.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis

from authcore.backends.memory import MemoryRateLimiter, MemoryStore
from authcore.service.api import create_app
from authcore.service.openapi import openapi_document
from tests.service.servers import authcore_env, authcore_server

pytestmark = pytest.mark.e2e

#: Examples per operation and phase: enough to reach each parameter, few enough for ~1 minute.
MAX_EXAMPLES = 4
#: A key of the right shape that no store holds (the prefix and 43 base64url characters).
WRONG_KEY = "ak_" + "A" * 43
#: Schemathesis' default expectations (config/_checks.py), extended below where noted.
REJECTIONS = [400, 401, 403, 404, 405, 406, 409, 415, 422, 428, 429, "5xx"]
ACCEPTED = ["2xx", "3xx", 401, 403, 404, 409, 429, "5xx"]
#: Schemathesis' checks, each named so that none is skipped by a default.
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "positive_data_acceptance",
    "negative_data_rejection",
    "use_after_free",
    "ensure_resource_availability",
    "missing_required_header",
    "ignored_auth",
    "object_level_authorization",
    "unsupported_method",
    "allow_header_conformance",
)


def _cli(db: Path, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "authcore", "--db", f"sqlite:///{db}", *args, "--json"],
        env=authcore_env(),
        cwd=db.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """``authcore serve`` and a ``*`` key of a workspace whose limit the fuzzer never meets."""
    db = tmp_path_factory.mktemp("fuzz") / "authcore.db"
    _cli(db, "init")
    workspace = _cli(db, "workspace", "create", "--name", "fuzz", "--rate-limit", "1000000/1")
    key = _cli(db, "keys", "create", "--workspace", workspace["workspace_id"], "--permission", "*")[
        "key"
    ]
    with authcore_server(db, "serve", ready_path="/healthz") as url:
        yield url, key


def _document() -> dict[str, Any]:
    """The document ``authcore serve`` publishes, built in-process for collection (the server
    starts later, in a fixture); the test checks the served one is the same."""
    app = create_app(MemoryStore(), keyring=None, limiter=MemoryRateLimiter())
    return openapi_document(app.routes, title="authcore serve", version="0")


CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 24,
        "generation": {
            "max-examples": MAX_EXAMPLES,
            # The three credentials are ours (AUTH_MODES). Schemathesis' own made-up bearer
            # tokens mostly have no authcore shape, which the service answers 400
            # invalid_request by design (RFC 6750 §3.1), and schemathesis expects 401 there;
            # the credential parser has its own property tests (tests/test_credentials.py).
            "with-security-parameters": False,
        },
        # Every check is on, by name; max_response_time stays off (its default): speed is
        # measured in benchmarks/, never asserted in a test.
        "checks": {
            **{name: {"enabled": True} for name in CHECKS},
            # Schemathesis' list, and 413: a body over 16 KiB is refused by its size before it
            # is parsed (a huge invalid body is still refused, only for being huge).
            "negative_data_rejection": {"expected-statuses": [*REJECTIONS, 413]},
            # The same bound the other way: JSON Schema has no keyword for a body's bytes, so
            # a schema-valid body (4096 grants of 128 characters) may be too large: 413.
            "positive_data_acceptance": {"expected-statuses": [*ACCEPTED, 413]},
        },
        "operations": [
            {
                # "since before until, at most 20000 buckets" ties two parameters together,
                # which JSON Schema cannot say: a window the schema allows may be a 400.
                "include-operation-id-regex": "usage",
                "checks": {
                    "positive_data_acceptance": {"expected-statuses": [*ACCEPTED, 400, 413]}
                },
            },
            {
                # A cursor is opaque: only one the list gave is valid, which no schema can say,
                # so a made-up one of the right characters is a 400; so is `cursor` together
                # with the older `after`/`before`.
                "include-operation-id-regex": "^(list_keys|portal_list_keys|list_identities"
                "|audit_logs)",
                "checks": {
                    "positive_data_acceptance": {"expected-statuses": [*ACCEPTED, 400, 413]}
                },
            },
        ],
    }
)
schema = schemathesis.openapi.from_dict(_document(), config=CONFIG)
AUTH_MODES = ("valid key", "no key", "wrong key")


def _headers(mode: str, key: str) -> dict[str, str]:
    if mode == "no key":
        return {}
    return {"Authorization": f"Bearer {key if mode == 'valid key' else WRONG_KEY}"}


@pytest.mark.parametrize("mode", AUTH_MODES)
@schema.parametrize()
def test_the_service_keeps_its_published_contract(
    case: schemathesis.Case[Any], mode: str, service: tuple[str, str]
) -> None:
    url, key = service
    case.call_and_validate(base_url=url, headers=_headers(mode, key))
