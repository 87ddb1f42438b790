"""Promotion after staging, through the HTTP API, against a fake Kubernetes API (what the
rollout ships) and a fake GitHub (releases, dispatches): exactly one release per rollout with
the right tag, target and notes, however often Flagger calls post-rollout and on any replica;
an existing release is done; a failed rollout promotes nothing; a freeze of production or a
halt holds it; the dispatch and webhook variants; every promotion audited."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import ADMIN, VIEWER, Puerta, flagger_payload
from fakes.github_repos import FakeGitHubRepos, fake_sha
from fakes.kubernetes import FakeKubernetes, write_kubeconfig
from fakes.server import serve_in_thread
from fakes.webhook_receiver import WebhookReceiver
from puerta.clock import ManualClock
from waiting import until

OLD = fake_sha("older change")
SHA = fake_sha("fix checkout")
POLICY = """
version: 1
auth:
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
{action}
  production:
    match: [{{namespace: "prod*"}}]
"""
RELEASE = """      github_release:
        tag: "v{date}-{short_sha}"
        name: "{name} {short_sha}"
"""
DISPATCH = """      repository_dispatch:
        repository: acme/deploy
        event_type: "promote-{name}-to-{to}"
"""


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    k8s = FakeKubernetes()
    k8s.add_canary("staging", "podinfo")
    k8s.add_workload(
        "staging",
        "Deployment",
        "podinfo",
        containers={"podinfo": f"ghcr.io/acme/podinfo:1.4.2-{SHA[:7]}"},
    )
    github = FakeGitHubRepos(token="ghp-promote")
    github.add_repo("acme/deploy")
    github.add_commit("acme/podinfo", OLD, author_email="a@acme.example", message="Older change")
    github.add_commit("acme/podinfo", SHA, author_email="d@acme.example", message="Fix checkout")
    receiver = WebhookReceiver(secret="promote-secret")
    with (
        serve_in_thread(k8s.app) as k,
        serve_in_thread(github.app) as g,
        serve_in_thread(receiver.app) as r,
    ):
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", k)
        yield {
            "k8s": k8s,
            "github": github,
            "github_url": g,
            "receiver": receiver,
            "receiver_url": r,
            "kubeconfig": kubeconfig,
        }


def make(database_url: str, world: dict[str, Any], clock: ManualClock, action: str) -> Puerta:
    policy = POLICY.format(
        kubeconfig=world["kubeconfig"], github=world["github_url"], action=action
    )
    puerta = Puerta(database_url, policy, clock)
    puerta.environ.update({"GITHUB_TOKEN": "ghp-promote", "PROMOTE_SECRET": "promote-secret"})
    return puerta.start()


def call(puerta: Puerta, hook: str, phase: str) -> httpx.Response:
    body = flagger_payload(
        hook, namespace="staging", name="podinfo", checksum="85d557f47b", phase=phase, metadata={}
    )
    response: httpx.Response = puerta.http.post(f"/hooks/{hook}", json=body)
    return response


def roll_out(puerta: Puerta, outcome: str = "Succeeded") -> None:
    assert call(puerta, "confirm-rollout", "Initialized").status_code == 200
    assert call(puerta, "pre-rollout", "Progressing").status_code == 200
    assert call(puerta, "post-rollout", outcome).status_code == 200


def promotions(puerta: Puerta) -> list[dict[str, Any]]:
    response = puerta.api("GET", "/promotions", token=VIEWER)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["promotions"]
    return items


def settled(puerta: Puerta) -> bool:
    found = promotions(puerta)
    return bool(found) and all(p["status"] in ("done", "failed") for p in found)


@pytest.fixture
def released(database_url: str, world: dict[str, Any], clock: ManualClock) -> Iterator[Puerta]:
    puerta = make(database_url, world, clock, RELEASE)
    try:
        yield puerta
    finally:
        puerta.stop()


def test_a_success_on_staging_creates_one_release(released: Puerta, world: dict[str, Any]) -> None:
    github: FakeGitHubRepos = world["github"]
    roll_out(released)
    for _ in range(3):  # Flagger retrying post-rollout
        assert call(released, "post-rollout", "Succeeded").status_code == 200
    until(lambda: settled(released))

    (release,) = github.releases
    assert release.tag_name == f"v20261126-{SHA[:7]}"
    assert release.target_sha == SHA
    assert release.name == f"podinfo {SHA[:7]}"
    assert release.generate_release_notes
    assert "Fix checkout" in (release.body or "")
    (promotion,) = promotions(released)
    assert promotion["status"] == "done"
    assert promotion["created"] is True
    assert promotion["url"] == release.html_url
    audit = released.audit(kind="promotion")
    assert audit[0]["reason"] == (
        f"acme/podinfo@{SHA[:7]} promoted to production: release v20261126-{SHA[:7]} created"
    )


def test_concurrent_post_rollout_calls_make_one_release(
    database_url: str, world: dict[str, Any], clock: ManualClock
) -> None:
    puerta = make(database_url, world, clock, RELEASE)
    try:
        with serve_in_thread(puerta.build_app()) as base:
            body = flagger_payload(
                "post-rollout", namespace="staging", name="podinfo", checksum="85d557f47b"
            )

            async def race() -> list[int]:
                async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                    await client.post(
                        "/hooks/confirm-rollout", json={**body, "phase": "Initialized"}
                    )
                    calls = [
                        client.post("/hooks/post-rollout", json={**body, "phase": "Succeeded"})
                        for _ in range(8)
                    ]
                    return [answer.status_code for answer in await asyncio.gather(*calls)]

            assert asyncio.run(race()) == [200] * 8
            until(lambda: settled(puerta))
        assert len(world["github"].releases) == 1
        assert len(promotions(puerta)) == 1
    finally:
        puerta.stop()


def test_an_existing_release_is_done_not_an_error(released: Puerta, world: dict[str, Any]) -> None:
    github: FakeGitHubRepos = world["github"]
    tag = f"v20261126-{SHA[:7]}"
    made = httpx.post(
        f"{world['github_url']}/repos/acme/podinfo/releases",
        json={"tag_name": tag, "target_commitish": SHA},
        headers={"Authorization": "Bearer ghp-promote"},
    )
    assert made.status_code == 201
    roll_out(released)
    until(lambda: settled(released))
    (promotion,) = promotions(released)
    assert promotion["status"] == "done"
    assert promotion["created"] is False
    assert len(github.releases) == 1


def test_a_failed_rollout_never_promotes(released: Puerta, world: dict[str, Any]) -> None:
    roll_out(released, "Failed")
    assert promotions(released) == []
    assert world["github"].releases == []


def test_a_freeze_of_production_holds_the_promotion(
    released: Puerta, world: dict[str, Any]
) -> None:
    freeze = released.api(
        "POST",
        "/freezes",
        token=ADMIN,
        json={"environment": "production", "reason": "incident 142"},
    )
    assert freeze.status_code in (200, 201), freeze.text
    roll_out(released)
    until(lambda: bool(promotions(released)) and promotions(released)[0]["status"] == "held")
    (held,) = promotions(released)
    assert "incident 142" in held["held_reason"]
    assert world["github"].releases == []

    lifted = released.api("POST", "/environments/production/unfreeze", token=ADMIN, json={})
    assert lifted.status_code == 200, lifted.text
    released.clock.advance(__import__("datetime").timedelta(seconds=31))
    until(lambda: settled(released))
    assert len(world["github"].releases) == 1


def test_repository_dispatch_variant(
    database_url: str, world: dict[str, Any], clock: ManualClock
) -> None:
    puerta = make(database_url, world, clock, DISPATCH)
    try:
        roll_out(puerta)
        until(lambda: settled(puerta))
        (dispatch,) = world["github"].dispatches
        assert dispatch["repo"] == "acme/deploy"
        assert dispatch["event_type"] == "promote-podinfo-to-production"
        payload = dispatch["client_payload"]
        assert payload["sha"] == SHA
        assert payload["canary"] == "staging/podinfo"
        assert payload["image"] == f"ghcr.io/acme/podinfo:1.4.2-{SHA[:7]}"
    finally:
        puerta.stop()


def test_webhook_variant(database_url: str, world: dict[str, Any], clock: ManualClock) -> None:
    action = (
        "      webhook:\n"
        f"        url: {world['receiver_url']}/promote\n"
        "        secret: {token_env: PROMOTE_SECRET}\n"
    )
    puerta = make(database_url, world, clock, action)
    try:
        roll_out(puerta)
        until(lambda: settled(puerta))
        (delivery,) = world["receiver"].deliveries
        assert delivery.signature_valid
        assert delivery.payload["sha"] == SHA
        assert delivery.payload["to"] == "production"
    finally:
        puerta.stop()


def test_each_environment_shows_what_is_live_and_before(
    released: Puerta, world: dict[str, Any]
) -> None:
    roll_out(released)
    until(lambda: settled(released))
    k8s: FakeKubernetes = world["k8s"]
    k8s.add_workload(
        "staging",
        "Deployment",
        "podinfo",
        containers={"podinfo": f"ghcr.io/acme/podinfo:{OLD[:7]}"},
    )
    body = flagger_payload("confirm-rollout", namespace="staging", name="podinfo", metadata={})
    second = {**body, "checksum": "9a9a9a9a9a"}
    released.http.post("/hooks/confirm-rollout", json={**second, "phase": "Succeeded"})
    released.http.post("/hooks/pre-rollout", json={**second, "phase": "Progressing"})
    released.http.post("/hooks/post-rollout", json={**second, "phase": "Succeeded"})
    until(lambda: len(promotions(released)) == 2 and settled(released))

    answer = released.api("GET", "/environments/staging/live", token=VIEWER)
    assert answer.status_code == 200, answer.text
    (canary,) = answer.json()["canaries"]
    assert (canary["live"]["rollout_seq"], canary["live"]["sha"]) == (2, OLD)
    assert canary["live"]["image"] == f"ghcr.io/acme/podinfo:{OLD[:7]}"
    assert [(r["rollout_seq"], r["sha"], r["title"]) for r in canary["history"]] == [
        (1, SHA, "Fix checkout")
    ]
    assert released.api("GET", "/environments/nowhere/live").status_code == 400
    empty = released.api("GET", "/environments/production/live").json()
    assert empty == {"environment": "production", "canaries": []}


def test_a_commit_looked_up_before_comes_from_the_cache(
    released: Puerta, world: dict[str, Any]
) -> None:
    """A second rollout of the same commit (e.g. its production rollout after staging) takes
    the author from the cache, with its commit time intact."""
    roll_out(released)
    until(lambda: settled(released))
    body = flagger_payload("confirm-rollout", namespace="staging", name="podinfo", metadata={})
    again = {**body, "checksum": "7b7b7b7b7b"}
    released.http.post("/hooks/confirm-rollout", json={**again, "phase": "Succeeded"})
    released.http.post("/hooks/pre-rollout", json={**again, "phase": "Progressing"})
    released.http.post("/hooks/post-rollout", json={**again, "phase": "Succeeded"})
    until(lambda: len(promotions(released)) == 2 and settled(released))

    (canary,) = released.api("GET", "/environments/staging/live", token=VIEWER).json()["canaries"]
    assert (canary["live"]["rollout_seq"], canary["live"]["sha"]) == (2, SHA)
    assert canary["live"]["committed_at"] == canary["history"][0]["committed_at"] is not None
    assert world["github"].commit_lookups == 1  # the second came from the cache
