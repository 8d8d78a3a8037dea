"""One contract for every store: memory, SQLite and PostgreSQL, sync and async, alike."""

from __future__ import annotations

import contextlib
import secrets
from typing import Any

import attrs
import pytest

from authcore.audit import (
    ACTION_IDENTITY_CREATE,
    ACTION_KEY_CREATE,
    ACTION_KEY_REVOKE,
    ACTION_KEY_ROTATE,
    ACTION_KEY_UPDATE,
    ACTION_PORTAL_SESSION_CREATE,
    ACTION_PORTAL_SESSION_EXCHANGE,
    ACTION_PORTAL_SESSION_REVOKE,
    ACTION_WORKSPACE_CREATE,
    ACTION_WORKSPACE_DISABLE,
    ACTION_WORKSPACE_ENABLE,
    ACTION_WORKSPACE_UPDATE,
    OPERATOR,
    audit_event,
)
from authcore.errors import (
    ClientError,
    ConflictError,
    InvalidCredentialError,
    InvalidPermissionError,
    PermissionDeniedError,
    UnavailableError,
    WorkspaceDisabledError,
)
from authcore.passwords import hash_password, verify_password
from authcore.permissions import PermissionSet
from authcore.principal import (
    Principal,
    Source,
    Subject,
    check_workspace,
    principal_from_portal_session,
    principal_from_root_key,
)
from authcore.ratelimit import RateLimitPolicy
from authcore.records import (
    OPERATOR_ACTOR,
    PORTAL_EXCHANGE_TTL,
    Actor,
    AuditCursor,
    NewPortalExchange,
    WorkspaceRecord,
)
from authcore.tokens import digest

from .conftest import StoreUnderTest

NOW = 1_800_000_000


async def _workspace(
    backend: StoreUnderTest, name: str = "Acme", **kwargs: object
) -> WorkspaceRecord:
    record: WorkspaceRecord = await backend.call(
        "create_workspace", name, now=NOW, actor=OPERATOR_ACTOR, **kwargs
    )
    return record


def _principal_of(workspace_id: str) -> Principal:
    return Principal(
        workspace_id=workspace_id,
        subject=Subject("user", "user_1", "Ada"),
        source=Source.JWT,
        permissions=PermissionSet(["*"]),
    )


# --------------------------------------------------------------------------- workspaces


async def test_created_workspace_is_found_by_id_and_org(backend: StoreUnderTest) -> None:
    org = f"org_{secrets.token_hex(6)}_{NOW}"
    ws = await _workspace(backend, org_id=org, rate_limit=RateLimitPolicy(100, 60))
    assert await backend.call("find_workspace", ws.id) == ws
    assert await backend.call("find_workspace_by_org", org) == ws
    assert ws.rate_limit == RateLimitPolicy(100, 60)
    assert not ws.disabled


async def test_unknown_ids_give_none(backend: StoreUnderTest) -> None:
    actor = OPERATOR_ACTOR
    assert await backend.call("find_workspace", "ws_nope") is None
    assert await backend.call("find_workspace_by_org", "org_nope") is None
    assert await backend.call("find_root_key", digest("ak_nope")) is None
    assert await backend.call("find_portal_session", digest("pt_nope")) is None
    assert await backend.call("get_root_key", "key_nope") is None
    assert await backend.call("disable_workspace", "ws_nope", now=NOW, actor=actor) is None
    assert await backend.call("revoke_root_key", "key_nope", now=NOW, actor=actor) is None
    assert (
        await backend.call("rotate_root_key", "key_nope", grace_seconds=5, now=NOW, actor=actor)
        is None
    )
    assert await backend.call("revoke_portal_session", "ps_nope", now=NOW, actor=actor) is None
    assert (
        await backend.call("create_root_key", "ws_nope", permissions=[], now=NOW, actor=actor)
        is None
    )
    assert (
        await backend.call(
            "create_portal_session", "ws_nope", "u1", permissions=[], ttl=60, now=NOW, actor=actor
        )
        is None
    )
    assert await backend.call("find_dashboard_user", "nobody") is None


async def test_disabled_workspace_is_refused_by_check_workspace(backend: StoreUnderTest) -> None:
    ws = await _workspace(backend)
    disabled = await backend.call("disable_workspace", ws.id, now=NOW + 1, actor=OPERATOR_ACTOR)
    assert disabled.disabled
    found = await backend.call("find_workspace", ws.id)
    assert found.disabled
    with pytest.raises(WorkspaceDisabledError):
        check_workspace(found, ws.id)
    page = await backend.call("list_audit", ws.id)
    assert [event.action for event in page.events] == [
        ACTION_WORKSPACE_DISABLE,
        ACTION_WORKSPACE_CREATE,
    ]


