"""Queries for the notification outbox, its threads, resolved commits and the lookup cache."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, delete, exists, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.orm import aliased

from puerta.store import leases
from puerta.store.notify_tables import (
    lookup_cache,
    notification_threads,
    notifications,
    rollout_commits,
)
from puerta.store.pages import page_by_canary
from puerta.store.tables import canaries, rollouts

_INSERT_THREAD = {
    "postgresql": postgresql.insert(notification_threads).on_conflict_do_nothing(),
    "sqlite": sqlite.insert(notification_threads).on_conflict_do_nothing(),
}


def enqueue(conn: Connection, **values: Any) -> int:
    row = conn.execute(insert(notifications).values(**values).returning(notifications.c.id))
    return int(row.scalar_one())


def last_pending_item(conn: Connection, canary_id: int, seq: int, destination: str) -> str | None:
    """The kind of the newest undelivered item of a rollout's destination (for coalescing)."""
    query = (
        select(notifications.c.item)
        .where(
            notifications.c.canary_id == canary_id,
            notifications.c.rollout_seq == seq,
            notifications.c.destination == destination,
            notifications.c.status == "pending",
        )
        .order_by(notifications.c.id.desc())
        .limit(1)
    )
    value: str | None = conn.execute(query).scalar_one_or_none()
    return value


def thread(
    conn: Connection, canary_id: int, seq: int, destination: str, now: datetime
) -> tuple[Row[Any], bool]:
    """The rollout's thread in a channel, created on first use; (row, created)."""
    values = {
        "canary_id": canary_id,
        "rollout_seq": seq,
        "destination": destination,
        "repeats": 0,
        "created_at": now,
        "updated_at": now,
    }
    created = bool(conn.execute(_INSERT_THREAD[conn.dialect.name], values).rowcount)
    row = conn.execute(
        select(notification_threads).where(
            notification_threads.c.canary_id == canary_id,
            notification_threads.c.rollout_seq == seq,
            notification_threads.c.destination == destination,
        )
    ).one()
    return row, created


def update_thread(conn: Connection, thread_id: int, **values: Any) -> None:
    conn.execute(
        update(notification_threads).where(notification_threads.c.id == thread_id).values(**values)
    )


def get_thread(conn: Connection, canary_id: int, seq: int, destination: str) -> Row[Any] | None:
    return conn.execute(
        select(notification_threads).where(
            notification_threads.c.canary_id == canary_id,
            notification_threads.c.rollout_seq == seq,
            notification_threads.c.destination == destination,
        )
    ).one_or_none()


