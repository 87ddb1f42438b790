"""``puerta e2e``: the E2E runs Puerta triggered on CI, for the person asking "did the tests run
for this rollout, where are they, and why did they fail?" without opening the database or
guessing which CI project to look in.

Text that came from a CI provider (reasons, job names, links) is printed on one line with
control characters escaped: a job name must not be able to move the cursor or recolour the
terminal of whoever reads it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from puerta.cli.common import (
    DEFAULT_SERVER,
    ServerOpt,
    TokenOpt,
    call,
    fetch_page,
    print_table,
)

e2e_app = typer.Typer(help="E2E runs on CI triggered by e2e gates.", no_args_is_help=True)

#: the statuses the API filters on (pending: not triggered yet; abandoned: a new revision
#: replaced the rollout)
STATUSES = ("pending", "queued", "running", "succeeded", "failed", "canceled", "abandoned")
ACTIVE = ("pending", "queued", "running")
_MAX_RUN_ID = 2**31 - 1  # the API's bound; larger ids are a usage error here, not a 422 there


def _text(value: Any) -> str:
    """A value as one safe line: ``-`` for nothing, line breaks as spaces, other control
    characters escaped (``\\x1b``) so provider text cannot drive the terminal."""
    if value is None or value == "":
        return "-"
    out = []
    for ch in str(value):
        if ch.isprintable():
            out.append(ch)
        elif ch in "\r\n\t":
            out.append(" ")
        else:
            out.append(repr(ch)[1:-1])
    return "".join(out)


def _when(moment: str | None) -> str:
    """An API timestamp (UTC, ISO) to the second, as ``puerta audit`` prints them."""
    return moment[:19] if moment else "-"


def _age(moment: str, now: datetime) -> str:
    """How long ago, coarse enough to read at a glance: ``45s``, ``12m``, ``3h05m``, ``2d4h``."""
    seconds = max(0, int((now - datetime.fromisoformat(moment)).total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 3600:
        return f"{minutes}m"
    if seconds < 86400:
        return f"{hours}h{minutes % 60:02d}m"
    return f"{days}d{hours % 24}h"


def _age_or_finished(run: dict[str, Any], now: datetime) -> str:
    """A run under way: how long since Puerta recorded it; a finished one: when it ended."""
    if run["status"] in ACTIVE or not run.get("finished_at"):
        return f"{_age(run['created_at'], now)} ago"
    return _when(run["finished_at"])


@e2e_app.command("runs")
def runs(
    canary: Annotated[str | None, typer.Argument(help="NAMESPACE/NAME (default: all)")] = None,
    status: Annotated[
        str | None, typer.Option(help=f"only runs in this status: {', '.join(STATUSES)}")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="at most this many runs")] = 50,
    offset: Annotated[int, typer.Option(min=0, help="skip this many (the next page)")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="print the API's JSON")] = False,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
) -> None:
    """List E2E runs, newest first: canary, rollout, gate, provider, status and link."""
    data = fetch_page(
        server,
        token,
        "/api/v1/ci/runs",
        canary=canary,
        status=status,
        statuses=STATUSES,
        limit=limit,
        offset=offset,
    )
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    found: list[dict[str, Any]] = data["runs"]
    if not found:
        typer.echo("no E2E runs" + (f" (of {data['total']})" if data["total"] else ""))
        return
    now = datetime.now(UTC)
    rows = [
        ["ID", "CANARY", "ROLLOUT", "GATE", "PROVIDER", "STATUS", "AGE/FINISHED", "LINK"],
        *(
            [
                str(run["id"]),
                _text(f"{run['namespace']}/{run['name']}"),
                f"#{run['rollout_seq']}",
                _text(run["gate"]),
                _text(run["provider"]),
                _text(run["status"]),
                _age_or_finished(run, now),
                _text(run.get("url")),
            ]
            for run in found
        ),
    ]
    print_table(rows)
    shown = offset + len(found)
    if data["total"] > shown:
        typer.echo(f"({offset + 1}-{shown} of {data['total']}; more: --offset {shown})")


@e2e_app.command("show")
def show(
    run_id: Annotated[int, typer.Argument(min=1, max=_MAX_RUN_ID, help="the run's ID")],
    as_json: Annotated[bool, typer.Option("--json", help="print the API's JSON")] = False,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
) -> None:
    """Show one E2E run: what was run where, its status and why, its parts and its history."""
    run = call(server, token, "GET", f"/api/v1/ci/runs/{run_id}")
    if as_json:
        typer.echo(json.dumps(run, indent=2))
        return
    _print_run(run)


def _print_fields(fields: list[tuple[str, str]]) -> None:
    width = max(len(label) for label, _ in fields)
    for label, value in fields:
        typer.echo(f"{label.ljust(width)}  {value}".rstrip())


def _print_run(run: dict[str, Any]) -> None:
    typer.echo(
        f"E2E run {run['id']}: {_text(run['namespace'])}/{_text(run['name'])} "
        f"rollout #{run['rollout_seq']}, gate {_text(run['gate'])}"
    )
    external = f", run {_text(run['external_id'])}" if run.get("external_id") else ""
    raw = f" ({_text(run['raw'])})" if run.get("raw") else ""
    fields = [
        ("provider", f"{_text(run['provider'])} ({_text(run['kind'])}){external}"),
        ("status", f"{_text(run['status'])}{raw}"),
        ("link", _text(run.get("url"))),
        ("reason", _text(run.get("reason"))),
    ]
    if run.get("last_error"):
        since = f" (since {_when(run.get('error_since'))})" if run.get("error_since") else ""
        fields.append(("last error", f"{_text(run['last_error'])}{since}"))
    target: dict[str, Any] = run.get("target") or {}
    ref = _text(target.get("ref"))
    if target.get("ref_is_tag"):
        ref += " (tag)"
    fields += [
        ("project", _text(target.get("project"))),
        ("ref", ref),
        ("workflow", _text(target.get("workflow"))),
    ]
    parameters: dict[str, Any] = target.get("parameters") or {}
    fields.append(("parameters", "-" if not parameters else ""))
    fields += [(f"  {_text(key)}", _text(value)) for key, value in sorted(parameters.items())]
    fields += [
        ("created", _when(run.get("created_at"))),
        ("triggered", _when(run.get("triggered_at"))),
        ("finished", _when(run.get("finished_at"))),
        ("deadline", _when(run.get("deadline_at"))),
    ]
    if run["status"] in ACTIVE:
        polls = run.get("polls", 0)
        checked = f"{polls} poll{'' if polls == 1 else 's'} so far"
        fields.append(("next check", f"{_when(run.get('next_check_at'))} ({checked})"))
    _print_fields(fields)

    parts: list[dict[str, Any]] = run.get("parts") or []
    if parts:
        typer.echo("")
        print_table(
            [
                ["PART", "STATUS", "LINK"],
                *(
                    [_text(part.get("name")), _text(part.get("status")), _text(part.get("url"))]
                    for part in parts
                ),
            ]
        )
    typer.echo("")
    events: list[dict[str, Any]] = run.get("events") or []
    if not events:
        typer.echo("history: no status changes recorded yet")
        return
    print_table(
        [
            ["AT", "STATUS", "RAW", "SOURCE", "REASON"],
            *(
                [
                    _when(event["at"]),
                    _text(event["status"]),
                    _text(event.get("raw")),
                    _text(event.get("source")),
                    _text(event.get("reason")),
                ]
                for event in events
            ),
        ]
    )


def print_rollout_runs(found: list[dict[str, Any]]) -> None:
    """The current rollout's E2E runs for ``puerta status NAMESPACE/NAME`` (nothing when it
    has none, so canaries without e2e gates read as before)."""
    if not found:
        return
    typer.echo("")
    print_table(
        [
            ["E2E RUN", "GATE", "STATUS", "LINK", "REASON"],
            *(
                [
                    str(run["id"]),
                    _text(run["gate"]),
                    _text(run["status"]),
                    _text(run.get("url")),
                    _text(run.get("reason")),
                ]
                for run in found
            ),
        ]
    )