async def test_enabling_undoes_a_disable_once(backend: StoreUnderTest) -> None:
    ws = await _workspace(backend)
    await backend.call("find_workspace", ws.id)  # cached where a cache sits in front
    await backend.call("disable_workspace", ws.id, now=NOW + 1, actor=OPERATOR_ACTOR)
    assert (await backend.call("find_workspace", ws.id)).disabled
    enabled = await backend.call("enable_workspace", ws.id, now=NOW + 2, actor=OPERATOR_ACTOR)
    assert not enabled.disabled
    found = await backend.call("find_workspace", ws.id)
    assert not found.disabled
    check_workspace(found, ws.id)
    # Enabling an enabled workspace changes nothing and audits nothing.
    again = await backend.call("enable_workspace", ws.id, now=NOW + 3, actor=OPERATOR_ACTOR)
    assert again == enabled
    page = await backend.call("list_audit", ws.id)
    assert [(event.action, event.time) for event in page.events] == [
        (ACTION_WORKSPACE_ENABLE, NOW + 2),
        (ACTION_WORKSPACE_DISABLE, NOW + 1),
        (ACTION_WORKSPACE_CREATE, NOW),
    ]
    assert await backend.call("enable_workspace", "ws_nope", now=NOW, actor=OPERATOR_ACTOR) is None
    other = await _workspace(backend, "Other")
    await backend.call("disable_workspace", ws.id, now=NOW + 4, actor=OPERATOR_ACTOR)
    with pytest.raises(PermissionDeniedError):
        await backend.call(
            "enable_workspace", ws.id, now=NOW + 5, actor=Actor(_principal_of(other.id))
        )
    assert (await backend.call("find_workspace", ws.id)).disabled


async def test_rate_limit_is_set_and_cleared(backend: StoreUnderTest) -> None:
    ws = await _workspace(backend)
    policy = RateLimitPolicy(5, 1)
    updated = await backend.call("set_rate_limit", ws.id, policy, now=NOW, actor=OPERATOR_ACTOR)
    assert updated.rate_limit == policy
    assert (await backend.call("find_workspace", ws.id)).rate_limit == policy
    await backend.call("set_rate_limit", ws.id, None, now=NOW, actor=OPERATOR_ACTOR)
    assert (await backend.call("find_workspace", ws.id)).rate_limit is None
    events = (await backend.call("list_audit", ws.id)).events
    assert [e.action for e in events[:2]] == [ACTION_WORKSPACE_UPDATE, ACTION_WORKSPACE_UPDATE]
    assert events[1].context == {"rate_limit": "5/1"}


async def test_org_link_is_unique(backend: StoreUnderTest) -> None:
    org = f"org_{NOW}_{backend.kind}_{backend.is_async}_{secrets.token_hex(6)}"
    first = await _workspace(backend, "First")
    second = await _workspace(backend, "Second")
    linked = await backend.call("link_org", first.id, org, now=NOW, actor=OPERATOR_ACTOR)
    assert linked.org_id == org
    assert (await backend.call("find_workspace_by_org", org)).id == first.id
    with pytest.raises(ConflictError):
        await backend.call("link_org", second.id, org, now=NOW, actor=OPERATOR_ACTOR)
    with pytest.raises(ConflictError):
        await _workspace(backend, "Third", org_id=org)
    assert (await backend.call("find_workspace", second.id)).org_id is None
    # Re-linking the same org to its own workspace is not a conflict.
    await backend.call("link_org", first.id, org, now=NOW, actor=OPERATOR_ACTOR)


@pytest.mark.parametrize("name", ["", "   ", "x" * 201, "a\nb"])
async def test_bad_workspace_name_is_a_client_error(backend: StoreUnderTest, name: str) -> None:
    with pytest.raises(ClientError):
        await _workspace(backend, name)


# --------------------------------------------------------------------------- root keys


async def test_created_key_verifies_and_is_shown_once(backend: StoreUnderTest) -> None:
    ws = await _workspace(backend)
    new = await backend.call(
        "create_root_key",
        ws.id,
        permissions=["keys.*", "keys.*"],
        name="ci",
        now=NOW,
        actor=OPERATOR_ACTOR,
    )
    raw = new.key.reveal()
    assert raw.startswith("ak_")
    assert raw not in repr(new)
    assert new.record.permissions == ("keys.*",)
    found = await backend.call("find_root_key", digest(raw))
    assert found == new.record
    principal = principal_from_root_key(found, digest(raw), NOW)
    assert principal.workspace_id == ws.id
    assert principal.can("keys.read")
    listed = await backend.call("list_root_keys", ws.id)
    assert listed == [new.record]
    assert await backend.call("get_root_key", new.record.id) == new.record


async def test_invalid_grant_is_rejected_and_nothing_is_stored(backend: StoreUnderTest) -> None:
    ws = await _workspace(backend)
    for bad in (["keys.*x"], ["Keys.read"], "keys.read"):
        with pytest.raises(InvalidPermissionError):
            await backend.call(
                "create_root_key", ws.id, permissions=bad, now=NOW, actor=OPERATOR_ACTOR
            )
    assert await backend.call("list_root_keys", ws.id) == []
    assert [e.action for e in (await backend.call("list_audit", ws.id)).events] == [
        ACTION_WORKSPACE_CREATE
    ]


async def test_expiry_boundaries(backend: StoreUnderTest) -> None:
    ws = await _workspace(backend)
    expires = NOW + 100
    new = await backend.call(
        "create_root_key", ws.id, permissions=[], expires_at=expires, now=NOW, actor=OPERATOR_ACTOR
    )
    record = await backend.call("find_root_key", new.record.digest)
    assert record.expires_at == expires
    principal_from_root_key(record, new.record.digest, expires - 1)
    with pytest.raises(InvalidCredentialError):
        principal_from_root_key(record, new.record.digest, expires)
    with pytest.raises(InvalidCredentialError):
        principal_from_root_key(record, new.record.digest, expires + 1)


