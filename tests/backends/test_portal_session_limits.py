"""A portal session's own rate limit, on every store: kept as made, and never looser than its
maker's (issue 26, finding 2: a credential hands out no more quota than it holds)."""

from __future__ import annotations

import pytest

from authcore.errors import PermissionDeniedError
from authcore.permissions import PermissionSet
from authcore.principal import Principal, Source, Subject, principal_from_portal_session
from authcore.ratelimit import RateLimitPolicy
from authcore.records import OPERATOR_ACTOR, Actor, NewPortalExchange, WorkspaceRecord
from authcore.tokens import digest

from .conftest import StoreUnderTest

NOW = 1_800_000_000


def _key_actor(workspace_id: str, limit: RateLimitPolicy | None) -> Actor:
    # A root key with its own limit, as the flow builds it from the key's record.
    return Actor(
        Principal(
            workspace_id=workspace_id,
            subject=Subject("root_key", "key_maker"),
            source=Source.ROOT_KEY,
            permissions=PermissionSet(["*"]),
            rate_limit=limit,
        )
    )


async def _workspace(backend: StoreUnderTest) -> WorkspaceRecord:
    record: WorkspaceRecord = await backend.call(
        "create_workspace", "Acme", now=NOW, actor=OPERATOR_ACTOR
    )
    return record


async def test_a_stored_portal_session_keeps_its_limit(backend: StoreUnderTest) -> None:
    ws = await _workspace(backend)
    made = await backend.call(
        "create_portal_session", ws.id, "customer", permissions=["keys.read"], ttl=60, now=NOW,
        actor=OPERATOR_ACTOR, rate_limit=RateLimitPolicy(3, 60),
    )  # fmt: skip
    token = made.token.reveal()
    found = await backend.call("find_portal_session", digest(token))
    assert found == made.record
    assert found.rate_limit == RateLimitPolicy(3, 60)
    assert principal_from_portal_session(found, digest(token), NOW).rate_limit == found.rate_limit
    # Revoking rewrites the row: the limit stays with it.
    revoked = await backend.call("revoke_portal_session", found.id, now=NOW, actor=OPERATOR_ACTOR)
    assert revoked.rate_limit == RateLimitPolicy(3, 60)


async def test_a_session_started_by_a_code_keeps_the_limit_it_inherited(
    backend: StoreUnderTest,
) -> None:
    ws = await _workspace(backend)
    pending: NewPortalExchange = await backend.call(
        "create_portal_exchange", ws.id, "customer", permissions=["keys.read"], ttl=60, now=NOW,
        actor=_key_actor(ws.id, RateLimitPolicy(3, 60)),
    )  # fmt: skip
    assert pending.record.rate_limit == RateLimitPolicy(3, 60)
    started = await backend.call("exchange_portal_code", digest(pending.code.reveal()), now=NOW)
    found = await backend.call("find_portal_session", digest(started.token.reveal()))
    assert found.rate_limit == RateLimitPolicy(3, 60)
    event = (await backend.call("list_audit", ws.id)).events[1]
    assert event.action == "portal_session.create"
    assert event.context == {"rate_limit": "3/60"}


async def test_a_session_without_a_limit_is_stored_without_one(backend: StoreUnderTest) -> None:
    ws = await _workspace(backend)
    made = await backend.call(
        "create_portal_session", ws.id, "customer", permissions=[], ttl=60, now=NOW,
        actor=_key_actor(ws.id, None),
    )  # fmt: skip
    found = await backend.call("find_portal_session", digest(made.token.reveal()))
    assert found.rate_limit is None


async def test_a_limited_key_cannot_store_a_looser_session(backend: StoreUnderTest) -> None:
    ws = await _workspace(backend)
    with pytest.raises(PermissionDeniedError):
        await backend.call(
            "create_portal_exchange", ws.id, "customer", permissions=[], ttl=60, now=NOW,
            actor=_key_actor(ws.id, RateLimitPolicy(3, 60)), rate_limit=RateLimitPolicy(4, 60),
        )  # fmt: skip
    # Nothing was written: the refusal came before the change.
    assert [e.action for e in (await backend.call("list_audit", ws.id)).events] == [
        "workspace.create"
    ]
