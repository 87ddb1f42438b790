"""The ``promotions`` table (imported by ``tables.py`` so it shares its metadata): one row per
rollout that succeeded in an environment with a ``promote`` section, recorded in the
post-rollout call's transaction (so exactly once), carried out by a background worker under a
short lease, held while the target environment is frozen or the canary halted."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from puerta.store.tables import UTCDateTime, metadata

promotions = Table(
    "promotions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("canary_id", Integer, ForeignKey("canaries.id", ondelete="CASCADE"), nullable=False),
    Column("rollout_seq", Integer, nullable=False),
    Column("environment", String(100), nullable=False),
    Column("to_environment", String(100), nullable=False),
    Column("action", String(32), nullable=False),  # github_release | repository_dispatch | webhook
    Column("status", String(16), nullable=False),  # pending | held | done | failed
    Column("held_reason", Text),
    Column("repository", String(300)),
    Column("sha", String(64)),
    Column("tag", String(300)),
    Column("url", Text),
    Column("created", Boolean),  # release: made now (True) or already there (False)
    Column("last_error", Text),
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    Column("done_at", UTCDateTime()),
    Column("owner", String(200)),
    Column("lease_until", UTCDateTime()),
    UniqueConstraint("canary_id", "rollout_seq"),
    Index(None, "status", "next_attempt_at"),
)
