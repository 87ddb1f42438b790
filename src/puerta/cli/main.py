"""``puerta``: run the service, check a policy file, migrate the database, and talk to a running
Puerta (status, approve, halt, rollback, audit)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer

from puerta.cli.audit import audit_app
from puerta.cli.common import DEFAULT_SERVER, ServerOpt, TokenOpt
from puerta.cli.common import call as _call
from puerta.cli.common import print_table as _print_table
from puerta.cli.common import split_canary as _split
from puerta.cli.delivery import delivery
from puerta.cli.e2e import e2e_app, print_rollout_runs
from puerta.cli.promotions import promotions_app
from puerta.cli.simulate import simulate
from puerta.cli.where import where
from puerta.errors import ConfigError

app = typer.Typer(
    name="puerta",
    help="Puerta: gating service for Flagger canary deployments.",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(e2e_app, name="e2e")
app.add_typer(audit_app, name="audit")  # subcommands verify, export; alone: the query below
app.add_typer(promotions_app, name="promotions")  # list (also alone), hold, release


def _fail_config(exc: ConfigError) -> None:
    for problem in exc.problems:
        typer.echo(problem, err=True)
    raise typer.Exit(1)


@app.command()
def serve(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", envvar="PUERTA_CONFIG", help="policy file")
    ] = None,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8080,
    log_format: Annotated[
        str | None, typer.Option(help="json or console (default: PUERTA_LOG_FORMAT or json)")
    ] = None,
    role: Annotated[
        str | None,
        typer.Option(
            help="all: answer calls and do the background work; web: answer calls only; "
            "worker: background work only (default: PUERTA_ROLE or all)"
        ),
    ] = None,
) -> None:
    """Run Puerta's HTTP service (refuses to start on an invalid policy file)."""
    import os

    import uvicorn

    from puerta.app import create_app
    from puerta.logs import configure_logging
    from puerta.settings import Settings

    environ = dict(os.environ)
    if log_format:
        environ["PUERTA_LOG_FORMAT"] = log_format
    if role:
        environ["PUERTA_ROLE"] = role
    try:
        settings = Settings.from_env(config, environ)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    configure_logging(settings.log_level, settings.log_format)
    try:
        application = create_app(settings, freeze_startup_objects=True)
    except ConfigError as exc:
        _fail_config(exc)
        return
    uvicorn.run(
        application,
        host=host,
        port=port,
        access_log=False,  # URLs may carry the hook token; Puerta logs each call itself
        log_level=settings.log_level if settings.log_level != "debug" else "info",
        server_header=False,
        # SIGTERM: stop accepting, let in-flight calls finish (a held E2E call included, up
        # to this long), then hand background work back to the other replicas
        timeout_graceful_shutdown=max(1, round(settings.shutdown_grace)),
    )


@app.command("check-config")
def check_config(
    file: Annotated[Path, typer.Argument(help="policy file to validate")],
) -> None:
    """Validate a policy file; print every error with its path, exit 1 if any."""
    from puerta.policy import load_policy

    try:
        policy = load_policy(file)
    except ConfigError as exc:
        _fail_config(exc)
        return
    envs = ", ".join(e.name for e in policy.environments) or "none"
    typer.echo(f"{file}: ok ({len(policy.environments)} environments: {envs})")


@db_app.command("upgrade")
def db_upgrade(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", envvar="PUERTA_CONFIG", help="policy file")
    ] = None,
    database_url: Annotated[
        str | None, typer.Option("--database-url", envvar="PUERTA_DATABASE_URL")
    ] = None,
) -> None:
    """Apply database migrations (also done automatically when Puerta starts)."""
    import asyncio

    from puerta.policy import load_policy
    from puerta.store.db import DEFAULT_DATABASE_URL, Database

    url = database_url
    if url is None and config is not None:
        try:
            url = load_policy(config).policy.database.url
        except ConfigError as exc:
            _fail_config(exc)
    url = url or DEFAULT_DATABASE_URL

    async def run() -> str:
        db = Database(url)
        try:
            await db.migrate()
        finally:
            await db.dispose()
        return db.dialect

    dialect = asyncio.run(run())
    typer.echo(f"database ({dialect}) is at the newest schema")


