"""promotions

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "promotions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("canary_id", sa.Integer(), nullable=False),
        sa.Column("rollout_seq", sa.Integer(), nullable=False),
        sa.Column("environment", sa.String(length=100), nullable=False),
        sa.Column("to_environment", sa.String(length=100), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("held_reason", sa.Text(), nullable=True),
        sa.Column("repository", sa.String(length=300), nullable=True),
        sa.Column("sha", sa.String(length=64), nullable=True),
        sa.Column("tag", sa.String(length=300), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("created", sa.Boolean(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.Column("next_attempt_at", _TS, nullable=False),
        sa.Column("done_at", _TS, nullable=True),
        sa.Column("owner", sa.String(length=200), nullable=True),
        sa.Column("lease_until", _TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["canary_id"],
            ["canaries.id"],
            name=op.f("fk_promotions_canary_id_canaries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_promotions")),
        sa.UniqueConstraint(
            "canary_id", "rollout_seq", name=op.f("uq_promotions_canary_id_rollout_seq")
        ),
    )
    op.create_index(
        op.f("ix_promotions_status_next_attempt_at"), "promotions", ["status", "next_attempt_at"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_promotions_status_next_attempt_at"), table_name="promotions")
    op.drop_table("promotions")
