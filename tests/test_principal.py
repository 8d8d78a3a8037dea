"""Step 3: records and claims become principals; principals authorize fail-closed."""

from __future__ import annotations

import attrs
import pytest

from authcore.errors import (
    InvalidCredentialError,
    PermissionDeniedError,
    WorkspaceDisabledError,
)
from authcore.keyring import VerifiedClaims
from authcore.permissions import PermissionSet, parse_query
from authcore.principal import (
    Principal,
    Source,
    Subject,
    check_workspace,
    principal_from_claims,
    principal_from_portal_session,
    principal_from_root_key,
)
from authcore.records import PortalSessionRecord, RootKeyRecord, WorkspaceRecord
from authcore.tokens import digest

NOW = 1_800_000_000
KEY = "ak_" + "k" * 43
KEY_RECORD = RootKeyRecord(
    id="key_1",
    workspace_id="ws_1",
    digest=digest(KEY),
    start=KEY[:9],
    name="deploy",
    permissions=("keys.read", "keys.*"),
    created_at=NOW - 100,
)
SESSION_TOKEN = "pt_" + "s" * 43
SESSION_RECORD = PortalSessionRecord(
    id="ps_1",
    workspace_id="ws_1",
    identity_id="idt_9",
    digest=digest(SESSION_TOKEN),
    permissions=("keys.read",),
    created_at=NOW - 100,
    expires_at=NOW + 100,
)


def test_root_key_record_becomes_principal() -> None:
    principal = principal_from_root_key(KEY_RECORD, digest(KEY), NOW)
    assert principal == Principal(
        workspace_id="ws_1",
        subject=Subject("root_key", "key_1", "deploy"),
        source=Source.ROOT_KEY,
        permissions=PermissionSet(["keys.read", "keys.*"]),
    )


@pytest.mark.parametrize(
    ("changes", "presented"),
    [
        ({}, digest("ak_other")),  # the record does not belong to this digest
        ({"revoked_at": NOW - 1}, digest(KEY)),
        ({"revoked_at": NOW + 1}, digest(KEY)),  # revocation is immediate, whatever the stamp
        ({"expires_at": NOW}, digest(KEY)),  # expired at the exact second
        ({"expires_at": NOW - 1}, digest(KEY)),
        ({"permissions": ("bad perm",)}, digest(KEY)),  # a stored grant must never widen
    ],
)
def test_invalid_root_keys_all_raise_the_same_error(
    changes: dict[str, object], presented: bytes
) -> None:
    record = attrs.evolve(KEY_RECORD, **changes)  # type: ignore[arg-type]  # dict of mixed values
    with pytest.raises(InvalidCredentialError) as info:
        principal_from_root_key(record, presented, NOW)
    assert info.value.message == InvalidCredentialError.message


def test_unknown_root_key_is_invalid() -> None:
    with pytest.raises(InvalidCredentialError):
        principal_from_root_key(None, digest(KEY), NOW)


def test_key_valid_until_the_second_before_expiry() -> None:
    record = attrs.evolve(KEY_RECORD, expires_at=NOW + 1)
    assert principal_from_root_key(record, digest(KEY), NOW).workspace_id == "ws_1"
    assert principal_from_root_key(record, digest(KEY), NOW + 0.999).workspace_id == "ws_1"


def test_portal_session_becomes_its_identity_principal() -> None:
    principal = principal_from_portal_session(SESSION_RECORD, digest(SESSION_TOKEN), NOW)
    assert principal.subject == Subject("identity", "idt_9")
    assert principal.source is Source.PORTAL_SESSION


@pytest.mark.parametrize(
    ("record", "presented", "now"),
    [
        (None, digest(SESSION_TOKEN), NOW),
        (SESSION_RECORD, digest("pt_other"), NOW),
        (attrs.evolve(SESSION_RECORD, revoked_at=NOW), digest(SESSION_TOKEN), NOW),
        (SESSION_RECORD, digest(SESSION_TOKEN), NOW + 100),
    ],
)
def test_invalid_portal_sessions(
    record: PortalSessionRecord | None, presented: bytes, now: int
) -> None:
    with pytest.raises(InvalidCredentialError):
        principal_from_portal_session(record, presented, now)


def test_claims_become_user_principal() -> None:
    claims = VerifiedClaims(
        subject="u_1",
        workspace_id="ws_1",
        permissions=("audit.read",),
        issued_at=NOW,
        expires_at=NOW + 60,
        name="Ada",
    )
    principal = principal_from_claims(claims)
    assert principal.subject == Subject("user", "u_1", "Ada")
    assert principal.source is Source.JWT
    assert principal.can("audit.read")


