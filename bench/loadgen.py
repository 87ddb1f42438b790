"""Load generator for ``hook_bench.py``: Flagger-like ``POST /hooks/confirm-rollout`` traffic.

It runs as its own process (``hook_bench.py`` starts it with ``subprocess``) so the client's
CPU time never lands in the measured server's event loop. Three modes:

``prime``
    one request per canary (5,000 by default), unmeasured: afterwards every canary is known to
    the server, so the measured runs exercise the steady-state "Flagger polls a waiting canary"
    path instead of the first-sight path (canary and rollout inserts).
``max``
    closed loop: C keep-alive connections, each sending its next request as soon as the previous
    answer arrived, for D seconds after a warm-up. Reports requests/s and latency percentiles.
    ``--client wrk`` runs the same load with Debian's ``wrk`` (C, one thread) and a generated
    Lua script that builds byte-for-byte the same requests, because a Python client tops out
    near the bare app's own throughput and would then flatter the Puerta/bare ratio.
``rate``
    open loop: requests are *scheduled* at a fixed rate R (default 500/s, i.e. 5,000 canaries
    polling every 10 s) regardless of how fast answers come back, and each latency is measured
    from the request's scheduled send time. A stalled server therefore shows up as queueing
    delay in p99/p99.9/max instead of silently lowering the send rate (coordinated omission).

Every request names one of N canaries (``svc-0000`` ... ``svc-4999`` in namespace ``prod``),
cycling, with the body Flagger sends::

    {"name":"svc-0042","namespace":"prod","phase":"Initialized","checksum":"6d9d8b5c7f"}

HTTP/1.1 keep-alive over raw ``asyncio.open_connection`` streams: a few microseconds per request
instead of an HTTP client library's tens. Answers 200 and 403 are successes (403 is Puerta's
"wait" decision); anything else is an error, counted by kind.

Output: one JSON object on stdout (the last line), a human summary on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

HOOK_PATH = "/hooks/confirm-rollout"
#: 200 = pass, 403 = wait/refuse: both are answers Flagger expects from a gate.
OK_STATUSES = frozenset({200, 403})
DEFAULT_CANARIES = 5000
#: The body Flagger posts; only the canary name varies. Kept in one place for the Lua copy.
BODY_FORMAT = (
    '{{"name":"svc-{index:04d}","namespace":"prod","phase":"Initialized","checksum":"6d9d8b5c7f"}}'
)
LUA_BODY_FORMAT = (
    '{"name":"svc-%04d","namespace":"prod","phase":"Initialized","checksum":"6d9d8b5c7f"}'
)
HEAD_FORMAT = (
    "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
    "Content-Length: {length}\r\n\r\n"
)
LUA_HEAD_FORMAT = (
    "POST %s HTTP/1.1\\r\\nHost: %s\\r\\nContent-Type: application/json\\r\\n"
    "Content-Length: %d\\r\\n\\r\\n"
)


# --------------------------------------------------------------------------------------------
# The load definition
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Where requests go: ``host:port`` and the path, parsed from the URL once."""

    host: str
    port: int
    path: str

    @classmethod
    def parse(cls, url: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise SystemExit(f"--url must look like http://127.0.0.1:PORT/path, got {url!r}")
        return cls(parts.hostname, parts.port, parts.path or HOOK_PATH)

    @property
    def host_header(self) -> str:
        return f"{self.host}:{self.port}"


def build_requests(target: Target, canaries: int) -> list[bytes]:
    """The raw HTTP/1.1 requests, one per canary, built once so sending costs no formatting."""
    requests = []
    for index in range(canaries):
        body = BODY_FORMAT.format(index=index).encode()
        head = HEAD_FORMAT.format(path=target.path, host=target.host_header, length=len(body))
        requests.append(head.encode() + body)
    return requests


# --------------------------------------------------------------------------------------------
# A minimal HTTP/1.1 keep-alive client
# --------------------------------------------------------------------------------------------


class RequestError(Exception):
    """A request that got no usable answer; ``kind`` is the error bucket it is counted in."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


class Connection:
    """One keep-alive connection: write a request, read the status line, headers and body."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.reusable = True

    @classmethod
    async def open(cls, target: Target, limit_s: float) -> Connection:
        try:
            async with asyncio.timeout(limit_s):
                reader, writer = await asyncio.open_connection(target.host, target.port)
        except TimeoutError as exc:
            raise RequestError("connect_timeout") from exc
        except OSError as exc:
            raise RequestError(f"connect_{type(exc).__name__}") from exc
        return cls(reader, writer)

    async def request(self, raw: bytes, limit_s: float) -> int:
        """Send one request and return the answer's status (its body is read and dropped)."""
        try:
            async with asyncio.timeout(limit_s):
                self.writer.write(raw)
                head = await self.reader.readuntil(b"\r\n\r\n")
                status, length, close = _parse_head(head)
                if length:
                    await self.reader.readexactly(length)
        except TimeoutError as exc:
            raise RequestError("timeout") from exc
        except asyncio.IncompleteReadError as exc:
            raise RequestError("closed_by_server") from exc
        except asyncio.LimitOverrunError as exc:
            raise RequestError("bad_response") from exc
        except OSError as exc:
            raise RequestError(type(exc).__name__) from exc
        if close:
            self.reusable = False
        return status

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


def _parse_head(head: bytes) -> tuple[int, int, bool]:
    """Status, Content-Length and whether the server closes the connection."""
    if not head.startswith(b"HTTP/1.") or len(head) < 12:
        raise RequestError("bad_response")
    try:
        status = int(head[9:12])
    except ValueError as exc:
        raise RequestError("bad_response") from exc
    length = 0
    close = False
    for line in head.lower().split(b"\r\n")[1:]:
        if line.startswith(b"content-length:"):
            length = int(line[15:])
        elif line.startswith(b"transfer-encoding:"):
            raise RequestError("chunked_response")  # neither server under test sends chunks
        elif line.startswith(b"connection:") and b"close" in line:
            close = True
    return status, length, close


# --------------------------------------------------------------------------------------------
# Recording
# --------------------------------------------------------------------------------------------


@dataclass
class Recorder:
    """What one run saw. Only the measurement window feeds the latencies and error counts;
    ``answered_total`` counts every 200/403 (warm-up and drain included) so the caller can
    compare it with the audit rows the server wrote."""

    latencies: list[float] = field(default_factory=list)  # seconds, measured window, 200/403
    statuses: Counter[int] = field(default_factory=Counter)  # measured window
    errors: Counter[str] = field(default_factory=Counter)  # measured window
    answered_total: int = 0
    sent_total: int = 0

    def answer(self, status: int, latency: float, measured: bool) -> None:
        if status in OK_STATUSES:
            self.answered_total += 1
        if not measured:
            return
        self.statuses[status] += 1
        if status in OK_STATUSES:
            self.latencies.append(latency)
        else:
            self.errors[f"status_{status}"] += 1

    def error(self, kind: str, measured: bool) -> None:
        if measured:
            self.errors[kind] += 1


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation: p99 is a latency some request really had)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def latency_summary(latencies: Sequence[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    ms = 1000.0

    def pick(pct: float) -> float:
        return round(percentile(ordered, pct) * ms, 3)

    return {
        "p50_ms": pick(50),
        "p90_ms": pick(90),
        "p99_ms": pick(99),
        "p999_ms": pick(99.9),
        "max_ms": round(ordered[-1] * ms, 3) if ordered else math.nan,
        "mean_ms": round(sum(ordered) / len(ordered) * ms, 3) if ordered else math.nan,
    }


# --------------------------------------------------------------------------------------------
# Closed loop (prime and max)
# --------------------------------------------------------------------------------------------


async def _open_all(target: Target, count: int, limit_s: float) -> list[Connection | None]:
    """Connect everything up front: connection set-up is not what the runs measure."""
    results = await asyncio.gather(
        *(Connection.open(target, limit_s) for _ in range(count)), return_exceptions=True
    )
    return [r if isinstance(r, Connection) else None for r in results]


async def closed_loop(
    target: Target,
    requests: Sequence[bytes],
    connections: int,
    duration: float,
    warmup: float,
    request_timeout: float,
    limit: int | None = None,
) -> tuple[Recorder, float]:
    """C workers, each with its own connection, send back to back until the end (or ``limit``
    requests in total). Returns the recorder and the measured window's length in seconds."""
    rec = Recorder()
    pool = await _open_all(target, connections, request_timeout)
    counter = itertools.count()
    n = len(requests)
    start = time.perf_counter()
    window_start = start + warmup
    end = window_start + duration

    async def worker(conn: Connection | None) -> None:
        while True:
            index = next(counter)
            if (limit is not None and index >= limit) or time.perf_counter() >= end:
                break
            if conn is None:
                try:
                    conn = await Connection.open(target, request_timeout)
                except RequestError as exc:
                    rec.error(exc.kind, time.perf_counter() >= window_start)
                    await asyncio.sleep(0.05)
                    continue
            sent = time.perf_counter()
            rec.sent_total += 1
            try:
                status = await conn.request(requests[index % n], request_timeout)
            except RequestError as exc:
                rec.error(exc.kind, time.perf_counter() >= window_start)
                conn.close()
                conn = None
                continue
            done = time.perf_counter()
            rec.answer(status, done - sent, window_start <= done <= end)
            if not conn.reusable:
                conn.close()
                conn = None
        if conn is not None:
            conn.close()

    await asyncio.gather(*(worker(conn) for conn in pool))
    elapsed = time.perf_counter() - start
    window = duration if limit is None else elapsed
    return rec, window


# --------------------------------------------------------------------------------------------
# Open loop (rate)
# --------------------------------------------------------------------------------------------


@dataclass
class RateResult:
    rec: Recorder
    scheduled: int
    measured_scheduled: int
    achieved_rps: float
    window_s: float
    send_lag_p99_ms: float
    send_lag_max_ms: float
    unsent: int


async def _sleep_until(due: float) -> None:
    """Sleep until ``due`` (perf_counter time). Event-loop timers have millisecond granularity
    and may fire a little early, so re-check a few times; lateness is reported as send lag."""
    for _ in range(5):
        delay = due - time.perf_counter()
        if delay <= 0:
            return
        await asyncio.sleep(delay)


async def open_loop(
    target: Target,
    requests: Sequence[bytes],
    rate: float,
    connections: int,
    duration: float,
    warmup: float,
    request_timeout: float,
    drain: float,
) -> RateResult:
    """A scheduler puts request i on a queue at ``start + i / rate``; C connection workers take
    them in order. Latency = answer time - scheduled time, so time spent waiting for a free
    connection (the server is slow) counts. Requests scheduled during the warm-up are sent but
    not measured."""
    rec = Recorder()
    pool = await _open_all(target, connections, request_timeout)
    queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    total = round((warmup + duration) * rate)
    warm = round(warmup * rate)
    n = len(requests)
    lags: list[float] = []
    last_done = 0.0
    start = time.perf_counter() + 0.01
    window_start = start + warm / rate

    async def scheduler() -> None:
        for index in range(total):
            due = start + index / rate
            await _sleep_until(due)
            lags.append(time.perf_counter() - due)
            queue.put_nowait((index, due))
        for _ in pool:
            queue.put_nowait(None)

    async def worker(conn: Connection | None) -> None:
        nonlocal last_done
        while (item := await queue.get()) is not None:
            index, due = item
            measured = index >= warm
            if conn is None:
                try:
                    conn = await Connection.open(target, request_timeout)
                except RequestError as exc:
                    rec.error(exc.kind, measured)
                    continue
            rec.sent_total += 1
            try:
                status = await conn.request(requests[index % n], request_timeout)
            except RequestError as exc:
                rec.error(exc.kind, measured)
                conn.close()
                conn = None
                continue
            done = time.perf_counter()
            rec.answer(status, done - due, measured)
            if measured:
                last_done = max(last_done, done)
            if not conn.reusable:
                conn.close()
                conn = None
        if conn is not None:
            conn.close()

    sched = asyncio.create_task(scheduler())
    workers = [asyncio.create_task(worker(conn)) for conn in pool]
    await sched
    # The schedule is over; give a slow server ``drain`` seconds to answer what is queued.
    _done, pending = await asyncio.wait(workers, timeout=drain)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    unsent = sum(1 for _ in range(queue.qsize()) if queue.get_nowait() is not None)
    if pending:
        rec.errors["cancelled_in_flight"] += len(pending)  # upper bound: one per busy worker
    if unsent:
        rec.errors["unsent_at_deadline"] += unsent
    measured_ok = len(rec.latencies)
    span = max(last_done - window_start, duration) if measured_ok else duration
    ordered_lags = sorted(lags)
    return RateResult(
        rec=rec,
        scheduled=total,
        measured_scheduled=total - warm,
        achieved_rps=measured_ok / span,
        window_s=span,
        send_lag_p99_ms=round(percentile(ordered_lags, 99) * 1000, 3),
        send_lag_max_ms=round(ordered_lags[-1] * 1000, 3) if ordered_lags else math.nan,
        unsent=unsent,
    )


# --------------------------------------------------------------------------------------------
# wrk (max mode only)
# --------------------------------------------------------------------------------------------

_WRK_LUA = """
-- Generated by bench/loadgen.py: the same requests as its Python client, byte for byte.
-- Each wrk thread cycles through the canaries from its own offset; 200 and 403 count as answers.
local canaries = %(canaries)d
local path = "%(path)s"
local host = "%(host)s"
local threads = {}
local requests = {}
local counter = 0
statuses = {}

function setup(thread)
  thread:set("offset", #threads * math.floor(canaries / %(threads)d))
  table.insert(threads, thread)
end

function init(args)
  for i = 0, canaries - 1 do
    local body = string.format('%(body)s', i)
    requests[i] = string.format("%(head)s", path, host, #body) .. body
  end
  counter = offset
end

function request()
  local r = requests[counter %% canaries]
  counter = counter + 1
  return r
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local parts = {}
  for _, t in ipairs(threads) do
    for status, count in pairs(t:get("statuses")) do
      parts[status] = (parts[status] or 0) + count
    end
  end
  local codes = {}
  for status, count in pairs(parts) do
    table.insert(codes, string.format('"%%d":%%d', status, count))
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%%d,"duration_us":%%d,"p50_us":%%d,"p90_us":%%d,"p99_us":%%d,' ..
    '"p999_us":%%d,"max_us":%%d,"mean_us":%%.1f,"statuses":{%%s},' ..
    '"errors":{"connect":%%d,"read":%%d,"write":%%d,"timeout":%%d}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean,
    table.concat(codes, ","), e.connect, e.read, e.write, e.timeout))
end
"""


def wrk_script(target: Target, canaries: int, threads: int) -> str:
    return _WRK_LUA % {
        "canaries": canaries,
        "path": target.path,
        "host": target.host_header,
        "threads": threads,
        "body": LUA_BODY_FORMAT,
        "head": LUA_HEAD_FORMAT,
    }


def _run_wrk(
    wrk: str,
    script: Path,
    url: str,
    threads: int,
    connections: int,
    seconds: float,
    timeout: float,
) -> dict[str, Any]:
    cmd = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        f"--timeout={max(1, round(timeout))}s",
        "-s",
        str(script),
        url,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith("WRKJSON "):
            parsed: dict[str, Any] = json.loads(line[len("WRKJSON ") :])
            return parsed
    raise SystemExit(f"wrk failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")


def wrk_max(args: argparse.Namespace, target: Target) -> dict[str, Any]:
    """``max`` mode through wrk: an unmeasured warm-up run, then the measured run."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("--client wrk: wrk is not installed (apt-get install -y wrk)")
    threads = min(args.wrk_threads, args.connections)
    with tempfile.TemporaryDirectory(prefix="loadgen-") as tmp:
        script = Path(tmp) / "hooks.lua"
        script.write_text(wrk_script(target, args.canaries, threads))
        answered = 0
        if args.warmup > 0:
            warm = _run_wrk(
                wrk, script, args.url, threads, args.connections, args.warmup, args.timeout
            )
            answered += sum(v for k, v in warm["statuses"].items() if int(k) in OK_STATUSES)
        run = _run_wrk(
            wrk, script, args.url, threads, args.connections, args.duration, args.timeout
        )
    statuses = {int(k): v for k, v in run["statuses"].items()}
    ok = sum(v for k, v in statuses.items() if k in OK_STATUSES)
    errors = {f"status_{k}": v for k, v in statuses.items() if k not in OK_STATUSES}
    errors.update({f"socket_{k}": v for k, v in run["errors"].items() if v})
    seconds = run["duration_us"] / 1e6
    return {
        "requests": ok,
        "rps": round(ok / seconds, 1),
        "window_s": round(seconds, 3),
        "p50_ms": run["p50_us"] / 1000,
        "p90_ms": run["p90_us"] / 1000,
        "p99_ms": run["p99_us"] / 1000,
        "p999_ms": run["p999_us"] / 1000,
        "max_ms": run["max_us"] / 1000,
        "mean_ms": round(run["mean_us"] / 1000, 3),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "errors": errors,
        "error_count": sum(errors.values()),
        # wrk stops with requests in flight that the server may still answer (and record):
        # up to `connections` per run more than this.
        "answered_total": answered + ok,
        "answered_total_exact": False,
    }


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def _common(rec: Recorder) -> dict[str, Any]:
    return {
        "requests": len(rec.latencies),
        **latency_summary(rec.latencies),
        "statuses": {str(k): v for k, v in sorted(rec.statuses.items())},
        "errors": dict(rec.errors),
        "error_count": sum(rec.errors.values()),
        "sent_total": rec.sent_total,
        "answered_total": rec.answered_total,
        "answered_total_exact": True,
    }


async def most_answered(
    target: Target,
    requests: Sequence[bytes],
    connections: int,
    duration: float,
    warmup: float,
    request_timeout: float,
) -> dict[str, Any]:
    """The closed loop for ``duration`` after ``warmup``: the most the server answers a second."""
    rec, window = await closed_loop(
        target, requests, connections, duration, warmup, request_timeout
    )
    return {**_common(rec), "rps": round(len(rec.latencies) / window, 1), "window_s": window}


async def run_mode(args: argparse.Namespace, target: Target) -> dict[str, Any]:
    requests = build_requests(target, args.canaries)
    if args.mode == "prime":
        rec, elapsed = await closed_loop(
            target, requests, args.connections, math.inf, 0.0, args.timeout, limit=args.canaries
        )
        return {
            **_common(rec),
            "rps": round(len(rec.latencies) / elapsed, 1),
            "window_s": round(elapsed, 3),
        }
    if args.mode == "max":
        return await most_answered(
            target, requests, args.connections, args.duration, args.warmup, args.timeout
        )
    res = await open_loop(
        target,
        requests,
        args.rate,
        args.connections,
        args.duration,
        args.warmup,
        args.timeout,
        args.drain,
    )
    return {
        **_common(res.rec),
        "rate": args.rate,
        "scheduled": res.measured_scheduled,
        "achieved_rps": round(res.achieved_rps, 1),
        "window_s": round(res.window_s, 3),
        "send_lag_p99_ms": res.send_lag_p99_ms,
        "send_lag_max_ms": res.send_lag_max_ms,
    }


def _run_async(main: Callable[[], Coroutine[Any, Any, dict[str, Any]]]) -> dict[str, Any]:
    """uvloop when installed (less client overhead per request), else the default loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main())
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main())


