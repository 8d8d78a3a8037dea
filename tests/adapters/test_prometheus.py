"""The Prometheus exporter on a fresh ``CollectorRegistry``, fed by a real gate and adapter."""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Iterable
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from authcore.adapters.prometheus import AUTH_BUCKETS, PrometheusMetrics, metrics_app
from authcore.adapters.wsgi import AuthMiddleware
from authcore.backends.cache import CachedStore
from authcore.binding import principal_from
from authcore.flow import AsyncBackends, Authenticator, AuthSettings, Backends
from authcore.ratelimit import RateLimitPolicy
from authcore.testing import (
    MemoryRateLimiter,
    MemoryStore,
    SettableClock,
    TestResponse,
    call_wsgi,
    issue_root_key,
    make_workspace,
)
from tests.adapters.world import UNKNOWN_KEY, DownStore

NOW = 1_800_000_000.0
#: The fake timer's step: every timed span is exactly this long.
STEP = 0.0003


class Ticking:
    """A timer that advances by STEP on every read (deterministic durations, no clock)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += STEP
        return self.now


def _app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [("content-type", "text/plain")])
    if environ["PATH_INFO"] == "/health":
        return [b"ok"]
    return [principal_from(environ).workspace_id.encode()]


class Service:
    """A WSGI app behind the middleware, its keys, and an exporter on its own registry."""

    def __init__(self, *, workspace_label: bool = False) -> None:
        clock = SettableClock(NOW)
        store = MemoryStore()
        make_workspace(store, "ws_a", rate_limit=RateLimitPolicy(2, 60))
        make_workspace(store, "ws_b")
        self.key_a = issue_root_key(store, "ws_a", ["keys.read"], now=NOW)[1].reveal()
        self.key_b = issue_root_key(store, "ws_b", ["keys.read"], now=NOW)[1].reveal()
        cached = CachedStore(store, clock=clock)
        limiter = MemoryRateLimiter(clock_us=clock.us)
        api = Authenticator(
            AuthSettings(),
            clock=clock,
            backends=Backends(cached, limiter),
            abackends=AsyncBackends(cached, limiter),
        )
        down = Authenticator(AuthSettings(), clock=clock, backends=Backends(DownStore(), limiter))
        self.registry = CollectorRegistry()
        self.exporter = PrometheusMetrics(self.registry, workspace_label=workspace_label)
        self.app = AuthMiddleware(
            _app,
            api,
            groups={"/down/": down},
            public_paths=["/health"],
            observer=self.exporter.observer,
            metrics=self.exporter.metrics,
            timer=Ticking(),
        )

    def get(self, path: str, key: str | None = None) -> TestResponse:
        headers = [] if key is None else [("Authorization", f"Bearer {key}")]
        return call_wsgi(self.app, "GET", path, headers)

    def value(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)


@pytest.fixture
def service() -> Service:
    return Service()


def test_outcomes_are_counted_by_code_and_source(service: Service) -> None:
    service.get("/keys", service.key_a)
    service.get("/keys", service.key_b)
    service.get("/keys")
    service.get("/keys", UNKNOWN_KEY)
    service.get("/health")
    value = service.value
    assert value("authcore_auth_outcomes_total", code="admitted", source="root_key") == 2
    assert value("authcore_auth_outcomes_total", code="credential_missing", source="") == 1
    assert value("authcore_auth_outcomes_total", code="credential_invalid", source="root_key") == 1
    # The public path is no auth step.
    total = sum(
        sample.value
        for family in service.registry.collect()
        if family.name == "authcore_auth_outcomes"
        for sample in family.samples
        if sample.name.endswith("_total")
    )
    assert total == 4


def test_rate_limit_decisions_are_counted_allowed_and_limited(service: Service) -> None:
    for _ in range(3):
        service.get("/keys", service.key_a)  # ws_a: 2 per minute
    assert service.get("/keys", service.key_a).status == 429
    assert service.value("authcore_rate_limit_decisions_total", decision="allowed") == 2
    assert service.value("authcore_rate_limit_decisions_total", decision="limited") == 2
    assert (
        service.value("authcore_auth_outcomes_total", code="rate_limited", source="root_key") == 2
    )


def test_cache_hits_and_misses_count_replays_and_full_flows(service: Service) -> None:
    service.get("/keys", service.key_b)
    service.get("/keys", service.key_b)
    service.get("/keys", service.key_b)
    service.get("/keys", service.key_a)
    assert service.value("authcore_verified_results_total", cache="miss") == 2
    assert service.value("authcore_verified_results_total", cache="hit") == 2


def test_a_down_store_counts_as_a_backend_failure(service: Service) -> None:
    assert service.get("/down/keys", service.key_a).status == 503
    assert service.value("authcore_backend_unavailable_total", source="root_key") == 1
    outcome = ("authcore_auth_outcomes_total", "service_unavailable")
    assert service.value(outcome[0], code=outcome[1], source="root_key") == 1
    assert service.value("authcore_verified_results_total", cache="miss") is None


def test_the_auth_step_latency_histogram(service: Service) -> None:
    service.get("/keys", service.key_b)
    service.get("/keys")
    for result in ("admitted", "refused"):
        assert service.value("authcore_auth_seconds_count", result=result) == 1
        # Each auth step is two reads of the ticking timer apart: exactly STEP.
        assert service.value("authcore_auth_seconds_sum", result=result) == pytest.approx(STEP)
        assert service.value("authcore_auth_seconds_bucket", result=result, le="0.0001") == 0
        assert service.value("authcore_auth_seconds_bucket", result=result, le="0.0005") == 1
    assert tuple(sorted(AUTH_BUCKETS)) == AUTH_BUCKETS


def test_requests_are_counted_by_status(service: Service) -> None:
    service.get("/keys", service.key_b)
    service.get("/health")
    service.get("/keys")
    assert service.value("authcore_requests_total", status="200") == 2
    assert service.value("authcore_requests_total", status="401") == 1
    assert service.value("authcore_request_seconds_count") == 3


def test_no_workspace_label_unless_asked() -> None:
    plain, labelled = Service(), Service(workspace_label=True)
    for service in (plain, labelled):
        service.get("/keys", service.key_b)
        service.get("/keys")
    names = {"authcore_auth_outcomes", "authcore_rate_limit_decisions", "authcore_requests"}
    for family in plain.registry.collect():
        for sample in family.samples:
            assert "workspace" not in sample.labels, sample
    for family in labelled.registry.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                assert ("workspace" in sample.labels) == (family.name in names), sample
    value = labelled.value
    assert value(
        "authcore_auth_outcomes_total", code="admitted", source="root_key", workspace="ws_b"
    )
    assert value("authcore_rate_limit_decisions_total", decision="allowed", workspace="ws_b") == 1
    assert value("authcore_requests_total", status="401", workspace="") == 1


def test_exporters_on_separate_registries_are_independent() -> None:
    first, second = Service(), Service()
    first.get("/keys", first.key_b)
    assert first.value("authcore_requests_total", status="200") == 1
    assert second.value("authcore_requests_total", status="200") is None
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        PrometheusMetrics(first.registry)


# --- the /metrics app -----------------------------------------------------------------------


async def test_metrics_app_serves_the_registry_in_either_format(service: Service) -> None:
    service.get("/keys", service.key_b)
    transport = httpx.ASGITransport(app=metrics_app(service.registry))
    async with httpx.AsyncClient(transport=transport, base_url="http://metrics") as client:
        text = await client.get("/metrics")
        openmetrics = await client.get(
            "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
        )
        head = await client.head("/metrics")
        other = await client.get("/")
        post = await client.post("/metrics")
    assert text.status_code == 200
    assert text.headers["content-type"].startswith("text/plain; version=")
    families = {family.name: family for family in text_string_to_metric_families(text.text)}
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for sample in families["authcore_auth_outcomes"].samples
    }
    key = ("authcore_auth_outcomes_total", (("code", "admitted"), ("source", "root_key")))
    assert samples[key] == 1
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    assert openmetrics.text.endswith("# EOF\n")
    assert head.status_code == 200
    assert head.content == b""
    assert other.status_code == 404
    assert post.status_code == 405
    assert post.headers["allow"] == "GET, HEAD"


async def test_metrics_app_answers_lifespan_and_refuses_websockets() -> None:
    app = metrics_app(CollectorRegistry())
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> Any:
        return incoming.pop(0)

    async def send(message: Any) -> None:
        sent.append(message)

    await app({"type": "lifespan"}, receive, send)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    with pytest.raises(ValueError, match="HTTP only"):
        await app({"type": "websocket"}, receive, send)


def test_a_missing_prometheus_client_is_a_clear_import_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    monkeypatch.delitem(sys.modules, "authcore.adapters.prometheus")
    with pytest.raises(ImportError, match=re.escape("pip install -e '.[prometheus]'")):
        importlib.import_module("authcore.adapters.prometheus")
