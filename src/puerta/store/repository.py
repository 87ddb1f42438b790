"""Every query Puerta runs, as small functions over a connection (SQLAlchemy Core).

Functions are synchronous and take the caller's connection, so a hook call's reads and writes
share one transaction that ``Database.write`` runs in one go (see ``db.py``).
``lock_canary`` is the serialisation point: on PostgreSQL it holds the canary's row lock until
commit, so two replicas answering the same canary at once see each other's writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, bindparam, func, insert, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from puerta.store.tables import (
    audit_events,
    canaries,
    freezes,
    load_runs,
    manual_actions,
    rollouts,
)

# Statements on the hook path are built once: constructing and cache-keying a statement per
# call cost SQLAlchemy more than SQLite spent executing it (bench/README.md).
_CANARY_BY_NAME = select(canaries).where(
    canaries.c.namespace == bindparam("ns"), canaries.c.name == bindparam("n")
)
_CANARY_BY_NAME_LOCKED = _CANARY_BY_NAME.with_for_update()
_INSERT_CANARY = {
    "postgresql": postgresql.insert(canaries).on_conflict_do_nothing(),
    "sqlite": sqlite.insert(canaries).on_conflict_do_nothing(),
}
_UPDATE_CANARY = update(canaries).where(canaries.c.id == bindparam("row_id"))
_ROLLOUT_BY_ID = select(rollouts).where(rollouts.c.id == bindparam("row_id"))
_INSERT_ROLLOUT = insert(rollouts).returning(rollouts)
_UPDATE_ROLLOUT = update(rollouts).where(rollouts.c.id == bindparam("row_id"))
_ACTIVE_ACTIONS = (
    select(manual_actions)
    .where(manual_actions.c.canary_id == bindparam("cid"), manual_actions.c.revoked_at.is_(None))
    .order_by(manual_actions.c.id)
)
_INSERT_ACTION = insert(manual_actions)
_INSERT_AUDIT = insert(audit_events)


def lock_canary(conn: Connection, namespace: str, name: str, now: datetime) -> Row[Any]:
    """The canary's row, created on first sight, locked for the rest of the transaction."""
    postgres = conn.dialect.name == "postgresql"
    query = _CANARY_BY_NAME_LOCKED if postgres else _CANARY_BY_NAME
    key = {"ns": namespace, "n": name}
    row = conn.execute(query, key).one_or_none()
    if row is not None:
        return row
    values = {
        "namespace": namespace,
        "name": name,
        "first_seen_at": now,
        "last_seen_at": now,
        "phase": "",
        "checksum": "",
        "halted": False,
    }
    # Two replicas may see a new canary at once: the loser's insert does nothing.
    conn.execute(_INSERT_CANARY[conn.dialect.name], values)
    locked: Row[Any] = conn.execute(query, key).one()
    return locked


def find_canary(
    conn: Connection, namespace: str, name: str, *, lock: bool = False
) -> Row[Any] | None:
    """The canary's row; ``lock`` (writers only) holds its row lock on PostgreSQL, so an admin
    action and a hook call on the same canary take turns. Readers never lock: a polled page
    must not make a hook call wait."""
    locked = lock and conn.dialect.name == "postgresql"
    query = _CANARY_BY_NAME_LOCKED if locked else _CANARY_BY_NAME
    return conn.execute(query, {"ns": namespace, "n": name}).one_or_none()


def update_canary(conn: Connection, canary_id: int, **values: Any) -> None:
    conn.execute(_UPDATE_CANARY, {"row_id": canary_id, **values})


def get_rollout(conn: Connection, rollout_id: int | None) -> Row[Any] | None:
    if rollout_id is None:
        return None
    return conn.execute(_ROLLOUT_BY_ID, {"row_id": rollout_id}).one_or_none()


def insert_rollout(conn: Connection, **values: Any) -> Row[Any]:
    row: Row[Any] = conn.execute(_INSERT_ROLLOUT, values).one()
    return row


