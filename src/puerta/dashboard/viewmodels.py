"""What the pages show, computed from what Puerta stores: one card per canary with what it
waits for *in words*, canaries grouped by environment, an environment's release train and
freezes, one canary's rollouts.

Only what Puerta knows is shown. Flagger's webhooks carry a name, namespace, phase, checksum
and metadata: no canary weight, image or commit. Those are shown as unknown (with the reason)
rather than guessed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.engine import Connection

from puerta.api import schemas
from puerta.api.ci_views import ci_runs_of_rollout
from puerta.api.views import canary_from, rollout_from
from puerta.domain import train as train_domain
from puerta.domain.rollouts import RolloutStatus
from puerta.domain.train import TrainEntry, TrainState
from puerta.policy.model import CompiledEnvironment, CompiledPolicy
from puerta.service import snapshot
from puerta.store import repository as repo
from puerta.store.tables import canaries

UNKNOWN_WEIGHT = "unknown: Flagger does not send the canary weight to webhooks"
UNKNOWN_COMMIT = "unknown: Puerta does not know commits yet (Flagger sends only a checksum)"
UNKNOWN_REVISION = (
    "not known yet: Flagger sends the new revision's checksum once the analysis starts "
    "(at confirm-rollout it sends the previous one)"
)
HISTORY_LIMIT = 20

_QUIET = {
    RolloutStatus.PENDING: "Flagger's next confirm-rollout call",
    RolloutStatus.CONFIRMED: "Flagger to start the analysis (confirm-rollout passed)",
    RolloutStatus.PROGRESSING: "the analysis to finish (Flagger shifts traffic step by step)",
    RolloutStatus.SUCCEEDED: "nothing: rolled out",
    RolloutStatus.FAILED: "nothing: the rollout failed",
    RolloutStatus.SUPERSEDED: "nothing: a newer revision replaced this rollout",
}


@dataclass(frozen=True)
class CanaryCard:
    """One canary as the overview and environment pages show it."""

    canary: schemas.Canary
    waiting_for: str
    since: datetime | None
    retry_at: datetime | None = None

    @property
    def key(self) -> str:
        return f"{self.canary.namespace}/{self.canary.name}"

    @property
    def rollout(self) -> schemas.Rollout | None:
        return self.canary.rollout

    @property
    def revision(self) -> str:
        """The rollout's revision (Flagger checksum), "" while unknown."""
        return self.canary.rollout.revision if self.canary.rollout is not None else ""

    @property
    def is_waiting(self) -> bool:
        rollout = self.canary.rollout
        return self.canary.halted is not None or (
            rollout is not None and rollout.waiting is not None
        )


def waiting_for(canary: schemas.Canary) -> tuple[str, datetime | None, datetime | None]:
    """What the canary waits for in words, since when, and when Puerta's answer changes.

    A halt comes first (it holds every confirm-* hook); then the reason Puerta gave Flagger
    the last time it said "wait" (e.g. the deployment window and the place in the release
    train); otherwise what the rollout's status means.
    """
    rollout = canary.rollout
    if canary.halted is not None:
        halt = canary.halted
        return f"halted by {halt.by}: {halt.reason} (an approval resumes it)", halt.at, None
    if rollout is None:
        return "nothing: no rollout has started", None, None
    if rollout.waiting is not None:
        waiting = rollout.waiting
        return f"{waiting.hook}: {waiting.reason}", waiting.since, waiting.retry_at
    status = RolloutStatus(rollout.status)
    since = {
        RolloutStatus.PENDING: rollout.started_at,
        RolloutStatus.CONFIRMED: rollout.confirmed_at,
        RolloutStatus.PROGRESSING: rollout.progressing_at,
    }.get(status, rollout.finished_at)
    return _QUIET[status], since, None


def card_from(canary: schemas.Canary) -> CanaryCard:
    text, since, retry_at = waiting_for(canary)
    return CanaryCard(canary, text, since, retry_at)


def _cards(rows: Sequence[Row[Any]]) -> list[CanaryCard]:
    return [
        card_from(schemas.Canary(**canary_from(row, rollout_from(row, "rollout_")))) for row in rows
    ]


