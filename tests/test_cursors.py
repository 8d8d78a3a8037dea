"""Opaque page cursors: what a list writes it reads back; anything else is a ClientError."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from authcore.cursors import (
    MAX_CURSOR_LENGTH,
    audit_cursor,
    identity_cursor,
    key_cursor,
    parse_audit_cursor,
    parse_identity_cursor,
    parse_key_cursor,
    parse_workspace_cursor,
    workspace_cursor,
)
from authcore.errors import ClientError
from authcore.records import AuditCursor, KeyCursor

times = st.integers(0, 10**12)
key_ids = st.text("abcdef0123456789", min_size=1, max_size=24).map(lambda h: f"key_{h}")


@given(times, key_ids)
def test_a_key_cursor_round_trips_and_travels_in_a_query_as_it_is(when: int, key_id: str) -> None:
    token = key_cursor(KeyCursor(when, key_id))
    assert token.isascii()
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert parse_key_cursor(token) == KeyCursor(when, key_id)


@given(st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=200))
def test_an_identity_cursor_round_trips(external_id: str) -> None:
    assert parse_identity_cursor(identity_cursor(external_id)) == external_id


@given(st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=200))
def test_a_workspace_cursor_round_trips(workspace_id: str) -> None:
    assert parse_workspace_cursor(workspace_cursor(workspace_id)) == workspace_id


@given(st.integers(0, 10**12 - 1), st.integers(0, 10**17))
def test_an_audit_cursor_round_trips(when: int, seq: int) -> None:
    assert parse_audit_cursor(audit_cursor(AuditCursor(when, seq))) == AuditCursor(when, seq)


def _raw(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not base64!",
        "a" * (MAX_CURSOR_LENGTH + 1),
        "A",  # one base64 character is no byte
        _raw("k1:"),
        _raw("k1:12"),
        _raw("k1:x.key_1"),
        _raw("k1:1.key\x00"),
        _raw("k2:1.key_1"),
        _raw("i1:someone"),  # another list's cursor
        base64.urlsafe_b64encode(b"k1:1.\xff").decode().rstrip("="),
    ],
)
def test_anything_but_a_key_cursor_is_refused(token: str) -> None:
    with pytest.raises(ClientError):
        parse_key_cursor(token)


def test_each_list_refuses_the_others_cursors() -> None:
    keys, audit = key_cursor(KeyCursor(1, "key_1")), audit_cursor(AuditCursor(1, 2))
    with pytest.raises(ClientError):
        parse_audit_cursor(keys)
    with pytest.raises(ClientError):
        parse_identity_cursor(audit)
    with pytest.raises(ClientError):
        parse_key_cursor(identity_cursor("cust"))
    with pytest.raises(ClientError):
        parse_workspace_cursor(identity_cursor("ws_1"))
    with pytest.raises(ClientError):
        parse_identity_cursor(workspace_cursor("ws_1"))
