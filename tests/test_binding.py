"""Step 4: the principal in the request session, read back fail-closed."""

from __future__ import annotations

import contextvars

import pytest

from authcore.binding import (
    PRINCIPAL_KEY,
    attach_principal,
    bind_principal,
    bound_principal,
    principal_from,
    reset_principal,
    workspace_id_for_logs,
)
from authcore.errors import PrincipalMissingError
from authcore.permissions import PermissionSet
from authcore.principal import Principal, Source, Subject

PRINCIPAL = Principal("ws_1", Subject("root_key", "key_1"), Source.ROOT_KEY, PermissionSet())


def test_attach_then_read() -> None:
    state: dict[str, object] = {}
    attach_principal(state, PRINCIPAL)
    assert state == {PRINCIPAL_KEY: PRINCIPAL}
    assert principal_from(state) is PRINCIPAL


def test_reading_without_middleware_fails_closed() -> None:
    with pytest.raises(PrincipalMissingError) as info:
        principal_from({})
    assert info.value.status == 500


def test_something_else_under_the_key_is_not_a_principal() -> None:
    with pytest.raises(PrincipalMissingError):
        principal_from({PRINCIPAL_KEY: {"workspace_id": "ws_1"}})


def test_workspace_for_logs_is_empty_without_principal() -> None:
    # A fresh context: what other code bound in this thread must not decide this test.
    assert contextvars.Context().run(workspace_id_for_logs) == ""
    assert workspace_id_for_logs(PRINCIPAL) == "ws_1"


def test_bound_principal_is_current_until_reset() -> None:
    contextvars.Context().run(_bind_and_reset)


def _bind_and_reset() -> None:
    token = bind_principal(PRINCIPAL)
    try:
        assert bound_principal() is PRINCIPAL
        assert workspace_id_for_logs() == "ws_1"
    finally:
        reset_principal(token)
    assert bound_principal() is None
    assert workspace_id_for_logs() == ""
