"""What each environment runs: per canary, its succeeded rollouts newest first, with the
commit each shipped (where Puerta resolved it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, and_, select
from sqlalchemy.engine import Connection

from puerta.store.notify_tables import rollout_commits
from puerta.store.tables import canaries, rollouts


def succeeded_rollouts(conn: Connection, environment: str, limit: int) -> Sequence[Row[Any]]:
    """Succeeded rollouts of an environment, newest first (at most ``limit``)."""
    query = (
        select(
            canaries.c.namespace,
            canaries.c.name,
            rollouts.c.seq,
            rollouts.c.revision,
            rollouts.c.finished_at,
            rollout_commits.c.status.label("commit_status"),
            rollout_commits.c.image,
            rollout_commits.c.repository,
            rollout_commits.c.sha,
            rollout_commits.c.url,
            rollout_commits.c.title,
            rollout_commits.c.author_name,
            rollout_commits.c.committed_at,
            rollout_commits.c.reason.label("commit_reason"),
        )
        .select_from(
            rollouts.join(canaries, canaries.c.id == rollouts.c.canary_id).outerjoin(
                rollout_commits,
                and_(
                    rollout_commits.c.canary_id == rollouts.c.canary_id,
                    rollout_commits.c.rollout_seq == rollouts.c.seq,
                ),
            )
        )
        .where(rollouts.c.environment == environment, rollouts.c.status == "succeeded")
        .order_by(rollouts.c.finished_at.desc(), rollouts.c.id.desc())
        .limit(limit)
    )
    return list(conn.execute(query).all())  # type: ignore[arg-type]  # a wide row
