"""Queries for promotions: record once, claim under a short lease, store what is sent before
the first attempt, hold and release by hand, finish, list."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, select, text, update
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


def _with_canary() -> Select[Any]:
    """Promotions with what the worker and the hold/release actions need of the canary (its
    name, halt) and of the rollout (its revision, for notices)."""
    return select(
        promotions,
        canaries.c.namespace,
        canaries.c.name,
        canaries.c.halted,
        canaries.c.halted_by,
        rollouts.c.revision,
    ).select_from(
        promotions.join(canaries, canaries.c.id == promotions.c.canary_id).join(
            rollouts,
            (rollouts.c.canary_id == promotions.c.canary_id)
            & (rollouts.c.seq == promotions.c.rollout_seq),
        )
    )


def due(conn: Connection, now: datetime, limit: int) -> Sequence[Row[Any]]:
    query = (
        _with_canary()
        .where(
            promotions.c.status.in_(ACTIVE),
            promotions.c.next_attempt_at <= now,
            leases.free(promotions, now),
        )
        .order_by(promotions.c.id)
        .limit(limit)
    )
    return conn.execute(query).all()


def get(conn: Connection, item_id: int) -> Row[Any] | None:
    """One promotion with its canary's name and halt and its rollout's revision."""
    return conn.execute(_with_canary().where(promotions.c.id == item_id)).one_or_none()


def target_namespaces(conn: Connection, name: str, environment: str) -> list[str]:
    """The namespaces of the canaries called ``name`` that Puerta has seen in ``environment``:
    where a promoted commit will run there (a freeze of some namespaces holds it only if it
    covers one of them)."""
    query = (
        select(canaries.c.namespace)
        .where(canaries.c.name == name, canaries.c.environment == environment)
        .distinct()
        .order_by(canaries.c.namespace)
    )
    return list(conn.execute(query).scalars())


def store_rendered(conn: Connection, item_id: int, owner: str, **values: Any) -> bool:
    """Keep what the promotion sends (tag and release name, or event type), rendered once,
    before its first attempt: only while ``owner`` holds it, and never over a stored value,
    so every retry, on any replica, sends the same."""
    result = conn.execute(
        update(promotions)
        .where(
            promotions.c.id == item_id,
            promotions.c.owner == owner,
            *(promotions.c[column].is_(None) for column in values),
        )
        .values(**values)
    )
    return result.rowcount == 1


def lock_versions(conn: Connection, repository: str) -> None:
    """Serialise choosing the next version of one repository across replicas (PostgreSQL):
    two promotions rendering ``{next_patch}`` at once must not both pick the same one. SQLite
    needs nothing: its writers are serialised already."""
    if conn.dialect.name == "postgresql":
        conn.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
            {"key": f"puerta-versions:{repository}"},
        )


def tags_taken(conn: Connection, repository: str, *, besides: int) -> list[str]:
    """The tags other promotions of ``repository`` have chosen and not given up (pending,
    held or done): a version stored but not released yet (a retry to come, a draft release
    that made no tag) is taken all the same."""
    query = select(promotions.c.tag).where(
        promotions.c.repository == repository,
        promotions.c.tag.is_not(None),
        promotions.c.status != "failed",
        promotions.c.id != besides,
    )
    return [tag for tag in conn.execute(query).scalars() if tag]


def hold(
    conn: Connection, item_id: int, *, actor: str, note: str, held_reason: str, now: datetime
) -> bool:
    """Hold a pending or held promotion by hand, unless one is already held by hand or a
    replica is carrying it out right now (it may be sending it this very moment: saying it
    is held would be a lie). False: nothing changed."""
    result = conn.execute(
        update(promotions)
        .where(
            promotions.c.id == item_id,
            promotions.c.status.in_(ACTIVE),
            promotions.c.held_by.is_(None),
            leases.free(promotions, now),
        )
        .values(
            status="held",
            held_by=actor,
            held_note=note or None,
            held_reason=held_reason,
            updated_at=now,
        )
    )
    return result.rowcount == 1


def release_hold(conn: Connection, item_id: int, *, actor: str, now: datetime) -> bool:
    """Lift the hand hold (and the policy's ``manual_release`` wait) and make the promotion
    due now; the worker still holds it for a freeze or a halt. Not while a replica holds its
    lease (its outcome would overwrite this). False: nothing changed."""
    result = conn.execute(
        update(promotions)
        .where(
            promotions.c.id == item_id,
            promotions.c.status.in_(ACTIVE),
            leases.free(promotions, now),
        )
        .values(
            status="pending",
            held_by=None,
            held_note=None,
            held_reason=None,
            released_by=actor,
            released_at=now,
            next_attempt_at=now,
            updated_at=now,
        )
    )
    return result.rowcount == 1


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
