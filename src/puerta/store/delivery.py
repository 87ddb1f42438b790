"""The rollouts delivery figures are computed from (``puerta.domain.delivery``).

Two reads in one transaction:

* every rollout that succeeded or failed with ``finished_at`` in ``[since, until)``, with the
  commit time of what it shipped (``rollout_commits``, outer-joined: most rollouts of a set-up
  without ``commits`` rules have none);
* for time to restore, the first success after ``until`` of each canary and environment that
  failed in the period: a failure near the end of the period is restored after it, and only the
  first later success can be the one that restored it, so reading one row per canary keeps the
  answer small however far in the past the period lies.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, and_, exists, not_, or_, select
from sqlalchemy.engine import Connection

from puerta.domain.delivery import FAILED, SUCCEEDED, RolloutRecord
from puerta.store.notify_tables import rollout_commits
from puerta.store.tables import canaries, rollouts


def rollout_records(
    conn: Connection,
    *,
    since: datetime,
    until: datetime,
    environment: str | None = None,
    namespace: str | None = None,
    name: str | None = None,
) -> list[RolloutRecord]:
    """The records :func:`puerta.domain.delivery.figures` needs for ``[since, until)``, of the
    canaries that match the filters (each None: any)."""
    r, c = rollouts, canaries
    filters: list[ColumnElement[bool]] = []
    if environment is not None:
        filters.append(r.c.environment == environment)
    if namespace is not None:
        filters.append(c.c.namespace == namespace)
    if name is not None:
        filters.append(c.c.name == name)

    in_period = _records().where(
        r.c.status.in_((SUCCEEDED, FAILED)),
        r.c.finished_at >= since,
        r.c.finished_at < until,
        *filters,
    )

    failed = rollouts.alias("failed")
    earlier = rollouts.alias("earlier")
    failed_in_period = exists().where(
        failed.c.canary_id == r.c.canary_id,
        failed.c.environment.is_not_distinct_from(r.c.environment),
        failed.c.status == FAILED,
        failed.c.finished_at >= since,
        failed.c.finished_at < until,
    )
    earlier_success = exists().where(
        earlier.c.canary_id == r.c.canary_id,
        earlier.c.environment.is_not_distinct_from(r.c.environment),
        earlier.c.status == SUCCEEDED,
        earlier.c.finished_at >= until,
        or_(
            earlier.c.finished_at < r.c.finished_at,
            and_(earlier.c.finished_at == r.c.finished_at, earlier.c.seq < r.c.seq),
        ),
    )
    first_success_after = _records().where(
        r.c.status == SUCCEEDED,
        r.c.finished_at >= until,
        failed_in_period,
        not_(earlier_success),
        *filters,
    )
    rows: list[Row[Any]] = []
    for query in (in_period, first_success_after):
        rows.extend(conn.execute(query).all())
    return [_record(row) for row in rows]


def _records() -> Select[Any]:
    r, c, rc = rollouts, canaries, rollout_commits
    joined = r.join(c, c.c.id == r.c.canary_id).outerjoin(
        rc, and_(rc.c.canary_id == r.c.canary_id, rc.c.rollout_seq == r.c.seq)
    )
    return select(
        r.c.environment,
        c.c.namespace,
        c.c.name,
        r.c.seq,
        r.c.status,
        r.c.started_at,
        r.c.finished_at,
        rc.c.committed_at,
    ).select_from(joined)


def _record(row: Row[Any]) -> RolloutRecord:
    return RolloutRecord(
        environment=row.environment,
        namespace=row.namespace,
        name=row.name,
        seq=row.seq,
        status=row.status,
        started_at=row.started_at,
        finished_at=row.finished_at,
        committed_at=row.committed_at,
    )
