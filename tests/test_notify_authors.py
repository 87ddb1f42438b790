"""The direct message to the commit's author, end to end: Puerta reads the Canary's workload
from (a fake) Kubernetes API, maps its image tag to a commit by the policy's rules, asks (a
fake) GitHub for the author, finds them on (a fake) Slack, and DMs only the curated notices.
Every way this can fail is said once in the rollout's thread, and nothing else is held up."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import APPROVER, VIEWER, Puerta, flagger_payload
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
"""


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    slack = FakeSlack(token="xoxb-authors")
    slack.add_channel("deploys", id="C0DEPLOYS")
    slack.add_user("dana@acme.example", "U0DANA")
    k8s = FakeKubernetes()
    k8s.add_canary("staging", "podinfo")
    k8s.add_workload(
        "staging",
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


def call(puerta: Puerta, hook: str, **overrides: Any) -> httpx.Response:
    body = flagger_payload(hook, namespace="staging", name="podinfo", checksum="85d557f47b")
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
    """Queued, then failed: exactly the two curated messages, whatever else happens."""
    puerta, slack = puerta_with, world["slack"]
    assert call(puerta, "confirm-rollout", phase="Initialized").status_code == 403
    approve = puerta.api("POST", "/canaries/staging/podinfo/approve", token=APPROVER, json={})
    assert approve.status_code == 200
    assert call(puerta, "confirm-rollout", phase="Waiting").status_code == 200
    assert call(puerta, "pre-rollout", phase="Progressing").status_code == 200
    for message in (
        "Starting canary analysis",
        "Rolling back podinfo.staging failed checks threshold reached 5",
    ):
        meta = {"eventMessage": message, "eventType": "Warning", "timestamp": "1764151200000"}
        assert call(puerta, "event", metadata=meta).status_code == 200
    assert call(puerta, "post-rollout", phase="Failed").status_code == 200
    until(lambda: settled(puerta))

    dms = [m.text for m in slack.dms("U0DANA")]
    assert len(dms) == 2
    assert dms[0].startswith(":hourglass_flowing_sand: Your change `staging/podinfo`")
    assert dms[1] == (
        f":boom: Your change `staging/podinfo` (acme/podinfo@{SHA[:7]}) failed in staging and "
        "was rolled back: rollout #1 failed: Flagger rolled it back"
    )
    (parent,) = slack.messages("#deploys")
    assert "*failed*" in parent.text
