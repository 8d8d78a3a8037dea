"""The management plans and changes, pure: no backend, no I/O.

The plans (:mod:`authcore.plans`) are the decisions; the changes (:mod:`authcore.changes`) are
the steps a backend runs. Both are driven here by hand, with records made up by Hypothesis.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from authcore import changes, plans, portal_sessions
from authcore.audit import (
    ACTION_KEY_REVOKE,
    ACTION_KEY_ROTATE,
    ACTION_PORTAL_SESSION_EXCHANGE,
    ACTION_WORKSPACE_DISABLE,
    ACTION_WORKSPACE_ENABLE,
)
from authcore.errors import ClientError, PermissionDeniedError
from authcore.permissions import PermissionSet
from authcore.principal import Principal, Source, Subject, principal_from_portal_session
from authcore.ratelimit import RateLimitPolicy
from authcore.records import (
    MAX_GRACE_SECONDS,
    OPERATOR_ACTOR,
    Actor,
    PortalExchangeRecord,
    PortalSessionRecord,
    RootKeyRecord,
    WorkspaceRecord,
)
from authcore.steps import Append, Change, Insert, Load, Step, Update, drive
from authcore.tokens import DEFAULT_PORTAL_TOKEN_PREFIX, DEFAULT_ROOT_KEY_PREFIX

NOW = 1_800_000_000
times = st.integers(NOW - 10_000, NOW + 10_000)
maybe_times = st.none() | times
ids = st.text("abcdef0123456789", min_size=4, max_size=8)
digests = st.binary(min_size=32, max_size=32)


@st.composite
def workspaces(draw: st.DrawFn) -> WorkspaceRecord:
    return WorkspaceRecord(
        id="ws_" + draw(ids), name="Acme", disabled=draw(st.booleans()), created_at=NOW - 10
    )


@st.composite
def keys(draw: st.DrawFn) -> RootKeyRecord:
    created = draw(times)
    return RootKeyRecord(
        id="key_" + draw(ids),
        workspace_id="ws_" + draw(ids),
        digest=draw(digests),
        start="ak_abc",
        name=draw(st.none() | st.just("ci")),
        permissions=draw(st.lists(st.sampled_from(["keys.read", "audit.*", "*"]), max_size=3)),
        created_at=created,
        expires_at=draw(maybe_times),
        revoked_at=draw(maybe_times),
    )


def _principal(workspace_id: str) -> Principal:
    return Principal(
        workspace_id=workspace_id,
        subject=Subject("user", "u1"),
        source=Source.JWT,
        permissions=PermissionSet(["*"]),
    )


def _run(change: Change[Any], loads: dict[tuple[str, object], object]) -> tuple[Any, list[Step]]:
    """Drive ``change`` by hand: loads answer from ``loads``, writes are recorded."""
    steps: list[Step] = []

    def perform(step: Step) -> object:
        steps.append(step)
        if isinstance(step, Load):
            return loads.get((step.table, step.key))
        return None

    return drive(change, perform), steps


@given(workspaces(), times)
def test_disable_then_enable_is_the_identity_and_each_is_audited(
    record: WorkspaceRecord, now: int
) -> None:
    enabled = attrs.evolve(record, disabled=False)
    disabled_plan = plans.plan_disable_workspace(enabled, now=now, actor=OPERATOR_ACTOR)
    assert disabled_plan is not None
    disabled, event = disabled_plan
    assert disabled.disabled
    assert event.action == ACTION_WORKSPACE_DISABLE
    assert plans.plan_disable_workspace(disabled, now=now, actor=OPERATOR_ACTOR) is None
    enable_plan = plans.plan_enable_workspace(disabled, now=now, actor=OPERATOR_ACTOR)
    assert enable_plan is not None
    assert enable_plan[0] == enabled
    assert enable_plan[1].action == ACTION_WORKSPACE_ENABLE
    assert enable_plan[1].workspace_id == record.id
    assert plans.plan_enable_workspace(enabled, now=now, actor=OPERATOR_ACTOR) is None


@given(workspaces(), keys(), times)
def test_a_principal_never_plans_a_change_in_another_workspace(
    workspace: WorkspaceRecord, key: RootKeyRecord, now: int
) -> None:
    intruder = Actor(_principal("ws_elsewhere"))
    attempts: list[Callable[[], object]] = [
        lambda: plans.plan_disable_workspace(workspace, now=now, actor=intruder),
        lambda: plans.plan_enable_workspace(workspace, now=now, actor=intruder),
        lambda: plans.plan_set_rate_limit(workspace, None, now=now, actor=intruder),
        lambda: plans.plan_link_org(workspace, "org_x", now=now, actor=intruder),
        lambda: plans.plan_revoke_root_key(key, now=now, actor=intruder),
        lambda: plans.plan_rotate_root_key(
            key, grace_seconds=0, now=now, actor=intruder, prefix=DEFAULT_ROOT_KEY_PREFIX
        ),
    ]
    for attempt in attempts:
        with pytest.raises(PermissionDeniedError):
            attempt()


@given(keys(), times)
def test_revocation_sets_only_revoked_at_and_the_first_one_stays(
    key: RootKeyRecord, now: int
) -> None:
    plan = plans.plan_revoke_root_key(key, now=now, actor=OPERATOR_ACTOR)
    if key.revoked_at is not None:
        assert plan is None
        return
    assert plan is not None
    updated, event = plan
    assert updated == attrs.evolve(key, revoked_at=now)
    assert event.action == ACTION_KEY_REVOKE
    assert [target.id for target in event.targets] == [key.id]
    assert event.workspace_id == key.workspace_id


@given(keys(), st.integers(0, MAX_GRACE_SECONDS), times)
def test_rotation_never_extends_a_key_and_keeps_everything_but_the_secret(
    key: RootKeyRecord, grace: int, now: int
) -> None:
    plan = plans.plan_rotate_root_key(
        key, grace_seconds=grace, now=now, actor=OPERATOR_ACTOR, prefix=DEFAULT_ROOT_KEY_PREFIX
    )
    if key.revoked_at is not None or (key.expires_at is not None and now >= key.expires_at):
        assert plan is None
        return
    assert plan is not None
    old, new, event = plan
    assert old.expires_at is not None
    assert old.expires_at <= now + grace
    if key.expires_at is not None:
        assert old.expires_at <= key.expires_at
    assert attrs.evolve(old, expires_at=key.expires_at) == key
    record = new.record
    assert (record.workspace_id, record.permissions, record.name, record.expires_at) == (
        key.workspace_id,
        key.permissions,
        key.name,
        key.expires_at,
    )
    assert record.id != key.id
    assert record.digest != key.digest
    assert event.action == ACTION_KEY_ROTATE
    assert [target.id for target in event.targets] == [key.id, record.id]


@given(
    used_at=maybe_times,
    code_expires=times,
    session_present=st.booleans(),
    session_revoked=maybe_times,
    session_expires=times,
    now=times,
)
def test_an_exchange_works_exactly_when_code_and_session_are_live(  # noqa: PLR0917
    used_at: int | None,
    code_expires: int,
    session_present: bool,
    session_revoked: int | None,
    session_expires: int,
    now: int,
) -> None:
    session = PortalSessionRecord(
        id="ps_1",
        workspace_id="ws_1",
        identity_id="idt_customer42",
        digest=b"\x01" * 32,
        permissions=(),
        created_at=NOW - 100,
        expires_at=session_expires,
        revoked_at=session_revoked,
    )
    exchange = PortalExchangeRecord(
        digest=b"\x02" * 32,
        session_id="ps_1",
        created_at=NOW - 100,
        expires_at=code_expires,
        used_at=used_at,
    )
    plan = portal_sessions.plan_exchange_portal_code(
        exchange,
        session if session_present else None,
        now=now,
        prefix=DEFAULT_PORTAL_TOKEN_PREFIX,
    )
    live = (
        used_at is None
        and now < code_expires
        and session_present
        and session_revoked is None
        and now < session_expires
    )
    assert (plan is not None) == live
    if plan is not None:
        used, started, event = plan
        assert used == attrs.evolve(exchange, used_at=now)
        assert started.record == attrs.evolve(session, digest=started.record.digest)
        assert started.record.digest != session.digest
        assert event.action == ACTION_PORTAL_SESSION_EXCHANGE
        assert event.actor == Subject("identity", "idt_customer42")


@given(keys(), times)
def test_the_revoke_change_locks_then_writes_the_plan_and_its_event(
    key: RootKeyRecord, now: int
) -> None:
    change = changes.revoke_root_key(key.id, now=now, actor=OPERATOR_ACTOR)
    assert change.writes
    result, steps = _run(change, {("root_key", key.id): key})
    assert steps[0] == Load("root_key", key.id, lock=True)
    if key.revoked_at is not None:
        assert (result, steps[1:]) == (key, [])
        return
    assert result == attrs.evolve(key, revoked_at=now)
    assert [type(step) for step in steps[1:]] == [Update, Append]
    update, append = steps[1], steps[2]
    assert isinstance(update, Update)
    assert update.record == result
    assert isinstance(append, Append)
    assert append.event.action == ACTION_KEY_REVOKE


def test_a_change_on_an_unknown_id_writes_nothing() -> None:
    for change in (
        changes.revoke_root_key("key_nope", now=NOW, actor=OPERATOR_ACTOR),
        changes.disable_workspace("ws_nope", now=NOW, actor=OPERATOR_ACTOR),
        changes.create_root_key(
            "ws_nope", permissions=[], now=NOW, actor=OPERATOR_ACTOR, prefix="ak_"
        ),
        changes.exchange_portal_code(b"\x00" * 32, now=NOW, prefix="ps_"),
    ):
        result, steps = _run(change, {})
        assert result is None
        assert all(isinstance(step, Load) for step in steps), change.name


def test_create_workspace_validates_before_anything_runs() -> None:
    # The arguments are checked when the change is made, before a backend sees a step.
    with pytest.raises(ClientError):
        changes.create_workspace("", now=NOW, actor=OPERATOR_ACTOR)
    with pytest.raises(ClientError):
        changes.list_audit("ws_1", limit=0)
    change = changes.create_workspace("Acme", org_id="org_1", now=NOW, actor=OPERATOR_ACTOR)
    result, steps = _run(change, {})
    assert steps == [Insert(result, conflict=changes.ORG_TAKEN), steps[1]]
    assert isinstance(steps[1], Append)
    assert steps[1].event.workspace_id == result.id


# --- a credential hands out no more quota than it holds (issue 26, finding 2) ---------------


def _limited_actor(policy: RateLimitPolicy | None) -> Actor:
    principal = Principal(
        workspace_id="ws_1",
        subject=Subject("root_key", "key_maker"),
        source=Source.ROOT_KEY,
        permissions=PermissionSet(["*"]),
        rate_limit=policy,
    )
    return Actor(principal)


def _child(actor: Actor, rate_limit: RateLimitPolicy | None) -> RateLimitPolicy | None:
    new, _ = plans.plan_create_root_key(
        "ws_1", permissions=[], name=None, expires_at=None, now=1_800_000_000, actor=actor,
        prefix="ak_", rate_limit=rate_limit,
    )  # fmt: skip
    return new.record.rate_limit


def test_a_key_made_by_a_limited_key_inherits_its_limit() -> None:
    assert _child(_limited_actor(RateLimitPolicy(5, 60)), None) == RateLimitPolicy(5, 60)


@pytest.mark.parametrize(
    "looser", [RateLimitPolicy(6, 60), RateLimitPolicy(5, 59), RateLimitPolicy(1_000_000, 1)]
)
def test_a_limited_key_cannot_give_a_looser_limit(looser: RateLimitPolicy) -> None:
    with pytest.raises(PermissionDeniedError):
        _child(_limited_actor(RateLimitPolicy(5, 60)), looser)


@pytest.mark.parametrize("tighter", [RateLimitPolicy(5, 60), RateLimitPolicy(1, 60)])
def test_a_limited_key_may_give_a_tighter_limit(tighter: RateLimitPolicy) -> None:
    assert _child(_limited_actor(RateLimitPolicy(5, 60)), tighter) == tighter


def test_an_unlimited_maker_or_the_operator_gives_what_it_is_asked() -> None:
    assert _child(_limited_actor(None), RateLimitPolicy(1_000_000, 1)) == RateLimitPolicy(
        1_000_000, 1
    )
    assert _child(Actor(), None) is None


def test_a_limited_key_cannot_clear_or_loosen_another_keys_limit() -> None:
    record, _ = plans.plan_create_root_key(
        "ws_1", permissions=[], name=None, expires_at=None, now=1_800_000_000,
        actor=Actor(), prefix="ak_", rate_limit=RateLimitPolicy(2, 60),
    )  # fmt: skip
    actor = _limited_actor(RateLimitPolicy(5, 60))
    with pytest.raises(PermissionDeniedError):
        plans.plan_set_key_rate_limit(
            record.record, RateLimitPolicy(10, 60), now=1_800_000_001, actor=actor
        )
    cleared = plans.plan_set_key_rate_limit(record.record, None, now=1_800_000_001, actor=actor)
    assert cleared is not None
    assert cleared[0].rate_limit == RateLimitPolicy(5, 60)  # "none" means the maker's own


def _session_limit(actor: Actor, rate_limit: RateLimitPolicy | None) -> RateLimitPolicy | None:
    # Both ways a portal session is made: with its token at once, and behind a one-time code.
    made, event = portal_sessions.plan_create_portal_session(
        "ws_1", "idt_1", permissions=["keys.read"], ttl=60, now=NOW, actor=actor,
        prefix="ps_", rate_limit=rate_limit,
    )  # fmt: skip
    started, _, started_event = portal_sessions.plan_create_portal_exchange(
        "ws_1", "idt_1", permissions=["keys.read"], ttl=60, now=NOW, actor=actor,
        rate_limit=rate_limit,
    )  # fmt: skip
    assert made.record.rate_limit == started.record.rate_limit
    assert event.context == started_event.context
    granted = made.record.rate_limit
    assert event.context == ({} if granted is None else {"rate_limit": str(granted)})
    return granted


def test_a_portal_session_made_by_a_limited_key_inherits_its_limit() -> None:
    assert _session_limit(_limited_actor(RateLimitPolicy(3, 60)), None) == RateLimitPolicy(3, 60)


@pytest.mark.parametrize("looser", [RateLimitPolicy(4, 60), RateLimitPolicy(3, 59)])
def test_a_limited_key_cannot_make_a_portal_session_with_a_looser_limit(
    looser: RateLimitPolicy,
) -> None:
    with pytest.raises(PermissionDeniedError):
        _session_limit(_limited_actor(RateLimitPolicy(3, 60)), looser)


def test_a_limited_key_may_make_a_portal_session_with_a_tighter_limit() -> None:
    tighter = RateLimitPolicy(1, 60)
    assert _session_limit(_limited_actor(RateLimitPolicy(3, 60)), tighter) == tighter


def test_an_unlimited_maker_makes_a_portal_session_without_a_limit_unless_asked() -> None:
    assert _session_limit(_limited_actor(None), None) is None
    assert _session_limit(Actor(), RateLimitPolicy(7, 60)) == RateLimitPolicy(7, 60)


def test_a_key_made_in_the_portal_gets_at_most_the_sessions_limit() -> None:
    made, _ = portal_sessions.plan_create_portal_session(
        "ws_1", "idt_1", permissions=["keys.create"], ttl=60, now=NOW,
        actor=_limited_actor(RateLimitPolicy(3, 60)), prefix="ps_",
    )  # fmt: skip
    session = principal_from_portal_session(made.record, made.record.digest, NOW)
    assert session.rate_limit == RateLimitPolicy(3, 60)
    assert _child(Actor(session), None) == RateLimitPolicy(3, 60)
    with pytest.raises(PermissionDeniedError):
        _child(Actor(session), RateLimitPolicy(4, 60))


@given(st.integers(1, 1000), st.integers(1, 3600), st.integers(1, 1000), st.integers(1, 3600))
def test_covers_means_no_larger_burst_and_no_faster_rate(a: int, b: int, c: int, d: int) -> None:
    mine, other = RateLimitPolicy(a, b), RateLimitPolicy(c, d)
    # The same question asked with exact fractions: burst, then steady rate.
    assert mine.covers(other) == (c <= a and Fraction(c, d) <= Fraction(a, b))
    assert mine.covers(mine)
