"""Schemathesis against a real ``authcore serve``: the service keeps the contract it publishes.

One ``authcore serve`` process on a loopback port, over a fresh SQLite file, with a workspace
and a ``*`` key made by the command line. Schemathesis reads the service's own
``/openapi.json`` and runs every check it has on every operation, three times: with that key,
with no credential and with a well-formed key that does not exist. Examples are few per
operation so the file fits the suite's time; the seed is fixed so a failure reproduces.

Then Schemathesis' stateful phase, with the key: scenarios that make a key, an identity or a
portal session and follow the document's links to use, change and delete it (the portal's
routes with a portal session's token), so ``use_after_free`` and
``ensure_resource_availability`` see real chains of calls. Each scenario runs in a workspace of
its own, and Hypothesis draws them derandomized, so a failure reproduces too.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis

from authcore.backends.memory import MemoryRateLimiter, MemoryStore
from authcore.backends.sqlite import SQLiteStore
from authcore.ratelimit import RateLimitPolicy
from authcore.records import OPERATOR_ACTOR
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
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    """``authcore serve``, a ``*`` key of a workspace whose limit the fuzzer never meets, and
    the database file the service runs on."""
    db = tmp_path_factory.mktemp("fuzz") / "authcore.db"
    _cli(db, "init")
    workspace = _cli(db, "workspace", "create", "--name", "fuzz", "--rate-limit", "1000000/1")
    key = _cli(db, "keys", "create", "--workspace", workspace["workspace_id"], "--permission", "*")[
        "key"
    ]
    with authcore_server(db, "serve", ready_path="/healthz") as url:
        yield url, key, db


def _document() -> dict[str, Any]:
    """The document ``authcore serve`` publishes, built in-process for collection (the server
    starts later, in a fixture); the test checks the served one is the same."""
    app = create_app(MemoryStore(), keyring=None, limiter=MemoryRateLimiter())
    return openapi_document(app.routes, title="authcore serve", version="0")


#: The run's settings, as data: each schema below gets a Config of its own (the stateful one adds
#: the server's address and key, which the per-operation runs must not inherit).
SETTINGS: dict[str, Any] = {
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
            "checks": {"positive_data_acceptance": {"expected-statuses": [*ACCEPTED, 400, 413]}},
        },
        {
            # A cursor is opaque: only one the list gave is valid, which no schema can say,
            # so a made-up one of the right characters is a 400; so is `cursor` together
            # with the older `after`/`before`.
            "include-operation-id-regex": "^(list_keys|portal_list_keys|list_identities"
            "|audit_logs)",
            "checks": {"positive_data_acceptance": {"expected-statuses": [*ACCEPTED, 400, 413]}},
        },
        {
            # `meta` is a JSON object of at most 1024 bytes (its description says so), which
            # JSON Schema cannot say: a schema-valid one may be too large, a 400. Only the
            # stateful run meets it on PATCH (elsewhere the identity is made up: 404 first).
            "include-operation-id-regex": "^(create_identity|update_identity)$",
            "checks": {"positive_data_acceptance": {"expected-statuses": [*ACCEPTED, 400, 413]}},
        },
        {
            # DELETE on a key revokes it, by design (docs/concepts.md): the key stays in its
            # list with `revoked_at`, and its usage stays readable (docs/cli.md: revoked keys
            # count for the time they were used), so its usage answers 200, not 404, after the
            # DELETE. The stateful run checks everything else about a revoked key.
            "include-operation-id-regex": "key_usage",
            "checks": {"use_after_free": {"enabled": False}},
        },
    ],
}
schema = schemathesis.openapi.from_dict(_document(), config=schemathesis.Config.from_dict(SETTINGS))
AUTH_MODES = ("valid key", "no key", "wrong key")


def _headers(mode: str, key: str) -> dict[str, str]:
    if mode == "no key":
        return {}
    return {"Authorization": f"Bearer {key if mode == 'valid key' else WRONG_KEY}"}


@pytest.mark.parametrize("mode", AUTH_MODES)
@schema.parametrize()
def test_the_service_keeps_its_published_contract(
    case: schemathesis.Case[Any], mode: str, service: tuple[str, str, Path]
) -> None:
    url, key, _ = service
    case.call_and_validate(base_url=url, headers=_headers(mode, key))


#: Scenarios, and calls per scenario, of the stateful run: each scenario starts at an operation
#: that makes something and follows the document's links (keys, identities, portal sessions).
STATEFUL_SCENARIOS = 50
STATEFUL_STEPS = 8
#: The same limit as the fixture's workspace: the stateful run never meets it either.
NO_LIMIT = RateLimitPolicy.parse("1000000/1")


def _scenario_credentials(db: Path) -> tuple[str, str]:
    """A new workspace's ``*`` root key, and a portal session of one of its identities (its
    token as Bearer, which the portal routes take as they take the cookie) that may do and
    hand out anything."""
    now = time.time()
    with SQLiteStore(db) as store:
        workspace = store.create_workspace(
            "stateful", rate_limit=NO_LIMIT, now=now, actor=OPERATOR_ACTOR
        )
        key = store.create_root_key(workspace.id, permissions=["*"], now=now, actor=OPERATOR_ACTOR)
        session = store.create_portal_session(
            workspace.id,
            "portal-user",
            permissions=["*"],
            key_permissions=["*"],
            ttl=3600,
            now=now,
            actor=OPERATOR_ACTOR,
        )
    assert key is not None
    assert session is not None
    return key.key.reveal(), session.token.reveal()


def test_the_service_keeps_its_contract_along_the_documents_links(
    service: tuple[str, str, Path],
) -> None:
    """Schemathesis' stateful phase: make a resource, then use, change and delete it through the
    links the document declares; ``use_after_free`` and ``ensure_resource_availability`` run
    here (they need a chain of calls)."""
    url, _, db = service
    config = schemathesis.Config.from_dict(
        # The document's own links only: the contract under test is what it declares.
        {**SETTINGS, "phases": {"stateful": {"inference": {"algorithms": []}}}}
    )
    stateful = schemathesis.openapi.from_dict(_document(), config=config)
    called: set[str] = set()

    # as_state_machine() builds the class at run time, which mypy cannot follow.
    class Scenarios(stateful.as_state_machine()):  # type: ignore[misc]
        """Each scenario in a workspace of its own, made beside the server in its database:
        Hypothesis replays a scenario's first draws and needs the server to answer them as
        before (an identity made by an earlier scenario would be a 409 the second time)."""

        def setup(self) -> None:
            self.keys = _scenario_credentials(db)

        def get_call_kwargs(self, case: schemathesis.Case[Any]) -> dict[str, Any]:
            called.add(f"{case.method} {case.path}")
            portal = case.path.startswith("/portal/")
            key = self.keys[1] if portal else self.keys[0]
            return {"base_url": url, "headers": _headers("valid key", key)}

    Scenarios.run(
        settings=hypothesis.settings(
            max_examples=STATEFUL_SCENARIOS,
            stateful_step_count=STATEFUL_STEPS,
            deadline=None,
            derandomize=True,  # the same scenarios every run, so a failure reproduces
            database=None,
            phases=[hypothesis.Phase.generate],
            suppress_health_check=list(hypothesis.HealthCheck),
        )
    )
    # Not vacuous: every link's target was called (the phase reaches them through the links; a
    # run that no longer followed them would call only the operations that make things).
    linked = {
        "DELETE /v1/keys/{key_id}", "GET /v1/keys/{key_id}/usage",
        "DELETE /portal/v1/keys/{key_id}", "GET /portal/v1/keys/{key_id}/usage",
        "GET /v1/identities/{external_id}", "PATCH /v1/identities/{external_id}",
        "DELETE /v1/identities/{external_id}", "DELETE /v1/portal-sessions/{session_id}",
    }  # fmt: skip
    assert linked <= called, sorted(linked - called)
