"""Response bodies of ``GET /api/v1/delivery`` (part of the OpenAPI schema).

Durations are seconds (floats) and rates fractions, so that scripts and dashboards can compute
with them; ``null`` means "undefined in this period" (no commit time known, nothing failed or
succeeded, nothing restored), which a 0 would misreport.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class DeliveryFigures(BaseModel):
    deployments: int = Field(description="rollouts that succeeded in the period")
    deployments_per_day: float = Field(description="deployments / the period's length in days")
    lead_time_count: int = Field(
        description="succeeded rollouts whose commit time is known (the lead time's sample)"
    )
    lead_time_median_seconds: float | None = Field(
        description="commit to live, median by nearest rank; null without a known commit time"
    )
    lead_time_p90_seconds: float | None = Field(
        description="commit to live, 90th percentile by nearest rank"
    )
    failures: int = Field(description="rollouts that failed (Flagger rolled back) in the period")
    change_failure_rate: float | None = Field(
        description="failures / (deployments + failures), a fraction; null when both are 0"
    )
    restored: int = Field(description="failures followed by a success (possibly after until)")
    unrestored: int = Field(description="failures not followed by any success yet")
    time_to_restore_median_seconds: float | None = Field(
        description="failure to the next success of the same canary and environment, median "
        "by nearest rank over the restored failures"
    )


class CanaryDelivery(DeliveryFigures):
    environment: str | None = Field(description="null: the canary matched no environment")
    namespace: str
    name: str


class EnvironmentDelivery(DeliveryFigures):
    """Every canary of the environment pooled: medians over all values, not of medians."""

    environment: str | None
    canaries: int = Field(description="canaries with a rollout that finished in the period")


class DeliveryReport(BaseModel):
    since: datetime
    until: datetime
    days: float = Field(description="the period's length in days")
    groups: list[CanaryDelivery] = Field(
        description="one per environment and canary, by environment, namespace and name"
    )
    environments: list[EnvironmentDelivery] = Field(description="totals per environment")
