"""Deliver the notification outbox: every item once, in order within each rollout and
destination, through any outage.

Each round a replica reads the items that are due and first in line for their rollout and
destination (``store/outbox.deliverable``), claims each with a short lease, and hands it to its
sink. Outcomes:

* delivered: ``sent`` (with the message id, e.g. Slack's ``ts``);
* a transient failure (outage, 5xx, timeout): the item stays ``pending`` and is tried again
  with exponential backoff; everything behind it in its rollout waits, so order holds;
* a rate limit (429 + ``Retry-After``): the item and its channel wait that long, on every
  replica;
* a permanent failure (``channel_not_found``, ``not_in_channel``, a bad token): ``failed``
  with the error, visible in ``GET /api/v1/notifications``; the items behind it go on (a reply
  whose parent could not be posted fails with that reason too).

Pacing is per workspace, not per replica: each lane (a Slack channel, the DMs, a Teams or
webhook destination) has a "free at" instant in the database (``notification_pacing``). A
replica claims an item only in a transaction that finds its lane free, and books the lane
``channel_interval`` ahead (the lane's row is locked meanwhile), so N replicas together send
about one message per second to a channel; a 429's ``Retry-After`` holds the lane for all.

The parent message of a rollout (or of an event episode, for a canary with no Puerta
rollout) is composed when it is delivered, from the rollout as stored then, so it always
shows the latest state; an update that would change nothing is skipped. A direct message goes
to the commit's author, found by ``service/commit_resolver.py``; when that cannot be done the
item is ``skipped`` and the reason is posted once in the rollout's thread. The worker never
crashes its loop on a database or sink hiccup.

The one window that is not exactly-once: a replica that dies after the sink accepted a message
and before the outcome was stored leaves the item pending; it is sent again after the lease
runs out (one HTTP round trip, as for CI triggers).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import structlog
from sqlalchemy import Row
from sqlalchemy.engine import Connection

from puerta.clock import Clock
from puerta.domain.durations import parse_duration
from puerta.domain.notices import (
    CommitLine,
    Notice,
    NoticeKind,
    RolloutSummary,
    dm_text,
    parent_text,
    raw_text,
    reply_text,
)
from puerta.external import PermanentError, ProviderError, RateLimited
from puerta.metrics import Metrics
from puerta.notify.base import ChatSink, EventSink, Message
from puerta.notify.config import NotificationsConfig
from puerta.service.commit_resolver import CommitResolver, RolloutTarget, commit_line
from puerta.service.load_runner import replica_name
from puerta.service.notices import record_notice, slack_destination
from puerta.service.worker import BackgroundWorker
from puerta.store import outbox
from puerta.store.db import Database

log = structlog.get_logger("puerta.notify")

MAX_BACKOFF = 300.0  # seconds


class NotificationWorker(BackgroundWorker):
    name = "puerta-notifier"

    def __init__(
        self,
        db: Database,
        clock: Clock,
        config: NotificationsConfig,
        *,
        chat: ChatSink | None,
        event_sinks: Mapping[str, EventSink],
        resolver: CommitResolver,
        replica: str | None = None,
        lease: timedelta = timedelta(seconds=60),
        interval: float = 1.0,
        batch: int = 200,
        metrics: Metrics | None = None,
    ) -> None:
        super().__init__(interval)
        self.db = db
        self.clock = clock
        self.config = config
        self.chat = chat
        self.event_sinks = event_sinks
        self.resolver = resolver
        self.replica = replica or replica_name()
        self.lease = lease
        self.batch = batch
        self.metrics = metrics
        spacing = config.slack.channel_interval if config.slack else "0s"
        self.channel_spacing = parse_duration(spacing)

    async def round(self) -> None:
        while not self.stopping and await self.tick():
            pass  # keep going while there is work

    async def release(self, item_id: int) -> None:
        await self.db.write(partial(outbox.release, item_id=item_id, owner=self.replica))

    # ---- one round --------------------------------------------------------------------------

    async def tick(self) -> int:
        """Deliver what is due now; returns how many items were worked on."""
        now = self.clock.now()
        due = await self.db.read(lambda c: outbox.deliverable(c, now, self.batch))
        by_channel: dict[str, list[Row[Any]]] = {}
        for row in due:
            by_channel.setdefault(self._pace_key(row), []).append(row)
        worked = 0
        lanes = [self._lane(rows) for rows in by_channel.values()]
        for done in await asyncio.gather(*lanes):
            worked += done
        return worked

    def _pace_key(self, row: Row[Any]) -> str:
        """Messages to one channel are paced (Slack: about one per second per channel)."""
        destination: str = row.destination
        if destination.startswith(("slack:", "slack-raw:")):
            return "slack#" + destination.split(":", 1)[1]
        return destination

    async def _lane(self, rows: list[Row[Any]]) -> int:
        worked = 0
        for row in rows:
            if self.stopping:
                break  # shutting down: take nothing new
            now = self.clock.now()
            taken = await self.db.write(partial(self._claim_in_turn, row=row, now=now))
            if taken is None:
                continue  # another replica has it
            if taken > 0:
                break  # the lane is busy (for every replica): the next round takes the rest
            worked += 1
            await self.work_on_claimed(
                row.id, partial(self._deliver, row), "notification delivery crashed"
            )
        return worked

    def _claim_in_turn(self, conn: Connection, *, row: Row[Any], now: datetime) -> float | None:
        """Take the item if its lane is free, booking the lane ``channel_interval`` ahead, in
        one transaction that holds the lane's row: replicas take turns on a channel. Returns
        0.0 when taken, the seconds the lane is still busy, or None when the item is gone."""
        lane = self._pace_key(row)
        spaced = self.channel_spacing > timedelta(0)
        busy = outbox.lane_wait(conn, lane, now, lock=spaced)
        if busy > 0:
            return busy
        claimed = outbox.claim(
            conn,
            item_id=row.id,
            owner=self.replica,
            now=now,
            until=now + self.lease,
            seen_attempts=row.attempts,
        )
        if not claimed:
            return None
        if spaced:
            outbox.hold_lane(conn, lane, now + self.channel_spacing)
        return 0.0

    # ---- delivery ---------------------------------------------------------------------------

    async def _deliver(self, row: Row[Any]) -> None:
        notice = Notice.from_dict(row.notice)
        handlers = {
            "parent": self._parent,
            "reply": self._reply,
            "raw": self._raw,
            "event": self._event,
            "dm": self._dm,
        }
        try:
            external_id = await handlers[row.item](row, notice)
        except PermanentError as exc:
            await self._failed(row, str(exc))
            return
        except RateLimited as exc:
            wait = exc.retry_after if exc.retry_after is not None else self._backoff(row)
            await self._retry(row, str(exc), wait, hold_lane=True)
            return
        except ProviderError as exc:
            await self._retry(row, str(exc), self._backoff(row))
            return
        except _Skip as skip:
            await self._skipped(row, notice, skip.reason)
            return
        await self._sent(row, external_id)

    def _backoff(self, row: Row[Any]) -> float:
        return float(min(MAX_BACKOFF, 2 ** min(row.attempts, 10)))

    def _channel(self, row: Row[Any]) -> str:
        return str(row.destination).split(":", 1)[1]

    def _need_chat(self) -> ChatSink:
        if self.chat is None:
            raise PermanentError("no Slack configured (notifications.slack)")
        return self.chat

    async def _parent(self, row: Row[Any], notice: Notice) -> str | None:
        chat = self._need_chat()
        channel = self._channel(row)
        thread = await self.db.read(
            lambda c: outbox.get_thread(c, row.canary_id, row.rollout_seq, row.destination)
        )
        assert thread is not None
        text = await self._parent_text(row, notice, thread)
        if thread.parent_id is None:
            try:
                ts = await chat.post(channel, Message(text))
            except PermanentError as exc:
                problem = str(exc)
                await self.db.write(
                    lambda c: outbox.update_thread(c, thread.id, parent_error=problem)
                )
                raise
            channel_id = chat.channel_id(channel) or channel
            await self.db.write_persistently(
                lambda c: outbox.update_thread(
                    c, thread.id, parent_id=ts, parent_channel=channel_id, parent_text=text
                ),
                within=self._within,
            )
            return ts
        if text == thread.parent_text:
            return str(thread.parent_id)  # nothing changed: no call
        await chat.update(thread.parent_channel or channel, thread.parent_id, Message(text))
        await self.db.write(lambda c: outbox.update_thread(c, thread.id, parent_text=text))
        return str(thread.parent_id)

    async def _parent_text(self, row: Row[Any], notice: Notice, thread: Row[Any]) -> str:
        episode = row.rollout_seq < 0  # a canary with no Puerta rollout: its event episode
        read = outbox.remembered if episode else outbox.rollout_state
        state = await self.db.read(lambda c: read(c, row.canary_id, row.rollout_seq))
        commit = await self._commit_line(row, notice)
        summary = RolloutSummary(
            namespace=row.namespace,
            name=row.name,
            rollout_seq=abs(row.rollout_seq),
            **self._shown_state(state, notice, episode),
            weight=thread.weight,
            commit=CommitLine(commit) if commit else None,
            repeats=thread.repeats,
            last_repeat=thread.last_repeat,
            episode=episode,
        )
        return parent_text(summary)

    def _shown_state(self, state: Row[Any] | None, notice: Notice, episode: bool) -> dict[str, Any]:
        """What the parent says of the rollout (or event episode) as stored now; the notice
        only stands in for what was never stored."""
        if state is None:
            return {
                "environment": notice.environment,
                "revision": notice.revision,
                "status": "?",
                "phase": notice.phase,
                "waiting": None,
            }
        if episode:
            return {
                "environment": state.environment or notice.environment,
                "revision": state.revision or notice.revision,
                "status": state.status or "?",
                "phase": state.phase or "",
                "waiting": None,
            }
        return {
            "environment": state.environment,
            "revision": state.revision,
            "status": state.status,
            "phase": state.phase,
            "waiting": state.waiting_reason,
        }

    async def _commit_line(self, row: Row[Any], notice: Notice) -> str | None:
        try:
            return commit_line(await self.resolver.commit(self._target(row, notice)))
        except ProviderError as exc:  # the parent does not wait for an outage elsewhere
            return f"commit: not known yet ({exc})"

    def _target(self, row: Row[Any], notice: Notice) -> RolloutTarget:
        return RolloutTarget(
            row.canary_id, row.namespace, row.name, row.rollout_seq, notice.environment
        )

    async def _reply(self, row: Row[Any], notice: Notice) -> str | None:
        chat = self._need_chat()
        thread = await self.db.read(
            lambda c: outbox.get_thread(c, row.canary_id, row.rollout_seq, row.destination)
        )
        if thread is None or thread.parent_id is None:
            why = thread.parent_error if thread is not None else None
            raise PermanentError(f"no thread: the parent message could not be posted ({why})")
        return await chat.post(
            self._channel(row), Message(reply_text(notice)), thread=thread.parent_id
        )

    async def _raw(self, row: Row[Any], notice: Notice) -> str | None:
        return await self._need_chat().post(self._channel(row), Message(raw_text(notice)))

    async def _event(self, row: Row[Any], notice: Notice) -> str | None:
        sink = self.event_sinks.get(row.destination)
        if sink is None:
            raise PermanentError(f"{row.destination} is no longer configured")
        fields = {**notice.as_dict(), "delivery_id": f"puerta-{row.id}"}
        await sink.send(Message(reply_text(notice), fields=fields))
        return None

    async def _dm(self, row: Row[Any], notice: Notice) -> str | None:
        chat = self._need_chat()
        commit = await self.resolver.commit(self._target(row, notice))
        if commit is None:
            raise _Skip("commit tracking is not configured (commits: in the policy)")
        user, why = await self.resolver.chat_user(commit)
        if user is None:
            raise _Skip(why)
        channel = await chat.open_dm(user)
        short = f"{commit.repository}@{(commit.sha or '')[:7]}" if commit.sha else None
        return await chat.post(channel, Message(dm_text(notice, short)))

    # ---- outcomes ---------------------------------------------------------------------------

    @property
    def _within(self) -> float:
        """How long to keep trying to store what a sink already did (half the lease)."""
        return self.lease.total_seconds() / 2

    async def _sent(self, row: Row[Any], external_id: str | None) -> None:
        now = self.clock.now()
        await self.db.write_persistently(
            lambda c: outbox.finish(
                c,
                row.id,
                self.replica,
                status="sent",
                sent_at=now,
                updated_at=now,
                attempts=row.attempts + 1,
                external_id=external_id,
                last_error=None,
            ),
            within=self._within,
        )
        self._count(row, "sent")

    async def _retry(
        self, row: Row[Any], error: str, wait: float, *, hold_lane: bool = False
    ) -> None:
        """Try the item again in ``wait`` seconds; ``hold_lane`` (a rate limit): nothing else
        goes to its lane before then either, from any replica."""
        now = self.clock.now()
        until = now + timedelta(seconds=wait)

        def work(conn: Connection) -> None:
            if hold_lane:  # the lane's row first, then the item's, as a claim locks them
                outbox.hold_lane(conn, self._pace_key(row), until)
            outbox.finish(
                conn,
                row.id,
                self.replica,
                attempts=row.attempts + 1,
                last_error=error[:1000],
                updated_at=now,
                next_attempt_at=until,
            )

        await self.db.write(work)
        log.warning(
            "notification delayed",
            item=row.id,
            destination=row.destination,
            error=error,
            retry_in_s=wait,
        )

    async def _failed(self, row: Row[Any], error: str) -> None:
        now = self.clock.now()
        await self.db.write(
            lambda c: outbox.finish(
                c,
                row.id,
                self.replica,
                status="failed",
                attempts=row.attempts + 1,
                last_error=error[:1000],
                updated_at=now,
            )
        )
        self._count(row, "failed")
        log.error("notification failed", item=row.id, destination=row.destination, error=error)

    async def _skipped(self, row: Row[Any], notice: Notice, reason: str) -> None:
        """The author cannot be told: record why, and say so once in the rollout's thread."""
        now = self.clock.now()

        def work(conn: Connection) -> None:
            outbox.finish(
                conn,
                row.id,
                self.replica,
                status="skipped",
                attempts=row.attempts + 1,
                last_error=reason[:1000],
                updated_at=now,
            )
            commit = outbox.rollout_commit(conn, row.canary_id, row.rollout_seq)
            said = commit is not None and commit.reported
            if commit is not None and not said:
                outbox.update_rollout_commit(conn, commit.id, reported=True, chat_reason=reason)
            # once per rollout, also when no commit was looked up (commit tracking is off)
            if said or not outbox.claim_dm_note(conn, row.canary_id, row.rollout_seq, now):
                return
            note = Notice(
                kind=NoticeKind.NOTE,
                namespace=notice.namespace,
                name=notice.name,
                rollout_seq=notice.rollout_seq,
                environment=notice.environment,
                revision=notice.revision,
                at=now,
                text=f"the commit's author gets no direct message: {reason}",
                episode=notice.episode,
            )
            config = self._without_dms()
            record_notice(conn, config, canary_id=row.canary_id, notice=note, now=now)

        await self.db.write(work)
        self._count(row, "skipped")

    def _without_dms(self) -> NotificationsConfig:
        dms = self.config.direct_messages.model_copy(update={"enabled": False})
        return self.config.model_copy(update={"direct_messages": dms})

    def _count(self, row: Row[Any], status: str) -> None:
        if self.metrics is not None:
            kind = str(row.destination).split(":", 1)[0]
            self.metrics.notifications.labels(kind, status).inc()


class _Skip(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


__all__ = ["NotificationWorker", "slack_destination"]
