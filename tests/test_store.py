"""The database handle: concurrent writes share transactions on SQLite (group commit), and a
unit of work that fails takes nobody else's work with it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Row, func, insert, select, update
from sqlalchemy.engine import Connection

from puerta.store import ci_runs
from puerta.store import repository as repo
from puerta.store.db import Database, background_writes, normalise_url
from puerta.store.tables import audit_events, canaries, rollouts
from puerta.store.tables import ci_runs as ci_runs_table

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def record(action: str, fail: bool = False):  # type: ignore[no-untyped-def]
    def work(conn: Connection) -> str:
        repo.insert_audit(conn, at=NOW, kind="admin", actor="test", action=action)
        if fail:
            raise ValueError(f"{action} failed")
        return action

    return work


async def test_concurrent_writes_commit_independently(db: Database) -> None:
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
            r.action for r in repo.query_audit(conn, repo.AuditFilter(), limit=100, before_id=None)
        ]
    )
    assert "a7" not in actions


def test_urls_people_write_are_accepted() -> None:
    assert normalise_url("sqlite+aiosqlite:///x.db") == "sqlite:///x.db"
    assert normalise_url("postgres://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert normalise_url("postgresql://u@h/db") == "postgresql+asyncpg://u@h/db"
    with pytest.raises(ValueError, match="unsupported database 'mysql'"):
        Database("mysql://u@h/db")
    with pytest.raises(ValueError, match="SQLite needs a file"):
        Database("sqlite:///:memory:")


def size(path: Path | str) -> int:
    return Path(path).stat().st_size


async def write_rows(db: Database, count: int) -> None:
    for i in range(count):  # one transaction each, as hook calls arriving one by one
        await db.write(record(f"r{i}"))


async def test_sqlite_commits_leave_checkpoints_to_the_checkpointer(tmp_path: Path) -> None:
    """A commit never checkpoints the WAL (the batch that paid for one waited several ms);
    with the checkpointer idle, the database file does not grow however much is written."""
    path = tmp_path / "quiet.db"
    db = Database(f"sqlite:///{path}", checkpoint_every=3600)
    await db.migrate()
    try:
        before = size(path)
        await write_rows(db, 1500)  # several thousand WAL frames: past SQLite's default 1,000
        assert size(path) == before
        assert size(f"{path}-wal") > 4_000_000
    finally:
        await db.dispose()


async def test_sqlite_checkpointer_moves_the_wal_into_the_file(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    db = Database(f"sqlite:///{path}", checkpoint_every=0.01)
    await db.migrate()
    try:
        before = size(path)
        await write_rows(db, 300)
        deadline = asyncio.get_running_loop().time() + 10
        while size(path) <= before:  # the checkpointer runs on its own schedule
            assert asyncio.get_running_loop().time() < deadline, "no checkpoint in 10 s"
            await asyncio.sleep(0.02)

        def count(conn: Connection) -> int:
            return int(conn.execute(select(func.count()).select_from(audit_events)).scalar_one())

        assert await db.read(count) == 300
    finally:
        await db.dispose()


async def test_sqlite_writes_keep_one_connection_and_its_page_cache(tmp_path: Path) -> None:
    """SQLite empties a connection's page cache when another connection wrote since its last
    transaction: writes taking turns on pooled connections read every page again from the file.
    So every write runs on the writer's own connection (large cache), which readers never use."""
    db = Database(f"sqlite:///{tmp_path / 'warm.db'}")
    await db.migrate()
    try:

        def connection(conn: Connection) -> tuple[int, int]:
            cache = int(conn.exec_driver_sql("PRAGMA cache_size").scalar_one())
            return id(conn.connection.dbapi_connection), cache

        writes = []
        reads = []
        for _ in range(5):  # reads in between, as the CI runner and the API do
            writes += await asyncio.gather(*(db.write(connection) for _ in range(10)))
            reads += await asyncio.gather(*(db.read(connection) for _ in range(8)))
        assert len({conn for conn, _ in writes}) == 1
        assert {cache for _, cache in writes} == {-16 * 1024}  # KiB, SQLite's default: -2000
        assert {conn for conn, _ in writes}.isdisjoint(conn for conn, _ in reads)
    finally:
        await db.dispose()


async def test_sqlite_commits_callers_writes_before_queued_background_writes(
    tmp_path: Path,
) -> None:
    """A hook call's write does not wait for the CI runner's or the sealer's: of the writes
    queued while the writer is busy, the callers' go first, whatever order they came in."""
    db = Database(f"sqlite:///{tmp_path / 'order.db'}")
    await db.migrate()
    order: list[str] = []
    busy, hold = threading.Event(), threading.Event()

    def blocking(conn: Connection) -> None:
        busy.set()
        hold.wait(10)

    def unit(name: str) -> Callable[[Connection], None]:
        return lambda conn: order.append(name)

    async def background(name: str) -> None:
        with background_writes():
            await db.write(unit(name))

    try:
        first = asyncio.create_task(db.write(blocking))
        await asyncio.to_thread(busy.wait, 10)
        queued = [
            asyncio.create_task(background("runner claim")),
            asyncio.create_task(db.write(unit("hook 1"))),
            asyncio.create_task(background("sealer batch")),
            asyncio.create_task(db.write(unit("hook 2"))),
        ]
        await asyncio.sleep(0)  # every task queues its write behind the busy writer
        hold.set()
        await asyncio.gather(first, *queued)
        assert order == ["hook 1", "hook 2", "runner claim", "sealer batch"]
    finally:
        hold.set()
        await db.dispose()