async def test_expiry_in_the_past_is_rejected(backend: StoreUnderTest) -> None:
    ws = await _workspace(backend)
    with pytest.raises(ClientError):
        await backend.call(
            "create_root_key",
            ws.id,
            permissions=[],
            expires_at=NOW,
            now=NOW,
            actor=OPERATOR_ACTOR,
        )


async def test_a_keys_own_limit_is_set_changed_and_cleared_once(
    backend: StoreUnderTest,
) -> None:
    ws = await _workspace(backend)
    key = await backend.call(
        "create_root_key", ws.id, permissions=["keys.read"], now=NOW, actor=OPERATOR_ACTOR
    )
    set_limit = await backend.call(
        "set_key_rate_limit", key.record.id, RateLimitPolicy(5, 30), now=NOW, actor=OPERATOR_ACTOR
    )
    assert set_limit == attrs.evolve(key.record, rate_limit=RateLimitPolicy(5, 30))
    found = await backend.call("find_root_key", key.record.digest)
    assert found == set_limit  # every other column as it was
    again = await backend.call(
        "set_key_rate_limit", key.record.id, RateLimitPolicy(5, 30), now=NOW, actor=OPERATOR_ACTOR
    )
    assert again == set_limit  # nothing to change: nothing written or audited
    cleared = await backend.call(
        "set_key_rate_limit", key.record.id, None, now=NOW + 1, actor=OPERATOR_ACTOR
    )
    assert cleared.rate_limit is None
    assert (await backend.call("get_root_key", key.record.id)).rate_limit is None
    events = (await backend.call("list_audit", ws.id)).events
    assert [(e.action, dict(e.context)) for e in events[:2]] == [
        (ACTION_KEY_UPDATE, {"rate_limit": "none"}),
        (ACTION_KEY_UPDATE, {"rate_limit": "5/30"}),
    ]
    assert events[2].action == ACTION_KEY_CREATE
    assert (
        await backend.call("set_key_rate_limit", "key_nope", None, now=NOW, actor=OPERATOR_ACTOR)
        is None
    )
    other = await _workspace(backend, "Other")
    with pytest.raises(PermissionDeniedError):
        await backend.call(
            "set_key_rate_limit",
            key.record.id,
            RateLimitPolicy(1, 1),
            now=NOW,
            actor=Actor(_principal_of(other.id)),
        )
    not_a_policy: Any = "5/30"
    with pytest.raises(ClientError):
        await backend.call(
            "set_key_rate_limit", key.record.id, not_a_policy, now=NOW, actor=OPERATOR_ACTOR
        )
    assert (await backend.call("get_root_key", key.record.id)).rate_limit is None


async def test_key_created_with_its_own_rate_limit_is_found_with_it(
    backend: StoreUnderTest,
) -> None:
    ws = await _workspace(backend, rate_limit=RateLimitPolicy(100, 60))
    limited = await backend.call(
        "create_root_key",
        ws.id,
        permissions=[],
        rate_limit=RateLimitPolicy(5, 30),
        now=NOW,
        actor=OPERATOR_ACTOR,
    )
    plain = await backend.call(
        "create_root_key", ws.id, permissions=[], now=NOW + 1, actor=OPERATOR_ACTOR
    )
    assert limited.record.rate_limit == RateLimitPolicy(5, 30)
    assert plain.record.rate_limit is None
    found = await backend.call("find_root_key", limited.record.digest)
    assert found.rate_limit == RateLimitPolicy(5, 30)
    assert (await backend.call("get_root_key", limited.record.id)).rate_limit == (
        RateLimitPolicy(5, 30)
    )
    listed = await backend.call("list_root_keys", ws.id)
    assert [key.rate_limit for key in listed] == [RateLimitPolicy(5, 30), None]
    assert (await backend.call("find_root_key", plain.record.digest)).rate_limit is None
    # Revoking rewrites the row: the limit stays.
    revoked = await backend.call(
        "revoke_root_key", limited.record.id, now=NOW + 2, actor=OPERATOR_ACTOR
    )
    assert revoked.rate_limit == RateLimitPolicy(5, 30)
    assert (await backend.call("find_root_key", limited.record.digest)).rate_limit == (
        RateLimitPolicy(5, 30)
    )
    assert found.to_dict()["rate_limit"] == "5/30"
    assert plain.record.to_dict()["rate_limit"] is None
    created = [
        e for e in (await backend.call("list_audit", ws.id)).events if e.action == ACTION_KEY_CREATE
    ]
    assert [dict(e.context) for e in created] == [{}, {"rate_limit": "5/30"}]


@pytest.mark.parametrize("bad", ["5/30", (5, 30), 5, True, {"limit": 5, "period": 30}])
async def test_a_key_rate_limit_that_is_not_a_policy_is_a_client_error(
    backend: StoreUnderTest, bad: object
) -> None:
    ws = await _workspace(backend)
    with pytest.raises(ClientError):
        await backend.call(
            "create_root_key", ws.id, permissions=[], rate_limit=bad, now=NOW, actor=OPERATOR_ACTOR
        )
    assert await backend.call("list_root_keys", ws.id) == []
    assert [e.action for e in (await backend.call("list_audit", ws.id)).events] == [
        ACTION_WORKSPACE_CREATE
    ]


