"""Where is my commit? ``GET /api/v1/commits/{sha}`` and ``puerta where``.

The walkthrough follows one commit through staging, its promotion (a release on a fake GitHub),
production's deployment window and production, with the commit tracker resolving each rollout
through a fake Kubernetes and the fake GitHub. The other tests make rollouts by calling the
hooks in Flagger's order and write the commit each ships into ``rollout_commits`` as the
tracker would (a fake commit source answers "does this newer commit include that one?"), and
check the pure answer where the API cannot show a case cheaply.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Connection
from typer.testing import CliRunner

from conftest import ADMIN, VIEWER, Puerta, serve_in_thread
from fakes.github_repos import FakeGitHubRepos
from fakes.kubernetes import FakeKubernetes, write_kubeconfig
from puerta.cli.main import app as cli
from puerta.clock import ManualClock
from puerta.external import TransientError
from puerta.store import ci_runs, outbox
from puerta.store.db import Database
from puerta.store.notify_tables import lookup_cache
from puerta.store.tables import canaries
from test_manual_gates import live  # noqa: F401  (fixture)
from waiting import until

OLD, NEW, NEWER = "6d9d8b5c7f", "85d557f47b", "a1b2c3d4e5"  # Flagger checksums
REPO = "acme/podinfo"
SHA = "3f9a2c1" + "0b" * 16 + "e"  # the commit developers ask about
LATER = "9c1e5a7" + "4d" * 16 + "f"  # a newer commit of the same repository
CIRCLE = "https://app.circleci.com/pipelines/github/acme/e2e/7"
STAGING = {"namespace": "staging"}
PROD = {"namespace": "prod"}


class FakeSource:
    """A commit source answering ``contains`` from a dict, counting calls; ``down``: GitHub is
    unavailable."""

    def __init__(self, answers: dict[tuple[str, str], bool]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, str, str]] = []
        self.down = False

    async def commit(self, repository: str, sha: str) -> Any:
        raise AssertionError("where never looks commits up")

    async def contains(self, repository: str, commit: str, newer: str) -> bool:
        self.calls.append((repository, commit, newer))
        if self.down:
            raise TransientError("github: 503 Service Unavailable", status=503)
        return self.answers[(commit, newer)]


def in_db(puerta: Puerta, work: Any) -> Any:
    """Run ``work(conn)`` in a write transaction on the app's database (as another replica)."""

    async def run() -> Any:
        db = Database(puerta.database_url)
        try:
            return await db.write(work)
        finally:
            await db.dispose()

    return asyncio.run(run())


def canary_id(conn: Connection, canary: str) -> int:
    namespace, name = canary.split("/")
    return int(
        conn.execute(
            select(canaries.c.id).where(canaries.c.namespace == namespace, canaries.c.name == name)
        ).scalar_one()
    )


def ship(puerta: Puerta, canary: str, seq: int, sha: str, repository: str = REPO) -> None:
    """Record what rollout ``seq`` of ``canary`` ships, as the commit tracker does."""
    now = puerta.clock.now()

    def write(conn: Connection) -> None:
        outbox.store_rollout_commit(
            conn,
            canary_id=canary_id(conn, canary),
            rollout_seq=seq,
            status="resolved",
            image=f"ghcr.io/{repository}:{sha[:7]}",
            repository=repository,
            sha=sha,
            url=f"https://github.com/{repository}/commit/{sha}",
            title=f"Commit {sha[:7]}",
            author_name="Ada Lovelace",
            committed_at=now - timedelta(hours=1),
            resolved_at=now,
            reported=False,
        )

    in_db(puerta, write)


def failed_e2e(puerta: Puerta, canary: str, seq: int, reason: str, url: str) -> None:
    now = puerta.clock.now()

    def write(conn: Connection) -> None:
        assert ci_runs.insert_run(
            conn,
            canary_id=canary_id(conn, canary),
            rollout_seq=seq,
            gate="smoke",
            provider="circleci-main",
            kind="circleci",
            target={"project": "gh/acme/e2e", "ref": "main"},
            correlation=f"{canary}-{seq}-smoke",
            status="failed",
            url=url,
            reason=reason,
            created_at=now,
            updated_at=now,
            finished_at=now,
            deadline_at=now + timedelta(hours=2),
            next_check_at=now + timedelta(days=1),
        )

    in_db(puerta, write)


