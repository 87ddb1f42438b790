"""HTTP benchmark of Puerta's hook path against a bare ASGI app on the same uvicorn settings.

    python bench/hook_bench.py [--duration 10] [--connections 32] [--rate 500]

What it does, and why:

1. makes a temp dir with a fresh SQLite database, so every run starts from the same state;
2. for each server in turn (never both at once: on a 2-core machine they would compete for the
   CPU), the bare app (``bare_app.py``) and then Puerta (``puerta serve --config
   bench/policy.yaml``, JSON logs at level info to a file, i.e. the production code path):
   start it on a free port, wait for ``/healthz``, then run ``loadgen.py`` in its own process:

   * ``prime``: one call per canary (5,000), unmeasured, so what follows is the steady state of
     "Flagger polls a canary that waits for approval" rather than first sight of each canary;
   * ``max``: closed loop on C connections, D seconds after a 2 s warm-up -> requests/s, p50, p99;
   * ``rate``: open loop at R requests/s (500/s = 5,000 canaries polling every 10 s), latency
     from each request's scheduled send time -> achieved rate, p50, p99, p99.9;

   then stop it (SIGTERM, so Puerta flushes and closes its database);
3. prints the comparison table, the two targets (Puerta/bare max req/s >= 0.60; Puerta p99 at
   500/s <= 10 ms) with PASS/FAIL, and the number of audit rows Puerta wrote next to the number
   of answers the client saw, as proof that every measured call really wrote its audit row;
4. reports how much CPU other processes used during each run: the machine is shared, and a busy
   neighbour on 2 cores moves the numbers more than most code changes.

It is a measurement, not a test: the exit status is 0 whatever the numbers, and non-zero only if
something crashed. Every process it starts is stopped on exit, Ctrl-C and errors included.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import json
import os
import re
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from processes import Processes, free_port, raise_interrupt

BENCH = Path(__file__).resolve().parent
POLICY = BENCH / "policy.yaml"
LOADGEN = BENCH / "loadgen.py"
BARE_APP = BENCH / "bare_app.py"
HOOK_PATH = "/hooks/confirm-rollout"
RATIO_TARGET = 0.60
P99_TARGET_MS = 10.0
_CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------


def wait_healthy(proc: subprocess.Popen[Any], port: int, log: Path, limit_s: float = 30.0) -> None:
    """Poll ``GET /healthz`` until it answers 200; fail fast (with the log) if the server died."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{_tail(log)}")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        try:
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            conn.close()
        time.sleep(0.1)
    raise RuntimeError(f"server not healthy after {limit_s:g} s:\n{_tail(log)}")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --------------------------------------------------------------------------------------------
# CPU accounting (is the machine quiet?)
# --------------------------------------------------------------------------------------------


def _busy_ticks() -> int:
    """All CPUs' busy time (user, nice, system, irq, softirq) from /proc/stat, in ticks."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[1:8])
    return user + nice + system + irq + softirq


def _proc_ticks(pid: int) -> int:
    """A process's user + system time (all its threads), in ticks."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    after = stat.rsplit(")", 1)[1].split()
    return int(after[11]) + int(after[12])  # fields 14 and 15: utime, stime


@dataclass
class CpuUse:
    """Average cores used during a run by the server, the load generator and everyone else."""

    server: float
    loadgen: float
    other: float


@contextlib.contextmanager
def cpu_meter(server_pid: int, out: list[CpuUse]) -> Iterator[None]:
    wall0 = time.monotonic()
    busy0 = _busy_ticks()
    server0 = _proc_ticks(server_pid)
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    yield
    wall = time.monotonic() - wall0
    children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy = (_busy_ticks() - busy0) / _CLK_TCK
    server = (_proc_ticks(server_pid) - server0) / _CLK_TCK
    # RUSAGE_CHILDREN grows when loadgen (and the wrk it waited for) is reaped.
    loadgen = (children1.ru_utime + children1.ru_stime) - (children0.ru_utime + children0.ru_stime)
    out.append(CpuUse(server / wall, loadgen / wall, max(0.0, busy - server - loadgen) / wall))


# --------------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------------


@dataclass
class ServerResult:
    name: str
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    cpu: dict[str, CpuUse] = field(default_factory=dict)
    pid: int = 0


