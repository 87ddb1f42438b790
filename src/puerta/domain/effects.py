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


Effect = StartLoad