def ask(puerta: Puerta, sha: str, status: int = 200, token: str | None = None) -> dict[str, Any]:
    response = puerta.api("GET", f"/commits/{sha}", token=token)
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def where(puerta: Puerta, sha: str = SHA[:7]) -> dict[str, Any]:
    """The answer for the one repository, with its environments by name."""
    body = ask(puerta, sha)
    assert len(body["repositories"]) == 1, body
    found: dict[str, Any] = body["repositories"][0]
    found["by_env"] = {e["environment"]: e for e in found["environments"]}
    return found


def minute(puerta: Puerta, zone: str = "UTC") -> str:
    """The clock's now as answers print it."""
    from zoneinfo import ZoneInfo

    return f"{puerta.clock.now().astimezone(ZoneInfo(zone)):%Y-%m-%d %H:%M %Z}"


def roll_out(puerta: Puerta, ns: dict[str, str], base: str, revision: str) -> None:
    """A whole rollout that passes every gate, in Flagger's order."""
    phase = "Initialized" if base == OLD else "Succeeded"
    assert puerta.hook("confirm-rollout", checksum=base, phase=phase, **ns).status_code == 200
    assert puerta.hook("pre-rollout", checksum=revision, **ns).status_code == 200
    puerta.clock.advance(timedelta(minutes=5))
    assert (
        puerta.hook("post-rollout", checksum=revision, phase="Succeeded", **ns).status_code == 200
    )


JOURNEY_POLICY = """
version: 1
auth:
  public_read: true
  tokens:
    - {{name: admin, role: admin, token_env: PUERTA_ADMIN_TOKEN}}
    - {{name: viewer, role: viewer, token_env: PUERTA_VIEWER_TOKEN}}
commits:
  kubernetes:
    default: {{kubeconfig: {kubeconfig}, context: fake}}
  github: {{base_url: "{github}", token: {{token_env: GITHUB_TOKEN}}}}
  rules:
    - repository: "acme/{{name}}"
      sha_from: image-tag
environments:
  staging:
    match: [{{namespace: "staging*"}}]
    promote:
      to: production
      github_release:
        tag: "v{{date}}-{{short_sha}}"
  production:
    match: [{{namespace: "prod*"}}]
    timezone: Asia/Jerusalem
    gates:
      confirm-rollout:
        - type: window
          name: work-hours
          allow:
            - days: Sun-Thu
              hours: ["09:00-21:00"]
"""
IMAGE = f"ghcr.io/{REPO}:1.4.2-{SHA[:7]}"


@pytest.fixture
def journey(
    database_url: str, clock: ManualClock, tmp_path: Path
) -> Iterator[tuple[Puerta, FakeGitHubRepos]]:
    """Puerta resolving commits through a fake Kubernetes (both canaries run ``IMAGE``) and a
    fake GitHub (which knows ``SHA`` and takes the releases of staging's promotions), with a
    deployment window on production's confirm-rollout."""
    k8s = FakeKubernetes()
    for namespace in ("staging", "prod"):
        k8s.add_canary(namespace, "podinfo")
        k8s.add_workload(namespace, "Deployment", "podinfo", containers={"podinfo": IMAGE})
    github = FakeGitHubRepos(token="ghp-where")
    github.add_commit(
        REPO,
        SHA,
        author_email="ada@acme.example",
        author_name="Ada Lovelace",
        message="Fix the cart total rounding",
    )
    with serve_in_thread(k8s.app) as k, serve_in_thread(github.app) as g:
        policy = JOURNEY_POLICY.format(
            kubeconfig=write_kubeconfig(tmp_path / "kubeconfig", k), github=g
        )
        app = Puerta(database_url, policy, clock)
        app.environ["GITHUB_TOKEN"] = "ghp-where"
        app.start()
        try:
            yield app, github
        finally:
            app.stop()


