"""``GET /api/v1/delivery``: DORA's four keys per environment and canary, from the rollouts Puerta
gated (definitions in ``puerta.domain.delivery``).

It needs a viewer token even with ``auth.public_read``: delivery figures compare teams, which is
more than a developer needs to follow their own rollout. The period is bounded (400 days) so
that one request cannot read the whole history of a large installation.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from puerta.api import delivery_schemas as out
from puerta.api import schemas
from puerta.api.admin import ERRORS, viewer
from puerta.api.auth import Principal
from puerta.api.instants import check_instant
from puerta.api.text_guard import storable_parameters
from puerta.clock import Clock
from puerta.domain import delivery
from puerta.errors import BadRequest
from puerta.store.db import Database
from puerta.store.delivery import rollout_records

#: the period when the caller names neither end (and its length when only ``until`` is given)
DEFAULT_PERIOD = timedelta(days=30)
#: the longest period one request may cover
MAX_PERIOD = timedelta(days=400)

router = APIRouter(prefix="/api/v1", tags=["delivery"], dependencies=[Depends(storable_parameters)])


def period(
    since: datetime | None, until: datetime | None, now: datetime
) -> tuple[datetime, datetime]:
    """The period asked for: ``until`` defaults to ``now``, ``since`` to 30 days before
    ``until``. :class:`BadRequest` naming the fields when it is empty, reversed or too long."""
    since = check_instant(since, "since")
    until = check_instant(until, "until") or now
    since = since or until - DEFAULT_PERIOD
    if since >= until:
        raise BadRequest("since, until: since must be before until")
    if until - since > MAX_PERIOD:
        raise BadRequest(f"since, until: the period may be at most {MAX_PERIOD.days} days long")
    return since, until


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


def _figures(figures: delivery.Figures) -> dict[str, int | float | None]:
    return {
        "deployments": figures.deployments,
        "deployments_per_day": figures.deployments_per_day,
        "lead_time_count": figures.lead_time_count,
        "lead_time_median_seconds": _seconds(figures.lead_time_median),
        "lead_time_p90_seconds": _seconds(figures.lead_time_p90),
        "failures": figures.failures,
        "change_failure_rate": figures.change_failure_rate,
        "restored": figures.restored,
        "unrestored": figures.unrestored,
        "time_to_restore_median_seconds": _seconds(figures.time_to_restore_median),
    }


def report_body(report: delivery.DeliveryReport) -> out.DeliveryReport:
    """The report as the API answers it: durations in seconds."""
    return out.DeliveryReport(
        since=report.since,
        until=report.until,
        days=report.days,
        groups=[
            out.CanaryDelivery(
                environment=group.environment,
                namespace=group.namespace,
                name=group.name,
                **_figures(group.figures),
            )
            for group in report.groups
        ],
        environments=[
            out.EnvironmentDelivery(
                environment=env.environment, canaries=env.canaries, **_figures(env.figures)
            )
            for env in report.environments
        ],
    )


@router.get(
    "/delivery",
    response_model=out.DeliveryReport,
    responses={**ERRORS, 400: {"model": schemas.Problem, "description": "a bad period"}},
)
async def get_delivery(
    request: Request,
    _: Annotated[Principal, Depends(viewer)],
    environment: Annotated[str | None, Query(max_length=100)] = None,
    namespace: Annotated[str | None, Query(max_length=63)] = None,
    name: Annotated[str | None, Query(max_length=253)] = None,
    since: Annotated[
        datetime | None, Query(description="start, with a time zone (default: until - 30 days)")
    ] = None,
    until: Annotated[
        datetime | None, Query(description="end, excluded, with a time zone (default: now)")
    ] = None,
) -> out.DeliveryReport:
    """Deployment frequency, lead time for changes, change failure rate and time to restore,
    per environment and canary, over ``[since, until)`` (at most 400 days). Needs a token."""
    clock: Clock = request.app.state.clock
    start, end = period(since, until, clock.now())
    db: Database = request.app.state.db
    records = await db.read(
        partial(
            rollout_records,
            since=start,
            until=end,
            environment=environment,
            namespace=namespace,
            name=name,
        )
    )
    return report_body(delivery.figures(records, start, end))
