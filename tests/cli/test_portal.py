"""``authcore portal create-session``: one identity's session, handed out as a one-time link."""

from __future__ import annotations

from typing import Any

import pytest

from authcore.tokens import digest
from tests.cli.runner import Run


def _create(run: Run, workspace: str, *options: str) -> dict[str, Any]:
    argv = ("portal", "create-session", "--workspace", workspace, "--identity", "customer-1")
    result: dict[str, Any] = run.json(*argv, "--permission", "keys.read", *options)
    return result


def test_the_link_carries_the_code_in_its_fragment_on_the_given_base_url(
    run: Run, workspace: str
) -> None:
    result = _create(run, workspace, "--base-url", "https://api.example.com/v2/")
    assert result["portal_url"] == f"https://api.example.com/v2/portal/#code={result['code']}"


def test_the_session_belongs_to_the_identity_and_keeps_the_key_permissions(
    run: Run, workspace: str
) -> None:
    run.json("identities", "create", "--workspace", workspace, "customer-1")
    result = _create(
        run, workspace, "--key-permission", "keys.read", "--key-permission", "usage.read"
    )
    shown = run.json("identities", "show", "--workspace", workspace, "customer-1")
    assert result["identity_id"] == shown["identity_id"]
    store = run.store()
    try:
        record = store.get_portal_session(result["session_id"])
        assert record is not None
        assert record.identity_id == result["identity_id"]
        assert record.permissions == ("keys.read",)
        assert record.key_permissions == ("keys.read", "usage.read")
        # An exchange code, not a token: it starts the session once.
        now = result["code_expires_at"] - 1
        assert store.exchange_portal_code(digest(result["code"]), now=now) is not None
        assert store.exchange_portal_code(digest(result["code"]), now=now) is None
    finally:
        getattr(store, "close")()  # noqa: B009 - Store has no close(); every backend does


def test_the_session_keeps_the_rate_limit_it_is_given(run: Run, workspace: str) -> None:
    limited = _create(run, workspace, "--rate-limit", "3/60")
    unlimited = _create(run, workspace)
    assert (limited["rate_limit"], unlimited["rate_limit"]) == ("3/60", None)
    store = run.store()
    try:
        record = store.get_portal_session(limited["session_id"])
        assert record is not None
        assert str(record.rate_limit) == "3/60"
    finally:
        getattr(store, "close")()  # noqa: B009 - Store has no close(); every backend does


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--end-user", "customer-1"], "unrecognized arguments: --end-user"),
        (["--key-permission", "Keys.Read"], "--key-permission"),
        (["--base-url", "ftp://example.com"], "--base-url"),
        (["--base-url", "https://user:pw@example.com"], "--base-url"),
        (["--base-url", "https://example.com/?a=1"], "--base-url"),
        (["--base-url", "https://example.com:99999"], "--base-url"),
        (["--rate-limit", "3/0"], "--rate-limit"),
        (["--rate-limit", "\u0661\u0660/60"], "--rate-limit"),
    ],
)
def test_bad_options_are_usage_errors(
    run: Run, workspace: str, options: list[str], expected: str
) -> None:
    argv = ("portal", "create-session", "--workspace", workspace, "--identity", "c")
    line = run.fails(*argv, "--permission", "keys.read", *options, code=2)
    assert expected in line
    assert "pw" not in line  # a URL is never echoed: it may carry a password


def test_an_identity_is_required(run: Run, workspace: str) -> None:
    line = run.fails(
        "portal", "create-session", "--workspace", workspace, "--permission", "keys.read", code=2
    )
    assert "--identity" in line
