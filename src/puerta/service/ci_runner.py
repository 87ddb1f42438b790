"""Trigger and follow E2E runs on CI, from every replica, each run by one replica at a time.

A run is recorded once by the hook call that asked for it (``service/effects.py``). Each round,
a replica reads the active runs whose next check is due, claims each with a short lease (a
conditional update, so two replicas never work on the same run at once), and then:

* a run whose rollout was replaced by a new revision is cancelled on CI and abandoned;
* a run past its deadline is cancelled and fails, naming the deadline and the last error;
* a pending run is triggered; its :class:`~puerta.ci.base.RunRef` is stored at once, so any
  replica, after any restart, follows the same run;
* a triggered run is polled; a change of status is stored with its history, and polling
  starts again at ``poll_interval``; while nothing changes it backs off to
  ``max_poll_interval``.

Provider trouble is never a pass: a 5xx, a timeout or a 429 leaves the run as it was, with the
error and since when, and the next check backs off (a ``Retry-After`` is honoured, and the
provider is left alone by this replica until then). Every request also draws from the
provider's budget shared by all replicas (``ci/registry.py``). The saved state is written only
while the run is still active and this replica still holds it, so a webhook that finished the
run first, or a replica that took over, is never overwritten.

Exactly once across lost answers: the claim marks a pending run's trigger as begun
(``trigger_started_at``) before the call goes out. A trigger whose outcome is unknown (a
timeout, a dropped connection: the provider may have started the run) keeps the mark, and so
does a replica that dies mid-call. The next turn on a marked run first asks the provider for
the run an earlier trigger started (:meth:`~puerta.ci.base.CiProvider.find`, by the run's
correlation id, from ``_LIST_SETTLE`` after the earlier call ended, since GitHub lists a
dispatched run a few seconds late): found, it is adopted like a trigger's answer (event source
``found``); none, the run is triggered; the lookup failing is provider trouble (retry later,
the mark stays). Where the provider cannot tell (``can_find`` False, or
:class:`~puerta.ci.base.CannotTell`: CircleCI, a Jenkins job without the ``PUERTA_RUN_ID``
parameter) the run is triggered again with a warning: a second run is possible there, as before
(a github gate must pass ``{run_id}`` in an input: ``ci/targets.py``). (The mark is set when
the round claims the run, up to one round interval before the call; a replica that dies in
between leaves it too, and the lookup then finds nothing. A graceful stop clears it.)

Cancels: a run whose rollout was replaced, or which passed its deadline, is cancelled on CI
before it ends. A run whose id Puerta never learnt (a lost trigger answer, GitHub's 204) is
found by correlation first. A cancel that fails for a reason that may pass (an outage, a rate
limit, the budget) keeps the run active, notes the error and is retried with the usual
backoff, until ``_CANCEL_GRACE`` after the run's deadline; the gates meanwhile answer as for a
run past its deadline (or no longer ask: a replaced rollout). Then, or on a refusal, the run
ends and the reason says it was left running on CI.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import structlog
from sqlalchemy import Row
from sqlalchemy.engine import Connection

from puerta.ci.base import (
    PermanentError,
    ProviderError,
    RateLimited,
    RunRef,
    RunState,
    RunStatus,
    Target,
    TransientError,
)
from puerta.ci.registry import BudgetExhausted, ProviderHandle, prepaid_token
from puerta.clock import Clock
from puerta.domain.durations import format_duration, parse_duration
from puerta.domain.notices import Notice, NoticeKind
from puerta.domain.token_bucket import TokenBucket
from puerta.metrics import Metrics
from puerta.notify.config import NotificationsConfig
from puerta.service.load_runner import replica_name
from puerta.service.notices import record_notice
from puerta.service.run_changes import RunChanges
from puerta.service.worker import BackgroundWorker
from puerta.store import ci_runs
from puerta.store.db import Database

log = structlog.get_logger("puerta.ci")

_STATUS_OF = {
    RunState.QUEUED: "queued",
    RunState.RUNNING: "running",
    RunState.SUCCEEDED: "succeeded",
    RunState.FAILED: "failed",
    RunState.CANCELED: "canceled",
}


#: an earlier trigger's run is looked for from this long before its mark (clocks differ)
_FIND_MARGIN = timedelta(minutes=1)
#: a marked run's lookup waits until this long after the mark: GitHub creates a dispatched
#: run asynchronously and lists it a few seconds later (the others list a run at once)
_LIST_SETTLE = timedelta(seconds=10)
#: a cancel that failed for a passing reason is retried until this long after the deadline
_CANCEL_GRACE = timedelta(minutes=10)

_CANCELLED = "run cancelled on CI"
_NOT_STARTED = "no run had started on CI"
_LEFT_RUNNING = "run left running on CI"
_MAYBE_LEFT_RUNNING = "any run an earlier trigger started was left running on CI"
_CANCEL_FAILED = "could not cancel the run on CI, retrying"


def _with_note(exc: ProviderError, note: str | None, *, first: bool) -> str:
    """The error people see (``last_error``): the provider's, with Puerta's note before or
    after it."""
    if note is None:
        return str(exc)[:500]
    return (f"{note}: {exc}" if first else f"{exc}; {note}")[:500]


def _cancel_failed(row: Row[Any]) -> bool:
    """Whether the run's last error is a failed cancel (being retried), not its own trouble."""
    return bool(row.last_error) and str(row.last_error).startswith(_CANCEL_FAILED)


