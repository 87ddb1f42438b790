"""The direct message to the commit's author, end to end: Puerta reads the Canary's workload
from (a fake) Kubernetes API, maps its image tag to a commit by the policy's rules, asks (a
fake) GitHub for the author, finds them on (a fake) Slack, and DMs only the curated notices.
Every way this can fail is said once in the rollout's thread, and nothing else is held up."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import APPROVER, VIEWER, Puerta, flagger_payload
from fakes.github import FakeGitHub
from fakes.github_repos import FakeGitHubRepos, fake_sha
from fakes.kubernetes import FakeKubernetes, write_kubeconfig
from fakes.server import serve_in_thread
from fakes.slack import FakeSlack
from puerta.clock import ManualClock
from waiting import until

SHA = fake_sha("fix checkout")
POLICY = """
version: 1
auth:
  tokens:
    - {{name: viewer, role: viewer, token_env: PUERTA_VIEWER_TOKEN}}
    - {{name: approver, role: approver, token_env: PUERTA_APPROVER_TOKEN}}
notifications:
  slack: {{token: {{token_env: SLACK_TOKEN}}, base_url: "{slack}/api/", channel_interval: 0s}}
  routes:
    - channel: "#deploys"
  direct_messages:
    enabled: true
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
    gates:
      confirm-rollout:
        - type: manual
  production:
    match: [{{namespace: "prod*"}}]
  nightly:
    match: [{{namespace: "nightly*"}}]
    timezone: Europe/Berlin
    gates:
      confirm-rollout:
        - type: window
          allow:
            - days: Mon-Fri
              hours: ["20:00-23:00"]
