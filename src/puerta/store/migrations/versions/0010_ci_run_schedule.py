"""the CI runner's schedule: runs to abandon, and partial indexes of the active runs

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27 08:00:00

``ci_runs.abandon_since``: when a new revision replaced the run's rollout (the runner cancels
and abandons such runs before any other). ``ix_ci_runs_to_abandon`` and ``ix_ci_runs_due``
replace ``ix_ci_runs_status_next_check_at``: partial indexes of the active runs only, in the
order the runner reads them, so a round reads what it works on instead of sorting every
active run, and finished runs (history) never slow it down.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_ACTIVE = "status IN ('pending', 'queued', 'running')"


def _of_active_runs(condition: str) -> dict[str, Any]:
    """A partial index's condition on either database: the active runs meeting ``condition``."""
    where = sa.text(f"{_ACTIVE} AND {condition}")
    return {"sqlite_where": where, "postgresql_where": where}


def upgrade() -> None:
    op.add_column("ci_runs", sa.Column("abandon_since", sa.DateTime(timezone=True)))
    # runs of rollouts replaced before this version: abandoned as the older runner did
    op.execute(
        "UPDATE ci_runs SET abandon_since = ("
        " SELECT rollouts.finished_at FROM rollouts"
        " WHERE rollouts.canary_id = ci_runs.canary_id AND rollouts.seq = ci_runs.rollout_seq"
        " AND rollouts.status = 'superseded')"
        " WHERE ci_runs.status IN ('pending', 'queued', 'running')"
    )
    op.drop_index("ix_ci_runs_status_next_check_at", table_name="ci_runs")
    op.create_index(
        "ix_ci_runs_to_abandon",
        "ci_runs",
        ["abandon_since", "next_check_at", "id"],
        **_of_active_runs("abandon_since IS NOT NULL"),
    )
    op.create_index(
        "ix_ci_runs_due",
        "ci_runs",
        ["next_check_at", "id"],
        **_of_active_runs("abandon_since IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_ci_runs_due", table_name="ci_runs")
    op.drop_index("ix_ci_runs_to_abandon", table_name="ci_runs")
    op.create_index("ix_ci_runs_status_next_check_at", "ci_runs", ["status", "next_check_at"])
    with op.batch_alter_table("ci_runs") as batch:
        batch.drop_column("abandon_since")
