"""The CI runner's schedule (``ci_runs.due_runs``), on SQLite and PostgreSQL: runs whose
rollout a new revision replaced come first, a failed cancel backs off, and a round reads
along the runner's partial indexes instead of sorting every active run (or reading the
finished ones, which pile up as history)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from alembic import command
from sqlalchemy import event, insert, select, text, update
from sqlalchemy.engine import Connection

from puerta.store import ci_runs
from puerta.store.db import Database
from puerta.store.migrate import alembic_config
from puerta.store.tables import canaries, rollouts
from puerta.store.tables import ci_runs as runs_table

NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def add_canary(conn: Connection, name: str, *, status: str = "progressing") -> int:
    canary_id: int = conn.execute(
        insert(canaries).values(namespace="staging", name=name, first_seen_at=NOW, last_seen_at=NOW)
    ).inserted_primary_key[0]
    conn.execute(
        insert(rollouts).values(
            canary_id=canary_id, seq=1, status=status, started_at=NOW, updated_at=NOW
        )
    )
    return canary_id


def add_run(conn: Connection, canary_id: int, gate: str, *, due: datetime, **values: Any) -> int:
    ci_runs.insert_run(
        conn,
        canary_id=canary_id,
        rollout_seq=1,
        gate=gate,
        provider="gh",
        kind="github",
        target={"project": "acme/e2e"},
        status=values.pop("status", "queued"),
        correlation=f"{canary_id}-{gate}",
        created_at=NOW - timedelta(hours=1),
        updated_at=NOW,
        deadline_at=NOW + timedelta(hours=2),
        next_check_at=due,
        **values,
    )
    run_id: int = conn.execute(
        select(runs_table.c.id).where(
            runs_table.c.canary_id == canary_id, runs_table.c.gate == gate
        )
    ).scalar_one()
    return run_id


def replace_rollout(conn: Connection, canary_id: int, at: datetime) -> None:
    """What the hook service does when a new revision supersedes the rollout."""
    conn.execute(
        update(rollouts)
        .where(rollouts.c.canary_id == canary_id)
        .values(status="superseded", finished_at=at)
    )
    ci_runs.abandon_runs_of(conn, canary_id, 1, at)


async def due(db: Database, now: datetime, limit: int) -> list[int]:
    return [row.id for row in await db.read(lambda c: ci_runs.due_runs(c, now, limit))]


async def test_runs_of_a_replaced_rollout_come_before_every_overdue_run(db: Database) -> None:
    """Ten runs have waited for minutes (the budget is short); a rollout replaced just now
    has its run checked next, although that run's own check was not due for a while."""

    def seed(conn: Connection) -> tuple[list[int], int, int, int]:
        busy = add_canary(conn, "busy")
        overdue = [
            add_run(conn, busy, f"e2e-{i}", due=NOW - timedelta(minutes=10 - i)) for i in range(10)
        ]
        old = add_canary(conn, "old")
        replaced = add_run(conn, old, "e2e", due=NOW + timedelta(minutes=5))
        finished = add_run(conn, old, "smoke", due=NOW - timedelta(hours=1), status="failed")
        replace_rollout(conn, old, NOW)
        return overdue, replaced, finished, old

    overdue, replaced, finished, old = await db.write(seed)

    assert await due(db, NOW, 3) == [replaced, *overdue[:2]]
    assert await due(db, NOW, 1) == [replaced]
    assert finished not in await due(db, NOW, 50)

    # the replacement marks the active runs only, and keeps the time it first happened
    await db.write(lambda c: replace_rollout(c, old, NOW + timedelta(minutes=1)))
    marks = await db.read(
        lambda c: dict(c.execute(select(runs_table.c.id, runs_table.c.abandon_since)).all())
    )
    assert marks[replaced] == NOW
    assert marks[finished] is None
    assert {marks[run] for run in overdue} == {None}


async def test_a_replaced_run_whose_cancel_failed_waits_for_its_retry(db: Database) -> None:
    """A cancel that failed after the replacement backs off like any other retry; trouble
    from before the replacement does not hold the cancel back."""

    def seed(conn: Connection) -> tuple[int, int, int]:
        other = add_canary(conn, "other")
        waiting = add_run(conn, other, "e2e", due=NOW - timedelta(minutes=1))
        old = add_canary(conn, "old")
        earlier_trouble = add_run(
            conn,
            old,
            "smoke",
            due=NOW + timedelta(minutes=5),
            error_since=NOW - timedelta(minutes=3),
            last_error="CI answered 503",
        )
        cancel_failed = add_run(
            conn,
            old,
            "e2e",
            due=NOW + timedelta(minutes=1),
            error_since=NOW - timedelta(seconds=30),
            last_error="could not cancel the run on CI, retrying",
        )
        replace_rollout(conn, old, NOW - timedelta(minutes=2))
        return waiting, earlier_trouble, cancel_failed

    waiting, earlier_trouble, cancel_failed = await db.write(seed)

    assert await due(db, NOW, 10) == [earlier_trouble, waiting]
    later = NOW + timedelta(minutes=1)
    assert await due(db, later, 10) == [cancel_failed, earlier_trouble, waiting]