def _waiting_text(rollout: dict[str, Any] | None) -> str:
    if not rollout:
        return "-"
    waiting = rollout.get("waiting")
    if waiting:
        return f"{waiting['hook']}: {waiting['reason']}"
    return "-"


@app.command()
def status(
    canary: Annotated[str | None, typer.Argument(help="NAMESPACE/NAME (default: all)")] = None,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Show canaries: environment, phase, rollout and what it waits for."""
    if canary:
        namespace, name = _split(canary)
        data = _call(server, token, "GET", f"/api/v1/canaries/{namespace}/{name}")
        if as_json:
            typer.echo(json.dumps(data, indent=2))
            return
        _print_canary_detail(data)
        return
    data = _call(server, token, "GET", "/api/v1/canaries")
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    rows = [["CANARY", "ENV", "PHASE", "ROLLOUT", "STATUS", "WAITING FOR"]]
    for item in data["canaries"]:
        rollout = item.get("rollout") or {}
        status_text = rollout.get("status", "-")
        if item.get("halted"):
            status_text += " (halted)"
        rows.append(
            [
                f"{item['namespace']}/{item['name']}",
                item.get("environment") or "-",
                item.get("phase") or "-",
                f"#{rollout['seq']}" if rollout else "-",
                status_text,
                _waiting_text(rollout),
            ]
        )
    _print_table(rows)


def _print_canary_detail(data: dict[str, Any]) -> None:
    typer.echo(
        f"{data['namespace']}/{data['name']}  env={data.get('environment') or '-'}  "
        f"phase={data.get('phase') or '-'}  checksum={data.get('checksum') or '-'}"
    )
    if data.get("halted"):
        halt = data["halted"]
        typer.echo(f"HALTED by {halt['by']} at {halt['at']}: {halt['reason']}")
    rollout = data.get("rollout")
    if rollout:
        typer.echo(
            f"current rollout #{rollout['seq']}: {rollout['status']}, "
            f"revision {rollout['revision'] or '(not yet known)'}, "
            f"started {rollout['started_at']}"
        )
        if rollout.get("waiting"):
            waiting = rollout["waiting"]
            typer.echo(
                f"  waiting on {waiting['hook']} since {waiting['since']}: {waiting['reason']}"
            )
        print_rollout_runs(data.get("e2e_runs") or [])
    rows = [["ROLLOUT", "STATUS", "REVISION", "STARTED", "FINISHED"]]
    for item in data.get("history", []):
        rows.append(
            [
                f"#{item['seq']}",
                item["status"],
                item["revision"] or "-",
                item["started_at"],
                item.get("finished_at") or "-",
            ]
        )
    typer.echo("")
    _print_table(rows)


def _action(action: str, canary: str, server: str, token: str | None, body: dict[str, Any]) -> None:
    namespace, name = _split(canary)
    data = _call(server, token, "POST", f"/api/v1/canaries/{namespace}/{name}/{action}", json=body)
    typer.echo(f"{namespace}/{name}: {data['message']} (by {data['actor']})")


@app.command()
def approve(
    canary: Annotated[str, typer.Argument(help="NAMESPACE/NAME")],
    reason: Annotated[str, typer.Option(help="why (recorded in the audit)")] = "",
    hook: Annotated[
        str | None, typer.Option(help="approve only this hook, e.g. confirm-promotion")
    ] = None,
    scope: Annotated[str, typer.Option(help="rollout (default) or canary")] = "rollout",
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
) -> None:
    """Approve the canary's waiting rollout (also lifts a halt)."""
    body: dict[str, Any] = {"reason": reason, "scope": scope}
    if hook:
        body["hook"] = hook
    _action("approve", canary, server, token, body)


@app.command()
def halt(
    canary: Annotated[str, typer.Argument(help="NAMESPACE/NAME")],
    reason: Annotated[str, typer.Option(help="why (required, recorded in the audit)")],
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
) -> None:
    """Halt the canary: its confirm-* hooks wait until someone approves."""
    _action("halt", canary, server, token, {"reason": reason})


@app.command()
def rollback(
    canary: Annotated[str, typer.Argument(help="NAMESPACE/NAME")],
    reason: Annotated[str, typer.Option(help="why (required, recorded in the audit)")],
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
) -> None:
    """Roll back the canary's current rollout on Flagger's next check."""
    _action("rollback", canary, server, token, {"reason": reason})


@app.command()
def override(
    canary: Annotated[str, typer.Argument(help="NAMESPACE/NAME")],
    reason: Annotated[str, typer.Option(help="why (required, recorded and shown to Flagger)")],
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
) -> None:
    """Break-glass (admin): let the waiting rollout through windows, freezes and the train."""
    _action("override", canary, server, token, {"reason": reason})


@app.command()
def freeze(
    environment: Annotated[str, typer.Argument(help="environment to freeze, e.g. production")],
    reason: Annotated[str, typer.Option(help="why (required, shown in every refusal)")],
    until: Annotated[
        datetime | None,
        typer.Option(
            help="ends by itself then, e.g. 2026-11-27T18:00+02:00 (default: until lifted)"
        ),
    ] = None,
    namespace: Annotated[
        list[str] | None, typer.Option(help="only these namespaces (globs), repeatable")
    ] = None,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
) -> None:
    """Freeze an environment (admin): new rollouts wait until it is lifted or ends."""
    body: dict[str, Any] = {
        "environment": environment,
        "reason": reason,
        "namespaces": namespace or [],
    }
    if until is not None:
        if until.tzinfo is None:
            typer.echo("error: --until needs a time zone, e.g. 2026-11-27T18:00+02:00", err=True)
            raise typer.Exit(2)
        body["until"] = until.isoformat()
    data = _call(server, token, "POST", "/api/v1/freezes", json=body)
    ends = data["ends_at"] or "lifted"
    scope = f" ({', '.join(data['namespaces'])})" if data.get("namespaces") else ""
    typer.echo(
        f"freeze {data['id']}: {environment}{scope} frozen until {ends} (by {data['created_by']})"
    )


@app.command()
def unfreeze(
    environment: Annotated[str, typer.Argument(help="environment to unfreeze")],
    reason: Annotated[str, typer.Option(help="why (recorded in the audit)")] = "",
    freeze_id: Annotated[int | None, typer.Option("--id", help="lift only this freeze")] = None,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
) -> None:
    """Lift the environment's freezes (admin), or one of them with --id."""
    body: dict[str, Any] = {"reason": reason}
    if freeze_id is not None:
        body["freeze_id"] = freeze_id
    data = _call(server, token, "POST", f"/api/v1/environments/{environment}/unfreeze", json=body)
    lifted = ", ".join(str(i) for i in data["lifted"])
    typer.echo(f"{environment}: lifted freeze {lifted} (by {data['actor']})")


@app.command()
def freezes(
    environment: Annotated[str | None, typer.Argument(help="only this environment")] = None,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
) -> None:
    """List freezes in force or scheduled."""
    params = {"environment": environment} if environment else {}
    data = _call(server, token, "GET", "/api/v1/freezes", params=params)
    rows = [["ID", "ENVIRONMENT", "NAMESPACES", "FROM", "UNTIL", "BY", "REASON"]]
    for f in data["freezes"]:
        rows.append(
            [
                str(f["id"]),
                f["environment"],
                ",".join(f["namespaces"] or []) or "*",
                f["starts_at"][:16],
                (f["ends_at"] or "lifted")[:16],
                f["created_by"],
                f["reason"],
            ]
        )
    _print_table(rows)


@app.command()
def explain(
    canary: Annotated[str, typer.Argument(help="NAMESPACE/NAME")],
    hook: Annotated[str, typer.Option(help="hook type")] = "confirm-rollout",
    at: Annotated[
        datetime | None, typer.Option(help="evaluate at this instant, e.g. 2026-11-27T14:00+02:00")
    ] = None,
    metadata: Annotated[
        list[str] | None, typer.Option(help="webhook metadata key=value, repeatable")
    ] = None,
    policy: Annotated[
        Path | None,
        typer.Option(help="explain against this policy file locally, without a server or state"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
) -> None:
    """Why is this canary waiting? Environment, each gate's answer, place in line, and the next
    moment the answer changes. With --policy, try a policy file before it is deployed."""
    if at is not None and at.tzinfo is None:
        typer.echo("error: --at needs a time zone, e.g. 2026-11-27T14:00+02:00", err=True)
        raise typer.Exit(2)
    _split(canary)
    params: dict[str, Any] = {"canary": canary, "hook": hook, "metadata": metadata or []}
    if at is not None:
        params["at"] = at.isoformat()
    if policy is not None:
        from puerta.cli.offline import explain_offline

        try:
            data = explain_offline(policy, params)
        except ConfigError as exc:
            _fail_config(exc)
            return
    else:
        data = _call(server, token, "GET", "/api/v1/explain", params=params)
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    _print_explanation(data)


def _local(moment: str, zone: str) -> str:
    """An API timestamp (UTC) as people read it: ``Sun 2026-11-29 09:00 IST``."""
    return f"{datetime.fromisoformat(moment).astimezone(ZoneInfo(zone)):%a %Y-%m-%d %H:%M %Z}"


def _print_explanation(data: dict[str, Any]) -> None:
    decision = data["decision"]
    zone = data["timezone"]
    typer.echo(f"{data['canary']} {data['hook']} at {_local(data['at'], zone)}")
    typer.echo(f"environment: {data['environment'] or '(none: unmatched)'}")
    for line in data["matching"]:
        typer.echo(f"  {line}")
    rollout = data.get("rollout")
    if data["hypothetical"]:
        typer.echo("rollout: none waiting; this is what a new rollout would meet")
    elif rollout:
        typer.echo(f"rollout: #{rollout['seq']} {rollout['status']}")
    if data.get("halted"):
        typer.echo(f"halted: {data['halted']}")
    for text in data.get("freezes", []):
        typer.echo(f"freeze: {text}")
    typer.echo("gates:")
    if not data["gates"]:
        typer.echo("  (none for this hook)")
    for gate in data["gates"]:
        changes = f" [changes {_local(gate['changes_at'], zone)}]" if gate.get("changes_at") else ""
        typer.echo(f"  {gate['label']}: {gate['outcome'].upper()} {gate['reason']}{changes}")
    train = data.get("train")
    if train:
        limit = train["max_concurrent"] or "no limit"
        typer.echo(
            f"release train (max {limit}): rolling out: {', '.join(train['rolling_out']) or 'none'}"
        )
        for index, name in enumerate(train["queue"], start=1):
            typer.echo(f"  {index}. {name}")
    typer.echo(
        f"answer: HTTP {decision['http_status']} {decision['verdict'].upper()}: "
        f"{decision['reason']}"
    )
    if data.get("next_change"):
        typer.echo(
            f"next change: {_local(data['next_change'], zone)} ({data['next_change_because']})"
        )
    else:
        typer.echo("next change: none scheduled (waits for a person or another rollout)")


@audit_app.callback(invoke_without_command=True)
def audit(
    ctx: typer.Context,
    canary: Annotated[str | None, typer.Option(help="NAMESPACE/NAME")] = None,
    namespace: Annotated[str | None, typer.Option()] = None,
    environment: Annotated[str | None, typer.Option()] = None,
    hook: Annotated[str | None, typer.Option()] = None,
    decision: Annotated[str | None, typer.Option(help="pass, wait, fail, rollback, ...")] = None,
    kind: Annotated[str | None, typer.Option(help="hook, admin, promotion or audit")] = None,
    actor: Annotated[str | None, typer.Option()] = None,
    since: Annotated[datetime | None, typer.Option(help="ISO time with zone")] = None,
    until: Annotated[datetime | None, typer.Option(help="ISO time with zone")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    cursor: Annotated[int | None, typer.Option(help="next_cursor of a previous page")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, json or jsonl")] = "table",
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
) -> None:
    """Query the audit: hook calls and admin actions, newest first."""
    if ctx.invoked_subcommand is not None:
        return
    if fmt not in ("table", "json", "jsonl"):
        typer.echo(f"error: --format must be table, json or jsonl, got {fmt!r}", err=True)
        raise typer.Exit(2)
    params: dict[str, Any] = {"limit": limit}
    for key, value in (
        ("canary", canary),
        ("namespace", namespace),
        ("environment", environment),
        ("hook", hook),
        ("decision", decision),
        ("kind", kind),
        ("actor", actor),
        ("cursor", cursor),
    ):
        if value is not None:
            params[key] = value
    for key, when in (("since", since), ("until", until)):
        if when is not None:
            params[key] = when.isoformat()
    data = _call(server, token, "GET", "/api/v1/audit", params=params)
    if fmt == "json":
        typer.echo(json.dumps(data, indent=2))
        return
    if fmt == "jsonl":
        for event in data["events"]:
            typer.echo(json.dumps(event))
        return
    rows = [["ID", "AT", "ACTOR", "ACTION", "CANARY", "ROLLOUT", "DECISION", "REASON"]]
    for e in data["events"]:
        rows.append(
            [
                str(e["id"]),
                e["at"][:19],
                e["actor"],
                e["action"],
                f"{e['namespace']}/{e['name']}" if e.get("name") else "-",
                f"#{e['rollout_seq']}" if e.get("rollout_seq") else "-",
                e.get("verdict") or "-",
                (e.get("reason") or "")[:80],
            ]
        )
    _print_table(rows)
    if data.get("next_cursor"):
        typer.echo(f"(more: --cursor {data['next_cursor']})")


app.command("simulate")(simulate)
app.command("where")(where)
app.command("delivery")(delivery)


@app.command()
def live(
    environment: Annotated[str, typer.Argument(help="an environment of the policy")],
    history: Annotated[int, typer.Option(min=0, max=100, help="earlier revisions to show")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="print the API's JSON")] = False,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
) -> None:
    """What each canary of an environment runs now (image, commit, since when), and before."""
    data = _call(
        server,
        token,
        "GET",
        f"/api/v1/environments/{environment}/live",
        params={"history": history},
    )
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    rows = [["CANARY", "", "ROLLOUT", "SINCE", "COMMIT", "IMAGE"]]
    for canary in data["canaries"]:
        key = f"{canary['namespace']}/{canary['name']}"
        for index, rev in enumerate([canary["live"], *canary["history"]]):
            commit = (
                f"{rev['repository']}@{rev['sha'][:7]} {rev.get('title') or ''}".strip()
                if rev.get("sha")
                else f"unknown ({rev.get('commit_problem') or 'not looked up'})"
            )
            rows.append(
                [
                    key if index == 0 else "",
                    "live" if index == 0 else "before",
                    f"#{rev['rollout_seq']}",
                    (rev.get("since") or "")[:16],
                    commit[:70],
                    rev.get("image") or "-",
                ]
            )
    if len(rows) == 1:
        typer.echo(f"nothing has gone live in {environment} yet")
        return
    _print_table(rows)


def main() -> None:
    app(prog_name="puerta")


if __name__ == "__main__":
    main()
