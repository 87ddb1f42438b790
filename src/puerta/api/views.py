"""Turn stored rows into API bodies (one place, so the API and CLI show the same thing)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row

from puerta.api import schemas


def rollout_from(row: Any, prefix: str = "") -> schemas.Rollout | None:
    def get(field: str) -> Any:
        return getattr(row, prefix + field)

    if get("id") is None:
        return None
    waiting = None
    if get("waiting_hook"):
        waiting = schemas.Waiting(
            hook=get("waiting_hook"),
            gate=get("waiting_gate"),
            reason=get("waiting_reason") or "",
            since=get("waiting_since"),
            retry_at=get("retry_at"),
        )
    return schemas.Rollout(
        seq=get("seq"),
        status=get("status"),
        environment=get("environment"),
        revision=get("revision"),
        base_checksum=get("base_checksum"),
        phase=get("phase"),
        started_at=get("started_at"),
        confirmed_at=get("confirmed_at"),
        progressing_at=get("progressing_at"),
        finished_at=get("finished_at"),
        last_hook=get("last_hook"),
        last_verdict=get("last_verdict"),
        waiting=waiting,
    )


def canary_from(row: Row[Any], rollout: schemas.Rollout | None) -> dict[str, Any]:
    halted = None
    if row.halted:
        halted = schemas.Halt(
            by=row.halted_by or "?", at=row.halted_at, reason=row.halt_reason or ""
        )
    return {
        "namespace": row.namespace,
        "name": row.name,
        "environment": row.environment,
        "phase": row.phase,
        "checksum": row.checksum,
        "last_hook": row.last_hook,
        "first_seen_at": row.first_seen_at,
        "last_seen_at": row.last_seen_at,
        "halted": halted,
        "rollout": rollout,
    }