async def test_a_held_run_is_skipped_until_its_lease_runs_out(db: Database) -> None:
    def seed(conn: Connection) -> list[int]:
        canary = add_canary(conn, "svc")
        return [
            add_run(conn, canary, f"e2e-{i}", due=NOW - timedelta(seconds=i)) for i in (3, 2, 1)
        ]

    first, second, third = await db.write(seed)
    taken = await db.read(lambda c: ci_runs.due_runs(c, NOW, 1))
    lease = NOW + timedelta(seconds=30)
    assert await db.write(lambda c: ci_runs.claim_as_seen(c, taken, "a", NOW, lease)) == [first]

    assert await due(db, NOW, 2) == [second, third]
    assert await due(db, lease + timedelta(seconds=1), 3) == [first, second, third]


def plans(conn: Connection) -> list[str]:
    """The database's plan of each statement a round's read sends."""
    sent: list[tuple[str, Any]] = []

    def keep(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    event.listen(conn, "before_cursor_execute", keep)
    try:
        ci_runs.due_runs(conn, NOW, 5)
    finally:
        event.remove(conn, "before_cursor_execute", keep)
    if conn.dialect.name == "postgresql":
        # a few rows only: make PostgreSQL show whether it *can* use the index at all
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        conn.execute(text("SET LOCAL enable_bitmapscan = off"))
        explain = "EXPLAIN "
    else:
        explain = "EXPLAIN QUERY PLAN "
    found = []
    for statement, parameters in sent:
        rows = conn.exec_driver_sql(explain + statement, parameters).all()
        found.append("\n".join(str(row[-1]) for row in rows))
    return found


async def test_a_round_reads_along_the_schedule_indexes_and_sorts_nothing(db: Database) -> None:
    def seed(conn: Connection) -> None:
        canary = add_canary(conn, "svc")
        for i in range(30):
            status = "succeeded" if i % 3 else "queued"
            add_run(conn, canary, f"e2e-{i}", due=NOW - timedelta(seconds=i), status=status)

    await db.write(seed)

    found = await db.write(plans)

    assert len(found) == 2  # the runs to abandon, then the due ones
    for plan in found:
        assert "ix_ci_runs_to_abandon" in plan or "ix_ci_runs_due" in plan, plan
        assert "TEMP B-TREE" not in plan and "Sort" not in plan, plan


async def test_the_upgrade_marks_runs_of_rollouts_replaced_before_it(database_url: str) -> None:
    """A database upgraded from 0009 holds runs of replaced rollouts that the older runner
    would have abandoned: they come first after the upgrade too."""
    db = Database(database_url)
    try:

        def to_0009(conn: Connection) -> None:
            config = alembic_config()
            config.attributes["connection"] = conn
            # the PostgreSQL test database may be at head already: come down to 0009
            # (its downgrade) from wherever it is
            command.upgrade(config, "head")
            command.downgrade(config, "0009")

        await db.write(to_0009)

        def seed(conn: Connection) -> tuple[int, int]:
            old = add_canary(conn, "old", status="superseded")
            conn.execute(
                update(rollouts).where(rollouts.c.canary_id == old).values(finished_at=NOW)
            )
            kept = add_canary(conn, "kept")
            for canary, status in ((old, "queued"), (old, "succeeded"), (kept, "queued")):
                conn.execute(
                    text(
                        "INSERT INTO ci_runs (canary_id, rollout_seq, gate, provider, kind,"
                        " target, status, correlation, polls, backoff_s, created_at,"
                        " updated_at, deadline_at, next_check_at) VALUES (:c, 1, :g, 'gh',"
                        " 'github', '{}', :s, :g, 0, 0, :t, :t, :t, :t)"
                    ),
                    {"c": canary, "g": f"{canary}-{status}", "s": status, "t": NOW},
                )
            return old, kept

        old, kept = await db.write(seed)
        await db.migrate()

        marked = await db.read(
            lambda c: {
                (row.canary_id, row.status): row.abandon_since
                for row in c.execute(select(runs_table))
            }
        )
        assert marked == {(old, "queued"): NOW, (old, "succeeded"): None, (kept, "queued"): None}
    finally:
        await db.dispose()
