"""load runs

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 05:06:30.857278
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "load_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("canary_id", sa.Integer(), nullable=False),
        sa.Column("rollout_seq", sa.Integer(), nullable=False),
        sa.Column("gate", sa.String(length=200), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stop_reason", sa.Text(), nullable=True),
        sa.Column("stats", sa.JSON(), nullable=True),
        sa.Column("segments", sa.Integer(), nullable=False, server_default="0"),
        sa.ForeignKeyConstraint(
            ["canary_id"],
            ["canaries.id"],
            name=op.f("fk_load_runs_canary_id_canaries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_load_runs")),
        sa.UniqueConstraint(
            "canary_id", "rollout_seq", "gate", name=op.f("uq_load_runs_canary_id_rollout_seq_gate")
        ),
    )
    with op.batch_alter_table("load_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_load_runs_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("load_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_load_runs_status"))

    op.drop_table("load_runs")
