"""``explain``: why is this canary waiting (or why would it)?

Evaluates the policy for one canary and hook at any instant, against the stored state (its
rollout, approvals, halt, freezes, the release train), without writing anything: which
environment matched and why, what each gate says, the place in line, Puerta's answer, and the
next moment that answer changes by itself. With a canary Puerta has never seen, or one between
rollouts, it explains what a new rollout would meet, which is how a platform team tries a
policy before it reaches the cluster.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.engine import Connection

from puerta.domain.decisions import Decision, Outcome
from puerta.domain.evaluator import decide
from puerta.domain.gates.base import GateContext, RolloutView
from puerta.domain.hooks import FlaggerPayload, HookType
from puerta.domain.rollouts import RolloutStatus
from puerta.domain.train import TrainState
from puerta.policy.model import CompiledPolicy
from puerta.service import snapshot
from puerta.service.context import load_context
from puerta.store import repository as repo
from puerta.store.db import Database

HYPOTHETICAL_ID = -1


@dataclass(frozen=True)
class GateExplanation:
    label: str
    kind: str
    outcome: str
    reason: str
    changes_at: datetime | None


@dataclass(frozen=True)
class Explanation:
    canary: str
    hook: HookType
    at: datetime
    environment: str | None
    timezone: str
    matching: list[str]
    rollout: RolloutView | None
    hypothetical: bool  # no rollout waiting: explains what a new one would meet
    decision: Decision
    gates: list[GateExplanation] = field(default_factory=list)
    halted: str | None = None
    freezes: list[str] = field(default_factory=list)
    train: TrainState | None = None
    place_in_line: int | None = None
    next_change: datetime | None = None
    next_change_because: str | None = None


class ExplainService:
    def __init__(self, db: Database, policy: CompiledPolicy) -> None:
        self.db = db
        self.policy = policy

    async def explain(self, payload: FlaggerPayload, hook: HookType, at: datetime) -> Explanation:
        environment = self.policy.match(payload)

        def work(conn: Connection) -> tuple[GateContext, RolloutView | None, bool]:
            canary = repo.find_canary(conn, payload.namespace, payload.name)
            row = repo.get_rollout(conn, canary.current_rollout_id) if canary else None
            view = snapshot.rollout_view(row)
            released = row is not None and row.released_at is not None
            hypothetical = view is None or not view.status.is_open
            if hypothetical and hook is HookType.CONFIRM_ROLLOUT:
                view = RolloutView(
                    id=HYPOTHETICAL_ID,
                    seq=(view.seq + 1) if view else 1,
                    status=RolloutStatus.PENDING,
                    revision="",
                    started_at=at,
                )
                released = False
            ctx = load_context(
                conn,
                canary=canary,
                rollout=view,
                released=released,
                hook=hook,
                payload=payload,
                environment=environment,
                now=at,
                lock_train=False,
            )
            return ctx, view, hypothetical

        ctx, view, hypothetical = await self.db.read(work)
        decision = decide(ctx, environment, self.policy.policy.unmatched)
        gates = []
        changes: list[tuple[datetime, str]] = []
        for compiled in environment.gates.get(hook, ()) if environment else ():
            result = compiled.gate.evaluate(ctx)
            gates.append(
                GateExplanation(
                    compiled.label,
                    compiled.gate.kind,
                    result.outcome.value,
                    result.reason,
                    result.retry_at,
                )
            )
            if result.retry_at is not None:
                verb = "passes" if result.outcome is not Outcome.PASS else "stops passing"
                changes.append((result.retry_at, f"{compiled.label} {verb}"))
        zone = environment.zone if environment else None
        for freeze in ctx.freezes:
            if freeze.ends_at is not None:
                changes.append((freeze.ends_at, f"freeze {freeze.id} ends"))
        if decision.retry_at is not None and decision.gate == "train":
            changes.append((decision.retry_at, "the release train's next departure"))
        future = sorted((when, why) for when, why in changes if when > at)
        place = ctx.train.position(view.id) if ctx.train is not None and view else None
        return Explanation(
            canary=payload.canary,
            hook=hook,
            at=at,
            environment=environment.name if environment else None,
            timezone=environment.zone.key if environment else "UTC",
            matching=self.policy.explain_match(payload),
            rollout=view,
            hypothetical=hypothetical,
            decision=decision,
            gates=gates,
            halted=(f"{ctx.halt.actor}: {ctx.halt.reason}" if ctx.halt else None),
            freezes=[f.describe(zone) for f in ctx.freezes] if zone else [],
            train=ctx.train,
            place_in_line=place,
            next_change=future[0][0] if future else None,
            next_change_because=future[0][1] if future else None,
        )
