"""What a gate says, and what Puerta answers Flagger.

A gate answers PASS, WAIT (with when it may change) or FAIL. The first gate that does not pass
decides. The HTTP mapping lives here too because it *is* domain knowledge: Flagger treats any
status above 202 as "not passed", retries 5xx and drops their bodies, so a refusal is a 403 with
a plain-text reason. The rollback hook is inverted: 200 means "roll back now".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from puerta.domain.effects import Effect
from puerta.domain.hooks import HookType


class Outcome(StrEnum):
    """A single gate's verdict."""

    PASS = "pass"
    WAIT = "wait"
    FAIL = "fail"


class Verdict(StrEnum):
    """The answer to one hook call, as recorded in the audit."""

    PASS = "pass"  # gating hook may go on
    WAIT = "wait"  # gating hook must wait; may change by itself
    FAIL = "fail"  # gating hook refused for a reason that will not clear by waiting
    ROLLBACK = "rollback"  # rollback hook: roll back now
    CARRY_ON = "carry-on"  # rollback hook: nothing to roll back for
    RECORDED = "recorded"  # event / post-rollout

    @property
    def http_status(self) -> int:
        return 200 if self in (Verdict.PASS, Verdict.ROLLBACK, Verdict.RECORDED) else 403


@dataclass(frozen=True, slots=True)
class GateResult:
    """One gate's verdict with its reason and, for a wait, when it may change."""

    outcome: Outcome
    reason: str = ""
    retry_at: datetime | None = None  # when the verdict may change (for a wait: may pass)
    #: the wait holds every canary of the environment alike (a closed window), so a waiting
    #: rollout keeps its place in the release train; a wait of its own (an approval it
    #: needs) lets the ones behind it go first.
    shared: bool = False
    effects: tuple[Effect, ...] = ()  # what the service must make happen (once)
    #: seconds the hook call may be held open while the answer may change soon (an E2E run
    #: that is under way): the service waits for it instead of answering at once
    hold: float | None = None

    @classmethod
    def passed(cls, reason: str = "", *, effects: tuple[Effect, ...] = ()) -> GateResult:
        return cls(Outcome.PASS, reason, effects=effects)

    @classmethod
    def wait(
        cls,
        reason: str,
        retry_at: datetime | None = None,
        *,
        shared: bool = False,
        effects: tuple[Effect, ...] = (),
        hold: float | None = None,
    ) -> GateResult:
        return cls(Outcome.WAIT, reason, retry_at, shared, effects, hold)

    @classmethod
    def fail(cls, reason: str) -> GateResult:
        return cls(Outcome.FAIL, reason)


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to one hook call: verdict, reason, and which gate decided."""

    hook: HookType
    verdict: Verdict
    reason: str
    gate: str | None = None  # e.g. "confirm-rollout[0] manual"
    retry_at: datetime | None = None
    in_line: bool = False  # confirm-rollout waits in the release train, holding its place
    effects: tuple[Effect, ...] = ()  # from every gate evaluated, whatever the verdict
    hold: float | None = None  # a wait that may clear soon: hold the call up to this long

    @property
    def http_status(self) -> int:
        return self.verdict.http_status

    @property
    def body(self) -> str:
        """The plain-text body Flagger shows in its events."""
        return self.reason or ("OK" if self.http_status == 200 else "refused")
