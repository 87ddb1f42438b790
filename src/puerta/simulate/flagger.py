"""A simulated Flagger for one canary: which webhooks it calls on each check, in which order,
with which payload, and what it does with the answers.

This follows Flagger's scheduler (``advanceCanary``, v1.44; see
``docs/flagger-contract.md`` §2) for a canary that already ran once and now sees a new
revision. One :meth:`SimulatedCanary.tick` is one run of Flagger's per-canary job:

1. not yet released: the confirm-rollout hooks, with the canary's phase (``Succeeded``, then
   ``Waiting``) and the *previous* revision's checksum. A refusal waits (forever, never counts);
   a pass scales the canary up, syncs the new checksum and ends the tick as ``Progressing``.
2. ``Progressing``/``WaitingPromotion``: the rollback hooks; one that answers 200 rolls back.
3. ``Promoting`` -> ``Finalising`` -> ``Succeeded`` (post-rollout with phase ``Succeeded``).
4. ``failedChecks >= threshold``: roll back (phase ``Failed``, post-rollout ``Failed``).
5. weight 0: pre-rollout hooks; otherwise rollout hooks (a failure adds a failed check and ends
   the tick). Metrics are assumed healthy.
6. confirm-traffic-increase (not in ``WaitingPromotion``), then the next traffic step; at the
   last step confirm-promotion (a refusal: ``WaitingPromotion``), then promotion. Canaries with
   ``iterations`` count iterations instead of steps (A/B, blue/green).

Hooks of one type run in spec order and the first failure stops them. External webhooks are not
called: they are assumed to pass (and an external rollback hook never to ask for a rollback).
``event`` hooks pointing at Puerta get the main events Flagger records.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from itertools import pairwise
from typing import Any, Protocol

from puerta.domain.durations import format_duration
from puerta.domain.hooks import HookType
from puerta.simulate.harness import Answer
from puerta.simulate.manifest import TOTAL_WEIGHT, Canary, Webhook
from puerta.simulate.result import CanaryResult, Outcome
from puerta.simulate.timeline import Timeline

#: The checksums the simulated revisions carry (Flagger's are fnv32a hashes of the pod template
#: and tracked configs; any two distinct strings do for Puerta).
OLD_CHECKSUM = "0000000001"
NEW_CHECKSUM = "0000000002"


class Phase(StrEnum):
    """Flagger's canary phases (the ones a running canary goes through)."""

    WAITING = "Waiting"
    PROGRESSING = "Progressing"
    WAITING_PROMOTION = "WaitingPromotion"
    PROMOTING = "Promoting"
    FINALISING = "Finalising"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


_ROLLBACK_PHASES = (Phase.PROGRESSING, Phase.WAITING_PROMOTION)


class HookCaller(Protocol):
    """Where webhook calls go: Puerta's ``POST /hooks/<endpoint>``."""

    def call(self, endpoint: str, payload: dict[str, Any]) -> Answer: ...


@dataclass(frozen=True, slots=True)
class TickReport:
    """What one check ended on: a confirm-* hook that refused (the canary waits), or nothing."""

    waiting_on: HookType | None = None
    refusal: str = ""  # Puerta's answer (only Puerta's webhooks are called, so only it refuses)


@dataclass(frozen=True, slots=True)
class _HookRun:
    ok: bool
    hook: Webhook | None = None
    answer: Answer | None = None


def status_label(hook: HookType, ok: bool) -> str:
    """How the timeline names an answer: by what Flagger does with it."""
    if hook is HookType.ROLLBACK:
        return "ROLLBACK" if ok else "CARRY-ON"
    if hook in (HookType.POST_ROLLOUT, HookType.EVENT):
        return "OK" if ok else "FAILED"
    if hook.is_confirm:
        return "PASS" if ok else "WAIT"
    return "PASS" if ok else "FAIL"


