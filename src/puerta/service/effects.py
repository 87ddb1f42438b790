"""Carry out what gates asked for, inside the hook call's transaction, once per key.

Each effect is recorded idempotently (a unique key: canary, rollout, gate), so Flagger's
retries, repeated calls every interval and several replicas all lead to one load test and one
CI run. The work itself (generating load, triggering and following the run) is done by a
background runner that claims the record.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.engine import Connection

from puerta.ci.config import CiProviderConfig
from puerta.domain.effects import Effect, StartCi, StartLoad
from puerta.store import ci_runs
from puerta.store import repository as repo


@dataclass(frozen=True, slots=True)
class Applied:
    """What a hook call's effects recorded that was not there before."""

    load_tests: int = 0
    ci_runs: int = 0
    notices: int = 0  # notices written to the outbox
    promotions: int = 0  # promotions recorded


def apply_effects(
    conn: Connection,
    effects: Iterable[Effect],
    *,
    canary_id: int,
    rollout_seq: int,
    now: datetime,
    ci_providers: Mapping[str, CiProviderConfig],
) -> Applied:
    load_tests = runs = 0
    for effect in effects:
        if isinstance(effect, StartLoad):
            repo.insert_load_run(
                conn,
                canary_id=canary_id,
                rollout_seq=rollout_seq,
                gate=effect.gate,
                spec=effect.spec,
                status="running",
                created_at=now,
                updated_at=now,
                segments=0,
            )
            load_tests += 1
        elif isinstance(effect, StartCi):
            runs += _record_ci_run(conn, effect, canary_id, rollout_seq, now, ci_providers)
    return Applied(load_tests, runs)


def _record_ci_run(
    conn: Connection,
    effect: StartCi,
    canary_id: int,
    rollout_seq: int,
    now: datetime,
    providers: Mapping[str, CiProviderConfig],
) -> int:
    config = providers[effect.provider]  # the policy loader checked the name
    recorded = ci_runs.insert_run(
        conn,
        canary_id=canary_id,
        rollout_seq=rollout_seq,
        gate=effect.gate,
        provider=effect.provider,
        kind=config.type,
        target=effect.target,
        correlation=effect.target["correlation"],
        status="pending",
        polls=0,
        backoff_s=0.0,
        created_at=now,
        updated_at=now,
        deadline_at=now + timedelta(seconds=effect.deadline_s),
        next_check_at=now,
    )
    return int(recorded)
