"""Turn stored rows into the pure domain's views (one place, shared by hooks and explain)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row

from puerta.domain.freezes import Freeze
from puerta.domain.gates.base import CiRunView, Halt, ManualAction, RolloutView
from puerta.domain.hooks import HookType
from puerta.domain.rollouts import CurrentRollout, RolloutStatus
from puerta.domain.train import TrainConfig, TrainEntry, TrainState


def current_rollout(row: Row[Any] | None) -> CurrentRollout | None:
    if row is None:
        return None
    return CurrentRollout(
        seq=row.seq,
        status=RolloutStatus(row.status),
        revision=row.revision,
        base_checksum=row.base_checksum,
    )


def rollout_view(row: Row[Any] | None) -> RolloutView | None:
    if row is None:
        return None
    return RolloutView(
        id=row.id,
        seq=row.seq,
        status=RolloutStatus(row.status),
        revision=row.revision,
        started_at=row.started_at,
    )


def halt_of(canary: Row[Any]) -> Halt | None:
    if not canary.halted:
        return None
    return Halt(actor=canary.halted_by or "?", at=canary.halted_at, reason=canary.halt_reason or "")


@dataclass(frozen=True)
class ManualState:
    approvals: tuple[ManualAction, ...] = ()
    rollback: ManualAction | None = None  # for the current rollout
    override: ManualAction | None = None  # for the current rollout


def manual_actions(rows: Sequence[Row[Any]], rollout: RolloutView | None) -> ManualState:
    """Approvals that may count, and the current rollout's rollback request and override."""
    approvals: list[ManualAction] = []
    rollback: ManualAction | None = None
    override: ManualAction | None = None
    for row in rows:
        action = ManualAction(
            actor=row.actor,
            at=row.created_at,
            reason=row.reason or "",
            hook=HookType(row.hook) if row.hook else None,
            rollout_seq=row.rollout_seq,
        )
        if row.action == "approve":
            approvals.append(action)
        elif rollout is not None and row.rollout_seq == rollout.seq:
            if row.action == "rollback":
                rollback = action
            elif row.action == "override":
                override = action
    return ManualState(tuple(approvals), rollback, override)


def freeze_of(row: Row[Any]) -> Freeze:
    return Freeze(
        id=row.id,
        environment=row.environment,
        namespaces=tuple(row.namespaces or ()),
        reason=row.reason,
        created_by=row.created_by,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
    )


def train_state(
    environment: str,
    config: TrainConfig,
    rows: Sequence[Row[Any]],
    last_release: datetime | None,
    current: TrainEntry | None,
) -> TrainState:
    """The queue and the rollouts under way. ``current``, the rollout being decided, always
    holds its place while it waits to start: its own call is what keeps it fresh."""
    queue: list[TrainEntry] = []
    active: list[TrainEntry] = []
    for row in rows:
        entry = TrainEntry(
            row.id, f"{row.namespace}/{row.name}", row.seq, row.started_at, row.released_at
        )
        (active if row.released_at is not None else queue).append(entry)
    if current is not None and all(e.rollout_id != current.rollout_id for e in queue):
        queue.append(current)
        queue.sort(key=lambda e: (e.started_at, e.rollout_id))
    return TrainState(environment, config, tuple(queue), tuple(active), last_release)


def ci_run_view(row: Row[Any]) -> CiRunView:
    return CiRunView(
        gate=row.gate,
        provider=row.provider,
        status=row.status,
        url=row.url,
        reason=row.reason or "",
        last_error=row.last_error,
        error_since=row.error_since,
        deadline_at=row.deadline_at,
    )
