"""From a hook call's context to Puerta's answer (pure).

Order of precedence, the same for every gating hook:

1. a halt (set by hand) keeps every confirm-* hook waiting;
2. a canary that matches no environment gets the policy's ``unmatched`` answer;
3. confirm-rollout only: a freeze on the environment keeps it waiting;
4. the environment's gates for this hook, in order: the first that does not pass decides;
5. confirm-rollout only: the release train lets it leave in arrival order, at most
   ``max_concurrent`` at once, ``stagger`` apart;
6. no gates, or all passed: pass.

A break-glass override of the waiting rollout passes 3, window gates and 5 (not a halt, not a
manual gate). While confirm-rollout waits for what holds the whole environment (a closed
window, a freeze of the environment, the train itself), the rollout keeps its place in line and
the reason ends with it ("3rd in line"); while it waits for something of its own (an approval,
a halt, a freeze of its namespace), the ones behind it may leave first, and it gets its place
back, by arrival, once that clears.

The rollback hook asks the opposite question (should Flagger roll back now?): a rollback
requested by hand, or a rollback gate that fails, answers ROLLBACK; anything else CARRY_ON.
``event`` and ``post-rollout`` are recorded and always answered 200.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Literal

from puerta.domain.decisions import Decision, Outcome, Verdict
from puerta.domain.effects import Effect
from puerta.domain.freezes import lifts_at
from puerta.domain.gates.base import GateContext
from puerta.domain.hooks import HookType
from puerta.domain.train import check
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
        reason = (
            f"halted by {halt.actor} at {halt.at:%Y-%m-%d %H:%M} UTC{because} "
            f"(puerta approve {canary} to resume)"
        )
        return Decision(hook, Verdict.WAIT, reason, gate="halt")
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

    starting = hook is HookType.CONFIRM_ROLLOUT
    if starting and ctx.freezes and ctx.override is None:
        zone = environment.zone
        reason = "; ".join(f.describe(zone) for f in ctx.freezes)
        # A freeze of the whole environment holds everyone alike: keep the place in line.
        # One of some namespaces only must not hold up the others behind it.
        shared = all(not f.namespaces for f in ctx.freezes)
        return _waiting(
            hook, reason, ctx, gate="freeze", retry_at=lifts_at(ctx.freezes), shared=shared
        )

    gates = environment.gates.get(hook, ())
    passed: list[str] = []
    effects: list[Effect] = []
    for compiled in gates:
        result = compiled.gate.evaluate(ctx)
        effects.extend(result.effects)
        if result.outcome is Outcome.PASS:
            passed.append(f"{compiled.label}: {result.reason}" if result.reason else compiled.label)
            continue
        if result.outcome is Outcome.FAIL:
            return Decision(
                hook, Verdict.FAIL, result.reason, gate=compiled.label, effects=tuple(effects)
            )
        waiting = _waiting(
            hook,
            result.reason,
            ctx,
            gate=compiled.label,
            retry_at=result.retry_at,
            shared=result.shared,
        )
        return replace(waiting, effects=tuple(effects), hold=result.hold)

    if starting and ctx.train is not None and ctx.rollout is not None:
        if ctx.override is not None:
            passed.append(f"release train skipped: overridden by {ctx.override.actor}")
        else:
            departure = check(ctx.train, ctx.rollout.id, ctx.now)
            if not departure.may_leave:
                return Decision(
                    hook,
                    Verdict.WAIT,
                    departure.reason,
                    gate="train",
                    retry_at=departure.retry_at,
                    in_line=True,
                )
            if departure.reason:
                passed.append(departure.reason)
    if not passed:
        return Decision(hook, Verdict.PASS, f"no {hook.value} gates in {environment.name}")
    return Decision(hook, Verdict.PASS, "passed " + "; ".join(passed), effects=tuple(effects))


def _waiting(
    hook: HookType,
    reason: str,
    ctx: GateContext,
    *,
    gate: str,
    retry_at: datetime | None = None,
    shared: bool = False,
) -> Decision:
    """A wait; at confirm-rollout, a shared wait keeps the rollout's place in the train and
    says which place it is."""
    in_line = shared and hook is HookType.CONFIRM_ROLLOUT and ctx.train is not None
    if in_line and ctx.rollout is not None and ctx.train is not None:
        line = ctx.train.line_text(ctx.rollout.id)
        reason = f"{reason}; {line}" if line else reason
    return Decision(hook, Verdict.WAIT, reason, gate=gate, retry_at=retry_at, in_line=in_line)


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