"""


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    slack = FakeSlack(token="xoxb-authors")
    slack.add_channel("deploys", id="C0DEPLOYS")
    slack.add_user("dana@acme.example", "U0DANA")
    k8s = FakeKubernetes()
    for namespace in ("staging", "prod", "nightly", "qa"):
        k8s.add_canary(namespace, "podinfo")
        k8s.add_workload(
            namespace,
            "Deployment",
            "podinfo",
            containers={"podinfo": f"ghcr.io/acme/podinfo:{SHA[:7]}"},
        )
    github = FakeGitHubRepos(token="ghp-authors")
    github.add_commit(
        "acme/podinfo",
        SHA,
        author_email="Dana@acme.example",
        author_name="Dana",
        message="Fix checkout",
    )
    with (
        serve_in_thread(slack.app) as s,
        serve_in_thread(k8s.app) as k,
        serve_in_thread(github.app) as g,
    ):
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", k)
        yield {
            "slack": slack,
            "k8s": k8s,
            "github": github,
            "policy": POLICY.format(slack=s, github=g, kubeconfig=kubeconfig),
            "slack_url": s,
        }


@pytest.fixture
def puerta_with(database_url: str, world: dict[str, Any], clock: ManualClock) -> Iterator[Puerta]:
    puerta = Puerta(database_url, world["policy"], clock)
    puerta.environ.update({"SLACK_TOKEN": "xoxb-authors", "GITHUB_TOKEN": "ghp-authors"})
    puerta.start()
    try:
        yield puerta
    finally:
        puerta.stop()


def call(puerta: Puerta, hook: str, namespace: str = "staging", **overrides: Any) -> httpx.Response:
    body = flagger_payload(hook, namespace=namespace, name="podinfo", checksum="85d557f47b")
    body.update(overrides)
    if hook != "event":
        body["metadata"] = {}
    response: httpx.Response = puerta.http.post(f"/hooks/{hook}", json=body)
    return response


def settled(puerta: Puerta) -> bool:
    body = puerta.api("GET", "/notifications", token=VIEWER).json()
    return int(body["counts"].get("pending", 0)) == 0


def test_the_author_gets_only_the_curated_messages(
    puerta_with: Puerta, world: dict[str, Any]
) -> None:
    puerta, slack, github = puerta_with, world["slack"], world["github"]
    assert call(puerta, "confirm-rollout", phase="Initialized").status_code == 403
    assert call(puerta, "confirm-rollout", phase="Waiting").status_code == 403  # no repeat
    meta = {
        "eventMessage": "Halt advancement podinfo.staging waiting for approval",
        "timestamp": "1764151200000",
    }
    assert call(puerta, "event", metadata={**meta, "eventType": "Normal"}).status_code == 200
    until(lambda: settled(puerta))

    (dm,) = slack.dms("U0DANA")
    assert dm.text == (
        f":hourglass_flowing_sand: Your change `staging/podinfo` (acme/podinfo@{SHA[:7]}) is "
        "waiting to go to staging: waiting for manual approval (puerta approve staging/podinfo)"
    )
    (parent,) = slack.messages("#deploys")
    assert (
        f"commit acme/podinfo@<https://github.com/acme/podinfo/commit/{SHA}|{SHA[:7]}>"
        in parent.text
    )
    assert "“Fix checkout” by Dana" in parent.text
    assert github.commit_lookups == 1  # resolved once per rollout, then cached


def test_an_author_without_slack_is_reported_once(
    puerta_with: Puerta, world: dict[str, Any]
) -> None:
    puerta, slack = puerta_with, world["slack"]
    slack.users.clear()
    assert call(puerta, "confirm-rollout", phase="Initialized").status_code == 403
    until(lambda: settled(puerta))
    (parent,) = slack.messages("#deploys")
    notes = [m.text for m in slack.thread("#deploys", parent.ts) if "no direct message" in m.text]
    assert notes == [
        ":grey_exclamation: *note*: the commit's author gets no direct message: "
        "dana@acme.example has no Slack account with that email "
        "(add it to notifications.direct_messages.people)"
    ]
    skipped = puerta.api("GET", "/notifications", token=VIEWER, params={"status": "skipped"})
    assert skipped.json()["total"] == 1


def test_a_workload_puerta_may_not_read_is_reported(
    puerta_with: Puerta, world: dict[str, Any]
) -> None:
    puerta, slack, k8s = puerta_with, world["slack"], world["k8s"]
    k8s.forbid("deployments")
    assert call(puerta, "confirm-rollout", phase="Initialized").status_code == 403
    until(lambda: settled(puerta))
    (parent,) = slack.messages("#deploys")
    assert "commit: unknown (could not read the workload:" in parent.text
    notes = [m.text for m in slack.thread("#deploys", parent.ts) if "no direct message" in m.text]
    assert len(notes) == 1
    assert "forbidden" in notes[0].lower()
    assert slack.dms("U0DANA") == []


def test_a_tag_that_names_no_commit_is_reported(puerta_with: Puerta, world: dict[str, Any]) -> None:
    puerta, slack, k8s = puerta_with, world["slack"], world["k8s"]
    k8s.add_workload(
        "staging", "Deployment", "podinfo", containers={"podinfo": "ghcr.io/acme/podinfo:latest"}
    )
    assert call(puerta, "confirm-rollout", phase="Initialized").status_code == 403
    until(lambda: settled(puerta))
    (parent,) = slack.messages("#deploys")
    assert "commit: unknown (" in parent.text
    notes = [m.text for m in slack.thread("#deploys", parent.ts) if "no direct message" in m.text]
    assert len(notes) == 1
    assert "latest" in notes[0]


def test_a_failed_rollout_tells_the_author_twice_in_all(
    puerta_with: Puerta, world: dict[str, Any]
) -> None:
    """Queued, then failed: exactly the two curated messages, whatever else happens; the
    failure names Flagger's last Warning that says why ("Canary failed!" says only that)."""
    puerta, slack = puerta_with, world["slack"]
    assert call(puerta, "confirm-rollout", phase="Initialized").status_code == 403
    approve = puerta.api("POST", "/canaries/staging/podinfo/approve", token=APPROVER, json={})
    assert approve.status_code == 200
    assert call(puerta, "confirm-rollout", phase="Waiting").status_code == 200
    assert call(puerta, "pre-rollout", phase="Progressing").status_code == 200
    for message, kind in (
        ("Starting canary analysis for podinfo.staging", "Normal"),
        ("Halt advancement podinfo.staging request-success-rate 87.50% < 99%", "Warning"),
        ("Rolling back podinfo.staging failed checks threshold reached 5", "Warning"),
        ("Canary failed! Scaling down podinfo.staging", "Warning"),
    ):
        meta = {"eventMessage": message, "eventType": kind, "timestamp": "1764151200000"}
        assert call(puerta, "event", metadata=meta).status_code == 200
    assert call(puerta, "post-rollout", phase="Failed").status_code == 200
    until(lambda: settled(puerta))

    dms = [m.text for m in slack.dms("U0DANA")]
    assert len(dms) == 2
    assert dms[0].startswith(":hourglass_flowing_sand: Your change `staging/podinfo`")
    assert dms[1] == (
        f":boom: Your change `staging/podinfo` (acme/podinfo@{SHA[:7]}) failed in staging and "
        "was rolled back: rollout #1 failed: Rolling back podinfo.staging failed checks "
        "threshold reached 5"
    )
    (parent,) = slack.messages("#deploys")
    assert "*failed*" in parent.text


def dms_of(slack: FakeSlack, user: str = "U0DANA") -> list[str]:
    return [m.text for m in slack.dms(user)]


