"""Leases on work items (E2E runs, notifications, promotions), shared by every replica.

An item is taken by a conditional update: only when nobody holds it (or its holder's lease
ran out) and only if it still looks as the taker read it, so two replicas never work on one
item and a stale read never does the work twice. Whoever holds it writes its outcome and
gives the lease back in one update that checks it still holds it."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, Table, Update, bindparam, or_, update
from sqlalchemy.engine import Connection


def free(table: Table, now: datetime | BindParameter[datetime]) -> ColumnElement[bool]:
    """Nobody holds the item, or its holder's lease has run out (``now``: a time, or a bound
    parameter for a statement built once)."""
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
    return give_back_with(conn, give_back_statement(table, *still), item_id, owner=owner, **values)


def give_back_statement(table: Table, *still: ColumnElement[bool]) -> Update:
    """:func:`give_back`'s statement for ``table``, for a caller that gives items back often to
    build once (a module constant) and pass to :func:`give_back_with`: building and cache-keying
    the statement on every call cost SQLAlchemy more than SQLite spent executing it."""
    return update(table).where(
        table.c.id == bindparam("item_id"), table.c.owner == bindparam("holder"), *still
    )


def give_back_with(
    conn: Connection, statement: Update, item_id: int, *, owner: str, **values: Any
) -> bool:
    """:func:`give_back` with a statement from :func:`give_back_statement`."""
    params = {"item_id": item_id, "holder": owner, "owner": None, "lease_until": None}
    return int(conn.execute(statement, {**params, **values}).rowcount) == 1


def give_back_all(conn: Connection, table: Table, item_ids: Collection[int], *, owner: str) -> int:
    """Free those of the items that ``owner`` holds, unchanged; returns how many."""
    result = conn.execute(
        update(table)
        .where(table.c.id.in_(list(item_ids)), table.c.owner == owner)
        .values(owner=None, lease_until=None)
    )
    return int(result.rowcount)
