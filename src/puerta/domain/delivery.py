"""Delivery figures (DORA's four keys) from the rollouts Puerta gated.

DORA measures software delivery by four keys: how often changes go live, how long a change
takes from commit to live, how often a change fails, and how soon service is restored. Puerta
answers every Flagger hook of every canary, so it sees the moment each rollout goes live or is
rolled back in each environment: measured at the gate, the figures need no deployment tool or
incident tracker of their own, and they count what Flagger actually did.

For one canary (``namespace/name``) in one environment, over a period ``[since, until)``:

* **deployment frequency**: the rollouts that succeeded (status ``succeeded``) with
  ``finished_at`` in the period: their count, and that count divided by the period's length in
  days;
* **lead time for changes**: for those succeeded rollouts whose commit time is known,
  ``finished_at - committed_at`` (from commit to live); the count of such rollouts, the median
  and the 90th percentile, both by nearest rank. A commit time after ``finished_at`` (a wrong
  committer date) is not a lead time and is left out;
* **change failure rate**: rollouts that failed (status ``failed``: Flagger rolled back) with
  ``finished_at`` in the period, divided by those that succeeded or failed in the period;
  ``None`` when there were none (no rate, rather than a misleading 0);
* **time to restore**: for each failed rollout in the period, the time from its ``finished_at``
  to the ``finished_at`` of the next succeeded rollout (ordered by ``finished_at``, then
  ``seq``) of the same canary in the same environment, which may come after ``until``. Failed
  rollouts not followed by any success are counted as ``unrestored``; the median (nearest rank)
  is over the restored ones.

Pending, confirmed, progressing and superseded rollouts count for nothing: they neither went
live nor were rolled back.

Per environment, the totals pool every canary's values (medians over all the values, not
medians of medians, which would weigh a canary with one rollout like one with a hundred).

Pure: no I/O, no clock. Durations are :class:`~datetime.timedelta` here; the API turns them
into seconds.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

SUCCEEDED = "succeeded"
FAILED = "failed"

_DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class RolloutRecord:
    """One rollout as the figures need it.

    ``environment`` is the rollout's own (None: its canary matched no environment);
    ``committed_at`` is the time of the commit it shipped, when known.
    """

    environment: str | None
    namespace: str
    name: str
    seq: int
    status: str
    started_at: datetime
    finished_at: datetime | None
    committed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Figures:
    """The four keys for one canary, or pooled over an environment."""

    deployments: int
    deployments_per_day: float
    lead_time_count: int
    lead_time_median: timedelta | None
    lead_time_p90: timedelta | None
    failures: int
    change_failure_rate: float | None
    restored: int
    unrestored: int
    time_to_restore_median: timedelta | None


@dataclass(frozen=True, slots=True)
class CanaryFigures:
    environment: str | None
    namespace: str
    name: str
    figures: Figures


@dataclass(frozen=True, slots=True)
class EnvironmentFigures:
    """The totals of one environment: every canary's values pooled."""

    environment: str | None
    canaries: int
    figures: Figures


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """Groups sorted by environment, namespace and name; environments sorted by name (the
    rollouts of no environment last)."""

    since: datetime
    until: datetime
    groups: tuple[CanaryFigures, ...]
    environments: tuple[EnvironmentFigures, ...]

    @property
    def days(self) -> float:
        return (self.until - self.since) / _DAY


