"""``puerta audit verify`` and ``puerta audit export``: check the audit trail's hash chain, and
copy the trail out (for an auditor, or to keep its hashes somewhere the database's owners cannot
rewrite).

``puerta audit`` on its own stays the query command (``main.py`` makes it this group's
callback). Exit codes, as every client command: 0 done, 1 Puerta refused or the chain is broken,
2 a usage error or Puerta could not be reached.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
from collections.abc import Iterator
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


#: what an expected head's answer means, for the operator
_EXPECTED = {
    "held": "still in the chain",
    "not held": "NOT in the chain any more",
    "pruned": "pruned by retention since: not compared",
    "not reached": "not compared (the chain broke before it)",
}


@audit_app.command("verify")
def verify(
    expect_head: Annotated[
        str | None,
        typer.Option(
            "--expect-head",
            metavar="SEQ:HASH",
            help="a head printed by an earlier verify, kept outside the database: exit 1 if "
            "the chain no longer holds it (newest records cut, or the chain rewritten)",
        ),
    ] = None,
    since_export: Annotated[
        Path | None,
        typer.Option(
            "--since-export",
            metavar="FILE",
            help="an earlier `puerta audit export` (JSON lines or CSV): its newest sealed "
            "record is the expected head",
        ),
    ] = None,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
) -> None:
    """Recompute the audit's hash chain; exit 1 if a record was changed or deleted.

    Prints the head (SEQ:HASH): keep it, or an export, outside the database; given back with
    --expect-head (or --since-export) it shows records cut from the end, which the database
    alone cannot.
    """
    if expect_head is not None and since_export is not None:
        typer.echo("error: give --expect-head or --since-export, not both", err=True)
        raise typer.Exit(2)
    if since_export is not None:
        expect_head = _head_of_export(since_export)
    params = {"expect_head": expect_head} if expect_head is not None else {}
    data = call(server, token, "GET", "/api/v1/audit/verify", params=params)
    start = f" after pruned chain_seq {data['anchor_seq']}" if data.get("anchor_seq") else ""
    pending = f", {data['unsealed']} not sealed yet" if data["unsealed"] else ""
    broken = data["first_broken"]
    if broken is None:
        typer.echo(f"audit chain ok: {data['checked']} records checked{start}{pending}")
    else:
        record = f"id {broken['id']}" if broken["id"] is not None else "record gone"
        typer.echo(
            f"audit chain BROKEN at chain_seq {broken['chain_seq']} ({record}): "
            f"{broken['problem']} ({data['checked']} records checked{start}{pending})"
        )
    typer.echo(f"head {data['head_seq']}:{data['head_hash']}")
    if expect_head is not None:
        typer.echo(f"expected head {expect_head}: {_EXPECTED[data['expected_head']]}")
    if broken is not None:
        raise typer.Exit(1)


def _head_of_export(path: Path) -> str:
    """``SEQ:HASH`` of the newest sealed record in an export (the highest chain_seq: a filtered
    export holds a few records of the chain, any of which the chain must still hold); a usage
    error (exit 2) when the file cannot give one."""
    best: tuple[int, str] | None = None
    try:
        with path.open(newline="", encoding="utf-8") as export:
            for record in _export_records(export):
                seq, chain_hash = record.get("chain_seq"), record.get("chain_hash")
                if seq in (None, "") or not chain_hash:
                    continue  # not sealed when exported
                if best is None or int(seq) > best[0]:
                    best = (int(seq), str(chain_hash))
    except (OSError, ValueError) as exc:
        typer.echo(f"error: cannot read the export {path}: {exc}", err=True)
        raise typer.Exit(2) from exc
    if best is None:
        typer.echo(f"error: no sealed record in the export {path}", err=True)
        raise typer.Exit(2)
    return f"{best[0]}:{best[1]}"


def _export_records(export: IO[str]) -> Iterator[dict[str, Any]]:
    """The records of a JSON lines or CSV export (told apart by the first character)."""
    first = export.read(1)
    export.seek(0)
    if first == "{":
        for line in export:
            if line.strip():
                yield json.loads(line)
    else:
        yield from csv.DictReader(export)


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
    kind: Annotated[str | None, typer.Option(help="hook, admin, promotion or audit")] = None,
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
