"""Leases on work items (E2E runs, notifications, promotions), shared by every replica.

An item is taken by a conditional update: only when nobody holds it (or its holder's lease
ran out) and only if it still looks as the taker read it, so two replicas never work on one
item and a stale read never does the work twice. Whoever holds it writes its outcome and
gives the lease back in one update that checks it still holds it."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Table, or_, update
from sqlalchemy.engine import Connection


def free(table: Table, now: datetime) -> ColumnElement[bool]:
    """Nobody holds the item, or its holder's lease has run out."""
    return or_(table.c.owner.is_(None), table.c.lease_until < now)


def take(
    conn: Connection,
    table: Table,
    item_id: int,
    *still: ColumnElement[bool],
    owner: str,
    now: datetime,
    until: datetime,
) -> bool:
    """Hold the item until ``until`` if it is free and every ``still`` condition holds."""
    result = conn.execute(
        update(table)
        .where(table.c.id == item_id, *still, free(table, now))
        .values(owner=owner, lease_until=until)
    )
    return result.rowcount == 1


def give_back(
    conn: Connection,
    table: Table,
    item_id: int,
    *still: ColumnElement[bool],
    owner: str,
    **values: Any,
) -> bool:
    """Write ``values`` and free the item, only while ``owner`` holds it (and every ``still``
    condition holds); False, and nothing written, otherwise."""
    return _give_back(conn, table, table.c.id == item_id, still, owner, values) == 1


def give_back_all(conn: Connection, table: Table, item_ids: Collection[int], *, owner: str) -> int:
    """Free those of the items that ``owner`` holds, unchanged; returns how many."""
    return _give_back(conn, table, table.c.id.in_(list(item_ids)), (), owner, {})


def _give_back(
    conn: Connection,
    table: Table,
    which: ColumnElement[bool],
    still: tuple[ColumnElement[bool], ...],
    owner: str,
    values: dict[str, Any],
) -> int:
    result = conn.execute(
        update(table)
        .where(which, table.c.owner == owner, *still)
        .values(owner=None, lease_until=None, **values)
    )
    return int(result.rowcount)
