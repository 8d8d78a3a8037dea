"""The rate-limit fields: the draft's two (draft-ietf-httpapi-ratelimit-headers-11), the legacy
three, both or none; one item per level, parseable as RFC 9651 lists."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from authcore.errors import ConfigurationError
from authcore.flow import AuthSettings
from authcore.ratelimit import (
    RateLimitDecision,
    RateLimitPolicy,
    identity_bucket,
    key_bucket,
    session_bucket,
)
from authcore.ratelimit_fields import (
    LimitFields,
    RateLimitHeaders,
    level_name,
    rate_limit_headers_option,
)

WORKSPACE = RateLimitPolicy(600, 60)
KEY = RateLimitPolicy(10, 1)
IDENTITY = RateLimitPolicy(100, 3600)
LEVELS = (
    (key_bucket("ws_1", "key_1"), KEY),
    (identity_bucket("ws_1", "idn_1"), IDENTITY),
    ("ws_1", WORKSPACE),
)


def _decision(remaining: int, reset: int, limit: int = 600) -> RateLimitDecision:
    return RateLimitDecision(True, limit, remaining, reset, 0)


# RFC 9651 §3.1 / §3.1.2 / §3.3.3, the subset the fields use: a list of items whose bare item
# is a String, with parameters whose values are Integers. A strict reader, independent of the
# writer, so the writer cannot drift from the grammar unnoticed.
_KEY = r"[a-z*][a-z0-9_.*-]*"
_ITEM = re.compile(rf'"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"((?:;{_KEY}=-?[0-9]{{1,15}})*)')
_PARAM = re.compile(rf";({_KEY})=(-?[0-9]{{1,15}})")


def parse_list(value: str) -> list[tuple[str, dict[str, int]]]:
    members = []
    rest = value
    while True:
        match = _ITEM.match(rest)
        assert match is not None, value
        name = re.sub(r"\\(.)", r"\1", match.group(1))
        members.append((name, {k: int(v) for k, v in _PARAM.findall(match.group(2))}))
        rest = rest[match.end() :].lstrip(" \t")
        if not rest:
            return members
        assert rest[0] == ",", value
        rest = rest[1:].lstrip(" \t")
        assert rest, value  # no trailing comma


def test_one_workspace_level_sends_the_drafts_two_fields() -> None:
    fields = LimitFields.for_levels(RateLimitHeaders.DRAFT, (("ws_1", WORKSPACE),))
    assert fields is not None
    assert fields.headers(_decision(42, 17)) == [
        ("ratelimit-policy", '"workspace";q=600;w=60'),
        ("ratelimit", '"workspace";r=42;t=17'),
    ]


def test_every_level_is_one_named_item_most_specific_first() -> None:
    fields = LimitFields.for_levels(RateLimitHeaders.DRAFT, LEVELS)
    assert fields is not None
    decisions = (_decision(3, 1, 10), _decision(90, 400, 100), _decision(500, 12))
    headers = dict(fields.headers(decisions[0], decisions))
    assert parse_list(headers["ratelimit-policy"]) == [
        ("key", {"q": 10, "w": 1}),
        ("identity", {"q": 100, "w": 3600}),
        ("workspace", {"q": 600, "w": 60}),
    ]
    assert parse_list(headers["ratelimit"]) == [
        ("key", {"r": 3, "t": 1}),
        ("identity", {"r": 90, "t": 400}),
        ("workspace", {"r": 500, "t": 12}),
    ]


def test_legacy_describes_the_deciding_decision_only() -> None:
    fields = LimitFields.for_levels(RateLimitHeaders.LEGACY, LEVELS)
    assert fields is not None
    decisions = (_decision(3, 1, 10), _decision(90, 400, 100), _decision(500, 12))
    assert fields.headers(decisions[0], decisions) == [
        ("ratelimit-limit", "10"),
        ("ratelimit-remaining", "3"),
        ("ratelimit-reset", "1"),
    ]


def test_both_sends_five_fields_and_none_sends_nothing() -> None:
    both = LimitFields.for_levels(RateLimitHeaders.BOTH, (("ws_1", WORKSPACE),))
    none = LimitFields.for_levels(RateLimitHeaders.NONE, (("ws_1", WORKSPACE),))
    assert both is not None
    assert none is not None
    assert [name for name, _ in both.headers(_decision(1, 2))] == [
        "ratelimit-policy",
        "ratelimit",
        "ratelimit-limit",
        "ratelimit-remaining",
        "ratelimit-reset",
    ]
    assert none.headers(_decision(1, 2)) == []
    assert none.header_bytes(_decision(1, 2)) == []


def test_no_levels_no_fields() -> None:
    assert LimitFields.for_levels(RateLimitHeaders.DRAFT, ()) is None


def test_the_policy_field_is_made_once_not_per_request() -> None:
    fields = LimitFields.for_levels(RateLimitHeaders.DRAFT, (("ws_1", WORKSPACE),))
    assert fields is not None
    first = fields.header_bytes(_decision(5, 1))[0]
    second = fields.header_bytes(_decision(4, 2))[0]
    assert first is second
    assert WORKSPACE.field_params == b";q=600;w=60"


def test_a_lone_decision_is_named_default_without_a_window() -> None:
    fields = LimitFields.for_decision(RateLimitDecision(False, 10, 0, 30, 6))
    assert fields.headers(RateLimitDecision(False, 10, 0, 30, 6)) == [
        ("ratelimit-policy", '"default";q=10'),
        ("ratelimit", '"default";r=0;t=30'),
    ]


def test_level_names_follow_the_buckets() -> None:
    assert level_name("ws_1") == "workspace"
    assert level_name(key_bucket("ws_1", "key_1")) == "key"
    assert level_name(identity_bucket("ws_1", "idn_1")) == "identity"
    assert level_name(session_bucket("ws_1", "ps_1")) == "session"


@pytest.mark.parametrize("name", ["draft", "legacy", "both", "none"])
def test_the_option_reads_its_names(name: str) -> None:
    assert rate_limit_headers_option(name).value == name
    assert AuthSettings(rate_limit_headers=name).rate_limit_headers.value == name


@pytest.mark.parametrize("bad", ["Draft", "", "ietf", 1, None, "x" * 100])
def test_an_unknown_option_is_a_configuration_error(bad: object) -> None:
    with pytest.raises(ConfigurationError):
        rate_limit_headers_option(bad)


def test_the_default_is_the_draft() -> None:
    assert AuthSettings().rate_limit_headers is RateLimitHeaders.DRAFT


@given(
    limits=st.lists(
        st.tuples(st.integers(1, 1_000_000), st.integers(1, 86_400)), min_size=1, max_size=3
    ),
    state=st.lists(st.tuples(st.integers(0, 999_999), st.integers(0, 86_401)), min_size=3),
)
def test_the_fields_parse_back_to_the_levels_and_decisions(
    limits: list[tuple[int, int]], state: list[tuple[int, int]]
) -> None:
    kinds = [key_bucket("ws_1", "k"), identity_bucket("ws_1", "i"), "ws_1"][-len(limits) :]
    levels = tuple(
        (bucket, RateLimitPolicy(limit, period))
        for bucket, (limit, period) in zip(kinds, limits, strict=True)
    )
    fields = LimitFields.for_levels(RateLimitHeaders.DRAFT, levels)
    assert fields is not None
    decisions = tuple(
        RateLimitDecision(True, policy.limit, remaining, reset, 0)
        for (_, policy), (remaining, reset) in zip(levels, state, strict=False)
    )
    many = decisions if len(decisions) > 1 else ()
    headers = dict(fields.headers(decisions[0], many))
    policies = parse_list(headers["ratelimit-policy"])
    assert [name for name, _ in policies] == [level_name(bucket) for bucket, _ in levels]
    assert [(p["q"], p["w"]) for _, p in policies] == limits
    current = parse_list(headers["ratelimit"])
    assert [(c["r"], c["t"]) for _, c in current] == [(d[2], d[3]) for d in decisions]
    as_bytes = fields.header_bytes(decisions[0], many)
    assert [(n.decode(), v.decode()) for n, v in as_bytes] == list(headers.items())
