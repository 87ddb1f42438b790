"""The trivial gates: ``allow`` always passes, ``deny`` always refuses (e.g. to close an
environment while it is being set up)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from puerta.domain.decisions import GateResult
from puerta.domain.gates.base import GateContext, GateOptions
from puerta.domain.gates.registry import register
from puerta.domain.hooks import GATING_HOOKS, HookType


@register
class AllowOptions(GateOptions):
    allowed_hooks: ClassVar[frozenset[HookType]] = GATING_HOOKS
    type: Literal["allow"] = "allow"

    def build(self) -> AllowGate:
        return AllowGate()


@register
class DenyOptions(GateOptions):
    allowed_hooks: ClassVar[frozenset[HookType]] = GATING_HOOKS
    type: Literal["deny"] = "deny"
    reason: str = "denied by policy"

    def build(self) -> DenyGate:
        return DenyGate(self.reason)


@dataclass(frozen=True)
class AllowGate:
    kind: str = "allow"

    def evaluate(self, ctx: GateContext) -> GateResult:
        return GateResult.passed()


@dataclass(frozen=True)
class DenyGate:
    reason: str
    kind: str = "deny"

    def evaluate(self, ctx: GateContext) -> GateResult:
        return GateResult.fail(self.reason)
