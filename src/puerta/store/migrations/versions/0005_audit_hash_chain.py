"""audit hash chain: chain_seq and chain_hash on audit_events, and the audit_anchor row

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 09:00:00

Both columns stay NULL when a record is inserted (the hot path of every hook call is unchanged);
the sealer (``service/audit_sealer.py``) fills them in later, one writer at a time. Records
already stored are sealed by the first run of the sealer after this upgrade.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("audit_events", sa.Column("chain_seq", sa.BigInteger(), nullable=True))
    op.add_column("audit_events", sa.Column("chain_hash", sa.String(length=64), nullable=True))
    op.create_index(op.f("ix_audit_events_chain_seq"), "audit_events", ["chain_seq"], unique=True)
    op.create_table(
        "audit_anchor",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("chain_seq", sa.BigInteger(), nullable=False),
        sa.Column("chain_hash", sa.String(length=64), nullable=False),
        sa.Column("pruned_at", _TS, nullable=True),
        sa.Column("head_seq", sa.BigInteger(), nullable=False),
        sa.Column("head_hash", sa.String(length=64), nullable=False),
        sa.Column("sealed_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_anchor")),
    )


def downgrade() -> None:
    op.drop_table("audit_anchor")
    op.drop_index(op.f("ix_audit_events_chain_seq"), table_name="audit_events")
    with op.batch_alter_table("audit_events") as batch_op:  # SQLite drops columns by copying
        batch_op.drop_column("chain_hash")
        batch_op.drop_column("chain_seq")
