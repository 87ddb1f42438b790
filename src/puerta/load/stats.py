"""Counting what a load run saw, in flat memory, and the snapshot it reports.

Latencies go into a log-linear histogram (the HdrHistogram idea): a rollout may run an hour at
1,000 requests/s, 3.6 million samples, and the memory must not grow with them. Every recorded
latency is an integer number of microseconds; values below 256 µs are kept exactly, larger ones
fall in buckets 1/128 of a power of two wide, and a percentile is reported as the middle of
its bucket. So a reported percentile is within 0.4% (1/256) of a latency some request really
had, plus the microsecond rounding. Buckets up to one hour take about 3,300 integers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Final

__all__ = ["ERROR_KINDS", "RATE_ERROR_KINDS", "LatencyHistogram", "LoadStats", "StatsRecorder"]

#: Every error kind, in the order the summary lists them.
#: ``timeout``: no complete answer within the spec's timeout (connecting included).
#: ``connect``: no connection (refused, unreachable, DNS, TLS handshake).
#: ``read``: the connection broke or the answer was not valid HTTP.
#: ``http_5xx`` / ``http_4xx``: complete answers with those statuses.
#: ``dropped``: a scheduled request never sent because every connection stayed busy until it
#: was more than the backlog behind schedule, or the load window ended first.
ERROR_KINDS: Final = ("timeout", "connect", "read", "http_5xx", "http_4xx", "dropped", "other")
#: The kinds that count in ``error_rate``. A 4xx is reported but is not an error of the
#: canary: it usually means the load itself is wrong (path, auth), which the operator must
#: see, but which a rollback would not fix.
RATE_ERROR_KINDS: Final = frozenset(ERROR_KINDS) - {"http_4xx"}

_SUB_BITS: Final = 7  # 128 sub-buckets per power of two
_EXACT_LIMIT: Final = 1 << (_SUB_BITS + 1)  # values below this (256 µs) have their own bucket
_MAX_US: Final = 3600 * 1_000_000  # latencies above an hour are recorded as an hour


def _bucket(value: int) -> int:
    """Bucket index of a value in microseconds (monotonic in the value)."""
    if value < _EXACT_LIMIT:
        return value
    shift = value.bit_length() - (_SUB_BITS + 1)
    return (shift << _SUB_BITS) + (value >> shift)


def _bucket_bounds(index: int) -> tuple[int, int]:
    """[low, high) of the values in a bucket."""
    if index < _EXACT_LIMIT:
        return index, index + 1
    shift = (index >> _SUB_BITS) - 1
    top = index - (shift << _SUB_BITS)
    return top << shift, (top + 1) << shift


class LatencyHistogram:
    """Latencies in microseconds, log-linear buckets, constant memory (see the module doc)."""

    __slots__ = ("_counts", "count", "max_us", "min_us")

    def __init__(self) -> None:
        self._counts: list[int] = []
        self.count = 0
        self.min_us = 0
        self.max_us = 0

    def record(self, seconds: float) -> None:
        value = int(seconds * 1_000_000 + 0.5)
        if value < 0:
            value = 0  # the clock cannot go backwards, but be safe
        elif value > _MAX_US:
            value = _MAX_US
        index = value if value < _EXACT_LIMIT else _bucket(value)
        counts = self._counts
        if index >= len(counts):
            counts.extend([0] * (index + 1 - len(counts)))
        counts[index] += 1
        if self.count == 0 or value < self.min_us:
            self.min_us = value
        if value > self.max_us:
            self.max_us = value
        self.count += 1

    def percentiles(self, *pcts: float) -> list[float | None]:
        """Nearest-rank percentiles in milliseconds (None when nothing was recorded).

        Nearest rank, not interpolation: p99 is (within the bucket precision) a latency that
        some request really had. Values are clamped to the exact minimum and maximum.
        """
        total = self.count
        if total == 0:
            return [None for _ in pcts]
        counts = list(self._counts)  # a copy: consistent even if called from another thread
        ranks = [max(1, math.ceil(p / 100 * total)) for p in pcts]
        order = sorted(range(len(ranks)), key=ranks.__getitem__)
        results: list[float | None] = [None] * len(ranks)
        seen = 0
        index = 0
        for position in order:
            rank = ranks[position]
            while index < len(counts) and seen + counts[index] < rank:
                seen += counts[index]
                index += 1
            if index >= len(counts):  # only possible if counts was copied mid-update
                value = float(self.max_us)
            else:
                low, high = _bucket_bounds(index)
                value = low if high - low == 1 else (low + high - 1) / 2
                value = min(max(value, self.min_us), self.max_us)
            results[position] = value / 1000
        return results

    @property
    def max_ms(self) -> float | None:
        return self.max_us / 1000 if self.count else None


@dataclass(frozen=True)
class LoadStats:
    """A snapshot of one load run: live while it runs, final once ``run()`` returned.

    Counting (every request ends in exactly one of these)::

        sent = completed + timeout + connect + read + other + in_flight + abandoned
        scheduled outcomes = completed + timeout + connect + read + other + dropped

    ``completed``: answers received, whatever their status (see ``status_counts``).
    ``error_rate`` = (errors of the kinds in ``RATE_ERROR_KINDS``: transport failures, 5xx
    answers, dropped) / (completed + transport failures + dropped), i.e. the share of requests
    whose outcome is known that went wrong; 4xx answers are listed but are not errors.
    ``achieved_rps`` = completed / ``elapsed_s``, where ``elapsed_s`` is the load window: from
    the start to now while running, to the end of the window (duration or stop) once finished.
    Latencies (p50/p95/p99/max, ms) are those of completed requests, measured from each one's
    *scheduled* send time to the end of its answer (in closed loop the schedule is "now").
    """

    started_at: datetime
    elapsed_s: float
    sent: int
    completed: int
    achieved_rps: float
    status_counts: dict[str, int]
    errors: dict[str, int]
    error_rate: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    rate: float | None = None
    concurrency: int = 0
    in_flight: int = 0
    abandoned: int = 0
    finished: bool = False

    def as_dict(self) -> dict[str, object]:
        """JSON-serialisable (datetime as ISO 8601, ms rounded to the microsecond)."""
        return {
            "started_at": self.started_at.isoformat(),
            "elapsed_s": round(self.elapsed_s, 6),
            "rate": self.rate,
            "concurrency": self.concurrency,
            "sent": self.sent,
            "completed": self.completed,
            "achieved_rps": round(self.achieved_rps, 3),
            "status_counts": dict(self.status_counts),
            "errors": dict(self.errors),
            "error_rate": self.error_rate,
            "p50_ms": _round_ms(self.p50_ms),
            "p95_ms": _round_ms(self.p95_ms),
            "p99_ms": _round_ms(self.p99_ms),
            "max_ms": _round_ms(self.max_ms),
            "in_flight": self.in_flight,
            "abandoned": self.abandoned,
            "finished": self.finished,
        }

    def summary(self) -> str:
        """One line for a Flagger 403 reason or a notification, e.g. ``498.7 req/s of 500,
        errors 0.4% (timeout 3, http_5xx 12), p50 12 ms, p95 40 ms, p99 95 ms``."""
        if self.rate is None:
            head = f"{self.achieved_rps:.1f} req/s (max, {self.concurrency} connections)"
        else:
            head = f"{self.achieved_rps:.1f} req/s of {self.rate:g}"
        counted = [(k, n) for k, n in self.errors.items() if n and k in RATE_ERROR_KINDS]
        parts = [head, f"errors {_percent(self.error_rate)}"]
        if counted:
            parts[-1] += " (" + ", ".join(f"{k} {n}" for k, n in counted) + ")"
        if self.errors.get("http_4xx"):
            parts.append(f"4xx {self.errors['http_4xx']}")
        parts.append(f"p50 {_ms(self.p50_ms)}, p95 {_ms(self.p95_ms)}, p99 {_ms(self.p99_ms)}")
        return ", ".join(parts)


def _round_ms(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _percent(ratio: float) -> str:
    if ratio == 0:
        return "0%"
    if ratio < 0.001:
        return f"{ratio * 100:.2f}%"
    return f"{ratio * 100:.1f}%"


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 10:
        return f"{value:.1f} ms"
    return f"{value:.0f} ms"


class StatsRecorder:
    """The mutable counters behind LoadStats, updated on the event loop with plain integer
    arithmetic (nothing in the per-request path allocates beyond a dict update)."""

    __slots__ = (
        "abandoned",
        "completed",
        "errors",
        "histogram",
        "in_flight",
        "sent",
        "statuses",
    )

    def __init__(self) -> None:
        self.sent = 0
        self.completed = 0
        self.in_flight = 0
        self.abandoned = 0
        self.statuses: dict[int, int] = {}
        self.errors: dict[str, int] = dict.fromkeys(ERROR_KINDS, 0)
        self.histogram = LatencyHistogram()

    def answer(self, status: int, latency_s: float) -> None:
        self.completed += 1
        statuses = self.statuses
        statuses[status] = statuses.get(status, 0) + 1
        if status >= 500:
            self.errors["http_5xx"] += 1
        elif status >= 400:
            self.errors["http_4xx"] += 1
        self.histogram.record(latency_s)

    def error(self, kind: str, count: int = 1) -> None:
        self.errors[kind] += count

    def snapshot(
        self,
        *,
        started_at: datetime,
        elapsed_s: float,
        rate: float | None,
        concurrency: int,
        finished: bool,
    ) -> LoadStats:
        errors = dict(self.errors)
        statuses = dict(self.statuses)
        failed = sum(errors[k] for k in ("timeout", "connect", "read", "dropped", "other"))
        outcomes = self.completed + failed
        counted = sum(n for k, n in errors.items() if k in RATE_ERROR_KINDS)
        p50, p95, p99 = self.histogram.percentiles(50, 95, 99)
        return LoadStats(
            started_at=started_at,
            elapsed_s=elapsed_s,
            sent=self.sent,
            completed=self.completed,
            achieved_rps=self.completed / elapsed_s if elapsed_s > 0 else 0.0,
            status_counts={str(code): statuses[code] for code in sorted(statuses)},
            errors={k: n for k, n in errors.items() if n},
            error_rate=counted / outcomes if outcomes else 0.0,
            p50_ms=p50,
            p95_ms=p95,
            p99_ms=p99,
            max_ms=self.histogram.max_ms,
            rate=rate,
            concurrency=concurrency,
            in_flight=self.in_flight,
            abandoned=self.abandoned,
            finished=finished,
        )