def update_rollout(conn: Connection, rollout_id: int, **values: Any) -> None:
    conn.execute(_UPDATE_ROLLOUT, {"row_id": rollout_id, **values})


def active_manual_actions(conn: Connection, canary_id: int) -> Sequence[Row[Any]]:
    """Approvals, rollback requests and overrides not revoked, oldest first."""
    return conn.execute(_ACTIVE_ACTIONS, {"cid": canary_id}).all()


def insert_manual_action(conn: Connection, **values: Any) -> None:
    conn.execute(_INSERT_ACTION, values)


def revoke_canary_wide_approvals(conn: Connection, canary_id: int, now: datetime) -> None:
    """A halt withdraws sticky approvals (``scope: canary``): the next rollout asks again."""
    conn.execute(
        update(manual_actions)
        .where(
            manual_actions.c.canary_id == canary_id,
            manual_actions.c.action == "approve",
            manual_actions.c.rollout_seq.is_(None),
            manual_actions.c.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )


def insert_audit(conn: Connection, **values: Any) -> None:
    conn.execute(_INSERT_AUDIT, values)


# ---- reads for the API -------------------------------------------------------------------


def list_canaries(
    conn: Connection, *, namespace: str | None = None, environment: str | None = None
) -> Sequence[Row[Any]]:
    """Every canary with its current rollout's columns (prefixed ``rollout_``)."""
    r = rollouts
    columns = [canaries] + [c.label(f"rollout_{c.name}") for c in r.c]
    query = select(*columns).select_from(
        canaries.outerjoin(r, r.c.id == canaries.c.current_rollout_id)
    )
    if namespace:
        query = query.where(canaries.c.namespace == namespace)
    if environment:
        query = query.where(canaries.c.environment == environment)
    return conn.execute(query.order_by(canaries.c.namespace, canaries.c.name)).all()


def rollout_history(conn: Connection, canary_id: int, limit: int) -> Sequence[Row[Any]]:
    query = (
        select(rollouts)
        .where(rollouts.c.canary_id == canary_id)
        .order_by(rollouts.c.seq.desc())
        .limit(limit)
    )
    return conn.execute(query).all()


@dataclass(frozen=True)
class AuditFilter:
    namespace: str | None = None
    name: str | None = None
    environment: str | None = None
    hook: str | None = None
    verdict: str | None = None
    kind: str | None = None
    actor: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    rollout_seq: int | None = None

    def clauses(self) -> list[ColumnElement[bool]]:
        """The WHERE clauses of this filter (the API's list, the dashboard and the export
        apply the same ones)."""
        a = audit_events
        clauses: list[ColumnElement[bool]] = []
        for column, value in (
            (a.c.namespace, self.namespace),
            (a.c.name, self.name),
            (a.c.environment, self.environment),
            (a.c.hook, self.hook),
            (a.c.verdict, self.verdict),
            (a.c.kind, self.kind),
            (a.c.actor, self.actor),
            (a.c.rollout_seq, self.rollout_seq),
        ):
            if value is not None:
                clauses.append(column == value)
        if self.since is not None:
            clauses.append(a.c.at >= self.since)
        if self.until is not None:
            clauses.append(a.c.at < self.until)
        return clauses


def query_audit(
    conn: Connection, where: AuditFilter, *, limit: int, before_id: int | None
) -> Sequence[Row[Any]]:
    """Newest first; page with ``before_id`` (the last id of the previous page)."""
    a = audit_events
    clauses = where.clauses()
    if before_id is not None:
        clauses.append(a.c.id < before_id)
    query = select(a).where(and_(True, *clauses)).order_by(a.c.id.desc()).limit(limit)
    return conn.execute(query).all()


def count_canaries(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(canaries)).scalar_one())


# ---- release trains and freezes -------------------------------------------------------------