def start_loadgen(
    procs: Processes,
    mode: str,
    url: str,
    label: str,
    args: argparse.Namespace,
    client: str = "python",
) -> subprocess.Popen[Any]:
    """Start one loadgen.py process; its human summary goes to our stderr."""
    cmd = [
        sys.executable,
        str(LOADGEN),
        mode,
        "--url",
        url,
        "--label",
        label,
        "--connections",
        str(args.connections),
        "--duration",
        str(args.duration),
        "--warmup",
        str(args.warmup),
        "--rate",
        str(args.rate),
        "--canaries",
        str(args.canaries),
        "--drain",
        str(args.drain),
    ]
    if mode == "max":
        cmd += ["--client", client]
    return procs.start(cmd, stdout=subprocess.PIPE, text=True)


def finish_loadgen(
    procs: Processes, proc: subprocess.Popen[Any], args: argparse.Namespace
) -> dict[str, Any]:
    """Wait for a loadgen.py process and parse the JSON line it printed last."""
    limit = args.warmup + args.duration + args.drain + 120
    try:
        out, _ = proc.communicate(timeout=limit)
    finally:
        procs.stop(proc)
    if proc.returncode != 0:
        raise RuntimeError(f"loadgen failed (exit {proc.returncode}): {proc.args!r}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def run_loadgen(
    procs: Processes,
    mode: str,
    url: str,
    label: str,
    args: argparse.Namespace,
    client: str = "python",
) -> dict[str, Any]:
    return finish_loadgen(procs, start_loadgen(procs, mode, url, label, args, client), args)


def bench_server(
    procs: Processes,
    name: str,
    cmd: Sequence[str],
    env: dict[str, str],
    port: int,
    log_path: Path,
    args: argparse.Namespace,
    results: TextIO | None,
) -> ServerResult:
    """Start one server, run prime/max/rate against it, stop it."""
    res = ServerResult(name)
    url = f"http://127.0.0.1:{port}{HOOK_PATH}"
    print(f"\n== {name}: {' '.join(cmd)}", file=sys.stderr, flush=True)
    with log_path.open("wb") as log:
        server = procs.start(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=log_path.parent
        )
    res.pid = server.pid
    try:
        wait_healthy(server, port, log_path)
        modes = (["prime"] if args.prime else []) + ["max", "rate"]
        for mode in modes:
            cpu: list[CpuUse] = []
            with cpu_meter(server.pid, cpu):
                run = run_loadgen(procs, mode, url, name, args, client=args.max_client)
            res.runs[mode] = run
            res.cpu[mode] = cpu[0]
            if results is not None:
                results.write(json.dumps({**run, "cpu_cores": vars(cpu[0])}) + "\n")
            if server.poll() is not None:
                raise RuntimeError(f"{name} died during {mode}:\n{_tail(log_path)}")
        if args.profile is not None and name == "puerta":
            profiled = profile_max_run(procs, server.pid, url, args)
            if profiled is not None:
                res.runs["profile"] = profiled
    finally:
        procs.stop(server)
    return res


# --------------------------------------------------------------------------------------------
# Profile (optional)
# --------------------------------------------------------------------------------------------


