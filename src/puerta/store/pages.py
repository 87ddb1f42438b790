"""One page of a per-canary table (E2E runs, notifications, promotions) for the list
endpoints: newest first, each row with its canary's namespace and name, filtered by canary
and status, with the total that matches (for the ``total`` the API returns)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, Table, func, select
from sqlalchemy.engine import Connection

from puerta.store.tables import canaries


def page_by_canary(
    conn: Connection,
    table: Table,
    *,
    namespace: str | None,
    name: str | None,
    status: str | None,
    limit: int,
    offset: int,
) -> tuple[Sequence[Row[Any]], int]:
    """``table`` needs ``id``, ``canary_id`` and ``status`` columns."""
    conditions = []
    if namespace is not None:
        conditions.append(canaries.c.namespace == namespace)
    if name is not None:
        conditions.append(canaries.c.name == name)
    if status is not None:
        conditions.append(table.c.status == status)
    base = table.join(canaries, canaries.c.id == table.c.canary_id)
    query = (
        select(table, canaries.c.namespace, canaries.c.name)
        .select_from(base)
        .where(*conditions)
        .order_by(table.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    total = conn.execute(select(func.count()).select_from(base).where(*conditions)).scalar_one()
    return conn.execute(query).all(), int(total)
