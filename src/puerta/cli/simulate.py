"""``puerta simulate``: what would Flagger and Puerta do with these canaries under this policy?

Platform teams run it in CI on a policy change before it reaches the cluster. Exit status:
0 every canary succeeded, 1 one was rolled back, 3 one still waits (or progresses) when the
simulated clock stops, 2 the input is unusable (missing file, not YAML, no Canary, invalid
policy).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog
import typer

from puerta.domain.durations import parse_duration
from puerta.errors import ConfigError
from puerta.simulate.result import ExitCode


def _bad_input(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(int(ExitCode.BAD_INPUT))


def _parse_start(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC).replace(second=0, microsecond=0)
    try:
        start = datetime.fromisoformat(text)
    except ValueError:
        raise _bad_input(
            f"--start: {text!r} is not an ISO time; write e.g. 2026-11-27T14:00+02:00"
        ) from None
    if start.tzinfo is None:
        raise _bad_input(f"--start: give a time zone, e.g. {text}+02:00 or {text}Z")
    return start


def _parse_duration(option: str, text: str) -> timedelta:
    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise _bad_input(f"{option}: {exc}") from None
    if value <= timedelta(0):
        raise _bad_input(f"{option}: must be longer than 0s")
    return value


def _parse_zone(text: str | None) -> ZoneInfo | None:
    if text is None:
        return None
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise _bad_input(f"--tz: unknown time zone {text!r}; write e.g. Asia/Jerusalem") from None


def simulate(
    manifest: Annotated[
        Path,
        typer.Argument(help="Flagger Canary manifest (one or more YAML documents)"),
    ],
    policy: Annotated[
        Path, typer.Option("--policy", "-p", envvar="PUERTA_CONFIG", help="policy file")
    ],
    start: Annotated[
        str | None,
        typer.Option(
            help="when the new revisions arrive, ISO time with zone, e.g. "
            "2026-11-27T14:00+02:00 (default: now)"
        ),
    ] = None,
    approve_after: Annotated[
        str | None,
        typer.Option(
            help="approve a manual gate once it has waited this long, e.g. 30m "
            "(default: nobody approves)"
        ),
    ] = None,
    max_duration: Annotated[
        str, typer.Option(help="stop the simulated clock after this long")
    ] = "14d",
    tz: Annotated[
        str | None,
        typer.Option("--tz", help="time zone of the timeline (default: the environment's, or UTC)"),
    ] = None,
    output: Annotated[str, typer.Option("--format", help="text or json")] = "text",
) -> None:
    """Walk the webhook calls Flagger would make for the canaries against the policy, on a
    simulated clock and without side effects, and print the timeline.

    Exit 0: all succeeded; 1: one was rolled back; 3: one still waits at the end; 2: bad input.
    """
    from puerta.policy import load_policy
    from puerta.simulate import (
        ManifestError,
        Simulation,
        SimulationOptions,
        load_manifest,
        render_json,
        render_text,
    )

    if output not in ("text", "json"):
        raise _bad_input(f"--format must be text or json, got {output!r}")
    options = SimulationOptions(
        start=_parse_start(start),
        max_duration=_parse_duration("--max-duration", max_duration),
        approve_after=_parse_duration("--approve-after", approve_after) if approve_after else None,
        zone=_parse_zone(tz),
    )
    try:
        canaries = load_manifest(manifest)
    except ManifestError as exc:
        for problem in exc.problems:
            typer.echo(problem, err=True)
        raise typer.Exit(int(ExitCode.BAD_INPUT)) from None
    try:
        compiled = load_policy(policy)
    except ConfigError as exc:
        for problem in exc.problems:
            typer.echo(problem, err=True)
        raise typer.Exit(int(ExitCode.BAD_INPUT)) from None

    # Puerta logs every hook call; in a simulation the timeline says it all.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    result = Simulation(canaries, compiled, policy, options).run()
    render = render_json if output == "json" else render_text
    typer.echo(render(result, manifest=str(manifest), policy=str(policy)))
    raise typer.Exit(int(result.exit_code))
