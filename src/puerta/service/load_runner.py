"""Run the load tests this replica holds, under a lease, and stop them at the right moment.

A load test is recorded once (``service/effects.py``); every replica's runner looks for
running tests nobody holds (no owner, or a lease that ran out because its replica died),
claims one with a conditional update, so exactly one replica generates the load, and then,
every tick: renews its lease, stores the generator's figures (which the load gate reports to
Flagger), and stops the test when its rollout is no longer under way (promoted, rolled back,
superseded by a new revision), when its duration is over, or when the lease was lost. On a
graceful shutdown it hands its tests back, so another replica takes them over at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import structlog
from sqlalchemy import Row
from sqlalchemy.engine import Connection

from puerta.clock import Clock
from puerta.domain.durations import format_duration
from puerta.domain.rollouts import OPEN_STATUSES
from puerta.load import RATE_ERROR_KINDS, LoadGenerator, LoadSpec, LoadStats
from puerta.store import repository as repo
from puerta.store.db import Database, background_writes

log = structlog.get_logger("puerta.load")
_OPEN = {status.value for status in OPEN_STATUSES}


def replica_name() -> str:
    """Unique per process: host, pid and a random part (pids repeat across containers)."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


_TRANSPORT = ("timeout", "connect", "read", "other")
_DEFAULT_IDLE = timedelta(minutes=10)


def stats_record(stats: LoadStats, before: dict[str, Any] | None = None) -> dict[str, Any]:
    """The figures to store: this segment's, with the counts of earlier segments added.

    A test moves to another replica when its replica stops or dies; the new generator starts
    from zero, so the counts (and the error rate the gate judges) are carried over from what
    was stored. Latency percentiles and the achieved rate are those of the current segment.
    """
    record: dict[str, Any] = {**stats.as_dict(), "summary": stats.summary()}
    if not before:
        return record
    for key in ("sent", "completed", "abandoned"):
        record[key] = int(record.get(key, 0)) + int(before.get(key, 0))
    for key in ("errors", "status_counts"):
        merged = dict(before.get(key) or {})
        for kind, count in (record.get(key) or {}).items():
            merged[kind] = int(merged.get(kind, 0)) + int(count)
        record[key] = merged
    errors = record["errors"]
    outcomes = record["completed"] + sum(errors.get(k, 0) for k in _TRANSPORT)
    outcomes += errors.get("dropped", 0)
    bad = sum(n for kind, n in errors.items() if kind in RATE_ERROR_KINDS)
    record["error_rate"] = bad / outcomes if outcomes else 0.0
    record["summary"] = (
        f"{stats.summary()}; since the start: errors {record['error_rate']:.2%} "
        f"of {outcomes} answers"
    )
    return record


@dataclass
class _Owned:
    run_id: int
    generator: LoadGenerator
    task: asyncio.Task[LoadStats]
    label: str
    before: dict[str, Any] | None  # figures of earlier segments (another replica, earlier)
    idle_limit: timedelta


