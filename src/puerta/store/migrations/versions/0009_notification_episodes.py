"""notification episodes and pacing

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26 17:00:00

``notification_episodes``: per thread key, what the notification layer remembers (why a
rollout may fail, whether the "no DM" note was posted) and, for canaries without Puerta
rollouts, the episodes seen through Flagger's events. ``notification_pacing``: when each sink
lane may send next, shared by every replica.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "notification_episodes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("canary_id", sa.Integer(), nullable=False),
        sa.Column("rollout_seq", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=True),
        sa.Column("opened_by", sa.Text(), nullable=True),
        sa.Column("environment", sa.String(length=100), nullable=True),
        sa.Column("revision", sa.String(length=128), nullable=True),
        sa.Column("phase", sa.String(length=64), nullable=True),
        sa.Column("rollback_reason", sa.Text(), nullable=True),
        sa.Column("last_warning", sa.Text(), nullable=True),
        sa.Column("dm_note_posted", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("finished_at", _TS, nullable=True),
        sa.Column("updated_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["canary_id"],
            ["canaries.id"],
            name=op.f("fk_notification_episodes_canary_id_canaries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_episodes")),
        sa.UniqueConstraint(
            "canary_id",
            "rollout_seq",
            name=op.f("uq_notification_episodes_canary_id_rollout_seq"),
        ),
    )
    op.create_table(
        "notification_pacing",
        sa.Column("lane", sa.String(length=300), nullable=False),
        sa.Column("free_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("lane", name=op.f("pk_notification_pacing")),
    )


def downgrade() -> None:
    op.drop_table("notification_pacing")
    op.drop_table("notification_episodes")
