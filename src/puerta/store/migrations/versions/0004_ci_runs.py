"""ci runs, their history, request budgets and inbound webhook deliveries

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 07:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "ci_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("canary_id", sa.Integer(), nullable=False),
        sa.Column("rollout_seq", sa.Integer(), nullable=False),
        sa.Column("gate", sa.String(length=200), nullable=False),
        sa.Column("provider", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("target", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("ref", sa.JSON(), nullable=True),
        sa.Column("external_id", sa.Text(), nullable=True),
        sa.Column("correlation", sa.String(length=64), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("raw", sa.String(length=200), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("parts", sa.JSON(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("error_since", _TS, nullable=True),
        sa.Column("polls", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("backoff_s", sa.Float(), nullable=False, server_default="0"),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("trigger_started_at", _TS, nullable=True),
        sa.Column("triggered_at", _TS, nullable=True),
        sa.Column("finished_at", _TS, nullable=True),
        sa.Column("updated_at", _TS, nullable=False),
        sa.Column("deadline_at", _TS, nullable=False),
        sa.Column("next_check_at", _TS, nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=True),
        sa.Column("lease_until", _TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["canary_id"],
            ["canaries.id"],
            name=op.f("fk_ci_runs_canary_id_canaries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ci_runs")),
        sa.UniqueConstraint(
            "canary_id", "rollout_seq", "gate", name=op.f("uq_ci_runs_canary_id_rollout_seq_gate")
        ),
    )
    op.create_index(op.f("ix_ci_runs_status_next_check_at"), "ci_runs", ["status", "next_check_at"])
    op.create_index(op.f("ix_ci_runs_provider_external_id"), "ci_runs", ["provider", "external_id"])
    op.create_index(op.f("ix_ci_runs_correlation"), "ci_runs", ["correlation"])
    op.create_table(
        "ci_run_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("raw", sa.String(length=200), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["ci_runs.id"],
            name=op.f("fk_ci_run_events_run_id_ci_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ci_run_events")),
    )
    op.create_index(op.f("ix_ci_run_events_run_id_id"), "ci_run_events", ["run_id", "id"])
    op.create_table(
        "ci_budgets",
        sa.Column("provider", sa.String(length=100), nullable=False),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("provider", name=op.f("pk_ci_budgets")),
    )
    op.create_table(
        "inbound_deliveries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("delivery_id", sa.String(length=200), nullable=False),
        sa.Column("received_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_deliveries")),
        sa.UniqueConstraint(
            "source", "delivery_id", name=op.f("uq_inbound_deliveries_source_delivery_id")
        ),
    )


def downgrade() -> None:
    op.drop_table("inbound_deliveries")
    op.drop_table("ci_budgets")
    op.drop_index(op.f("ix_ci_run_events_run_id_id"), table_name="ci_run_events")
    op.drop_table("ci_run_events")
    op.drop_index(op.f("ix_ci_runs_correlation"), table_name="ci_runs")
    op.drop_index(op.f("ix_ci_runs_provider_external_id"), table_name="ci_runs")
    op.drop_index(op.f("ix_ci_runs_status_next_check_at"), table_name="ci_runs")
    op.drop_table("ci_runs")
