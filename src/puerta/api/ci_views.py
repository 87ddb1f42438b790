"""E2E runs as the API shows them: a stored run with its namespace, name and history."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row
from sqlalchemy.engine import Connection

from puerta.api import schemas
from puerta.store import ci_runs


def ci_run_out(
    row: Row[Any], namespace: str, name: str, events: Sequence[Row[Any]] = ()
) -> schemas.CiRun:
    values = dict(row._mapping)
    values.update(namespace=namespace, name=name)
    values["events"] = [schemas.CiRunEvent.model_validate(event) for event in events]
    return schemas.CiRun.model_validate(values)


def with_events(conn: Connection, rows: Sequence[Row[Any]]) -> list[schemas.CiRun]:
    """Runs (rows with ``namespace`` and ``name``) with their status history."""
    history: dict[int, list[Row[Any]]] = defaultdict(list)
    for event in ci_runs.events_of(conn, [row.id for row in rows]):
        history[event.run_id].append(event)
    return [ci_run_out(row, row.namespace, row.name, history[row.id]) for row in rows]


def ci_runs_of_rollout(conn: Connection, canary: Row[Any], seq: int) -> list[schemas.CiRun]:
    rows = ci_runs.runs_of(conn, canary.id, seq)
    history: dict[int, list[Row[Any]]] = defaultdict(list)
    for event in ci_runs.events_of(conn, [row.id for row in rows]):
        history[event.run_id].append(event)
    return [ci_run_out(row, canary.namespace, canary.name, history[row.id]) for row in rows]
