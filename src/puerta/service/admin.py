"""Manual actions: approve, halt, roll back. Each is authenticated upstream and audited here.

* **approve** gives the current rollout an approval for the hook it waits on (or the hook
  named; with no hook waiting, for every hook); with
  ``scope="canary"`` it is a sticky approval for ``scope: canary`` manual gates (the
  flagger-loadtester behaviour). Approving a halted canary also lifts the halt.
* **halt** keeps every confirm-* hook of the canary waiting until someone approves again, across
  rollouts and restarts, and withdraws sticky approvals.
* **rollback** makes the rollback hook answer 200 for the current rollout, so Flagger rolls it
  back on its next tick.
* **override** (break-glass, admin) lets the current rollout through windows, freezes and the
  release train; the answer to Flagger says who overrode and why.
* **freeze / unfreeze** (admin) stop new rollouts in an environment until lifted or expired.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from puerta.clock import Clock
from puerta.domain.hooks import CONFIRM_HOOKS, HookType
from puerta.domain.rollouts import RolloutStatus
from puerta.errors import BadRequest, Conflict, NotFound
from puerta.store import repository as repo
from puerta.store.db import Database

_CONFIRM_NAMES = {h.value for h in CONFIRM_HOOKS}


@dataclass(frozen=True)
class ActionResult:
    """What an admin action did, in words and in fields."""

    action: str
    namespace: str
    name: str
    message: str
    rollout_seq: int | None = None


class AdminService:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def _canary(self, conn: AsyncConnection, namespace: str, name: str) -> Row[Any]:
        canary = await repo.find_canary(conn, namespace, name)
        if canary is None:
            raise NotFound(f"canary {namespace}/{name} has never called Puerta")
        return canary

    async def _open_rollout(self, conn: AsyncConnection, canary: Row[Any]) -> Row[Any] | None:
        rollout = await repo.get_rollout(conn, canary.current_rollout_id)
        if rollout is None or not RolloutStatus(rollout.status).is_open:
            return None
        return rollout

    async def approve(
        self,
        namespace: str,
        name: str,
        *,
        actor: str,
        reason: str = "",
        hook: HookType | None = None,
        scope: Literal["rollout", "canary"] = "rollout",
    ) -> ActionResult:
        async with self.db.transaction() as conn:
            now = self.clock.now()
            canary = await self._canary(conn, namespace, name)
            rollout = await self._open_rollout(conn, canary)
            parts = []
            if canary.halted:
                await repo.update_canary(
                    conn, canary.id, halted=False, halted_by=None, halted_at=None, halt_reason=None
                )
                parts.append(f"lifted the halt set by {canary.halted_by}")
            seq: int | None = None
            if scope == "canary":
                parts.append("approved later rollouts too (manual gates with scope: canary)")
            elif rollout is not None:
                seq = rollout.seq
                # "Approve" means "approve what is waiting": an approval given at
                # confirm-rollout does not also sign off the later confirm-promotion.
                if hook is None and rollout.waiting_hook in _CONFIRM_NAMES:
                    hook = HookType(rollout.waiting_hook)
                parts.append(f"approved rollout #{seq}" + (f" for {hook.value}" if hook else ""))
            elif not canary.halted:
                raise Conflict(
                    f"{namespace}/{name} has no rollout waiting or in progress; nothing to approve "
                    "(use scope=canary to approve later rollouts)"
                )
            if scope == "canary" or rollout is not None:
                await repo.insert_manual_action(
                    conn,
                    canary_id=canary.id,
                    rollout_seq=seq,
                    action="approve",
                    hook=hook.value if hook else None,
                    actor=actor,
                    reason=reason,
                    created_at=now,
                )
            message = "; ".join(parts)
            await self._audit(
                conn,
                "approve",
                canary,
                actor,
                reason,
                seq,
                message,
                {"hook": hook.value if hook else None, "scope": scope},
            )
        return ActionResult("approve", namespace, name, message, seq)

    async def halt(self, namespace: str, name: str, *, actor: str, reason: str) -> ActionResult:
        async with self.db.transaction() as conn:
            now = self.clock.now()
            canary = await self._canary(conn, namespace, name)
            rollout = await self._open_rollout(conn, canary)
            await repo.update_canary(
                conn, canary.id, halted=True, halted_by=actor, halted_at=now, halt_reason=reason
            )
            await repo.revoke_canary_wide_approvals(conn, canary.id, now)
            message = "halted: confirm-* hooks wait until approved again"
            seq = rollout.seq if rollout is not None else None
            await self._audit(conn, "halt", canary, actor, reason, seq, message, {})
        return ActionResult("halt", namespace, name, message, seq)

    async def rollback(self, namespace: str, name: str, *, actor: str, reason: str) -> ActionResult:
        async with self.db.transaction() as conn:
            now = self.clock.now()
            canary = await self._canary(conn, namespace, name)
            rollout = await self._open_rollout(conn, canary)
            if rollout is None:
                raise Conflict(f"{namespace}/{name} has no rollout in progress to roll back")
            await repo.insert_manual_action(
                conn,
                canary_id=canary.id,
                rollout_seq=rollout.seq,
                action="rollback",
                hook=None,
                actor=actor,
                reason=reason,
                created_at=now,
            )
            message = (
                f"rollback requested for rollout #{rollout.seq}: the rollback hook answers 200 "
                "on Flagger's next check"
            )
            await self._audit(conn, "rollback", canary, actor, reason, rollout.seq, message, {})
        return ActionResult("rollback", namespace, name, message, rollout.seq)

    async def override(self, namespace: str, name: str, *, actor: str, reason: str) -> ActionResult:
        """Break-glass: the waiting rollout passes windows, freezes and the release train."""
        async with self.db.transaction() as conn:
            now = self.clock.now()
            canary = await self._canary(conn, namespace, name)
            rollout = await self._open_rollout(conn, canary)
            if rollout is None:
                raise Conflict(f"{namespace}/{name} has no rollout waiting or in progress")
            await repo.insert_manual_action(
                conn,
                canary_id=canary.id,
                rollout_seq=rollout.seq,
                action="override",
                hook=None,
                actor=actor,
                reason=reason,
                created_at=now,
            )
            message = (
                f"override for rollout #{rollout.seq}: windows, freezes and the release train "
                "no longer hold it (manual approvals and halts still do)"
            )
            await self._audit(conn, "override", canary, actor, reason, rollout.seq, message, {})
        return ActionResult("override", namespace, name, message, rollout.seq)

    async def freeze(
        self,
        environment: str,
        *,
        actor: str,
        reason: str,
        until: datetime | None,
        namespaces: list[str],
        starts_at: datetime | None = None,
    ) -> Row[Any]:
        async with self.db.transaction() as conn:
            now = self.clock.now()
            start = starts_at or now
            if until is not None and until <= max(start, now):
                raise BadRequest("until: must be in the future and after the start")
            row = await repo.insert_freeze(
                conn,
                environment=environment,
                namespaces=namespaces or None,
                reason=reason,
                created_by=actor,
                created_at=now,
                starts_at=start,
                ends_at=until,
            )
            await repo.insert_audit(
                conn,
                at=now,
                kind="admin",
                actor=actor,
                action="freeze",
                environment=environment,
                reason=reason,
                details={
                    "freeze_id": row.id,
                    "until": until.isoformat() if until else None,
                    "namespaces": namespaces,
                    "starts_at": start.isoformat(),
                },
            )
        return row

    async def unfreeze(
        self, environment: str, *, actor: str, reason: str, freeze_id: int | None = None
    ) -> list[int]:
        """Lift one freeze, or every active freeze of the environment; the ids lifted."""
        async with self.db.transaction() as conn:
            now = self.clock.now()
            if freeze_id is not None:
                row = await repo.get_freeze(conn, freeze_id)
                if row is None or row.environment != environment:
                    raise NotFound(f"no freeze {freeze_id} in {environment}")
                if row.lifted_at is not None:
                    raise Conflict(f"freeze {freeze_id} was already lifted by {row.lifted_by}")
                ids = [freeze_id]
            else:
                ids = [row.id for row in await repo.active_freezes(conn, environment, now)]
                if not ids:
                    raise Conflict(f"{environment} has no active freeze")
            for one in ids:
                await repo.lift_freeze(conn, one, actor, now)
            await repo.insert_audit(
                conn,
                at=now,
                kind="admin",
                actor=actor,
                action="unfreeze",
                environment=environment,
                reason=reason,
                details={"freeze_ids": ids},
            )
        return ids

    async def _audit(
        self,
        conn: AsyncConnection,
        action: str,
        canary: Row[Any],
        actor: str,
        reason: str,
        seq: int | None,
        message: str,
        details: dict[str, Any],
    ) -> None:
        await repo.insert_audit(
            conn,
            at=self.clock.now(),
            kind="admin",
            actor=actor,
            action=action,
            namespace=canary.namespace,
            name=canary.name,
            environment=canary.environment,
            rollout_seq=seq,
            reason=reason,
            details={"result": message, **details},
        )