def test_the_author_hears_when_the_change_reaches_each_environment(
    puerta_with: Puerta, world: dict[str, Any]
) -> None:
    """Staging (after an approval), then production: one "reached" DM for each."""
    puerta, slack = puerta_with, world["slack"]
    assert call(puerta, "confirm-rollout", phase="Initialized").status_code == 403
    approve = puerta.api("POST", "/canaries/staging/podinfo/approve", token=APPROVER, json={})
    assert approve.status_code == 200
    for namespace in ("staging", "prod"):
        assert call(puerta, "confirm-rollout", namespace, phase="Waiting").status_code == 200
        assert call(puerta, "pre-rollout", namespace, phase="Progressing").status_code == 200
        assert call(puerta, "post-rollout", namespace, phase="Succeeded").status_code == 200
    until(lambda: settled(puerta))

    commit = f"(acme/podinfo@{SHA[:7]})"
    reached = [text for text in dms_of(slack) if text.startswith(":rocket:")]
    assert sorted(reached) == [
        f":rocket: Your change `prod/podinfo` {commit} reached production.",
        f":rocket: Your change `staging/podinfo` {commit} reached staging.",
    ]
    assert len(dms_of(slack)) == 3  # and the approval wait in staging


def test_a_closed_window_tells_the_author_until_when(
    puerta_with: Puerta, world: dict[str, Any]
) -> None:
    """Thursday 11:00 in Berlin; the window is weekdays 20:00-23:00 there."""
    puerta, slack = puerta_with, world["slack"]
    assert call(puerta, "confirm-rollout", "nightly", phase="Initialized").status_code == 403
    assert call(puerta, "confirm-rollout", "nightly", phase="Waiting").status_code == 403
    until(lambda: settled(puerta))

    assert dms_of(slack) == [
        f":hourglass_flowing_sand: Your change `nightly/podinfo` (acme/podinfo@{SHA[:7]}) is "
        "waiting to go to nightly: outside the nightly deployment window (Mon-Fri 20:00-23:00 "
        "Europe/Berlin); opens Thu 2026-11-26 20:00 CET, in 9h; 1st in line"
    ]


def test_a_commit_github_does_not_know_is_said_in_the_thread(
    puerta_with: Puerta, world: dict[str, Any]
) -> None:
    """The image names a commit GitHub answers 404 for (never pushed, or a private fork):
    the parent says so, the thread says once why there is no DM, and the rest goes on."""
    puerta, slack, k8s, github = puerta_with, world["slack"], world["k8s"], world["github"]
    unknown = fake_sha("never pushed")
    k8s.add_workload(
        "staging",
        "Deployment",
        "podinfo",
        containers={"podinfo": f"ghcr.io/acme/podinfo:{unknown[:7]}"},
    )
    assert call(puerta, "confirm-rollout", phase="Initialized").status_code == 403
    approve = puerta.api("POST", "/canaries/staging/podinfo/approve", token=APPROVER, json={})
    assert approve.status_code == 200
    assert call(puerta, "confirm-rollout", phase="Waiting").status_code == 200
    assert call(puerta, "post-rollout", phase="Succeeded").status_code == 200
    until(lambda: settled(puerta))

    (parent,) = slack.messages("#deploys")
    assert f"commit: unknown (commit {unknown[:7]} of acme/podinfo: " in parent.text
    assert "*succeeded*" in parent.text
    replies = [m.text for m in slack.thread("#deploys", parent.ts)]
    notes = [text for text in replies if "no direct message" in text]
    assert len(notes) == 1
    assert f"commit {unknown[:7]} of acme/podinfo" in notes[0]
    assert ":rocket: *succeeded*: rollout #1 promoted" in replies
    assert slack.dms("U0DANA") == []
    assert github.commit_lookups >= 1
    body = puerta.api("GET", "/notifications", token=VIEWER).json()
    assert body["counts"].get("failed", 0) == 0
    assert body["counts"]["skipped"] == 2  # queued and succeeded, both said in one note


def test_without_commit_rules_the_no_dm_note_is_posted_once_per_rollout(
    database_url: str, world: dict[str, Any], clock: ManualClock
) -> None:
    """DMs on, but no ``commits`` section: nobody can be found, and the thread says so once
    per rollout, however many DMs were due."""
    policy = world["policy"]
    policy = policy[: policy.index("commits:")] + policy[policy.index("environments:") :]
    puerta = Puerta(database_url, policy, clock)
    puerta.environ.update({"SLACK_TOKEN": "xoxb-authors"})
    puerta.start()
    try:
        assert call(puerta, "confirm-rollout", phase="Initialized").status_code == 403
        approve = puerta.api("POST", "/canaries/staging/podinfo/approve", token=APPROVER, json={})
        assert approve.status_code == 200
        assert call(puerta, "confirm-rollout", phase="Waiting").status_code == 200
        assert call(puerta, "post-rollout", phase="Failed").status_code == 200
        until(lambda: settled(puerta))
        (parent,) = world["slack"].messages("#deploys")
        notes = [
            m.text
            for m in world["slack"].thread("#deploys", parent.ts)
            if "no direct message" in m.text
        ]
        assert notes == [
            ":grey_exclamation: *note*: the commit's author gets no direct message: commit "
            "tracking is not configured (commits: in the policy)"
        ]
        skipped = puerta.api("GET", "/notifications", token=VIEWER, params={"status": "skipped"})
        assert skipped.json()["total"] == 2  # queued and failed
    finally:
        puerta.stop()


