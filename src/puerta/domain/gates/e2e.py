"""The ``e2e`` gate: an end-to-end test run on CI must pass before the canary gets traffic;
and ``e2e-result``, which lets a later hook wait for (or roll back on) that run.

``e2e`` is listed where the run should start, usually pre-rollout. Its first call of a rollout
asks for the run (an effect: the service records it once per canary, rollout and gate, and a
background runner triggers and follows it, see ``service/ci_runner.py``). Then:

* ``wait: hold`` (blocking): the call is held open up to ``hold`` while the run is under way,
  and answered as soon as it ends: 200 when it passed, 403 naming the failed workflow/job and
  its link when it failed. A run still going after ``hold`` is a 403 "E2E running"; Flagger
  calls again next interval and re-attaches to the same run (a pre-rollout 403 counts toward
  the canary's ``threshold``, so the threshold must outlast the run);
* ``wait: background``: the call answers 200 at once; an ``e2e-result`` gate on
  confirm-traffic-increase or confirm-promotion answers 403 "E2E running: <link>" until the run
  passed, and on the rollback hook answers "roll back" as soon as it failed.

A CI outage is never a pass: while the provider cannot be reached the run waits (the reason
says since when), and past ``deadline`` it fails with that reason. The gate decides from the
stored run alone, so every replica answers alike.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from puerta.domain import templates
from puerta.domain.decisions import GateResult, Outcome
from puerta.domain.durations import parse_duration
from puerta.domain.effects import StartCi
from puerta.domain.gates.base import CiRunView, GateContext, GateOptions
from puerta.domain.gates.registry import register
from puerta.domain.hooks import HookType

E2E_HOOKS = frozenset(
    {
        HookType.PRE_ROLLOUT,
        HookType.ROLLOUT,
        HookType.CONFIRM_TRAFFIC_INCREASE,
        HookType.CONFIRM_PROMOTION,
    }
)
RESULT_HOOKS = frozenset(
    {
        HookType.ROLLOUT,
        HookType.CONFIRM_TRAFFIC_INCREASE,
        HookType.CONFIRM_PROMOTION,
        HookType.ROLLBACK,
    }
)


def correlation_id(ctx: GateContext, gate: str) -> str:
    """A short id unique to (canary, rollout, gate): ``{run_id}`` in templates.

    Derived, not random, so every replica and every retried call computes the same one; the
    rollout's start instant keeps it unique across a reinstall that numbers rollouts anew.
    """
    assert ctx.rollout is not None
    seed = "/".join(
        (
            ctx.payload.namespace,
            ctx.payload.name,
            str(ctx.rollout.seq),
            ctx.rollout.started_at.isoformat(),
            gate,
        )
    )
    return "pr-" + hashlib.sha256(seed.encode()).hexdigest()[:12]


def _at(when: datetime | None) -> str:
    return f"{when:%Y-%m-%d %H:%M} UTC" if when else "?"


def describe_run(run: CiRunView, gate: str) -> str:
    """One line for people: what the run is doing, with its link and any provider trouble."""
    link = f": {run.url}" if run.url else ""
    words = {
        "pending": f"E2E {gate} starting on {run.provider}",
        "queued": f"E2E {gate} queued on {run.provider}{link}",
        "running": f"E2E {gate} running{link}",
        "succeeded": f"E2E {gate} passed{link}",
        "abandoned": f"E2E {gate} abandoned{link}",
    }
    if run.status in ("failed", "canceled"):
        text = (
            f"E2E {gate} {run.status}: {run.reason}"
            if run.reason
            else f"E2E {gate} {run.status}{link}"
        )
    else:
        text = words.get(run.status, f"E2E {gate} {run.status}{link}")
    if run.last_error and not run.finished:
        text += (
            f"; {run.last_error} (since {_at(run.error_since)}; "
            f"fails at {_at(run.deadline_at)} if it lasts)"
        )
    return text


def _run_outcome(run: CiRunView, gate: str, now: datetime) -> GateResult | None:
    """PASS/FAIL for a finished run (or one past its deadline); None while it is under way."""
    if run.status == "succeeded":
        return GateResult.passed(describe_run(run, gate))
    if run.status in ("failed", "canceled", "abandoned"):
        return GateResult.fail(describe_run(run, gate))
    if run.deadline_at is not None and now >= run.deadline_at:
        # the runner fails it at the deadline; answer the same even if no runner got to it yet
        why = f"; last error: {run.last_error}" if run.last_error else ""
        return GateResult.fail(
            f"E2E {gate} did not finish by its deadline {_at(run.deadline_at)}{why}"
        )
    return None


@register
class E2EOptions(GateOptions):
    allowed_hooks: ClassVar[frozenset[HookType]] = E2E_HOOKS
    type: Literal["e2e"] = "e2e"
    provider: str = Field(description="a provider named under ci.providers")
    project: str = Field(
        description="CircleCI project slug (gh/org/repo), GitHub owner/repo, GitLab project "
        "id or path, Jenkins job path (folder/job); templated"
    )
    workflow: str | None = Field(
        default=None,
        description="GitHub: workflow file or id (required); CircleCI: pipeline definition id "
        "(uses the newer pipeline/run trigger); templated",
    )
    ref: str | None = Field(
        default=None, description="branch to run (GitHub and GitLab: required); templated"
    )
    tag: bool = Field(default=False, description="ref is a tag, not a branch")
    parameters: dict[str, str] = Field(
        default_factory=dict,
        description="pipeline parameters / workflow inputs / variables; values templated, "
        "e.g. target: '{canary_url}'",
    )
    wait: Literal["hold", "background"] = Field(
        default="hold",
        description="hold: keep the hook call open until the run ends or `hold` elapses; "
        "background: answer at once and let e2e-result gates wait",
    )
    hold: str = Field(
        default="50s", description="longest a call is held (keep the webhook timeout above)"
    )
    deadline: str = Field(
        default="30m", description="a run not finished after this fails (outages included)"
    )

    @field_validator("project", "workflow", "ref")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        return templates.check(value) if value is not None else None

    @field_validator("parameters")
    @classmethod
    def _parameters(cls, value: dict[str, str]) -> dict[str, str]:
        for key, template in value.items():
            try:
                templates.check(template)
            except ValueError as exc:
                raise ValueError(f"{key}: {exc}") from None
        return value

    @field_validator("hold", "deadline")
    @classmethod
    def _duration(cls, value: str) -> str:
        if parse_duration(value).total_seconds() <= 0:
            raise ValueError("must be longer than 0s")
        return value

    def build(self) -> E2EGate:
        return E2EGate(self)


@dataclass(frozen=True)
class E2EGate:
    options: E2EOptions
    kind: str = "e2e"

    @property
    def key(self) -> str:
        """Which E2E run of the rollout this gate is (two e2e gates need distinct names)."""
        return self.options.name or "e2e"

    def target(self, ctx: GateContext) -> dict[str, Any]:
        """The run's target with every template filled in (MissingValue names a key)."""
        assert ctx.rollout is not None
        run_id = correlation_id(ctx, self.key)
        values = templates.canary_values(
            name=ctx.payload.name,
            namespace=ctx.payload.namespace,
            environment=ctx.environment,
            revision=ctx.rollout.revision or ctx.payload.checksum,
            run_id=run_id,
        )
        meta = ctx.payload.metadata

        def fill(template: str | None) -> str | None:
            return templates.render(template, values, meta) if template is not None else None

        o = self.options
        return {
            "project": fill(o.project),
            "ref": fill(o.ref),
            "ref_is_tag": o.tag,
            "workflow": fill(o.workflow),
            "parameters": {k: templates.render(v, values, meta) for k, v in o.parameters.items()},
            "correlation": run_id,
        }

    @property
    def _hold(self) -> float | None:
        if self.options.wait == "background":
            return None
        return parse_duration(self.options.hold).total_seconds()

    def evaluate(self, ctx: GateContext) -> GateResult:
        if ctx.rollout is None:
            return GateResult.passed("no rollout to test")
        run = ctx.ci_runs.get(self.key)
        if run is None:
            try:
                target = self.target(ctx)
            except templates.MissingValue as exc:
                return GateResult.fail(
                    f"E2E {self.key}: the webhook sent no {exc.key} for its parameters"
                )
            start = StartCi(
                self.key,
                self.options.provider,
                target,
                parse_duration(self.options.deadline).total_seconds(),
            )
            if self._hold is None:
                return GateResult.passed(start.describe(), effects=(start,))
            return GateResult.wait(
                f"E2E {self.key} starting on {self.options.provider}",
                effects=(start,),
                hold=self._hold,
            )
        decided = _run_outcome(run, self.key, ctx.now)
        if decided is not None:
            return decided
        if self._hold is None:
            return GateResult.passed(describe_run(run, self.key))
        return GateResult.wait(describe_run(run, self.key), hold=self._hold)