def found_yet(puerta: Puerta) -> bool:
    """Whether the commit tracker (a background worker) has resolved a rollout to ``SHA``."""
    return bool(puerta.api("GET", f"/commits/{SHA[:7]}").status_code == 200)


def production(puerta: Puerta) -> dict[str, Any]:
    found: dict[str, Any] = where(puerta)["by_env"]["production"]
    return found


def test_a_commit_followed_from_staging_to_production(
    journey: tuple[Puerta, FakeGitHubRepos],
) -> None:
    puerta, github = journey
    jerusalem = "Asia/Jerusalem"
    freeze = {"environment": "production", "reason": "incident 142"}
    frozen = puerta.api("POST", "/freezes", token=ADMIN, json=freeze)
    assert frozen.status_code in (200, 201), frozen.text

    # staging: Flagger starts the analysis; the tracker learns the commit from the workload
    assert (
        puerta.hook("confirm-rollout", checksum=OLD, phase="Initialized", **STAGING).status_code
        == 200
    )
    puerta.clock.advance(timedelta(minutes=1))
    assert puerta.hook("pre-rollout", checksum=NEW, **STAGING).status_code == 200
    started = minute(puerta)
    until(lambda: found_yet(puerta))
    found = where(puerta)
    assert (found["repository"], found["sha"]) == (REPO, SHA)
    assert (found["commit"]["title"], found["commit"]["author_name"]) == (
        "Fix the cart total rounding",
        "Ada Lovelace",
    )
    assert [e["environment"] for e in found["environments"]] == ["staging", "production"]
    staging = found["by_env"]["staging"]
    assert (staging["state"], staging["canary"], staging["rollout_seq"], staging["image"]) == (
        "progressing",
        "staging/podinfo",
        1,
        IMAGE,
    )
    assert staging["text"] == f"not in staging yet: rolling out since {started}"
    assert found["by_env"]["production"]["state"] == "not-deployed"
    assert found["summary"] == (
        f"not in staging yet: rolling out since {started}; not deployed to production"
    )

    # staging: succeeded; its promotion to production waits for the freeze
    puerta.clock.advance(timedelta(minutes=5))
    assert (
        puerta.hook("post-rollout", checksum=NEW, phase="Succeeded", **STAGING).status_code == 200
    )
    in_staging = minute(puerta)
    until(lambda: production(puerta)["state"] == "promotion")
    until(lambda: production(puerta)["promotion"]["status"] == "held")
    (promotion,) = puerta.api("GET", "/promotions", token=VIEWER).json()["promotions"]
    held = promotion["held_reason"]
    assert "incident 142" in held
    found = where(puerta)
    staging, prod = found["by_env"]["staging"], found["by_env"]["production"]
    assert (staging["state"], staging["text"]) == ("live", f"in staging since {in_staging}")
    assert (prod["canary"], prod["rollout_seq"], prod["reason"]) == ("staging/podinfo", 1, held)
    assert prod["text"] == f"promotion to production held: {held}"
    assert prod["promotion"]["from_environment"] == "staging"
    assert found["summary"] == f"in staging since {in_staging}; {prod['text']}"
    assert github.releases == []
    with serve_in_thread(puerta.build_app()) as server:
        code, out = run("where", SHA[:7], "--server", server)
    assert code == 0, out
    assert out.splitlines()[1:4] == [
        found["summary"],
        f"  staging     in staging since {in_staging}  [staging/podinfo #1]",
        f"  production  {prod['text']}  [from staging/podinfo #1]",
    ]

    # the freeze is lifted: the promotion makes the release, and production has it coming
    lifted = puerta.api("POST", "/environments/production/unfreeze", token=ADMIN, json={})
    assert lifted.status_code == 200, lifted.text
    puerta.clock.advance(timedelta(seconds=31))
    until(lambda: production(puerta)["promotion"]["status"] == "done")
    (release,) = github.releases
    assert (release.tag_name, release.target_sha) == (f"v20261126-{SHA[:7]}", SHA)
    prod = production(puerta)
    assert prod["state"] == "promotion"
    assert (prod["promotion"]["tag"], prod["promotion"]["url"], prod["link"]) == (
        release.tag_name,
        release.html_url,
        release.html_url,
    )
    assert prod["text"] == (
        f"promoted to production at {minute(puerta, jerusalem)} "
        f"(release {release.tag_name}, {release.html_url}); not live there yet"
    )

    # production's pipeline deploys it after hours: the window gate holds the rollout
    puerta.clock.set(datetime(2026, 11, 26, 20, 0, tzinfo=UTC))  # Thu 22:00 in Jerusalem
    refused = puerta.hook("confirm-rollout", checksum=OLD, phase="Succeeded", **PROD)
    assert refused.status_code == 403
    window = refused.text  # the gate's own words, as Flagger was told
    assert window == (
        "outside the production deployment window (Sun-Thu 09:00-21:00 Asia/Jerusalem); "
        "opens Sun 2026-11-29 09:00 IST, in 2d 11h; 1st in line"
    )
    until(lambda: production(puerta)["state"] == "waiting")
    found = where(puerta)
    prod = found["by_env"]["production"]
    assert (prod["canary"], prod["rollout_seq"], prod["reason"]) == ("prod/podinfo", 1, window)
    assert prod["text"] == f"not in production yet: {window}"
    assert prod["at"] == "2026-11-29T07:00:00Z"  # when the window opens
    assert prod["promotion"] is None
    assert found["summary"] == f"in staging since {in_staging}; not in production yet: {window}"
    with serve_in_thread(puerta.build_app()) as server:
        code, out = run("where", SHA[:7], "--server", server)
    assert code == 0, out
    assert f"  production  not in production yet: {window}  [prod/podinfo #1]" in out.splitlines()

    # Sunday 09:00 in Jerusalem: the window opens and Flagger rolls it out
    puerta.clock.set(datetime(2026, 11, 29, 7, 0, tzinfo=UTC))
    assert (
        puerta.hook("confirm-rollout", checksum=OLD, phase="Succeeded", **PROD).status_code == 200
    )
    assert puerta.hook("pre-rollout", checksum=NEW, **PROD).status_code == 200
    prod = production(puerta)
    assert prod["state"] == "progressing"
    assert prod["text"] == f"not in production yet: rolling out since {minute(puerta, jerusalem)}"

    puerta.clock.advance(timedelta(minutes=10))
    assert puerta.hook("post-rollout", checksum=NEW, phase="Succeeded", **PROD).status_code == 200
    found = where(puerta)
    assert found["by_env"]["production"]["state"] == "live"
    # production's people read Jerusalem time
    assert found["summary"] == f"in production since {minute(puerta, jerusalem)}"
    assert found["summary"].endswith(" IST")
    assert found["contains_checked"] is True  # nothing newer to compare with GitHub

    # the full SHA, in capitals, names the same commit
    assert ask(puerta, SHA.upper())["repositories"][0]["summary"] == found["summary"]


