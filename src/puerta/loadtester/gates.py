"""The loadtester's gates, kept in Puerta's database as manual actions.

flagger-loadtester keeps two booleans per canary in memory (``name.namespace`` and
``rollback.name.namespace``): lost on restart and different on every replica (flagger#445).
Here they are rows of ``manual_actions``, the same state Puerta's own manual gates use:

* the **gate** is open while the canary has an unrevoked canary-wide approval
  (``action="approve"``, ``rollout_seq=NULL``, no hook) and is not halted. ``/gate/open`` adds
  one (exactly what ``puerta approve --scope canary`` adds), ``/gate/close`` revokes them all,
  and ``puerta halt`` closes it too;
* the **rollback gate** is open while the canary has an unrevoked canary-wide rollback
  (``action="rollback"``, ``rollout_seq=NULL``), or Puerta's own rollback request
  (``puerta rollback``) for the rollout in progress.

Every check is recorded in the audit like a hook call, every open and close like an admin
action, with the caller's token name as the actor.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Row
from sqlalchemy.engine import Connection

from puerta.clock import Clock
from puerta.domain.decisions import Verdict
from puerta.domain.hooks import FlaggerPayload
from puerta.domain.rollouts import RolloutStatus
from puerta.errors import Conflict
from puerta.policy.model import CompiledPolicy
from puerta.store import repository as repo
from puerta.store.db import Database


class GateKind(StrEnum):
    """The loadtester's two gates per canary."""

    GATE = "gate"
    ROLLBACK = "rollback"

    @property
    def action(self) -> str:
        """The ``manual_actions.action`` that holds this gate open."""
        return "approve" if self is GateKind.GATE else "rollback"


@dataclass(frozen=True)
class CheckResult:
    """Whether a gate is open, and why (for the audit and the logs; Flagger gets the
    loadtester's fixed words)."""

    open: bool
    reason: str
    rollout_seq: int | None = None


def _open_rollout(conn: Connection, canary: Row[Any]) -> Row[Any] | None:
    rollout = repo.get_rollout(conn, canary.current_rollout_id)
    if rollout is None or not RolloutStatus(rollout.status).is_open:
        return None
    return rollout


def _canary_wide(rows: Any, kind: GateKind) -> list[Row[Any]]:
    return [
        row
        for row in rows
        if row.action == kind.action
        and row.rollout_seq is None
        and (kind is GateKind.ROLLBACK or row.hook is None)
    ]


def _actors(rows: list[Row[Any]]) -> str:
    return ", ".join(sorted({row.actor for row in rows}))


def evaluate(conn: Connection, canary: Row[Any], kind: GateKind) -> CheckResult:
    """Read a gate's state (inside the caller's transaction)."""
    rows = repo.active_manual_actions(conn, canary.id)
    rollout = _open_rollout(conn, canary)
    seq = rollout.seq if rollout is not None else None
    who = f"{canary.namespace}/{canary.name}"
    wide = _canary_wide(rows, kind)
    if kind is GateKind.GATE:
        if canary.halted:
            reason = f"halted by {canary.halted_by}: {canary.halt_reason or 'no reason given'}"
            return CheckResult(False, f"{reason} (puerta approve {who} lifts it)", seq)
        if wide:
            return CheckResult(True, f"gate opened by {_actors(wide)}", seq)
        return CheckResult(
            False, f"gate closed (POST /gate/open or puerta approve {who} --scope canary)", seq
        )
    if wide:
        return CheckResult(True, f"rollback gate opened by {_actors(wide)}", seq)
    own = [r for r in rows if r.action == "rollback" and seq is not None and r.rollout_seq == seq]
    if own:
        return CheckResult(True, f"rollback of rollout #{seq} requested by {_actors(own)}", seq)
    return CheckResult(False, "rollback gate closed", seq)


