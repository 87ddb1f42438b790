"""Benchmark of Puerta's built-in load generator (``puerta.load``) against Debian's ``hey``.

One run, one local target (nginx serving a small static file, one worker, no access log):

1. fixed rates, 200, 500 and 1,000 requests/s (10 s each, 10 connections): the achieved rate
   must be within ±5% of the configured one;
2. the maximum rate, closed loop, at the same concurrency (50 connections, 10 s each) for
   Puerta's generator and for ``hey -z 10s -c 50``, alternating, several rounds; the ratio
   Puerta/hey must be at least 0.5.

Puerta's generator runs in its own process (this script with ``--child``), on uvloop as inside
``puerta serve``, so it is measured alone and not beside the harness. Every process started
(nginx, hey, the generator) is stopped at the end, on error and on Ctrl-C or SIGTERM.

Needs ``apt-get install -y nginx-light hey``. The exit status is 0 whatever the numbers (it is a
measurement), 2 if a tool is missing, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from processes import Processes, free_port, raise_interrupt

RATES = (200, 500, 1000)
RATE_TOLERANCE = 0.05
RATIO_TARGET = 0.5
#: The file nginx serves: a small body, like a health or ping endpoint of a canary.
BODY = b'{"status":"ok","service":"podinfo","version":"6.5.0"}\n'
_CLK_TCK = os.sysconf("SC_CLK_TCK")

NGINX_CONF = """\
worker_processes 1;
daemon off;
master_process on;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nodelay on;
    keepalive_requests 10000000;
    keepalive_timeout 75s;
    open_file_cache max=16;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    default_type application/json;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {tmp}/www;
    }}
}}
"""


# --------------------------------------------------------------------------------------------
# The child: Puerta's generator, alone in its process
# --------------------------------------------------------------------------------------------


def child(url: str, rate: float | None, concurrency: int, seconds: float) -> None:
    """Run one load and print its stats (plus the process's CPU time) as JSON."""
    import uvloop

    from puerta.load import LoadGenerator, LoadSpec

    async def main() -> dict[str, Any]:
        spec = LoadSpec(
            url=url,
            rate=rate,
            concurrency=concurrency,
            duration=dt.timedelta(seconds=seconds),
        )
        cpu = time.process_time()
        stats = await LoadGenerator(spec).run()
        result = stats.as_dict()
        result["cpu_s"] = time.process_time() - cpu
        result["summary"] = stats.summary()
        return result

    print(json.dumps(uvloop.run(main())))


# --------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# The target
# --------------------------------------------------------------------------------------------


def start_nginx(procs: Processes, nginx: str, tmp: Path) -> tuple[subprocess.Popen[Any], str]:
    port = free_port()
    tmp.chmod(0o755)  # nginx's worker runs as www-data when the master is root: let it read
    (tmp / "www").mkdir(mode=0o755)
    (tmp / "www" / "index.json").write_bytes(BODY)
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, port=port))
    proc = procs.start(
        [nginx, "-p", str(tmp), "-e", str(tmp / "error.log"), "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/index.json"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"nginx exited with {proc.returncode}: see {tmp / 'error.log'}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1) as s:
            s.sendall(b"GET /index.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            if s.recv(64).startswith(b"HTTP/1.1 200"):
                return proc, url
        time.sleep(0.05)
    raise RuntimeError("nginx did not answer within 10 s")


def group_cpu_s(pgid: int) -> float:
    """CPU seconds (user + system) of every process in a process group (nginx's)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields[0] is the state; [2] the process group
            total += int(fields[11]) + int(fields[12])
    return total / _CLK_TCK


def children_cpu_s() -> float:
    """CPU seconds of this script's finished children (``hey``, once waited for)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# --------------------------------------------------------------------------------------------
# The runs
# --------------------------------------------------------------------------------------------


def run_generator(
    procs: Processes, url: str, rate: float | None, concurrency: int, seconds: float
) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", "--url", url]
    cmd += ["--concurrency", str(concurrency), "--seconds", str(seconds)]
    if rate is not None:
        cmd += ["--rate", str(rate)]
    result: dict[str, Any] = json.loads(procs.run(cmd, limit_s=seconds + 60).splitlines()[-1])
    return result


def run_hey(procs: Processes, hey: str, url: str, concurrency: int, seconds: float) -> float:
    out = procs.run(
        [hey, "-z", f"{seconds:g}s", "-c", str(concurrency), "-disable-compression", url],
        limit_s=seconds + 60,
    )
    match = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    if match is None:
        raise RuntimeError(f"no Requests/sec in hey's output:\n{out}")
    statuses = re.search(r"Status code distribution:\s+((?:\s*\[\d+\]\s+\d+ responses)+)", out)
    if statuses is None or re.findall(r"\[(\d+)\]", statuses.group(1)) != ["200"]:
        print(f"  note: hey saw answers other than 200:\n{out}", file=sys.stderr)
    return float(match.group(1))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        child(args.url, args.rate, args.concurrency, args.seconds)
        return 0
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    hey = shutil.which("hey")
    if nginx is None or hey is None:
        print("needs nginx and hey: apt-get install -y nginx-light hey", file=sys.stderr)
        return 2
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, raise_interrupt)
    procs = Processes()
    tmp = Path(tempfile.mkdtemp(prefix="puerta-load-bench-"))
    started = dt.datetime.now(dt.UTC)
    results: dict[str, Any] = {"date": started.isoformat(), "rates": [], "max": []}
    try:
        server, url = start_nginx(procs, nginx, tmp)
        version = subprocess.run([nginx, "-v"], capture_output=True, text=True).stderr.strip()
        print(
            f"Puerta load generator benchmark, {started:%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs,"
            f" load average {os.getloadavg()[0]:.2f}\ntarget: {version.split(': ')[-1]},"
            f" 1 worker, static {len(BODY)}-byte file, {url}\n"
        )
        print(
            f"fixed rates: {args.rate_concurrency} connections, {args.seconds:g} s each,"
            f" target ±{RATE_TOLERANCE:.0%} (latency from the scheduled send time)"
        )
        print(
            f"{'rate/s':>7} {'achieved/s':>11} {'deviation':>9} {'answers':>8} {'errors':>6}"
            f" {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'gen CPU':>8}  result"
        )
        all_pass = True
        for rate in args.rates:
            stats = run_generator(procs, url, rate, args.rate_concurrency, args.seconds)
            deviation = stats["achieved_rps"] / rate - 1
            ok = abs(deviation) <= RATE_TOLERANCE and not stats["errors"]
            all_pass &= ok
            cpu = stats["cpu_s"] / stats["elapsed_s"]
            print(
                f"{rate:>7} {stats['achieved_rps']:>11.1f} {deviation:>+9.2%}"
                f" {stats['completed']:>8} {sum(stats['errors'].values()):>6}"
                f" {stats['p50_ms']:>7.2f} {stats['p99_ms']:>7.2f} {stats['max_ms']:>7.2f}"
                f" {cpu:>8.1%}  {'PASS' if ok else 'FAIL'}"
            )
            results["rates"].append(stats)
        print(
            f"\nmax rate (closed loop), {args.concurrency} connections, {args.seconds:g} s each,"
            f" {args.rounds} rounds alternating; CPU: the client's and nginx's, in cores"
        )
        print(
            f"{'round':>5} {'puerta req/s':>13} {'CPU':>5} {'nginx':>6} {'p99 ms':>7}"
            f" {'hey req/s':>10} {'CPU':>5} {'nginx':>6} {'ratio':>6}"
        )
        ratios = []
        for round_no in range(1, args.rounds + 1):
            cpu0 = group_cpu_s(server.pid)
            ours = run_generator(procs, url, None, args.concurrency, args.seconds)
            cpu1 = group_cpu_s(server.pid)
            hey0 = children_cpu_s()
            theirs = run_hey(procs, hey, url, args.concurrency, args.seconds)
            hey_cpu = (children_cpu_s() - hey0) / args.seconds
            cpu2 = group_cpu_s(server.pid)
            ratio = ours["achieved_rps"] / theirs
            ratios.append(ratio)
            print(
                f"{round_no:>5} {ours['achieved_rps']:>13.1f} {ours['cpu_s'] / args.seconds:>5.2f}"
                f" {(cpu1 - cpu0) / args.seconds:>6.2f} {ours['p99_ms']:>7.2f} {theirs:>10.1f}"
                f" {hey_cpu:>5.2f} {(cpu2 - cpu1) / args.seconds:>6.2f} {ratio:>6.2f}"
            )
            results["max"].append({"puerta": ours, "hey_rps": theirs, "ratio": ratio})
        median = statistics.median(ratios)
        print(
            f"\nfixed rates within ±{RATE_TOLERANCE:.0%}: {'PASS' if all_pass else 'FAIL'}"
            f"\nratio puerta/hey at {args.concurrency} connections: median {median:.2f}"
            f" (min {min(ratios):.2f}, max {max(ratios):.2f}; target >= {RATIO_TARGET})"
            f"  {'PASS' if median >= RATIO_TARGET else 'FAIL'}"
        )
        if args.results:
            args.results.write_text(json.dumps(results, indent=2) + "\n")
        return 0
    finally:
        procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each run")
    parser.add_argument("--rates", type=int, nargs="+", default=list(RATES))
    parser.add_argument("--rate-concurrency", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=50, help="for the max-rate runs")
    parser.add_argument("--rounds", type=int, default=3, help="max-rate rounds (each: us, hey)")
    parser.add_argument("--results", type=Path, help="write every run's stats as JSON here")
    # the child process (internal)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted; every started process was stopped", file=sys.stderr)
        sys.exit(130)
