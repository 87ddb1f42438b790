"""The ``promotions`` table (imported by ``tables.py`` so it shares its metadata): one row per
rollout that succeeded in an environment with a ``promote`` section, recorded in the
post-rollout call's transaction (so exactly once), carried out by a background worker under a
short lease, held while the target environment is frozen, the canary halted or a person (or
the policy's ``manual_release``) holds it.

What is sent is rendered once and stored before the first attempt (``tag`` and
``release_name`` of a release, ``event_type`` of a dispatch), so a retry sends the same."""

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
    Column("release_name", Text),  # rendered before the first attempt (with ``tag``)
    Column("event_type", String(100)),  # a dispatch's, rendered before the first attempt
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
    Column("held_by", String(200)),  # who holds it by hand (null: nobody)
    Column("held_note", Text),  # the reason they gave
    Column("released_by", String(200)),  # who last released it by hand
    Column("released_at", UTCDateTime()),
    UniqueConstraint("canary_id", "rollout_seq"),
    Index(None, "status", "next_attempt_at"),
)
