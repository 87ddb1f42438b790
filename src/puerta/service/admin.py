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
from sqlalchemy.engine import Connection

from puerta.clock import Clock
from puerta.domain.hooks import CONFIRM_HOOKS, HookType
from puerta.domain.notices import Notice, NoticeKind
from puerta.domain.rollouts import RolloutStatus
from puerta.errors import BadRequest, Conflict, NotFound
from puerta.notify.config import NotificationsConfig
from puerta.service.notices import record_notice
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


_NOTICE_OF_ACTION = {
    "approve": NoticeKind.APPROVED,
    "halt": NoticeKind.HALTED,
    "rollback": NoticeKind.ROLLBACK_REQUESTED,
    "override": NoticeKind.OVERRIDE,
}


class AdminService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        notifications: NotificationsConfig | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.notifications = notifications or NotificationsConfig()

    def _canary(self, conn: Connection, namespace: str, name: str) -> Row[Any]:
        canary = repo.find_canary(conn, namespace, name, lock=True)
        if canary is None:
            raise NotFound(f"canary {namespace}/{name} has never called Puerta")
        return canary

    def _open_rollout(self, conn: Connection, canary: Row[Any]) -> Row[Any] | None:
        rollout = repo.get_rollout(conn, canary.current_rollout_id)
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
        def work(conn: Connection) -> ActionResult:
            now = self.clock.now()
            canary = self._canary(conn, namespace, name)
            rollout = self._open_rollout(conn, canary)
            approved = hook
            parts = []
            if canary.halted:
                repo.update_canary(
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
                if approved is None and rollout.waiting_hook in _CONFIRM_NAMES:
                    approved = HookType(rollout.waiting_hook)
                for_hook = f" for {approved.value}" if approved else ""
                parts.append(f"approved rollout #{seq}{for_hook}")
            elif not canary.halted:
                raise Conflict(
                    f"{namespace}/{name} has no rollout waiting or in progress; nothing to approve "
                    "(use scope=canary to approve later rollouts)"
                )
            if scope == "canary" or rollout is not None:
                repo.insert_manual_action(
                    conn,
                    canary_id=canary.id,
                    rollout_seq=seq,
                    action="approve",
                    hook=approved.value if approved else None,
                    actor=actor,
                    reason=reason,
                    created_at=now,
                )
            message = "; ".join(parts)
            self._audit(
                conn,
                "approve",
                canary,
                actor,
                reason,
                seq,
                message,
                {"hook": approved.value if approved else None, "scope": scope},
            )
            return ActionResult("approve", namespace, name, message, seq)

        return await self.db.write(work)

    async def halt(self, namespace: str, name: str, *, actor: str, reason: str) -> ActionResult:
        def work(conn: Connection) -> ActionResult:
            now = self.clock.now()
            canary = self._canary(conn, namespace, name)
            rollout = self._open_rollout(conn, canary)
            repo.update_canary(
                conn, canary.id, halted=True, halted_by=actor, halted_at=now, halt_reason=reason
            )
            repo.revoke_canary_wide_approvals(conn, canary.id, now)
            message = "halted: confirm-* hooks wait until approved again"
            seq = rollout.seq if rollout is not None else None
            self._audit(conn, "halt", canary, actor, reason, seq, message, {})
            return ActionResult("halt", namespace, name, message, seq)

        return await self.db.write(work)

    async def rollback(self, namespace: str, name: str, *, actor: str, reason: str) -> ActionResult:
        return await self._rollout_action(
            namespace,
            name,
            "rollback",
            actor=actor,
            reason=reason,
            nothing="has no rollout in progress to roll back",
            done="rollback requested for rollout #{seq}: the rollback hook answers 200 on "
            "Flagger's next check",
        )

    async def override(self, namespace: str, name: str, *, actor: str, reason: str) -> ActionResult:
        """Break-glass: the waiting rollout passes windows, freezes and the release train."""
        return await self._rollout_action(
            namespace,
            name,
            "override",
            actor=actor,
            reason=reason,
            nothing="has no rollout waiting or in progress",
            done="override for rollout #{seq}: windows, freezes and the release train no longer "
            "hold it (manual approvals and halts still do)",
        )

    async def _rollout_action(
        self,
        namespace: str,
        name: str,
        action: str,
        *,
        actor: str,
        reason: str,
        nothing: str,
        done: str,
    ) -> ActionResult:
        """Record ``action`` for the canary's open rollout (409 ``nothing`` when there is none)
        and audit it; ``done`` (with ``{seq}``) is what the caller is told."""

        def work(conn: Connection) -> ActionResult:
            now = self.clock.now()
            canary = self._canary(conn, namespace, name)
            rollout = self._open_rollout(conn, canary)
            if rollout is None:
                raise Conflict(f"{namespace}/{name} {nothing}")
            repo.insert_manual_action(
                conn,
                canary_id=canary.id,
                rollout_seq=rollout.seq,
                action=action,
                hook=None,
                actor=actor,
                reason=reason,
                created_at=now,
            )
            message = done.format(seq=rollout.seq)
            self._audit(conn, action, canary, actor, reason, rollout.seq, message, {})
            return ActionResult(action, namespace, name, message, rollout.seq)

        return await self.db.write(work)

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
        def work(conn: Connection) -> Row[Any]:
            now = self.clock.now()
            start = starts_at or now
            if until is not None and until <= max(start, now):
                raise BadRequest("until: must be in the future and after the start")
            row = repo.insert_freeze(
                conn,
                environment=environment,
                namespaces=namespaces or None,
                reason=reason,
                created_by=actor,
                created_at=now,
                starts_at=start,
                ends_at=until,
            )
            repo.insert_audit(
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

        return await self.db.write(work)

    async def unfreeze(
        self, environment: str, *, actor: str, reason: str, freeze_id: int | None = None
    ) -> list[int]:
        """Lift one freeze, or every active freeze of the environment; the ids lifted."""

        def work(conn: Connection) -> list[int]:
            now = self.clock.now()
            if freeze_id is not None:
                row = repo.get_freeze(conn, freeze_id)
                if row is None or row.environment != environment:
                    raise NotFound(f"no freeze {freeze_id} in {environment}")
                if row.lifted_at is not None:
                    raise Conflict(f"freeze {freeze_id} was already lifted by {row.lifted_by}")
                ids = [freeze_id]
            else:
                ids = [row.id for row in repo.active_freezes(conn, environment, now)]
                if not ids:
                    raise Conflict(f"{environment} has no active freeze")
            for one in ids:
                repo.lift_freeze(conn, one, actor, now)
            repo.insert_audit(
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

        return await self.db.write(work)

    def _audit(
        self,
        conn: Connection,
        action: str,
        canary: Row[Any],
        actor: str,
        reason: str,
        seq: int | None,
        message: str,
        details: dict[str, Any],
    ) -> None:
        repo.insert_audit(
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
        kind = _NOTICE_OF_ACTION.get(action)
        if kind is not None and seq is not None and self.notifications.routes:
            rollout = repo.get_rollout(conn, canary.current_rollout_id)
            text = f"{message}" + (f" (reason: {reason})" if reason else "")
            notice = Notice(
                kind=kind,
                namespace=canary.namespace,
                name=canary.name,
                rollout_seq=seq,
                environment=canary.environment,
                revision=rollout.revision if rollout is not None else canary.checksum,
                at=self.clock.now(),
                text=text,
                actor=actor,
            )
            record_notice(
                conn, self.notifications, canary_id=canary.id, notice=notice, now=notice.at
            )
