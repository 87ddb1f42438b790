"""Answer one Flagger hook call: the whole read-decide-write cycle in one transaction.

The work is one synchronous function that ``Database.write`` runs as one transaction
(see ``store/db.py`` for why):

1. find (or create) the canary row and lock it;
2. work out which rollout the call belongs to (``domain/rollouts.py``) and apply that;
3. build the gate context (approvals, halt, clock) and decide (``domain/evaluator.py``);
4. record what the rollout now waits for, and append the call to the audit;
5. commit, then answer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Row
from sqlalchemy.engine import Connection

from puerta.clock import Clock
from puerta.domain.decisions import Decision, Verdict
from puerta.domain.evaluator import decide
from puerta.domain.hooks import FlaggerPayload, HookType
from puerta.domain.rollouts import Resolution, RolloutStatus, resolve
from puerta.policy.model import CompiledEnvironment, CompiledPolicy
from puerta.policy.promote import MANUAL_RELEASE
from puerta.service import snapshot
from puerta.service.context import load_context
from puerta.service.effects import Applied, apply_effects
from puerta.service.notices import hook_call_notices, record_notice
from puerta.store import ci_runs, promotions
from puerta.store import repository as repo
from puerta.store.db import Database

_TERMINAL = (RolloutStatus.SUCCEEDED, RolloutStatus.FAILED, RolloutStatus.SUPERSEDED)
#: the post-rollout phase that records a promotion (Flagger sends Succeeded or Failed)
PROMOTING_PHASE = "Succeeded"
#: the rollout waits for nothing (any more)
_NOT_WAITING: dict[str, Any] = {
    "waiting_hook": None,
    "waiting_gate": None,
    "waiting_reason": None,
    "waiting_since": None,
    "retry_at": None,
}


@dataclass(frozen=True, slots=True)
class HookOutcome:
    decision: Decision
    environment: str | None
    rollout_seq: int | None
    applied: Applied = field(default_factory=Applied)  # new background work it recorded


class HookService:
    """Answers hook calls. Holds no state of its own: everything is read from the database."""

    def __init__(self, db: Database, policy: CompiledPolicy, clock: Clock) -> None:
        self.db = db
        self.policy = policy
        self.clock = clock

    async def handle(self, hook: HookType, payload: FlaggerPayload) -> HookOutcome:
        environment = self.policy.match(payload)
        started = time.perf_counter()

        def work(conn: Connection) -> HookOutcome:
            return self._handle(conn, hook, payload, environment, started)

        return await self.db.write(work)

    async def ci_state(
        self, payload: FlaggerPayload, rollout_seq: int
    ) -> tuple[tuple[str, str], ...]:
        """(gate, status) of each E2E run of the canary's rollout: a held call watches it."""

        def read(conn: Connection) -> tuple[tuple[str, str], ...]:
            canary = repo.find_canary(conn, payload.namespace, payload.name)
            if canary is None:
                return ()
            return tuple(
                (row.gate, row.status) for row in ci_runs.runs_of(conn, canary.id, rollout_seq)
            )

        return await self.db.read(read)

    def _handle(
        self,
        conn: Connection,
        hook: HookType,
        payload: FlaggerPayload,
        environment: CompiledEnvironment | None,
        started: float,
    ) -> HookOutcome:
        env_name = environment.name if environment else None
        now = self.clock.now()
        canary = repo.lock_canary(conn, payload.namespace, payload.name, now)
        current = repo.get_rollout(conn, canary.current_rollout_id)
        resolution = resolve(
            snapshot.current_rollout(current), hook, payload.phase, payload.checksum
        )
        rollout = self._apply(conn, canary, current, resolution, hook, payload, env_name, now)
        decision = self._decide(conn, canary, rollout, hook, payload, environment, now)
        applied = Applied()
        if rollout is not None:
            applied = apply_effects(
                conn,
                decision.effects,
                canary_id=canary.id,
                rollout_seq=rollout.seq,
                now=now,
                ci_providers=self.policy.policy.ci.providers,
            )
        if (
            hook is HookType.POST_ROLLOUT
            and rollout is not None
            and environment is not None
            and environment.spec.promote is not None
            and rollout.status == RolloutStatus.SUCCEEDED.value
            # only Flagger's explicit word: a post-rollout with an empty or unknown phase
            # finishes the rollout as succeeded, but must not send its commit on
            and payload.phase == PROMOTING_PHASE
        ):
            promote = environment.spec.promote
            recorded = promotions.record(
                conn,
                canary_id=canary.id,
                rollout_seq=rollout.seq,
                environment=environment.name,
                to_environment=promote.to,
                action=promote.action,
                status="held" if promote.manual_release else "pending",
                held_reason=MANUAL_RELEASE if promote.manual_release else None,
                attempts=0,
                created_at=now,
                updated_at=now,
                next_attempt_at=now,
            )
            applied = replace(applied, promotions=applied.promotions + int(recorded))
        if self.policy.policy.notifications.routes:
            notices = hook_call_notices(
                conn, canary.id, current, rollout, hook, payload, env_name, decision, now
            )
            for notice in notices:
                record_notice(
                    conn,
                    self.policy.policy.notifications,
                    canary_id=canary.id,
                    notice=notice,
                    now=now,
                )
            applied = replace(applied, notices=applied.notices + len(notices))
        self._record(conn, canary, rollout, hook, payload, env_name, decision, now, started)
        seq = rollout.seq if rollout is not None else None
        return HookOutcome(decision, env_name, seq, applied)

    def _apply(
        self,
        conn: Connection,
        canary: Row[Any],
        current: Row[Any] | None,
        res: Resolution,
        hook: HookType,
        payload: FlaggerPayload,
        env_name: str | None,
        now: datetime,
    ) -> Row[Any] | None:
        if not res.attach:
            return None
        if current is not None and res.close_current_as is not None:
            repo.update_rollout(
                conn,
                current.id,
                status=res.close_current_as.value,
                finished_at=now,
                updated_at=now,
                **_NOT_WAITING,
            )
            if res.close_current_as is RolloutStatus.SUPERSEDED:
                ci_runs.abandon_runs_of(conn, current.canary_id, current.seq, now)
        if res.open_new or current is None:
            status = res.new_status or RolloutStatus.PROGRESSING
            # Flagger restarting the analysis for a newer revision (no confirm-rollout) keeps
            # the release-train slot the superseded rollout had: it is the same departure.
            restarted = (
                current is not None
                and res.close_current_as is RolloutStatus.SUPERSEDED
                and hook is not HookType.CONFIRM_ROLLOUT
            )
            return repo.insert_rollout(
                conn,
                canary_id=canary.id,
                seq=(current.seq + 1) if current is not None else 1,
                status=status.value,
                environment=env_name,
                revision=res.revision or "",
                base_checksum=payload.checksum if hook is HookType.CONFIRM_ROLLOUT else "",
                phase=payload.phase,
                started_at=now,
                updated_at=now,
                progressing_at=now if status is RolloutStatus.PROGRESSING else None,
                finished_at=now if status in _TERMINAL else None,
                released_at=current.released_at if restarted and current is not None else None,
                confirmed_at=current.confirmed_at if restarted and current is not None else None,
            )
        changes: dict[str, Any] = {}
        if res.new_status is not None and res.new_status.value != current.status:
            changes["status"] = res.new_status.value
            if res.new_status is RolloutStatus.PROGRESSING:
                changes["progressing_at"] = now
            if res.new_status in _TERMINAL:
                changes.update(
                    finished_at=now,
                    **_NOT_WAITING,
                )
        if res.revision is not None:
            changes["revision"] = res.revision
        if not changes:
            return current
        repo.update_rollout(conn, current.id, **changes)
        return repo.get_rollout(conn, current.id)

    def _decide(
        self,
        conn: Connection,
        canary: Row[Any],
        rollout: Row[Any] | None,
        hook: HookType,
        payload: FlaggerPayload,
        environment: CompiledEnvironment | None,
        now: datetime,
    ) -> Decision:
        ctx = load_context(
            conn,
            canary=canary,
            rollout=snapshot.rollout_view(rollout),
            released=rollout is not None and rollout.released_at is not None,
            hook=hook,
            payload=payload,
            environment=environment,
            now=now,
            lock_train=True,
        )
        return decide(ctx, environment, self.policy.policy.unmatched)

    def _record(
        self,
        conn: Connection,
        canary: Row[Any],
        rollout: Row[Any] | None,
        hook: HookType,
        payload: FlaggerPayload,
        env_name: str | None,
        decision: Decision,
        now: datetime,
        started: float,
    ) -> None:
        if rollout is not None:
            changes: dict[str, Any] = {
                "phase": payload.phase or rollout.phase,
                "last_hook": hook.value,
                "last_verdict": decision.verdict.value,
                "updated_at": now,
            }
            if env_name and rollout.environment != env_name:
                changes["environment"] = env_name
            if hook.is_gating and rollout.status not in {s.value for s in _TERMINAL}:
                if decision.verdict in (Verdict.WAIT, Verdict.FAIL):
                    same = (
                        rollout.waiting_hook == hook.value
                        and rollout.waiting_reason == decision.reason
                    )
                    changes.update(
                        waiting_hook=hook.value,
                        waiting_gate=decision.gate,
                        waiting_reason=decision.reason,
                        waiting_since=rollout.waiting_since if same else now,
                        retry_at=decision.retry_at,
                    )
                elif rollout.waiting_hook == hook.value:
                    changes.update(_NOT_WAITING)
                if (
                    hook is HookType.CONFIRM_ROLLOUT
                    and decision.verdict is Verdict.PASS
                    and rollout.status == RolloutStatus.PENDING.value
                ):
                    changes.update(status=RolloutStatus.CONFIRMED.value, confirmed_at=now)
                    if rollout.released_at is None:
                        changes["released_at"] = now  # left the release train
                if hook is HookType.CONFIRM_ROLLOUT:
                    changes["in_line"] = decision.in_line
            repo.update_rollout(conn, rollout.id, **changes)
        repo.update_canary(
            conn,
            canary.id,
            phase=payload.phase,
            checksum=payload.checksum,
            environment=env_name,
            last_hook=hook.value,
            last_seen_at=now,
            current_rollout_id=rollout.id if rollout is not None else canary.current_rollout_id,
        )
        repo.insert_audit(
            conn,
            at=now,
            kind="hook",
            actor="flagger",
            action=hook.value,
            namespace=payload.namespace,
            name=payload.name,
            environment=env_name,
            rollout_seq=rollout.seq if rollout is not None else None,
            hook=hook.value,
            phase=payload.phase,
            checksum=payload.checksum,
            verdict=decision.verdict.value,
            http_status=decision.http_status,
            reason=decision.reason,
            gate=decision.gate,
            payload=payload.redacted(),
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
        )
