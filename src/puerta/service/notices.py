"""Write notices to the outbox, in the caller's transaction (the hook call, the admin action or
the CI run change that causes them), so a notice exists exactly when its cause was committed.

Per route (``notify/config.py``): the central channel gets the rollout's parent message
(created with the thread, refreshed after every notice) and the notice as a reply, unless it is
identical to the previous reply, in which case it is folded into the parent ("repeated x12");
the raw channel gets every notice; Teams gets each notice once (identical repeats folded too);
the JSON webhook gets every notice; the commit's author gets the curated kinds by DM.

A notice is keyed by its rollout, or, for a canary with no Puerta rollout, by the event
episode it belongs to (``domain/notices.episode_step``): the episode is found or opened here,
in the hook call's transaction, under the canary's row lock, so replicas agree on it. An
episode that ends gets its own succeeded / failed notice (and so the author's DM), as a
rollout does at post-rollout. This module also remembers, per rollout, what later explains a
failure: the reason Puerta gave when it answered the rollback hook "roll back", and the last
Warning event that says why.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Row
from sqlalchemy.engine import Connection

from puerta.domain.decisions import Decision, Verdict
from puerta.domain.hooks import FlaggerPayload, HookType
from puerta.domain.notices import (
    EpisodeStep,
    Notice,
    NoticeKind,
    episode_key,
    episode_label,
    episode_step,
    event_revision,
    failure_reason,
    tells_why,
)
from puerta.domain.rollouts import RolloutStatus
from puerta.notify.config import NotificationsConfig, RouteConfig
from puerta.service.hook_notices import hook_notices
from puerta.store import outbox


def slack_destination(channel: str) -> str:
    return f"slack:{channel}"


def record_notice(
    conn: Connection,
    config: NotificationsConfig,
    *,
    canary_id: int,
    notice: Notice,
    now: datetime,
) -> int:
    """Enqueue what ``notice`` means for each destination; returns how many items. An event
    of a canary with no Puerta rollout goes into its event episode first (which may bring
    the episode's end notice along)."""
    route_index, route = _route(config, notice)
    if route is None:
        return 0
    notices = [notice]
    if notice.kind is NoticeKind.EVENT and notice.thread_key == 0:
        notices = _into_episode(conn, route, canary_id, notice, now)
    elif notice.rollout_seq > 0:
        _remember(conn, route, canary_id, notice, now)
    return sum(_enqueue(conn, config, route_index, route, canary_id, n, now) for n in notices)


def _enqueue(
    conn: Connection,
    config: NotificationsConfig,
    route_index: int,
    route: RouteConfig,
    canary_id: int,
    notice: Notice,
    now: datetime,
) -> int:
    """One notice's items for its route's destinations, keyed by its thread key: the thread
    (parent and reply, repeats folded), the raw channel, Teams, the webhook, the DM."""
    seq = notice.thread_key
    payload = notice.as_dict()
    count = 0

    def put(destination: str, item: str) -> None:
        nonlocal count
        outbox.enqueue(
            conn,
            canary_id=canary_id,
            rollout_seq=seq,
            destination=destination,
            item=item,
            notice=payload,
            status="pending",
            attempts=0,
            created_at=now,
            next_attempt_at=now,
            updated_at=now,
        )
        count += 1

    if route.channel and seq != 0:
        destination = slack_destination(route.channel)
        thread, created = outbox.thread(conn, canary_id, seq, destination, now)
        if created:
            put(destination, "parent")
        changes: dict[str, object] = {"updated_at": now}
        if notice.weight is not None:
            changes["weight"] = notice.weight
        if thread.last_fold_key == notice.fold_key:
            changes.update(repeats=thread.repeats + 1, last_repeat=notice.text)
        else:
            changes.update(last_fold_key=notice.fold_key, repeats=0, last_repeat=None)
            put(destination, "reply")
        outbox.update_thread(conn, thread.id, **changes)
        last = outbox.last_pending_item(conn, canary_id, seq, destination)
        if not created and last != "parent":
            put(destination, "parent")  # the parent shows the state after this notice
    if route.raw_channel:
        put(f"slack-raw:{route.raw_channel}", "raw")
    if route.teams is not None:
        destination = f"teams:{route_index}"
        thread, _ = outbox.thread(conn, canary_id, seq, destination, now)
        if thread.last_fold_key != notice.fold_key:
            outbox.update_thread(conn, thread.id, last_fold_key=notice.fold_key, updated_at=now)
            put(destination, "event")
    if route.webhook is not None:
        put(f"webhook:{route_index}", "event")
    dms = config.direct_messages
    if dms.enabled and route.direct_messages and seq != 0 and notice.kind in dms.kinds:
        put("dm", "dm")
    return count


# ---- what a hook call tells, and what is remembered from it -----------------------------


def hook_call_notices(
    conn: Connection,
    canary_id: int,
    before: Row[Any] | None,
    rollout: Row[Any] | None,
    hook: HookType,
    payload: FlaggerPayload,
    environment: str | None,
    decision: Decision,
    now: datetime,
) -> list[Notice]:
    """The notices of one hook call (``hook_notices``). Two cheap checks on the hot path; the
    database only when Puerta answers the rollback hook "roll back" (the reason is kept: by
    post-rollout Flagger says only "manual webhook invoked") or a rollout has just failed."""
    if rollout is not None and hook is HookType.ROLLBACK and decision.verdict is Verdict.ROLLBACK:
        outbox.remember(conn, canary_id, rollout.seq, now, rollback_reason=decision.reason)
    failure = None
    if (
        hook is HookType.POST_ROLLOUT
        and rollout is not None
        and rollout.status == RolloutStatus.FAILED.value
    ):
        same = before if before is not None and before.id == rollout.id else None
        if same is None or same.status != rollout.status:
            failure = _why_failed(conn, canary_id, same, rollout)
    return hook_notices(before, rollout, hook, payload, environment, decision, now, failure)


def _why_failed(
    conn: Connection, canary_id: int, before: Row[Any] | None, rollout: Row[Any]
) -> str:
    """What failed the rollout (``before``: its row before this call, when it is the same
    rollout: what it waited for is cleared once it failed)."""
    kept = outbox.remembered(conn, canary_id, rollout.seq)
    return failure_reason(
        rollback=kept.rollback_reason if kept is not None else None,
        waiting_hook=before.waiting_hook if before is not None else None,
        waiting_reason=before.waiting_reason if before is not None else None,
        last_warning=kept.last_warning if kept is not None else None,
    )


def _remember(
    conn: Connection, route: RouteConfig, canary_id: int, notice: Notice, now: datetime
) -> None:
    """For a Puerta rollout: keep the last Warning event that says why (a failure's reason),
    and end the event episode of a canary that has just got its first rollout."""
    if notice.kind is NoticeKind.EVENT and notice.warning and tells_why(notice.text):
        outbox.remember(conn, canary_id, notice.rollout_seq, now, last_warning=notice.text)
    if notice.rollout_seq == 1:  # episodes exist only before a canary's first rollout
        episode = outbox.open_episode(conn, canary_id)
        if episode is not None:
            _end(conn, episode, "superseded", now)
            _refresh_parent(conn, route, canary_id, episode.rollout_seq, notice, now)


# ---- event episodes ----------------------------------------------------------------------


def _into_episode(
    conn: Connection, route: RouteConfig, canary_id: int, notice: Notice, now: datetime
) -> list[Notice]:
    """The event, placed in the canary's event episode (opened, or the open one ended and a
    new one opened, as the event says), followed by the episode's succeeded / failed notice
    when the event ends it. An event that belongs to no episode stays as it is (key 0)."""
    current = outbox.open_episode(conn, canary_id)
    step = episode_step(
        current.opened_by if current is not None else None,
        notice.text,
        notice.phase,
        notice.revision,
    )
    if not step.attach:
        return [notice]
    if step.supersede and current is not None:
        _end(conn, current, "superseded", now)
        _refresh_parent(conn, route, canary_id, current.rollout_seq, notice, now)
    if step.open or current is None:
        current = outbox.open_new_episode(
            conn,
            canary_id,
            now,
            opened_by=episode_key(notice.text, notice.revision),
            environment=notice.environment,
            revision=notice.revision,
            phase=notice.phase,
        )
    placed = replace(notice, episode=-current.rollout_seq)
    changes = _episode_changes(current, step, notice, now)
    outbox.update_episode(conn, current.id, **changes)
    if step.close_as is None:
        return [placed]
    return [placed, _episode_end(placed, step, changes.get("revision", current.revision), changes)]


def _episode_changes(
    episode: Row[Any], step: EpisodeStep, notice: Notice, now: datetime
) -> dict[str, Any]:
    changes: dict[str, Any] = {"phase": notice.phase or episode.phase, "updated_at": now}
    if notice.environment:
        changes["environment"] = notice.environment
    revision = event_revision(notice.text, notice.revision)
    if revision:
        changes["revision"] = revision
    changes["last_warning"] = episode.last_warning
    if notice.warning and tells_why(notice.text):
        changes["last_warning"] = notice.text
    if step.close_as is not None:
        changes.update(status=step.close_as, finished_at=now)
    return changes


def _episode_end(
    event: Notice, step: EpisodeStep, revision: str | None, changes: dict[str, Any]
) -> Notice:
    """The succeeded / failed notice of an episode that ``event`` ended: what post-rollout
    says of a Puerta rollout (and what the author hears by DM)."""
    label = episode_label(event.episode)
    if step.close_as == RolloutStatus.SUCCEEDED.value:
        kind, text = NoticeKind.SUCCEEDED, f"{label} promoted"
    else:
        why = failure_reason(
            rollback=None,
            waiting_hook=None,
            waiting_reason=None,
            last_warning=changes.get("last_warning"),
        )
        kind, text = NoticeKind.FAILED, f"{label} failed: {why}"
    return Notice(
        kind=kind,
        namespace=event.namespace,
        name=event.name,
        rollout_seq=0,
        environment=event.environment,
        revision=revision or event.revision,
        at=event.at,
        text=text,
        phase=event.phase,
        episode=event.episode,
    )


def _end(conn: Connection, episode: Row[Any], status: str, now: datetime) -> None:
    outbox.update_episode(conn, episode.id, status=status, finished_at=now, updated_at=now)


def _refresh_parent(
    conn: Connection,
    route: RouteConfig,
    canary_id: int,
    key: int,
    cause: Notice,
    now: datetime,
) -> None:
    """Have the parent of an episode that just ended elsewhere (a newer revision, the
    canary's first Puerta rollout) show it, if it was ever posted."""
    if not route.channel:
        return
    destination = slack_destination(route.channel)
    if outbox.get_thread(conn, canary_id, key, destination) is None:
        return
    if outbox.last_pending_item(conn, canary_id, key, destination) == "parent":
        return
    about = replace(cause, rollout_seq=0, episode=-key)
    outbox.enqueue(
        conn,
        canary_id=canary_id,
        rollout_seq=key,
        destination=destination,
        item="parent",
        notice=about.as_dict(),
        status="pending",
        attempts=0,
        created_at=now,
        next_attempt_at=now,
        updated_at=now,
    )


def _route(config: NotificationsConfig, notice: Notice) -> tuple[int, RouteConfig | None]:
    for index, route in enumerate(config.routes):
        if route.match.matches(notice.environment, notice.namespace):
            return index, route
    return -1, None
