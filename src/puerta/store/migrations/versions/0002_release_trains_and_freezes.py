"""release trains and freezes

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 04:37:35.510725
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "freezes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("environment", sa.String(length=100), nullable=False),
        sa.Column("namespaces", sa.JSON(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lifted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lifted_by", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_freezes")),
    )
    with op.batch_alter_table("freezes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_freezes_environment_lifted_at"),
            ["environment", "lifted_at"],
            unique=False,
        )

    with op.batch_alter_table("rollouts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("released_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("in_line", sa.Boolean(), nullable=False))
        batch_op.create_index(
            batch_op.f("ix_rollouts_environment_released_at"),
            ["environment", "released_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_rollouts_environment_status"), ["environment", "status"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("rollouts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rollouts_environment_status"))
        batch_op.drop_index(batch_op.f("ix_rollouts_environment_released_at"))
        batch_op.drop_column("in_line")
        batch_op.drop_column("released_at")

    with op.batch_alter_table("freezes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_freezes_environment_lifted_at"))

    op.drop_table("freezes")
