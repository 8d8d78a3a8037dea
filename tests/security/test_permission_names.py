"""Permission names built from user data: refused at creation, never matching another name.

A service that builds ``f"docs.{user_value}.read"`` must never end up with a grant that matches
more than that one name. Every look-alike of a wildcard or separator (``*``, ``?``, ``[``,
the full-width asterisk U+FF0A, Turkish dotted ``İ`` whose lower case is two characters, empty
segments) is refused where the name is validated and where a grant is stored (memory and SQLite
stores).

A user value that is *exactly* ``*`` makes a valid grant segment, which is a wildcard; the
grant grammar cannot tell it from an intended one. Names from user data are therefore
validated as *permissions* (no wildcards) first; the last tests pin both halves of that rule.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authcore.backends.sqlite import SQLiteStore
from authcore.errors import InvalidPermissionError
from authcore.permissions import (
    PermissionSet,
    permission_from_parts,
    validate_grant,
    validate_permission,
)
from authcore.records import OPERATOR_ACTOR
from authcore.testing import MemoryStore
from tests.strategies import user_text, valid_permissions

NOW = 1_800_000_000.0

HOSTILE_USER_VALUES = {
    "star_inside": "a*",
    "star_first": "*a",
    "question_mark": "a?",
    "bracket": "a[bc]",
    "leading_dot": ".a",
    "trailing_dot": "a.",
    "empty": "",
    "full_width_star": "\uff0a",
    "full_width_star_inside": "a\uff0a",
    "small_asterisk": "\ufe61",
    "asterisk_operator": "\u2217",
    "turkish_dotted_capital_i": "\u0130d",
    "turkish_dotless_i": "\u0131d",
    "capital": "Docs",
    "space": "a b",
    "nul": "a\x00",
    "newline": "a\n",
    "full_width_dot": "a\uff0eb",
    "one_dot_leader": "a\u2024b",
    "hyphen": "a-b",
    "slash": "a/b",
    "percent": "a%2a",
    "long": "a" * 200,
}


def user_name(value: str) -> str:
    return f"docs.{value}.read"


@pytest.mark.parametrize("name", sorted(HOSTILE_USER_VALUES))
def test_a_hostile_user_value_is_not_a_valid_permission(name: str) -> None:
    with pytest.raises(InvalidPermissionError):
        validate_permission(user_name(HOSTILE_USER_VALUES[name]))


@pytest.mark.parametrize("name", sorted(HOSTILE_USER_VALUES))
def test_a_hostile_user_value_is_not_a_valid_grant(name: str) -> None:
    with pytest.raises(InvalidPermissionError):
        validate_grant(user_name(HOSTILE_USER_VALUES[name]))


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "memory":
        memory = MemoryStore()
        yield memory
        return
    with SQLiteStore(tmp_path / "perm.db") as sqlite:
        yield sqlite


@pytest.mark.parametrize("name", sorted(HOSTILE_USER_VALUES))
def test_a_store_refuses_a_hostile_grant_at_creation(store: Any, name: str) -> None:
    workspace = store.create_workspace("perm", now=NOW, actor=OPERATOR_ACTOR)
    grant = user_name(HOSTILE_USER_VALUES[name])
    with pytest.raises(InvalidPermissionError):
        store.create_root_key(
            workspace.id, permissions=["keys.read", grant], now=NOW, actor=OPERATOR_ACTOR
        )
    with pytest.raises(InvalidPermissionError):
        store.create_portal_session(
            workspace.id, "user_1", permissions=[grant], ttl=60, now=NOW, actor=OPERATOR_ACTOR
        )
    # Nothing was stored and nothing was audited for the refused calls.
    assert store.list_root_keys(workspace.id) == []
    actions = [event.action for event in store.list_audit(workspace.id).events]
    assert actions == ["workspace.create"]


def test_formatting_a_user_star_into_a_grant_string_makes_a_wildcard() -> None:
    # Why permission_from_parts exists: the grant grammar cannot tell a user's "*".
    grants = PermissionSet([validate_grant(user_name("*"))])
    assert grants.allows("docs.secret.read")


@pytest.mark.parametrize(
    "value", ["*", "a.b", "", "?", "[a]", "\uff0a", "\u0130", "A", "a b", "a-b", "1a", ".", "a."]
)
def test_permission_from_parts_refuses_any_user_value_but_one_literal_segment(value: str) -> None:
    with pytest.raises(InvalidPermissionError):
        permission_from_parts("docs", value, "read")


def test_permission_from_parts_builds_the_exact_name() -> None:
    name = permission_from_parts("docs", "report_7", "read")
    assert name == "docs.report_7.read"
    grants = PermissionSet([name])
    assert grants.allows("docs.report_7.read")
    assert not grants.allows("docs.report_8.read")


def test_permission_from_parts_needs_a_part() -> None:
    with pytest.raises(InvalidPermissionError):
        permission_from_parts()


@settings(max_examples=300, deadline=None)
@given(value=st.text(max_size=24))
def test_a_name_from_parts_never_matches_another_user_value(value: str) -> None:
    try:
        name = permission_from_parts("docs", value, "read")
    except InvalidPermissionError:
        return
    grants = PermissionSet([name])
    assert grants.allows(f"docs.{value}.read")
    assert not grants.allows("docs.zzzz_other.read") or value == "zzzz_other"


# --- properties -----------------------------------------------------------------------------

# The strategies user_text and valid_permissions live in tests/strategies.py.


def _valid(name: str) -> bool:
    try:
        validate_permission(name)
    except InvalidPermissionError:
        return False
    return True


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=user_text, other=st.one_of(valid_permissions, user_text.map(user_name)))
def test_a_name_from_user_data_matches_only_itself(value: str, other: str) -> None:
    name = user_name(value)
    if not _valid(name):
        return  # refused at creation: it can never be granted through validate_permission
    grants = PermissionSet([name])
    try:
        allowed = grants.allows(other)
    except InvalidPermissionError:
        allowed = False
    assert allowed == (other == name)


@settings(max_examples=300, deadline=None)
@given(a=valid_permissions, b=valid_permissions)
def test_an_exact_grant_never_matches_another_name(a: str, b: str) -> None:
    assert PermissionSet([a]).allows(b) == (a == b)


@settings(max_examples=300, deadline=None)
@given(value=user_text)
def test_a_hostile_required_name_is_never_allowed_by_an_exact_grant(value: str) -> None:
    # A query built from user data against a holder of "docs.x.read": only the exact name.
    grants = PermissionSet(["docs.x.read", "docs.read"])
    try:
        allowed = grants.allows(user_name(value))
    except InvalidPermissionError:
        allowed = False
    assert allowed == (value == "x")
