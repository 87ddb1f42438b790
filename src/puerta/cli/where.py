"""``puerta where SHA``: is my commit in production yet, and if not, where is it stuck and why?

Prints, for each repository the commit belongs to, the commit, the one-line summary and a line
per environment (policy order). Text that came from GitHub or a CI provider (titles, reasons,
links) is printed on one line with control characters escaped, so it cannot drive the terminal
of whoever reads it.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from puerta.cli.common import DEFAULT_SERVER, ServerOpt, TokenOpt, call


def where(
    sha: Annotated[str, typer.Argument(help="the commit's SHA (at least 7 characters)")],
    as_json: Annotated[bool, typer.Option("--json", help="print the API's JSON")] = False,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
) -> None:
    """Where is this commit? Live, waiting (for what), failed (why), or not deployed, in each
    environment."""
    value = sha.strip()
    if len(value) < 7 or any(ch not in "0123456789abcdefABCDEF" for ch in value):
        typer.echo("error: give the commit's SHA: 7 to 64 hexadecimal characters", err=True)
        raise typer.Exit(2)
    data = call(server, token, "GET", f"/api/v1/commits/{value}")
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    for index, repository in enumerate(data["repositories"]):
        if index:
            typer.echo("")
        _print_repository(repository)


def _print_repository(found: dict[str, Any]) -> None:
    commit = found.get("commit")
    head = f"{found.get('repository') or '(unknown repository)'}@{found['sha'][:12]}"
    if commit:
        title = commit.get("title")
        author = commit.get("author_name")
        if title:
            head += f" {title}"
        if author:
            head += f" ({author})"
    typer.echo(_line(head))
    typer.echo(_line(found["summary"]))
    places = found["environments"]
    width = max((len(p["environment"]) for p in places), default=0)
    for place in places:
        rollout = ""
        if place.get("canary"):
            rollout = f"  [{place['canary']} #{place['rollout_seq']}]"
        typer.echo(_line(f"  {place['environment'].ljust(width)}  {place['text']}{rollout}"))
    if not found.get("contains_checked", True):
        typer.echo(
            "  (newer live commits were not all compared with this one, so it may be live "
            "through one of them)"
        )


def _line(value: str) -> str:
    """One safe line: line breaks as spaces, other control characters escaped (``\\x1b``)."""
    out = []
    for ch in value:
        if ch.isprintable():
            out.append(ch)
        elif ch in "\r\n\t":
            out.append(" ")
        else:
            out.append(repr(ch)[1:-1])
    return "".join(out)
