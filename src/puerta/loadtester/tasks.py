"""``POST /``: the loadtester's task endpoint, for ``type: cmd`` and ``type: bash``.

Answers as flagger-loadtester does where it can: 400 ``metadata not found in payload``,
``type`` defaults to ``cmd``, a ``cmd`` task answers 202 at once and runs in the background
(skipped while the same command runs for the same canary), a ``bash`` task answers 200 when it
exits 0 (with its output if ``returnCmdOutput: "true"``).

Where the original answers badly, Puerta answers better:

* a failing ``bash`` command is a **403** ``command <cmd> failed: <output>: <err>``, not a 500:
  Flagger retries 5xx and drops their bodies, so the reason would never reach its events;
* an unknown type is a 400 (the original panics), the loadtester's other types (``helm``,
  ``kubectl``, ``concord``, ``ngrinder``) a 400 saying Puerta does not run them;
* commands run only when the policy enables them, and only allow-listed executables
  (``allowlist.py``); otherwise a 403 saying which setting refused it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import structlog
from starlette.requests import Request
from starlette.responses import Response

from puerta.domain.durations import format_duration, parse_duration
from puerta.loadtester.access import (
    Endpoint,
    Refused,
    answering,
    check_hook_caller,
    read_payload,
    text,
)
from puerta.loadtester.allowlist import CommandRefused, check_command
from puerta.loadtester.config import CommandsConfig
from puerta.loadtester.metrics import LoadtesterMetrics
from puerta.loadtester.runner import CommandRunner

log = structlog.get_logger("puerta.loadtester")

BACKGROUND = "cmd"
BLOCKING = "bash"
#: The loadtester's other task types: recognised, so the answer can say Puerta lacks them.
UNSUPPORTED = frozenset({"helm", "helmv3", "kubectl", "concord", "ngrinder"})
DISABLED = "commands are disabled in the Puerta policy (loadtester.commands.enabled)"
_TRUE = frozenset({"1", "t", "T", "true", "TRUE", "True"})  # Go's strconv.ParseBool


@dataclass(frozen=True)
class Task:
    """A task request: what to run and what to do with its output."""

    type: str
    command: str
    return_output: bool = False
    log_output: bool = False


def parse_task(metadata: Mapping[str, str]) -> Task:
    """The task a webhook's metadata asks for; :class:`Refused` (400) when it asks nothing
    Puerta can run."""
    if not any(key != "token" for key in metadata):  # the hook token alone is no task
        raise Refused(400, "metadata not found in payload")
    kind = metadata.get("type", BACKGROUND)
    if kind in UNSUPPORTED:
        raise Refused(400, f"task type {kind} is not supported by Puerta")
    if kind not in (BACKGROUND, BLOCKING):
        raise Refused(400, f"unknown task type {kind}")
    command = metadata.get("cmd")
    if command is None:
        raise Refused(400, "cmd not found in metadata")
    return Task(
        type=kind,
        command=command,
        return_output=metadata.get("returnCmdOutput", "") in _TRUE,
        log_output=metadata.get("logCmdOutput", "") in _TRUE,
    )


def _refuse(metrics: LoadtesterMetrics, task: Task, reason: str, canary: str) -> Refused:
    metrics.commands.labels(task.type, "refused").inc()
    log.warning("command refused", canary=canary, command=task.command, reason=reason)
    return Refused(403, reason)


async def run_task(request: Request) -> Response:
    """Run a ``cmd`` (background) or ``bash`` (blocking) task for a canary."""
    payload = await read_payload(request)
    check_hook_caller(request, payload)
    task = parse_task(payload.metadata)
    config: CommandsConfig = request.app.state.policy.policy.loadtester.commands
    runner: CommandRunner = request.app.state.loadtester_commands
    metrics: LoadtesterMetrics = request.app.state.loadtester_metrics
    if not config.enabled:
        raise _refuse(metrics, task, DISABLED, payload.canary)
    try:
        check_command(task.command, config.allow, runner.path)
    except CommandRefused as exc:
        raise _refuse(metrics, task, str(exc), payload.canary) from exc

    if task.type == BACKGROUND:
        runner.start_background(
            payload.canary,
            task.command,
            time_limit=config.timeout_seconds,
            log_output=task.log_output,
        )
        return Response(status_code=202)
    return await _run_blocking(runner, metrics, config, task, payload.canary)


async def _run_blocking(
    runner: CommandRunner,
    metrics: LoadtesterMetrics,
    config: CommandsConfig,
    task: Task,
    canary: str,
) -> Response:
    log.info("bash command", canary=canary, command=task.command)
    try:
        result = await runner.run("bash", task.command, time_limit=config.timeout_seconds)
    except OSError as exc:  # bash itself could not start
        metrics.commands.labels(BLOCKING, "failed").inc()
        return text(403, f"command {task.command} failed: : {exc}")
    if result.ok:
        metrics.commands.labels(BLOCKING, "succeeded").inc()
        if task.log_output:
            log.info("command output", canary=canary, command=task.command, output=result.output)
        log.info("command finished", canary=canary, command=task.command)
        return text(200, result.output if task.return_output else "")
    if result.timed_out:
        metrics.commands.labels(BLOCKING, "timed_out").inc()
        limit = format_duration(parse_duration(config.timeout))
        message = f"command {task.command} timed out after {limit} (loadtester.commands.timeout)"
        if result.output:
            message += f": {result.output}"
    else:
        metrics.commands.labels(BLOCKING, "failed").inc()
        message = f"command {task.command} failed: {result.output}: {result.error}"
    log.error("command failed", canary=canary, command=task.command, error=result.error)
    return text(403, message)


def task_route() -> tuple[str, Endpoint, list[str]]:
    """``(path, endpoint, methods)`` of the task endpoint."""
    return "/", answering("/", run_task), ["POST"]
