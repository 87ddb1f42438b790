"""``POST /webhooks/ci/{provider}``: CI providers tell Puerta a run changed, so a gate does not
wait for the next poll.

``provider`` is the name under ``ci.providers``; the endpoint exists for CircleCI
(``workflow-completed``) and GitHub (``workflow_run``) providers with a ``webhook_secret``. The
signature is checked over the raw body before anything else (401 when missing or wrong); a
redelivery is acknowledged and changes nothing. Events about runs Puerta did not start (other
pipelines of the repository) are acknowledged and ignored, so the provider does not retry them.
"""

from __future__ import annotations

import json
from typing import Any

import structlog
from starlette.requests import Request
from starlette.responses import PlainTextResponse

from puerta.ci.config import CiProviderConfig
from puerta.ci.github import parse_workflow_run_event
from puerta.ci.webhooks import (
    BadSignature,
    parse_circleci_workflow_completed,
    verify_circleci,
    verify_github,
)
from puerta.clock import Clock
from puerta.metrics import Metrics
from puerta.policy import CompiledPolicy
from puerta.service import ci_events
from puerta.service.ci_runner import CiRunner
from puerta.service.run_changes import RunChanges
from puerta.store.db import Database

PATH = "/webhooks/ci/{provider}"
MAX_BODY = 1024 * 1024
log = structlog.get_logger("puerta.ci.webhooks")


def _text(status: int, body: str) -> PlainTextResponse:
    return PlainTextResponse(body, status_code=status)


async def _body(request: Request) -> bytes | None:
    """The raw body, or None when it is over the limit."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def ci_webhook(request: Request) -> PlainTextResponse:
    name: str = request.path_params["provider"]
    policy: CompiledPolicy = request.app.state.policy
    secrets: dict[str, str] = request.app.state.webhook_secrets
    config = policy.policy.ci.providers.get(name)
    if config is None or name not in secrets:
        return _text(404, f"no webhook for CI provider {name[:60]!r} (none with a webhook_secret)")
    body = await _body(request)
    if body is None:
        return _text(413, f"body over {MAX_BODY} bytes")
    try:
        if config.type == "circleci":
            verify_circleci(secrets[name], body, request.headers.get("circleci-signature"))
        else:
            verify_github(secrets[name], body, request.headers.get("x-hub-signature-256"))
    except BadSignature as exc:
        log.warning("ci webhook refused", provider=name, reason=str(exc))
        return _text(401, str(exc))
    try:
        payload: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return _text(400, "body: not JSON")
    if config.type == "circleci":
        return await _circleci(request, name, payload)
    return await _github(request, name, config, payload)


async def _circleci(request: Request, name: str, payload: Any) -> PlainTextResponse:
    policy: CompiledPolicy = request.app.state.policy
    kind = request.headers.get("circleci-event-type", "")
    if kind != "workflow-completed":
        return _text(200, f"ignored: event type {kind[:60]!r}")
    event = parse_circleci_workflow_completed(payload)
    delivery = payload.get("id") if isinstance(payload, dict) else None
    if event is None or not isinstance(delivery, str) or not delivery:
        return _text(400, "body: not a workflow-completed event (id, pipeline.id, workflow.status)")
    now = _clock(request).now()
    applied = await _db(request).write(
        lambda c: ci_events.apply_circleci(
            c, name, delivery[:200], event, now, policy.policy.notifications
        )
    )
    return _done(request, name, applied)


async def _github(
    request: Request, name: str, config: CiProviderConfig, payload: Any
) -> PlainTextResponse:
    kind = request.headers.get("x-github-event", "")
    if kind == "ping":
        return _text(200, "pong")
    if kind != "workflow_run":
        return _text(200, f"ignored: event {kind[:60]!r}")
    delivery = request.headers.get("x-github-delivery", "")
    if not delivery:
        return _text(400, "missing X-GitHub-Delivery header")
    parsed = parse_workflow_run_event(payload)
    if parsed is None:
        return _text(200, "ignored: not a requested/in_progress/completed workflow_run event")
    run_id, status = parsed
    policy: CompiledPolicy = request.app.state.policy
    run = payload.get("workflow_run") if isinstance(payload, dict) else None
    title = str(run.get("display_title") or "") if isinstance(run, dict) else ""
    now = _clock(request).now()
    applied = await _db(request).write(
        lambda c: ci_events.apply_github(
            c, name, delivery[:200], run_id, status, title, now, policy.policy.notifications
        )
    )
    return _done(request, name, applied)


def _done(request: Request, name: str, applied: ci_events.Applied) -> PlainTextResponse:
    runner: CiRunner | None = request.app.state.ci_runner
    changes: RunChanges | None = request.app.state.run_changes
    if applied.finished and applied.status is not None:
        metrics: Metrics = request.app.state.metrics
        metrics.e2e_runs_finished.labels(name, applied.status).inc()
    if applied.finished and changes is not None:
        changes.notify()  # calls held on this replica decide again at once
    if runner is not None and (applied.finished or applied.due_now):
        runner.wake()
    log.info("ci webhook", provider=name, run=applied.run_id, result=applied.message)
    return _text(200, applied.message)


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def _clock(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock
