"""Prometheus metrics from the request gate's hooks, on ``prometheus_client``.

:class:`PrometheusMetrics` gives any adapter an ``observer`` (every auth step's
:class:`~authcore.gate.AuthOutcome`) and a ``metrics`` hook (every request's status and
duration), and keeps the counts on a ``prometheus_client`` registry::

    exporter = PrometheusMetrics()  # the default registry; tests pass a CollectorRegistry
    app = AuthMiddleware(app, api, observer=exporter.observer, metrics=exporter.metrics)

==========================================  =========  ==========================================
metric                                      type       labels
==========================================  =========  ==========================================
``authcore_auth_outcomes_total``            counter    ``code`` (``admitted`` or the refusal's
                                                       code), ``source`` (``root_key``,
                                                       ``portal_session``, ``jwt``, or ``""``)
``authcore_rate_limit_decisions_total``     counter    ``decision``: ``allowed`` / ``limited``
``authcore_verified_results_total``         counter    ``cache``: ``hit`` (replayed from the
                                                       verified-result cache) / ``miss`` (the
                                                       full flow); admitted requests only
``authcore_backend_unavailable_total``      counter    ``source``: auth steps answered 503
                                                       because a store or limiter was down
``authcore_auth_seconds``                   histogram  ``result``: ``admitted`` / ``refused``
``authcore_requests_total``                 counter    ``status``
``authcore_request_seconds``                histogram  (none)
==========================================  =========  ==========================================

Cardinality: codes, sources, decisions and statuses are small fixed sets. Workspace ids are
not (one series per workspace, for ever), so the ``workspace`` label is added only with
``workspace_label=True``, and then only to the three counters that say who (outcomes,
rate-limit decisions, requests); never to a histogram, whose every bucket would multiply it.

:func:`metrics_app` is a small ASGI app serving ``GET /metrics`` from a registry (what
``authcore serve --metrics-port`` runs on its own port).
"""

from __future__ import annotations

from authcore.adapters._common import missing_extra

try:
    import prometheus_client  # noqa: F401 - the import guard: the clear error comes from here
except ImportError as exc:
    raise ImportError(
        missing_extra("authcore.adapters.prometheus", "prometheus_client", "prometheus"),
        name=exc.name,
    ) from exc

from collections.abc import Sequence
from typing import Any, Final

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import choose_encoder

from authcore.adapters.asgi import ASGIApp, Receive, Scope, Send
from authcore.errors import UnavailableError
from authcore.gate import AuthOutcome

__all__ = ["AUTH_BUCKETS", "PrometheusMetrics", "metrics_app"]

#: Histogram buckets for the auth step, in seconds: a replay takes microseconds, a store
#: lookup milliseconds, an outage up to the store's timeout.
AUTH_BUCKETS: Final = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip

_ADMITTED: Final = "admitted"
_UNAVAILABLE: Final = UnavailableError.code


class _Children:
    """A labelled metric's children by label values, looked up without prometheus's lock."""

    __slots__ = ("_children", "_metric")

    def __init__(self, metric: Counter | Histogram) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], Any] = {}

    def __call__(self, *values: str) -> Any:
        child = self._children.get(values)
        if child is None:
            # labels() is idempotent: two threads racing here get the same child.
            child = self._children[values] = self._metric.labels(*values)
        return child


class PrometheusMetrics:
    """The gate's hooks as Prometheus metrics (see the module docstring for the metrics).

    ``registry`` None means prometheus_client's default registry (one exporter per process
    there); ``workspace_label`` adds the workspace id as a label where the module docstring
    says; ``namespace`` prefixes every name.

    Raises:
        ValueError: the registry already has these metrics (prometheus_client's own error).
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        workspace_label: bool = False,
        namespace: str = "authcore",
        auth_buckets: Sequence[float] = AUTH_BUCKETS,
    ) -> None:
        registry = REGISTRY if registry is None else registry
        self.registry = registry
        self.workspace_label = workspace_label
        who = ("workspace",) if workspace_label else ()

        def counter(name: str, text: str, labels: Sequence[str]) -> _Children:
            metric = Counter(name, text, labels, namespace=namespace, registry=registry)
            return _Children(metric)

        self._outcomes = counter(
            "auth_outcomes",
            "Auth steps by outcome code and credential source.",
            ("code", "source", *who),
        )
        self._decisions = counter(
            "rate_limit_decisions", "Rate-limit decisions taken by the gate.", ("decision", *who)
        )
        self._verified = counter(
            "verified_results",
            "Admitted requests by verified-result cache: hit (replayed) or miss (full flow).",
            ("cache",),
        )
        self._unavailable = counter(
            "backend_unavailable",
            "Auth steps answered 503 because a store or limiter was unavailable.",
            ("source",),
        )
        self._requests = counter("requests", "Requests by response status.", ("status", *who))
        self._auth_seconds = _Children(
            Histogram(
                "auth_seconds",
                "Time of the auth step (find, verify, normalize, rate-limit).",
                ("result",),
                namespace=namespace,
                registry=registry,
                buckets=tuple(auth_buckets),
            )
        )
        self._request_seconds = Histogram(
            "request_seconds",
            "Duration of requests through the adapter.",
            namespace=namespace,
            registry=registry,
        )

    def observer(self, outcome: AuthOutcome, /) -> None:
        """The gate's ``observer`` hook: count one auth step."""
        who = (outcome.workspace_id,) if self.workspace_label else ()
        code = outcome.code
        self._outcomes(code, outcome.source, *who).inc()
        decision = outcome.decision
        if decision is not None:
            self._decisions("allowed" if decision.allowed else "limited", *who).inc()
        admitted = code == _ADMITTED
        if admitted:
            self._verified("hit" if outcome.replayed else "miss").inc()
        elif code == _UNAVAILABLE:
            self._unavailable(outcome.source).inc()
        self._auth_seconds(_ADMITTED if admitted else "refused").observe(outcome.seconds)

    def metrics(self, status: int, workspace_id: str, duration: float, /) -> None:
        """The adapters' ``metrics`` hook: count one request."""
        who = (workspace_id,) if self.workspace_label else ()
        self._requests(str(status), *who).inc()
        self._request_seconds.observe(duration)


def metrics_app(registry: CollectorRegistry | None = None) -> ASGIApp:
    """Return an ASGI app serving ``registry`` (default: prometheus_client's) at ``/metrics``.

    ``GET``/``HEAD /metrics`` answer the exposition format the scraper asks for (``Accept``);
    another method is a 405 with ``Allow``, another path a 404. Lifespan events are answered.
    """
    source = REGISTRY if registry is None else registry

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            raise ValueError(f"metrics_app serves HTTP only, not {scope['type']!r}")
        headers: list[tuple[bytes, bytes]] = [(b"cache-control", b"no-store")]
        if scope["path"] != "/metrics":
            status, body = 404, b"not found\n"
            headers.append((b"content-type", b"text/plain; charset=utf-8"))
        elif scope["method"] not in ("GET", "HEAD"):
            status, body = 405, b"method not allowed\n"
            headers += [(b"content-type", b"text/plain; charset=utf-8"), (b"allow", b"GET, HEAD")]
        else:
            accept = b",".join(value for name, value in scope["headers"] if name == b"accept")
            encode, content_type = choose_encoder(accept.decode("latin-1"))
            status, body = 200, encode(source)
            headers.append((b"content-type", content_type.encode("latin-1")))
        headers.append((b"content-length", b"%d" % len(body)))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send(
            {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body}
        )

    return app