def lock_environment(conn: Connection, environment: str) -> None:
    """Serialise release-train decisions of one environment across replicas (PostgreSQL).

    Taken after the canary's row lock, always in that order, so two calls cannot deadlock.
    SQLite needs nothing: its writers are serialised already.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
            {"key": f"puerta-train:{environment}"},
        )


def train_rows(
    conn: Connection,
    environment: str,
    *,
    stale_before: datetime,
    released_after: datetime,
) -> Sequence[Row[Any]]:
    """Rollouts of the environment that are queued (pending, unreleased, recently seen) or
    under way (released, unfinished, within the release timeout), in arrival order."""
    r = rollouts
    queued = and_(
        r.c.status == "pending",
        r.c.released_at.is_(None),
        r.c.in_line.is_(True),
        r.c.updated_at >= stale_before,
    )
    active = and_(
        r.c.released_at.is_not(None),
        r.c.status.in_(("confirmed", "progressing")),
        r.c.released_at >= released_after,
    )
    query = (
        select(
            r.c.id,
            r.c.seq,
            r.c.started_at,
            r.c.released_at,
            canaries.c.namespace,
            canaries.c.name,
        )
        .select_from(r.join(canaries, canaries.c.id == r.c.canary_id))
        .where(r.c.environment == environment, or_(queued, active))
        .order_by(r.c.started_at, r.c.id)
    )
    result = conn.execute(query)
    return list(result.all())  # type: ignore[arg-type]  # a 6-column row is a Row[Any]


def last_release_at(conn: Connection, environment: str) -> datetime | None:
    query = select(func.max(rollouts.c.released_at)).where(rollouts.c.environment == environment)
    value: datetime | None = conn.execute(query).scalar_one_or_none()
    return value


_ACTIVE_FREEZES = (
    select(freezes)
    .where(
        freezes.c.lifted_at.is_(None),
        or_(freezes.c.ends_at.is_(None), freezes.c.ends_at > bindparam("now")),
    )
    .order_by(freezes.c.id)
)
_ACTIVE_FREEZES_OF = _ACTIVE_FREEZES.where(freezes.c.environment == bindparam("env"))


def active_freezes(conn: Connection, environment: str | None, now: datetime) -> Sequence[Row[Any]]:
    """Freezes not lifted and not ended (of one environment, or all), oldest first."""
    if environment is None:
        return conn.execute(_ACTIVE_FREEZES, {"now": now}).all()
    return conn.execute(_ACTIVE_FREEZES_OF, {"now": now, "env": environment}).all()


def insert_freeze(conn: Connection, **values: Any) -> Row[Any]:
    row: Row[Any] = conn.execute(insert(freezes).values(**values).returning(freezes)).one()
    return row


def get_freeze(conn: Connection, freeze_id: int) -> Row[Any] | None:
    return conn.execute(select(freezes).where(freezes.c.id == freeze_id)).one_or_none()


def lift_freeze(conn: Connection, freeze_id: int, by: str, now: datetime) -> None:
    conn.execute(
        update(freezes).where(freezes.c.id == freeze_id).values(lifted_at=now, lifted_by=by)
    )


# ---- load tests ---------------------------------------------------------------------------

_INSERT_LOAD_RUN = {
    "postgresql": postgresql.insert(load_runs).on_conflict_do_nothing(),
    "sqlite": sqlite.insert(load_runs).on_conflict_do_nothing(),
}
_LOAD_RUNS_OF = select(load_runs).where(
    load_runs.c.canary_id == bindparam("cid"), load_runs.c.rollout_seq == bindparam("seq")
)


def insert_load_run(conn: Connection, **values: Any) -> None:
    """Record a load test once per (canary, rollout, gate); a second request does nothing."""
    conn.execute(_INSERT_LOAD_RUN[conn.dialect.name], values)


def load_runs_of(conn: Connection, canary_id: int, rollout_seq: int) -> Sequence[Row[Any]]:
    return conn.execute(_LOAD_RUNS_OF, {"cid": canary_id, "seq": rollout_seq}).all()


def claimable_load_runs(conn: Connection, owner: str, now: datetime) -> Sequence[Row[Any]]:
    """Running load tests nobody holds (no owner, or a lease that ran out), oldest first."""
    query = (
        select(load_runs)
        .where(
            load_runs.c.status == "running",
            or_(load_runs.c.owner.is_(None), load_runs.c.lease_until < now),
        )
        .order_by(load_runs.c.id)
    )
    return conn.execute(query).all()


def claim_load_run(
    conn: Connection, run_id: int, owner: str, now: datetime, lease_until: datetime
) -> bool:
    """Take a load test if it is still free: True when this replica now holds its lease."""
    result = conn.execute(
        update(load_runs)
        .where(
            load_runs.c.id == run_id,
            load_runs.c.status == "running",
            or_(load_runs.c.owner.is_(None), load_runs.c.lease_until < now),
        )
        .values(
            owner=owner,
            lease_until=lease_until,
            updated_at=now,
            started_at=func.coalesce(load_runs.c.started_at, now),
            segments=load_runs.c.segments + 1,
        )
    )
    return result.rowcount == 1


def renew_load_run(
    conn: Connection,
    run_id: int,
    owner: str,
    now: datetime,
    lease_until: datetime,
    stats: dict[str, Any],
) -> Row[Any] | None:
    """Extend this replica's lease and store the figures; None if the lease was lost. Returns
    the run joined with its rollout's status, so the runner can tell when to stop."""
    result = conn.execute(
        update(load_runs)
        .where(load_runs.c.id == run_id, load_runs.c.owner == owner)
        .values(lease_until=lease_until, updated_at=now, stats=stats)
    )
    if result.rowcount != 1:
        return None
    query = (
        select(
            load_runs,
            rollouts.c.status.label("rollout_status"),
            rollouts.c.updated_at.label("rollout_updated_at"),
        )
        .select_from(
            load_runs.join(
                rollouts,
                and_(
                    rollouts.c.canary_id == load_runs.c.canary_id,
                    rollouts.c.seq == load_runs.c.rollout_seq,
                ),
            )
        )
        .where(load_runs.c.id == run_id)
    )
    return conn.execute(query).one_or_none()


