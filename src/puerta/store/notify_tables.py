"""Tables of notifications (imported by ``tables.py`` so they share its metadata).

* ``notifications``: the outbox. Each row is one message to deliver, written in the same
  transaction as the event that causes it; a background worker delivers rows of one rollout
  and destination in id order, each under a short lease, and records permanent failures.
* ``notification_threads``: one per rollout and channel: the parent message's id, and the
  folding state (the last reply, how often it repeated, the canary weight last announced).
* ``rollout_commits``: what a rollout ships (image -> repository, commit, author) and whom to
  tell, resolved once per rollout.
* ``lookup_cache``: cached lookups (commit authors, chat users by email), shared by replicas.
* ``notification_episodes``: what the notification layer remembers per thread key. For a
  Puerta rollout (key = its seq): why it may fail (the rollback Puerta answered, the last
  Warning event) and whether the "no DM" note was posted. For a canary with no Puerta rollout
  (key = -N): its N-th *episode*, a rollout seen only through Flagger's events (opened by
  "New revision detected!", closed by "Promotion completed!" / "Canary failed!").
* ``notification_pacing``: per sink lane (a Slack channel, the DMs, a webhook), when the next
  message may go out: ~1 per second per channel and a 429's Retry-After, for every replica.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
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

notifications = Table(
    "notifications",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("canary_id", Integer, ForeignKey("canaries.id", ondelete="CASCADE"), nullable=False),
    # the thread key: > 0 a Puerta rollout, < 0 an event episode (-N), 0 neither (raw only)
    Column("rollout_seq", Integer, nullable=False),
    Column("destination", String(300), nullable=False),  # e.g. slack:#deploys, dm, webhook
    Column("item", String(16), nullable=False),  # parent | reply | raw | event | dm
    Column("notice", JSON, nullable=False),  # puerta.domain.notices.Notice.as_dict()
    Column("status", String(16), nullable=False),  # pending | sent | failed | skipped
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("external_id", Text),  # e.g. the Slack message ts
    Column("created_at", UTCDateTime(), nullable=False),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    Column("sent_at", UTCDateTime()),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("owner", String(200)),
    Column("lease_until", UTCDateTime()),
    Index(None, "status", "next_attempt_at"),
    Index(None, "canary_id", "rollout_seq", "destination", "id"),
)

notification_threads = Table(
    "notification_threads",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("canary_id", Integer, ForeignKey("canaries.id", ondelete="CASCADE"), nullable=False),
    Column("rollout_seq", Integer, nullable=False),
    Column("destination", String(300), nullable=False),
    Column("parent_id", String(100)),  # the parent message's id (Slack ts), once posted
    Column("parent_channel", String(100)),  # the channel's id it was posted in
    Column("parent_error", Text),  # why the parent could not be posted (permanent)
    Column("parent_text", Text),  # what the parent says now (skip updates that change nothing)
    Column("last_fold_key", Text),
    Column("repeats", Integer, nullable=False, default=0),
    Column("last_repeat", Text),
    Column("weight", Integer),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    UniqueConstraint("canary_id", "rollout_seq", "destination"),
)

rollout_commits = Table(
    "rollout_commits",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("canary_id", Integer, ForeignKey("canaries.id", ondelete="CASCADE"), nullable=False),
    Column("rollout_seq", Integer, nullable=False),
    Column("status", String(16), nullable=False),  # resolved | unresolved
    Column("image", Text),
    Column("repository", String(300)),
    Column("sha", String(64)),
    Column("url", Text),
    Column("title", Text),
    Column("author_name", String(300)),
    Column("author_email", String(300)),
    Column("author_login", String(200)),
    Column("committed_at", UTCDateTime()),
    Column("reason", Text),  # why it could not be resolved
    Column("chat_user", String(100)),
    Column("chat_reason", Text),  # why the author has no chat user
    Column("reported", Boolean, nullable=False, default=False),  # a problem was posted
    Column("resolved_at", UTCDateTime(), nullable=False),
    UniqueConstraint("canary_id", "rollout_seq"),
    Index(None, "repository", "sha"),
)

lookup_cache = Table(
    "lookup_cache",
    metadata,
    Column("kind", String(32), primary_key=True),  # commit | chat-user
    Column("key", String(400), primary_key=True),
    Column("value", JSON),  # None: looked up, nothing found
    Column("expires_at", UTCDateTime(), nullable=False),
)

notification_episodes = Table(
    "notification_episodes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("canary_id", Integer, ForeignKey("canaries.id", ondelete="CASCADE"), nullable=False),
    Column("rollout_seq", Integer, nullable=False),  # the thread key, as in notifications
    # event episodes: progressing | succeeded | failed | superseded; None for Puerta rollouts
    Column("status", String(16)),
    Column("opened_by", Text),  # "checksum|message" of the event that opened the episode
    Column("environment", String(100)),
    Column("revision", String(128)),
    Column("phase", String(64)),
    Column("rollback_reason", Text),  # why Puerta answered the rollback hook "roll back"
    Column("last_warning", Text),  # the last Warning event that says why
    Column("dm_note_posted", Boolean, nullable=False, default=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime()),
    Column("updated_at", UTCDateTime(), nullable=False),
    UniqueConstraint("canary_id", "rollout_seq"),
)

notification_pacing = Table(
    "notification_pacing",
    metadata,
    Column("lane", String(300), primary_key=True),  # e.g. slack#deploys, dm, teams:0
    Column("free_at", UTCDateTime(), nullable=False),  # nothing goes out before then
)
