"""Audit events name the principal's subject as actor and its workspace as scope."""

from __future__ import annotations

import pytest

from authcore.audit import OPERATOR, AuditTarget, audit_event
from authcore.permissions import PermissionSet
from authcore.principal import Principal, Source, Subject
from authcore.testing import RecordingAuditSink

PRINCIPAL = Principal("ws_1", Subject("user", "u_1", "Ada"), Source.JWT, PermissionSet())


def test_event_takes_actor_and_workspace_from_principal() -> None:
    target = AuditTarget("root_key", "key_1", "deploy")
    event = audit_event(PRINCIPAL, "key.create", [target], now=1_800_000_000.7, request_id="r1")
    assert event.actor == PRINCIPAL.subject
    assert event.workspace_id == "ws_1"
    assert event.targets == (target,)
    assert event.time == 1_800_000_000
    assert event.source == "jwt"
    assert event.id.startswith("evt_")


def test_operator_events_need_a_workspace() -> None:
    event = audit_event(None, "workspace.create", [], now=1.0, workspace_id="ws_9")
    assert event.actor == OPERATOR
    with pytest.raises(ValueError, match="principal or a workspace"):
        audit_event(None, "workspace.create", [], now=1.0)


def test_event_to_dict() -> None:
    event = audit_event(PRINCIPAL, "key.revoke", [AuditTarget("root_key", "k")], now=5)
    data = event.to_dict()
    assert data["actor"] == {"type": "user", "id": "u_1", "name": "Ada"}
    assert data["targets"] == [{"type": "root_key", "id": "k"}]
    assert data["action"] == "key.revoke"
    assert data["time"] == 5


async def test_recording_sink_keeps_events_in_order() -> None:
    sink = RecordingAuditSink()
    first = audit_event(PRINCIPAL, "a.one", [], now=1)
    second = audit_event(PRINCIPAL, "a.two", [], now=2)
    sink.record(first)
    await sink.arecord(second)
    assert sink.events == [first, second]