@dataclass(frozen=True)
class _Timing:
    poll: float  # seconds
    max_poll: float


def _timing(handle: ProviderHandle) -> _Timing:
    config = handle.config
    return _Timing(
        parse_duration(config.poll_interval).total_seconds(),
        parse_duration(config.max_poll_interval).total_seconds(),
    )


def run_notice(
    row: Row[Any], status: str, source: str, reason: str, url: str | None, now: datetime
) -> Notice | None:
    """What people hear about a change of an E2E run: started, passed or failed."""
    if status == "queued" and source in ("trigger", "found"):
        kind, text = NoticeKind.E2E_STARTED, f"E2E {row.gate} started on {row.provider}"
    elif status == "succeeded":
        kind, text = NoticeKind.E2E_PASSED, f"E2E {row.gate} passed"
    elif status in ("failed", "canceled"):
        kind, text = NoticeKind.E2E_FAILED, f"E2E {row.gate} {status}: {reason}"
    else:
        return None
    return Notice(
        kind=kind,
        namespace=row.namespace,
        name=row.name,
        rollout_seq=row.rollout_seq,
        environment=row.rollout_environment,
        revision=row.rollout_revision or "",
        at=now,
        text=text,
        link=url,
    )


def target_of(row: Row[Any]) -> Target:
    t = row.target
    return Target(
        project=t["project"],
        ref=t.get("ref"),
        ref_is_tag=bool(t.get("ref_is_tag")),
        workflow=t.get("workflow"),
        parameters=dict(t.get("parameters") or {}),
        correlation=t.get("correlation") or row.correlation,
    )


#: seconds a run's turn may start after its booked moment and still use the booked token
_LATEST_BOOKED_START = 0.1


@dataclass(frozen=True)
class _Turn:
    """A run claimed for this round, and when to work on it."""

    row: Row[Any]
    at: datetime  # its booked moment (the round's start when it needs no request)
    booked: bool  # its first request's token is booked for ``at``
    marked: bool  # the claim marked its trigger as begun