class LoadtesterGates:
    """Reads and changes the gates; each call is one transaction (see ``store/db.py``)."""

    def __init__(self, db: Database, policy: CompiledPolicy, clock: Clock) -> None:
        self.db = db
        self.policy = policy
        self.clock = clock

    def _environment(self, payload: FlaggerPayload) -> str | None:
        environment = self.policy.match(payload)
        return environment.name if environment is not None else None

    def _see(
        self, conn: Connection, payload: FlaggerPayload, env_name: str | None, now: datetime
    ) -> Row[Any]:
        """The canary's row, created on first sight and locked, as a hook call does."""
        canary = repo.lock_canary(conn, payload.namespace, payload.name, now)
        changes: dict[str, Any] = {"last_seen_at": now}
        if canary.environment is None and env_name is not None:
            changes["environment"] = env_name
        repo.update_canary(conn, canary.id, **changes)
        return canary

    async def check(self, kind: GateKind, payload: FlaggerPayload) -> CheckResult:
        """``/gate/check`` or ``/rollback/check``: the gate's state, recorded like a hook."""
        env_name = self._environment(payload)
        started = time.perf_counter()

        def work(conn: Connection) -> CheckResult:
            now = self.clock.now()
            canary = self._see(conn, payload, env_name, now)
            result = evaluate(conn, canary, kind)
            if kind is GateKind.GATE:
                verdict = Verdict.PASS if result.open else Verdict.WAIT
            else:
                verdict = Verdict.ROLLBACK if result.open else Verdict.CARRY_ON
            self._record_call(
                conn, f"{kind.value}-check", payload, env_name, result, verdict, now, started
            )
            return result

        return await self.db.write(work)

    async def record_fixed(self, name: str, payload: FlaggerPayload, passed: bool) -> None:
        """``/gate/approve`` and ``/gate/halt`` always answer the same; record that they were
        asked, so the canary's timeline shows the call."""
        env_name = self._environment(payload)
        started = time.perf_counter()
        result = CheckResult(passed, f"/gate/{name.removeprefix('gate-')} always answers so")

        def work(conn: Connection) -> None:
            now = self.clock.now()
            canary = self._see(conn, payload, env_name, now)
            rollout = _open_rollout(conn, canary)
            seen = CheckResult(passed, result.reason, rollout.seq if rollout else None)
            verdict = Verdict.PASS if passed else Verdict.WAIT
            self._record_call(conn, name, payload, env_name, seen, verdict, now, started)

        await self.db.write(work)

    def _record_call(
        self,
        conn: Connection,
        action: str,
        payload: FlaggerPayload,
        env_name: str | None,
        result: CheckResult,
        verdict: Verdict,
        now: datetime,
        started: float,
    ) -> None:
        repo.insert_audit(
            conn,
            at=now,
            kind="hook",
            actor="flagger",
            action=action,
            namespace=payload.namespace,
            name=payload.name,
            environment=env_name,
            rollout_seq=result.rollout_seq,
            hook=action,
            phase=payload.phase,
            checksum=payload.checksum,
            verdict=verdict.value,
            http_status=verdict.http_status,
            reason=result.reason,
            gate=f"loadtester /{action.replace('-', '/', 1)}",
            payload=payload.redacted(),
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
        )

    async def open(
        self, kind: GateKind, payload: FlaggerPayload, *, actor: str, reason: str
    ) -> str:
        """``/gate/open`` or ``/rollback/open``: add the caller's canary-wide action (once).

        A halted canary's gate is not opened behind the back of whoever halted it: that is a
        :class:`Conflict` (``puerta approve`` lifts a halt on purpose).
        """
        env_name = self._environment(payload)

        def work(conn: Connection) -> str:
            now = self.clock.now()
            canary = self._see(conn, payload, env_name, now)
            if kind is GateKind.GATE and canary.halted:
                raise Conflict(
                    f"{payload.canary} is halted by {canary.halted_by} "
                    f"({canary.halt_reason or 'no reason given'}); the gate stays closed until "
                    f"someone runs puerta approve {payload.canary}"
                )
            mine = _canary_wide(repo.active_manual_actions(conn, canary.id), kind)
            if any(row.actor == actor for row in mine):
                message = f"{kind.value} already opened by {actor}"
            else:
                repo.insert_manual_action(
                    conn,
                    canary_id=canary.id,
                    rollout_seq=None,
                    action=kind.action,
                    hook=None,
                    actor=actor,
                    reason=reason,
                    created_at=now,
                )
                message = f"{kind.value} opened for every rollout of {payload.canary} until closed"
            self._audit(conn, f"{kind.value}-open", canary, env_name, actor, reason, message, now)
            return message

        return await self.db.write(work)

    async def close(
        self, kind: GateKind, payload: FlaggerPayload, *, actor: str, reason: str
    ) -> str:
        """``/gate/close`` or ``/rollback/close``: revoke every canary-wide action of the kind."""
        env_name = self._environment(payload)

        def work(conn: Connection) -> str:
            now = self.clock.now()
            canary = self._see(conn, payload, env_name, now)
            revoked = repo.revoke_canary_wide_actions(conn, canary.id, kind.action, now)
            message = f"{kind.value} closed ({revoked} canary-wide {kind.action} revoked)"
            self._audit(conn, f"{kind.value}-close", canary, env_name, actor, reason, message, now)
            return message

        return await self.db.write(work)

    def _audit(
        self,
        conn: Connection,
        action: str,
        canary: Row[Any],
        env_name: str | None,
        actor: str,
        reason: str,
        message: str,
        now: datetime,
    ) -> None:
        repo.insert_audit(
            conn,
            at=now,
            kind="admin",
            actor=actor,
            action=action,
            namespace=canary.namespace,
            name=canary.name,
            environment=canary.environment or env_name,
            rollout_seq=None,
            reason=reason,
            details={"result": message, "via": "flagger-loadtester API"},
        )