def deliverable(conn: Connection, now: datetime, limit: int) -> Sequence[Row[Any]]:
    """Pending items that are due, free, and first in line for their rollout and destination
    (so each rollout's messages go out in the order they were written)."""
    earlier = aliased(notifications)
    blocked = exists().where(
        earlier.c.canary_id == notifications.c.canary_id,
        earlier.c.rollout_seq == notifications.c.rollout_seq,
        earlier.c.destination == notifications.c.destination,
        earlier.c.status == "pending",
        earlier.c.id < notifications.c.id,
    )
    query = (
        select(notifications, canaries.c.namespace, canaries.c.name)
        .select_from(notifications.join(canaries, canaries.c.id == notifications.c.canary_id))
        .where(
            notifications.c.status == "pending",
            notifications.c.next_attempt_at <= now,
            leases.free(notifications, now),
            ~blocked,
        )
        .order_by(notifications.c.id)
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
    """Take an item if it is still pending, free, and as this replica read it (its attempt
    count unchanged): a replica with a stale read never delivers an item twice."""
    return leases.take(
        conn,
        notifications,
        item_id,
        notifications.c.status == "pending",
        notifications.c.attempts == seen_attempts,
        owner=owner,
        now=now,
        until=until,
    )


def finish(conn: Connection, item_id: int, owner: str, **values: Any) -> bool:
    """Store the outcome of a delivery attempt and give the lease back."""
    return leases.give_back(conn, notifications, item_id, owner=owner, **values)


def release(conn: Connection, *, item_id: int, owner: str) -> None:
    leases.give_back(conn, notifications, item_id, owner=owner)


def rollout_state(conn: Connection, canary_id: int, seq: int) -> Row[Any] | None:
    query = select(rollouts).where(rollouts.c.canary_id == canary_id, rollouts.c.seq == seq)
    return conn.execute(query).one_or_none()


def list_items(
    conn: Connection,
    *,
    status: str | None,
    namespace: str | None,
    name: str | None,
    limit: int,
    offset: int,
) -> tuple[Sequence[Row[Any]], int]:
    return page_by_canary(
        conn,
        notifications,
        namespace=namespace,
        name=name,
        status=status,
        limit=limit,
        offset=offset,
    )


def count_by_status(conn: Connection) -> dict[str, int]:
    query = select(notifications.c.status, func.count()).group_by(notifications.c.status)
    return {status: int(n) for status, n in conn.execute(query).all()}


# ---- resolved commits ---------------------------------------------------------------------

_INSERT_COMMIT = {
    "postgresql": postgresql.insert(rollout_commits).on_conflict_do_nothing(),
    "sqlite": sqlite.insert(rollout_commits).on_conflict_do_nothing(),
}


def rollout_commit(conn: Connection, canary_id: int, seq: int) -> Row[Any] | None:
    return conn.execute(
        select(rollout_commits).where(
            rollout_commits.c.canary_id == canary_id, rollout_commits.c.rollout_seq == seq
        )
    ).one_or_none()


def store_rollout_commit(conn: Connection, **values: Any) -> Row[Any]:
    conn.execute(_INSERT_COMMIT[conn.dialect.name], values)
    row = rollout_commit(conn, values["canary_id"], values["rollout_seq"])
    assert row is not None
    return row


def update_rollout_commit(conn: Connection, row_id: int, **values: Any) -> None:
    conn.execute(update(rollout_commits).where(rollout_commits.c.id == row_id).values(**values))


# ---- lookup cache ---------------------------------------------------------------------------

_MISSING = object()


def cached(conn: Connection, kind: str, key: str, now: datetime) -> Any:
    """The cached value (None is a cached "nothing found"), or ``MISSING``."""
    row = conn.execute(
        select(lookup_cache.c.value).where(
            and_(
                lookup_cache.c.kind == kind,
                lookup_cache.c.key == key,
                lookup_cache.c.expires_at > now,
            )
        )
    ).one_or_none()
    return MISSING if row is None else row.value


MISSING = _MISSING


def cache(conn: Connection, kind: str, key: str, value: Any, expires_at: datetime) -> None:
    conn.execute(delete(lookup_cache).where(lookup_cache.c.kind == kind, lookup_cache.c.key == key))
    conn.execute(
        insert(lookup_cache).values(kind=kind, key=key, value=value, expires_at=expires_at)
    )


def untracked_rollouts(conn: Connection, since: datetime, limit: int) -> Sequence[Row[Any]]:
    """Recent rollouts whose commit has not been looked up yet (for commit tracking)."""
    known = (
        select(rollout_commits.c.id)
        .where(
            rollout_commits.c.canary_id == rollouts.c.canary_id,
            rollout_commits.c.rollout_seq == rollouts.c.seq,
        )
        .exists()
    )
    query = (
        select(
            rollouts.c.canary_id,
            rollouts.c.seq,
            rollouts.c.environment,
            canaries.c.namespace,
            canaries.c.name,
        )
        .select_from(rollouts.join(canaries, canaries.c.id == rollouts.c.canary_id))
        .where(rollouts.c.started_at >= since, rollouts.c.status != "superseded", ~known)
        .order_by(rollouts.c.id)
        .limit(limit)
    )
    return list(conn.execute(query).all())  # type: ignore[arg-type]  # a 5-column row
