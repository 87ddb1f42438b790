"""promotion holds and rendered values

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 16:00:00

A promotion stores what it sends (release name, dispatch event type; ``tag`` existed) before
its first attempt, and who holds or released it by hand.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("promotions") as batch:
        batch.add_column(sa.Column("release_name", sa.Text(), nullable=True))
        batch.add_column(sa.Column("event_type", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("held_by", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("held_note", sa.Text(), nullable=True))
        batch.add_column(sa.Column("released_by", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("released_at", _TS, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("promotions") as batch:
        for column in (
            "released_at",
            "released_by",
            "held_note",
            "held_by",
            "event_type",
            "release_name",
        ):
            batch.drop_column(column)
