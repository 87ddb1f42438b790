"""Prometheus metrics, on a registry owned by the app (so tests can build many apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.hook_calls = Counter(
            "puerta_hook_calls_total",
            "Flagger hook calls answered, by hook type and verdict.",
            ["hook", "verdict"],
            registry=self.registry,
        )
        self.hook_rejected = Counter(
            "puerta_hook_rejected_total",
            "Hook calls refused before any decision (bad input, auth), by hook type and status.",
            ["hook", "status"],
            registry=self.registry,
        )
        self.decision_seconds = Histogram(
            "puerta_hook_decision_seconds",
            "Time to decide and record a hook call, by hook type.",
            ["hook"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.admin_actions = Counter(
            "puerta_admin_actions_total",
            "Manual actions taken through the API, by action.",
            ["action"],
            registry=self.registry,
        )
        self.e2e_runs_finished = Counter(
            "puerta_e2e_runs_finished_total",
            "E2E runs on CI that ended, by provider and status (succeeded, failed, canceled, "
            "abandoned).",
            ["provider", "status"],
            registry=self.registry,
        )
        self.ci_provider_errors = Counter(
            "puerta_ci_provider_errors_total",
            "Failed calls to CI providers, by provider and kind (transient, rate_limited, "
            "permanent).",
            ["provider", "kind"],
            registry=self.registry,
        )
        self.notifications = Counter(
            "puerta_notifications_total",
            "Notification deliveries by destination kind (slack, slack-raw, dm, teams, webhook) "
            "and outcome (sent, failed, skipped).",
            ["destination", "status"],
            registry=self.registry,
        )
