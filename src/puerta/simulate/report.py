"""The simulation for people (an aligned timeline and a summary table, in the environment's
time zone) and for machines (one JSON document with the same facts, instants in UTC)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from puerta.domain.durations import format_duration
from puerta.simulate.result import CanaryResult, Outcome, SimulationResult
from puerta.simulate.timeline import Entry

_OUTCOME_TEXT = {
    Outcome.SUCCEEDED: "succeeded",
    Outcome.FAILED: "failed",
    Outcome.WAITING: "still waiting",
    Outcome.PROGRESSING: "still progressing",
}


def local(moment: datetime, zone: ZoneInfo) -> str:
    """``Sun 2026-11-29 09:00 IST``."""
    return f"{moment.astimezone(zone):%a %Y-%m-%d %H:%M %Z}"


def _utc(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# ---- text ----------------------------------------------------------------------------------


def render_text(result: SimulationResult, *, manifest: str, policy: str) -> str:
    zone = result.zone
    count = len(result.canaries)
    lines = [
        f"puerta simulate: {count} canar{'y' if count == 1 else 'ies'} from {manifest}, "
        f"policy {policy}",
        f"simulated clock: {local(result.start, zone)} until {local(result.horizon, zone)} at "
        f"the latest ({format_duration(result.horizon - result.start)}); times in {zone.key}",
        "dry run: Puerta runs in this process on a scratch database; nothing else is called",
    ]
    lines += [f"note: {note}" for note in result.notes]
    lines.append("")
    lines += _timeline(result.timeline.entries, zone)
    lines.append("")
    lines += _table(
        [["CANARY", "ENVIRONMENT", "ARRIVED", "RELEASED", "PROMOTED", "WAITED", "OUTCOME"]]
        + [_summary_row(c, zone) for c in result.canaries]
    )
    lines.append("")
    lines.append(f"result: {_tally(result.canaries)} (exit {int(result.exit_code)})")
    return "\n".join(lines)


def _timeline(entries: list[Entry], zone: ZoneInfo) -> list[str]:
    if not entries:
        return []
    canary_width = max(len(e.canary) for e in entries)
    kind_width = max(len(e.kind) for e in entries)
    status_width = max(len(e.status) for e in entries)
    lines = []
    for entry in entries:
        head = (
            f"{local(entry.at, zone)}  {entry.canary:<{canary_width}}  "
            f"{entry.kind:<{kind_width}}  {entry.status:<{status_width}}  "
        )
        lines.append(head + entry.text)
        indent = " " * len(head)
        if entry.repeats and entry.last_at is not None:
            polls = "poll" if entry.repeats == 1 else "polls"
            lines.append(
                f"{indent}(same answer at {entry.repeats} more {polls} until "
                f"{local(entry.last_at, zone)})"
            )
        lines += [f"{indent}(dry run) {effect}" for effect in entry.effects]
    return lines


def _summary_row(result: CanaryResult, zone: ZoneInfo) -> list[str]:
    def when(moment: datetime | None) -> str:
        return local(moment, zone) if moment is not None else "-"

    return [
        result.canary,
        result.environment or "-",
        when(result.arrived),
        when(result.released),
        when(result.promoted),
        format_duration(result.waited),
        f"{_OUTCOME_TEXT[result.outcome]}: {result.reason}",
    ]


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]


def _tally(canaries: list[CanaryResult]) -> str:
    counts = [
        f"{sum(c.outcome is outcome for c in canaries)} {text}"
        for outcome, text in _OUTCOME_TEXT.items()
        if any(c.outcome is outcome for c in canaries)
    ]
    return ", ".join(counts)


# ---- JSON ----------------------------------------------------------------------------------


def render_json(result: SimulationResult, *, manifest: str, policy: str) -> str:
    document: dict[str, Any] = {
        "manifest": manifest,
        "policy": policy,
        "start": _utc(result.start),
        "horizon": _utc(result.horizon),
        "timezone": result.zone.key,
        "exit_code": int(result.exit_code),
        "notes": result.notes,
        "canaries": [_canary_json(c) for c in result.canaries],
        "events": [_entry_json(e) for e in result.timeline.entries],
    }
    return json.dumps(document, indent=2)


def _canary_json(result: CanaryResult) -> dict[str, Any]:
    return {
        "canary": result.canary,
        "environment": result.environment,
        "outcome": result.outcome.value,
        "reason": result.reason,
        "arrived": _utc(result.arrived),
        "released": _utc(result.released),
        "promoted": _utc(result.promoted),
        "finished": _utc(result.finished),
        "waited_seconds": int(result.waited.total_seconds()),
    }


def _entry_json(entry: Entry) -> dict[str, Any]:
    body: dict[str, Any] = {
        "at": _utc(entry.at),
        "canary": entry.canary,
        "kind": entry.kind,
        "status": entry.status or None,
        "text": entry.text,
    }
    if entry.is_call:
        body.update(
            webhook=entry.webhook,
            endpoint=entry.endpoint,
            phase=entry.phase,
            checksum=entry.checksum,
            http_status=entry.http_status,
            repeats=entry.repeats,
            last_at=_utc(entry.last_at),
            effects=list(entry.effects),
        )
    return body