async def test_rotation_keeps_the_keys_own_rate_limit(backend: StoreUnderTest) -> None:
    ws = await _workspace(backend)
    old = await backend.call(
        "create_root_key",
        ws.id,
        permissions=["keys.read"],
        rate_limit=RateLimitPolicy(7, 60),
        now=NOW,
        actor=OPERATOR_ACTOR,
    )
    new = await backend.call(
        "rotate_root_key", old.record.id, grace_seconds=60, now=NOW + 10, actor=OPERATOR_ACTOR
    )
    assert new.record.rate_limit == RateLimitPolicy(7, 60)
    assert (await backend.call("find_root_key", new.record.digest)).rate_limit == (
        RateLimitPolicy(7, 60)
    )
    assert (await backend.call("find_root_key", old.record.digest)).rate_limit == (
        RateLimitPolicy(7, 60)
    )
    plain = await backend.call(
        "create_root_key", ws.id, permissions=[], now=NOW, actor=OPERATOR_ACTOR
    )
    successor = await backend.call(
        "rotate_root_key", plain.record.id, grace_seconds=0, now=NOW + 10, actor=OPERATOR_ACTOR
    )
    assert successor.record.rate_limit is None


async def test_revoked_key_is_rejected_and_first_revocation_stays(
    backend: StoreUnderTest,
) -> None:
    ws = await _workspace(backend)
    new = await backend.call(
        "create_root_key", ws.id, permissions=[], now=NOW, actor=OPERATOR_ACTOR
    )
    revoked = await backend.call(
        "revoke_root_key", new.record.id, now=NOW + 5, actor=OPERATOR_ACTOR
    )
    assert revoked.revoked_at == NOW + 5
    record = await backend.call("find_root_key", new.record.digest)
    with pytest.raises(InvalidCredentialError):
        principal_from_root_key(record, new.record.digest, NOW + 6)
    again = await backend.call("revoke_root_key", new.record.id, now=NOW + 9, actor=OPERATOR_ACTOR)
    assert again.revoked_at == NOW + 5
    actions = [e.action for e in (await backend.call("list_audit", ws.id)).events]
    assert actions == [ACTION_KEY_REVOKE, ACTION_KEY_CREATE, ACTION_WORKSPACE_CREATE]


async def test_rotation_keeps_old_key_for_the_grace_period(backend: StoreUnderTest) -> None:
    ws = await _workspace(backend)
    old = await backend.call(
        "create_root_key",
        ws.id,
        permissions=["keys.read"],
        name="deploy",
        now=NOW,
        actor=OPERATOR_ACTOR,
    )
    new = await backend.call(
        "rotate_root_key", old.record.id, grace_seconds=60, now=NOW + 10, actor=OPERATOR_ACTOR
    )
    assert new.record.id != old.record.id
    assert new.key != old.key
    assert (new.record.workspace_id, new.record.permissions, new.record.name) == (
        ws.id,
        ("keys.read",),
        "deploy",
    )
    old_record = await backend.call("find_root_key", old.record.digest)
    assert old_record.expires_at == NOW + 70
    principal_from_root_key(old_record, old.record.digest, NOW + 69)
    with pytest.raises(InvalidCredentialError):
        principal_from_root_key(old_record, old.record.digest, NOW + 70)
    new_record = await backend.call("find_root_key", new.record.digest)
    principal_from_root_key(new_record, new.record.digest, NOW + 10_000)
    event = (await backend.call("list_audit", ws.id)).events[0]
    assert event.action == ACTION_KEY_ROTATE
    assert [t.id for t in event.targets] == [old.record.id, new.record.id]


async def test_rotation_grace_never_extends_expiry(backend: StoreUnderTest) -> None:
    ws = await _workspace(backend)
    old = await backend.call(
        "create_root_key",
        ws.id,
        permissions=[],
        expires_at=NOW + 30,
        now=NOW,
        actor=OPERATOR_ACTOR,
    )
    new = await backend.call(
        "rotate_root_key", old.record.id, grace_seconds=3600, now=NOW + 10, actor=OPERATOR_ACTOR
    )
    old_record = await backend.call("find_root_key", old.record.digest)
    assert old_record.expires_at == NOW + 30
    with pytest.raises(InvalidCredentialError):
        principal_from_root_key(old_record, old.record.digest, NOW + 30)
    # The successor keeps the original expiry too: rotation is no way to extend a key.
    assert new.record.expires_at == NOW + 30


async def test_rotation_with_zero_grace_ends_the_old_key_now(backend: StoreUnderTest) -> None:
    ws = await _workspace(backend)
    old = await backend.call(
        "create_root_key", ws.id, permissions=[], now=NOW, actor=OPERATOR_ACTOR
    )
    await backend.call(
        "rotate_root_key", old.record.id, grace_seconds=0, now=NOW + 1, actor=OPERATOR_ACTOR
    )
    record = await backend.call("find_root_key", old.record.digest)
    with pytest.raises(InvalidCredentialError):
        principal_from_root_key(record, old.record.digest, NOW + 1)


