"""Every query Puerta runs, as small async functions over a connection (SQLAlchemy Core).

Functions take the caller's connection so a hook call's reads and writes share one
transaction. ``lock_canary`` is the serialisation point: on PostgreSQL it holds the canary's row
lock until commit, so two replicas answering the same canary at once see each other's writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, func, insert, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from puerta.store.tables import audit_events, canaries, freezes, manual_actions, rollouts


async def lock_canary(conn: AsyncConnection, namespace: str, name: str, now: datetime) -> Row[Any]:
    """The canary's row, created on first sight, locked for the rest of the transaction."""
    dialect = conn.dialect.name
    values = {
        "namespace": namespace,
        "name": name,
        "first_seen_at": now,
        "last_seen_at": now,
        "phase": "",
        "checksum": "",
        "halted": False,
    }
    stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(canaries)
    await conn.execute(stmt.values(**values).on_conflict_do_nothing())
    query = select(canaries).where(canaries.c.namespace == namespace, canaries.c.name == name)
    if dialect == "postgresql":
        query = query.with_for_update()
    return (await conn.execute(query)).one()


async def find_canary(conn: AsyncConnection, namespace: str, name: str) -> Row[Any] | None:
    query = select(canaries).where(canaries.c.namespace == namespace, canaries.c.name == name)
    if conn.dialect.name == "postgresql" and conn.in_transaction():
        query = query.with_for_update()
    return (await conn.execute(query)).one_or_none()


async def update_canary(conn: AsyncConnection, canary_id: int, **values: Any) -> None:
    await conn.execute(update(canaries).where(canaries.c.id == canary_id).values(**values))


async def get_rollout(conn: AsyncConnection, rollout_id: int | None) -> Row[Any] | None:
    if rollout_id is None:
        return None
    return (await conn.execute(select(rollouts).where(rollouts.c.id == rollout_id))).one_or_none()


async def insert_rollout(conn: AsyncConnection, **values: Any) -> Row[Any]:
    result = await conn.execute(insert(rollouts).values(**values).returning(rollouts))
    row: Row[Any] = result.one()
    return row


async def update_rollout(conn: AsyncConnection, rollout_id: int, **values: Any) -> None:
    await conn.execute(update(rollouts).where(rollouts.c.id == rollout_id).values(**values))


async def active_manual_actions(conn: AsyncConnection, canary_id: int) -> Sequence[Row[Any]]:
    """Approvals and rollback requests not revoked, oldest first."""
    query = (
        select(manual_actions)
        .where(manual_actions.c.canary_id == canary_id, manual_actions.c.revoked_at.is_(None))
        .order_by(manual_actions.c.id)
    )
    return (await conn.execute(query)).all()


async def insert_manual_action(conn: AsyncConnection, **values: Any) -> None:
    await conn.execute(insert(manual_actions).values(**values))


async def revoke_canary_wide_approvals(
    conn: AsyncConnection, canary_id: int, now: datetime
) -> None:
    """A halt withdraws sticky approvals (``scope: canary``): the next rollout asks again."""
    await conn.execute(
        update(manual_actions)
        .where(
            manual_actions.c.canary_id == canary_id,
            manual_actions.c.action == "approve",
            manual_actions.c.rollout_seq.is_(None),
            manual_actions.c.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )


async def insert_audit(conn: AsyncConnection, **values: Any) -> None:
    await conn.execute(insert(audit_events).values(**values))


# ---- reads for the API -------------------------------------------------------------------


async def list_canaries(
    conn: AsyncConnection, *, namespace: str | None = None, environment: str | None = None
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
    return (await conn.execute(query.order_by(canaries.c.namespace, canaries.c.name))).all()


async def rollout_history(conn: AsyncConnection, canary_id: int, limit: int) -> Sequence[Row[Any]]:
    query = (
        select(rollouts)
        .where(rollouts.c.canary_id == canary_id)
        .order_by(rollouts.c.seq.desc())
        .limit(limit)
    )
    return (await conn.execute(query)).all()


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


async def query_audit(
    conn: AsyncConnection, where: AuditFilter, *, limit: int, before_id: int | None
) -> Sequence[Row[Any]]:
    """Newest first; page with ``before_id`` (the last id of the previous page)."""
    a = audit_events
    clauses = []
    for column, value in (
        (a.c.namespace, where.namespace),
        (a.c.name, where.name),
        (a.c.environment, where.environment),
        (a.c.hook, where.hook),
        (a.c.verdict, where.verdict),
        (a.c.kind, where.kind),
        (a.c.actor, where.actor),
        (a.c.rollout_seq, where.rollout_seq),
    ):
        if value is not None:
            clauses.append(column == value)
    if where.since is not None:
        clauses.append(a.c.at >= where.since)
    if where.until is not None:
        clauses.append(a.c.at < where.until)
    if before_id is not None:
        clauses.append(a.c.id < before_id)
    query = select(a).where(and_(True, *clauses)).order_by(a.c.id.desc()).limit(limit)
    return (await conn.execute(query)).all()


async def count_canaries(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.count()).select_from(canaries))).scalar_one())


# ---- release trains and freezes -------------------------------------------------------------


async def lock_environment(conn: AsyncConnection, environment: str) -> None:
    """Serialise release-train decisions of one environment across replicas (PostgreSQL).

    Taken after the canary's row lock, always in that order, so two calls cannot deadlock.
    SQLite needs nothing: its writers are serialised already.
    """
    if conn.dialect.name == "postgresql":
        await conn.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
            {"key": f"puerta-train:{environment}"},
        )


async def train_rows(
    conn: AsyncConnection,
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
    result = await conn.execute(query)
    return list(result.all())  # type: ignore[arg-type]  # a 6-column row is a Row[Any]


async def last_release_at(conn: AsyncConnection, environment: str) -> datetime | None:
    query = select(func.max(rollouts.c.released_at)).where(rollouts.c.environment == environment)
    value: datetime | None = (await conn.execute(query)).scalar_one_or_none()
    return value


async def active_freezes(
    conn: AsyncConnection, environment: str | None, now: datetime
) -> Sequence[Row[Any]]:
    """Freezes not lifted and not ended (of one environment, or all), oldest first."""
    f = freezes
    query = select(f).where(f.c.lifted_at.is_(None), or_(f.c.ends_at.is_(None), f.c.ends_at > now))
    if environment is not None:
        query = query.where(f.c.environment == environment)
    return (await conn.execute(query.order_by(f.c.id))).all()


async def insert_freeze(conn: AsyncConnection, **values: Any) -> Row[Any]:
    row: Row[Any] = (await conn.execute(insert(freezes).values(**values).returning(freezes))).one()
    return row


async def get_freeze(conn: AsyncConnection, freeze_id: int) -> Row[Any] | None:
    return (await conn.execute(select(freezes).where(freezes.c.id == freeze_id))).one_or_none()


async def lift_freeze(conn: AsyncConnection, freeze_id: int, by: str, now: datetime) -> None:
    await conn.execute(
        update(freezes).where(freezes.c.id == freeze_id).values(lifted_at=now, lifted_by=by)
    )
