"""``puerta where SHA``: is my commit in production yet, and if not, where is it stuck and why?

Prints, for each repository the commit belongs to, the commit, the one-line summary and a line
per environment (policy order), with the rollout the line is about (for an environment the
commit is on its way to by a promotion: the promoted rollout, ``from`` the environment before).
Text that came from GitHub or a CI provider (titles, reasons, links) is printed on one line
with control characters escaped, so it cannot drive the terminal of whoever reads it.
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
        typer.echo(_line(f"  {place['environment'].ljust(width)}  {place['text']}{_about(place)}"))
    if not found.get("contains_checked", True):
        typer.echo(
            "  (newer live commits were not all compared with this one, so it may be live "
            "through one of them)"
        )


def _about(place: dict[str, Any]) -> str:
    """``  [prod/podinfo #9]``: the rollout a line is about; a promotion's rollout ran in
    another environment, so it is marked ``from`` (``[from staging/podinfo #14]``)."""
    if not place.get("canary"):
        return ""
    source = "from " if place.get("promotion") else ""
    return f"  [{source}{place['canary']} #{place['rollout_seq']}]"


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
