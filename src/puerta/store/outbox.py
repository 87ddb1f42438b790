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
    notification_episodes,
    notification_pacing,
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


# ---- what is remembered per thread key: rollouts' failure clues, event episodes -----------

_EPISODES = notification_episodes


def _upsert(
    conn: Connection, table: Any, keys: list[str], values: dict[str, Any], **changes: Any
) -> None:
    """Insert ``values``, or, when a row with the same ``keys`` exists, set ``changes``."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table).values(**values)
    conn.execute(statement.on_conflict_do_update(index_elements=keys, set_=changes))


def remember(conn: Connection, canary_id: int, key: int, now: datetime, **values: Any) -> None:
    """Store ``values`` (a rollback reason, the last telling Warning) for a Puerta rollout's
    thread key, creating its row on first use: one statement, in the hook call's
    transaction."""
    row = {"canary_id": canary_id, "rollout_seq": key, "started_at": now, "updated_at": now}
    _upsert(
        conn, _EPISODES, ["canary_id", "rollout_seq"], {**row, **values}, updated_at=now, **values
    )


def remembered(conn: Connection, canary_id: int, key: int) -> Row[Any] | None:
    """What is remembered for a thread key (a rollout, or an event episode), if anything."""
    return conn.execute(
        select(_EPISODES).where(_EPISODES.c.canary_id == canary_id, _EPISODES.c.rollout_seq == key)
    ).one_or_none()


def open_episode(conn: Connection, canary_id: int) -> Row[Any] | None:
    """The canary's event episode that is still under way, if any (at most one is)."""
    return conn.execute(
        select(_EPISODES)
        .where(
            _EPISODES.c.canary_id == canary_id,
            _EPISODES.c.rollout_seq < 0,
            _EPISODES.c.status == "progressing",
        )
        .order_by(_EPISODES.c.rollout_seq)
        .limit(1)
    ).one_or_none()


def open_new_episode(conn: Connection, canary_id: int, now: datetime, **values: Any) -> Row[Any]:
    """The canary's next event episode (numbered 1, 2, ...; keyed -1, -2, ...), progressing.
    Callers hold the canary's row lock, so two replicas never number one alike."""
    lowest = conn.execute(
        select(func.min(_EPISODES.c.rollout_seq)).where(
            _EPISODES.c.canary_id == canary_id, _EPISODES.c.rollout_seq < 0
        )
    ).scalar_one_or_none()
    key = (lowest or 0) - 1
    conn.execute(
        insert(_EPISODES).values(
            canary_id=canary_id,
            rollout_seq=key,
            status="progressing",
            dm_note_posted=False,
            started_at=now,
            updated_at=now,
            **values,
        )
    )
    row = remembered(conn, canary_id, key)
    assert row is not None
    return row


def update_episode(conn: Connection, row_id: int, **values: Any) -> None:
    conn.execute(update(_EPISODES).where(_EPISODES.c.id == row_id).values(**values))


def claim_dm_note(conn: Connection, canary_id: int, key: int, now: datetime) -> bool:
    """True exactly once per thread key: whoever gets it posts the "no DM" note."""
    values = {
        "canary_id": canary_id,
        "rollout_seq": key,
        "dm_note_posted": False,
        "started_at": now,
        "updated_at": now,
    }
    conn.execute(_insert_ignoring(conn, _EPISODES), values)
    result = conn.execute(
        update(_EPISODES)
        .where(
            _EPISODES.c.canary_id == canary_id,
            _EPISODES.c.rollout_seq == key,
            _EPISODES.c.dm_note_posted.is_(False),
        )
        .values(dm_note_posted=True, updated_at=now)
    )
    return result.rowcount == 1


def _insert_ignoring(conn: Connection, table: Any) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing()


# ---- pacing: when each lane (a Slack channel, the DMs, a webhook) may send next ----------


def lane_wait(conn: Connection, lane: str, now: datetime, *, lock: bool) -> float:
    """Seconds until ``lane`` may send (0.0: now). ``lock``: hold the lane's row for the
    transaction (creating it), so a replica that books the lane next decides alone."""
    query = select(notification_pacing.c.free_at).where(notification_pacing.c.lane == lane)
    if lock:
        conn.execute(_insert_ignoring(conn, notification_pacing), {"lane": lane, "free_at": now})
        query = query.with_for_update()
    free_at = conn.execute(query).scalar_one_or_none()
    if free_at is None or free_at <= now:
        return 0.0
    return float((free_at - now).total_seconds())


def hold_lane(conn: Connection, lane: str, until: datetime) -> None:
    """Nothing more goes to ``lane`` before ``until`` (a later hold already set stays)."""
    conn.execute(_insert_ignoring(conn, notification_pacing), {"lane": lane, "free_at": until})
    conn.execute(
        update(notification_pacing)
        .where(notification_pacing.c.lane == lane, notification_pacing.c.free_at < until)
        .values(free_at=until)
    )
