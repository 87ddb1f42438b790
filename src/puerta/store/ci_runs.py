"""Queries for E2E runs on CI: record once, claim under a short lease, save, find by the
provider's id (webhooks), history, the shared request budget and webhook deduplication.

Every write that follows a run is conditional (``owner`` is this replica and the run is still
active), so a replica that lost its lease, or a webhook that finished the run first, can never
be overwritten by an older view of it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Column,
    Integer,
    Row,
    Select,
    and_,
    bindparam,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from puerta.domain.token_bucket import TokenBucket
from puerta.store import leases
from puerta.store.pages import page_by_canary
from puerta.store.tables import (
    ACTIVE_RUN_STATUSES,
    UTCDateTime,
    canaries,
    ci_budgets,
    ci_run_events,
    ci_runs,
    inbound_deliveries,
    rollouts,
)

ACTIVE = ACTIVE_RUN_STATUSES
TERMINAL = ("succeeded", "failed", "canceled", "abandoned")

_INSERT_RUN = {
    "postgresql": postgresql.insert(ci_runs).on_conflict_do_nothing(),
    "sqlite": sqlite.insert(ci_runs).on_conflict_do_nothing(),
}
_RUNS_OF = select(ci_runs).where(
    ci_runs.c.canary_id == bindparam("cid"), ci_runs.c.rollout_seq == bindparam("seq")
)
# the runner saves after every request it sends: built once (see leases.give_back_statement)
_SAVE = leases.give_back_statement(ci_runs, ci_runs.c.status.in_(ACTIVE))
_INSERT_EVENT = insert(ci_run_events)
_WITH_ROLLOUT = ci_runs.join(
    rollouts,
    and_(rollouts.c.canary_id == ci_runs.c.canary_id, rollouts.c.seq == ci_runs.c.rollout_seq),
).join(canaries, canaries.c.id == ci_runs.c.canary_id)


#: "now" in the runner's statements built once below
_NOW = bindparam("now", type_=UTCDateTime())
#: "the run is active", with the statuses written into the SQL rather than bound: only then
#: does the planner know that the runner's partial indexes (``ix_ci_runs_to_abandon`` and
#: ``ix_ci_runs_due``, which hold active runs alone) have every row the statement can match
_IS_ACTIVE = ci_runs.c.status.in_(
    bindparam("active_statuses", ACTIVE, expanding=True, literal_execute=True)
)


def _schedule_statement(*, to_abandon: bool) -> Select[Any]:
    """The runner's read of its schedule, in the order of its index (``ix_ci_runs_to_abandon``
    or ``ix_ci_runs_due``): nothing is sorted, and finished runs are never read, however many
    pile up as history.

    ``to_abandon``: the runs whose rollout a new revision replaced, due at once unless a
    cancel failed since (their error dated at or after the replacement): then the retry
    waits for its next check. Otherwise: the other runs whose next check is due."""
    order: tuple[Column[Any], ...]
    if to_abandon:
        which = and_(
            ci_runs.c.abandon_since.is_not(None),
            or_(
                ci_runs.c.next_check_at <= _NOW,
                ci_runs.c.error_since.is_(None),
                ci_runs.c.error_since < ci_runs.c.abandon_since,
            ),
        )
        order = (ci_runs.c.abandon_since, ci_runs.c.next_check_at, ci_runs.c.id)
    else:
        which = and_(ci_runs.c.abandon_since.is_(None), ci_runs.c.next_check_at <= _NOW)
        order = (ci_runs.c.next_check_at, ci_runs.c.id)
    return (
        select(
            ci_runs,
            rollouts.c.status.label("rollout_status"),
            rollouts.c.environment.label("rollout_environment"),
            rollouts.c.revision.label("rollout_revision"),
            canaries.c.namespace,
            canaries.c.name,
        )
        .select_from(_WITH_ROLLOUT)
        .where(_IS_ACTIVE, leases.free(ci_runs, _NOW), which)
        .order_by(*order)
        .limit(bindparam("limit", type_=Integer))
    )


# The runner's round (read the due runs and the budgets, claim, book, mark the triggers) runs
# every second: its statements are built once, as the save's are (see
# leases.give_back_statement); built per call, SQLAlchemy spent more on them than SQLite did.
_TO_ABANDON = _schedule_statement(to_abandon=True)
_DUE_RUNS = _schedule_statement(to_abandon=False)
_ABANDON_RUNS_OF = (
    update(ci_runs)
    .where(
        ci_runs.c.canary_id == bindparam("cid"),
        ci_runs.c.rollout_seq == bindparam("seq"),
        _IS_ACTIVE,
        ci_runs.c.abandon_since.is_(None),
    )
    .values(abandon_since=bindparam("since"), updated_at=bindparam("since"))
)
_BUDGETS = select(ci_budgets).where(
    ci_budgets.c.provider.in_(bindparam("providers", expanding=True))
)
_LOCK_BUDGET = (
    select(ci_budgets).where(ci_budgets.c.provider == bindparam("which")).with_for_update()
)
_STORE_BUDGET = (
    update(ci_budgets)
    .where(ci_budgets.c.provider == bindparam("which"))
    .values(tokens=bindparam("left"), updated_at=bindparam("at"))
)
_CLAIMABLE = and_(
    ci_runs.c.id.in_(bindparam("seen", expanding=True)),
    ci_runs.c.status.in_(ACTIVE),
    leases.free(ci_runs, _NOW),
)
# PostgreSQL: lock the rows first, in id order, skipping any another replica is claiming right
# now (two replicas locking overlapping sets in different orders would deadlock)
_LOCK_CLAIMABLE = (
    select(ci_runs.c.id).where(_CLAIMABLE).order_by(ci_runs.c.id).with_for_update(skip_locked=True)
)
_CLAIM = (
    update(ci_runs)
    .where(ci_runs.c.id.in_(bindparam("locked", expanding=True)), _CLAIMABLE)
    .values(owner=bindparam("taker"), lease_until=bindparam("until"))
    .returning(ci_runs.c.id, ci_runs.c.status, ci_runs.c.next_check_at)
)
_MARK_TRIGGERS = (
    update(ci_runs)
    .where(ci_runs.c.id.in_(bindparam("ids", expanding=True)), ci_runs.c.status == "pending")
    .values(trigger_started_at=bindparam("begun"), updated_at=bindparam("changed"))
)


def insert_run(conn: Connection, **values: Any) -> bool:
    """Record a run once per (canary, rollout, gate); True if this call recorded it."""
    result = conn.execute(_INSERT_RUN[conn.dialect.name], values)
    return bool(result.rowcount)


def runs_of(conn: Connection, canary_id: int, rollout_seq: int) -> Sequence[Row[Any]]:
    return conn.execute(_RUNS_OF, {"cid": canary_id, "seq": rollout_seq}).all()


def due_runs(conn: Connection, now: datetime, limit: int) -> Sequence[Row[Any]]:
    """Up to ``limit`` active runs nobody is working on: first those whose rollout a new
    revision replaced (abandon them at once, longest replaced first; one whose cancel failed
    since waits for its next check: the retry backs off), then those whose next check is
    due, soonest first. Two reads along two indexes: a round costs what it returns, not what
    is active (under 1,000 pending runs, sorting them all took 1.4 ms every second)."""
    first = conn.execute(_TO_ABANDON, {"now": now, "limit": limit}).all()
    if len(first) >= limit:
        return first
    then = conn.execute(_DUE_RUNS, {"now": now, "limit": limit - len(first)}).all()
    return [*first, *then]


def abandon_runs_of(conn: Connection, canary_id: int, rollout_seq: int, now: datetime) -> None:
    """A new revision replaced the rollout: its active runs are to be cancelled and
    abandoned, before any other run is checked (see ``due_runs``)."""
    conn.execute(_ABANDON_RUNS_OF, {"cid": canary_id, "seq": rollout_seq, "since": now})


def claim_as_seen(
    conn: Connection,
    seen: Sequence[Row[Any]],
    owner: str,
    now: datetime,
    lease_until: datetime,
) -> list[int]:
    """Take the runs read as ``seen`` to work on: those still active, free, and as this
    replica read them (same status, same next check); returns their ids, in ``seen``'s
    order. Without the last condition a replica that read a run just before another one
    triggered and released it would work on its stale view and trigger the run a second
    time. One statement takes them all (a round's claims in one short write); a run found
    changed is given back at once."""
    if not seen:
        return []
    claimable = {"seen": [row.id for row in seen], "now": now}
    ids = list(conn.execute(_LOCK_CLAIMABLE, claimable).scalars())
    if not ids:
        return []
    taken = conn.execute(
        _CLAIM, {**claimable, "locked": ids, "taker": owner, "until": lease_until}
    ).all()
    now_as = {row.id: (row.status, row.next_check_at) for row in taken}
    kept = [row.id for row in seen if now_as.get(row.id) == (row.status, row.next_check_at)]
    changed = set(now_as) - set(kept)
    if changed:
        release_all(conn, changed, owner=owner)
    return kept


def release_all(conn: Connection, run_ids: Collection[int], *, owner: str) -> None:
    """Give back, unchanged, the runs among ``run_ids`` that ``owner`` holds."""
    leases.give_back_all(conn, ci_runs, run_ids, owner=owner)


def mark_triggers_begun(conn: Connection, run_ids: Sequence[int], now: datetime) -> None:
    """Mark the trigger calls of claimed pending runs as begun: committed before the calls
    go out, so a replica that takes a run over knows a call may have reached the provider."""
    if run_ids:
        conn.execute(_MARK_TRIGGERS, {"ids": list(run_ids), "begun": now, "changed": now})


def save(conn: Connection, run_id: int, owner: str, **changes: Any) -> bool:
    """Store what this replica learnt and give the lease back; False if it no longer held the
    run or the run was finished meanwhile (a webhook): nothing is written then."""
    return leases.give_back_with(conn, _SAVE, run_id, owner=owner, **changes)


def release(conn: Connection, *, run_id: int, owner: str, unmark_trigger: bool = False) -> None:
    """Give a run back without changes (graceful shutdown); ``unmark_trigger``: this replica
    marked the trigger as begun when it claimed the run but never sent it."""
    marks: dict[str, Any] = {"trigger_started_at": None} if unmark_trigger else {}
    leases.give_back(conn, ci_runs, run_id, owner=owner, **marks)


def add_event(conn: Connection, **values: Any) -> None:
    conn.execute(_INSERT_EVENT, values)


def events_of(conn: Connection, run_ids: Sequence[int]) -> Sequence[Row[Any]]:
    if not run_ids:
        return []
    query = (
        select(ci_run_events)
        .where(ci_run_events.c.run_id.in_(run_ids))
        .order_by(ci_run_events.c.run_id, ci_run_events.c.id)
    )
    return conn.execute(query).all()


def find_by_external(conn: Connection, provider: str, external_id: str) -> Row[Any] | None:
    query = select(ci_runs).where(
        ci_runs.c.provider == provider, ci_runs.c.external_id == external_id
    )
    return conn.execute(query.order_by(ci_runs.c.id.desc()).limit(1)).one_or_none()


def find_by_correlation(conn: Connection, provider: str, correlation: str) -> Row[Any] | None:
    query = select(ci_runs).where(
        ci_runs.c.provider == provider, ci_runs.c.correlation == correlation
    )
    return conn.execute(query).one_or_none()


def active_with_correlation_in(conn: Connection, provider: str, text: str) -> Row[Any] | None:
    """The active run of ``provider`` whose correlation id appears in ``text`` (a GitHub run's
    title, when the dispatch returned no run id)."""
    query = select(ci_runs).where(
        ci_runs.c.provider == provider,
        _IS_ACTIVE,
        ci_runs.c.external_id.is_(None),
    )
    for row in conn.execute(query).all():
        if row.correlation and row.correlation in text:
            return row
    return None


def finish_from_webhook(conn: Connection, run_id: int, **changes: Any) -> bool:
    """A webhook told the run's end: write it unless the run already ended."""
    result = conn.execute(
        update(ci_runs)
        .where(ci_runs.c.id == run_id, ci_runs.c.status.in_(ACTIVE))
        .values(**changes)
    )
    return result.rowcount == 1


def check_now(conn: Connection, run_id: int, now: datetime) -> None:
    """Make an active run due at once (a webhook said something changed)."""
    conn.execute(
        update(ci_runs)
        .where(ci_runs.c.id == run_id, ci_runs.c.status.in_(ACTIVE))
        .values(next_check_at=now)
    )


def list_runs(
    conn: Connection,
    *,
    namespace: str | None = None,
    name: str | None = None,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[Sequence[Row[Any]], int]:
    """Runs, newest first, with their canary's namespace and name; and how many match."""
    return page_by_canary(
        conn,
        ci_runs,
        namespace=namespace,
        name=name,
        status=status,
        limit=limit,
        offset=offset,
    )


def get_run(conn: Connection, run_id: int) -> Row[Any] | None:
    query = (
        select(ci_runs, canaries.c.namespace, canaries.c.name)
        .select_from(ci_runs.join(canaries, canaries.c.id == ci_runs.c.canary_id))
        .where(ci_runs.c.id == run_id)
    )
    return conn.execute(query).one_or_none()


# ---- request budget: one token bucket per provider, shared by every replica -------------------


def _bucket(row: Row[Any], rate_per_s: float, burst: int) -> TokenBucket:
    return TokenBucket(rate_per_s, burst, float(row.tokens), row.updated_at)


def lock_bucket(
    conn: Connection, provider: str, now: datetime, rate_per_s: float, burst: int
) -> TokenBucket:
    """The provider's bucket (a full one the first time). The row is locked for the
    transaction (PostgreSQL), so replicas draw from one bucket."""
    row = conn.execute(_LOCK_BUDGET, {"which": provider}).one_or_none()
    if row is None:
        values = {"provider": provider, "tokens": float(burst), "updated_at": now}
        conn.execute(_INSERT_BUDGET[conn.dialect.name], values)
        row = conn.execute(_LOCK_BUDGET, {"which": provider}).one()
    return _bucket(row, rate_per_s, burst)


def store_bucket(conn: Connection, provider: str, bucket: TokenBucket) -> None:
    """Write back a bucket this transaction locked and took from or booked on."""
    conn.execute(_STORE_BUDGET, {"which": provider, "left": bucket.tokens, "at": bucket.at})


def take_token(
    conn: Connection, provider: str, now: datetime, rate_per_s: float, burst: int
) -> float:
    """Take one request token from the provider's bucket: 0.0 when granted, else the seconds
    until one will be there."""
    bucket = lock_bucket(conn, provider, now, rate_per_s, burst)
    taken = bucket.take(now)
    if taken is None:
        return bucket.wait(now)
    store_bucket(conn, provider, taken)
    return 0.0


def tokens_available(
    conn: Connection, budgets: Mapping[str, tuple[float, int]], now: datetime
) -> dict[str, float]:
    """Tokens each provider's bucket holds now (``budgets``: provider -> (rate per second,
    burst)), read without locking or taking any: the runner claims no more runs than its
    providers could serve this round. Another replica may take some meanwhile, so this is
    an estimate; the claim's booking still decides each request."""
    rows = conn.execute(_BUDGETS, {"providers": list(budgets)}).all()
    found = {row.provider: row for row in rows}
    return {
        provider: (
            _bucket(found[provider], rate, burst).available(now)
            if provider in found
            else float(burst)  # never used yet: a full bucket
        )
        for provider, (rate, burst) in budgets.items()
    }


_INSERT_BUDGET = {
    "postgresql": postgresql.insert(ci_budgets).on_conflict_do_nothing(),
    "sqlite": sqlite.insert(ci_budgets).on_conflict_do_nothing(),
}
_INSERT_DELIVERY = {
    "postgresql": postgresql.insert(inbound_deliveries).on_conflict_do_nothing(),
    "sqlite": sqlite.insert(inbound_deliveries).on_conflict_do_nothing(),
}


def record_delivery(conn: Connection, source: str, delivery_id: str, now: datetime) -> bool:
    """True the first time a delivery is seen; False for a redelivery."""
    values = {"source": source, "delivery_id": delivery_id, "received_at": now}
    return bool(conn.execute(_INSERT_DELIVERY[conn.dialect.name], values).rowcount)


def set_ref(
    conn: Connection, run_id: int, ref: dict[str, Any], external_id: str | None, url: str | None
) -> None:
    """Store a run's id learnt from a webhook (GitHub: the run found by its title)."""
    conn.execute(
        update(ci_runs)
        .where(ci_runs.c.id == run_id, ci_runs.c.external_id.is_(None))
        .values(ref=ref, external_id=external_id, url=url)
    )