def profile_max_run(
    procs: Processes, pid: int, url: str, args: argparse.Namespace
) -> dict[str, Any] | None:
    """An extra max run, not in the table, with py-spy sampling Puerta (``--gil``: only the
    thread holding the GIL, i.e. where Python CPU time goes), then the hottest functions by own
    time. Kept out of the measured runs because sampling costs the server some CPU."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        print("--profile: py-spy not found (pip install py-spy); skipped", file=sys.stderr)
        return None
    out: Path = args.profile
    out.unlink(missing_ok=True)
    rate = 200
    seconds = max(1, round(args.duration) - 3)  # sample strictly inside the loaded period
    profiled = argparse.Namespace(**{**vars(args), "warmup": 0.0})
    load = start_loadgen(procs, "max", url, "puerta (profiled)", profiled, client=args.max_client)
    time.sleep(1.5)  # loadgen (and wrk) start-up
    spy = procs.start(
        [
            py_spy,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(seconds),
            "--rate",
            str(rate),
            "--gil",
            "--nonblocking",
            "--format",
            "raw",
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    run = finish_loadgen(procs, load, args)
    try:
        _out, err = spy.communicate(timeout=seconds + 30)
    finally:
        procs.stop(spy)
    if not out.exists():
        print(f"--profile: py-spy wrote nothing: {err.strip()}", file=sys.stderr)
    else:
        print_profile(out, args.profile_top, expected=rate * seconds)
    return run


_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")


def _where(file: str) -> str:
    """The package (or stdlib module) a frame belongs to. py-spy already prints files relative
    to their sys.path entry (``sqlalchemy/engine/base.py``, ``asyncio/runners.py``); full paths
    are trimmed at site-packages or src first."""
    file = _short(file)
    return file.split("/", 1)[0].removesuffix(".py")


def print_profile(folded: Path, top: int, expected: int) -> None:
    """Own time per function (the innermost frame of each sampled stack) and per package.
    ``expected`` is the number of samples had the GIL been held all the time."""
    own: Counter[str] = Counter()
    by_package: Counter[str] = Counter()
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        leaf = stack.split(";")[-1]
        match = _FRAME.match(leaf)
        if match:
            func, file = match["func"], match["file"]
            own[f"{func} ({_short(file)})"] += count
            by_package[_where(file)] += count
        else:
            own[leaf] += count
            by_package[leaf] += count
    if not total:
        print("profile: no samples", file=sys.stderr)
        return
    print(
        f"\nPuerta profile during a max run, GIL holder only: {total} samples of {expected} "
        f"(GIL held ~{min(100.0, 100 * total / expected):.0f}% of the time); "
        f"stacks in {folded}"
    )
    print(f"top {top} functions by own time:")
    for name, count in own.most_common(top):
        print(f"  {100 * count / total:5.1f}%  {name}")
    print("own time by package:")
    for name, count in by_package.most_common(8):
        print(f"  {100 * count / total:5.1f}%  {name}")


def _short(file: str) -> str:
    for marker in ("site-packages/", "/src/"):
        if marker in file:
            return file.split(marker, 1)[1]
    return re.sub(r"^.*/lib/python3\.\d+/", "", file)


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def audit_count(db_path: Path) -> int:
    with contextlib.closing(sqlite3.connect(db_path)) as db:
        row = db.execute("SELECT count(*) FROM audit_events").fetchone()
    return int(row[0])


def logged_answers(log_path: Path) -> int:
    with log_path.open(errors="replace") as log:
        return sum(1 for line in log if '"event": "hook answered"' in line)


def _ms(value: float) -> str:
    return f"{value:.2f}" if value < 1000 else f"{value:.0f}"


def print_report(
    results: list[ServerResult], args: argparse.Namespace, db_path: Path, log_path: Path
) -> dict[str, Any]:
    by_name = {r.name: r for r in results}
    print()
    print(
        f"POST {HOOK_PATH}, manual gate (403 wait + audit row), {args.canaries} canaries; "
        f"max: {args.connections} connections ({args.max_client}), {args.duration:g} s; "
        f"latencies in ms"
    )
    gap = " " * len(f"at {args.rate:g}/s: ")
    header = (
        f"{'server':<7} {'max req/s':>10} {'p50':>7} {'p99':>7} | at {args.rate:g}/s: "
        f"{'achieved':>8} {'p50':>7} {'p99':>7} {'p99.9':>7} | {'errors':>6} | "
        f"{'CPU: server':>11} {'other':>5}"
    )
    print(header)
    print("-" * len(header))
    for res in results:
        mx, rt = res.runs["max"], res.runs["rate"]
        errors = mx["error_count"] + rt["error_count"]
        cpu = res.cpu["max"]
        print(
            f"{res.name:<7} {mx['rps']:>10.1f} {_ms(mx['p50_ms']):>7} {_ms(mx['p99_ms']):>7} | "
            f"{gap}{rt['achieved_rps']:>8.1f} {_ms(rt['p50_ms']):>7} {_ms(rt['p99_ms']):>7} "
            f"{_ms(rt['p999_ms']):>7} | {errors:>6} | {cpu.server:>11.2f} {cpu.other:>5.2f}"
        )
    puerta, bare = by_name["puerta"], by_name["bare"]
    ratio = puerta.runs["max"]["rps"] / bare.runs["max"]["rps"]
    p99 = puerta.runs["rate"]["p99_ms"]
    achieved = puerta.runs["rate"]["achieved_rps"]
    print()
    print(
        f"ratio Puerta/bare (max req/s) = {ratio:.3f} (target >= {RATIO_TARGET:.2f})  "
        f"{'PASS' if ratio >= RATIO_TARGET else 'FAIL'}"
    )
    note = "" if achieved >= 0.98 * args.rate else f" (only {achieved:.0f}/s achieved: overloaded)"
    print(
        f"p99 at {args.rate:g}/s = {_ms(p99)} ms (target <= {P99_TARGET_MS:g} ms)  "
        f"{'PASS' if p99 <= P99_TARGET_MS else 'FAIL'}{note}"
    )

    rows = audit_count(db_path)
    logged = logged_answers(log_path)
    runs = puerta.runs.values()
    client = sum(r["answered_total"] for r in runs)
    exact = all(r["answered_total_exact"] for r in runs)
    if exact:
        consistent = rows == logged == client
        how = "all three equal"
    else:
        # wrk stops with up to `connections` requests in flight per wrk process (warm-up and
        # measured run); the server answers and records them, the client never counts them.
        slack = sum(2 * args.connections for r in runs if not r["answered_total_exact"])
        consistent = rows == logged and client <= rows <= client + slack
        how = (
            f"rows = log lines; rows - client answers = {rows - client}, at most {slack} "
            f"requests wrk left in flight"
        )
    print(
        f"audit rows written by Puerta: {rows}; hook-answered log lines: {logged}; "
        f"200/403 answers the client counted: {client}  "
        f"{'OK' if consistent else 'MISMATCH'} ({how})"
    )
    busy = max(r.cpu["max"].other for r in results)
    if busy > 0.25:
        print(
            f"warning: other processes used up to {busy:.2f} of the 2 cores during a max run; "
            f"numbers are lower than on a quiet machine"
        )
    return {
        "ratio": ratio,
        "p99_ms": p99,
        "audit_rows": rows,
        "log_lines": logged,
        "client_answers": client,
    }


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def _puerta_cmd() -> list[str]:
    script = Path(sys.executable).with_name("puerta")
    if script.exists():
        return [str(script)]
    found = shutil.which("puerta")
    return [found] if found else [sys.executable, "-m", "puerta"]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Puerta vs bare ASGI app on the hook path.")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument("--connections", type=int, default=32, help="max mode connections")
    parser.add_argument("--rate", type=float, default=500.0, help="rate mode requests/s")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds per run")
    parser.add_argument("--canaries", type=int, default=5000, help="distinct canaries, cycled")
    parser.add_argument(
        "--drain",
        type=float,
        default=60.0,
        help="rate mode: seconds allowed to answer the backlog after the schedule",
    )
    parser.add_argument(
        "--max-client",
        choices=["auto", "wrk", "python"],
        default="auto",
        help="max mode generator: wrk when installed (auto), else Python",
    )
    parser.add_argument(
        "--no-prime",
        dest="prime",
        action="store_false",
        help="skip calling every canary once before measuring",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="FILE",
        help="after the measured runs, profile Puerta with py-spy during an "
        "extra max run; folded stacks to FILE, top functions printed",
    )
    parser.add_argument("--profile-top", type=int, default=10)
    parser.add_argument(
        "--results",
        type=Path,
        metavar="FILE",
        help="also write every run's JSON (and the summary) to FILE",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (db, logs)")
    args = parser.parse_args(argv)
    if args.max_client == "auto":
        args.max_client = "wrk" if shutil.which("wrk") else "python"
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, raise_interrupt)
    tmp = Path(tempfile.mkdtemp(prefix="puerta-bench-"))
    db_path = tmp / "puerta.db"
    puerta_log = tmp / "puerta.log"
    procs = Processes()
    keep = args.keep
    results_file = args.results.open("w") if args.results else None
    started = dt.datetime.now(dt.UTC)
    print(
        f"puerta hook benchmark {started:%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}, temp dir {tmp}",
        file=sys.stderr,
    )
    try:
        bare_port = free_port()
        bare = bench_server(
            procs,
            "bare",
            [sys.executable, str(BARE_APP), "--port", str(bare_port)],
            dict(os.environ),
            bare_port,
            tmp / "bare.log",
            args,
            results_file,
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("PUERTA_")}
        env.update(
            PUERTA_DATABASE_URL=f"sqlite+aiosqlite:///{db_path}",
            PUERTA_LOG_LEVEL="info",
            PUERTA_LOG_FORMAT="json",
        )
        puerta_port = free_port()
        cmd = [
            *_puerta_cmd(),
            "serve",
            "--config",
            str(POLICY),
            "--host",
            "127.0.0.1",
            "--port",
            str(puerta_port),
        ]
        puerta = bench_server(
            procs, "puerta", cmd, env, puerta_port, puerta_log, args, results_file
        )
        summary = print_report([puerta, bare], args, db_path, puerta_log)
        if results_file is not None:
            results_file.write(
                json.dumps(
                    {
                        "summary": summary,
                        "date": started.isoformat(),
                        "args": {k: str(v) for k, v in vars(args).items()},
                    }
                )
                + "\n"
            )
        return 0
    except BaseException:
        keep = True  # the logs explain what went wrong
        raise
    finally:
        procs.stop_all()
        if results_file is not None:
            results_file.close()
        if keep:
            print(f"kept {tmp} (puerta.db, puerta.log, bare.log)", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; every started process was stopped", file=sys.stderr)
        sys.exit(130)