def nearest_rank(values: Sequence[timedelta], percent: int) -> timedelta | None:
    """The ``percent``-th percentile by nearest rank: the smallest value such that at least
    ``percent`` % of the values are at most it (None for no values).

    Nearest rank always answers with a value that occurred, so "p90 lead time 3h" means some
    change took exactly 3h; integer arithmetic keeps the rank exact.
    """
    if not 0 < percent <= 100:
        raise ValueError(f"percent must be in (0, 100], got {percent}")
    if not values:
        return None
    ordered = sorted(values)
    rank = -(-percent * len(ordered) // 100)  # ceil(percent / 100 * n), at least 1
    return ordered[rank - 1]


@dataclass(slots=True)
class _Values:
    """What one group contributes; environment totals concatenate these."""

    deployments: int = 0
    failures: int = 0
    lead_times: list[timedelta] = field(default_factory=list)
    restores: list[timedelta] = field(default_factory=list)
    unrestored: int = 0

    def add(self, other: _Values) -> None:
        self.deployments += other.deployments
        self.failures += other.failures
        self.lead_times.extend(other.lead_times)
        self.restores.extend(other.restores)
        self.unrestored += other.unrestored

    def figures(self, days: float) -> Figures:
        finished = self.deployments + self.failures
        return Figures(
            deployments=self.deployments,
            deployments_per_day=self.deployments / days,
            lead_time_count=len(self.lead_times),
            lead_time_median=nearest_rank(self.lead_times, 50),
            lead_time_p90=nearest_rank(self.lead_times, 90),
            failures=self.failures,
            change_failure_rate=self.failures / finished if finished else None,
            restored=len(self.restores),
            unrestored=self.unrestored,
            time_to_restore_median=nearest_rank(self.restores, 50),
        )


_Key = tuple[str | None, str, str]


def _sort_key(key: _Key) -> tuple[bool, str, str, str]:
    environment, namespace, name = key
    return (environment is None, environment or "", namespace, name)


def figures(records: Iterable[RolloutRecord], since: datetime, until: datetime) -> DeliveryReport:
    """The figures of every (environment, canary) with a rollout that succeeded or failed in
    ``[since, until)``, and each environment's totals.

    ``records`` may hold any rollouts: those outside the period or still open are ignored,
    except succeeded ones after a failure in the period, which end its time to restore.
    """
    if since >= until:
        raise ValueError("since must be before until")
    days = (until - since) / _DAY
    # finished successes of each group, in order, to find what restored a failure
    successes: dict[_Key, list[tuple[datetime, int]]] = defaultdict(list)
    in_period: dict[_Key, list[tuple[datetime, RolloutRecord]]] = defaultdict(list)
    for record in records:
        finished_at = record.finished_at
        if finished_at is None or record.status not in (SUCCEEDED, FAILED):
            continue
        key = (record.environment, record.namespace, record.name)
        if record.status == SUCCEEDED:
            successes[key].append((finished_at, record.seq))
        if since <= finished_at < until:
            in_period[key].append((finished_at, record))
    for done in successes.values():
        done.sort()

    groups: list[CanaryFigures] = []
    totals: dict[str | None, _Values] = {}
    counts: dict[str | None, int] = defaultdict(int)
    for key in sorted(in_period, key=_sort_key):
        values = _group_values(in_period[key], successes.get(key, []))
        environment, namespace, name = key
        groups.append(CanaryFigures(environment, namespace, name, values.figures(days)))
        totals.setdefault(environment, _Values()).add(values)
        counts[environment] += 1
    environments = tuple(
        EnvironmentFigures(environment, counts[environment], values.figures(days))
        for environment, values in totals.items()  # in the groups' (sorted) order
    )
    return DeliveryReport(since, until, tuple(groups), environments)


def _group_values(
    finished: Sequence[tuple[datetime, RolloutRecord]], successes: Sequence[tuple[datetime, int]]
) -> _Values:
    """``successes``: every succeeded rollout of the group as (finished_at, seq), sorted."""
    values = _Values()
    for finished_at, record in finished:
        if record.status == SUCCEEDED:
            values.deployments += 1
            committed_at = record.committed_at
            if committed_at is not None and committed_at <= finished_at:
                values.lead_times.append(finished_at - committed_at)
            continue
        values.failures += 1
        after = bisect_right(successes, (finished_at, record.seq))
        if after == len(successes):
            values.unrestored += 1
        else:
            values.restores.append(successes[after][0] - finished_at)
    return values
