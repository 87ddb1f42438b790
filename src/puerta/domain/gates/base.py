"""The gate contract: a pure function from a snapshot of the world to a verdict.

A gate never does I/O. The service layer loads everything a gate may look at into a
:class:`GateContext` (from the database, with the injected clock's ``now``), calls
:meth:`Gate.evaluate`, and stores the result. Gates that start external work (CI jobs, load
tests) in later modules do so by returning a verdict over stored state; the effects are carried
out by the service layer, keyed so they happen once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict

from puerta.domain.decisions import GateResult
from puerta.domain.freezes import Freeze
from puerta.domain.hooks import FlaggerPayload, HookType
from puerta.domain.rollouts import RolloutStatus
from puerta.domain.train import TrainState


@dataclass(frozen=True, slots=True)
class RolloutView:
    """The current rollout as gates see it."""

    id: int
    seq: int
    status: RolloutStatus
    revision: str
    started_at: datetime


@dataclass(frozen=True, slots=True)
class ManualAction:
    """An approval (or rollback request) someone gave, as gates see it."""

    actor: str
    at: datetime
    reason: str = ""
    hook: HookType | None = None  # None: every hook it can apply to
    rollout_seq: int | None = None  # None: canary-wide (sticky) action


@dataclass(frozen=True, slots=True)
class Halt:
    """A canary stopped by hand: every confirm-* hook waits until someone approves again."""

    actor: str
    at: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class LoadRunView:
    """A load test of the current rollout, as gates see it (stats: the latest snapshot)."""

    gate: str
    status: str  # running | finished | stopped | failed
    stats: dict[str, Any] | None
    stop_reason: str | None = None


@dataclass(frozen=True, slots=True)
class CiRunView:
    """An E2E run of the current rollout, as gates see it (see ``store/tables.py``)."""

    gate: str
    provider: str
    status: str  # pending | queued | running | succeeded | failed | canceled | abandoned
    url: str | None = None
    reason: str = ""
    last_error: str | None = None  # the provider could not be reached / answered an error
    error_since: datetime | None = None
    deadline_at: datetime | None = None

    @property
    def finished(self) -> bool:
        return self.status in ("succeeded", "failed", "canceled", "abandoned")


@dataclass(frozen=True, slots=True)
class GateContext:
    """Everything a gate may look at for one hook call."""

    hook: HookType
    payload: FlaggerPayload
    environment: str | None
    now: datetime
    rollout: RolloutView | None
    approvals: tuple[ManualAction, ...] = ()
    rollback: ManualAction | None = None
    override: ManualAction | None = None  # break-glass: windows, freezes and the train pass
    halt: Halt | None = None
    freezes: tuple[Freeze, ...] = ()  # freezes that apply to this canary now
    train: TrainState | None = None  # the environment's release train (confirm-rollout only)
    load_runs: dict[str, LoadRunView] = field(default_factory=dict)  # of the current rollout
    ci_runs: dict[str, CiRunView] = field(default_factory=dict)  # of the current rollout
    extras: dict[str, object] = field(default_factory=dict)


class GateOptions(BaseModel):
    """Base of every gate's options in the policy file (``type`` selects the gate)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: hooks this gate type may be listed under; the policy loader enforces it.
    allowed_hooks: ClassVar[frozenset[HookType]] = frozenset(HookType)

    name: str | None = None

    def build(self) -> Gate:
        raise NotImplementedError


class Gate(Protocol):
    """A configured gate."""

    @property
    def kind(self) -> str: ...

    def evaluate(self, ctx: GateContext) -> GateResult: ...
