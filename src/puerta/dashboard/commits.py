"""Where is my commit? The dashboard's search.

Where Puerta resolved rollouts to commits (``commits:`` in the policy), the page answers with
``service/whereabouts.py``. Besides, since Flagger's webhooks carry only a checksum of the pod
template, a search takes a commit SHA *or* a Flagger checksum (hex, 7-64 characters) and looks
where it could appear: rollouts whose revision (or the checksum seen at
confirm-rollout, the previous revision) starts with it, and hook calls whose webhook metadata
has a value equal to it (teams that put the commit into the Canary's webhook metadata find it
there). The metadata lives in the audit, which needs a session to read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Text, cast, func, or_, select
from sqlalchemy.engine import Connection

from puerta.store.tables import audit_events, canaries, rollouts

_HEX = re.compile(r"[0-9a-f]{7,64}")
ROLLOUT_LIMIT = 50
AUDIT_SCAN_LIMIT = 500
NOT_KNOWN = "Puerta does not know commits yet; matched Flagger revisions:"


class BadQuery(ValueError):
    """The search text is not a SHA or checksum; the message says what is expected."""


def parse_query(raw: str) -> str:
    """The normalised (lower-case) search text, or :class:`BadQuery`."""
    query = raw.strip().lower()
    if not _HEX.fullmatch(query):
        shown = raw.strip()[:80]
        raise BadQuery(
            f"{shown!r} is not a commit SHA or Flagger checksum: paste 7 to 64 hexadecimal "
            "characters (0-9, a-f), e.g. 85d557f47b"
        )
    return query


@dataclass(frozen=True)
class RevisionMatch:
    namespace: str
    name: str
    seq: int
    status: str
    environment: str | None
    matched: str  # which field: "revision" or "previous revision"
    value: str
    started_at: datetime

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class MetadataMatch:
    namespace: str
    name: str
    rollout_seq: int | None
    key: str
    value: str
    last_seen: datetime
    calls: int

    @property
    def canary(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class CommitSearch:
    query: str
    revisions: list[RevisionMatch]
    metadata: list[MetadataMatch] | None  # None: not searched (the audit needs a session)

    @property
    def found(self) -> bool:
        return bool(self.revisions or self.metadata)


def _revisions(conn: Connection, query: str) -> list[RevisionMatch]:
    r = rollouts
    prefix = f"{query}%"  # only hex digits: no LIKE wildcard can sneak in
    stmt = (
        select(
            r.c.seq,
            r.c.status,
            r.c.environment,
            r.c.revision,
            r.c.base_checksum,
            r.c.started_at,
            canaries.c.namespace,
            canaries.c.name,
        )
        .select_from(r.join(canaries, canaries.c.id == r.c.canary_id))
        .where(
            or_(func.lower(r.c.revision).like(prefix), func.lower(r.c.base_checksum).like(prefix))
        )
        .order_by(r.c.started_at.desc(), r.c.id.desc())
        .limit(ROLLOUT_LIMIT)
    )
    matches = []
    for row in conn.execute(stmt).all():
        by_revision = row.revision.lower().startswith(query)
        matches.append(
            RevisionMatch(
                namespace=row.namespace,
                name=row.name,
                seq=row.seq,
                status=row.status,
                environment=row.environment,
                matched="revision" if by_revision else "previous revision",
                value=row.revision if by_revision else row.base_checksum,
                started_at=row.started_at,
            )
        )
    return matches


def _metadata_hits(payload: Any, query: str) -> list[tuple[str, str]]:
    metadata = payload.get("metadata") if isinstance(payload, dict) else None
    if not isinstance(metadata, dict):
        return []
    return [(str(k), str(v)) for k, v in metadata.items() if str(v).lower() == query]


def _metadata(conn: Connection, query: str) -> list[MetadataMatch]:
    """Hook calls whose metadata has a value equal to ``query``, one line per canary, rollout
    and key. A substring filter in SQL narrows the scan; the exact test is done here."""
    a = audit_events
    stmt = (
        select(a.c.at, a.c.namespace, a.c.name, a.c.rollout_seq, a.c.payload)
        .where(a.c.kind == "hook", func.lower(cast(a.c.payload, Text)).like(f'%"{query}"%'))
        .order_by(a.c.id.desc())
        .limit(AUDIT_SCAN_LIMIT)
    )
    found: dict[tuple[str, str, int | None, str], MetadataMatch] = {}
    for row in conn.execute(stmt).all():
        for key, value in _metadata_hits(row.payload, query):
            ident = (row.namespace, row.name, row.rollout_seq, key)
            seen = found.get(ident)
            if seen is None:  # rows come newest first
                found[ident] = MetadataMatch(
                    row.namespace, row.name, row.rollout_seq, key, value, row.at, 1
                )
            else:
                found[ident] = replace(seen, calls=seen.calls + 1)
    return list(found.values())


def search(conn: Connection, query: str, *, include_audit: bool) -> CommitSearch:
    revisions = _revisions(conn, query)
    metadata = _metadata(conn, query) if include_audit else None
    return CommitSearch(query, revisions, metadata)
