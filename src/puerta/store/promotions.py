"""Queries for promotions: record once, claim under a short lease, finish, list."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from puerta.store import leases
from puerta.store.pages import page_by_canary
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
            leases.free(promotions, now),
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
    return leases.take(
        conn,
        promotions,
        item_id,
        promotions.c.status.in_(ACTIVE),
        promotions.c.attempts == seen_attempts,
        owner=owner,
        now=now,
        until=until,
    )


def finish(conn: Connection, item_id: int, owner: str, **values: Any) -> bool:
    return leases.give_back(conn, promotions, item_id, owner=owner, **values)


def list_promotions(
    conn: Connection,
    *,
    namespace: str | None,
    name: str | None,
    status: str | None,
    limit: int,
    offset: int,
) -> tuple[Sequence[Row[Any]], int]:
    return page_by_canary(
        conn,
        promotions,
        namespace=namespace,
        name=name,
        status=status,
        limit=limit,
        offset=offset,
    )


def of_rollout(conn: Connection, canary_id: int, seq: int) -> Row[Any] | None:
    return conn.execute(
        select(promotions).where(
            promotions.c.canary_id == canary_id, promotions.c.rollout_seq == seq
        )
    ).one_or_none()


def release(conn: Connection, *, item_id: int, owner: str) -> None:
    """Give a promotion back (graceful shutdown): another replica takes it at once."""
    leases.give_back(conn, promotions, item_id, owner=owner)