async def test_revoked_or_expired_key_cannot_be_rotated(backend: StoreUnderTest) -> None:
    ws = await _workspace(backend)
    revoked = await backend.call(
        "create_root_key", ws.id, permissions=[], now=NOW, actor=OPERATOR_ACTOR
    )
    await backend.call("revoke_root_key", revoked.record.id, now=NOW, actor=OPERATOR_ACTOR)
    expiring = await backend.call(
        "create_root_key",
        ws.id,
        permissions=[],
        expires_at=NOW + 5,
        now=NOW,
        actor=OPERATOR_ACTOR,
    )
    for key_id, at in ((revoked.record.id, NOW + 1), (expiring.record.id, NOW + 5)):
        assert (
            await backend.call(
                "rotate_root_key", key_id, grace_seconds=10, now=at, actor=OPERATOR_ACTOR
            )
            is None
        )
    assert len(await backend.call("list_root_keys", ws.id)) == 2


@pytest.mark.parametrize("grace", [-1, 30 * 86_400 + 1, 1.5, True])
async def test_bad_grace_is_a_client_error(backend: StoreUnderTest, grace: object) -> None:
    ws = await _workspace(backend)
    old = await backend.call(
        "create_root_key", ws.id, permissions=[], now=NOW, actor=OPERATOR_ACTOR
    )
    with pytest.raises(ClientError):
        await backend.call(
            "rotate_root_key", old.record.id, grace_seconds=grace, now=NOW, actor=OPERATOR_ACTOR
        )
    assert (await backend.call("get_root_key", old.record.id)).expires_at is None


# --------------------------------------------------------------------------- portal sessions


async def test_portal_session_lifecycle(backend: StoreUnderTest) -> None:
    ws = await _workspace(backend)
    new = await backend.call(
        "create_portal_session",
        ws.id,
        "end_user_7",
        permissions=["billing.read"],
        ttl=3600,
        now=NOW,
        actor=OPERATOR_ACTOR,
    )
    raw = new.token.reveal()
    assert raw.startswith("pt_")
    record = await backend.call("find_portal_session", digest(raw))
    assert record == new.record
    assert record.expires_at == NOW + 3600
    principal = principal_from_portal_session(record, digest(raw), NOW + 3599)
    identity = await backend.call("get_identity", ws.id, "end_user_7")
    assert identity is not None  # made on first use
    assert record.identity_id == identity.id
    assert principal.subject == Subject("identity", identity.id)
    assert principal.identity_id == identity.id
    with pytest.raises(InvalidCredentialError):
        principal_from_portal_session(record, digest(raw), NOW + 3600)
    revoked = await backend.call(
        "revoke_portal_session", new.record.id, now=NOW + 10, actor=OPERATOR_ACTOR
    )
    assert revoked.revoked_at == NOW + 10
    record = await backend.call("find_portal_session", digest(raw))
    with pytest.raises(InvalidCredentialError):
        principal_from_portal_session(record, digest(raw), NOW + 11)
    actions = [e.action for e in (await backend.call("list_audit", ws.id)).events]
    assert actions[:3] == [
        ACTION_PORTAL_SESSION_REVOKE,
        ACTION_PORTAL_SESSION_CREATE,
        ACTION_IDENTITY_CREATE,
    ]


@pytest.mark.parametrize("ttl", [0, -5, 30 * 86_400 + 1])
async def test_bad_portal_ttl_is_a_client_error(backend: StoreUnderTest, ttl: int) -> None:
    ws = await _workspace(backend)
    with pytest.raises(ClientError):
        await backend.call(
            "create_portal_session",
            ws.id,
            "u",
            permissions=[],
            ttl=ttl,
            now=NOW,
            actor=OPERATOR_ACTOR,
        )


# --------------------------------------------------------------------------- exchange codes


async def _exchange(backend: StoreUnderTest, ws: WorkspaceRecord, **kwargs: object) -> Any:
    arguments: dict[str, object] = {
        "permissions": ["billing.read"],
        "ttl": 3600,
        "now": NOW,
        "actor": OPERATOR_ACTOR,
    }
    arguments.update(kwargs)
    return await backend.call("create_portal_exchange", ws.id, "end_user_7", **arguments)


async def test_an_exchange_code_starts_its_session_once(backend: StoreUnderTest) -> None:
    ws = await _workspace(backend)
    pending: NewPortalExchange = await _exchange(backend, ws)
    code = pending.code.reveal()
    assert code.startswith("pc_")
    assert pending.code_expires_at == NOW + PORTAL_EXCHANGE_TTL
    assert pending.record.expires_at == NOW + 3600
    # The session exists (it can be looked up and revoked by id) but no token verifies yet;
    # in particular the code is not a portal token.
    assert await backend.call("get_portal_session", pending.record.id) == pending.record
    assert await backend.call("find_portal_session", digest(code)) is None

    started = await backend.call("exchange_portal_code", digest(code), now=NOW + 5)
    token = started.token.reveal()
    assert token.startswith("pt_")
    assert started.record.id == pending.record.id
    assert started.record.expires_at == NOW + 3600  # the lifetime ran from creation
    record = await backend.call("find_portal_session", digest(token))
    assert record == started.record
    principal = principal_from_portal_session(record, digest(token), NOW + 6)
    identity_subject = Subject("identity", pending.record.identity_id)
    assert principal.subject == identity_subject
    assert principal.can("billing.read")

    events = (await backend.call("list_audit", ws.id)).events
    assert [e.action for e in events[:3]] == [
        ACTION_PORTAL_SESSION_EXCHANGE,
        ACTION_PORTAL_SESSION_CREATE,
        ACTION_IDENTITY_CREATE,
    ]
    assert events[0].actor == identity_subject
    assert events[0].source == "portal_session"
    assert events[1].actor == OPERATOR
    assert [t.id for t in events[0].targets] == [pending.record.id]


