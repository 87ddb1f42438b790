"""notification outbox, threads, resolved rollout commits, lookup cache

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 07:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def _canary_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["canary_id"],
        ["canaries.id"],
        name=op.f(f"fk_{table}_canary_id_canaries"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("canary_id", sa.Integer(), nullable=False),
        sa.Column("rollout_seq", sa.Integer(), nullable=False),
        sa.Column("destination", sa.String(length=300), nullable=False),
        sa.Column("item", sa.String(length=16), nullable=False),
        sa.Column("notice", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("external_id", sa.Text(), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("next_attempt_at", _TS, nullable=False),
        sa.Column("sent_at", _TS, nullable=True),
        sa.Column("updated_at", _TS, nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=True),
        sa.Column("lease_until", _TS, nullable=True),
        _canary_fk("notifications"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
    )
    op.create_index(
        op.f("ix_notifications_status_next_attempt_at"),
        "notifications",
        ["status", "next_attempt_at"],
    )
    op.create_index(
        op.f("ix_notifications_canary_id_rollout_seq_destination_id"),
        "notifications",
        ["canary_id", "rollout_seq", "destination", "id"],
    )
    op.create_table(
        "notification_threads",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("canary_id", sa.Integer(), nullable=False),
        sa.Column("rollout_seq", sa.Integer(), nullable=False),
        sa.Column("destination", sa.String(length=300), nullable=False),
        sa.Column("parent_id", sa.String(length=100), nullable=True),
        sa.Column("parent_channel", sa.String(length=100), nullable=True),
        sa.Column("parent_error", sa.Text(), nullable=True),
        sa.Column("parent_text", sa.Text(), nullable=True),
        sa.Column("last_fold_key", sa.Text(), nullable=True),
        sa.Column("repeats", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_repeat", sa.Text(), nullable=True),
        sa.Column("weight", sa.Integer(), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        _canary_fk("notification_threads"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_threads")),
        sa.UniqueConstraint(
            "canary_id",
            "rollout_seq",
            "destination",
            name=op.f("uq_notification_threads_canary_id_rollout_seq_destination"),
        ),
    )
    op.create_table(
        "rollout_commits",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("canary_id", sa.Integer(), nullable=False),
        sa.Column("rollout_seq", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("image", sa.Text(), nullable=True),
        sa.Column("repository", sa.String(length=300), nullable=True),
        sa.Column("sha", sa.String(length=64), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("author_name", sa.String(length=300), nullable=True),
        sa.Column("author_email", sa.String(length=300), nullable=True),
        sa.Column("author_login", sa.String(length=200), nullable=True),
        sa.Column("committed_at", _TS, nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("chat_user", sa.String(length=100), nullable=True),
        sa.Column("chat_reason", sa.Text(), nullable=True),
        sa.Column("reported", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("resolved_at", _TS, nullable=False),
        _canary_fk("rollout_commits"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollout_commits")),
        sa.UniqueConstraint(
            "canary_id", "rollout_seq", name=op.f("uq_rollout_commits_canary_id_rollout_seq")
        ),
    )
    op.create_index(
        op.f("ix_rollout_commits_repository_sha"), "rollout_commits", ["repository", "sha"]
    )
    op.create_table(
        "lookup_cache",
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("value", sa.JSON(), nullable=True),
        sa.Column("expires_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("kind", "key", name=op.f("pk_lookup_cache")),
    )


def downgrade() -> None:
    op.drop_table("lookup_cache")
    op.drop_index(op.f("ix_rollout_commits_repository_sha"), table_name="rollout_commits")
    op.drop_table("rollout_commits")
    op.drop_table("notification_threads")
    op.drop_index(
        op.f("ix_notifications_canary_id_rollout_seq_destination_id"), table_name="notifications"
    )
    op.drop_index(op.f("ix_notifications_status_next_attempt_at"), table_name="notifications")
    op.drop_table("notifications")