def human(result: dict[str, Any]) -> str:
    """One readable block per run, for people watching the benchmark."""
    head = (
        f"[{result['label'] or result['url']}] {result['mode']} ({result['client']}, "
        f"{result['connections']} conn"
    )
    if result["mode"] == "rate":
        head += f", {result['rate']:g}/s scheduled"
    head += ")"
    rps = result.get("achieved_rps", result.get("rps"))
    lines = [
        head,
        f"  answered {result['requests']} in {result.get('window_s', result['duration_s'])} s"
        f" = {rps} req/s; errors {result['error_count']} {result['errors'] or ''}".rstrip(),
        f"  latency ms: p50 {result['p50_ms']:.2f}  p90 {result['p90_ms']:.2f}  "
        f"p99 {result['p99_ms']:.2f}  p99.9 {result['p999_ms']:.2f}  max {result['max_ms']:.2f}",
    ]
    if result["mode"] == "rate":
        lines.append(
            f"  client send lag ms: p99 {result['send_lag_p99_ms']:.2f}  "
            f"max {result['send_lag_max_ms']:.2f} (included in the latencies)"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Flagger-like POST /hooks/confirm-rollout load (prime, max or rate mode)."
    )
    parser.add_argument("mode", choices=["prime", "max", "rate"])
    parser.add_argument("--url", required=True, help=f"e.g. http://127.0.0.1:8080{HOOK_PATH}")
    parser.add_argument("--label", default="", help="server name printed with the results")
    parser.add_argument("--connections", "-c", type=int, default=32)
    parser.add_argument("--duration", "-d", type=float, default=10.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first")
    parser.add_argument("--rate", "-r", type=float, default=500.0, help="rate mode: requests/s")
    parser.add_argument("--canaries", type=int, default=DEFAULT_CANARIES)
    parser.add_argument("--timeout", type=float, default=5.0, help="per request, seconds")
    parser.add_argument(
        "--drain",
        type=float,
        default=30.0,
        help="rate mode: seconds to wait for queued requests after the schedule",
    )
    parser.add_argument(
        "--client",
        choices=["python", "wrk"],
        default="python",
        help="max mode only: who generates the closed-loop load",
    )
    parser.add_argument("--wrk-threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.mode != "max" and args.client != "python":
        parser.error("--client wrk is for max mode; prime and rate always use the Python client")
    if args.connections < 1 or args.canaries < 1 or args.rate <= 0 or args.duration <= 0:
        parser.error("--connections, --canaries, --rate and --duration must be positive")
    return args


def _exit_on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    sys.exit(143)  # unwinds: wrk is killed and the Lua script's temp dir removed


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    target = Target.parse(args.url)
    if args.client == "wrk":
        measured = wrk_max(args, target)
    else:
        measured = _run_async(lambda: run_mode(args, target))
    result: dict[str, Any] = {
        "label": args.label,
        "url": args.url,
        "mode": args.mode,
        "client": args.client,
        "connections": args.connections,
        "duration_s": args.duration,
        "warmup_s": args.warmup if args.mode != "prime" else 0.0,
        "canaries": args.canaries,
        **measured,
    }
    print(human(result), file=sys.stderr, flush=True)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
