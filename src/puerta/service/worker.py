"""What every background worker of a replica shares: a loop that runs a round every
``interval`` (or at once when woken: a hook call just gave it work), never dies of a failed
round, and on a graceful shutdown stops taking work and hands back what it holds, so another
replica takes it at once instead of waiting for the lease to run out."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

from puerta.store.db import background_writes

log = structlog.get_logger("puerta.worker")


class BackgroundWorker:
    #: names the loop's task and its log lines
    name = "puerta-worker"

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._held: set[int] = set()  # ids of items this replica is working on now
        self.stopping = False  # set by stop(): rounds end early and no new round starts
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        with background_writes():  # the loop task (and its tasks) inherit the mark
            self._loop_task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self, *, finish: float = 2.0) -> None:
        """Graceful shutdown: take no new work; let the round under way finish (up to
        ``finish`` seconds: an external call half done is better completed than redone by
        another replica); then give back whatever is still held."""
        self.stopping = True
        held = set(self._held)
        if self._loop_task is not None:
            self._wake.set()
            try:
                await asyncio.wait_for(asyncio.shield(self._loop_task), finish)
            except TimeoutError:
                held |= self._held
                self._loop_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._loop_task
            except asyncio.CancelledError:
                pass
        for item_id in held | self._held:
            with contextlib.suppress(Exception):
                await self.release(item_id)
        self._held.clear()

    def wake(self) -> None:
        """Run a round now."""
        self._wake.set()

    async def round(self) -> None:
        """One round of work (subclasses)."""
        raise NotImplementedError

    async def release(self, item_id: int) -> None:
        """Give back an item this replica holds (subclasses)."""
        raise NotImplementedError

    async def work_on_claimed(
        self, item_id: int, work: Callable[[], Awaitable[None]], failure: str
    ) -> None:
        """Run ``work`` on an item this replica has just claimed. A crash (a bug, or the
        database gone mid-way) is logged as ``failure`` and the item handed back at once, so a
        later round or another replica tries again instead of waiting for the lease; either
        way the item is no longer held afterwards."""
        self._held.add(item_id)
        try:
            await work()
        except Exception:
            log.exception(failure, worker=self.name, item=item_id)
            with contextlib.suppress(Exception):
                await self.release(item_id)
        finally:
            self._held.discard(item_id)

    def pause_after(self, took: float) -> float:
        """Seconds to wait for the next round after one that took ``took`` seconds."""
        return self.interval

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.stopping:
            self._wake.clear()
            began = loop.time()
            try:
                await self.round()
            except Exception:  # a database hiccup must not end the worker
                log.exception("background round failed", worker=self.name)
            if self.stopping:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.pause_after(loop.time() - began))
