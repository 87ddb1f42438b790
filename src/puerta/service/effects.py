"""Carry out what gates asked for, inside the hook call's transaction, once per key.

Each effect is recorded idempotently (a unique key: canary, rollout, gate), so Flagger's
retries, repeated calls every interval and several replicas all lead to one load test. The
work itself (generating load) is done by a background runner that claims the record.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy.engine import Connection

from puerta.domain.effects import Effect, StartLoad
from puerta.store import repository as repo


def apply_effects(
    conn: Connection,
    effects: Iterable[Effect],
    *,
    canary_id: int,
    rollout_seq: int,
    now: datetime,
) -> None:
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
