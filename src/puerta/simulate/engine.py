"""The simulated clock: canaries arrive, Flagger checks each one every interval, people approve,
and time jumps ahead while nothing can happen.

Canaries arrive at ``start`` in document order, one second apart (so the release train sees a
definite order), and each is checked on its own grid: arrival + k x interval, the way Flagger's
per-canary job ticks. At any instant, due approvals happen first, then the due checks in arrival
order.

**Fast-forward.** A weekend of 1-minute polls is thousands of calls. While *every* unfinished
canary waits on a confirm-* hook, the clock may jump, but only as far as nothing can change
Puerta's answers:

* at most :data:`MAX_JUMP` (less if a release train's ``stale_after`` is short), because a
  queued canary that stops calling loses its place in the train;
* never past the earliest ``retry_at`` Puerta reports (a window opening, a freeze lifting, a
  stagger slot), a planned ``--approve-after`` approval, or a released rollout's
  ``release_timeout`` (it then stops holding the train);
* landing on each canary's own grid.

When every wait can only end by a person's hand (a manual gate nobody approves, a ``deny``) the
clock jumps straight to the end. The polls skipped are folded into the timeline as if they had
happened, so the output shows what Flagger would do.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from puerta.clock import ManualClock
from puerta.domain.durations import format_duration
from puerta.domain.hooks import FlaggerPayload, HookType
from puerta.policy import CompiledPolicy
from puerta.simulate.flagger import SimulatedCanary, TickReport
from puerta.simulate.harness import InProcessPuerta
from puerta.simulate.manifest import Canary, Manifest
from puerta.simulate.result import SimulationResult
from puerta.simulate.timeline import Timeline, fold_key

MAX_JUMP = timedelta(minutes=10)
ARRIVAL_GAP = timedelta(seconds=1)
DEFAULT_HORIZON = timedelta(days=14)

#: waits that time alone never ends (``none``: Puerta recorded no gate, e.g. an unknown hook).
_STUCK_KINDS = frozenset({"manual", "deny", "halt", "unmatched", "none"})
_SPECIAL_GATES = frozenset({"train", "freeze", "halt", "unmatched"})
HOOK_TYPES = frozenset(h.value for h in HookType)


@dataclass(frozen=True)
class SimulationOptions:
    start: datetime
    max_duration: timedelta = DEFAULT_HORIZON
    approve_after: timedelta | None = None  # None: nobody approves manual gates
    zone: ZoneInfo | None = None  # None: the environments' time zone, else UTC


@dataclass(frozen=True)
class _Wait:
    """What Puerta says a canary waits for, from ``GET /api/v1/canaries/{ns}/{name}``."""

    hook: str
    key: str  # the refusal's fold key: a new key is a new wait
    gate: str | None
    kind: str  # the gate's kind (manual, window, deny, ...) or train/freeze/halt/none
    since: datetime | None
    retry_at: datetime | None
    approvers: int = 1


@dataclass(frozen=True)
class _Approval:
    at: datetime
    canary: SimulatedCanary
    hook: str
    gate: str
    since: datetime
    approvers: int


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def describe_plan(canary: Canary) -> str:
    """``every 1m, threshold 5, 10% steps to 50%`` and the like."""
    if canary.skip_analysis:
        plan = "skipAnalysis (promoted without analysis)"
    elif canary.iterations:
        plan = f"{canary.iterations} iterations" + (" (A/B)" if canary.ab_testing else "")
    elif canary.step_weights:
        plan = "steps " + ", ".join(f"{w}%" for w in canary.step_weights)
    else:
        plan = f"{canary.step_weight}% steps to {canary.max_weight}%"
    every = format_duration(canary.interval)
    return f"every {every}, threshold {canary.threshold}, {plan}"


class Simulation:
    """One run of ``puerta simulate``: canaries, a policy, and a simulated clock."""

    def __init__(
        self,
        manifest: Manifest,
        policy: CompiledPolicy,
        policy_path: Path,
        options: SimulationOptions,
    ) -> None:
        self.manifest = manifest
        self.policy = policy
        self.policy_path = policy_path
        self.options = options
        self.start = options.start.astimezone(UTC)
        self.horizon = self.start + options.max_duration
        self.timeline = Timeline()
        self.clock = ManualClock(self.start)
        self.notes = list(manifest.notes)
        if policy.policy.hooks.token is not None:
            self.notes.append("the policy requires a hook token: the simulation does not check it")
        self.environments = {c.key: self._environments_of(c) for c in manifest.canaries}
        self.max_jump = self._jump_limit()

    # ---- set-up --------------------------------------------------------------------------

    def _environments_of(self, canary: Canary) -> dict[str, str | None]:
        """The environment Puerta matches each of the canary's Puerta webhooks to."""
        found: dict[str, str | None] = {}
        for hook in canary.puerta_hooks:
            payload = FlaggerPayload(canary.name, canary.namespace, metadata=hook.metadata)
            env = self.policy.match(payload)
            found[hook.name] = env.name if env else None
        return found

    def environment_of(self, canary: Canary) -> str | None:
        """The canary's environment: its confirm-rollout hook's (else its first Puerta hook's)."""
        found = self.environments[canary.key]
        for hook in canary.hooks(HookType.CONFIRM_ROLLOUT) + canary.puerta_hooks:
            if hook.name in found:
                return found[hook.name]
        env = self.policy.match(FlaggerPayload(canary.name, canary.namespace))
        return env.name if env else None

    def zone(self) -> ZoneInfo:
        """``--tz``, else the one time zone of the canaries' environments, else UTC."""
        if self.options.zone is not None:
            return self.options.zone
        zones = set()
        for canary in self.manifest.canaries:
            name = self.environment_of(canary)
            env = self.policy.environment(name) if name else None
            zones.add(env.spec.timezone if env and env.spec.timezone else "UTC")
        return ZoneInfo(zones.pop()) if len(zones) == 1 else ZoneInfo("UTC")

    def _jump_limit(self) -> timedelta:
        stale = [env.train.stale_after for env in self.policy.environments if env.train]
        longest = max((c.interval for c in self.manifest.canaries), default=timedelta(0))
        if not stale:
            return MAX_JUMP
        return max(min(MAX_JUMP, min(stale) - longest), timedelta(0))

    # ---- the run -------------------------------------------------------------------------

    def run(self) -> SimulationResult:
        with (
            tempfile.TemporaryDirectory(prefix="puerta-simulate-") as workdir,
            InProcessPuerta(self.policy, self.policy_path, self.clock, Path(workdir)) as puerta,
        ):
            sims = [
                SimulatedCanary(
                    canary,
                    self.start + index * ARRIVAL_GAP,
                    self.environment_of(canary),
                    puerta,
                    self.timeline,
                )
                for index, canary in enumerate(self.manifest.canaries)
            ]
            _Run(self, puerta, sims).loop()
        return SimulationResult(
            start=self.start,
            horizon=self.horizon,
            zone=self.zone(),
            canaries=[s.result for s in sims],
            timeline=self.timeline,
            notes=self.notes,
        )


