"""The schema. Alembic migrations in ``migrations/versions`` create exactly these tables.

* ``canaries``: one row per Flagger Canary ever seen; the row lock serialises hook calls for a
  canary across replicas; carries the halt flag and a pointer to the current rollout.
* ``rollouts``: one row per attempt to roll out a revision (see ``domain/rollouts.py``), with
  what it waits for now.
* ``manual_actions``: approvals and rollback requests, bound to a rollout (or canary-wide).
* ``freezes``: deployment freezes created by hand for an environment (or some namespaces).
* ``load_runs``: one load test per (canary, rollout, gate), owned by one replica at a time
  through a lease.
* ``ci_runs``: one E2E run per (canary, rollout, gate), triggered once on a CI provider and
  followed (polled, or told by the provider's webhook) by whichever replica holds its short
  lease; ``ci_run_events`` keeps each change of its status.
* ``ci_budgets``: one token bucket per CI provider, shared by all replicas.
* ``inbound_deliveries``: webhook deliveries already taken (providers redeliver).
* ``audit_events``: every hook call and every admin action, append-only, hash-chained by the
  sealer; ``audit_anchor`` holds where the chain starts (after pruning) and ends.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

#: a CI run's statuses while it is followed (the rest are final)
ACTIVE_RUN_STATUSES = ("pending", "queued", "running")
#: the condition of the runner's partial indexes; a query uses them only where it states
#: this very condition with the values written out (see store/ci_runs.py, ``_IS_ACTIVE``)
ACTIVE_RUNS_SQL = "status IN ({})".format(", ".join(f"'{s}'" for s in ACTIVE_RUN_STATUSES))


def _of_active_runs(condition: str) -> dict[str, Any]:
    """A partial index of the active CI runs that also meet ``condition``, on either
    database."""
    where = text(f"{ACTIVE_RUNS_SQL} AND {condition}")
    return {"sqlite_where": where, "postgresql_where": where}


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use aware UTC datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _ts(name: str, nullable: bool = True) -> Column[datetime]:
    return Column(name, UTCDateTime(), nullable=nullable)


canaries = Table(
    "canaries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("namespace", String(63), nullable=False),
    Column("name", String(253), nullable=False),
    Column("environment", String(100)),
    Column("phase", String(64), nullable=False, default=""),
    Column("checksum", String(128), nullable=False, default=""),
    Column("current_rollout_id", Integer),
    Column("last_hook", String(32)),
    _ts("first_seen_at", nullable=False),
    _ts("last_seen_at", nullable=False),
    Column("halted", Boolean, nullable=False, default=False),
    Column("halted_by", String(200)),
    _ts("halted_at"),
    Column("halt_reason", Text),
    UniqueConstraint("namespace", "name"),
)

rollouts = Table(
    "rollouts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("canary_id", Integer, ForeignKey("canaries.id", ondelete="CASCADE"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("environment", String(100)),
    Column("revision", String(128), nullable=False, default=""),
    Column("base_checksum", String(128), nullable=False, default=""),
    Column("phase", String(64), nullable=False, default=""),
    _ts("started_at", nullable=False),
    _ts("confirmed_at"),
    _ts("progressing_at"),
    _ts("finished_at"),
    _ts("updated_at", nullable=False),
    Column("waiting_hook", String(32)),
    Column("waiting_gate", String(200)),
    Column("waiting_reason", Text),
    _ts("waiting_since"),
    _ts("retry_at"),
    Column("last_hook", String(32)),
    Column("last_verdict", String(16)),
    _ts("released_at"),  # confirm-rollout passed: left the release train
    Column("in_line", Boolean, nullable=False, default=False),  # holds its place in the train
    UniqueConstraint("canary_id", "seq"),
    Index(None, "environment", "status"),
    Index(None, "environment", "released_at"),
)

manual_actions = Table(
    "manual_actions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("canary_id", Integer, ForeignKey("canaries.id", ondelete="CASCADE"), nullable=False),
    Column("rollout_seq", Integer),
    Column("action", String(16), nullable=False),  # approve | rollback
    Column("hook", String(32)),
    Column("actor", String(200), nullable=False),
    Column("reason", Text, nullable=False, default=""),
    _ts("created_at", nullable=False),
    _ts("revoked_at"),
    Index(None, "canary_id", "action"),
)

freezes = Table(
    "freezes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("environment", String(100), nullable=False),
    Column("namespaces", JSON),  # list of globs; null: the whole environment
    Column("reason", Text, nullable=False),
    Column("created_by", String(200), nullable=False),
    _ts("created_at", nullable=False),
    _ts("starts_at", nullable=False),
    _ts("ends_at"),
    _ts("lifted_at"),
    Column("lifted_by", String(200)),
    Index(None, "environment", "lifted_at"),
)

load_runs = Table(
    "load_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("canary_id", Integer, ForeignKey("canaries.id", ondelete="CASCADE"), nullable=False),
    Column("rollout_seq", Integer, nullable=False),
    Column("gate", String(200), nullable=False),
    Column("spec", JSON, nullable=False),  # url, rate, concurrency, duration_s, method, ...
    Column("status", String(16), nullable=False),  # running | finished | stopped | failed
    Column("owner", String(200)),  # the replica generating the load
    _ts("lease_until"),
    _ts("created_at", nullable=False),
    _ts("started_at"),
    _ts("updated_at", nullable=False),
    _ts("finished_at"),
    Column("stop_reason", Text),
    Column("stats", JSON),  # the generator's latest snapshot (LoadStats.as_dict)
    Column("segments", Integer, nullable=False, default=0),  # times a replica (re)started it
    UniqueConstraint("canary_id", "rollout_seq", "gate"),
    Index(None, "status"),
)

ci_runs = Table(
    "ci_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("canary_id", Integer, ForeignKey("canaries.id", ondelete="CASCADE"), nullable=False),
    Column("rollout_seq", Integer, nullable=False),
    Column("gate", String(200), nullable=False),
    Column("provider", String(100), nullable=False),  # name under ci.providers
    Column("kind", String(16), nullable=False),  # circleci | github | gitlab | jenkins
    Column("target", JSON, nullable=False),  # project, ref, workflow, parameters, correlation
    # pending (not triggered yet) | queued | running | succeeded | failed | canceled | abandoned
    Column("status", String(16), nullable=False),
    Column("ref", JSON),  # puerta.ci.base.RunRef.as_dict(): how to find the run again
    Column("external_id", Text),  # the provider's id, for webhooks to find the run
    Column("correlation", String(64), nullable=False),  # {run_id}: unique per run
    Column("url", Text),
    Column("raw", String(200)),  # the provider's own status words
    Column("reason", Text),
    Column("parts", JSON),  # workflows / jobs
    Column("last_error", Text),  # the provider could not be reached or refused
    _ts("error_since"),
    Column("polls", Integer, nullable=False, default=0),
    Column("backoff_s", Float, nullable=False, default=0.0),
    _ts("created_at", nullable=False),
    _ts("trigger_started_at"),  # a replica began the trigger call
    _ts("triggered_at"),
    _ts("finished_at"),
    _ts("updated_at", nullable=False),
    _ts("deadline_at", nullable=False),
    _ts("next_check_at", nullable=False),
    Column("owner", String(200)),  # the replica working on it right now
    _ts("lease_until"),
    # when a new revision replaced the run's rollout: cancel and abandon it before other work
    _ts("abandon_since"),
    UniqueConstraint("canary_id", "rollout_seq", "gate"),
    # the runner's schedule, read in these indexes' order, never sorted (ci_runs.due_runs):
    # they hold active runs only (finished ones pile up as history): those to abandon, and
    # the others by when they are due
    Index(
        "ix_ci_runs_to_abandon",
        "abandon_since",
        "next_check_at",
        "id",
        **_of_active_runs("abandon_since IS NOT NULL"),
    ),
    Index(
        "ix_ci_runs_due",
        "next_check_at",
        "id",
        **_of_active_runs("abandon_since IS NULL"),
    ),
    Index(None, "provider", "external_id"),
    Index(None, "correlation"),
)

ci_run_events = Table(
    "ci_run_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer, ForeignKey("ci_runs.id", ondelete="CASCADE"), nullable=False),
    _ts("at", nullable=False),
    Column("status", String(16), nullable=False),
    Column("raw", String(200)),
    Column("reason", Text),
    Column("url", Text),
    Column("source", String(16), nullable=False),  # trigger | poll | webhook | deadline | ...
    Index(None, "run_id", "id"),
)

ci_budgets = Table(
    "ci_budgets",
    metadata,
    Column("provider", String(100), primary_key=True),
    Column("tokens", Float, nullable=False),
    _ts("updated_at", nullable=False),
)

inbound_deliveries = Table(
    "inbound_deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(100), nullable=False),  # e.g. "ci:circleci"
    Column("delivery_id", String(200), nullable=False),
    _ts("received_at", nullable=False),
    UniqueConstraint("source", "delivery_id"),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _ts("at", nullable=False),
    Column("kind", String(16), nullable=False),  # hook | admin | promotion | audit
    Column("actor", String(200), nullable=False),
    Column("action", String(64), nullable=False),
    Column("namespace", String(63)),
    Column("name", String(253)),
    Column("environment", String(100)),
    Column("rollout_seq", Integer),
    Column("hook", String(32)),
    Column("phase", String(64)),
    Column("checksum", String(128)),
    Column("verdict", String(16)),
    Column("http_status", Integer),
    Column("reason", Text),
    Column("gate", String(200)),
    Column("payload", JSON),
    Column("details", JSON),
    Column("duration_ms", Float),
    # the hash chain (store/audit_chain.py): NULL until the sealer links the record
    Column("chain_seq", BigInteger),
    Column("chain_hash", String(64)),
    Index(None, "namespace", "name", "at"),
    Index(None, "at"),
    Index(None, "kind", "action"),
    Index(None, "chain_seq", unique=True),
)

# One row (id 1), written only by the sealer: where the chain starts after pruning (the last
# pruned record's chain_seq and chain_hash; 0 and the genesis hash before any pruning) and where
# it ends (the last sealed record), so deleting the newest records is noticed too.
audit_anchor = Table(
    "audit_anchor",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("chain_seq", BigInteger, nullable=False),
    Column("chain_hash", String(64), nullable=False),
    _ts("pruned_at"),
    Column("head_seq", BigInteger, nullable=False),
    Column("head_hash", String(64), nullable=False),
    _ts("sealed_at"),
)

# Notification tables live in their own module (same metadata); importing it here makes every
# table known wherever the schema is (migrations check, tests).
from puerta.store import notify_tables as _notify_tables  # noqa: E402, F401
from puerta.store import promotion_tables as _promotion_tables  # noqa: E402, F401
