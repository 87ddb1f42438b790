"""``puerta audit verify`` and ``puerta audit export``: check the audit trail's hash chain, and
copy the trail out (for an auditor, or to keep its hashes somewhere the database's owners cannot
rewrite).

``puerta audit`` on its own stays the query command (``main.py`` makes it this group's
callback). Exit codes, as every client command: 0 done, 1 Puerta refused or the chain is broken,
2 a usage error or Puerta could not be reached.
"""

from __future__ import annotations

import contextlib
import os
from datetime import datetime
from pathlib import Path
from typing import IO, Annotated, Any

import httpx
import typer

from puerta.cli.common import DEFAULT_SERVER, ServerOpt, TokenOpt, call

audit_app = typer.Typer(
    help="Query the audit (the options below: hook calls and admin actions, newest first); "
    "verify its hash chain; export it."
)

FORMATS = ("jsonl", "csv")


@audit_app.command("verify")
def verify(server: ServerOpt = DEFAULT_SERVER, token: TokenOpt = None) -> None:
    """Recompute the audit's hash chain; exit 1 if a record was changed or deleted."""
    data = call(server, token, "GET", "/api/v1/audit/verify")
    start = f" after pruned chain_seq {data['anchor_seq']}" if data.get("anchor_seq") else ""
    pending = f", {data['unsealed']} not sealed yet" if data["unsealed"] else ""
    broken = data["first_broken"]
    if broken is None:
        typer.echo(f"audit chain ok: {data['checked']} records checked{start}{pending}")
        return
    record = f"id {broken['id']}" if broken["id"] is not None else "record gone"
    typer.echo(
        f"audit chain BROKEN at chain_seq {broken['chain_seq']} ({record}): {broken['problem']}"
        f" ({data['checked']} records checked{start}{pending})"
    )
    raise typer.Exit(1)


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", response.text))
    except ValueError:
        return response.text


@audit_app.command("export")
def export(
    fmt: Annotated[str, typer.Option("--format", help="jsonl or csv")] = "jsonl",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="file to write (default: stdout)")
    ] = None,
    canary: Annotated[str | None, typer.Option(help="NAMESPACE/NAME")] = None,
    namespace: Annotated[str | None, typer.Option()] = None,
    environment: Annotated[str | None, typer.Option()] = None,
    hook: Annotated[str | None, typer.Option()] = None,
    decision: Annotated[str | None, typer.Option(help="pass, wait, fail, rollback, ...")] = None,
    kind: Annotated[str | None, typer.Option(help="hook or admin")] = None,
    actor: Annotated[str | None, typer.Option()] = None,
    since: Annotated[datetime | None, typer.Option(help="ISO time with zone")] = None,
    until: Annotated[datetime | None, typer.Option(help="ISO time with zone")] = None,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
) -> None:
    """Every matching audit record, oldest first, with its chain_seq and chain_hash.

    With --output the file appears only once the whole export arrived: a broken-off download
    never leaves a file that looks complete.
    """
    if fmt not in FORMATS:
        typer.echo(f"error: --format must be jsonl or csv, got {fmt!r}", err=True)
        raise typer.Exit(2)
    params: dict[str, Any] = {"format": fmt}
    for key, value in (
        ("canary", canary),
        ("namespace", namespace),
        ("environment", environment),
        ("hook", hook),
        ("decision", decision),
        ("kind", kind),
        ("actor", actor),
    ):
        if value is not None:
            params[key] = value
    for key, when in (("since", since), ("until", until)):
        if when is not None:
            params[key] = when.isoformat()
    partial_path = output.with_name(output.name + ".part") if output is not None else None
    try:
        with contextlib.ExitStack() as stack:
            sink: IO[bytes] = (
                stack.enter_context(partial_path.open("wb"))
                if partial_path is not None
                else typer.get_binary_stream("stdout")
            )
            _download(server, token, params, sink)
        if partial_path is not None and output is not None:
            os.replace(partial_path, output)
    finally:
        if partial_path is not None:
            partial_path.unlink(missing_ok=True)


def _download(server: str, token: str | None, params: dict[str, Any], sink: IO[bytes]) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    base = server.rstrip("/")
    # no read timeout between chunks would hang forever on a dead server; a minute is plenty
    # for one batch of records
    timeout = httpx.Timeout(10.0, read=60.0)
    with httpx.Client(base_url=base, headers=headers, timeout=timeout) as http:
        try:
            with http.stream("GET", "/api/v1/audit/export", params=params) as response:
                if response.status_code >= 400:
                    response.read()
                    detail = _detail(response)
                    typer.echo(f"error: {detail} (HTTP {response.status_code})", err=True)
                    raise typer.Exit(1)
                started = False
                try:
                    for chunk in response.iter_bytes():
                        started = True
                        sink.write(chunk)
                except httpx.HTTPError as exc:
                    if not started:
                        raise
                    typer.echo(f"error: the export broke off: {exc}", err=True)
                    raise typer.Exit(1) from exc
        except httpx.HTTPError as exc:
            typer.echo(f"error: cannot reach Puerta at {base}: {exc}", err=True)
            raise typer.Exit(2) from exc
    sink.flush()
