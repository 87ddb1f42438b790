"""From a hook call's context to Puerta's answer (pure).

Order of precedence, the same for every gating hook:

1. a halt (set by hand) keeps every confirm-* hook waiting;
2. a canary that matches no environment gets the policy's ``unmatched`` answer;
3. the environment's gates for this hook, in order: the first that does not pass decides;
4. no gates, or all passed: pass.

The rollback hook asks the opposite question (should Flagger roll back now?): a rollback
requested by hand, or a rollback gate that fails, answers ROLLBACK; anything else CARRY_ON.
``event`` and ``post-rollout`` are recorded and always answered 200.
"""

from __future__ import annotations

from typing import Literal

from puerta.domain.decisions import Decision, Outcome, Verdict
from puerta.domain.gates.base import GateContext
from puerta.domain.hooks import HookType
from puerta.policy.model import CompiledEnvironment


def decide(
    ctx: GateContext,
    environment: CompiledEnvironment | None,
    unmatched: Literal["pass", "refuse"],
) -> Decision:
    """Puerta's answer to one hook call."""
    hook = ctx.hook
    if hook.is_record_only:
        return Decision(hook, Verdict.RECORDED, "recorded")
    if hook is HookType.ROLLBACK:
        return _rollback(ctx, environment)

    canary = ctx.payload.canary
    if ctx.halt is not None and hook.is_confirm:
        halt = ctx.halt
        because = f": {halt.reason}" if halt.reason else ""
        return Decision(
            hook,
            Verdict.WAIT,
            f"halted by {halt.actor} at {halt.at:%Y-%m-%d %H:%M} UTC{because} "
            f"(puerta approve {canary} to resume)",
            gate="halt",
        )
    if environment is None:
        if unmatched == "pass":
            return Decision(
                hook, Verdict.PASS, f"{canary} matches no environment; policy passes it"
            )
        return Decision(
            hook,
            Verdict.FAIL,
            f"{canary} matches no environment in the policy and unmatched canaries are refused",
            gate="unmatched",
        )

    gates = environment.gates.get(hook, ())
    passed: list[str] = []
    for compiled in gates:
        result = compiled.gate.evaluate(ctx)
        if result.outcome is Outcome.PASS:
            passed.append(f"{compiled.label}: {result.reason}" if result.reason else compiled.label)
            continue
        verdict = Verdict.WAIT if result.outcome is Outcome.WAIT else Verdict.FAIL
        return Decision(hook, verdict, result.reason, gate=compiled.label, retry_at=result.retry_at)
    if not gates:
        return Decision(hook, Verdict.PASS, f"no {hook.value} gates in {environment.name}")
    return Decision(hook, Verdict.PASS, "passed " + "; ".join(passed))


def _rollback(ctx: GateContext, environment: CompiledEnvironment | None) -> Decision:
    hook = HookType.ROLLBACK
    if ctx.rollback is not None:
        request = ctx.rollback
        because = f": {request.reason}" if request.reason else ""
        return Decision(
            hook, Verdict.ROLLBACK, f"rollback requested by {request.actor}{because}", gate="manual"
        )
    if environment is not None:
        for compiled in environment.gates.get(hook, ()):
            result = compiled.gate.evaluate(ctx)
            if result.outcome is Outcome.FAIL:
                return Decision(hook, Verdict.ROLLBACK, result.reason, gate=compiled.label)
    return Decision(hook, Verdict.CARRY_ON, "no rollback requested")