def test_a_failed_e2e_run_is_the_reason(puerta: Puerta) -> None:
    assert (
        puerta.hook("confirm-rollout", checksum=OLD, phase="Initialized", **STAGING).status_code
        == 200
    )
    assert puerta.hook("pre-rollout", checksum=NEW, **STAGING).status_code == 200
    ship(puerta, "staging/podinfo", 1, SHA)
    puerta.clock.advance(timedelta(minutes=20))
    reason = 'workflow "e2e" failed (job "playwright" failed): ' + CIRCLE
    failed_e2e(puerta, "staging/podinfo", 1, reason, CIRCLE)
    assert puerta.hook("post-rollout", checksum=NEW, phase="Failed", **STAGING).status_code == 200

    found = where(puerta)
    staging = found["by_env"]["staging"]
    assert (staging["state"], staging["link"]) == ("failed", CIRCLE)
    assert staging["reason"] == 'E2E smoke failed: workflow "e2e" failed (job "playwright" failed)'
    assert staging["text"] == (
        f"failed on staging at {minute(puerta)} because {staging['reason']}: {CIRCLE}"
    )
    assert staging["at"].startswith(puerta.clock.now().strftime("%Y-%m-%dT%H:%M"))
    assert found["summary"] == f"{staging['text']}; not deployed to production"

    # without a failed E2E run, Flagger's analysis is all Puerta knows
    puerta.hook("confirm-rollout", name="cart", checksum=OLD, phase="Initialized", **STAGING)
    puerta.hook("pre-rollout", name="cart", checksum=NEW, **STAGING)
    ship(puerta, "staging/cart", 1, LATER)
    puerta.hook("post-rollout", name="cart", checksum=NEW, phase="Failed", **STAGING)
    cart = where(puerta, LATER[:10])["by_env"]["staging"]
    assert cart["text"] == f"failed on staging at {minute(puerta)} because Flagger rolled it back"
    assert cart["link"] is None


