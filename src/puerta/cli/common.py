"""What every client command of the CLI shares: the ``--server``/``--token`` options, one API
call with Puerta's refusal turned into exit 1, one page of a per-canary list, ``NAMESPACE/NAME``
parsing and plain tables.

They live here, not in ``main.py``, so that command groups in their own modules (``e2e``) can
use them while ``main.py`` registers those groups, without a circular import.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from puerta.cli.client import ApiError, PuertaClient

ServerOpt = Annotated[
    str, typer.Option("--server", envvar="PUERTA_URL", help="URL of a running Puerta")
]
TokenOpt = Annotated[
    str | None,
    typer.Option("--token", envvar="PUERTA_TOKEN", help="bearer token (or PUERTA_TOKEN)"),
]
DEFAULT_SERVER = "http://127.0.0.1:8080"


def client(server: str, token: str | None) -> PuertaClient:
    return PuertaClient(server, token)


def call(server: str, token: str | None, method: str, path: str, **kwargs: Any) -> Any:
    """The API's JSON answer; on a refusal, print its reason and HTTP status and exit 1."""
    http = client(server, token)
    try:
        return http.request(method, path, **kwargs)
    except ApiError as exc:
        typer.echo(f"error: {exc.detail} (HTTP {exc.status})", err=True)
        raise typer.Exit(1) from exc
    finally:
        http.close()


def split_canary(canary: str) -> tuple[str, str]:
    """``NAMESPACE/NAME`` as its two parts; a usage error (exit 2) for anything else."""
    namespace, sep, name = canary.partition("/")
    if not sep or not namespace or not name:
        typer.echo(f"error: expected NAMESPACE/NAME, got {canary!r}", err=True)
        raise typer.Exit(2)
    return namespace, name


def fetch_page(
    server: str,
    token: str | None,
    path: str,
    *,
    canary: str | None,
    status: str | None,
    statuses: tuple[str, ...],
    limit: int,
    offset: int,
) -> Any:
    """One page of a per-canary list (E2E runs, promotions): ``GET path`` filtered by
    ``NAMESPACE/NAME`` and status; a status not among ``statuses`` is a usage error (exit 2)."""
    if status is not None and status not in statuses:
        choices = ", ".join(statuses)
        typer.echo(f"error: --status must be one of {choices}, got {status!r}", err=True)
        raise typer.Exit(2)
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    if canary:
        params["namespace"], params["name"] = split_canary(canary)
    if status is not None:
        params["status"] = status
    return call(server, token, "GET", path, params=params)


def print_table(rows: list[list[str]]) -> None:
    """Left-aligned columns two spaces apart; the first row is the header."""
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        line = "  ".join(str(cell).ljust(widths[i]) for i, cell in enumerate(row))
        typer.echo(line.rstrip())
