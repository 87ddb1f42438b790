"""The load generator: ``concurrency`` workers, each with one keep-alive connection.

It runs inside Puerta's server process, on its event loop, so the design keeps the work per
request small and never blocks: no task, thread or timer-wheel per request, only one future
for the answer and one loop timer for its deadline (and, in the open loop, one for the wait
until its scheduled instant).

Open loop (``rate`` set): the schedule is a counter. Request *i* is due at ``start + i/rate``.
A worker that is free claims the next unclaimed index and sleeps until it is due; when every
worker is busy, due indexes pile up unclaimed, and the next worker to come free takes the
oldest one at once, so its measured latency (from the due instant) includes the wait. That is
exactly the queueing a user of a slow canary would see. The pile is bounded by the spec's
``backlog``; the oldest overdue indexes beyond it are skipped and counted as ``dropped``, as are
those still unclaimed when the load window ends.

Closed loop (``rate`` None): each worker sends its next request as soon as the previous one is
answered; latency is measured from the send.

The run never raises because of the target: a refused connection, a timeout, a broken or
malformed answer is counted by kind (see ``puerta.load.stats``).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from datetime import datetime

from puerta.clock import Clock, SystemClock
from puerta.load.http1 import ConnectError, Connection, ProtocolError, ReadError, Resolver, connect
from puerta.load.spec import LoadSpec, Target
from puerta.load.stats import LoadStats, StatsRecorder

__all__ = ["LoadGenerator"]

#: In the closed loop, a worker whose request failed without an answer (refused, reset, timed
#: out) waits this long before the next one, so a dead or broken target does not turn the loop
#: into a busy spin inside Puerta's process. The open loop needs no pause: its schedule paces it.
CLOSED_LOOP_RETRY_S = 0.05


class LoadGenerator:
    """Generates the load of one ``LoadSpec``, once.

    ``run()`` returns the final stats when the duration is over or soon after ``stop()``;
    ``snapshot()`` gives live stats meanwhile. ``clock`` is a monotonic clock in seconds that
    advances with real time (the loop's timers still wait in real time); ``wall`` stamps
    ``started_at``.
    """

    def __init__(
        self,
        spec: LoadSpec,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Clock | None = None,
    ) -> None:
        self.spec = spec
        self._clock = clock
        self._wall = wall or SystemClock()
        target = Target.parse(spec.url)
        self._resolver = Resolver(target.host, target.port)
        self._tls = target.tls_context(verify=spec.verify_tls)
        self._server_hostname = target.host if self._tls is not None else None
        self._request = spec.request_bytes()
        self._head_request = spec.method == "HEAD"
        self._rate = spec.rate
        self._backlog = spec.backlog
        self._stats = StatsRecorder()
        self._started = False
        self._finished = False
        self._start = 0.0
        self._started_at: datetime = self._wall.now()
        #: End of the load window: start + duration at first, the stop instant after stop().
        self._end = math.inf
        self._closing = False
        self._stopped = False
        self._window_closed: asyncio.Future[None] | None = None
        self._sleepers: set[asyncio.Future[bool]] = set()
        self._next = 0  # open loop: the next unclaimed schedule index

    # ---- public API ---------------------------------------------------------------------

    async def run(self) -> LoadStats:
        """Generate the load until the duration is over or ``stop()``; return the final stats.

        Cancelling ``run()`` closes every connection and propagates the cancellation.
        """
        if self._started:
            raise RuntimeError("a LoadGenerator runs once; make a new one")
        self._started = True
        loop = asyncio.get_running_loop()
        self._start = self._clock()
        self._started_at = self._wall.now()
        if self.spec.duration is not None:
            self._end = min(self._end, self._start + self.spec.duration.total_seconds())
        if self._closing or self._end <= self._start:  # stop() before run(), or duration 0
            self._end = self._start
            return self._finish()
        self._window_closed = loop.create_future()
        end_timer = None
        if self.spec.duration is not None:
            end_timer = loop.call_later(self._end - self._clock(), self._close_window, False)
        workers = [
            asyncio.create_task(self._worker(), name=f"puerta-load-{i}")
            for i in range(self.spec.concurrency)
        ]
        try:
            await self._window_closed
            if self.spec.drain > 0:
                await asyncio.wait(workers, timeout=self.spec.drain)
        finally:
            if end_timer is not None:
                end_timer.cancel()
            self._close_window(False)
            for task in workers:
                task.cancel()  # abandons what is still in flight; closes the connections
            results = await asyncio.gather(*workers, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):  # a bug, not the target: let it be seen
                raise result
        return self._finish()

    def stop(self) -> None:
        """End the load window now: nothing more is sent; in-flight answers are awaited for
        at most ``spec.drain`` seconds. Idempotent; safe before, during or after ``run()``.
        Call it on the event loop's thread (from another: ``loop.call_soon_threadsafe``)."""
        self._close_window(True)

    def snapshot(self) -> LoadStats:
        """Live stats (final ones once finished). Cheap enough to call every second (it walks
        the histogram's few thousand buckets). It only reads, copying each counter table in
        one C-level step, so another thread may call it too while the loop records."""
        if self._finished or not self._started:
            elapsed = max(0.0, self._end - self._start) if self._finished else 0.0
        else:
            elapsed = max(0.0, min(self._clock(), self._end) - self._start)
        return self._stats.snapshot(
            started_at=self._started_at,
            elapsed_s=elapsed,
            rate=self._rate,
            concurrency=self.spec.concurrency,
            finished=self._finished,
        )

    # ---- the window ---------------------------------------------------------------------

    def _close_window(self, stopped: bool) -> None:
        if self._closing:
            return
        self._closing = True
        self._stopped = stopped
        if stopped and self._started:
            self._end = min(self._end, self._clock())
        elif stopped:
            self._end = -math.inf  # before run(): run() sets it to its start
        for sleeper in self._sleepers:
            if not sleeper.done():
                sleeper.set_result(False)
        if self._window_closed is not None and not self._window_closed.done():
            self._window_closed.set_result(None)

    def _finish(self) -> LoadStats:
        if self._rate is not None and self._end > self._start:
            # Due within the window but never claimed: the connections stayed busy.
            due = math.ceil((self._end - self._start) * self._rate - 1e-9)
            if due > self._next:
                self._stats.error("dropped", due - self._next)
                self._next = due
        self._finished = True
        return self.snapshot()

    # ---- scheduling ---------------------------------------------------------------------

    def _claim(self) -> float | None:
        """Scheduled instant of this worker's next request, or None: the window is over."""
        if self._closing:
            return None
        now = self._clock()
        if now >= self._end:
            return None
        rate = self._rate
        if rate is None:
            return now
        index = self._next
        overdue = math.floor((now - self._start) * rate) + 1 - index
        if overdue > self._backlog:
            skipped = overdue - self._backlog
            self._stats.error("dropped", skipped)
            index += skipped
        due = self._start + index / rate
        if due >= self._end:
            self._next = index
            return None
        self._next = index + 1
        return due

    async def _sleep_until(self, instant: float) -> bool:
        """Wait for a scheduled instant; False if the window closed meanwhile."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        timer = loop.call_later(instant - self._clock(), _wake, waiter)
        self._sleepers.add(waiter)
        try:
            return await waiter
        finally:
            timer.cancel()
            self._sleepers.discard(waiter)

    # ---- the workers --------------------------------------------------------------------

    async def _worker(self) -> None:
        conn: Connection | None = None
        try:
            while True:
                due = self._claim()
                if due is None:
                    return
                if due > self._clock() and not await self._sleep_until(due):
                    # The window closed while this request waited for its instant. Due after
                    # the end: never meant to be sent. Due before it, its timer was late: send
                    # it if the duration ended the window, but not after a stop().
                    if due >= self._end:
                        return
                    if self._stopped:
                        self._stats.error("dropped")
                        return
                conn, failed = await self._send(conn, due)
                if failed and self._rate is None:
                    await self._sleep_until(self._clock() + CLOSED_LOOP_RETRY_S)
        finally:
            if conn is not None:
                conn.abort()

    async def _send(self, conn: Connection | None, due: float) -> tuple[Connection | None, bool]:
        """Send one request (reconnecting if needed) and record its outcome.

        Returns the connection to use next (None: open a new one) and whether the request
        failed without an answer (connect, timeout, read). A reused keep-alive connection that
        turns out closed before any byte of the answer (the server timed it out while idle) is
        replaced and the request sent again once; that is what any HTTP client does and not
        the target's fault.
        """
        stats = self._stats
        stats.sent += 1
        stats.in_flight += 1
        loop = asyncio.get_running_loop()
        deadline = self._clock() + self.spec.timeout
        try:
            for attempt in (1, 2):
                if conn is None or conn.closed:
                    conn = None
                    try:
                        async with asyncio.timeout(deadline - self._clock()):
                            conn = await connect(
                                self._resolver, tls=self._tls, server_hostname=self._server_hostname
                            )
                    except TimeoutError:
                        stats.error("timeout")
                        return None, True
                    except ConnectError:
                        stats.error("connect")
                        return None, True
                fresh = conn.answers == 0
                timer = loop.call_later(deadline - self._clock(), conn.expire)
                try:
                    status = await conn.request(self._request, head_request=self._head_request)
                except TimeoutError:
                    stats.error("timeout")
                    return None, True
                except ReadError as exc:
                    conn.abort()
                    conn = None
                    if attempt == 1 and not fresh and not exc.received:
                        continue
                    stats.error("read")
                    return None, True
                except (ProtocolError, OSError):
                    conn.abort()
                    stats.error("read")
                    return None, True
                finally:
                    timer.cancel()
                stats.answer(status, self._clock() - due)
                return (None if conn.closed else conn), False
            raise AssertionError("unreachable")  # pragma: no cover
        except asyncio.CancelledError:
            stats.abandoned += 1
            if conn is not None:
                conn.abort()
            raise
        except Exception:  # a bug in this module must not take the gate down with it
            stats.error("other")
            if conn is not None:
                conn.abort()
            return None, True
        finally:
            stats.in_flight -= 1


def _wake(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(True)