class SimulatedCanary:
    """One canary under a simulated Flagger; call :meth:`tick` every analysis interval."""

    def __init__(
        self,
        canary: Canary,
        arrived: datetime,
        environment: str | None,
        puerta: HookCaller,
        timeline: Timeline,
    ) -> None:
        self.canary = canary
        self.result = CanaryResult(canary.key, environment, arrived)
        self.puerta = puerta
        self.timeline = timeline
        self.phase = Phase.SUCCEEDED  # the previous revision's run succeeded
        self.checksum = OLD_CHECKSUM
        self.failed_checks = 0
        self.weight = 0
        self.iterations = 0
        self.last_report = TickReport()
        self.ticks = 0
        self._now = arrived
        self._wait_started: datetime | None = None
        self._analysis_announced = False
        self._last_failure = ""

    @property
    def key(self) -> str:
        return self.canary.key

    @property
    def finished(self) -> bool:
        return self.result.finished is not None

    @property
    def released(self) -> bool:
        return self.result.released is not None

    # ---- the check -----------------------------------------------------------------------

    def tick(self, now: datetime) -> TickReport:
        """One run of Flagger's job for this canary at ``now``."""
        self._now = now
        self.ticks += 1
        self.timeline.begin_tick(self.key)
        report = TickReport() if self.finished else self._advance()
        if report.waiting_on is not None:
            if self._wait_started is None:
                self._wait_started = now
        elif self._wait_started is not None:
            self.result.waited += now - self._wait_started
            self._wait_started = None
        self.last_report = report
        return report

    def stop(self, at: datetime) -> None:
        """The simulated clock stops at ``at``: record how far the canary got."""
        if self.finished:
            return
        if self._wait_started is not None:
            self.result.waited += at - self._wait_started
        last = self.last_report
        if last.waiting_on is not None:
            self.result.outcome = Outcome.WAITING
            self.result.reason = f"{last.waiting_on.value}: {last.refusal}"
        elif not self.ticks:
            self.result.outcome = Outcome.WAITING
            self.result.reason = "not checked by Flagger before the end of the simulation"
        else:
            self.result.outcome = Outcome.PROGRESSING
            self.result.reason = f"phase {self.phase.value} at weight {self.weight}%"

    def _advance(self) -> TickReport:
        if not self.released:
            return self._confirm_rollout()
        if self.canary.skip_analysis:
            self._skip_analysis()
            return TickReport()
        if self.phase in _ROLLBACK_PHASES:
            rollback = self._rollback_hooks()
            if rollback is not None:
                hook, answer = rollback
                self._event(f"Rolling back {self.canary.dotted} manual webhook invoked", warn=True)
                self._roll_back(f"rolled back by rollback hook {hook.name}: {answer.body}")
                return TickReport()
        if self.phase is Phase.PROMOTING:
            self._shift_to_primary()
            return TickReport()
        if self.phase is Phase.FINALISING:
            self._succeed()
            return TickReport()
        if self.failed_checks >= self.canary.threshold:
            self._roll_back(
                f"rolled back after {self.failed_checks} failed checks "
                f"(threshold {self.canary.threshold}); last: {self._last_failure}"
            )
            return TickReport()
        if self.weight == 0 and self.iterations == 0:
            if not self._analysis_announced:  # Flagger records it on every try; once will do
                self._analysis_announced = True
                self._event(f"Starting canary analysis for {self.canary.target}.{self.ns}")
            if not self._run(HookType.PRE_ROLLOUT, Phase.PROGRESSING, counts=True).ok:
                self.failed_checks += 1
                return TickReport()
        elif not self._run(HookType.ROLLOUT, Phase.PROGRESSING, counts=True).ok:
            self.failed_checks += 1
            return TickReport()
        if self.canary.iterations > 0:
            return self._iterate()
        return self._step()

    @property
    def ns(self) -> str:
        return self.canary.namespace

    # ---- stages --------------------------------------------------------------------------

    def _confirm_rollout(self) -> TickReport:
        run = self._run(HookType.CONFIRM_ROLLOUT, self.phase)
        if not run.ok:
            if self.phase is not Phase.WAITING:
                self.phase = Phase.WAITING
                name = run.hook.name if run.hook else ""
                self._event(
                    f"Halt {self.canary.dotted} advancement waiting for approval {name}", warn=True
                )
            return self._waiting(HookType.CONFIRM_ROLLOUT, run)
        self.result.released = self._now
        # Recorded before Flagger syncs the status: phase Progressing, previous checksum.
        self._event(
            f"New revision detected! Scaling up {self.canary.target}.{self.ns}",
            phase=Phase.PROGRESSING,
        )
        self.phase = Phase.PROGRESSING
        self.checksum = NEW_CHECKSUM
        self.failed_checks = self.weight = self.iterations = 0
        return TickReport()

    def _skip_analysis(self) -> None:
        self.timeline.action(self._now, self.key, "promote", "skipAnalysis: promoted untested")
        self.phase = Phase.SUCCEEDED
        self._event(
            f"Promotion completed! Canary analysis was skipped for {self.canary.target}.{self.ns}"
        )
        self._finish(Outcome.SUCCEEDED, "promoted without analysis (skipAnalysis)")

    def _step(self) -> TickReport:
        """The canary strategy: confirm the traffic increase, then step or promote."""
        step = self._next_step_weight()
        if step <= 0:
            return TickReport()
        if self.phase is not Phase.WAITING_PROMOTION:
            run = self._run(HookType.CONFIRM_TRAFFIC_INCREASE, Phase.PROGRESSING)
            if not run.ok:
                return self._waiting(HookType.CONFIRM_TRAFFIC_INCREASE, run)
        if self.weight < self.canary.max_weight:
            old, self.weight = self.weight, min(self.weight + step, TOTAL_WEIGHT)
            self.timeline.action(self._now, self.key, "weight", f"{old}% -> {self.weight}%")
            self._event(f"Advance {self.canary.dotted} canary weight {self.weight}")
            return TickReport()
        return self._confirm_promotion(promote=True)

    def _iterate(self) -> TickReport:
        """A/B testing and blue/green: count iterations, then confirm the promotion."""
        wanted = self.canary.iterations
        if self.iterations < wanted:
            self.iterations += 1
            self.timeline.action(self._now, self.key, "iteration", f"{self.iterations}/{wanted}")
            self._event(f"Advance {self.canary.dotted} canary iteration {self.iterations}/{wanted}")
            return TickReport()
        # Blue/green routes all traffic to the canary first, and asks again a check later.
        promote = self.canary.ab_testing or self.iterations > wanted
        report = self._confirm_promotion(promote=promote)
        if report.waiting_on is None and not promote:
            self.iterations += 1
            self.timeline.action(self._now, self.key, "promote", "all traffic routed to canary")
        return report

    def _confirm_promotion(self, *, promote: bool) -> TickReport:
        run = self._run(HookType.CONFIRM_PROMOTION, Phase.PROGRESSING)
        if not run.ok:
            if self.phase is not Phase.WAITING_PROMOTION:
                self.phase = Phase.WAITING_PROMOTION
                name = run.hook.name if run.hook else ""
                self._event(
                    f"Halt {self.canary.dotted} advancement waiting for promotion approval {name}",
                    warn=True,
                )
            return self._waiting(HookType.CONFIRM_PROMOTION, run)
        if promote:
            target = self.canary.target
            self._event(f"Copying {target}.{self.ns} template spec to {target}-primary.{self.ns}")
            self.phase = Phase.PROMOTING
            self.timeline.action(
                self._now, self.key, "promote", f"copying {target} to {target}-primary"
            )
        return TickReport()

    def _shift_to_primary(self) -> None:
        step = self.canary.step_weight_promotion
        if step <= 0 or self.weight <= 0:
            self.weight = 0
            self.phase = Phase.FINALISING
            self.timeline.action(self._now, self.key, "promote", "all traffic routed to primary")
            return
        self.weight = max(self.weight - step, 0)
        primary = TOTAL_WEIGHT - self.weight
        self.timeline.action(self._now, self.key, "promote", f"primary weight {primary}%")
        if self.weight == 0:
            self.phase = Phase.FINALISING

    def _succeed(self) -> None:
        self.phase = Phase.SUCCEEDED
        self._run(HookType.POST_ROLLOUT, Phase.SUCCEEDED)
        self._event(f"Promotion completed! Scaling down {self.canary.target}.{self.ns}")
        released = self.result.released or self._now
        self.result.promoted = self._now
        self._finish(
            Outcome.SUCCEEDED, f"promoted {format_duration(self._now - released)} after release"
        )

    def _roll_back(self, why: str) -> None:
        threshold = self.canary.threshold
        if self.failed_checks >= threshold:
            self._event(
                f"Rolling back {self.canary.dotted} failed checks threshold reached "
                f"{self.failed_checks}",
                warn=True,
            )
        self._event(
            f"Canary failed! Scaling down {self.canary.dotted}", warn=True, phase=Phase.FAILED
        )
        self.phase = Phase.FAILED
        self.weight = 0
        self._run(HookType.POST_ROLLOUT, Phase.FAILED)
        self._finish(Outcome.FAILED, why)

    def _finish(self, outcome: Outcome, reason: str) -> None:
        self.result.outcome = outcome
        self.result.reason = reason
        self.result.finished = self._now
        self.timeline.action(self._now, self.key, "result", reason, status=outcome.name)

    def _waiting(self, hook: HookType, run: _HookRun) -> TickReport:
        return TickReport(hook, run.answer.body if run.answer else "")

    def _next_step_weight(self) -> int:
        """Flagger's ``nextStepWeight``."""
        canary = self.canary
        if canary.step_weight > 0 or not canary.step_weights:
            return canary.step_weight
        room = TOTAL_WEIGHT - self.weight
        if room == 0:
            return 1
        if self.weight == 0:
            return min(room, canary.step_weights[0])
        weights = canary.step_weights
        for current, following in pairwise(weights):
            if current == self.weight:
                return min(room, following - self.weight)
        return room

    # ---- webhook calls -------------------------------------------------------------------

    def _run(self, hook_type: HookType, phase: Phase, *, counts: bool = False) -> _HookRun:
        """Call the webhooks of one type in spec order; the first failure stops them."""
        for hook in self.canary.hooks(hook_type):
            if not hook.is_puerta:
                continue
            note = f" (failed checks {self.failed_checks + 1}/{self.canary.threshold})"
            answer = self._call(hook, phase, failure_note=note if counts else "")
            if not answer.ok:
                self._last_failure = f"{hook_type.value} {hook.name}: {answer.body}"
                return _HookRun(False, hook, answer)
        return _HookRun(True)

    def _rollback_hooks(self) -> tuple[Webhook, Answer] | None:
        """The first rollback hook that answers success asks for a rollback."""
        for hook in self.canary.hooks(HookType.ROLLBACK):
            if hook.is_puerta:
                answer = self._call(hook, self.phase)
                if answer.ok:
                    return hook, answer
        return None

    def _event(self, message: str, *, warn: bool = False, phase: Phase | None = None) -> None:
        """Send one of Flagger's events to the canary's event hooks that point at Puerta."""
        for hook in self.canary.hooks(HookType.EVENT):
            if not hook.is_puerta:
                continue
            metadata = {
                "eventMessage": message,
                "eventType": "Warning" if warn else "Normal",
                "timestamp": str(int(self._now.timestamp() * 1000)),
            }
            metadata.update({k: v for k, v in hook.metadata.items() if k not in metadata})
            self._call(hook, phase or self.phase, metadata=metadata, text=message)

    def _call(
        self,
        hook: Webhook,
        phase: Phase,
        *,
        metadata: dict[str, str] | None = None,
        text: str | None = None,
        failure_note: str = "",
    ) -> Answer:
        assert hook.endpoint is not None
        payload: dict[str, Any] = {
            "name": self.canary.name,
            "namespace": self.canary.namespace,
            "phase": phase.value,
            "checksum": self.checksum,
        }
        sent = hook.metadata if metadata is None else metadata
        if sent:
            payload["metadata"] = dict(sent)
        answer = self.puerta.call(hook.endpoint, payload)
        body = (
            answer.body if answer.status in (200, 403) else f"HTTP {answer.status}: {answer.body}"
        )
        if text is not None:
            shown = text if answer.ok else f"{text}: {body}"
        elif hook.type is HookType.POST_ROLLOUT:
            shown = f"{phase.value}: {body}"
        else:
            shown = body if answer.ok else body + failure_note
        self.timeline.answer(
            self._now,
            self.key,
            hook.type.value,
            webhook=hook.name,
            endpoint=hook.endpoint,
            phase=phase.value,
            checksum=self.checksum,
            status=status_label(hook.type, answer.ok),
            http_status=answer.status,
            text=shown,
            effects=answer.effects,
        )
        return answer