def test_a_superseded_rollout(puerta: Puerta) -> None:
    puerta.hook("confirm-rollout", checksum=OLD, phase="Initialized", **STAGING)
    puerta.hook("pre-rollout", checksum=NEW, **STAGING)
    ship(puerta, "staging/podinfo", 1, SHA)
    puerta.hook("rollout", checksum=NEWER, **STAGING)  # a newer revision mid-analysis
    staging = where(puerta)["by_env"]["staging"]
    assert staging["state"] == "superseded"
    assert staging["text"] == "not in staging: replaced by a newer revision before it finished"


def test_an_older_commit_is_live_through_a_newer_one(puerta: Puerta) -> None:
    roll_out(puerta, STAGING, OLD, NEW)
    ship(puerta, "staging/podinfo", 1, SHA)
    first = minute(puerta)
    puerta.clock.advance(timedelta(hours=1))
    roll_out(puerta, STAGING, NEW, NEWER)
    ship(puerta, "staging/podinfo", 2, LATER)
    second = minute(puerta)

    # no commit source: Puerta cannot tell whether LATER includes SHA, and says so
    found = where(puerta)
    staging = found["by_env"]["staging"]
    assert staging["state"] == "replaced"
    assert staging["text"] == (
        f"no longer in staging: live from {first} until {second}, replaced by commit 9c1e5a7, "
        "which may include it (Puerta has no GitHub access to compare commits)"
    )
    assert staging["note"] == (
        "unknown whether 9c1e5a7 live on staging/podinfo includes it: "
        "Puerta has no GitHub access to compare commits"
    )
    assert found["contains_checked"] is False

    source = FakeSource({(SHA, LATER): True})
    puerta.http.app.state.commit_source = source  # type: ignore[attr-defined]
    found = where(puerta)
    staging = found["by_env"]["staging"]
    assert (staging["state"], staging["through"], staging["rollout_seq"]) == (
        "live-through-newer",
        LATER,
        2,
    )
    assert staging["text"] == f"in staging since {second} (through newer commit 9c1e5a7)"
    assert found["summary"] == f"{staging['text']}; not deployed to production"
    assert found["contains_checked"] is True
    assert source.calls == [(REPO, SHA, LATER)]

    # the answer is cached for a day: neither the next request nor one five hours later asks again
    assert where(puerta)["by_env"]["staging"]["state"] == "live-through-newer"
    puerta.clock.advance(timedelta(hours=5))
    assert where(puerta)["by_env"]["staging"]["state"] == "live-through-newer"
    assert len(source.calls) == 1

    def cached(conn: Connection) -> list[Any]:
        return list(conn.execute(select(lookup_cache)).all())

    rows = in_db(puerta, cached)
    assert [(r.kind, r.key, r.value) for r in rows] == [
        ("contains", f"{REPO}:{SHA}..{LATER}", True)
    ]
    assert rows[0].expires_at == puerta.clock.now() - timedelta(hours=5) + timedelta(days=1)

    # the newer commit itself is simply live
    assert where(puerta, LATER[:7])["by_env"]["staging"]["state"] == "live"


