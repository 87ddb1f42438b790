"""``puerta delivery``: DORA's four keys per environment and canary, as a table people read in a
terminal (durations as "2h 5m", rates as percentages) or the API's JSON with ``--json``.

``--since`` takes a duration ("30d", "12h") as well as an ISO time, since "the last 30 days" is
what people ask for; a duration counts back from ``--until``, or from now.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Annotated, Any

import typer

from puerta.cli.common import DEFAULT_SERVER, ServerOpt, TokenOpt, call, print_table, split_canary
from puerta.clock import SystemClock
from puerta.domain.durations import format_duration, parse_duration

HEADER = [
    "CANARY",
    "DEPLOYS",
    "PER DAY",
    "LEAD TIME p50",
    "LEAD TIME p90",
    "CHANGE FAILURE",
    "RESTORE p50",
    "UNRESTORED",
]


def _usage(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def _instant(option: str, text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise _usage(
            f"{option}: {text!r} is neither an ISO time nor a duration; "
            "write e.g. 2026-11-01T00:00+02:00 or 30d"
        ) from None
    if value.tzinfo is None:
        raise _usage(f"{option}: give a time zone, e.g. {text}+02:00 or {text}Z")
    return value


def resolve_period(
    since: str | None, until: str | None, now: datetime
) -> tuple[datetime | None, datetime | None]:
    """The instants to send (None: the server's default). A duration ``since`` counts back from
    ``until``, else from ``now``."""
    end = _instant("--until", until) if until is not None else None
    if since is None:
        return None, end
    try:
        back = parse_duration(since)
    except ValueError:
        return _instant("--since", since), end
    if back <= timedelta(0):
        raise _usage("--since: a duration must be longer than 0s")
    return (end or now) - back, end


def _safe(value: Any) -> str:
    """One printable line: names come from the cluster and must not drive the terminal."""
    text = "" if value is None else str(value)
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def _duration(seconds: float | None) -> str:
    return "-" if seconds is None else format_duration(timedelta(seconds=seconds))


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def _cells(label: str, figures: dict[str, Any]) -> list[str]:
    return [
        label,
        str(figures["deployments"]),
        f"{figures['deployments_per_day']:.2f}",
        _duration(figures["lead_time_median_seconds"]),
        _duration(figures["lead_time_p90_seconds"]),
        _rate(figures["change_failure_rate"]),
        _duration(figures["time_to_restore_median_seconds"]),
        str(figures["unrestored"]),
    ]


def _environment_label(environment: str | None) -> str:
    return "(no environment)" if environment is None else _safe(environment)


def print_report(data: dict[str, Any]) -> None:
    """One table per environment, its canaries then its total."""
    period = f"{data['since'][:16]} to {data['until'][:16]} ({data['days']:.3g} days)"
    if not data["environments"]:
        typer.echo(f"no rollout succeeded or failed from {period}")
        return
    for index, env in enumerate(data["environments"]):
        if index:
            typer.echo("")
        environment = env["environment"]
        typer.echo(f"{_environment_label(environment)}: {period}")
        rows = [HEADER]
        for group in data["groups"]:
            if group["environment"] == environment:
                canary = f"{_safe(group['namespace'])}/{_safe(group['name'])}"
                rows.append(_cells(canary, group))
        count = env["canaries"]
        rows.append(_cells(f"TOTAL ({count} {'canary' if count == 1 else 'canaries'})", env))
        print_table(rows)


def delivery(
    environment: Annotated[str | None, typer.Option(help="only this environment")] = None,
    canary: Annotated[str | None, typer.Option(help="only this canary: NAMESPACE/NAME")] = None,
    since: Annotated[
        str | None,
        typer.Option(help="start: an ISO time with zone, or a duration back from --until (30d)"),
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="end (excluded): an ISO time with zone (default: now)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the API's JSON")] = False,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
) -> None:
    """Delivery figures (DORA): deployments, lead time, change failure rate, time to restore,
    per environment and canary (default: the last 30 days)."""
    params: dict[str, str] = {}
    if environment is not None:
        params["environment"] = environment
    if canary is not None:
        params["namespace"], params["name"] = split_canary(canary)
    start, end = resolve_period(since, until, SystemClock().now())
    if start is not None:
        params["since"] = start.isoformat()
    if end is not None:
        params["until"] = end.isoformat()
    data = call(server, token, "GET", "/api/v1/delivery", params=params)
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    print_report(data)