def test_claims_with_invalid_permission_are_invalid() -> None:
    claims = VerifiedClaims("u", "ws", ("Not Valid",), NOW, NOW + 1)
    with pytest.raises(InvalidCredentialError):
        principal_from_claims(claims)


def test_authorize_fails_closed() -> None:
    principal = principal_from_root_key(KEY_RECORD, digest(KEY), NOW)
    principal.authorize("keys.read")
    principal.authorize(parse_query("keys.create AND keys.revoke"))
    with pytest.raises(PermissionDeniedError) as info:
        principal.authorize("audit.read")
    assert info.value.status == 403
    assert info.value.bearer_error == "insufficient_scope"


@pytest.mark.parametrize("query", ["", "keys.*", "keys.read AND", "KEYS.READ", "x" * 2000])
def test_invalid_query_denies_instead_of_granting(query: str) -> None:
    principal = Principal("ws", Subject("root_key", "k"), Source.ROOT_KEY, PermissionSet(["*"]))
    assert not principal.can(query)
    with pytest.raises(PermissionDeniedError):
        principal.authorize(query)


def test_principal_is_immutable() -> None:
    principal = principal_from_root_key(KEY_RECORD, digest(KEY), NOW)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        principal.workspace_id = "ws_other"  # type: ignore[misc]  # frozen: the point of the test


def test_principal_holds_no_secret_or_digest() -> None:
    principal = principal_from_root_key(KEY_RECORD, digest(KEY), NOW)
    text = repr(principal) + repr(attrs.asdict(principal, recurse=True))
    assert KEY not in text
    assert digest(KEY).hex() not in text
    assert repr(digest(KEY)) not in text


def test_principal_to_dict_is_json_ready() -> None:
    principal = principal_from_root_key(KEY_RECORD, digest(KEY), NOW)
    assert principal.to_dict() == {
        "workspace_id": "ws_1",
        "subject": {"type": "root_key", "id": "key_1", "name": "deploy"},
        "source": "root_key",
        "permissions": ["keys.*", "keys.read"],
    }


def test_workspace_checks() -> None:
    workspace = WorkspaceRecord(id="ws_1", name="w")
    assert check_workspace(workspace, "ws_1") is workspace
    with pytest.raises(InvalidCredentialError):
        check_workspace(None, "ws_1")
    with pytest.raises(InvalidCredentialError):
        check_workspace(workspace, "ws_2")
    with pytest.raises(WorkspaceDisabledError):
        check_workspace(attrs.evolve(workspace, disabled=True), "ws_1")


def test_record_repr_hides_the_digest() -> None:
    assert digest(KEY).hex() not in repr(KEY_RECORD)
    assert repr(digest(KEY)) not in repr(KEY_RECORD)


def test_record_permissions_must_be_strings() -> None:
    with pytest.raises(TypeError):
        attrs.evolve(KEY_RECORD, permissions="keys.read")
    with pytest.raises(TypeError):
        attrs.evolve(KEY_RECORD, permissions=(1, 2))


def _record_with(grants: list[str]) -> RootKeyRecord:
    return RootKeyRecord(
        id="key_memo",
        workspace_id="ws_memo",
        digest=digest("ak_memo"),
        start="ak_memo",
        name=None,
        permissions=grants,
        created_at=0,
    )


def test_principals_of_records_with_few_grants_are_shared() -> None:
    record = _record_with(["keys.read", "keys.create"])
    first = principal_from_root_key(record, digest("ak_memo"), 0)
    assert principal_from_root_key(record, digest("ak_memo"), 0) is first


def test_records_with_many_grants_stay_out_of_the_entry_bounded_memos() -> None:
    # The memos hold 4,096 entries whatever their size: a record with 256 grants is built
    # afresh each time (equal, not shared), so the memos cannot pin big grant lists.
    grants = [f"r{i:03d}.action_long_name" for i in range(256)]
    record = _record_with(grants)
    first = principal_from_root_key(record, digest("ak_memo"), 0)
    again = principal_from_root_key(record, digest("ak_memo"), 0)
    assert again == first
    assert again is not first
    assert again.permissions is not first.permissions
    assert PermissionSet.compiled(tuple(grants)) is not PermissionSet.compiled(tuple(grants))
    assert PermissionSet.compiled(("keys.read",)) is PermissionSet.compiled(("keys.read",))