def test_not_included_is_cached_briefly_and_an_outage_is_unknown(puerta: Puerta) -> None:
    roll_out(puerta, STAGING, OLD, NEW)
    ship(puerta, "staging/podinfo", 1, SHA)
    puerta.clock.advance(timedelta(hours=1))
    roll_out(puerta, STAGING, NEW, NEWER)
    ship(puerta, "staging/podinfo", 2, LATER)
    second = minute(puerta)
    source = FakeSource({(SHA, LATER): False})
    puerta.http.app.state.commit_source = source  # type: ignore[attr-defined]

    found = where(puerta)
    staging = found["by_env"]["staging"]
    assert staging["state"] == "replaced"
    assert staging["text"].endswith("replaced by commit 9c1e5a7, which does not include it")
    assert (staging["note"], found["contains_checked"]) == (None, True)
    where(puerta)
    assert len(source.calls) == 1  # cached ...
    puerta.clock.advance(timedelta(hours=2))
    source.down = True
    found = where(puerta)  # ... for an hour only; then GitHub is down: unknown, not an error
    assert len(source.calls) == 2
    staging = found["by_env"]["staging"]
    assert staging["state"] == "replaced"
    assert "GitHub did not answer" in staging["note"] and "503" in staging["note"]
    assert found["contains_checked"] is False
    where(puerta)
    assert len(source.calls) == 3  # an outage is never cached

    # asked about the newer commit, nothing needs comparing: it is live itself
    found = where(puerta, LATER[:7])
    assert found["by_env"]["staging"]["state"] == "live"
    assert found["summary"] == f"in staging since {second}; not deployed to production"
    assert len(source.calls) == 3


def test_unknown_bad_ambiguous_and_several_repositories(puerta: Puerta) -> None:
    assert ask(puerta, "abcdef1", 404)["detail"] == (
        "commit abcdef1 has not been seen in any rollout"
    )
    for bad in ("abc12", "not-a-sha", "g" * 10, "a" * 65):
        assert "not a commit SHA" in ask(puerta, bad, 400)["detail"], bad

    puerta.hook("confirm-rollout", checksum=OLD, **STAGING)
    puerta.hook("confirm-rollout", name="cart", checksum=OLD, **STAGING)
    puerta.hook("confirm-rollout", name="docs", checksum=OLD, **STAGING)
    ship(puerta, "staging/podinfo", 1, "abcdef1" + "1" * 33)
    ship(puerta, "staging/cart", 1, "abcdef1" + "2" * 33)
    ship(puerta, "staging/docs", 1, "abcdef1" + "1" * 33, repository="acme/docs")
    assert "ambiguous in acme/podinfo" in ask(puerta, "abcdef1", 400)["detail"]

    body = ask(puerta, "abcdef11")
    assert [r["repository"] for r in body["repositories"]] == ["acme/docs", REPO]
    assert all(r["summary"].startswith("not in staging yet: ") for r in body["repositories"])


def test_reading_needs_a_token_without_public_read(puerta: Puerta, policy_text: str) -> None:
    puerta.restart(policy_text.replace("public_read: true", "public_read: false"))
    assert ask(puerta, SHA[:7], 401)["detail"]
    assert ask(puerta, SHA[:7], 404, token=VIEWER)["detail"].startswith("commit 3f9a2c1 ")


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def test_puerta_where(puerta: Puerta, live: str) -> None:  # noqa: F811
    roll_out(puerta, STAGING, OLD, NEW)
    ship(puerta, "staging/podinfo", 1, SHA)
    in_staging = minute(puerta)
    puerta.hook("confirm-rollout", checksum=OLD, phase="Succeeded", **PROD)
    ship(puerta, "prod/podinfo", 1, SHA)

    code, out = run("where", SHA[:7], "--server", live)
    assert code == 0, out
    waiting = "not in production yet: waiting for manual approval (puerta approve prod/podinfo)"
    assert out.splitlines() == [
        f"{REPO}@{SHA[:12]} Commit 3f9a2c1 (Ada Lovelace)",
        f"in staging since {in_staging}; {waiting}",
        f"  staging     in staging since {in_staging}  [staging/podinfo #1]",
        f"  production  {waiting}  [prod/podinfo #1]",
        "  (newer live commits were not all compared with this one, so it may be live through "
        "one of them)",
    ]

    code, out = run("where", SHA, "--json", "--server", live)
    assert code == 0, out
    assert '"state": "waiting"' in out and f'"sha": "{SHA}"' in out

    code, out = run("where", "abcdef1", "--server", live)
    assert code == 1 and "commit abcdef1 has not been seen in any rollout (HTTP 404)" in out
    code, out = run("where", "abc", "--server", live)
    assert code == 2 and "7 to 64 hexadecimal characters" in out


