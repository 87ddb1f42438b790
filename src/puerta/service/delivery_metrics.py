"""Delivery figures as Prometheus gauges, recomputed in the background.

The figures are a database query over 30 days of rollouts: too much to run on every scrape
(several Prometheus servers may scrape every replica every few seconds), and they change only
when a rollout finishes. So each replica recomputes them every ``interval`` seconds and serves
the last answer; a scrape costs nothing. Every replica reads the same database and so exports
the same values (aggregate with ``max``, not ``sum``, across replicas).

Two families of gauges: ``puerta_delivery_*`` by environment and canary, and
``puerta_delivery_environment_*`` by environment alone, where every canary's values are pooled
as the API's ``environments`` totals are. The environment's own series are separate metrics
rather than the canary gauges with empty ``namespace`` and ``name`` labels, so that a ``sum by
(environment)`` over the canary gauges never counts a total twice; and they exist because a
pooled median or percentile cannot be derived from per-canary gauges. Both families carry the
failure count beside the deployment count, so the change failure rate can be summed over any
grouping: ``sum(failures) / (sum(deployments) + sum(failures))``.

A series whose canary no longer has data in the window (or whose figure became undefined) is
removed, not left at its last value: a stale gauge would claim a lead time nobody has anymore.
A failed round (the database restarting) is logged and keeps the previous values.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from functools import partial

import structlog
from prometheus_client import CollectorRegistry, Gauge

from puerta.clock import Clock
from puerta.domain.delivery import DeliveryReport, Figures, figures
from puerta.store.db import Database
from puerta.store.delivery import rollout_records

log = structlog.get_logger("puerta.delivery")

#: the window the gauges describe, ending at each refresh
WINDOW = timedelta(days=30)

_CANARY = ("environment", "namespace", "name")
_ENVIRONMENT = ("environment",)
_Labels = tuple[str, ...]


class _FigureGauges:
    """The gauges of one family (``prefix``), labelled by ``labels``: one series per group of
    the report (a canary in an environment, or an environment)."""

    def __init__(
        self, registry: CollectorRegistry, prefix: str, labels: _Labels, days: str, by: str
    ) -> None:
        self.deployments = Gauge(
            f"{prefix}_deployments",
            f"Rollouts that succeeded in {days}, {by}.",
            labels,
            registry=registry,
        )
        self.failures = Gauge(
            f"{prefix}_failures",
            f"Rollouts that failed (Flagger rolled back) in {days}, {by}.",
            labels,
            registry=registry,
        )
        self.lead_time = Gauge(
            f"{prefix}_lead_time_seconds",
            f"Commit to live of the rollouts that succeeded in {days} (nearest-rank "
            f"quantile 0.5 or 0.9), {by}; absent without known commit times.",
            (*labels, "quantile"),
            registry=registry,
        )
        self.change_failure_rate = Gauge(
            f"{prefix}_change_failure_rate",
            f"Failed / (succeeded + failed) rollouts in {days}, {by}.",
            labels,
            registry=registry,
        )
        self.time_to_restore = Gauge(
            f"{prefix}_time_to_restore_seconds",
            f"Median time from a failed rollout in {days} to the next success of the canary "
            f"in the environment, {by}; absent when none was restored.",
            labels,
            registry=registry,
        )
        self.all = (
            self.deployments,
            self.failures,
            self.lead_time,
            self.change_failure_rate,
            self.time_to_restore,
        )

    def values(
        self, labels: _Labels, numbers: Figures, into: dict[Gauge, dict[_Labels, float]]
    ) -> None:
        """Put the series of one group into ``into``; an undefined figure gets no series (an
        absent series says "unknown", where 0 would claim a value)."""
        into[self.deployments][labels] = numbers.deployments
        into[self.failures][labels] = numbers.failures
        for quantile, lead in (("0.5", numbers.lead_time_median), ("0.9", numbers.lead_time_p90)):
            if lead is not None:
                into[self.lead_time][(*labels, quantile)] = lead.total_seconds()
        if numbers.change_failure_rate is not None:
            into[self.change_failure_rate][labels] = numbers.change_failure_rate
        if numbers.time_to_restore_median is not None:
            restore = numbers.time_to_restore_median.total_seconds()
            into[self.time_to_restore][labels] = restore


class DeliveryMetrics:
    """Keeps the ``puerta_delivery_*`` gauges of ``registry`` up to date."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        registry: CollectorRegistry,
        *,
        interval: float = 60.0,
        window: timedelta = WINDOW,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be longer than zero")
        self.db = db
        self.clock = clock
        self.interval = interval
        self.window = window
        days = f"the last {window.days} days" if window.days else "the recent window"
        self.canaries = _FigureGauges(
            registry, "puerta_delivery", _CANARY, days, "by environment and canary"
        )
        self.environments = _FigureGauges(
            registry,
            "puerta_delivery_environment",
            _ENVIRONMENT,
            days,
            "by environment, every canary's values pooled",
        )
        self._series: dict[Gauge, set[_Labels]] = {
            gauge: set() for gauge in (*self.canaries.all, *self.environments.all)
        }
        self._registry: CollectorRegistry | None = registry
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Refresh now and every ``interval`` seconds, in the background."""
        self._task = asyncio.create_task(self._loop(), name="puerta-delivery-metrics")

    async def stop(self) -> None:
        """Stop refreshing and take the gauges off the registry, so that the same app (and
        registry) can start again without registering them twice."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._registry is not None:
            for gauge in self._series:
                self._registry.unregister(gauge)
            self._registry = None

    async def refresh(self) -> DeliveryReport:
        """Recompute the window ending now and replace the gauges' series; returns the report."""
        until = self.clock.now()
        since = until - self.window
        records = await self.db.read(partial(rollout_records, since=since, until=until))
        report = figures(records, since, until)
        self._publish(report)
        return report

    def _publish(self, report: DeliveryReport) -> None:
        values: dict[Gauge, dict[_Labels, float]] = {gauge: {} for gauge in self._series}
        for group in report.groups:
            canary = (group.environment or "", group.namespace, group.name)
            self.canaries.values(canary, group.figures, values)
        for total in report.environments:
            self.environments.values((total.environment or "",), total.figures, values)
        for gauge, series in values.items():
            for labels in self._series[gauge] - series.keys():
                with contextlib.suppress(KeyError):
                    gauge.remove(*labels)
            for labels, value in series.items():
                gauge.labels(*labels).set(value)
            self._series[gauge] = set(series)

    async def _loop(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:  # a database hiccup must not end the refresher
                log.exception("delivery metrics refresh failed")
            await asyncio.sleep(self.interval)
