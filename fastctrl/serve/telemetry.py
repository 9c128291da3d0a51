"""What the server tells its operators, in Prometheus format under ``GET /metrics``: queue
depth, requests by outcome, decisions per config, deadline attainment, controller time,
batch sizes and end-to-end latency. One registry per server (tests start several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

MS_BUCKETS = (1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 200, 500, 1000, 5000)


class Telemetry:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.queue_depth = Gauge("fastctrl_queue_depth", "Requests waiting", registry=r)
        self.requests = Counter("fastctrl_requests", "Requests by outcome", ["outcome"], registry=r)
        self.decisions = Counter(
            "fastctrl_decisions",
            "Requests run per config and decider",
            ["config", "decided_by"],
            registry=r,
        )
        self.deadlines = Counter(
            "fastctrl_deadlines",
            "Answered requests by whether they met their deadline",
            ["met"],
            registry=r,
        )
        self.controller_ms = Histogram(
            "fastctrl_controller_ms",
            "Decision time per request (ms)",
            buckets=(0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5),
            registry=r,
        )
        self.batch_size = Histogram(
            "fastctrl_batch_size",
            "Requests per model batch",
            buckets=(1, 2, 4, 8, 16, 32),
            registry=r,
        )
        self.latency_ms = Histogram(
            "fastctrl_request_latency_ms",
            "Arrival to answer (ms)",
            buckets=MS_BUCKETS,
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