def test_titles_cannot_drive_the_terminal(puerta: Puerta, live: str) -> None:  # noqa: F811
    puerta.hook("confirm-rollout", checksum=OLD, **STAGING)

    def write(conn: Connection) -> None:
        outbox.store_rollout_commit(
            conn,
            canary_id=canary_id(conn, "staging/podinfo"),
            rollout_seq=1,
            status="resolved",
            repository=REPO,
            sha=SHA,
            title="fix \x1b[2Jcart\nsecond line",
            resolved_at=puerta.clock.now(),
            reported=False,
        )

    in_db(puerta, write)
    code, out = run("where", SHA[:7], "--server", live)
    assert code == 0, out
    assert "\x1b" not in out
    assert out.splitlines()[0] == f"{REPO}@{SHA[:12]} fix \\x1b[2Jcart second line"


def test_times_are_read_in_each_environments_zone(clock: ManualClock) -> None:
    """The pure answer, for the one thing the API tests cannot show cheaply: a window's
    reopening in the future is named once, a stale one not at all."""
    from zoneinfo import ZoneInfo

    from puerta.domain import whereabouts as w

    now = clock.now()
    opens = datetime(2026, 11, 29, 7, 0, tzinfo=ZoneInfo("UTC"))
    waiting = w.SeenRollout(
        canary="prod/podinfo",
        canary_id=1,
        seq=3,
        environment="production",
        status="pending",
        started_at=now,
        repository=REPO,
        sha=SHA,
        waiting_reason="outside the production deployment window",
        retry_at=opens,
    )
    envs = [w.Environment("production", ZoneInfo("Asia/Jerusalem"))]
    answer = w.locate(
        repository=REPO,
        sha=SHA,
        environments=envs,
        shipments=[waiting],
        live=[],
        answers={},
        now=now,
    )
    assert answer.summary == (
        "not in production yet: outside the production deployment window; "
        "changes at Sun 2026-11-29 09:00 IST"
    )
    assert answer.places[0].at == opens
    stale = w.locate(
        repository=REPO,
        sha=SHA,
        environments=envs,
        shipments=[waiting],
        live=[],
        answers={},
        now=opens + timedelta(minutes=1),
    )
    assert stale.summary == "not in production yet: outside the production deployment window"
    # a window gate names the moment itself: it is not said twice
    said = replace(waiting, waiting_reason="closed; opens Sun 2026-11-29 09:00 IST, in 2d")
    answer = w.locate(
        repository=REPO,
        sha=SHA,
        environments=envs,
        shipments=[said],
        live=[],
        answers={},
        now=now,
    )
    assert answer.summary == "not in production yet: closed; opens Sun 2026-11-29 09:00 IST, in 2d"
    assert answer.places[0].at == opens


def test_the_dashboard_search_answers_where_the_commit_is(puerta: Puerta) -> None:
    puerta.hook("confirm-rollout", checksum=OLD, phase="Initialized", **STAGING)
    puerta.hook("pre-rollout", checksum=NEW, **STAGING)
    ship(puerta, "staging/podinfo", 1, SHA)
    reason = 'workflow "e2e" failed (job "playwright" failed): ' + CIRCLE
    failed_e2e(puerta, "staging/podinfo", 1, reason, CIRCLE)
    puerta.hook("post-rollout", checksum=NEW, phase="Failed", **STAGING)

    page = puerta.http.get("/ui/commits", params={"q": SHA[:10]})
    assert page.status_code == 200
    assert "Where this commit is" in page.text
    assert where(puerta)["summary"] in page.text.replace("&#34;", '"')
    assert f'<a href="{CIRCLE}" rel="noopener noreferrer">link</a>' in page.text
    unknown = puerta.http.get("/ui/commits", params={"q": "abcdef1234"})
    assert "Where this commit is" not in unknown.text
    assert "Puerta does not know commits yet" in unknown.text


