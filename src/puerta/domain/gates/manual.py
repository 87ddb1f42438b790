"""The ``manual`` gate: waits until enough people approved.

Unlike flagger-loadtester's gate (opened once, open for every later rollout, gone on restart),
an approval is stored and belongs to the rollout waiting now: the next revision waits again.
``scope: canary`` restores the loadtester's sticky behaviour for teams that want it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from pydantic import Field

from puerta.domain.decisions import GateResult
from puerta.domain.gates.base import GateContext, GateOptions, ManualAction
from puerta.domain.gates.registry import register
from puerta.domain.hooks import CONFIRM_HOOKS, HookType


@register
class ManualOptions(GateOptions):
    allowed_hooks: ClassVar[frozenset[HookType]] = CONFIRM_HOOKS
    type: Literal["manual"] = "manual"
    approvals: int = Field(default=1, ge=1, le=10, description="distinct approvers needed")
    scope: Literal["rollout", "canary"] = Field(
        default="rollout",
        description="rollout: each rollout needs its own approval; canary: an approval stays "
        "valid for later rollouts of the canary until it is halted",
    )

    def build(self) -> ManualGate:
        return ManualGate(self.approvals, self.scope)


@dataclass(frozen=True)
class ManualGate:
    required: int
    scope: str
    kind: str = "manual"

    def _counts(self, action: ManualAction, ctx: GateContext) -> bool:
        if action.hook is not None and action.hook is not ctx.hook:
            return False
        if action.rollout_seq is None:  # a sticky approval: only for scope: canary gates
            return self.scope == "canary"
        return ctx.rollout is not None and action.rollout_seq == ctx.rollout.seq

    def evaluate(self, ctx: GateContext) -> GateResult:
        approvers = sorted({a.actor for a in ctx.approvals if self._counts(a, ctx)})
        if len(approvers) >= self.required:
            return GateResult.passed(f"approved by {', '.join(approvers)}")
        command = f"puerta approve {ctx.payload.namespace}/{ctx.payload.name}"
        if self.required == 1:
            return GateResult.wait(f"waiting for manual approval ({command})")
        got = f" ({', '.join(approvers)})" if approvers else ""
        return GateResult.wait(
            f"waiting for manual approval: {len(approvers)} of {self.required}{got} ({command})"
        )
