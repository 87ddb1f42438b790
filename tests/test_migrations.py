"""The Alembic migrations create exactly the schema ``store/tables.py`` describes, on SQLite and
PostgreSQL: a column or index added to one and not the other fails here, not in production."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from puerta.store.db import Database
from puerta.store.tables import metadata


def _differences(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(conn, opts={"compare_type": False})
    return [
        diff
        for diff in compare_metadata(context, metadata)
        # SQLite reports no server defaults and names; PostgreSQL reflects them alike
        if not (
            isinstance(diff, tuple)
            and diff[0] == "remove_table"
            and diff[1].name == "alembic_version"
        )
    ]


async def test_migrations_match_the_tables(database_url: str) -> None:
    db = Database(database_url)
    try:
        await db.migrate()
        assert await db.read(_differences) == []
    finally:
        await db.dispose()
