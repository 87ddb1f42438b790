"""Prometheus metrics of the loadtester endpoints, on the app's own registry (so tests can
build many apps), next to Puerta's ``puerta_hook_*`` metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class LoadtesterMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "puerta_loadtester_requests_total",
            "Answers of the flagger-loadtester endpoints, by endpoint and HTTP status.",
            ["endpoint", "status"],
            registry=registry,
        )
        self.commands = Counter(
            "puerta_loadtester_commands_total",
            "Task commands by type (cmd, bash) and outcome (started, skipped, succeeded, "
            "failed, timed_out, refused).",
            ["type", "outcome"],
            registry=registry,
        )
        self.running = Gauge(
            "puerta_loadtester_background_commands",
            "Background (type: cmd) commands running on this replica.",
            registry=registry,
        )
