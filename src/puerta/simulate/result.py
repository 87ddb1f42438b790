"""How a simulation ended, per canary and overall, and the exit code CI acts on."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import IntEnum, StrEnum
from zoneinfo import ZoneInfo

from puerta.simulate.timeline import Timeline


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # rolled back
    WAITING = "waiting"  # still waiting on a confirm-* hook at the horizon
    PROGRESSING = "progressing"  # still under analysis at the horizon


class ExitCode(IntEnum):
    """``puerta simulate``'s exit status: CI fails a policy change on anything but 0."""

    SUCCEEDED = 0
    FAILED = 1  # some canary was rolled back
    BAD_INPUT = 2  # manifest or policy unusable
    UNFINISHED = 3  # some canary still waits (or progresses) at the horizon


@dataclass
class CanaryResult:
    """One canary's story in numbers."""

    canary: str  # namespace/name
    environment: str | None
    arrived: datetime
    outcome: Outcome = Outcome.WAITING
    reason: str = ""
    released: datetime | None = None  # confirm-rollout passed
    promoted: datetime | None = None  # promotion completed (Succeeded)
    finished: datetime | None = None  # Succeeded or Failed
    waited: timedelta = timedelta(0)  # time spent waiting on confirm-* hooks


@dataclass
class SimulationResult:
    start: datetime
    horizon: datetime
    zone: ZoneInfo
    canaries: list[CanaryResult]
    timeline: Timeline
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> ExitCode:
        outcomes = {c.outcome for c in self.canaries}
        if Outcome.FAILED in outcomes:
            return ExitCode.FAILED
        if outcomes & {Outcome.WAITING, Outcome.PROGRESSING}:
            return ExitCode.UNFINISHED
        return ExitCode.SUCCEEDED