class _Run:
    """The state of one run: when each canary is checked next, what it waits for, approvals."""

    def __init__(
        self, sim: Simulation, puerta: InProcessPuerta, canaries: list[SimulatedCanary]
    ) -> None:
        self.sim = sim
        self.puerta = puerta
        self.canaries = canaries
        self.timeline = sim.timeline
        self.next_check = {id(c): c.result.arrived for c in canaries}
        self.last_check = dict(self.next_check)
        # A check that did not end waiting (a step, a release, a finish) may change what the
        # others are told: no jump until each has been checked again since.
        self.checks = 0
        self.changed = 0
        self.seen: dict[int, int] = {}
        self.waits: dict[int, _Wait] = {}
        self.approvals: list[_Approval] = []
        self.told: set[tuple[str, str]] = set()  # (canary, gate) told nobody approves

    def loop(self) -> None:
        while True:
            active = [c for c in self.canaries if not c.finished]
            if not active:
                break
            now = min([self.next_check[id(c)] for c in active] + [a.at for a in self.approvals])
            if now > self.sim.horizon:
                break
            self.sim.clock.set(now)
            for approval in [a for a in self.approvals if a.at <= now]:
                self.approvals.remove(approval)
                self._approve(approval, now)
            for canary in active:
                if self.next_check[id(canary)] != now:
                    continue
                if canary.ticks == 0:
                    self._arrive(canary)
                report = canary.tick(now)
                self.checks += 1
                self.seen[id(canary)] = self.checks
                if report.waiting_on is None:
                    self.changed = self.checks
                self.last_check[id(canary)] = now
                self.next_check[id(canary)] = now + canary.canary.interval
                self._learn_wait(canary, report, now)
            self._fast_forward(now)
        for canary in self.canaries:
            canary.stop(self.sim.horizon)

    # ---- what the timeline says on arrival -----------------------------------------------

    def _arrive(self, sim: SimulatedCanary) -> None:
        canary, at, key = sim.canary, sim.result.arrived, sim.key
        env = sim.result.environment
        where = f"environment {env}" if env else "no environment"
        self.timeline.action(at, key, "arrived", f"new revision; {where}; {describe_plan(canary)}")
        for note in canary.notes:
            self.timeline.action(at, key, "note", note)
        if not canary.puerta_hooks:
            self.timeline.action(at, key, "note", "no webhook points at Puerta: it is never asked")
        elif env is None:
            unmatched = self.sim.policy.policy.unmatched
            verdict = "passes" if unmatched == "pass" else "refuses"
            self.timeline.action(
                at, key, "note", f"matches no environment: the policy {verdict} its gating hooks"
            )
        envs = self.sim.environments[key]
        if len(set(envs.values())) > 1:
            listed = ", ".join(f"{hook} -> {env or 'none'}" for hook, env in envs.items())
            self.timeline.action(
                at, key, "note", f"its webhooks match different environments: {listed}"
            )
        for hook in canary.webhooks:
            if hook.endpoint is None:
                assumed = (
                    "assumed never to ask for a rollback"
                    if hook.type is HookType.ROLLBACK
                    else "assumed to pass"
                )
                self.timeline.action(
                    at,
                    key,
                    hook.type.value,
                    f"external webhook {hook.name} (not Puerta): {assumed}",
                )
            elif hook.endpoint not in HOOK_TYPES:
                self.timeline.action(
                    at,
                    key,
                    "note",
                    f"webhook {hook.name} points at Puerta's /hooks/{hook.endpoint}, which is "
                    "no hook type: Puerta answers 404",
                )
            elif hook.endpoint != hook.type.value:
                self.timeline.action(
                    at,
                    key,
                    "note",
                    f"webhook {hook.name} is called as {hook.type.value} but answered by "
                    f"Puerta's /hooks/{hook.endpoint}",
                )
        if canary.metrics and not canary.skip_analysis:
            self.timeline.action(
                at, key, "note", f"metrics {', '.join(canary.metrics)}: assumed healthy"
            )

    # ---- waits and approvals -------------------------------------------------------------

    def _learn_wait(self, sim: SimulatedCanary, report: TickReport, now: datetime) -> None:
        """Ask Puerta what a new wait is for; plan its approval or say nobody gives it."""
        if report.waiting_on is None:
            self.waits.pop(id(sim), None)
            return
        key = fold_key(report.refusal)
        known = self.waits.get(id(sim))
        if known is not None and (known.hook, known.key) == (report.waiting_on.value, key):
            return
        wait = self._lookup(sim, report.waiting_on.value, key)
        self.waits[id(sim)] = wait
        if wait.kind != "manual" or wait.gate is None:
            return
        after = self.sim.options.approve_after
        if after is not None:
            if not any(a.canary is sim for a in self.approvals):
                since = wait.since or now
                self.approvals.append(
                    _Approval(
                        max(since + after, now), sim, wait.hook, wait.gate, since, wait.approvers
                    )
                )
        elif (sim.key, wait.gate) not in self.told:
            self.told.add((sim.key, wait.gate))
            self.timeline.action(
                now,
                sim.key,
                "note",
                f"{wait.gate} is a manual gate: nobody approves in this simulation "
                "(--approve-after DURATION approves it)",
            )

    def _lookup(self, sim: SimulatedCanary, hook: str, key: str) -> _Wait:
        data = self.puerta.canary(sim.canary.namespace, sim.canary.name)
        rollout = (data or {}).get("rollout") or {}
        waiting = rollout.get("waiting")
        if not waiting or waiting.get("hook") != hook:
            return _Wait(hook, key, None, "none", None, None)
        gate = waiting.get("gate")
        kind, approvers = self._gate_kind(rollout.get("environment"), hook, gate)
        return _Wait(
            hook,
            key,
            gate,
            kind,
            _instant(waiting.get("since")),
            _instant(waiting.get("retry_at")),
            approvers,
        )

    def _gate_kind(self, environment: str | None, hook: str, gate: str | None) -> tuple[str, int]:
        """The kind of the gate a wait names, and how many approvals it needs."""
        if gate is None:
            return "none", 1
        if gate in _SPECIAL_GATES:
            return gate, 1
        env = self.sim.policy.environment(environment) if environment else None
        if env is not None:
            for compiled in env.gates.get(HookType(hook), ()):
                if compiled.label == gate:
                    return compiled.gate.kind, int(getattr(compiled.gate, "required", 1))
        return "other", 1

    def _approve(self, plan: _Approval, now: datetime) -> None:
        sim = plan.canary
        wait = self.waits.get(id(sim))
        if sim.finished or wait is None or (wait.hook, wait.gate) != (plan.hook, plan.gate):
            return  # no longer waiting for it
        waited = format_duration(now - plan.since)
        message = self.puerta.approve(
            sim.canary.namespace,
            sim.canary.name,
            hook=plan.hook,
            reason=f"simulated approval after {waited} (--approve-after)",
            approvers=plan.approvers,
        )
        self.timeline.action(
            now, sim.key, "approve", f"{plan.gate}: {message} (simulated, after {waited})"
        )
        self.waits.pop(id(sim), None)
        self.changed = self.checks  # everyone is checked again before the next jump

    # ---- fast-forward --------------------------------------------------------------------

    def _fast_forward(self, now: datetime) -> None:
        active = [c for c in self.canaries if not c.finished]
        if not active or any(
            c.last_report.waiting_on is None or self.seen.get(id(c), 0) <= self.changed
            for c in active
        ):
            return
        waits = [self.waits.get(id(c)) for c in active]
        stuck = not self.approvals and all(w is not None and w.kind in _STUCK_KINDS for w in waits)
        if stuck:
            beyond = self.sim.horizon + max(c.canary.interval for c in active)
            for canary in active:
                self._jump(canary, beyond)
            return
        barriers = [a.at for a in self.approvals]
        barriers += [w.retry_at for w in waits if w is not None and w.retry_at]
        barriers += self._release_timeouts(active)
        for canary in active:
            # Measured from the canary's own last check: it must keep calling (train place).
            limit = self.last_check[id(canary)] + self.sim.max_jump
            self._jump(canary, min([limit] + [b for b in barriers if b > now]))

    def _release_timeouts(self, active: list[SimulatedCanary]) -> list[datetime]:
        """When released rollouts stop holding their release train."""
        moments = []
        for canary in active:
            name = canary.result.environment
            env = self.sim.policy.environment(name) if name else None
            if canary.result.released is not None and env is not None and env.train is not None:
                moments.append(canary.result.released + env.train.release_timeout)
        return moments

    def _jump(self, canary: SimulatedCanary, target: datetime) -> None:
        """Move the canary's next check to its first grid point at or after ``target``, and
        fold the polls skipped (up to the horizon) into its last answers."""
        interval = canary.canary.interval
        arrived = canary.result.arrived
        steps = -((arrived - target) // interval)  # ceil((target - arrived) / interval)
        landing = arrived + steps * interval
        due = self.next_check[id(canary)]
        if landing <= due:
            return
        last = min(landing - interval, self.sim.horizon)
        if last >= due:
            polls = (last - due) // interval + 1
            self.timeline.extend(canary.key, polls, due + (polls - 1) * interval)
        self.next_check[id(canary)] = landing