class LoadRunner:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        replica: str | None = None,
        lease: timedelta = timedelta(seconds=15),
        interval: float = 1.0,
    ) -> None:
        self.db = db
        self.clock = clock
        self.replica = replica or replica_name()
        self.lease = lease
        self.interval = interval
        self._owned: dict[int, _Owned] = {}
        self._loop_task: asyncio.Task[None] | None = None

    @property
    def running(self) -> list[int]:
        return sorted(self._owned)

    async def start(self) -> None:
        with background_writes():  # the loop task (and its generators) inherit the mark
            self._loop_task = asyncio.create_task(self._loop(), name="puerta-load-runner")

    async def _loop(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:  # a database hiccup must not end the runner
                log.exception("load runner tick failed")
            await asyncio.sleep(self.interval)

    async def tick(self) -> None:
        """Claim free tests, then renew, report and stop the ones this replica holds."""
        await self._claim()
        for owned in list(self._owned.values()):
            await self._keep(owned)

    async def _claim(self) -> None:
        now = self.clock.now()
        free = await self.db.read(lambda c: repo.claimable_load_runs(c, self.replica, now))
        for row in free:
            if row.id in self._owned:
                continue
            claim = partial(
                repo.claim_load_run,
                run_id=row.id,
                owner=self.replica,
                now=now,
                lease_until=now + self.lease,
            )
            if await self.db.write(claim):
                self._start(row, now)

    def _start(self, row: Row[Any], now: datetime) -> None:
        spec = row.spec
        duration = spec.get("duration_s")
        remaining: timedelta | None = None
        if duration is not None:
            started = row.started_at or now
            remaining = timedelta(seconds=duration) - (now - started)
            remaining = max(remaining, timedelta(0))
        generator = LoadGenerator(
            LoadSpec(
                url=spec["url"],
                rate=spec.get("rate"),
                concurrency=int(spec.get("concurrency", 10)),
                duration=remaining,
                method=spec.get("method", "GET"),
                headers=dict(spec.get("headers") or {}),
                body=spec["body"].encode() if spec.get("body") else None,
                timeout=float(spec.get("timeout_s", 5.0)),
            )
        )
        label = f"run {row.id} ({row.gate})"
        task = asyncio.create_task(generator.run(), name=f"puerta-load-{row.id}")
        idle = spec.get("idle_timeout_s")
        self._owned[row.id] = _Owned(
            row.id,
            generator,
            task,
            label,
            before=row.stats if row.segments > 0 else None,
            idle_limit=timedelta(seconds=idle) if idle else _DEFAULT_IDLE,
        )
        log.info(
            "load test started",
            run=row.id,
            gate=row.gate,
            url=spec["url"],
            rate=spec.get("rate"),
            replica=self.replica,
        )

    async def _keep(self, owned: _Owned) -> None:
        now = self.clock.now()
        if owned.task.done():
            stats, failure = _result(owned)
            if failure:
                await self._finish(owned, now, "failed", failure, stats)
            else:
                await self._finish(owned, now, "finished", "duration elapsed", stats)
            return
        stats = stats_record(owned.generator.snapshot(), owned.before)
        until = now + self.lease
        row = await self.db.write(
            lambda c: repo.renew_load_run(c, owned.run_id, self.replica, now, until, stats)
        )
        if row is None:
            log.warning("load test lease lost", run=owned.run_id, replica=self.replica)
            await self._halt(owned)
            return
        if row.rollout_status not in _OPEN:
            final = await self._halt(owned)
            await self._finish(owned, now, "stopped", f"rollout {row.rollout_status}", final)
        elif now - row.rollout_updated_at > owned.idle_limit:
            # Flagger stopped calling (a deleted canary, no post-rollout hook): do not load a
            # canary nobody is analysing.
            final = await self._halt(owned)
            silent = format_duration(owned.idle_limit)
            await self._finish(owned, now, "stopped", f"rollout silent for {silent}", final)

    async def _halt(self, owned: _Owned) -> dict[str, Any] | None:
        owned.generator.stop()
        self._owned.pop(owned.run_id, None)
        with contextlib.suppress(Exception):
            return stats_record(await owned.task, owned.before)
        return None

    async def _finish(
        self,
        owned: _Owned,
        now: datetime,
        status: str,
        reason: str,
        stats: dict[str, Any] | None,
    ) -> None:
        self._owned.pop(owned.run_id, None)
        await self.db.write(
            lambda c: repo.finish_load_run(
                c, owned.run_id, self.replica, now, status, reason, stats
            )
        )
        log.info(
            "load test ended",
            run=owned.run_id,
            status=status,
            reason=reason,
            summary=(stats or {}).get("summary"),
        )

    async def stop(self) -> None:
        """Graceful shutdown: stop generating and hand the tests back to the other replicas."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        for owned in list(self._owned.values()):
            stats = await self._halt(owned)
            hand_back = partial(
                _hand_back,
                run_id=owned.run_id,
                owner=self.replica,
                now=self.clock.now(),
                stats=stats,
            )
            await self.db.write(hand_back)


def _hand_back(
    conn: Connection, *, run_id: int, owner: str, now: datetime, stats: dict[str, Any] | None
) -> None:
    if stats is not None:
        repo.renew_load_run(conn, run_id, owner, now, now, stats)
    repo.release_load_run(conn, run_id, owner, now)


def _result(owned: _Owned) -> tuple[dict[str, Any] | None, str]:
    """(final figures, why it failed: "" when it ended normally)."""
    if owned.task.cancelled():
        return None, "generator cancelled"
    error = owned.task.exception()
    if error is not None:
        log.error("load generator failed", run=owned.run_id, error=repr(error))
        return stats_record(
            owned.generator.snapshot(), owned.before
        ), f"generator failed: {error!r}"
    return stats_record(owned.task.result(), owned.before), ""
