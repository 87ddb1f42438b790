"""``puerta promotions``: what Puerta sent on after a rollout succeeded (a release, a dispatch,
a webhook) and what waits; ``hold`` keeps one from going out, ``release`` lets it go (approver).

``puerta promotions`` alone lists (``main.py`` makes the listing this group's callback, as for
``puerta audit``). Exit codes, as every client command: 0 done, 1 Puerta refused (the reason
and HTTP status are printed), 2 a usage error or Puerta could not be reached.
"""

from __future__ import annotations

import json
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
from puerta.cli.e2e import _text

promotions_app = typer.Typer(
    help="Promotions after a successful rollout: list (the options below), hold, release."
)

STATUSES = ("pending", "held", "done", "failed")
_MAX_ID = 2**31 - 1  # the API's bound; larger ids are a usage error here, not a 422 there
PromotionArg = Annotated[int, typer.Argument(min=1, max=_MAX_ID, help="the promotion's ID")]
ReasonOpt = Annotated[str, typer.Option(help="why (recorded in the audit)")]
# the list's options, shared by ``puerta promotions`` alone and ``puerta promotions list``
CanaryOpt = Annotated[str | None, typer.Option(help="NAMESPACE/NAME")]
StatusOpt = Annotated[
    str | None, typer.Option(help=f"only promotions in this status: {', '.join(STATUSES)}")
]
LimitOpt = Annotated[int, typer.Option(min=1, max=500, help="at most this many")]
OffsetOpt = Annotated[int, typer.Option(min=0, help="skip this many (the next page)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print the API's JSON")]


@promotions_app.callback(invoke_without_command=True)
def promotions(
    ctx: typer.Context,
    canary: CanaryOpt = None,
    status: StatusOpt = None,
    limit: LimitOpt = 50,
    offset: OffsetOpt = 0,
    as_json: JsonOpt = False,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
) -> None:
    """List promotions, newest first, with why each waits, what it made or why it failed."""
    if ctx.invoked_subcommand is not None:
        return
    list_promotions(canary, status, limit, offset, as_json, server, token)


@promotions_app.command("list")
def list_command(
    canary: CanaryOpt = None,
    status: StatusOpt = None,
    limit: LimitOpt = 50,
    offset: OffsetOpt = 0,
    as_json: JsonOpt = False,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
) -> None:
    """List promotions (the same as puerta promotions alone)."""
    list_promotions(canary, status, limit, offset, as_json, server, token)


def list_promotions(
    canary: str | None,
    status: str | None,
    limit: int,
    offset: int,
    as_json: bool,
    server: str,
    token: str | None,
) -> None:
    """One page of ``GET /api/v1/promotions`` as a table (or its JSON)."""
    data = fetch_page(
        server,
        token,
        "/api/v1/promotions",
        canary=canary,
        status=status,
        statuses=STATUSES,
        limit=limit,
        offset=offset,
    )
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    found: list[dict[str, Any]] = data["promotions"]
    if not found:
        typer.echo("no promotions" + (f" (of {data['total']})" if data["total"] else ""))
        return
    rows = [["ID", "CANARY", "ROLLOUT", "TO", "ACTION", "STATUS", "DETAIL"]]
    rows.extend(
        [
            str(item["id"]),
            _text(f"{item['namespace']}/{item['name']}"),
            f"#{item['rollout_seq']}",
            _text(item["to_environment"]),
            _text(item["action"]),
            _text(item["status"]),
            _text(_detail(item)),
        ]
        for item in found
    )
    print_table(rows)
    shown = offset + len(found)
    if data["total"] > shown:
        typer.echo(f"({offset + 1}-{shown} of {data['total']}; more: --offset {shown})")


def _detail(item: dict[str, Any]) -> str:
    """The one thing to know about a promotion in its status: why it waits, what it made, or
    why it failed."""
    if item["status"] == "held":
        return str(item.get("held_reason") or "")
    if item["status"] == "done":
        made = item.get("tag") or item.get("event_type") or ""
        return " ".join(part for part in (made, item.get("url") or "") if part)
    if item["status"] == "failed":
        return str(item.get("last_error") or "")
    error = item.get("last_error")
    return f"retrying: {error}" if error else ""


@promotions_app.command("hold")
def hold(
    promotion: PromotionArg,
    reason: ReasonOpt = "",
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
) -> None:
    """Approver: keep a pending or held promotion from going out until it is released."""
    _act("hold", promotion, reason, server, token)


@promotions_app.command("release")
def release(
    promotion: PromotionArg,
    reason: ReasonOpt = "",
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
) -> None:
    """Approver: let a promotion held by hand (or by manual_release) go out now."""
    _act("release", promotion, reason, server, token)


def _act(action: str, promotion: int, reason: str, server: str, token: str | None) -> None:
    data = call(
        server,
        token,
        "POST",
        f"/api/v1/promotions/{promotion}/{action}",
        json={"reason": reason},
    )
    typer.echo(_text(f"{data['message']} (by {data['actor']})"))
