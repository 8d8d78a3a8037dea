"""Usage counting: the counter, its recorder, and every outcome through a wired app."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from authcore.adapters.starlette import install_auth, principal_from
from authcore.backends import Auth, connect
from authcore.backends.memory import MemoryStore
from authcore.backends.usage_recorder import UsageCounter, UsageRecorder
from authcore.errors import ConfigurationError, UnavailableError
from authcore.ratelimit import RateLimitPolicy
from authcore.records import OPERATOR_ACTOR, UsageCount
from authcore.testing import call_asgi

T0 = 1_800_000_000 - 1_800_000_000 % 3600


def test_the_counter_is_exact_under_threads() -> None:
    counter = UsageCounter()
    per_thread, threads = 20_000, 8

    def work(n: int) -> None:
        for i in range(per_thread):
            counter.count(("ws_1", f"key_{i % 3}", "allowed" if n % 2 else "rate_limited"))

    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    drained: dict[tuple[str, str, str], int] = {}
    for thread in pool:
        thread.start()
    while any(thread.is_alive() for thread in pool):  # drain while they count
        for key, value in counter.drain().items():
            drained[key] = drained.get(key, 0) + value
    for thread in pool:
        thread.join()
    for key, value in counter.drain().items():
        drained[key] = drained.get(key, 0) + value
    assert counter.drain() == {}
    assert sum(drained.values()) == per_thread * threads
    assert sum(v for (_, _, outcome), v in drained.items() if outcome == "allowed") == (
        per_thread * threads // 2
    )


def test_restored_counts_join_the_next_drain_and_nothing_is_counted_twice() -> None:
    counter = UsageCounter()
    for i in range(10):
        counter.count(("ws_1", f"key_{i % 2}", "allowed"))
    drained = counter.drain()
    assert drained == {("ws_1", "key_0", "allowed"): 5, ("ws_1", "key_1", "allowed"): 5}
    assert counter.drain() == {}
    counter.restore(drained)  # a flush that failed
    counter.count(("ws_1", "key_0", "allowed"))
    assert counter.drain() == {("ws_1", "key_0", "allowed"): 6, ("ws_1", "key_1", "allowed"): 5}
    assert counter.drain() == {}


class FlakyStore(MemoryStore):
    """A real memory store whose changes fail while ``down`` is set."""

    down = False

    def run(self, change):  # type: ignore[no-untyped-def]
        if self.down:
            raise UnavailableError("store down")
        return super().run(change)


def test_the_recorder_buckets_by_minute_keeps_failed_flushes_and_flushes_on_close() -> None:
    now = [float(T0 + 5)]
    store = FlakyStore()
    counter = UsageCounter()
    recorder = UsageRecorder(store, counter, clock=lambda: now[0])
    counter.count(("ws_1", "key_a", "allowed"))
    counter.count(("ws_1", "key_a", "allowed"))
    counter.count(("", "", "credential_invalid"))
    now[0] = T0 + 61
    assert recorder.flush() == 2
    store.down = True
    counter.count(("ws_1", "key_a", "rate_limited"))
    now[0] = T0 + 130
    assert recorder.flush() == 0  # failed: kept
    store.down = False
    counter.count(("ws_1", "key_a", "allowed"))
    recorder.close()  # the last flush
    minutes = store.usage("ws_1", since=T0, until=T0 + 300, granularity="minute")
    assert [(u.bucket, u.outcome, u.count) for u in minutes] == [
        (T0, "allowed", 2),
        (T0 + 120, "allowed", 1),
        (T0 + 120, "rate_limited", 1),
    ]
    unknown = store.usage("", since=T0, until=T0 + 300, granularity="hour")
    assert unknown == [UsageCount("", "", "credential_invalid", T0, 1, 3600)]
    assert store.last_used("ws_1") == {"key_a": T0 + 120}


@pytest.mark.parametrize("interval", [0, -1, 3601, float("nan"), True, "5"])
def test_a_bad_flush_interval_is_a_configuration_error(interval: object) -> None:
    with pytest.raises(ConfigurationError):
        UsageRecorder(MemoryStore(), UsageCounter(), interval=interval)  # type: ignore[arg-type]


def _app(auth: Auth) -> Starlette:
    async def principal(request: Request) -> PlainTextResponse:
        return PlainTextResponse(principal_from(request).workspace_id)

    app = Starlette(routes=[Route("/v1/principal", principal)])
    install_auth(app, auth)
    return app


def test_every_outcome_of_a_wired_app_is_recorded_in_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, authcore_config_file: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUTHCORE_CONFIG", str(authcore_config_file))
    auth = connect(f"sqlite:///{tmp_path / 'usage.db'}", usage_interval=3600)
    store = auth.store
    ws = store.create_workspace(
        "shop", rate_limit=RateLimitPolicy(3, 3600), now=T0, actor=OPERATOR_ACTOR
    )
    created = store.create_root_key(ws.id, permissions=[], now=T0, actor=OPERATOR_ACTOR)
    assert created is not None
    key, key_id = created.key.reveal(), created.record.id
    app = _app(auth)
    bearer = [("authorization", f"Bearer {key}")]
    statuses = [call_asgi(app, "GET", "/v1/principal", bearer).status for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    assert call_asgi(app, "GET", "/v1/principal", [("authorization", "Bearer ak_nope")]).status == (
        401
    )
    assert call_asgi(app, "GET", "/v1/principal").status == 401
    store.disable_workspace(ws.id, now=T0, actor=OPERATOR_ACTOR)
    assert call_asgi(app, "GET", "/v1/principal", bearer).status == 403
    auth.close()  # the last flush

    with connect(f"sqlite:///{tmp_path / 'usage.db'}", usage=False) as reader:
        # The counts are in the minutes they happened in (the recorder reads the real clock).
        since, now = time.time() - 86_400, time.time() + 86_400
        rows = reader.store.usage(
            ws.id, credential_id=key_id, since=since, until=now, granularity="day"
        )
        totals = {u.outcome: u.count for u in rows}
        assert totals == {"allowed": 3, "rate_limited": 2, "workspace_disabled": 1}
        unknown = reader.store.usage("", since=since, until=now, granularity="day")
        assert {u.outcome: u.count for u in unknown} == {
            "credential_invalid": 1,
            "credential_missing": 1,
        }
        assert list(reader.store.last_used(ws.id)) == [key_id]


class BlockingStore:
    """Runs changes on ``inner`` once ``release`` is set; says when a flush is waiting."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.waiting = threading.Event()
        self.release = threading.Event()

    def run(self, change: object) -> object:
        self.waiting.set()
        assert self.release.wait(timeout=30)
        return self.inner.run(change)  # type: ignore[attr-defined]