async def test_a_replayed_exchange_code_ends_the_session_it_started(
    backend: StoreUnderTest,
) -> None:
    ws = await _workspace(backend)
    pending: NewPortalExchange = await _exchange(backend, ws)
    code = pending.code.reveal()
    started = await backend.call("exchange_portal_code", digest(code), now=NOW + 5)
    token = started.token.reveal()
    assert (await backend.call("find_portal_session", digest(token))).revoked_at is None

    # Presented again (RFC 6749 §4.1.2): the answer is "no session", and the session it
    # started is over, audited with the reason.
    assert await backend.call("exchange_portal_code", digest(code), now=NOW + 6) is None
    ended = await backend.call("find_portal_session", digest(token))
    assert ended.revoked_at == NOW + 6
    with pytest.raises(InvalidCredentialError):
        principal_from_portal_session(ended, digest(token), NOW + 7)
    event = (await backend.call("list_audit", ws.id)).events[0]
    assert event.action == ACTION_PORTAL_SESSION_REVOKE
    assert event.context == {"reason": "exchange_code_replayed"}
    assert event.actor == Subject("identity", pending.record.identity_id)
    # A third time changes nothing more.
    assert await backend.call("exchange_portal_code", digest(code), now=NOW + 9) is None
    assert (await backend.call("find_portal_session", digest(token))).revoked_at == NOW + 6


async def test_an_expired_code_never_works(backend: StoreUnderTest) -> None:
    ws = await _workspace(backend)
    pending = await _exchange(backend, ws)
    code_digest = digest(pending.code.reveal())
    late = NOW + PORTAL_EXCHANGE_TTL
    assert await backend.call("exchange_portal_code", code_digest, now=late) is None
    assert await backend.call("exchange_portal_code", code_digest, now=late + 3600) is None


async def test_a_code_does_not_outlive_its_session(backend: StoreUnderTest) -> None:
    ws = await _workspace(backend)
    pending = await _exchange(backend, ws, ttl=10)
    code_digest = digest(pending.code.reveal())
    assert await backend.call("exchange_portal_code", code_digest, now=NOW + 10) is None


async def test_revoking_a_pending_session_voids_its_code(backend: StoreUnderTest) -> None:
    ws = await _workspace(backend)
    pending = await _exchange(backend, ws)
    revoked = await backend.call(
        "revoke_portal_session", pending.record.id, now=NOW + 1, actor=OPERATOR_ACTOR
    )
    assert revoked.revoked_at == NOW + 1
    code_digest = digest(pending.code.reveal())
    assert await backend.call("exchange_portal_code", code_digest, now=NOW + 2) is None


async def test_unknown_codes_and_workspaces_give_none(backend: StoreUnderTest) -> None:
    assert await backend.call("exchange_portal_code", digest("pc_nope"), now=NOW) is None
    assert await backend.call("get_portal_session", "ps_nope") is None
    assert (
        await backend.call(
            "create_portal_exchange",
            "ws_nope",
            "u1",
            permissions=[],
            ttl=60,
            now=NOW,
            actor=OPERATOR_ACTOR,
        )
        is None
    )


async def test_an_exchange_code_follows_the_session_rules(backend: StoreUnderTest) -> None:
    ws = await _workspace(backend)
    other = await _workspace(backend, "Other")
    with pytest.raises(ClientError):
        await _exchange(backend, ws, ttl=0)
    with pytest.raises(InvalidPermissionError):
        await _exchange(backend, ws, permissions=["a.*b"])
    with pytest.raises(PermissionDeniedError):
        await _exchange(backend, ws, actor=Actor(_principal_of(other.id)))
    with pytest.raises(ClientError):
        await backend.call(
            "create_portal_exchange",
            ws.id,
            "evil\u202euser",
            permissions=[],
            ttl=60,
            now=NOW,
            actor=OPERATOR_ACTOR,
        )


async def test_stale_codes_are_forgotten_but_live_ones_are_kept(backend: StoreUnderTest) -> None:
    ws = await _workspace(backend)
    old = await _exchange(backend, ws)
    live = await _exchange(backend, ws, now=NOW + PORTAL_EXCHANGE_TTL - 1)
    # Creating one more code past the first one's expiry prunes only the first.
    await _exchange(backend, ws, now=NOW + PORTAL_EXCHANGE_TTL)
    later = NOW + PORTAL_EXCHANGE_TTL
    assert await backend.call("exchange_portal_code", digest(old.code.reveal()), now=later) is None
    started = await backend.call("exchange_portal_code", digest(live.code.reveal()), now=later)
    assert started is not None


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    "name",
    [
        "a\x85b",  # C1 NEL
        "a\x9bb",  # C1 CSI
        "evil\u202egnp.exe",  # RIGHT-TO-LEFT OVERRIDE
        "a\u2066b",  # LEFT-TO-RIGHT ISOLATE
        "a\u200bb",  # ZERO WIDTH SPACE
        "line\u2028two",
        "para\u2029two",
        "lone\ud800",
        "tab\tname",
    ],
)
async def test_names_with_controls_bidi_separators_or_surrogates_are_refused(
    backend: StoreUnderTest, name: str
) -> None:
    ws = await _workspace(backend)
    with pytest.raises(ClientError):
        await _workspace(backend, name)
    with pytest.raises(ClientError):
        await backend.call(
            "create_root_key", ws.id, permissions=[], name=name, now=NOW, actor=OPERATOR_ACTOR
        )
    with pytest.raises(ClientError):
        await backend.call(
            "create_portal_session",
            ws.id,
            name,
            permissions=[],
            ttl=60,
            now=NOW,
            actor=OPERATOR_ACTOR,
        )
    with pytest.raises(ClientError):
        await backend.call("add_dashboard_user", name, "org_1", hash_password("pw"), [])
    assert await backend.call("list_root_keys", ws.id) == []


