"""Load everything gates may look at for one hook call: shared by answering a hook (inside its
write transaction, with the release-train lock) and by ``explain`` (read-only, at any time)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row
from sqlalchemy.engine import Connection

from puerta.domain import train as train_domain
from puerta.domain.freezes import Freeze
from puerta.domain.gates.base import CiRunView, GateContext, LoadRunView, RolloutView
from puerta.domain.hooks import FlaggerPayload, HookType
from puerta.domain.rollouts import RolloutStatus
from puerta.domain.train import TrainEntry, TrainState
from puerta.policy.model import CompiledEnvironment
from puerta.service import snapshot
from puerta.store import ci_runs
from puerta.store import repository as repo


def load_context(
    conn: Connection,
    *,
    canary: Row[Any] | None,
    rollout: RolloutView | None,
    released: bool,
    hook: HookType,
    payload: FlaggerPayload,
    environment: CompiledEnvironment | None,
    now: datetime,
    lock_train: bool,
) -> GateContext:
    """The gate context for ``hook`` on ``payload`` at ``now``.

    ``rollout`` is the rollout the call belongs to (``released``: it left the train already).
    ``lock_train`` takes the environment's release-train lock first (answering a hook does;
    ``explain`` only reads).
    """
    manual = snapshot.ManualState()
    if canary is not None and not hook.is_record_only:
        rows = repo.active_manual_actions(conn, canary.id)
        manual = snapshot.manual_actions(rows, rollout)
    freezes: tuple[Freeze, ...] = ()
    train = None
    if hook is HookType.CONFIRM_ROLLOUT and environment is not None:
        freezes = tuple(
            freeze
            for freeze in map(snapshot.freeze_of, repo.active_freezes(conn, environment.name, now))
            if freeze.applies(environment.name, payload.namespace, now)
        )
        if environment.train is not None:
            current = None
            if rollout is not None and rollout.status is RolloutStatus.PENDING and not released:
                current = TrainEntry(rollout.id, payload.canary, rollout.seq, rollout.started_at)
            train = _train(conn, environment, current, now, lock=lock_train)
    runs: dict[str, LoadRunView] = {}
    if hook is HookType.ROLLOUT and canary is not None and rollout is not None:
        runs = {
            row.gate: LoadRunView(row.gate, row.status, row.stats, row.stop_reason)
            for row in repo.load_runs_of(conn, canary.id, rollout.seq)
        }
    ci: dict[str, CiRunView] = {}
    if (
        canary is not None
        and rollout is not None
        and environment is not None
        and environment.reads_ci_runs(hook)
    ):
        rows = ci_runs.runs_of(conn, canary.id, rollout.seq)
        ci = {row.gate: snapshot.ci_run_view(row) for row in rows}
    return GateContext(
        hook=hook,
        payload=payload,
        environment=environment.name if environment else None,
        now=now,
        rollout=rollout,
        approvals=manual.approvals,
        rollback=manual.rollback,
        override=manual.override,
        halt=snapshot.halt_of(canary) if canary is not None else None,
        freezes=freezes,
        train=train,
        load_runs=runs,
        ci_runs=ci,
    )


def _train(
    conn: Connection,
    environment: CompiledEnvironment,
    current: TrainEntry | None,
    now: datetime,
    *,
    lock: bool,
) -> TrainState:
    config = environment.train
    assert config is not None
    if lock:
        repo.lock_environment(conn, environment.name)
    rows = repo.train_rows(
        conn,
        environment.name,
        stale_before=train_domain.stale_cutoff(config, now),
        released_after=train_domain.timeout_cutoff(config, now),
    )
    last = repo.last_release_at(conn, environment.name)
    return snapshot.train_state(environment.name, config, rows, last, current)
