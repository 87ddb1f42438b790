"""What one CI request costs Puerta in CPU: the CI runner alone, at its full budget.

Starts the scale benchmark's fake CI provider and one Puerta (SQLite file, the scale
benchmark's policy with its stress budget, 600 requests/min and burst 20, or ``--rpm`` and
``--burst``), records ``--runs`` E2E runs through
pre-rollout calls, lets the runner work for ``--skip`` seconds, then measures for
``--seconds``: Puerta's CPU time (``/proc``, all threads, and per thread), and the requests
the fake received. No hook calls meanwhile, so the CPU is the runner's (plus an idle
Puerta's ~0.004 cores). With 1,000 runs the measured stretch is all triggers; ``--skip 110``
measures polls.

    python bench/ci_runner_cpu.py [--runs 1000] [--skip 15] [--seconds 40] [--rpm 600 --burst 20]
        [--puerta-cmd CMD]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import scale_bench as sb  # bench/ is on sys.path: this runs as a script from there
from processes import Processes

_TICK = os.sysconf("SC_CLK_TCK")


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of each thread of ``pid`` ("main" for the event loop's)."""
    out: dict[str, float] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended
        out["main" if tid == str(pid) else tid] = (int(stat[11]) + int(stat[12])) / _TICK
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--skip", type=float, default=15.0)
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--puerta-cmd", default="")
    # by default the runner at ten requests a second (the scale benchmark's stress budget):
    # enough requests in the measured stretch for a steady figure per request; --rpm 60
    # --burst 10 measures the scale benchmark's default, one request per round
    parser.add_argument("--rpm", default="600", help="the provider's requests_per_minute")
    parser.add_argument("--burst", default="20", help="the provider's burst")
    args = parser.parse_args()
    budget = ["--rpm", args.rpm, "--burst", args.burst]
    scale_args = sb.parse_args(
        ["--sqlite", *budget, *(["--puerta-cmd", args.puerta_cmd] if args.puerta_cmd else [])]
    )
    tmp = Path(tempfile.mkdtemp(prefix="puerta-ci-cpu-"))
    procs = Processes()
    try:
        _, port = sb.start_fake_ci(procs, tmp)
        policy = sb.write_policy(tmp, port, scale_args)
        store = sb.Store("sqlite", f"sqlite:///{tmp / 'puerta.db'}", path=tmp / "puerta.db")
        canaries = max(args.runs, 1)
        running = sb.start_puerta(
            procs, "runner", store, policy, tmp, scale_args, canaries=canaries, runs=args.runs
        )
        pid = running.server.pid
        time.sleep(args.skip)
        before, hits_before, started = thread_cpu(pid), len(sb.fetch_ci_hits(port)), time.time()
        time.sleep(args.seconds)
        after, hits_after, ended = thread_cpu(pid), len(sb.fetch_ci_hits(port)), time.time()
        requests = hits_after - hits_before
        used = {name: after[name] - before.get(name, 0.0) for name in after}
        total = sum(used.values())
        busiest = sorted(used.items(), key=lambda item: -item[1])[:4]
        print(
            f"{requests} CI requests in {ended - started:.1f} s; Puerta CPU {total:.2f} s "
            f"({total / (ended - started):.3f} cores) = {1000 * total / max(requests, 1):.2f} "
            f"ms per request; by thread: "
            + ", ".join(f"{name} {1000 * cpu / max(requests, 1):.2f} ms" for name, cpu in busiest)
        )
        return 0
    finally:
        procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