class CiRunner(BackgroundWorker):
    """Follows E2E runs; one per replica, started by the app factory."""

    name = "puerta-ci-runner"

    def __init__(
        self,
        db: Database,
        clock: Clock,
        providers: Mapping[str, ProviderHandle],
        *,
        replica: str | None = None,
        lease: timedelta = timedelta(seconds=60),
        interval: float = 1.0,
        batch: int = 200,
        concurrency: int = 8,
        metrics: Metrics | None = None,
        notifications: NotificationsConfig | None = None,
        changes: RunChanges | None = None,
    ) -> None:
        super().__init__(interval)
        self.db = db
        self.metrics = metrics
        self.notifications = notifications or NotificationsConfig()
        self.clock = clock
        self.providers = providers
        self.replica = replica or replica_name()
        self.lease = lease
        self.batch = batch
        self.concurrency = concurrency
        self._blocked_until: dict[str, datetime] = {}  # provider -> after a 429
        self._marked: set[int] = set()  # runs claimed to trigger whose trigger is not sent yet
        #: fired when this runner stores a run's change, for the hook calls held on it
        self.changes = changes or RunChanges()

    # ---- lifecycle --------------------------------------------------------------------------

    async def release(self, item_id: int) -> None:
        unmark = item_id in self._marked  # claimed to trigger, never sent
        self._marked.discard(item_id)
        release = partial(
            ci_runs.release, run_id=item_id, owner=self.replica, unmark_trigger=unmark
        )
        await self.db.write(release)

    async def round(self) -> None:
        await self.tick()

    def pause_after(self, took: float) -> float:
        """A round's requests are spread over its interval, so it lasts about that long:
        the next one starts an interval after this one began, not after it ended, and a
        provider's requests go out evenly instead of a second's worth every other second."""
        return max(0.0, self.interval - took)

    # ---- one round --------------------------------------------------------------------------

    async def tick(self) -> int:
        """Claim the due runs and work on them; returns how many were worked on.

        A round tries no more runs of a provider than its budget holds tokens now: a run
        the budget then refuses costs writes for nothing and is due again at once, and
        under 1,000 pending runs that churn slowed every hook call. It claims them all in
        one transaction that also books each one's first request on the provider's budget,
        ``1/rate`` apart over the round (a burst of requests is a burst of writes after
        them), and marks the triggers as begun. Each run is then worked on at its booked
        moment: with the save after its request, a CI request costs one write transaction
        and a share of the round's claim.
        """
        now = self.clock.now()
        tokens, due = await self.db.read(partial(self._due, now=now))
        chosen: list[Row[Any]] = []
        for row in due:
            if self._needs_token(row, now):
                if self._blocked(row.provider, now) or tokens[row.provider] < 1.0:
                    continue
                tokens[row.provider] -= 1.0
            chosen.append(row)
        if self.stopping or not chosen:
            return 0
        turns = await self.db.write(partial(self._claim_round, rows=chosen, now=now))
        for turn in turns:
            self._held.add(turn.row.id)
            if turn.marked:
                self._marked.add(turn.row.id)
        gate = asyncio.Semaphore(self.concurrency)
        worked = await asyncio.gather(*(self._take_turn(turn, gate) for turn in turns))
        return sum(worked)

    async def _take_turn(self, turn: _Turn, gate: asyncio.Semaphore) -> bool:
        """Work on a claimed run at its booked moment; hand it back instead if this replica
        began to stop meanwhile."""
        wait = (turn.at - self.clock.now()).total_seconds()
        if wait > 0:
            await asyncio.sleep(wait)
        async with gate:
            if self.stopping:
                await self.release(turn.row.id)
                self._held.discard(turn.row.id)
                return False
            late = (self.clock.now() - turn.at).total_seconds()
            # the booked token is for its moment: a turn that started late (the gate was
            # full: slow provider) takes a token of its own, so no stretch of time sees
            # more requests than the budget grants in it
            prepaid = turn.booked and late <= _LATEST_BOOKED_START
            await self.work_on_claimed(
                turn.row.id, partial(self._work, turn.row, prepaid=prepaid), "ci run round failed"
            )
            self._marked.discard(turn.row.id)  # ended without a trigger (deadline, say)
            return True

    def _blocked(self, provider: str, now: datetime) -> bool:
        blocked = self._blocked_until.get(provider)
        return blocked is not None and blocked > now

    def _due(
        self, conn: Connection, *, now: datetime
    ) -> tuple[dict[str, float], Sequence[Row[Any]]]:
        """The tokens each provider's budget holds, and the due runs worth reading for them."""
        budgets = {
            name: (handle.config.requests_per_minute / 60.0, handle.config.burst)
            for name, handle in self.providers.items()
        }
        tokens = ci_runs.tokens_available(conn, budgets, now) if budgets else {}
        # superseded runs come first and need no token to be read; a few more rows than
        # tokens let runs past their deadline or of a removed provider through as well
        limit = min(self.batch, math.ceil(sum(tokens.values())) + self.concurrency)
        return tokens, ci_runs.due_runs(conn, now, limit)

    def _needs_token(self, row: Row[Any], now: datetime) -> bool:
        """Whether working on the run starts with a request the budget must grant. Runs to
        abandon, to fail at their deadline or of a provider no longer configured end
        whatever the budget says (a cancel it refuses leaves the CI run running, logged)."""
        return (
            row.rollout_status != "superseded"
            and now < row.deadline_at
            and row.provider in self.providers
        )

    def _claim_round(
        self, conn: Connection, *, rows: Sequence[Row[Any]], now: datetime
    ) -> list[_Turn]:
        """Claim the round's runs, each with its first request booked on the provider's
        budget (runs that need no request, none): a provider's runs ``1/rate`` apart,
        squeezed to fit within one round interval, and never sooner than its bucket has a
        token. A run another replica took or changed since it was read is left alone; one
        whose booking would fall after the round is given back and books nothing. A few
        statements whatever the number of runs: a long write would hold up the hook calls
        queued behind it."""
        claimed = set(ci_runs.claim_as_seen(conn, rows, self.replica, now, now + self.lease))
        mine = [(row, self._needs_token(row, now)) for row in rows if row.id in claimed]
        count = Counter(row.provider for row, needs_token in mine if needs_token)
        buckets: dict[str, TokenBucket] = {}
        booked: Counter[str] = Counter()
        horizon = now + timedelta(seconds=self.interval)
        turns: list[_Turn] = []
        for row, needs_token in mine:
            at = now
            if needs_token:
                config = self.providers[row.provider].config
                rate = config.requests_per_minute / 60.0
                if row.provider not in buckets:
                    buckets[row.provider] = ci_runs.lock_bucket(
                        conn, row.provider, now, rate, config.burst
                    )
                step = min(1.0 / rate, self.interval / count[row.provider])
                earliest = now + timedelta(seconds=booked[row.provider] * step)
                at, bucket = buckets[row.provider].book(earliest)
                if at > horizon:
                    continue
                buckets[row.provider] = bucket
                booked[row.provider] += 1
            mark = needs_token and row.status == "pending" and row.trigger_started_at is None
            turns.append(_Turn(row, at, booked=needs_token, marked=mark))
        for provider in booked:
            ci_runs.store_bucket(conn, provider, buckets[provider])
        ci_runs.mark_triggers_begun(conn, [turn.row.id for turn in turns if turn.marked], now)
        kept = {turn.row.id for turn in turns}
        if len(kept) < len(claimed):
            ci_runs.release_all(conn, claimed - kept, owner=self.replica)
        return turns

    async def _work(self, row: Row[Any], *, prepaid: bool) -> None:
        """Work on a claimed run; ``prepaid``: its claim took its first request's token."""
        with prepaid_token(row.provider) if prepaid else contextlib.nullcontext():
            await self._work_with(row, self.providers.get(row.provider))

    async def _work_with(self, row: Row[Any], handle: ProviderHandle | None) -> None:
        now = self.clock.now()
        if handle is None:
            await self._finish(
                row, "failed", f"CI provider {row.provider!r} is no longer configured", "puerta"
            )
            return
        ref = RunRef.from_dict(row.ref) if row.ref else None
        if row.rollout_status == "superseded":
            how = await self._cancel_or_retry(row, handle, ref)
            if how is not None:
                reason = f"a new revision replaced this rollout; {how}"
                await self._finish(row, "abandoned", reason, "puerta")
            return
        if now >= row.deadline_at:
            how = await self._cancel_or_retry(row, handle, ref)
            if how is None:
                return
            took = format_duration(row.deadline_at - row.created_at)
            error = row.last_error if not _cancel_failed(row) else None
            why = f"; last error: {error}" if error else ""
            state = f" (last seen {row.raw})" if row.raw else ""
            left = f"; {how}" if how not in (_CANCELLED, _NOT_STARTED) else ""
            await self._finish(
                row,
                "failed",
                f"did not finish within its deadline of {took}{state}{why}{left}",
                "deadline",
            )
            return
        if row.status == "pending":
            await self._trigger(row, handle)
        else:
            assert ref is not None
            await self._poll(row, handle, ref)

    # ---- trigger ----------------------------------------------------------------------------

    async def _trigger(self, row: Row[Any], handle: ProviderHandle) -> None:
        self._marked.discard(row.id)  # from here on, the trigger may reach the provider
        target = target_of(row)
        if row.trigger_started_at is not None and not await self._none_started(row, handle, target):
            return
        try:
            ref = await handle.provider.trigger(target)
        except PermanentError as exc:
            self._count_error(row.provider, exc)
            await self._finish(row, "failed", f"could not start the run: {exc}", "trigger")
            return
        except ProviderError as exc:
            # an answer (an error status) or our own budget means no run was started; a
            # timeout or a dropped connection leaves it unknown, and the mark stays
            started_unknown = exc.status is None and not isinstance(exc, BudgetExhausted)
            note = self._unknown_outcome(row, handle, target) if started_unknown else None
            await self._trouble(row, handle, exc, clear_trigger=not started_unknown, note=note)
            return
        await self._started(row, handle, ref, source="trigger")

    async def _none_started(self, row: Row[Any], handle: ProviderHandle, target: Target) -> bool:
        """Before a marked run is triggered again: whether no earlier trigger started a run.
        False when this turn is over: the earlier run was found and adopted, or the lookup
        must wait (too soon after the mark; provider trouble). See the module docstring."""
        provider = handle.provider
        if not provider.can_find(target):
            self._warn_again(row, "the provider cannot look for the run by its correlation id")
            return True
        now = self.clock.now()
        # from when the earlier call ended (its trouble was saved then), not when it began:
        # a dispatch GitHub accepted just before a timeout is listed seconds after that
        settled = max(row.trigger_started_at, row.updated_at) + _LIST_SETTLE
        if now < settled:
            await self._save(row, {"next_check_at": settled}, event=None)
            return False
        try:
            found = await provider.find(target, row.trigger_started_at - _FIND_MARGIN)
        except PermanentError as exc:  # CannotTell, or the lookup is refused: cannot say
            self._warn_again(row, str(exc))
            return True
        except ProviderError as exc:
            note = "looking for the run an earlier trigger may have started"
            await self._trouble(row, handle, exc, note=note)
            return False
        if found is None:
            log.info("no run of an earlier trigger found; triggering", run=row.id)
            return True
        await self._started(row, handle, found, source="found")
        return False

    def _warn_again(self, row: Row[Any], why: str) -> None:
        """Say that CI may now run this twice: nobody can tell whether the earlier trigger
        started a run, so triggering again is the only way not to lose it."""
        log.warning(
            "triggering again: an earlier trigger call may have reached the provider "
            "(its replica stopped, or the call timed out) and its run cannot be looked for; "
            "CI may run it twice",
            run=row.id,
            provider=row.provider,
            why=why,
        )

    @staticmethod
    def _unknown_outcome(row: Row[Any], handle: ProviderHandle, target: Target) -> str:
        """What ``last_error`` adds when a trigger's outcome is unknown."""
        if handle.provider.can_find(target):
            then = "Puerta looks for that run before it triggers again"
        else:
            then = "Puerta cannot look for that run and will trigger again"
        return f"the trigger may have started a run on {row.provider}; {then}"

    async def _started(
        self, row: Row[Any], handle: ProviderHandle, ref: RunRef, *, source: str
    ) -> None:
        """Store the run a trigger started (``source`` ``trigger``) or the one an earlier
        trigger started and a lookup found (``found``)."""
        timing = _timing(handle)
        now = self.clock.now()
        raw = "triggered" if source == "trigger" else "found"
        changes = {
            "status": "queued",
            "ref": ref.as_dict(),
            "external_id": ref.id,
            "url": ref.url,
            "raw": raw,
            "reason": "",
            "triggered_at": now,
            "updated_at": now,
            "last_error": None,
            "error_since": None,
            "backoff_s": timing.poll,
            "next_check_at": now + timedelta(seconds=timing.poll),
        }
        await self._save(row, changes, event=("queued", raw, ref.url, source))
        if source == "trigger":
            message = "e2e run triggered"
        else:
            message = "found the run an earlier trigger started"
        log.info(message, run=row.id, provider=row.provider, external_id=ref.id, url=ref.url)

    # ---- poll -------------------------------------------------------------------------------

    async def _poll(self, row: Row[Any], handle: ProviderHandle, ref: RunRef) -> None:
        try:
            status = await handle.provider.status(ref, target_of(row))
        except ProviderError as exc:
            await self._trouble(row, handle, exc)
            return
        await self._apply(row, handle, ref, status)

    async def _apply(
        self, row: Row[Any], handle: ProviderHandle, ref: RunRef, status: RunStatus
    ) -> None:
        timing = _timing(handle)
        now = self.clock.now()
        new_status = _STATUS_OF[status.state]
        new_ref = status.ref or ref
        changed = new_status != row.status or status.raw != row.raw
        backoff = (
            timing.poll if changed else min(timing.max_poll, max(timing.poll, row.backoff_s * 1.5))
        )
        changes: dict[str, Any] = {
            "status": new_status,
            "raw": status.raw[:200],
            "reason": status.reason,
            "url": status.url or new_ref.url or row.url,
            "parts": [part.as_dict() for part in status.parts],
            "ref": new_ref.as_dict(),
            "external_id": new_ref.id,
            "polls": row.polls + 1,
            "last_error": None,
            "error_since": None,
            "updated_at": now,
            "backoff_s": backoff,
            "next_check_at": now + timedelta(seconds=backoff),
        }
        if status.state.terminal:
            changes["finished_at"] = now
            self._count_end(row.provider, new_status)
        event = (new_status, status.raw, changes["url"], "poll") if changed else None
        await self._save(row, changes, event=event, reason=status.reason)
        if changed:
            log.info(
                "e2e run status",
                run=row.id,
                provider=row.provider,
                status=new_status,
                raw=status.raw,
                reason=status.reason,
            )

    # ---- shared -----------------------------------------------------------------------------

    async def _trouble(
        self,
        row: Row[Any],
        handle: ProviderHandle,
        exc: ProviderError,
        *,
        clear_trigger: bool = False,
        note: str | None = None,
        cancelling: bool = False,
    ) -> None:
        """The provider could not answer: keep the run as it is, note why, check later.
        ``note``: added to the error people see. ``cancelling``: a cancel failed; the error
        is dated now (a replaced rollout's run is then due by its next check, not at once,
        see ``ci_runs.due_runs``)."""
        timing = _timing(handle)
        now = self.clock.now()
        cleared: dict[str, Any] = {"trigger_started_at": None} if clear_trigger else {}
        since = now if cancelling else (row.error_since or now)
        if isinstance(exc, BudgetExhausted):  # our own budget: no fault of the provider's
            wait = exc.retry_after or timing.poll
            # no other run of this provider can be served before then either
            self._blocked_until[row.provider] = now + timedelta(seconds=wait)
            changes: dict[str, Any] = {"next_check_at": now + timedelta(seconds=wait), **cleared}
            if cancelling:
                changes.update(last_error=_with_note(exc, note, first=True), error_since=since)
            await self._save(row, changes, event=None)
            return
        self._count_error(row.provider, exc)
        backoff = min(timing.max_poll, max(timing.poll, row.backoff_s * 2))
        if isinstance(exc, RateLimited) and exc.retry_after is not None:
            # the provider said how long: leave it alone that long, from this replica
            backoff = max(exc.retry_after, 1.0)
            self._blocked_until[row.provider] = now + timedelta(seconds=backoff)
        changes = {
            "last_error": _with_note(exc, note, first=cancelling),
            "error_since": since,
            "updated_at": now,
            "backoff_s": backoff,
            "next_check_at": now + timedelta(seconds=backoff),
            **cleared,
        }
        await self._save(row, changes, event=None)
        log.warning(
            "ci provider trouble",
            run=row.id,
            provider=row.provider,
            error=str(exc),
            retry_in_s=round(backoff, 1),
        )

    def _count_error(self, provider: str, exc: ProviderError) -> None:
        if self.metrics is None:
            return
        kind = "rate_limited" if isinstance(exc, RateLimited) else "transient"
        if isinstance(exc, PermanentError):
            kind = "permanent"
        self.metrics.ci_provider_errors.labels(provider, kind).inc()

    def _count_end(self, provider: str, status: str) -> None:
        if self.metrics is not None:
            self.metrics.e2e_runs_finished.labels(provider, status).inc()

    async def _cancel_or_retry(
        self, row: Row[Any], handle: ProviderHandle, ref: RunRef | None
    ) -> str | None:
        """Cancel a run that is to end (replaced rollout, deadline) and say how it went; None
        when the cancel failed for a passing reason and is retried later (the run stays
        active until ``_CANCEL_GRACE`` after its deadline, see the module docstring)."""
        try:
            return await self._cancel(row, handle, ref)
        except ProviderError as exc:
            if (
                isinstance(exc, PermanentError)
                or self.clock.now() >= row.deadline_at + _CANCEL_GRACE
            ):
                log.warning(
                    "could not cancel a ci run", run=row.id, provider=handle.name, error=str(exc)
                )
                return f"{_LEFT_RUNNING} (could not cancel it: {exc})"
            await self._trouble(row, handle, exc, note=_CANCEL_FAILED, cancelling=True)
            return None

    async def _cancel(self, row: Row[Any], handle: ProviderHandle, ref: RunRef | None) -> str:
        """Cancel the run on CI; what happened, for the run's reason. A run whose id Puerta
        never learnt (a trigger's answer lost, GitHub's 204) is looked for first."""
        provider = handle.provider
        if ref is not None and await provider.cancel(ref):
            return _CANCELLED
        if ref is not None and ref.id is not None:
            return _LEFT_RUNNING  # the API cannot cancel it
        if ref is None and row.trigger_started_at is None:
            return _NOT_STARTED
        target = target_of(row)
        if not provider.can_find(target):
            return _LEFT_RUNNING if ref is not None else _MAYBE_LEFT_RUNNING
        since = row.trigger_started_at or row.created_at
        try:
            found = await provider.find(target, since - _FIND_MARGIN)
        except PermanentError as exc:
            log.warning("cannot look for a ci run to cancel", run=row.id, error=str(exc))
            return _LEFT_RUNNING if ref is not None else _MAYBE_LEFT_RUNNING
        if found is None:
            if self.clock.now() < since + _LIST_SETTLE:
                raise TransientError(f"{row.provider}: the run may not be listed yet")
            return _NOT_STARTED if ref is None else _LEFT_RUNNING
        return _CANCELLED if await provider.cancel(found) else _LEFT_RUNNING

    async def _finish(self, row: Row[Any], status: str, reason: str, source: str) -> None:
        now = self.clock.now()
        changes = {
            "status": status,
            "reason": reason,
            "finished_at": now,
            "updated_at": now,
            "next_check_at": now,
        }
        await self._save(row, changes, event=(status, row.raw, row.url, source), reason=reason)
        self._count_end(row.provider, status)
        log.info("e2e run ended", run=row.id, provider=row.provider, status=status, reason=reason)

    async def _save(
        self,
        row: Row[Any],
        changes: dict[str, Any],
        *,
        event: tuple[str, str | None, str | None, str] | None,
        reason: str | None = None,
    ) -> None:
        now = self.clock.now()

        def write(conn: Connection) -> bool:
            saved = ci_runs.save(conn, row.id, self.replica, **changes)
            if saved and event is not None:
                status, raw, url, source = event
                why = reason if reason is not None else changes.get("reason")
                ci_runs.add_event(
                    conn,
                    run_id=row.id,
                    at=now,
                    status=status,
                    raw=(raw or "")[:200] or None,
                    reason=why,
                    url=url,
                    source=source,
                )
                notice = run_notice(row, status, source, why or "", url, now)
                if notice is not None and self.notifications.routes:
                    record_notice(
                        conn, self.notifications, canary_id=row.canary_id, notice=notice, now=now
                    )
            return saved

        # what the provider already did must be stored, even across a database restart
        within = self.lease.total_seconds() / 2
        if await self.db.write_persistently(write, within=within):
            if event is not None:
                self.changes.notify()
        else:
            log.info("ci run changed elsewhere; dropped this view of it", run=row.id)
