"""Run task commands: in the background (``type: cmd``, de-duplicated) or while the request
waits (``type: bash``).

As in flagger-loadtester, background commands belong to this replica: a ``rollout`` webhook
sent every interval keeps one ``hey -z 1m`` alive because a second identical request (same
canary, same command) is skipped while the first runs, and runs again once it ended. Unlike the
original, whose runner polls a to-do list every 100 ms, the check-and-start here is one step on
the event loop, so two requests can never both start the command.

Every command runs in a new session (its own process group) with a scrubbed environment: a
timeout or shutdown kills the whole group (``sh -c 'hey ...'`` leaves no ``hey`` behind), and a
command never sees Puerta's API tokens or database URL, which live in Puerta's environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

import structlog

from puerta.domain.durations import format_duration
from puerta.loadtester.metrics import LoadtesterMetrics

log = structlog.get_logger("puerta.loadtester")

#: Output kept per command (the tail: a failure's reason is usually at the end).
MAX_OUTPUT_BYTES = 64 * 1024
_READ_CHUNK = 16 * 1024
#: How long to wait for a killed command to be reaped.
_REAP_SECONDS = 5.0
#: Environment variables a command inherits from Puerta; everything else (tokens!) stays out.
_INHERITED = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TMPDIR",
        "HOSTNAME",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "KUBERNETES_SERVICE_HOST",
        "KUBERNETES_SERVICE_PORT",
    }
)


def command_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment commands run with: locale, PATH, proxies; never Puerta's secrets."""
    return {
        key: value for key, value in environ.items() if key in _INHERITED or key.startswith("LC_")
    }


@dataclass(frozen=True)
class CommandResult:
    """How a command ended. ``error`` reads like Go's ``exec`` errors (``exit status 1``)."""

    ok: bool
    output: str
    error: str = ""
    timed_out: bool = False


class _Tail:
    """The last :data:`MAX_OUTPUT_BYTES` of a stream, read to its end so the writer never
    blocks on a full pipe."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.dropped = 0

    async def drain(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(_READ_CHUNK):
            self.data += chunk
            excess = len(self.data) - MAX_OUTPUT_BYTES
            if excess > 0:
                del self.data[:excess]
                self.dropped += excess

    def text(self) -> str:
        body = self.data.decode("utf-8", errors="replace")
        return f"[... {self.dropped} bytes cut]\n{body}" if self.dropped else body


def _exit_error(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"signal: {signal.Signals(-returncode).name.lower().removeprefix('sig')}"
        except ValueError:
            return f"signal: {-returncode}"
    return f"exit status {returncode}"


def _kill_group(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # the shell and everything it started


class CommandRunner:
    """This replica's commands. Created and stopped with the app (see ``app.py``'s lifespan)."""

    def __init__(self, metrics: LoadtesterMetrics, environ: Mapping[str, str]) -> None:
        self._metrics = metrics
        self._env = command_environment(environ)
        self._background: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._processes: set[asyncio.subprocess.Process] = set()
        self._stopping = False

    @property
    def path(self) -> str | None:
        """The ``PATH`` commands run with (the allow-list resolves executables on it)."""
        return self._env.get("PATH")

    def running(self, canary: str, command: str) -> bool:
        return (canary, command) in self._background

    def start_background(
        self, canary: str, command: str, *, time_limit: float, log_output: bool
    ) -> bool:
        """Start ``sh -c command`` for the canary unless the same one is running: True if
        started, False if skipped."""
        key = (canary, command)
        if self._stopping:
            return False
        if key in self._background:
            log.info("command skipped: already running", canary=canary, command=command)
            self._metrics.commands.labels("cmd", "skipped").inc()
            return False
        task = asyncio.create_task(self._run_background(canary, command, time_limit, log_output))
        self._background[key] = task
        self._metrics.running.inc()
        task.add_done_callback(lambda _: self._forget(key))
        return True

    def _forget(self, key: tuple[str, str]) -> None:
        if self._background.pop(key, None) is not None:
            self._metrics.running.dec()

    async def _run_background(
        self, canary: str, command: str, time_limit: float, log_output: bool
    ) -> None:
        log.info("command starting", canary=canary, command=command)
        self._metrics.commands.labels("cmd", "started").inc()
        try:
            result = await self.run("/bin/sh", command, time_limit=time_limit)
        except Exception as exc:  # the shell could not start: nobody awaits this task to hear it
            log.error("command failed to start", canary=canary, command=command, error=str(exc))
            self._metrics.commands.labels("cmd", "failed").inc()
            return
        if result.ok:
            self._metrics.commands.labels("cmd", "succeeded").inc()
            if log_output:
                log.info("command output", canary=canary, command=command, output=result.output)
            log.info("command finished", canary=canary, command=command)
            return
        outcome = "timed_out" if result.timed_out else "failed"
        self._metrics.commands.labels("cmd", outcome).inc()
        log.error(
            "command failed",
            canary=canary,
            command=command,
            error=result.error,
            output=result.output,
        )

    async def run(self, shell: str, command: str, *, time_limit: float) -> CommandResult:
        """Run ``shell -c command`` with stdout and stderr combined (Go's ``CombinedOutput``);
        the whole process group is killed after ``time_limit`` seconds."""
        process = await asyncio.create_subprocess_exec(
            shell,
            "-c",
            command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=self._env,
            start_new_session=True,
        )
        self._processes.add(process)
        output = _Tail()
        assert process.stdout is not None

        async def finish() -> int:
            assert process.stdout is not None
            await output.drain(process.stdout)
            return await process.wait()

        try:
            returncode = await asyncio.wait_for(finish(), time_limit)
        except TimeoutError:
            _kill_group(process)
            await process.wait()
            limit = format_duration(timedelta(seconds=time_limit))
            return CommandResult(False, output.text(), f"timed out after {limit}", True)
        except BaseException:  # cancelled: shutdown, or the caller went away
            _kill_group(process)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(process.wait(), _REAP_SECONDS)
            raise
        finally:
            self._processes.discard(process)
        if returncode == 0:
            return CommandResult(True, output.text())
        return CommandResult(False, output.text(), _exit_error(returncode))

    async def stop(self) -> None:
        """Kill every command this replica runs (on shutdown). Never raises."""
        self._stopping = True
        tasks = list(self._background.values())
        for process in list(self._processes):
            _kill_group(process)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if tasks or self._processes:
            log.info("background commands stopped", commands=len(tasks))