def finish_load_run(
    conn: Connection,
    run_id: int,
    owner: str,
    now: datetime,
    status: str,
    reason: str,
    stats: dict[str, Any] | None,
) -> None:
    values: dict[str, Any] = {
        "status": status,
        "stop_reason": reason,
        "finished_at": now,
        "updated_at": now,
        "owner": None,
        "lease_until": None,
    }
    if stats is not None:
        values["stats"] = stats
    conn.execute(
        update(load_runs)
        .where(load_runs.c.id == run_id, load_runs.c.owner == owner)
        .values(**values)
    )


def release_load_run(conn: Connection, run_id: int, owner: str, now: datetime) -> None:
    """Give a running load test back (graceful shutdown): another replica takes it over."""
    conn.execute(
        update(load_runs)
        .where(load_runs.c.id == run_id, load_runs.c.owner == owner)
        .values(owner=None, lease_until=None, updated_at=now)
    )


# ---- flagger-loadtester gates ----------------------------------------------------------------


def revoke_canary_wide_actions(conn: Connection, canary_id: int, action: str, now: datetime) -> int:
    """Revoke the canary's unrevoked canary-wide (``rollout_seq`` NULL) actions of one kind:
    closing a flagger-loadtester gate (``approve``) or rollback gate (``rollback``). Returns
    how many were revoked."""
    result = conn.execute(
        update(manual_actions)
        .where(
            manual_actions.c.canary_id == canary_id,
            manual_actions.c.action == action,
            manual_actions.c.rollout_seq.is_(None),
            manual_actions.c.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    return int(result.rowcount)