def test_a_flush_that_hangs_never_holds_up_a_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, authcore_config_file: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUTHCORE_CONFIG", str(authcore_config_file))
    auth = connect(f"sqlite:///{tmp_path / 'usage.db'}", usage_interval=0.05)
    store = auth.store
    ws = store.create_workspace("shop", now=T0, actor=OPERATOR_ACTOR)
    created = store.create_root_key(ws.id, permissions=[], now=T0, actor=OPERATOR_ACTOR)
    assert created is not None
    assert auth.recorder is not None
    blocking = BlockingStore(auth.recorder.store)
    auth.recorder.store = blocking
    app = _app(auth)
    bearer = [("authorization", f"Bearer {created.key.reveal()}")]
    try:
        auth.start()
        assert call_asgi(app, "GET", "/v1/principal", bearer).status == 200
        # The recorder's thread is now stuck inside a flush, holding its flush lock ...
        assert blocking.waiting.wait(timeout=30)
        # ... and requests go on being answered and counted.
        statuses = [call_asgi(app, "GET", "/v1/principal", bearer).status for _ in range(50)]
        assert statuses == [200] * 50
    finally:
        blocking.release.set()
        auth.close()
    with connect(f"sqlite:///{tmp_path / 'usage.db'}", usage=False) as reader:
        since, until = time.time() - 86_400, time.time() + 86_400
        rows = reader.store.usage(ws.id, since=since, until=until, granularity="day")
        assert {u.outcome: u.count for u in rows} == {"allowed": 51}
