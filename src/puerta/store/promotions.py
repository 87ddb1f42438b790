"""Queries for promotions: record once, claim under a short lease, finish, list."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from puerta.store.promotion_tables import promotions
from puerta.store.tables import canaries, rollouts

ACTIVE = ("pending", "held")
_INSERT = {
    "postgresql": postgresql.insert(promotions).on_conflict_do_nothing(),
    "sqlite": sqlite.insert(promotions).on_conflict_do_nothing(),
}


def record(conn: Connection, **values: Any) -> bool:
    """Record a promotion once per rollout; True if this call recorded it."""
    return bool(conn.execute(_INSERT[conn.dialect.name], values).rowcount)


def _free(now: datetime) -> Any:
    return or_(promotions.c.owner.is_(None), promotions.c.lease_until < now)


def due(conn: Connection, now: datetime, limit: int) -> Sequence[Row[Any]]:
    query = (
        select(
            promotions,
            canaries.c.namespace,
            canaries.c.name,
            canaries.c.halted,
            canaries.c.halted_by,
            rollouts.c.revision,
        )
        .select_from(
            promotions.join(canaries, canaries.c.id == promotions.c.canary_id).join(
                rollouts,
                (rollouts.c.canary_id == promotions.c.canary_id)
                & (rollouts.c.seq == promotions.c.rollout_seq),
            )
        )
        .where(
            promotions.c.status.in_(ACTIVE),
            promotions.c.next_attempt_at <= now,
            _free(now),
        )
        .order_by(promotions.c.id)
        .limit(limit)
    )
    return conn.execute(query).all()


def claim(
    conn: Connection,
    *,
    item_id: int,
    owner: str,
    now: datetime,
    until: datetime,
    seen_attempts: int,
) -> bool:
    """Take a promotion if it is still to do, free, and as this replica read it (attempt
    count unchanged), so a stale read never carries it out twice."""
    result = conn.execute(
        update(promotions)
        .where(
            promotions.c.id == item_id,
            promotions.c.status.in_(ACTIVE),
            promotions.c.attempts == seen_attempts,
            _free(now),
        )
        .values(owner=owner, lease_until=until)
    )
    return result.rowcount == 1


def finish(conn: Connection, item_id: int, owner: str, **values: Any) -> bool:
    result = conn.execute(
        update(promotions)
        .where(promotions.c.id == item_id, promotions.c.owner == owner)
        .values(owner=None, lease_until=None, **values)
    )
    return result.rowcount == 1


def list_promotions(
    conn: Connection,
    *,
    namespace: str | None,
    name: str | None,
    status: str | None,
    limit: int,
    offset: int,
) -> tuple[Sequence[Row[Any]], int]:
    conditions = []
    if namespace is not None:
        conditions.append(canaries.c.namespace == namespace)
    if name is not None:
        conditions.append(canaries.c.name == name)
    if status is not None:
        conditions.append(promotions.c.status == status)
    base = promotions.join(canaries, canaries.c.id == promotions.c.canary_id)
    query = (
        select(promotions, canaries.c.namespace, canaries.c.name)
        .select_from(base)
        .where(*conditions)
        .order_by(promotions.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    total = conn.execute(select(func.count()).select_from(base).where(*conditions)).scalar_one()
    return conn.execute(query).all(), int(total)


def of_rollout(conn: Connection, canary_id: int, seq: int) -> Row[Any] | None:
    return conn.execute(
        select(promotions).where(
            promotions.c.canary_id == canary_id, promotions.c.rollout_seq == seq
        )
    ).one_or_none()


def release(conn: Connection, *, item_id: int, owner: str) -> None:
    """Give a promotion back (graceful shutdown): another replica takes it at once."""
    conn.execute(
        update(promotions)
        .where(promotions.c.id == item_id, promotions.c.owner == owner)
        .values(owner=None, lease_until=None)
    )
