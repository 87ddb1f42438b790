"""A canary's timeline: everything that happened to it, newest first, from several sources.

Today the one source is the audit: every hook call with Puerta's decision, Flagger's events and
every manual action. CI runs and notifications are meant to become further sources; each source
is a function returning :class:`TimelineEntry` items for one canary, and the entries are merged
by time here, so a new kind of entry needs a new source (and at most a CSS class), no change to
the pages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row
from sqlalchemy.engine import Connection

from puerta.store import repository as repo

TIMELINE_LIMIT = 100


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str  # hook | event | admin (later: ci, notification)
    title: str
    detail: str = ""
    actor: str = ""
    outcome: str | None = None  # Puerta's verdict on a hook call: pass, wait, fail, ...
    http_status: int | None = None
    gate: str | None = None
    rollout_seq: int | None = None
    link: str | None = None  # e.g. a CI run's page
    order: int = 0  # ties at the same instant: higher is newer (the audit id)


TimelineSource = Callable[[Connection, str, str, int], list[TimelineEntry]]


def entry_from_audit(row: Row[Any]) -> TimelineEntry:
    """One audit row as a timeline entry."""
    common: dict[str, Any] = {"at": row.at, "rollout_seq": row.rollout_seq, "order": row.id}
    if row.kind != "hook":
        details = row.details or {}
        result = str(details.get("result") or "")
        reason = f"reason: {row.reason}" if row.reason else ""
        detail = " — ".join(part for part in (result, reason) if part)
        title = f"{row.action} by {row.actor}"
        return TimelineEntry(kind="admin", title=title, detail=detail, actor=row.actor, **common)
    phase = row.phase or "no phase"
    if row.hook == "event":
        metadata = (row.payload or {}).get("metadata") or {}
        message = str(metadata.get("eventMessage") or "")
        level = str(metadata.get("eventType") or "")
        title = f"Flagger event ({phase})" + (f", {level}" if level else "")
        return TimelineEntry(kind="event", title=title, detail=message, actor=row.actor, **common)
    return TimelineEntry(
        kind="hook",
        title=f"{row.hook} call ({phase})",
        detail=row.reason or "",
        actor=row.actor,
        outcome=row.verdict,
        http_status=row.http_status,
        gate=row.gate,
        **common,
    )


def audit_source(conn: Connection, namespace: str, name: str, limit: int) -> list[TimelineEntry]:
    where = repo.AuditFilter(namespace=namespace, name=name)
    rows = repo.query_audit(conn, where, limit=limit, before_id=None)
    return [entry_from_audit(row) for row in rows]


SOURCES: tuple[TimelineSource, ...] = (audit_source,)


def load_timeline(
    conn: Connection, namespace: str, name: str, limit: int = TIMELINE_LIMIT
) -> list[TimelineEntry]:
    """The newest ``limit`` entries of every source, newest first."""
    entries: list[TimelineEntry] = []
    for source in SOURCES:
        entries.extend(source(conn, namespace, name, limit))
    entries.sort(key=lambda e: (e.at, e.order), reverse=True)
    return entries[:limit]