async def test_sqlite_background_writes_are_not_starved_by_a_steady_stream_of_calls(
    tmp_path: Path,
) -> None:
    """Calls' writes go first, but a background write waits for a few batches at most, even
    when a call's write is queued the moment each batch ends (hook calls at full rate)."""
    db = Database(f"sqlite:///{tmp_path / 'steady.db'}")
    await db.migrate()
    loop = asyncio.get_running_loop()
    order: list[str] = []
    calls: list[asyncio.Task[None]] = []

    def call(n: int) -> None:
        calls.append(asyncio.create_task(db.write(lambda conn: unit(n))))

    def unit(n: int) -> None:
        order.append(f"call {n}")
        if n < 100:  # the next call's write is queued before this batch's commit is reported
            loop.call_soon_threadsafe(call, n + 1)

    async def background() -> None:
        with background_writes():
            await db.write(lambda conn: order.append("background"))

    try:
        call(0)
        await background()
        for _ in range(200):  # each batch adds the next call's task
            await asyncio.gather(*calls)
            if len(calls) == 101:
                break
        await asyncio.gather(*calls)
        assert len(order) == 102
        assert 0 < order.index("background") <= 10, order
    finally:
        await db.dispose()


# ---- claiming E2E runs ------------------------------------------------------------------------


def seed_runs(conn: Connection, count: int) -> list[int]:
    key = conn.execute(
        insert(canaries).values(
            namespace="staging", name="svc", first_seen_at=NOW, last_seen_at=NOW
        )
    ).inserted_primary_key
    assert key is not None
    canary_id = key[0]
    conn.execute(
        insert(rollouts).values(
            canary_id=canary_id, seq=1, status="progressing", started_at=NOW, updated_at=NOW
        )
    )
    for i in range(count):
        ci_runs.insert_run(
            conn,
            canary_id=canary_id,
            rollout_seq=1,
            gate=f"e2e-{i}",
            provider="gh",
            kind="github",
            target={"project": "acme/e2e"},
            status="pending",
            correlation=f"svc-1-e2e-{i}",
            created_at=NOW,
            updated_at=NOW,
            deadline_at=NOW + timedelta(hours=2),
            next_check_at=NOW,
        )
    return list(conn.execute(select(ci_runs_table.c.id).order_by(ci_runs_table.c.id)).scalars())


async def due_runs_seeded(db: Database, count: int) -> tuple[list[int], Sequence[Row[Any]]]:
    """``count`` new pending runs, and the due runs a replica reads (all of them)."""
    ids = await db.write(lambda conn: seed_runs(conn, count))
    seen = await db.read(lambda conn: ci_runs.due_runs(conn, NOW, 10))
    assert [row.id for row in seen] == ids
    return ids, seen


async def test_a_round_claims_each_run_once_and_never_one_changed_since_it_was_read(
    db: Database,
) -> None:
    """Replica a read four due runs; meanwhile b claimed the first and another replica
    triggered the second. a's claim takes the last two only, and gives the changed one back
    at once instead of working on its stale view (which would trigger it twice)."""
    lease = NOW + timedelta(minutes=1)
    ids, seen = await due_runs_seeded(db, 4)
    assert await db.write(lambda c: ci_runs.claim_as_seen(c, seen[:1], "b", NOW, lease)) == [ids[0]]
    triggered = update(ci_runs_table).where(ci_runs_table.c.id == ids[1])
    await db.write(lambda c: c.execute(triggered.values(status="queued")))

    claimed = await db.write(lambda c: ci_runs.claim_as_seen(c, seen, "a", NOW, lease))

    assert claimed == ids[2:]
    owners = await db.read(
        lambda c: dict(c.execute(select(ci_runs_table.c.id, ci_runs_table.c.owner)).all())
    )
    assert owners == {ids[0]: "b", ids[1]: None, ids[2]: "a", ids[3]: "a"}
    # once b's lease has run out, a later round may take its run
    later = NOW + timedelta(minutes=2)
    again = await db.write(
        lambda c: ci_runs.claim_as_seen(c, seen[:1], "a", later, later + timedelta(minutes=1))
    )
    assert again == [ids[0]]


async def test_saving_a_run_writes_only_while_this_replica_holds_it_and_it_is_active(
    db: Database,
) -> None:
    """The runner's save stores what it learnt and frees the run in one update; after its
    lease went to another replica, or a webhook finished the run meanwhile, it writes nothing
    (the statement is built once and reused: the second save must not reuse the first's values).
    """
    lease = NOW + timedelta(minutes=1)
    ids, seen = await due_runs_seeded(db, 3)
    assert await db.write(lambda c: ci_runs.claim_as_seen(c, seen, "a", NOW, lease)) == ids
    later = NOW + timedelta(minutes=2)
    # the second run's lease ran out and b took it; a webhook finished the third
    assert await db.write(lambda c: ci_runs.claim_as_seen(c, seen[1:2], "b", later, later))
    finished = update(ci_runs_table).where(ci_runs_table.c.id == ids[2])
    await db.write(lambda c: c.execute(finished.values(status="succeeded")))

    def save(run_id: int) -> Callable[[Connection], bool]:
        return lambda c: ci_runs.save(
            c, run_id, "a", status="queued", external_id=f"x-{run_id}", updated_at=later
        )

    saved = [await db.write(save(run_id)) for run_id in ids]

    assert saved == [True, False, False]
    rows = await db.read(
        lambda c: {
            row.id: (row.status, row.external_id, row.owner)
            for row in c.execute(select(ci_runs_table))
        }
    )
    assert rows == {
        ids[0]: ("queued", f"x-{ids[0]}", None),
        ids[1]: ("pending", None, "b"),
        ids[2]: ("succeeded", None, "a"),
    }