@dataclass(frozen=True)
class EnvironmentGroup:
    """The canaries of one environment (``name`` None: those matching none)."""

    name: str | None
    cards: list[CanaryCard]
    freezes: list[schemas.Freeze] = field(default_factory=list)

    @property
    def caption(self) -> str:
        return self.name if self.name is not None else "Unmatched (no environment)"

    @property
    def slug(self) -> str:
        return self.name if self.name is not None else "unmatched"


def load_overview(
    conn: Connection, policy: CompiledPolicy, now: datetime
) -> list[EnvironmentGroup]:
    """Every environment of the policy in file order, then the unmatched canaries (if any)."""
    cards = _cards(repo.list_canaries(conn))
    freezes = [schemas.Freeze.model_validate(r) for r in repo.active_freezes(conn, None, now)]
    groups = [
        EnvironmentGroup(
            env.name,
            [c for c in cards if c.canary.environment == env.name],
            [f for f in freezes if f.environment == env.name],
        )
        for env in policy.environments
    ]
    known = {env.name for env in policy.environments}
    unmatched = [c for c in cards if c.canary.environment not in known]
    if unmatched:
        groups.append(EnvironmentGroup(None, unmatched))
    return groups


# ---- one environment ----------------------------------------------------------------------


@dataclass(frozen=True)
class TrainView:
    state: TrainState

    @property
    def queue(self) -> tuple[TrainEntry, ...]:
        return self.state.queue

    @property
    def rolling_out(self) -> tuple[TrainEntry, ...]:
        return self.state.active


@dataclass(frozen=True)
class EnvironmentView:
    environment: CompiledEnvironment
    group: EnvironmentGroup
    train: TrainView | None

    @property
    def name(self) -> str:
        return self.environment.name

    @property
    def timezone(self) -> str:
        return self.environment.zone.key


def load_environment(
    conn: Connection, environment: CompiledEnvironment, now: datetime
) -> EnvironmentView:
    """The environment's canaries, freezes and release train (queue in arrival order)."""
    cards = _cards(repo.list_canaries(conn, environment=environment.name))
    rows = repo.active_freezes(conn, environment.name, now)
    group = EnvironmentGroup(
        environment.name, cards, [schemas.Freeze.model_validate(r) for r in rows]
    )
    train = None
    if environment.train is not None:
        config = environment.train
        trains = repo.train_rows(
            conn,
            environment.name,
            stale_before=train_domain.stale_cutoff(config, now),
            released_after=train_domain.timeout_cutoff(config, now),
        )
        last = repo.last_release_at(conn, environment.name)
        train = TrainView(snapshot.train_state(environment.name, config, trains, last, None))
    return EnvironmentView(environment, group, train)


# ---- one canary ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CanaryView:
    card: CanaryCard
    history: list[schemas.Rollout]
    load_tests: list[schemas.LoadTest] = field(default_factory=list)  # of the current rollout
    e2e_runs: list[schemas.CiRun] = field(default_factory=list)  # of the current rollout

    @property
    def canary(self) -> schemas.Canary:
        return self.card.canary


def load_canary(conn: Connection, namespace: str, name: str) -> CanaryView | None:
    """The canary, its current rollout and its latest rollouts (newest first)."""
    # Not repository.find_canary: that one locks the row on PostgreSQL, and a page polled
    # every few seconds must never make a hook call wait.
    query = select(canaries).where(canaries.c.namespace == namespace, canaries.c.name == name)
    row = conn.execute(query).one_or_none()
    if row is None:
        return None
    rows = repo.rollout_history(conn, row.id, HISTORY_LIMIT)
    history = [r for r in (rollout_from(h) for h in rows) if r is not None]
    current = history[0] if rows and rows[0].id == row.current_rollout_id else None
    loads = repo.load_runs_of(conn, row.id, current.seq) if current is not None else []
    runs = ci_runs_of_rollout(conn, row, current.seq) if current is not None else []
    return CanaryView(
        card_from(schemas.Canary(**canary_from(row, current))),
        history,
        [schemas.LoadTest.model_validate(load) for load in loads],
        runs,
    )
