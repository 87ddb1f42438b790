"""The database handle: concurrent writes share transactions on SQLite (group commit), and a
unit of work that fails takes nobody else's work with it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from puerta.store import repository as repo
from puerta.store.db import Database, normalise_url
from puerta.store.tables import audit_events

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def record(action: str, fail: bool = False):  # type: ignore[no-untyped-def]
    def work(conn: Connection) -> str:
        repo.insert_audit(conn, at=NOW, kind="admin", actor="test", action=action)
        if fail:
            raise ValueError(f"{action} failed")
        return action

    return work


async def test_concurrent_writes_commit_independently(database_url: str) -> None:
    db = Database(database_url)
    await db.migrate()
    try:
        units = [record(f"a{i}", fail=(i == 7)) for i in range(20)]
        results = await asyncio.gather(*(db.write(u) for u in units), return_exceptions=True)
        failed = [r for r in results if isinstance(r, Exception)]
        assert [str(e) for e in failed] == ["a7 failed"]
        assert [r for r in results if isinstance(r, str)] == [f"a{i}" for i in range(20) if i != 7]

        def count(conn: Connection) -> int:
            return int(conn.execute(select(func.count()).select_from(audit_events)).scalar_one())

        assert await db.read(count) == 19
        actions = await db.read(
            lambda conn: [
                r.action
                for r in repo.query_audit(conn, repo.AuditFilter(), limit=100, before_id=None)
            ]
        )
        assert "a7" not in actions
    finally:
        await db.dispose()


def test_urls_people_write_are_accepted() -> None:
    assert normalise_url("sqlite+aiosqlite:///x.db") == "sqlite:///x.db"
    assert normalise_url("postgres://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert normalise_url("postgresql://u@h/db") == "postgresql+asyncpg://u@h/db"
    with pytest.raises(ValueError, match="unsupported database 'mysql'"):
        Database("mysql://u@h/db")
    with pytest.raises(ValueError, match="SQLite needs a file"):
        Database("sqlite:///:memory:")
