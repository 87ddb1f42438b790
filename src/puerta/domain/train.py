"""Release trains: canaries waiting to start in one environment leave in arrival order.

Pure: the service loads a :class:`TrainState` (the queue and the rollouts under way) from the
database under an environment-wide lock, and asks :func:`check` whether one rollout may leave
now. A rollout joins the queue with its first confirm-rollout call (``started_at``) and leaves
it when confirm-rollout passes (``released_at``). While released and not finished it counts
toward ``max_concurrent``; one that never reports back stops counting after
``release_timeout``. A queued canary that stopped calling (deleted, paused) for ``stale_after``
no longer holds its place.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from puerta.domain.durations import format_duration, ordinal


@dataclass(frozen=True, slots=True)
class TrainConfig:
    max_concurrent: int | None = None  # None: no limit
    stagger: timedelta = timedelta(0)
    release_timeout: timedelta = timedelta(hours=2)
    stale_after: timedelta = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class TrainEntry:
    rollout_id: int
    canary: str  # namespace/name
    seq: int
    started_at: datetime
    released_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class TrainState:
    environment: str
    config: TrainConfig
    queue: tuple[TrainEntry, ...]  # waiting, in arrival order
    active: tuple[TrainEntry, ...]  # released, not finished
    last_release_at: datetime | None = None

    def position(self, rollout_id: int) -> int | None:
        """1-based place in line, or None if the rollout is not queued."""
        for index, entry in enumerate(self.queue):
            if entry.rollout_id == rollout_id:
                return index + 1
        return None

    def line_text(self, rollout_id: int) -> str:
        """``3rd in line`` (empty when not queued)."""
        place = self.position(rollout_id)
        return f"{ordinal(place)} in line" if place is not None else ""


@dataclass(frozen=True, slots=True)
class TrainVerdict:
    may_leave: bool
    reason: str = ""
    retry_at: datetime | None = None


def check(state: TrainState, rollout_id: int, now: datetime) -> TrainVerdict:
    """May this rollout leave now? Slots left, its place in line, and the stagger decide."""
    config = state.config
    place = state.position(rollout_id)
    if place is None:  # already released (a retry) or not waiting: nothing to hold back
        return TrainVerdict(True)
    free = config.max_concurrent - len(state.active) if config.max_concurrent is not None else None
    line = f"{ordinal(place)} in line"
    if free is not None and free <= 0:
        rolling = ", ".join(f"{e.canary} #{e.seq}" for e in state.active[:3])
        more = f" and {len(state.active) - 3} more" if len(state.active) > 3 else ""
        return TrainVerdict(
            False,
            f"{state.environment} release train is full ({len(state.active)} of "
            f"{config.max_concurrent} rolling out: {rolling}{more}); {line}",
        )
    if free is not None and place > free:
        ahead = state.queue[place - 2]
        return TrainVerdict(
            False, f"{state.environment} release train: waiting behind {ahead.canary}; {line}"
        )
    if config.stagger and state.last_release_at is not None:
        slot = state.last_release_at + config.stagger
        if now < slot:
            return TrainVerdict(
                False,
                f"{state.environment} release train: next departure in "
                f"{format_duration(slot - now)} (stagger {format_duration(config.stagger)}); "
                f"{line}",
                retry_at=slot,
            )
    return TrainVerdict(True, f"left the {state.environment} release train {line}")


def stale_cutoff(config: TrainConfig, now: datetime) -> datetime:
    return now - config.stale_after


def timeout_cutoff(config: TrainConfig, now: datetime) -> datetime:
    return now - config.release_timeout
