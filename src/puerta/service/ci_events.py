"""Apply what a CI webhook says to the run it is about, in one transaction with the
delivery's deduplication (a redelivered event changes nothing).

A finished run is written at once (status, reason, link), unless it already ended; an event
that does not settle the run (a CircleCI workflow succeeded while others may still run, a
GitHub run started) makes the run due for a poll now. Events about runs Puerta did not start
are acknowledged and ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row
from sqlalchemy.engine import Connection

from puerta.ci.base import RunRef, RunState, RunStatus
from puerta.ci.webhooks import WorkflowCompleted
from puerta.notify.config import NotificationsConfig
from puerta.service.ci_runner import run_notice
from puerta.service.notices import record_notice
from puerta.store import ci_runs, outbox

_STATUS = {
    RunState.SUCCEEDED: "succeeded",
    RunState.FAILED: "failed",
    RunState.CANCELED: "canceled",
}


@dataclass(frozen=True, slots=True)
class Applied:
    """What the delivery did, for the answer and the log."""

    message: str
    run_id: int | None = None
    finished: bool = False
    due_now: bool = False
    status: str | None = None  # the run's new status when the delivery finished it


def _event(
    conn: Connection,
    run: Row[Any],
    now: datetime,
    status: str,
    raw: str,
    reason: str,
    url: str | None,
) -> None:
    ci_runs.add_event(
        conn,
        run_id=run.id,
        at=now,
        status=status,
        raw=raw[:200],
        reason=reason,
        url=url,
        source="webhook",
    )


def _finish(
    conn: Connection,
    run: Row[Any],
    now: datetime,
    *,
    state: RunState,
    raw: str,
    reason: str,
    url: str | None,
    ref: RunRef | None = None,
    config: NotificationsConfig | None = None,
) -> bool:
    status = _STATUS[state]
    changes: dict[str, Any] = {
        "status": status,
        "raw": raw[:200],
        "reason": reason,
        "url": url or run.url,
        "finished_at": now,
        "updated_at": now,
    }
    if ref is not None:
        changes.update(ref=ref.as_dict(), external_id=ref.id)
    if not ci_runs.finish_from_webhook(conn, run.id, **changes):
        return False
    _event(conn, run, now, status, raw, reason, changes["url"])
    if config is not None and config.routes:
        _notify(conn, config, run, status, reason, changes["url"], now)
    return True


def _notify(
    conn: Connection,
    config: NotificationsConfig,
    run: Row[Any],
    status: str,
    reason: str,
    url: str | None,
    now: datetime,
) -> None:
    full = ci_runs.get_run(conn, run.id)
    rollout = outbox.rollout_state(conn, run.canary_id, run.rollout_seq)
    if full is None or rollout is None:
        return
    view = _RunView(full, rollout.environment, rollout.revision)
    notice = run_notice(view, status, "webhook", reason, url, now)  # type: ignore[arg-type]
    if notice is not None:
        record_notice(conn, config, canary_id=run.canary_id, notice=notice, now=now)


class _RunView:
    """A run row with its rollout's environment and revision, as ``run_notice`` reads it."""

    def __init__(self, row: Row[Any], environment: str | None, revision: str) -> None:
        self.gate = row.gate
        self.provider = row.provider
        self.namespace = row.namespace
        self.name = row.name
        self.rollout_seq = row.rollout_seq
        self.rollout_environment = environment
        self.rollout_revision = revision


def apply_circleci(
    conn: Connection,
    provider: str,
    delivery_id: str,
    event: WorkflowCompleted,
    now: datetime,
    config: NotificationsConfig | None = None,
) -> Applied:
    if not ci_runs.record_delivery(conn, f"ci:{provider}", delivery_id, now):
        return Applied("duplicate delivery ignored")
    run = ci_runs.find_by_external(conn, provider, event.pipeline_id)
    if run is None:
        return Applied("no Puerta run for this pipeline; ignored")
    if run.status not in ci_runs.ACTIVE:
        return Applied(f"run {run.id} already {run.status}", run.id)
    if event.state in (RunState.FAILED, RunState.CANCELED):
        # one failed workflow settles the pipeline: it cannot succeed any more
        done = _finish(
            conn,
            run,
            now,
            state=event.state,
            raw=f"{event.workflow}:{event.status}",
            reason=event.reason,
            url=event.url,
            config=config,
        )
        status = _STATUS[event.state]
        return Applied(f"run {run.id} {status}", run.id, finished=done, status=status)
    # a workflow succeeded; other workflows of the pipeline may still run: look now
    ci_runs.check_now(conn, run.id, now)
    _event(conn, run, now, run.status, f"{event.workflow}:{event.status}", event.reason, event.url)
    return Applied(f"run {run.id} will be checked now", run.id, due_now=True)


def apply_github(
    conn: Connection,
    provider: str,
    delivery_id: str,
    run_id: str,
    status: RunStatus,
    title: str,
    now: datetime,
    config: NotificationsConfig | None = None,
) -> Applied:
    if not ci_runs.record_delivery(conn, f"ci:{provider}", delivery_id, now):
        return Applied("duplicate delivery ignored")
    run = ci_runs.find_by_external(conn, provider, run_id)
    ref: RunRef | None = None
    if run is None and title:
        # dispatched without a run id (older GitHub): the title carries the correlation id
        run = ci_runs.active_with_correlation_in(conn, provider, title)
        if run is not None:
            known = RunRef.from_dict(run.ref) if run.ref else RunRef(id=None)
            ref = RunRef(
                id=run_id,
                url=status.url or known.url,
                number=known.number,
                triggered_at=known.triggered_at,
                data=known.data,
            )
    if run is None:
        return Applied("no Puerta run for this workflow run; ignored")
    if run.status not in ci_runs.ACTIVE:
        return Applied(f"run {run.id} already {run.status}", run.id)
    if status.state.terminal:
        done = _finish(
            conn,
            run,
            now,
            state=status.state,
            raw=status.raw,
            reason=status.reason,
            url=status.url,
            ref=ref,
            config=config,
        )
        new = _STATUS[status.state]
        return Applied(f"run {run.id} {new}", run.id, finished=done, status=new)
    if ref is not None:
        ci_runs.set_ref(conn, run.id, ref.as_dict(), ref.id, ref.url)
    ci_runs.check_now(conn, run.id, now)
    return Applied(f"run {run.id} will be checked now", run.id, due_now=True)
