"""Which rollout a hook call belongs to.

A *rollout* is one attempt by Flagger to move one revision of a canary to production. Flagger's
payload carries no revision id we can trust at confirm-rollout time: that hook receives the
*previous* revision's checksum (the canary status is synced only after the gate passes). So a
rollout cannot be keyed by checksum alone. Puerta keys it by canary plus a sequence number and
opens a new one on the *first call of a new attempt*:

* ``confirm-rollout`` joins the current rollout while it is still ``pending`` (waiting for that
  very hook) or ``confirmed`` (passed, Flagger not yet progressing: a retry, with the same
  checksum; a different one means the Canary was created again). Flagger only calls
  confirm-rollout from Initialized, Succeeded, Failed or Waiting, never mid-analysis, so a
  confirm-rollout arriving while a rollout is progressing or finished starts the next rollout.
* A progressing hook (pre-rollout, rollout, confirm-traffic-increase, confirm-promotion,
  rollback) moves a pending/confirmed rollout to ``progressing`` and learns its revision (the
  checksum is the new revision's from here on). A progressing hook with a *different* checksum
  than the progressing rollout's is Flagger restarting the analysis for a newer revision (it does
  not call confirm-rollout then): the old rollout is ``superseded`` and a new one opens. A
  progressing hook after a finished rollout opens a new one (canaries with no confirm-rollout
  hook start this way).
* ``post-rollout`` (phase Succeeded/Failed) finishes the current rollout.
* ``event`` follows the phase it carries, but lags behind Flagger (see ``resolve``): it moves
  an open rollout to ``progressing`` without learning its revision, and never opens one;
  Succeeded/Failed finish a *progressing* rollout only (a pending rollout's events still carry
  the previous run's phase, which must not end it).

Approvals are bound to the rollout, so a new revision needs a new approval.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from puerta.domain.hooks import HookType


class RolloutStatus(StrEnum):
    PENDING = "pending"  # confirm-rollout seen, not passed yet
    CONFIRMED = "confirmed"  # confirm-rollout passed, analysis not started yet
    PROGRESSING = "progressing"  # analysis running (pre-rollout .. promotion)
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SUPERSEDED = "superseded"  # a newer revision restarted the analysis

    @property
    def is_open(self) -> bool:
        return self in OPEN_STATUSES


OPEN_STATUSES = frozenset(
    {RolloutStatus.PENDING, RolloutStatus.CONFIRMED, RolloutStatus.PROGRESSING}
)

#: Flagger phases during which the analysis of a revision is under way.
PROGRESSING_PHASES = frozenset({"Progressing", "WaitingPromotion", "Promoting", "Finalising"})
TERMINAL_PHASES = {"Succeeded": RolloutStatus.SUCCEEDED, "Failed": RolloutStatus.FAILED}


@dataclass(frozen=True, slots=True)
class CurrentRollout:
    """What the resolver needs to know of a canary's latest rollout."""

    seq: int
    status: RolloutStatus
    revision: str  # checksum learned once progressing; "" before
    base_checksum: str = ""  # the checksum confirm-rollout carried when the rollout began


@dataclass(frozen=True, slots=True)
class Resolution:
    """What a call does to the canary's rollouts.

    ``close_current_as``: finish the current rollout with this status before anything else.
    ``open_new``: open rollout ``seq+1`` with ``new_status``; otherwise attach to the current one
    and, if ``new_status`` is set, move it there. ``revision``: set the (attached or new)
    rollout's revision. ``attach`` is False only when there is no rollout to attach to at all
    (e.g. an event while the canary initialises).
    """

    attach: bool
    open_new: bool = False
    close_current_as: RolloutStatus | None = None
    new_status: RolloutStatus | None = None
    revision: str | None = None


NO_ROLLOUT = Resolution(attach=False)


def resolve(
    current: CurrentRollout | None, hook: HookType, phase: str, checksum: str
) -> Resolution:
    """Decide which rollout a call belongs to and how it changes it (pure)."""
    if hook is HookType.CONFIRM_ROLLOUT:
        return _confirm_rollout(current, checksum)
    if hook is HookType.POST_ROLLOUT:
        return _finish(current, TERMINAL_PHASES.get(phase, RolloutStatus.SUCCEEDED), checksum)
    if hook is HookType.EVENT:
        # Events carry the phase of the canary object Flagger holds in memory, which lags:
        # "Promotion completed!" comes after post-rollout(Succeeded) with phase Finalising, and
        # "Canary Failed. Scaled down" after the failure with phase Progressing. So an event
        # never opens a rollout, and never learns its revision ("New revision detected!"
        # carries the *old* checksum): it only moves an open rollout forward.
        if phase in PROGRESSING_PHASES:
            if current is None or not current.status.is_open:
                return Resolution(attach=True) if current else NO_ROLLOUT
            return _progressing(current, "")
        if phase in TERMINAL_PHASES and current and current.status is RolloutStatus.PROGRESSING:
            return Resolution(attach=True, new_status=TERMINAL_PHASES[phase])
        return Resolution(attach=True) if current else NO_ROLLOUT
    return _progressing(current, checksum)


def _confirm_rollout(current: CurrentRollout | None, checksum: str) -> Resolution:
    if current is None:
        return Resolution(attach=True, open_new=True, new_status=RolloutStatus.PENDING)
    if current.status is RolloutStatus.PENDING:
        return Resolution(attach=True)
    if current.status is RolloutStatus.CONFIRMED and (
        not checksum or not current.base_checksum or checksum == current.base_checksum
    ):
        # A retry of the confirm-rollout that passed carries the same checksum; another one
        # means the Canary started over (deleted and created again): a new rollout.
        return Resolution(attach=True)
    close = RolloutStatus.SUPERSEDED if current.status.is_open else None
    return Resolution(
        attach=True, open_new=True, close_current_as=close, new_status=RolloutStatus.PENDING
    )


def _progressing(current: CurrentRollout | None, checksum: str) -> Resolution:
    revision = checksum or None
    if current is None or not current.status.is_open:
        return Resolution(
            attach=True, open_new=True, new_status=RolloutStatus.PROGRESSING, revision=revision
        )
    if current.status is RolloutStatus.PROGRESSING:
        if checksum and current.revision and checksum != current.revision:
            return Resolution(
                attach=True,
                open_new=True,
                close_current_as=RolloutStatus.SUPERSEDED,
                new_status=RolloutStatus.PROGRESSING,
                revision=checksum,
            )
        return Resolution(attach=True, revision=revision if not current.revision else None)
    return Resolution(attach=True, new_status=RolloutStatus.PROGRESSING, revision=revision)


def _finish(current: CurrentRollout | None, status: RolloutStatus, checksum: str) -> Resolution:
    if current is None:
        return Resolution(attach=True, open_new=True, new_status=status, revision=checksum or None)
    if current.status.is_open:
        revision = checksum or None if not current.revision else None
        return Resolution(attach=True, new_status=status, revision=revision)
    return Resolution(attach=True)  # a retried post-rollout for a finished rollout