def test_a_promotion_answers_until_a_rollout_there_tells_more(clock: ManualClock) -> None:
    """The pure answer for the promotion states the walkthrough cannot hold still (pending,
    retried, failed, done without a release), and for a commit promoted again after its
    production rollout failed."""
    from zoneinfo import ZoneInfo

    from puerta.domain import whereabouts as w

    now = clock.now()
    envs = [w.Environment("staging"), w.Environment("production", ZoneInfo("Asia/Jerusalem"))]

    def staging(seq: int, promotion: w.Promotion) -> w.SeenRollout:
        return w.SeenRollout(
            canary="staging/podinfo",
            canary_id=1,
            seq=seq,
            environment="staging",
            status="succeeded",
            started_at=now - timedelta(hours=3 - seq),
            finished_at=now - timedelta(hours=3 - seq, minutes=-5),
            repository=REPO,
            sha=SHA,
            promotion=promotion,
        )

    def production(*shipments: w.SeenRollout) -> w.Place:
        running = [r for r in shipments if r.status == "succeeded"][-1:]  # staging's latest
        answer = w.locate(
            repository=REPO,
            sha=SHA,
            environments=envs,
            shipments=shipments,
            live=running,
            answers={},
            now=now,
        )
        return answer.places[1]

    sent = w.Promotion("production", "pending", now, from_environment="staging")
    place = production(staging(1, sent))
    assert (place.state, place.text, place.since) == (
        w.State.PROMOTION,
        "promotion to production pending",
        now,
    )
    assert (place.canary, place.rollout_seq, place.promotion) == ("staging/podinfo", 1, sent)
    retried = replace(sent, last_error="github: 502 Bad Gateway")
    assert production(staging(1, retried)).text == (
        "promotion to production pending (retrying after: github: 502 Bad Gateway)"
    )
    failed = replace(sent, status="failed", last_error="no GitHub configured (commits.github)")
    place = production(staging(1, failed))
    assert place.text == "promotion to production failed: no GitHub configured (commits.github)"
    assert place.reason == "no GitHub configured (commits.github)"
    dispatched = replace(sent, status="done", done_at=now + timedelta(minutes=1))
    place = production(staging(1, dispatched))
    assert place.text == "promoted to production at 2026-11-26 12:01 IST; not live there yet"
    assert (place.since, place.link) == (now + timedelta(minutes=1), None)

    # production's rollout of the commit failed; staging rolled it out again and promoted it
    # anew: the new promotion is the news; before it, the failure was
    rolled_back = w.SeenRollout(
        canary="prod/podinfo",
        canary_id=2,
        seq=4,
        environment="production",
        status="failed",
        started_at=now - timedelta(hours=1, minutes=30),
        finished_at=now - timedelta(hours=1),
        repository=REPO,
        sha=SHA,
    )
    first = replace(sent, status="done", created_at=now - timedelta(hours=2))
    assert production(staging(1, first), rolled_back).state is w.State.FAILED
    again = replace(sent, status="held", held_reason="production is frozen: incident 142")
    place = production(staging(1, first), staging(2, again), rolled_back)
    assert (place.state, place.rollout_seq) == (w.State.PROMOTION, 2)
    assert place.text == "promotion to production held: production is frozen: incident 142"
    # a production rollout under way tells more than any promotion
    under_way = replace(rolled_back, seq=5, status="progressing", started_at=now, finished_at=None)
    place = production(staging(1, first), staging(2, again), rolled_back, under_way)
    assert (place.state, place.rollout_seq, place.promotion) == (w.State.PROGRESSING, 5, None)
