"""Turn stored rows into the pure domain's views (one place, shared by hooks and explain)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row

from puerta.domain.gates.base import Halt, ManualAction, RolloutView
from puerta.domain.hooks import HookType
from puerta.domain.rollouts import CurrentRollout, RolloutStatus


def current_rollout(row: Row[Any] | None) -> CurrentRollout | None:
    if row is None:
        return None
    return CurrentRollout(seq=row.seq, status=RolloutStatus(row.status), revision=row.revision)


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


def manual_actions(
    rows: Sequence[Row[Any]], rollout: RolloutView | None
) -> tuple[tuple[ManualAction, ...], ManualAction | None]:
    """(approvals that may count, the rollback request for the current rollout if any)."""
    approvals: list[ManualAction] = []
    rollback: ManualAction | None = None
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
        elif row.action == "rollback" and rollout is not None and row.rollout_seq == rollout.seq:
            rollback = action
    return tuple(approvals), rollback
