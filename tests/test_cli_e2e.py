"""The CLI for E2E runs (``puerta e2e runs|show``, the E2E section of ``puerta status``) against
a served Puerta, with runs seeded straight into its database (no CI provider involved)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Connection
from typer.testing import CliRunner

from conftest import VIEWER, Puerta, serve_in_thread
from puerta.cli.main import app as cli
from puerta.store import ci_runs
from puerta.store.db import Database
from puerta.store.tables import canaries
from test_manual_gates import live  # noqa: F401  (fixture)

OLD, NEW = "6d9d8b5c7f", "85d557f47b"
CIRCLE = "https://app.circleci.com/pipelines/github/acme/e2e/7"
ACTIONS = "https://github.com/acme/e2e/actions/runs/99"
GITLAB = "https://gitlab.example.com/acme/shop/-/pipelines/5"


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), env=env)
    return result.exit_code, result.output


def add_run(
    puerta: Puerta,
    canary: str,
    seq: int,
    gate: str,
    *,
    status: str,
    provider: str = "circleci-main",
    kind: str = "circleci",
    target: dict[str, Any] | None = None,
    events: Sequence[tuple[int, str, str | None, str, str | None]] = (),
    **columns: Any,
) -> int:
    """Record a run of the canary's rollout ``seq`` as the runner would, with its history
    (``events``: minutes after now, status, raw, source, reason); returns its id. Active runs
    are due a day later, so no runner of the apps under test touches them."""
    namespace, name = canary.split("/")
    now = puerta.clock.now()

    def write(conn: Connection) -> int:
        canary_id = conn.execute(
            select(canaries.c.id).where(canaries.c.namespace == namespace, canaries.c.name == name)
        ).scalar_one()
        assert ci_runs.insert_run(
            conn,
            canary_id=canary_id,
            rollout_seq=seq,
            gate=gate,
            provider=provider,
            kind=kind,
            target=target or {"project": "gh/acme/e2e", "ref": "main", "correlation": gate},
            correlation=f"{canary}-{seq}-{gate}",
            status=status,
            polls=len(events),
            backoff_s=0.0,
            created_at=now,
            updated_at=now,
            deadline_at=now + timedelta(hours=2),
            next_check_at=now + timedelta(days=1),
            **columns,
        )
        run_id = next(r.id for r in ci_runs.runs_of(conn, canary_id, seq) if r.gate == gate)
        for minutes, event_status, raw, source, reason in events:
            ci_runs.add_event(
                conn,
                run_id=run_id,
                at=now + timedelta(minutes=minutes),
                status=event_status,
                raw=raw,
                reason=reason,
                url=columns.get("url"),
                source=source,
            )
        return int(run_id)

    async def seed() -> int:
        db = Database(puerta.database_url)
        try:
            return await db.write(write)
        finally:
            await db.dispose()

    return asyncio.run(seed())


@dataclass
class Runs:
    failed: int  # staging/podinfo, rollout #1 (replaced since)
    running: int  # staging/podinfo, rollout #2 (current)
    succeeded: int  # staging/frontend, rollout #1 (current)


@pytest.fixture
def runs(puerta: Puerta) -> Runs:
    now = puerta.clock.now()
    assert puerta.hook("confirm-rollout", namespace="staging", checksum=OLD).status_code == 200
    failed = add_run(
        puerta,
        "staging/podinfo",
        1,
        "smoke",
        status="failed",
        url=CIRCLE,
        external_id="7",
        raw="e2e:failed",
        reason='workflow "e2e" failed (job "playwright" failed): ' + CIRCLE,
        triggered_at=now + timedelta(minutes=1),
        finished_at=now + timedelta(minutes=20),
        events=[
            (1, "queued", "created", "trigger", None),
            (3, "running", "e2e:running", "poll", "workflow e2e is running"),
            (20, "failed", "e2e:failed", "webhook", 'workflow "e2e" failed (job "playwright")'),
        ],
    )
    # a new revision: rollout #2 replaces #1
    assert puerta.hook("confirm-rollout", namespace="staging", checksum=NEW).status_code == 200
    running = add_run(
        puerta,
        "staging/podinfo",
        2,
        "smoke",
        status="running",
        provider="gha",
        kind="github",
        url=ACTIONS,
        raw="in_progress",
        reason="workflow e2e.yml is running",
        target={
            "project": "acme/e2e",
            "ref": "v2.3.0",
            "ref_is_tag": True,
            "workflow": "e2e.yml",
            "parameters": {"target": "http://podinfo-canary.staging", "suite": "smoke"},
            "correlation": "abc123",
        },
        parts=[
            {"name": "playwright", "status": "in_progress", "state": "running", "url": ACTIONS},
            {"name": "lint", "status": "success", "state": "succeeded", "url": None},
        ],
        last_error="GitHub answered 502 Bad Gateway",
        error_since=now + timedelta(minutes=4),
        triggered_at=now + timedelta(minutes=1),
        events=[(1, "running", "in_progress", "trigger", None)],
    )
    assert puerta.hook("confirm-rollout", namespace="staging", name="frontend").status_code == 200
    succeeded = add_run(
        puerta,
        "staging/frontend",
        1,
        "checkout",
        status="succeeded",
        provider="gitlab-ci",
        kind="gitlab",
        url=GITLAB,
        raw="success",
        reason="pipeline 5 passed",
        finished_at=now + timedelta(minutes=9),
    )
    return Runs(failed, running, succeeded)


def lines_of(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.strip()]


def test_runs_lists_newest_first_with_status_and_link(live: str, runs: Runs) -> None:  # noqa: F811
    code, out = run("e2e", "runs", "--server", live)
    assert code == 0, out
    header, *rows = lines_of(out)
    assert header.split() == [
        "ID",
        "CANARY",
        "ROLLOUT",
        "GATE",
        "PROVIDER",
        "STATUS",
        "AGE/FINISHED",
        "LINK",
    ]
    assert [row.split()[0] for row in rows] == [
        str(runs.succeeded),
        str(runs.running),
        str(runs.failed),
    ]
    assert rows[0].split()[1:6] == ["staging/frontend", "#1", "checkout", "gitlab-ci", "succeeded"]
    assert rows[0].endswith(GITLAB) and "2026-11-26T10:09:00" in rows[0]
    assert rows[1].split()[1:6] == ["staging/podinfo", "#2", "smoke", "gha", "running"]
    assert rows[1].endswith(ACTIONS) and " ago " in rows[1]
    assert rows[2].split()[1:6] == ["staging/podinfo", "#1", "smoke", "circleci-main", "failed"]
    assert rows[2].endswith(CIRCLE) and "2026-11-26T10:20:00" in rows[2]


def test_runs_filter_by_canary_and_status_and_page(live: str, runs: Runs) -> None:  # noqa: F811
    code, out = run("e2e", "runs", "staging/podinfo", "--server", live)
    assert code == 0, out
    ids = [line.split()[0] for line in lines_of(out)[1:]]
    assert ids == [str(runs.running), str(runs.failed)]

    code, out = run("e2e", "runs", "--status", "failed", "--server", live)
    assert code == 0, out
    rows = lines_of(out)[1:]
    assert len(rows) == 1 and rows[0].split()[0] == str(runs.failed) and CIRCLE in rows[0]

    code, out = run("e2e", "runs", "staging/frontend", "--status", "failed", "--server", live)
    assert (code, out.strip()) == (0, "no E2E runs")

    code, out = run("e2e", "runs", "--limit", "1", "--server", live)
    assert code == 0, out
    *_, row, more = lines_of(out)
    assert row.split()[0] == str(runs.succeeded)
    assert more == "(1-1 of 3; more: --offset 1)"
    code, out = run("e2e", "runs", "--limit", "1", "--offset", "2", "--server", live)
    assert [line.split()[0] for line in lines_of(out)[1:]] == [str(runs.failed)]

    code, out = run("e2e", "runs", "--status", "done", "--server", live)
    assert code == 2 and "--status must be one of pending, queued, running" in out
    code, out = run("e2e", "runs", "podinfo", "--server", live)
    assert code == 2 and "expected NAMESPACE/NAME" in out


def test_runs_json_is_the_apis(puerta: Puerta, live: str, runs: Runs) -> None:  # noqa: F811
    code, out = run("e2e", "runs", "staging/podinfo", "--json", "--server", live)
    assert code == 0, out
    data = json.loads(out)
    assert data["total"] == 2
    assert [r["id"] for r in data["runs"]] == [runs.running, runs.failed]
    assert [e["status"] for e in data["runs"][1]["events"]] == ["queued", "running", "failed"]
    api = puerta.api("GET", "/ci/runs", params={"namespace": "staging", "name": "podinfo"})
    assert data == api.json()


def test_show_prints_the_run_its_parts_and_history(live: str, runs: Runs) -> None:  # noqa: F811
    code, out = run("e2e", "show", str(runs.failed), "--server", live)
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == f"E2E run {runs.failed}: staging/podinfo rollout #1, gate smoke"
    fields = {line.split("  ", 1)[0]: line.split("  ", 1)[1].strip() for line in lines[1:13]}
    assert fields["provider"] == "circleci-main (circleci), run 7"
    assert fields["status"] == "failed (e2e:failed)"
    assert fields["link"] == CIRCLE
    assert fields["reason"] == f'workflow "e2e" failed (job "playwright" failed): {CIRCLE}'
    assert fields["project"] == "gh/acme/e2e"
    assert fields["finished"] == "2026-11-26T10:20:00"
    assert "last error" not in out and "next check" not in out  # finished, no trouble
    history = lines[lines.index(next(x for x in lines if x.startswith("AT "))) :]
    assert history[0].split() == ["AT", "STATUS", "RAW", "SOURCE", "REASON"]
    assert history[1].split()[:4] == ["2026-11-26T10:01:00", "queued", "created", "trigger"]
    assert history[2].split()[:4] == ["2026-11-26T10:03:00", "running", "e2e:running", "poll"]
    assert history[2].endswith("workflow e2e is running")
    assert history[3].split()[:4] == ["2026-11-26T10:20:00", "failed", "e2e:failed", "webhook"]
    assert history[3].endswith('workflow "e2e" failed (job "playwright")')


def test_show_a_run_under_way_with_trouble(live: str, runs: Runs) -> None:  # noqa: F811
    code, out = run("e2e", "show", str(runs.running), "--server", live)
    assert code == 0, out
    assert "provider    gha (github)\n" in out
    assert "status      running (in_progress)\n" in out
    assert "last error  GitHub answered 502 Bad Gateway (since 2026-11-26T10:04:00)\n" in out
    assert "\nparameters\n" in out  # listed below, no trailing blanks
    assert "ref         v2.3.0 (tag)\n" in out and "workflow    e2e.yml\n" in out
    assert "  suite     smoke\n" in out and "  target    http://podinfo-canary.staging\n" in out
    assert "next check  2026-11-27T10:00:00 (1 poll so far)\n" in out
    parts = lines_of(out[out.index("PART ") :])
    assert parts[0].split() == ["PART", "STATUS", "LINK"]
    assert parts[1].split() == ["playwright", "in_progress", ACTIONS]
    assert parts[2].split() == ["lint", "success", "-"]


def test_show_unknown_run_and_json(puerta: Puerta, live: str, runs: Runs) -> None:  # noqa: F811
    code, out = run("e2e", "show", "999", "--server", live)
    assert (code, out.strip()) == (1, "error: no E2E run 999 (HTTP 404)")
    code, out = run("e2e", "show", "0", "--server", live)
    assert code == 2

    code, out = run("e2e", "show", str(runs.succeeded), "--json", "--server", live)
    assert code == 0, out
    data = json.loads(out)
    assert data == puerta.api("GET", f"/ci/runs/{runs.succeeded}").json()
    assert (data["status"], data["url"], data["events"]) == ("succeeded", GITLAB, [])
    code, out = run("e2e", "show", str(runs.succeeded), "--server", live)
    assert "history: no status changes recorded yet" in out


def test_provider_text_cannot_drive_the_terminal(puerta: Puerta, live: str) -> None:  # noqa: F811
    puerta.hook("confirm-rollout", namespace="staging", checksum=OLD)
    run_id = add_run(
        puerta,
        "staging/podinfo",
        1,
        "smoke",
        status="failed",
        reason="job \x1b[2J\x1b[31mfailed\nsee log",
        parts=[{"name": "evil\x1b]0;title\x07", "status": "failed"}],
    )
    code, out = run("e2e", "show", str(run_id), "--server", live)
    assert code == 0, out
    assert "\x1b" not in out and "\x07" not in out
    assert "reason      job \\x1b[2J\\x1b[31mfailed see log\n" in out
    assert "evil\\x1b]0;title\\x07  failed" in out


def test_status_shows_the_current_rollouts_e2e_runs(live: str, runs: Runs) -> None:  # noqa: F811
    code, out = run("status", "staging/podinfo", "--server", live)
    assert code == 0, out
    assert "current rollout #2: confirmed" in out
    section = lines_of(out[out.index("E2E RUN ") : out.index("ROLLOUT ")])
    assert section[0].split() == ["E2E", "RUN", "GATE", "STATUS", "LINK", "REASON"]
    assert section[1].split()[:4] == [str(runs.running), "smoke", "running", ACTIONS]
    assert section[1].endswith("workflow e2e.yml is running")
    assert len(section) == 2  # rollout #1's failed run is history, not shown here
    assert CIRCLE not in out

    code, out = run("status", "staging/frontend", "--server", live)
    assert code == 0, out
    assert f"{runs.succeeded}        checkout  succeeded  {GITLAB}  pipeline 5 passed" in out

    code, out = run("status", "staging/podinfo", "--json", "--server", live)
    assert [r["id"] for r in json.loads(out)["e2e_runs"]] == [runs.running]


def test_status_without_e2e_runs_reads_as_before(puerta: Puerta, live: str) -> None:  # noqa: F811
    puerta.hook("confirm-rollout", namespace="staging", checksum=OLD)
    code, out = run("status", "staging/podinfo", "--server", live)
    assert code == 0, out
    assert "E2E RUN" not in out


def test_private_reads_need_a_viewer_token(puerta: Puerta, runs: Runs) -> None:
    puerta.policy_text = puerta.policy_text.replace("public_read: true", "public_read: false")
    with serve_in_thread(puerta.build_app()) as url:
        code, out = run("e2e", "runs", "--server", url)
        assert code == 1 and "(HTTP 401)" in out
        code, out = run("e2e", "show", str(runs.failed), "--server", url)
        assert code == 1 and "(HTTP 401)" in out
        code, out = run("e2e", "runs", "--server", url, env={"PUERTA_TOKEN": VIEWER})
        assert code == 0 and CIRCLE in out
        code, out = run("e2e", "show", str(runs.failed), "--server", url, "--token", VIEWER)
        assert code == 0 and CIRCLE in out
