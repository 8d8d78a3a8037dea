"""The bounds on what one key, portal session or dashboard user may hold (issue 26, finding 3).

Enforced once, in :func:`authcore.plans.validate_grants`, which every plan that stores grants
calls: so the API, the command line and the dashboard all refuse the same thing.
"""

from __future__ import annotations

import pytest

from authcore import plans, portal_sessions
from authcore.errors import InvalidPermissionError, TooManyGrantsError
from authcore.plans import MAX_KEY_GRANT_BYTES, MAX_KEY_GRANTS
from authcore.records import OPERATOR_ACTOR

NOW = 1_800_000_000


def _grants(count: int, width: int = 8) -> list[str]:
    """``count`` distinct grants of ``width`` characters each."""
    return [f"g{n:0{width - 1}d}" for n in range(count)]


def _key(permissions: list[str]) -> tuple[str, ...]:
    new, _ = plans.plan_create_root_key(
        "ws_1", permissions=permissions, name=None, expires_at=None, now=NOW,
        actor=OPERATOR_ACTOR, prefix="ak_",
    )  # fmt: skip
    return new.record.permissions


def _session(permissions: list[str], key_permissions: list[str]) -> tuple[str, ...]:
    new, _ = portal_sessions.plan_create_portal_session(
        "ws_1", "idt_1", permissions=permissions, key_permissions=key_permissions, ttl=60,
        now=NOW, actor=OPERATOR_ACTOR, prefix="ps_",
    )  # fmt: skip
    return new.record.key_permissions


def test_a_key_may_hold_exactly_the_most_grants() -> None:
    assert len(_key(_grants(MAX_KEY_GRANTS))) == MAX_KEY_GRANTS


def test_one_grant_more_is_refused_with_a_400() -> None:
    with pytest.raises(TooManyGrantsError) as raised:
        _key(_grants(MAX_KEY_GRANTS + 1))
    assert raised.value.status == 400
    assert raised.value.code == "too_many_grants"
    # Still an InvalidPermissionError: callers that catch that keep working.
    assert isinstance(raised.value, InvalidPermissionError)


def test_duplicates_count_against_the_number_before_any_is_parsed() -> None:
    with pytest.raises(TooManyGrantsError):
        _key(["keys.read"] * (MAX_KEY_GRANTS + 1))


def test_the_bytes_bound_refuses_fewer_but_longer_grants() -> None:
    # 100 grants of 100 characters: under the count, over the 8 KiB of text.
    long = _grants(100, width=100)
    assert sum(map(len, long)) > MAX_KEY_GRANT_BYTES
    with pytest.raises(TooManyGrantsError):
        _key(long)
    fits = _grants(MAX_KEY_GRANT_BYTES // 100, width=100)
    assert len(_key(fits)) == len(fits)


def test_duplicates_do_not_count_against_the_bytes() -> None:
    wide = _grants(60, width=128)  # 7,680 bytes
    assert len(_key(wide + wide)) == 60


@pytest.mark.parametrize("where", ["permissions", "key_permissions"])
def test_a_portal_session_has_the_same_bounds_on_both_lists(where: str) -> None:
    fits, over = _grants(MAX_KEY_GRANTS), _grants(MAX_KEY_GRANTS + 1)
    assert len(_session(fits, fits)) == MAX_KEY_GRANTS
    lists = {"permissions": fits, "key_permissions": fits, where: over}
    with pytest.raises(TooManyGrantsError):
        _session(lists["permissions"], lists["key_permissions"])


def test_a_dashboard_user_has_the_same_bounds() -> None:
    with pytest.raises(TooManyGrantsError):
        plans.make_dashboard_user("user_1", "org_1", "hash", _grants(MAX_KEY_GRANTS + 1))


def test_the_public_message_names_both_bounds() -> None:
    message = TooManyGrantsError.message
    assert str(MAX_KEY_GRANTS) in message
    assert str(MAX_KEY_GRANT_BYTES) in message
