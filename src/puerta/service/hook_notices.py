"""Which notices a hook call produces (pure over the call's rows and decision).

* ``event``: the Flagger event, verbatim (to the canary's current rollout; before any rollout,
  to "rollout 0", which only the raw channel and webhooks receive);
* confirm-rollout waiting (for a window, a freeze, the release train, an approval), the first
  time it waits on that gate: queued, with the reason (when it opens, the place in line);
* confirm-rollout passing a pending rollout: released;
* post-rollout ending the rollout: succeeded (reached the environment) or failed, with why
  (``failure``: found by ``service/notices.hook_call_notices``, which remembers the clues; the
  rollout's own row no longer says what it waited for once it failed).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row

from puerta.domain.decisions import Decision, Verdict
from puerta.domain.hooks import FlaggerPayload, HookType
from puerta.domain.notices import FALLBACK_FAILURE, Notice, NoticeKind
from puerta.domain.rollouts import RolloutStatus


def hook_notices(
    before: Row[Any] | None,
    rollout: Row[Any] | None,
    hook: HookType,
    payload: FlaggerPayload,
    environment: str | None,
    decision: Decision,
    now: datetime,
    failure: str | None = None,
) -> list[Notice]:
    target = rollout if rollout is not None else before

    def notice(kind: NoticeKind, text: str, **extra: Any) -> Notice:
        return Notice(
            kind=kind,
            namespace=payload.namespace,
            name=payload.name,
            rollout_seq=target.seq if target is not None else 0,
            environment=environment,
            revision=(target.revision if target is not None else "") or payload.checksum,
            at=now,
            text=text,
            phase=payload.phase,
            **extra,
        )

    if hook is HookType.EVENT:
        message = payload.metadata.get("eventMessage", "").strip()
        if not message:
            return []
        warning = payload.metadata.get("eventType") == "Warning"
        return [notice(NoticeKind.EVENT, message, warning=warning)]
    if rollout is None:
        return []
    if hook is HookType.CONFIRM_ROLLOUT:
        return _confirm_rollout(rollout, decision, notice)
    if hook is HookType.POST_ROLLOUT:
        was = before.status if before is not None and before.id == rollout.id else None
        if rollout.status == was:
            return []
        if rollout.status == RolloutStatus.SUCCEEDED.value:
            return [notice(NoticeKind.SUCCEEDED, f"rollout #{rollout.seq} promoted")]
        if rollout.status == RolloutStatus.FAILED.value:
            why = failure or FALLBACK_FAILURE
            return [notice(NoticeKind.FAILED, f"rollout #{rollout.seq} failed: {why}")]
    return []


def _confirm_rollout(rollout: Row[Any], decision: Decision, notice: Any) -> list[Notice]:
    if decision.verdict is Verdict.WAIT:
        # the first time it waits on this gate (Flagger asks again every interval)
        if rollout.waiting_gate != decision.gate:
            return [notice(NoticeKind.QUEUED, decision.reason)]
        return []
    if decision.verdict is Verdict.PASS and rollout.status == RolloutStatus.PENDING.value:
        return [notice(NoticeKind.RELEASED, f"rollout #{rollout.seq} starts: {decision.reason}")]
    return []
