"""Write notices to the outbox, in the caller's transaction (the hook call, the admin action or
the CI run change that causes them), so a notice exists exactly when its cause was committed.

Per route (``notify/config.py``): the central channel gets the rollout's parent message
(created with the thread, refreshed after every notice) and the notice as a reply, unless it is
identical to the previous reply, in which case it is folded into the parent ("repeated x12");
the raw channel gets every notice; Teams gets each notice once (identical repeats folded too);
the JSON webhook gets every notice; the commit's author gets the curated kinds by DM.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Connection

from puerta.domain.notices import Notice
from puerta.notify.config import NotificationsConfig, RouteConfig
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
    """Enqueue what ``notice`` means for each destination; returns how many items."""
    route_index, route = _route(config, notice)
    if route is None:
        return 0
    seq = notice.rollout_seq
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

    if route.channel and seq > 0:
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
    if dms.enabled and route.direct_messages and seq > 0 and notice.kind in dms.kinds:
        put("dm", "dm")
    return count


def _route(config: NotificationsConfig, notice: Notice) -> tuple[int, RouteConfig | None]:
    for index, route in enumerate(config.routes):
        if route.match.matches(notice.environment, notice.namespace):
            return index, route
    return -1, None
