"""The background sealer: links new audit records into the hash chain, and prunes old ones.

Hook calls insert audit records without touching the chain (see ``store/audit_chain.py`` for
why); every replica runs a sealer, and the chain lock makes them take turns, so the chain grows
by one writer at a time whichever replica is alive. A failed round (the database restarting, a
lock timeout) is logged and the next round tries again: the records wait, unsealed, not lost.

Pruning (with ``audit.retention`` set) runs far less often than sealing: records age by days,
and each pruning pass reads the start of the chain. Every pruning transaction appends one
``audit``/``prune`` record to the chain naming the new anchor (see ``store/audit_chain.py``):
the evidence that the records are gone because of retention, which verify insists on. So a
pass that deletes N records adds N / ``batch`` records (one in fifty by default), which age and
are pruned in turn like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from functools import partial

import structlog

from puerta.clock import Clock
from puerta.domain.durations import format_duration
from puerta.store import audit_chain
from puerta.store.db import Database, background_writes

log = structlog.get_logger("puerta.audit")

#: seconds between two pruning passes of the loop (``prune_once`` runs at once when called)
PRUNE_EVERY = 600.0
#: records sealed (or pruned) per transaction. Small on purpose: on SQLite every write waits
#: for the one writer, and a hook call queued behind a transaction that hashes and updates
#: 500 records (one second's worth at 500 calls/s) waited for all of it. In 50s, a round does
#: the same work but a call waits behind one small transaction at most: hook p99 at 500/s went
#: from 17.7-23.8 ms to 7.0-12.5 ms (bench/hook_bench.py, two runs each).
WRITE_BATCH = 50


class AuditSealer:
    """Seals audit records every ``interval`` seconds; prunes those older than ``retention``."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        interval: float = 1.0,
        retention: timedelta | None = None,
        batch: int = WRITE_BATCH,
        prune_every: float = PRUNE_EVERY,
    ) -> None:
        if retention is not None and retention <= timedelta(0):
            raise ValueError("retention must be longer than zero")
        self.db = db
        self.clock = clock
        self.interval = interval
        self.retention = retention
        self.batch = batch
        self.prune_every = prune_every
        self._task: asyncio.Task[None] | None = None
        # one round at a time in this process (the loop, and a caller of seal_once): the chain
        # lock would serialise them anyway, but a second round would only wait for nothing
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        with background_writes():  # the loop task inherits the mark
            self._task = asyncio.create_task(self._loop(), name="puerta-audit-sealer")

    async def stop(self) -> None:
        """Stop the loop; records left unsealed are sealed by the next sealer to run."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def seal_once(self) -> int:
        """Seal every record committed so far (batch after batch); returns how many."""
        sealed = 0
        async with self._lock:
            # a read first: an idle sealer must not take the write lock every interval
            if not await self.db.read(audit_chain.any_unsealed):
                return 0
            while True:
                now = self.clock.now()
                count = await self.db.write(
                    partial(audit_chain.seal_batch, now=now, limit=self.batch)
                )
                sealed += count
                if count < self.batch:
                    break
        return sealed  # routine work, not logged: it happens every second or so

    async def prune_once(self) -> int:
        """Delete sealed records older than the retention from the start of the chain; returns
        how many. Nothing without a retention."""
        if self.retention is None:
            return 0
        deleted = 0
        async with self._lock:
            while True:
                now = self.clock.now()
                result = await self.db.write(
                    partial(
                        audit_chain.prune_batch,
                        retention=self.retention,
                        now=now,
                        limit=self.batch,
                    )
                )
                deleted += result.deleted
                if result.stopped is not None:
                    log.error(
                        "audit chain broken: pruning stops before the break to keep the evidence",
                        at=result.stopped,
                    )
                if not result.more:
                    break
        if deleted:
            log.info(
                "audit records pruned", count=deleted, retention=format_duration(self.retention)
            )
        return deleted

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        last_prune: float | None = None
        while True:
            try:
                await self.seal_once()
                if self.retention is not None and (
                    last_prune is None or loop.time() - last_prune >= self.prune_every
                ):
                    last_prune = loop.time()
                    await self.prune_once()
            except Exception:  # a database hiccup must not end the sealer
                log.exception("audit sealer round failed")
            await asyncio.sleep(self.interval)
