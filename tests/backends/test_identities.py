"""The identity contract, on every backend (memory, SQLite, PostgreSQL; sync, async, cached).

An identity is one customer of the API inside a workspace: unique by external id, owner of
keys and portal sessions, with an optional limit its keys share and small JSON metadata.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from authcore.audit import (
    ACTION_IDENTITY_CREATE,
    ACTION_IDENTITY_DELETE,
    ACTION_IDENTITY_UPDATE,
    ACTION_KEY_CREATE,
    ACTION_KEY_REVOKE,
    ACTION_PORTAL_SESSION_REVOKE,
)
from authcore.errors import ClientError, ConflictError, InvalidCredentialError
from authcore.principal import principal_from_portal_session, principal_from_root_key
from authcore.ratelimit import RateLimitPolicy
from authcore.records import (
    MAX_IDENTITY_META_BYTES,
    MAX_LIST_PAGE,
    OPERATOR_ACTOR,
    WorkspaceRecord,
)
from authcore.tokens import digest

from .conftest import StoreUnderTest

NOW = 1_800_000_000
ACTOR = OPERATOR_ACTOR


async def _workspace(backend: StoreUnderTest) -> WorkspaceRecord:
    record: WorkspaceRecord = await backend.call("create_workspace", "Acme", now=NOW, actor=ACTOR)
    return record


async def _key(backend: StoreUnderTest, ws: WorkspaceRecord, identity: str | None) -> Any:
    return await backend.call(
        "create_root_key", ws.id, permissions=["orders.read"], identity=identity, now=NOW,
        actor=ACTOR,
    )  # fmt: skip


async def test_an_identity_is_created_found_and_listed(backend: StoreUnderTest) -> None:
    ws = await _workspace(backend)
    made = await backend.call(
        "create_identity",
        ws.id,
        "customer-42",
        meta={"plan": "pro", "seats": 3},
        rate_limit=RateLimitPolicy(10, 60),
        now=NOW,
        actor=ACTOR,
    )
    assert made.id.startswith("idt_")
    assert made.external_id == "customer-42"
    assert made.to_dict()["meta"] == {"plan": "pro", "seats": 3}
    assert await backend.call("get_identity", ws.id, "customer-42") == made
    assert await backend.call("find_identity", made.id) == made
    page = await backend.call("list_identities", ws.id)
    assert page.identities == (made,)
    assert page.next_after is None
    event = (await backend.call("list_audit", ws.id)).events[0]
    assert event.action == ACTION_IDENTITY_CREATE
    assert event.targets[0].id == made.id
    assert event.context == {"rate_limit": "10/60"}


async def test_an_external_id_is_unique_per_workspace_only(backend: StoreUnderTest) -> None:
    ws, other = await _workspace(backend), await _workspace(backend)
    await backend.call("create_identity", ws.id, "c1", now=NOW, actor=ACTOR)
    with pytest.raises(ConflictError):
        await backend.call("create_identity", ws.id, "c1", now=NOW, actor=ACTOR)
    elsewhere = await backend.call("create_identity", other.id, "c1", now=NOW, actor=ACTOR)
    assert elsewhere.workspace_id == other.id
    assert await backend.call("get_identity", ws.id, "nobody") is None
    assert await backend.call("create_identity", "ws_nope", "c1", now=NOW, actor=ACTOR) is None


@pytest.mark.parametrize(
    "meta",
    [
        [1, 2],
        "text",
        {"n": float("nan")},
        {"n": float("inf")},
        {1: "int key"},
        {"t": (1, 2)},
        {"s": "\ud800"},
        {"big": "x" * MAX_IDENTITY_META_BYTES},
    ],
)
async def test_metadata_is_a_small_plain_json_object(backend: StoreUnderTest, meta: object) -> None:
    ws = await _workspace(backend)
    with pytest.raises(ClientError):
        await backend.call("create_identity", ws.id, "c1", meta=meta, now=NOW, actor=ACTOR)
    assert await backend.call("get_identity", ws.id, "c1") is None


@pytest.mark.parametrize("external_id", ["", "  ", "a\x00b", "evil\u202eid", "x" * 201, 7])
async def test_external_ids_follow_the_names_rule(
    backend: StoreUnderTest, external_id: object
) -> None:
    ws = await _workspace(backend)
    with pytest.raises(ClientError):
        await backend.call("create_identity", ws.id, external_id, now=NOW, actor=ACTOR)
    with pytest.raises(ClientError):
        await _key(backend, ws, external_id)  # type: ignore[arg-type]


async def test_a_key_for_a_new_identity_creates_it(backend: StoreUnderTest) -> None:
    ws = await _workspace(backend)
    new = await _key(backend, ws, "customer-7")
    identity = await backend.call("get_identity", ws.id, "customer-7")
    assert identity is not None
    assert new.record.identity_id == identity.id
    raw = new.key.reveal()
    found = await backend.call("find_root_key", digest(raw))
    assert found.identity_id == identity.id
    assert principal_from_root_key(found, digest(raw), NOW).identity_id == identity.id
    second = await _key(backend, ws, "customer-7")
    assert second.record.identity_id == identity.id  # used, not made again
    events = (await backend.call("list_audit", ws.id, limit=10)).events
    assert [e.action for e in events[:3]] == [
        ACTION_KEY_CREATE,
        ACTION_KEY_CREATE,
        ACTION_IDENTITY_CREATE,
    ]
    assert events[0].context["identity_id"] == identity.id


async def test_keys_are_listed_per_identity(backend: StoreUnderTest) -> None:
    ws = await _workspace(backend)
    a1 = await _key(backend, ws, "a")
    b1 = await _key(backend, ws, "b")
    own = await _key(backend, ws, None)
    a = await backend.call("get_identity", ws.id, "a")
    listed = await backend.call("list_root_keys", ws.id, identity_id=a.id)
    assert [k.id for k in listed] == [a1.record.id]
    everything = await backend.call("list_root_keys", ws.id)
    assert {k.id for k in everything} == {a1.record.id, b1.record.id, own.record.id}
    assert own.record.identity_id is None


async def test_identities_page_by_external_id(backend: StoreUnderTest) -> None:
    ws = await _workspace(backend)
    names = ["b", "a", "é", "C", "c", "aa"]
    for name in names:
        await backend.call("create_identity", ws.id, name, now=NOW, actor=ACTOR)
    seen: list[str] = []
    after = None
    while True:
        page = await backend.call("list_identities", ws.id, limit=4, after=after)
        seen.extend(i.external_id for i in page.identities)
        if page.next_after is None:
            break
        after = page.next_after
    # Code-point order in every backend: a cursor means the same everywhere.
    assert seen == sorted(names)
    with pytest.raises(ClientError):
        await backend.call("list_identities", ws.id, limit=0)
    with pytest.raises(ClientError):
        await backend.call("list_identities", ws.id, limit=MAX_LIST_PAGE + 1)


async def test_an_identity_limit_is_set_cleared_and_audited(backend: StoreUnderTest) -> None:
    ws = await _workspace(backend)
    await backend.call("create_identity", ws.id, "c1", now=NOW, actor=ACTOR)
    policy = RateLimitPolicy(5, 60)
    updated = await backend.call(
        "set_identity_rate_limit", ws.id, "c1", policy, now=NOW + 1, actor=ACTOR
    )
    assert updated.rate_limit == policy
    assert (await backend.call("find_identity", updated.id)).rate_limit == policy
    cleared = await backend.call(
        "set_identity_rate_limit", ws.id, "c1", None, now=NOW + 2, actor=ACTOR
    )
    assert cleared.rate_limit is None
    events = (await backend.call("list_audit", ws.id)).events
    assert [(e.action, e.context) for e in events[:2]] == [
        (ACTION_IDENTITY_UPDATE, {"rate_limit": "none"}),
        (ACTION_IDENTITY_UPDATE, {"rate_limit": "5/60"}),
    ]
    assert (
        await backend.call("set_identity_rate_limit", ws.id, "zz", policy, now=NOW, actor=ACTOR)
        is None
    )
    meta = await backend.call(
        "set_identity_meta", ws.id, "c1", {"tier": "gold"}, now=NOW + 3, actor=ACTOR
    )
    assert meta.to_dict()["meta"] == {"tier": "gold"}


async def test_deleting_an_identity_with_live_keys_is_refused(backend: StoreUnderTest) -> None:
    ws = await _workspace(backend)
    new = await _key(backend, ws, "c1")
    with pytest.raises(ConflictError):
        await backend.call("delete_identity", ws.id, "c1", now=NOW + 1, actor=ACTOR)
    assert await backend.call("get_identity", ws.id, "c1") is not None
    found = await backend.call("find_root_key", digest(new.key.reveal()))
    assert found.revoked_at is None


async def test_deleting_with_revoke_keys_ends_its_keys_and_sessions(
    backend: StoreUnderTest,
) -> None:
    ws = await _workspace(backend)
    new = await _key(backend, ws, "c1")
    other = await _key(backend, ws, "c2")
    session = await backend.call(
        "create_portal_session", ws.id, "c1", permissions=["keys.read"], ttl=600, now=NOW,
        actor=ACTOR,
    )  # fmt: skip
    identity = await backend.call("get_identity", ws.id, "c1")
    deleted = await backend.call(
        "delete_identity", ws.id, "c1", revoke_keys=True, now=NOW + 5, actor=ACTOR
    )
    assert deleted == identity
    assert await backend.call("get_identity", ws.id, "c1") is None
    assert await backend.call("find_identity", identity.id) is None
    raw = new.key.reveal()
    with pytest.raises(InvalidCredentialError):
        principal_from_root_key(await backend.call("find_root_key", digest(raw)), digest(raw), NOW)
    token = session.token.reveal()
    with pytest.raises(InvalidCredentialError):
        principal_from_portal_session(
            await backend.call("find_portal_session", digest(token)), digest(token), NOW + 6
        )
    # Another identity's key is untouched.
    kept = await backend.call("find_root_key", digest(other.key.reveal()))
    assert kept.revoked_at is None
    actions = [e.action for e in (await backend.call("list_audit", ws.id)).events[:3]]
    assert actions == [ACTION_IDENTITY_DELETE, ACTION_PORTAL_SESSION_REVOKE, ACTION_KEY_REVOKE]
    # The external id is free again; a new identity gets a new id, and none of the old keys.
    again = await backend.call("create_identity", ws.id, "c1", now=NOW + 6, actor=ACTOR)
    assert again.id != identity.id
    assert await backend.call("list_root_keys", ws.id, identity_id=again.id) == []


async def test_an_identity_whose_keys_are_all_revoked_may_be_deleted(
    backend: StoreUnderTest,
) -> None:
    ws = await _workspace(backend)
    new = await _key(backend, ws, "c1")
    await backend.call("revoke_root_key", new.record.id, now=NOW + 1, actor=ACTOR)
    deleted = await backend.call("delete_identity", ws.id, "c1", now=NOW + 2, actor=ACTOR)
    assert deleted is not None
    assert await backend.call("delete_identity", ws.id, "c1", now=NOW + 3, actor=ACTOR) is None


async def test_racing_first_uses_of_one_identity_make_one(backend: StoreUnderTest) -> None:
    ws = await _workspace(backend)
    if backend.is_async:
        made = await asyncio.gather(*(_key(backend, ws, "race") for _ in range(8)))
    else:
        made = [await _key(backend, ws, "race") for _ in range(8)]
    owners = {new.record.identity_id for new in made}
    assert len(owners) == 1
    page = await backend.call("list_identities", ws.id)
    assert [i.external_id for i in page.identities] == ["race"]