async def test_names_in_other_scripts_are_kept(backend: StoreUnderTest) -> None:
    # Letters, an en dash, CJK, Arabic-Indic digits, an accent and an emoji are all fine.
    name = "\u00c4rzte \u2013 \u6771\u4eac \u0661\u0660 caf\u00e9 \U0001f680"
    ws = await _workspace(backend, name)
    assert (await backend.call("find_workspace", ws.id)).name == name


@pytest.mark.parametrize("value", ["lone\ud800", "nul\x00"])
async def test_a_lookup_by_an_unstorable_id_is_none_or_a_client_error(
    backend: StoreUnderTest, value: str
) -> None:
    # No such id can exist (every stored one was checked); the answer is "not found" or a
    # 400, never a driver's exception.
    for method, args in (
        ("find_workspace", (value,)),
        ("find_workspace_by_org", (value,)),
        ("get_root_key", (value,)),
        ("get_portal_session", (value,)),
        ("find_dashboard_user", (value,)),
    ):
        with contextlib.suppress(ClientError):
            assert await backend.call(method, *args) is None
    with contextlib.suppress(ClientError):
        assert (
            await backend.call("revoke_portal_session", value, now=NOW, actor=OPERATOR_ACTOR)
            is None
        )


# --------------------------------------------------------------------------- actors and audit


async def test_principal_actor_is_recorded_with_request_id(backend: StoreUnderTest) -> None:
    ws = await _workspace(backend)
    actor = Actor(_principal_of(ws.id), request_id="req_42")
    new = await backend.call("create_root_key", ws.id, permissions=[], now=NOW, actor=actor)
    event = (await backend.call("list_audit", ws.id)).events[0]
    assert event.actor == Subject("user", "user_1", "Ada")
    assert event.request_id == "req_42"
    assert event.source == "jwt"
    assert [t.id for t in event.targets] == [new.record.id]
    operator_event = (await backend.call("list_audit", ws.id)).events[1]
    assert operator_event.actor == OPERATOR


async def test_principal_of_another_workspace_changes_nothing(backend: StoreUnderTest) -> None:
    ws = await _workspace(backend)
    other = await _workspace(backend, "Other")
    key = await backend.call(
        "create_root_key", ws.id, permissions=[], now=NOW, actor=OPERATOR_ACTOR
    )
    intruder = Actor(_principal_of(other.id))
    with pytest.raises(PermissionDeniedError):
        await backend.call("create_root_key", ws.id, permissions=[], now=NOW, actor=intruder)
    with pytest.raises(PermissionDeniedError):
        await backend.call("revoke_root_key", key.record.id, now=NOW, actor=intruder)
    with pytest.raises(PermissionDeniedError):
        await backend.call("disable_workspace", ws.id, now=NOW, actor=intruder)
    assert (await backend.call("get_root_key", key.record.id)).revoked_at is None
    assert not (await backend.call("find_workspace", ws.id)).disabled
    assert len(await backend.call("list_root_keys", ws.id)) == 1


async def test_audit_is_newest_first_and_pages_without_gaps(backend: StoreUnderTest) -> None:
    ws = await _workspace(backend)
    expected = []
    for i in range(7):
        # Two events per second, so paging must break ties within one second.
        event = audit_event(
            None,
            "thing.happen",
            [],
            now=NOW + 10 + i // 2,
            workspace_id=ws.id,
            context={"i": str(i)},
        )
        await backend.call("append_audit", event)
        expected.append(event)
    expected.reverse()
    seen = []
    cursor = None
    pages = 0
    while True:
        page = await backend.call("list_audit", ws.id, limit=3, before=cursor)
        seen.extend(page.events)
        pages += 1
        if page.next_cursor is None:
            break
        cursor = AuditCursor.parse(str(page.next_cursor))
    assert seen[:7] == expected
    assert [e.action for e in seen[7:]] == [ACTION_WORKSPACE_CREATE]
    assert pages == 3


async def test_audit_is_per_workspace(backend: StoreUnderTest) -> None:
    first = await _workspace(backend, "A")
    second = await _workspace(backend, "B")
    page = await backend.call("list_audit", first.id)
    assert all(event.workspace_id == first.id for event in page.events)
    assert [t.id for t in page.events[0].targets] == [first.id]
    assert (await backend.call("list_audit", second.id)).events[0].targets[0].id == second.id


@pytest.mark.parametrize("limit", [0, 501, -1])
async def test_bad_audit_limit_is_a_client_error(backend: StoreUnderTest, limit: int) -> None:
    with pytest.raises(ClientError):
        await backend.call("list_audit", "ws_x", limit=limit)