# ---- E2E runs: in the thread, and the failure by DM with its link --------------------------

E2E_CI = """
ci:
  providers:
    gh:
      type: github
      base_url: {url}
      token: {{token_env: GH_TOKEN}}
      poll_interval: 10s
"""
E2E_ENVIRONMENT = """
  qa:
    match: [{namespace: "qa*"}]
    gates:
      pre-rollout:
        - type: e2e
          provider: gh
          project: acme/e2e
          workflow: e2e.yml
          ref: main
          parameters: {puerta_run: "{run_id}"}
          wait: background
          deadline: 30m
      rollback:
        - type: e2e-result
"""


@pytest.fixture
def e2e_puerta(
    database_url: str, world: dict[str, Any], clock: ManualClock
) -> Iterator[tuple[Puerta, FakeGitHub]]:
    actions = FakeGitHub(token="ghs-e2e")
    actions.add_workflow(
        "acme/e2e",
        "e2e.yml",
        run_name="E2E {puerta_run}",
        inputs=["puerta_run"],
        jobs=["api", "playwright"],
    )
    with serve_in_thread(actions.app) as url:
        policy = world["policy"].replace("environments:", E2E_CI.format(url=url) + "environments:")
        puerta = Puerta(database_url, policy + E2E_ENVIRONMENT, clock)
        puerta.environ.update(
            {"SLACK_TOKEN": "xoxb-authors", "GITHUB_TOKEN": "ghp-authors", "GH_TOKEN": "ghs-e2e"}
        )
        puerta.start()
        try:
            yield puerta, actions
        finally:
            puerta.stop()


def e2e_status(puerta: Puerta) -> str | None:
    runs = puerta.api("GET", "/canaries/qa/podinfo", token=VIEWER).json()["e2e_runs"]
    return str(runs[0]["status"]) if runs else None


def test_a_failed_e2e_run_is_in_the_thread_and_tells_the_author_with_its_link(
    e2e_puerta: tuple[Puerta, FakeGitHub], world: dict[str, Any], clock: ManualClock
) -> None:
    """The run's start and failure are replies in the rollout's thread; the author gets the
    failure with the run's link, and then the rollback naming the failed run (not Flagger's
    "manual webhook invoked")."""
    puerta, actions = e2e_puerta
    slack = world["slack"]
    assert call(puerta, "confirm-rollout", "qa", phase="Initialized").status_code == 200
    assert call(puerta, "pre-rollout", "qa", phase="Progressing").status_code == 200
    until(lambda: e2e_status(puerta) == "queued")
    run = actions.last_run
    actions.set_jobs(
        run.id, [("api", "completed", "success"), ("playwright", "completed", "failure")]
    )
    actions.complete(run.id, "failure")
    clock.advance(timedelta(seconds=10))  # the run's next poll is due
    until(lambda: e2e_status(puerta) == "failed")
    rollback = call(puerta, "rollback", "qa", phase="Progressing")
    assert rollback.status_code == 200  # roll back now
    meta = {
        "eventMessage": "Rolling back podinfo.qa manual webhook invoked",
        "eventType": "Warning",
        "timestamp": "1764151200000",
    }
    assert call(puerta, "event", "qa", metadata=meta).status_code == 200
    assert call(puerta, "post-rollout", "qa", phase="Failed").status_code == 200
    until(lambda: settled(puerta))

    (parent,) = slack.messages("#deploys")
    replies = [m.text for m in slack.thread("#deploys", parent.ts)]
    started = f":test_tube: *e2e-started*: E2E e2e started on gh <{run.html_url}|link>"
    assert started in replies
    (failed,) = [text for text in replies if text.startswith(":x: *e2e-failed*")]
    assert 'job "playwright"' in failed
    assert failed.endswith(f"<{run.html_url}|link>")

    e2e_dm, failure_dm = dms_of(slack)
    commit = f"`qa/podinfo` (acme/podinfo@{SHA[:7]})"
    assert e2e_dm.startswith(
        f":x: End-to-end tests failed for your change {commit} in qa: E2E e2e failed"
    )
    assert e2e_dm.endswith(f" {run.html_url}")
    assert failure_dm.startswith(
        f":boom: Your change {commit} failed in qa and was rolled back: rollout #1 failed: "
    )
    assert rollback.text in failure_dm  # why Puerta told Flagger to roll back
    assert 'job "playwright"' in failure_dm
