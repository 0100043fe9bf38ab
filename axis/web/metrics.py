"""Prometheus metrics of one hub (``GET /metrics`` on the operator listener).

Each hub gets its own registry, so several hubs in one process (tests, the simulator) never
share counters. Queue depth is read from the statistics counters when scraped.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric as Family

from axis.core.logchain import LogEntry, LogEvent
from axis.core.stats import Metric
from axis.http.keys import PROBLEM
from axis.http.sockets import ConnectionGate
from axis.store.base import Store
from axis.usecases.delivery import PushOutcome

# The request histogram's upper edges, in seconds: fine below 100 ms, where a hub answers. The
# bench reads the hub's p50 and p99 from them (nodes.sim.bench_mix), and a send's p99 target
# is 50 ms; with edges at 10, 25, 50 and 100 ms alone, its answer was "under 100".
REQUEST_BUCKETS_S = (
    0.002, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05,
    0.06, 0.075, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
)  # fmt: skip


class HubMetrics:
    """The hub's counters, histograms and gauges."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.received = Counter(
            "axis_packages_received", "Packages accepted (201)", ["kind"], registry=self.registry
        )
        self.rejected = Counter(
            "axis_packages_rejected",
            "Packages refused (POST /v1/packages), by problem type",
            ["problem"],
            registry=self.registry,
        )
        self.delivered = Counter(
            "axis_deliveries_delivered",
            "Deliveries that reached their recipient",
            ["via"],
            registry=self.registry,
        )
        self.failed = Counter("axis_deliveries_failed", "Pushes given up", registry=self.registry)
        self.push_retries = Counter(
            "axis_push_retries", "Failed pushes scheduled again", registry=self.registry
        )
        self.latency = Histogram(
            "axis_request_seconds",
            "Node API request latency",
            ["method", "route", "status"],
            registry=self.registry,
            buckets=REQUEST_BUCKETS_S,
        )
        self.vdxp_calls = Counter(
            "axis_vdxp_calls",
            "Calls on the national axis's face, by operation and ErrorCode (0: OK)",
            ["operation", "error_code"],
            registry=self.registry,
        )
        self.vdxp_deviations = Counter(
            "axis_vdxp_deviations",
            "Packages that face took with a deviation from QCVN 102:2016, by system and rule",
            ["system", "rule"],
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "axis_queue_depth",
            "Edoc deliveries not yet acknowledged (in recipients' inboxes)",
            registry=self.registry,
        )
        self.unchained = Gauge(
            "axis_log_unchained_entries",
            "Committed log entries not yet linked into the chain (PostgreSQL's chainer lag)",
            registry=self.registry,
        )

    def watch_connections(self, gates: Mapping[str, ConnectionGate]) -> None:
        """Expose the listeners' connection gates, by listener name (``node``, ``vdxp``),
        read when scraped: the connections open now, and since the start those let in (each
        a TLS handshake), refused (over ``max_connections`` or the per-peer bound) and
        closed after carrying their share (``requests_per_connection``)."""
        self.registry.register(_GateCollector(dict(gates)))

    def log_entry(self, entry: LogEntry) -> None:
        """The store's post-commit hook: count deliveries as the log records them."""
        if entry.event == LogEvent.DELIVERED:
            self.delivered.labels("push" if entry.detail == "push" else "pull").inc()
        elif entry.event == LogEvent.FAILED:
            self.failed.inc()

    def delivery_event(self, outcome: PushOutcome) -> None:
        """The delivery worker's hook. Deliveries and give-ups are counted from the log (only
        real changes), so only retries here."""
        if outcome is PushOutcome.RETRY:
            self.push_retries.inc()

    async def exposition(self, store: Store) -> bytes:
        """The text format, with the queue depth and the chainer's lag read now."""
        self.queue_depth.set(await store.counter_total(Metric.PENDING))
        self.unchained.set(await store.unchained_entries())
        return generate_latest(self.registry)

    def middleware(self) -> Middleware:
        """Times every node API request (by route pattern, never by raw path) and counts the
        refusals by problem type (the problem middleware marks them)."""

        @web.middleware
        async def timed(request: web.Request, handler: Handler) -> web.StreamResponse:
            started = time.perf_counter()
            status = 500
            try:
                response = await handler(request)
                status = response.status
                problem = response.get(PROBLEM)
                if problem and request.method == "POST" and request.path == "/v1/packages":
                    self.rejected.labels(problem).inc()
                return response
            finally:
                route = request.match_info.route.resource
                name = route.canonical if route is not None else "unmatched"
                self.latency.labels(request.method, name, str(status)).observe(
                    time.perf_counter() - started
                )

        return timed


class _GateCollector:
    """The connection gates' counts as metrics (a custom collector: the gates keep plain
    integers on the accept path, read only when scraped)."""

    def __init__(self, gates: dict[str, ConnectionGate]) -> None:
        self._gates = gates

    def describe(self) -> Iterator[Family]:
        """The families without samples: the registry refuses a second collector of the
        same names instead of exposing every series twice."""
        return self._families({})

    def collect(self) -> Iterator[Family]:
        return self._families(self._gates)

    @staticmethod
    def _families(gates_by_name: dict[str, ConnectionGate]) -> Iterator[Family]:
        gates = gates_by_name.items()
        open_now = GaugeMetricFamily(
            "axis_connections_open", "Connections open now, by listener", labels=["listener"]
        )
        admitted = CounterMetricFamily(
            "axis_connections_opened",
            "Connections let in, by listener (on a TLS listener each past its handshake;"
            " the refused ones had one too)",
            labels=["listener"],
        )
        refused = CounterMetricFamily(
            "axis_connections_refused",
            "Connections closed as they opened: over max_connections or the per-peer bound",
            labels=["listener"],
        )
        recycled = CounterMetricFamily(
            "axis_connections_recycled",
            "Connections closed after carrying their share of requests_per_connection",
            labels=["listener"],
        )
        for name, gate in gates:
            open_now.add_metric([name], gate.open)
            admitted.add_metric([name], gate.admitted)
            refused.add_metric([name], gate.refused)
            recycled.add_metric([name], gate.recycled)
        yield from (open_now, admitted, refused, recycled)
