"""Response and request bodies of the admin API (they are its OpenAPI schema)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from puerta.domain.hooks import HookType
from puerta.text import StorableStr


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Waiting(_Out):
    hook: str
    gate: str | None
    reason: str
    since: datetime | None
    retry_at: datetime | None = None


class Rollout(_Out):
    seq: int
    status: str = Field(
        description="pending, confirmed, progressing, succeeded, failed, superseded"
    )
    environment: str | None
    revision: str = Field(description="Flagger checksum of the revision, once known")
    base_checksum: str = Field(description="checksum seen at confirm-rollout (previous revision)")
    phase: str
    started_at: datetime
    confirmed_at: datetime | None
    progressing_at: datetime | None
    finished_at: datetime | None
    last_hook: str | None
    last_verdict: str | None
    waiting: Waiting | None = None


class Halt(_Out):
    by: str
    at: datetime
    reason: str


class Canary(_Out):
    namespace: str
    name: str
    environment: str | None
    phase: str
    checksum: str
    last_hook: str | None
    first_seen_at: datetime
    last_seen_at: datetime
    halted: Halt | None
    rollout: Rollout | None


class LoadTest(_Out):
    gate: str
    status: str = Field(description="running, finished, stopped or failed")
    spec: dict[str, Any] = Field(description="url, rate, concurrency, duration_s, method, ...")
    owner: str | None = Field(description="the replica generating the load")
    started_at: datetime | None
    finished_at: datetime | None
    stop_reason: str | None
    stats: dict[str, Any] | None = Field(
        description="achieved rate, errors by kind, p50/p95/p99 from the scheduled send time"
    )


class CiRunEvent(_Out):
    at: datetime
    status: str
    raw: str | None = Field(description="the provider's own status words")
    reason: str | None
    url: str | None
    source: str = Field(description="trigger, poll, webhook, deadline or puerta")


class CiRun(_Out):
    id: int
    namespace: str
    name: str
    rollout_seq: int
    gate: str
    provider: str = Field(description="the provider's name under ci.providers")
    kind: str = Field(description="circleci, github, gitlab or jenkins")
    status: str = Field(
        description="pending (not triggered yet), queued, running, succeeded, failed, "
        "canceled or abandoned (a new revision replaced the rollout)"
    )
    url: str | None = Field(description="the run on the provider's web UI")
    external_id: str | None = Field(description="the provider's id of the run")
    raw: str | None
    reason: str | None
    parts: list[dict[str, Any]] | None = Field(description="workflows or jobs with their status")
    target: dict[str, Any] = Field(description="project, ref, workflow, parameters, correlation")
    last_error: str | None = Field(description="why the provider could not be followed lately")
    error_since: datetime | None
    polls: int
    created_at: datetime
    triggered_at: datetime | None
    finished_at: datetime | None
    deadline_at: datetime
    next_check_at: datetime
    events: list[CiRunEvent] = Field(default_factory=list, description="status changes")


class CiRunList(_Out):
    runs: list[CiRun]
    total: int


class NotificationItem(_Out):
    id: int
    namespace: str
    name: str
    rollout_seq: int = Field(
        description="0: before the canary's first rollout; -N: event episode N of a canary "
        "without Puerta rollouts (docs/notifications.md)"
    )
    destination: str = Field(
        description="slack:CHANNEL (thread), slack-raw:CHANNEL, dm, teams:N or webhook:N "
        "(N: the route's index in notifications.routes)"
    )
    item: str = Field(description="parent, reply, raw, event or dm")
    status: str = Field(description="pending, sent, failed (permanent error) or skipped")
    attempts: int
    last_error: str | None = Field(description="the last failure, or why it was skipped")
    external_id: str | None = Field(description="e.g. the Slack message ts")
    notice: dict[str, Any] = Field(description="what happened: kind, text, link, actor, ...")
    created_at: datetime
    next_attempt_at: datetime
    sent_at: datetime | None


class NotificationList(_Out):
    items: list[NotificationItem]
    total: int
    counts: dict[str, int] = Field(description="items by status, over all canaries")


class Promotion(_Out):
    id: int
    namespace: str
    name: str
    rollout_seq: int
    environment: str = Field(description="where the rollout succeeded")
    to_environment: str
    action: str = Field(description="github_release, repository_dispatch or webhook")
    status: str = Field(description="pending, held (freeze or halt), done or failed")
    held_reason: str | None
    repository: str | None
    sha: str | None
    tag: str | None
    url: str | None = Field(description="the release's page")
    created: bool | None = Field(description="release: made now (true) or already there")
    last_error: str | None
    attempts: int
    created_at: datetime
    done_at: datetime | None


class PromotionList(_Out):
    promotions: list[Promotion]
    total: int


class LiveRevision(_Out):
    rollout_seq: int
    revision: str = Field(description="Flagger's checksum of the rollout")
    since: datetime | None = Field(description="when it went live (the rollout finished)")
    image: str | None
    repository: str | None
    sha: str | None
    url: str | None
    title: str | None
    author_name: str | None
    committed_at: datetime | None
    commit_problem: str | None = Field(description="why the commit is not known")


class LiveCanary(_Out):
    namespace: str
    name: str
    live: LiveRevision = Field(description="what runs now")
    history: list[LiveRevision] = Field(description="what ran before, newest first")


class LiveEnvironment(_Out):
    environment: str
    canaries: list[LiveCanary]


class CanaryDetail(Canary):
    history: list[Rollout]
    load_tests: list[LoadTest] = Field(
        default_factory=list, description="load tests of the current rollout"
    )
    e2e_runs: list[CiRun] = Field(
        default_factory=list, description="E2E runs on CI of the current rollout"
    )


class CanaryList(_Out):
    canaries: list[Canary]


class ActionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: StorableStr = Field(default="", max_length=2000)


class ApproveRequest(ActionRequest):
    hook: HookType | None = Field(
        default=None,
        description="the hook to approve (default: the one the rollout waits on, else all)",
    )
    scope: Literal["rollout", "canary"] = Field(
        default="rollout",
        description="rollout: the current rollout only; canary: later rollouts too "
        "(counts for manual gates with scope: canary)",
    )


class RequiredReasonRequest(ActionRequest):
    reason: StorableStr = Field(min_length=1, max_length=2000)


class ActionResponse(_Out):
    action: str
    namespace: str
    name: str
    rollout_seq: int | None
    message: str
    actor: str


class AuditEvent(_Out):
    id: int
    at: datetime
    kind: str
    actor: str
    action: str
    namespace: str | None
    name: str | None
    environment: str | None
    rollout_seq: int | None
    hook: str | None
    phase: str | None
    checksum: str | None
    verdict: str | None
    http_status: int | None
    reason: str | None
    gate: str | None
    payload: dict[str, Any] | None
    details: dict[str, Any] | None
    duration_ms: float | None


class AuditPage(_Out):
    events: list[AuditEvent]
    next_cursor: int | None = Field(description="pass as ?cursor= for the next (older) page")


class WhoAmI(_Out):
    name: str
    role: str


class Problem(BaseModel):
    detail: str


class FreezeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    environment: StorableStr = Field(min_length=1)
    reason: StorableStr = Field(min_length=1, max_length=2000)
    until: datetime | None = Field(default=None, description="ends by itself then (with zone)")
    starts_at: datetime | None = Field(default=None, description="default: now (with zone)")
    namespaces: list[StorableStr] = Field(
        default_factory=list, description="globs; empty: the whole environment"
    )


class Freeze(_Out):
    id: int
    environment: str
    namespaces: list[str] | None
    reason: str
    created_by: str
    created_at: datetime
    starts_at: datetime
    ends_at: datetime | None
    lifted_at: datetime | None
    lifted_by: str | None


class FreezeList(_Out):
    freezes: list[Freeze]


class UnfreezeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: StorableStr = Field(default="", max_length=2000)
    freeze_id: int | None = Field(
        default=None, ge=1, le=2**63 - 1, description="lift only this one"
    )


class UnfreezeResponse(_Out):
    environment: str
    lifted: list[int]
    actor: str


class GateExplanation(_Out):
    label: str
    kind: str
    outcome: str
    reason: str
    changes_at: datetime | None = Field(description="when this gate's answer changes by itself")


class DecisionOut(_Out):
    verdict: str
    http_status: int
    reason: str
    gate: str | None


class TrainOut(_Out):
    max_concurrent: int | None
    queue: list[str] = Field(description="waiting to leave, in arrival order")
    rolling_out: list[str]
    last_departure: datetime | None


class ExplainRollout(_Out):
    seq: int
    status: str
    revision: str
    started_at: datetime


class Explanation(_Out):
    canary: str
    hook: str
    at: datetime
    environment: str | None
    timezone: str = Field(description="the environment's time zone (UTC when it has none)")
    matching: list[str] = Field(description="each environment, matched or not, and why")
    rollout: ExplainRollout | None = None
    hypothetical: bool = Field(
        description="no rollout is waiting: this is what a new rollout would meet"
    )
    decision: DecisionOut
    gates: list[GateExplanation]
    halted: str | None
    freezes: list[str]
    train: TrainOut | None
    place_in_line: int | None
    next_change: datetime | None
    next_change_because: str | None
