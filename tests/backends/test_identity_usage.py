"""Usage summed over one identity's keys, in every store: memory, SQLite, PostgreSQL, alike."""

from __future__ import annotations

import pytest

from authcore.errors import ClientError
from authcore.records import OPERATOR_ACTOR, UsageCount

from .conftest import StoreUnderTest

HOUR = 3600
T0 = 1_800_000_000 - 1_800_000_000 % HOUR
ACTOR = OPERATOR_ACTOR


async def _key(backend: StoreUnderTest, ws: str, identity: str | None) -> str:
    created = await backend.call(
        "create_root_key", ws, permissions=["orders.read"], identity=identity, now=T0,
        actor=ACTOR,
    )  # fmt: skip
    key_id: str = created.record.id
    return key_id


async def test_an_identitys_usage_is_the_sum_over_its_keys_only(backend: StoreUnderTest) -> None:
    ws = (await backend.call("create_workspace", "Acme", now=T0, actor=ACTOR)).id
    other_ws = (await backend.call("create_workspace", "Globex", now=T0, actor=ACTOR)).id
    first, second = await _key(backend, ws, "cust-1"), await _key(backend, ws, "cust-1")
    neighbour = await _key(backend, ws, "cust-2")
    own = await _key(backend, ws, None)
    elsewhere = await _key(backend, other_ws, "cust-1")  # the same external id, elsewhere
    # Revoked keys still count: their past requests were the identity's.
    await backend.call("revoke_root_key", second, now=T0 + 1, actor=ACTOR)
    counts = [
        UsageCount(ws, first, "allowed", T0, 3),
        UsageCount(ws, second, "allowed", T0 + 60, 2),
        UsageCount(ws, second, "rate_limited", T0 + 60, 1),
        UsageCount(ws, neighbour, "allowed", T0, 50),
        UsageCount(ws, own, "allowed", T0, 70),
        UsageCount(ws, "", "allowed", T0, 90),
        UsageCount(other_ws, elsewhere, "allowed", T0, 110),
    ]
    await backend.call("record_usage", counts, used_at=T0 + 60)
    identity = await backend.call("get_identity", ws, "cust-1")

    minutes = await backend.call(
        "usage", ws, identity_id=identity.id, since=T0, until=T0 + HOUR, granularity="minute"
    )
    assert [(u.bucket, u.outcome, u.count, u.credential_id) for u in minutes] == [
        (T0, "allowed", 3, ""),
        (T0 + 60, "allowed", 2, ""),
        (T0 + 60, "rate_limited", 1, ""),
    ]
    hours = await backend.call("usage", ws, identity_id=identity.id, since=T0, until=T0 + HOUR)
    assert [(u.outcome, u.count) for u in hours] == [("allowed", 5), ("rate_limited", 1)]
    # The identity's id never reads another workspace's keys.
    assert (
        await backend.call("usage", other_ws, identity_id=identity.id, since=T0, until=T0 + 60)
        == []
    )


async def test_an_identity_without_keys_or_unknown_reads_nothing(backend: StoreUnderTest) -> None:
    ws = (await backend.call("create_workspace", "Acme", now=T0, actor=ACTOR)).id
    keyless = await backend.call("create_identity", ws, "keyless", now=T0, actor=ACTOR)
    await backend.call("record_usage", [UsageCount(ws, "", "allowed", T0, 1)], used_at=T0)
    for identity_id in (keyless.id, "idt_nosuchidentity"):
        assert (
            await backend.call("usage", ws, identity_id=identity_id, since=T0, until=T0 + 60) == []
        )


async def test_a_credential_and_an_identity_at_once_are_refused(backend: StoreUnderTest) -> None:
    with pytest.raises(ClientError):
        await backend.call(
            "usage", "ws_x", credential_id="key_x", identity_id="idt_x", since=T0, until=T0 + 60
        )