@register
class E2EResultOptions(GateOptions):
    allowed_hooks: ClassVar[frozenset[HookType]] = RESULT_HOOKS
    type: Literal["e2e-result"] = "e2e-result"
    run: str = Field(
        default="e2e", description="name of the e2e gate (in this environment) to wait for"
    )

    def build(self) -> E2EResultGate:
        return E2EResultGate(self.run)


@dataclass(frozen=True)
class E2EResultGate:
    run: str
    kind: str = "e2e-result"

    def evaluate(self, ctx: GateContext) -> GateResult:
        run = ctx.ci_runs.get(self.run)
        if ctx.hook is HookType.ROLLBACK:
            # FAIL here means "roll back now" (the evaluator inverts the rollback hook)
            if run is None:
                return GateResult.passed(f"no E2E {self.run} run for this rollout")
            decided = _run_outcome(run, self.run, ctx.now)
            if decided is not None and decided.outcome is Outcome.FAIL:
                return decided
            return GateResult.passed(describe_run(run, self.run))
        if ctx.rollout is None:
            return GateResult.passed("no rollout")
        if run is None:
            return GateResult.wait(f"E2E {self.run} has not started for this rollout yet")
        decided = _run_outcome(run, self.run, ctx.now)
        if decided is not None:
            return decided
        return GateResult.wait(describe_run(run, self.run))
