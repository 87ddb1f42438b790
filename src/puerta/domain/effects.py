"""Effects: what a gate asks the world to do, carried out by the service layer.

Gates are pure; one that needs something to happen outside (start a load test; later, trigger
a CI run) returns an effect with its verdict. The service applies effects inside the same
transaction as the decision, keyed so that each happens once however often Flagger calls, on
whichever replica, and ``puerta simulate`` reports them as dry runs instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class StartLoad:
    """Start the load test ``gate`` for the current rollout (once per canary, rollout, gate)."""

    gate: str
    spec: dict[str, Any] = field(hash=False)

    def describe(self) -> str:
        rate = f"{self.spec['rate']:g} req/s" if self.spec.get("rate") else "max rate"
        return f"start load test {self.gate}: {rate} to {self.spec['url']}"


@dataclass(frozen=True, slots=True)
class StartCi:
    """Trigger the E2E run ``gate`` for the current rollout on CI (once per canary, rollout,
    gate). ``target``: the rendered :class:`puerta.ci.base.Target` fields; ``deadline_s``: how
    long the run may take before it fails; ``settings``: the gate's label and link texts."""

    gate: str
    provider: str
    target: dict[str, Any] = field(hash=False)
    deadline_s: float = 1800.0

    def describe(self) -> str:
        what = self.target.get("workflow") or self.target.get("project")
        ref = f"@{self.target['ref']}" if self.target.get("ref") else ""
        return f"start E2E {self.gate} on {self.provider}: {what}{ref}"


Effect = StartLoad | StartCi
