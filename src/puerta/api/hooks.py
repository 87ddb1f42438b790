"""``POST /hooks/{type}``: Flagger's webhooks.

Answers follow Flagger's contract: 200 passes, 403 with a plain-text reason waits or refuses
(Flagger shows the body in its events; it would drop the body of a 5xx and retry). The rollback
hook is inverted: 200 means roll back now. Bad input is a 400 naming the field, an unknown hook
type a 404 listing the valid ones; neither touches the stored state.
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from starlette.requests import Request
from starlette.responses import PlainTextResponse

from puerta.api.hook_caller import CallerRefused, check_hook_caller, read_payload
from puerta.domain.decisions import Verdict
from puerta.domain.hooks import HOOK_NAMES, FlaggerPayload, HookType
from puerta.errors import BadRequest
from puerta.metrics import Metrics
from puerta.service.ci_runner import CiRunner
from puerta.service.hooks import HookOutcome, HookService
from puerta.service.notifier import NotificationWorker
from puerta.service.promoter import Promoter
from puerta.service.run_changes import RunChanges

PATH = "/hooks/{hook_type}"
HOLD_RECHECK_S = 1.0  # a held call re-reads its runs this often (changes of other replicas)
SETTLED = frozenset({"succeeded", "failed", "canceled", "abandoned"})
log = structlog.get_logger("puerta.hooks")

_PAYLOAD_SCHEMA: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["name", "namespace"],
                    "properties": {
                        "name": {"type": "string"},
                        "namespace": {"type": "string"},
                        "phase": {"type": "string"},
                        "checksum": {"type": "string"},
                        "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
                    },
                }
            }
        },
    },
    "responses": {
        "200": {
            "description": "pass (rollback hook: roll back now)",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        "400": {
            "description": "invalid payload; the body names the field",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        "401": {
            "description": "hook token missing or wrong",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        "403": {
            "description": "wait / refused (rollback hook: carry on); the body says why",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        "404": {
            "description": "unknown hook type",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
    },
}


OPENAPI_PATH: dict[str, Any] = {
    "post": {
        "tags": ["flagger hooks"],
        "summary": "Answer a Flagger webhook",
        "description": "Flagger calls this for every webhook of a Canary; the URL names the hook "
        "type. 200 passes (for the rollback hook: roll back now); 403 with a plain-text reason "
        "waits or refuses (rollback hook: carry on).",
        "operationId": "flagger_hook",
        "parameters": [
            {
                "name": "hook_type",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "enum": [h.value for h in HookType]},
            },
            {
                "name": "token",
                "in": "query",
                "required": False,
                "description": "the shared hook token, when the policy requires one",
                "schema": {"type": "string"},
            },
        ],
        **_PAYLOAD_SCHEMA,
    }
}


def _text(status: int, body: str) -> PlainTextResponse:
    return PlainTextResponse(body, status_code=status)


async def _hold(
    service: HookService,
    changes: RunChanges,
    hook: HookType,
    payload: FlaggerPayload,
    outcome: HookOutcome,
    started: float,
) -> HookOutcome:
    """Hold a call whose answer may change soon (an E2E run under way, ``wait: hold``) until
    a run of its rollout ends or the hold elapses, then decide again.

    Wakes on changes this replica stores, and re-reads the runs every second for changes
    stored by another replica or a webhook. The call is decided (and audited) again only if
    a run changed meanwhile; otherwise the first answer stands.
    """
    assert outcome.decision.hold is not None
    if outcome.rollout_seq is None:
        return outcome
    seq = outcome.rollout_seq
    limit = started + outcome.decision.hold
    before = await service.ci_state(payload, seq)
    now = before
    while (remaining := limit - time.perf_counter()) > 0:
        await changes.wait(min(remaining, HOLD_RECHECK_S))
        now = await service.ci_state(payload, seq)
        if any(status in SETTLED for _, status in now):
            break
    if now == before:
        return outcome
    return await service.handle(hook, payload)


async def flagger_hook(request: Request) -> PlainTextResponse:
    """Flagger calls this for every webhook of a Canary; the URL names the hook type.

    A plain Starlette endpoint rather than a FastAPI path operation: it is the hot path
    (thousands of canaries polling), validates its body itself to name the field in a one-line
    plain-text 400, and FastAPI's per-request dependency machinery would add nothing but time.
    Its OpenAPI description is :data:`OPENAPI_PATH`.
    """
    hook_type: str = request.path_params["hook_type"]
    metrics: Metrics = request.app.state.metrics
    try:
        hook = HookType(hook_type)
    except ValueError:
        metrics.hook_rejected.labels("unknown", "404").inc()
        return _text(404, f"unknown hook type {hook_type[:60]!r}; valid: {HOOK_NAMES}")
    started = time.perf_counter()
    try:
        payload = await read_payload(request, hook)
    except BadRequest as exc:
        metrics.hook_rejected.labels(hook.value, "400").inc()
        log.info("hook rejected", hook=hook.value, status=400, reason=str(exc))
        return _text(400, str(exc))
    try:
        check_hook_caller(request, payload)
    except CallerRefused as exc:
        metrics.hook_rejected.labels(hook.value, str(exc.status)).inc()
        log.warning(
            "hook caller refused",
            hook=hook.value,
            canary=payload.canary,
            status=exc.status,
            reason=exc.text,
        )
        return _text(exc.status, exc.text)

    service: HookService = request.app.state.hook_service
    outcome = await service.handle(hook, payload)
    notifier: NotificationWorker | None = request.app.state.notifier
    if notifier is not None and outcome.applied.notices:
        notifier.wake()
    promoter: Promoter | None = request.app.state.promoter
    if promoter is not None and outcome.applied.promotions:
        promoter.wake()
    runner: CiRunner | None = request.app.state.ci_runner
    if runner is not None and outcome.applied.ci_runs:
        runner.wake()  # trigger the run now, not at the next round
    changes: RunChanges | None = request.app.state.run_changes
    if changes is not None and outcome.decision.verdict is Verdict.WAIT and outcome.decision.hold:
        outcome = await _hold(service, changes, hook, payload, outcome, started)
    decision = outcome.decision
    elapsed = time.perf_counter() - started
    metrics.hook_calls.labels(hook.value, decision.verdict.value).inc()
    metrics.decision_seconds.labels(hook.value).observe(elapsed)
    log.info(
        "hook answered",
        hook=hook.value,
        canary=payload.canary,
        phase=payload.phase,
        checksum=payload.checksum,
        environment=outcome.environment,
        rollout=outcome.rollout_seq,
        verdict=decision.verdict.value,
        status=decision.http_status,
        gate=decision.gate,
        reason=decision.reason,
        ms=round(elapsed * 1000, 2),
    )
    return _text(decision.http_status, decision.body)