def test_audit_cursor_text_round_trips_and_rejects_junk() -> None:
    cursor = AuditCursor(NOW, 42)
    assert AuditCursor.parse(str(cursor)) == cursor
    for junk in ("", "1", "a.b", "1.2.3", "-1.2", "1." + "9" * 40):
        with pytest.raises(ClientError):
            AuditCursor.parse(junk)


async def test_mutation_and_audit_commit_together(
    transactional_backend: StoreUnderTest,
) -> None:
    backend = transactional_backend
    assert backend.break_audit is not None
    ws = await _workspace(backend)
    kept = await backend.call(
        "create_root_key", ws.id, permissions=[], now=NOW, actor=OPERATOR_ACTOR
    )
    pending = await _exchange(backend, ws)
    with backend.break_audit():
        with pytest.raises(UnavailableError):
            await backend.call("exchange_portal_code", digest(pending.code.reveal()), now=NOW)
        with pytest.raises(UnavailableError) as caught:
            await backend.call(
                "create_root_key", ws.id, permissions=[], now=NOW, actor=OPERATOR_ACTOR
            )
        assert "audit is down" not in str(caught.value)
        with pytest.raises(UnavailableError):
            await backend.call("revoke_root_key", kept.record.id, now=NOW, actor=OPERATOR_ACTOR)
        with pytest.raises(UnavailableError):
            await backend.call(
                "rotate_root_key",
                kept.record.id,
                grace_seconds=1,
                now=NOW,
                actor=OPERATOR_ACTOR,
            )
        with pytest.raises(UnavailableError):
            await _workspace(backend, "Never")
    assert await backend.call("list_root_keys", ws.id) == [kept.record]
    assert (await backend.call("get_root_key", kept.record.id)).revoked_at is None
    # And with the audit table working again, the same calls succeed.
    revoked = await backend.call("revoke_root_key", kept.record.id, now=NOW, actor=OPERATOR_ACTOR)
    assert revoked.revoked_at == NOW
    # The failed exchange left its code unspent.
    started = await backend.call("exchange_portal_code", digest(pending.code.reveal()), now=NOW)
    assert started is not None


async def test_management_refuses_wrong_types_with_a_client_error(
    backend: StoreUnderTest,
) -> None:
    # Never a TypeError or ValueError out of a management path: the library's own 400.
    ws = await _workspace(backend)
    not_an_actor: Any = "operator"
    with pytest.raises(ClientError):
        await backend.call("create_root_key", ws.id, permissions=[], now=NOW, actor=not_an_actor)
    with pytest.raises(ClientError):
        await backend.call("create_workspace", "Acme", now=NOW, actor=not_an_actor)
    with pytest.raises(ClientError):
        await backend.call("append_audit", "workspace.create")
    with pytest.raises(ClientError):
        await backend.call("list_audit", ws.id, before="1.2")
    with pytest.raises(ClientError):
        await backend.call("exchange_portal_code", "pc_not_a_digest", now=NOW)
    with pytest.raises(ClientError):
        await backend.call("disable_workspace", ws.id, now="now", actor=OPERATOR_ACTOR)
    assert await backend.call("list_root_keys", ws.id) == []
    assert not (await backend.call("find_workspace", ws.id)).disabled


# --------------------------------------------------------------------------- storage hygiene


async def test_no_raw_secret_is_stored(backend: StoreUnderTest) -> None:
    ws = await _workspace(backend)
    key = await backend.call(
        "create_root_key", ws.id, permissions=[], now=NOW, actor=OPERATOR_ACTOR
    )
    rotated = await backend.call(
        "rotate_root_key", key.record.id, grace_seconds=5, now=NOW, actor=OPERATOR_ACTOR
    )
    session = await backend.call(
        "create_portal_session", ws.id, "u", permissions=[], ttl=60, now=NOW, actor=OPERATOR_ACTOR
    )
    pending = await _exchange(backend, ws)
    started = await backend.call("exchange_portal_code", digest(pending.code.reveal()), now=NOW)
    stored = backend.dump()
    assert stored  # the dump really holds the data ...
    assert ws.id.encode() in stored
    for secret in (key.key, rotated.key, session.token, pending.code, started.token):
        raw = secret.reveal()
        assert raw.encode() not in stored  # ... but never a raw key or token
        assert raw[len("ak_") :].encode() not in stored


async def test_dashboard_users(backend: StoreUnderTest) -> None:
    user_id = f"user_{backend.kind}_{backend.is_async}_{secrets.token_hex(6)}"
    hashed = hash_password("correct horse")
    user = await backend.call("add_dashboard_user", user_id, "org_1", hashed, ["keys.read"])
    found = await backend.call("find_dashboard_user", user_id)
    assert found == user
    assert hashed not in repr(found)
    assert verify_password("correct horse", found.password_hash)
    assert not verify_password("wrong horse", found.password_hash)
    with pytest.raises(ConflictError):
        await backend.call("add_dashboard_user", user_id, "org_2", hashed, [])
    with pytest.raises(InvalidPermissionError):
        await backend.call("add_dashboard_user", user_id + "x", "org_1", hashed, ["a.*b"])


def test_memory_store_implements_both_protocols() -> None:
    from authcore.backends.memory import MemoryStore
    from authcore.store import AsyncStore, Store

    store = MemoryStore()
    sync: Store = store
    asynchronous: AsyncStore = store
    assert sync.find_workspace("ws_none") is None
    assert asynchronous is not None
