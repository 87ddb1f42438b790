"""Promotion after staging, through the HTTP API and the CLI, against a fake Kubernetes API
(what the rollout ships) and a fake GitHub (releases, tags, dispatches): exactly one release
per rollout with the right tag, target and notes, however often Flagger calls post-rollout, on
any replica, and when an answer is lost and the retry comes after midnight; versions bumped
from the repository's tags; an existing release of the same commit is done, one of another
commit fails it; only an explicit Succeeded promotes; a freeze of where the commit will run in
production, a halt, a hand hold or ``manual_release`` holds it; the dispatch and webhook
variants with their delivery id; every promotion audited and announced."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from typer.testing import CliRunner

from conftest import ADMIN, APPROVER, VIEWER, Puerta, flagger_payload
from fakes.github_repos import FakeGitHubRepos, fake_sha
from fakes.kubernetes import FakeKubernetes, write_kubeconfig
from fakes.server import serve_in_thread
from fakes.webhook_receiver import WebhookReceiver
from puerta.cli.main import app as cli
from puerta.clock import ManualClock
from waiting import until

OLD = fake_sha("older change")
SHA = fake_sha("fix checkout")
POLICY = """
version: 1
auth:
  tokens:
    - {{name: admin, role: admin, token_env: PUERTA_ADMIN_TOKEN}}
    - {{name: approver, role: approver, token_env: PUERTA_APPROVER_TOKEN}}
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


class LoseAnswers:
    """In front of a fake: the next matching request reaches it (so it acts, e.g. GitHub makes
    the release) but its answer is lost on the way back and the caller gets a 502, as from a
    proxy that dropped the connection."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._armed: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def lose_next(self, method: str, path_suffix: str) -> None:
        with self._lock:
            self._armed.append((method, path_suffix))

    def _take(self, scope: Scope) -> bool:
        with self._lock:
            for armed in self._armed:
                if scope["method"] == armed[0] and scope["path"].endswith(armed[1]):
                    self._armed.remove(armed)
                    return True
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._take(scope):
            await self.app(scope, receive, send)
            return

        async def dropped(message: Message) -> None:
            return None

        await self.app(scope, receive, dropped)
        await send({"type": "http.response.start", "status": 502, "headers": []})
        await send({"type": "http.response.body", "body": b"Bad Gateway"})


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
    lossy = LoseAnswers(github.app)
    with (
        serve_in_thread(k8s.app) as k,
        serve_in_thread(lossy) as g,
        serve_in_thread(receiver.app) as r,
    ):
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", k)
        yield {
            "k8s": k8s,
            "github": github,
            "lossy": lossy,
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
    released.clock.advance(timedelta(seconds=31))  # looked at again: still frozen
    until(lambda: promotions(released)[0]["next_attempt_at"] != held["next_attempt_at"])

    lifted = released.api("POST", "/environments/production/unfreeze", token=ADMIN, json={})
    assert lifted.status_code == 200, lifted.text
    released.clock.advance(timedelta(seconds=31))
    until(lambda: settled(released))
    assert len(world["github"].releases) == 1
    # the wait was audited once, when it began (not at every look), and so was the outcome
    trail = released.audit(kind="promotion")
    assert [e["action"] for e in reversed(trail)] == ["promotion-held", "promote-github_release"]
    assert "incident 142" in trail[-1]["reason"]


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


# ---- the helpers of the tests below ----------------------------------------------------------


def release_action(tag: str, name: str = "{name} {short_sha}", *, manual: bool = False) -> str:
    """A ``github_release`` action (and ``manual_release``) for POLICY's ``{action}``."""
    action = f'      github_release:\n        tag: "{tag}"\n        name: "{name}"\n'
    return action + ("      manual_release: true\n" if manual else "")


def notifying(action: str, receiver_url: str) -> str:
    """POLICY's ``{action}`` plus a notification route of staging to a signed webhook."""
    route = (
        "notifications:\n  routes:\n    - match: {environment: staging}\n      webhook:\n"
        f"        url: {receiver_url}/notices\n        secret: {{token_env: PROMOTE_SECRET}}\n"
    )
    return action + "__NOTIFICATIONS__" + route


def start(database_url: str, world: dict[str, Any], clock: ManualClock, action: str) -> Puerta:
    """``make``, with ``notifying``'s route moved to the top level of the policy."""
    action, _, route = action.partition("__NOTIFICATIONS__")
    policy = POLICY.format(
        kubeconfig=world["kubeconfig"], github=world["github_url"], action=action
    )
    policy = policy.replace("environments:\n", route + "environments:\n", 1)
    puerta = Puerta(database_url, policy, clock)
    puerta.environ.update({"GITHUB_TOKEN": "ghp-promote", "PROMOTE_SECRET": "promote-secret"})
    return puerta.start()


def the_promotion(puerta: Puerta) -> dict[str, Any]:
    (promotion,) = promotions(puerta)
    return promotion


def in_status(puerta: Puerta, status: str) -> bool:
    found = promotions(puerta)
    return len(found) == 1 and found[0]["status"] == status


def production_canary(puerta: Puerta, namespace: str) -> None:
    """Puerta sees the canary's production twin (the place a promoted commit will run)."""
    body = flagger_payload(
        "confirm-rollout", namespace=namespace, name="podinfo", phase="Initialized", metadata={}
    )
    assert puerta.http.post("/hooks/confirm-rollout", json=body).status_code == 200


def act(puerta: Puerta, promotion: int, action: str, token: str | None, **body: Any) -> Any:
    return puerta.api("POST", f"/promotions/{promotion}/{action}", token=token, json=body)


# ---- exactly once, whatever the clock says -----------------------------------------------------


def test_a_lost_answer_retried_after_midnight_makes_no_second_release(
    database_url: str, world: dict[str, Any], clock: ManualClock
) -> None:
    """The tag is rendered once, from when the rollout succeeded, and stored before the first
    call: the retry after midnight asks for the same tag, finds its release, and is done."""
    github: FakeGitHubRepos = world["github"]
    world["lossy"].lose_next("POST", "/repos/acme/podinfo/releases")
    clock.advance(timedelta(hours=13, minutes=59, seconds=50))  # 23:59:50 UTC
    puerta = make(database_url, world, clock, RELEASE)
    try:
        roll_out(puerta)
        until(lambda: the_promotion(puerta)["attempts"] == 1)
        waiting = the_promotion(puerta)
        assert waiting["status"] == "pending"
        assert "502" in waiting["last_error"]
        assert waiting["tag"] == f"v20261126-{SHA[:7]}"  # known (and kept) before the call
        assert len(github.releases) == 1  # GitHub made it; Puerta did not hear

        clock.advance(timedelta(seconds=30))  # 2026-11-27 00:00:20, past the backoff
        until(lambda: settled(puerta))
        (release,) = github.releases
        assert release.tag_name == f"v20261126-{SHA[:7]}"
        done = the_promotion(puerta)
        assert (done["status"], done["tag"], done["created"]) == ("done", release.tag_name, False)
        assert done["url"] == release.html_url
    finally:
        puerta.stop()


# ---- versions from the repository's tags -------------------------------------------------------


@pytest.mark.parametrize(
    ("tags", "template", "expected"),
    [
        # by version, not by name: v1.10.0 is above v1.9.0; pre-releases and others ignored
        (
            ["v1.9.0", "v1.10.0", "v2.0.0-rc.1", "nightly", "1.10.1-beta"],
            "v{next_minor}",
            "v1.11.0",
        ),
        (["1.4.2", "v1.4.10"], "{next_patch}", "1.4.11"),
        (["v0.9.3"], "v{next_major}", "v1.0.0"),
        ([], "v{next_patch}", "v0.0.1"),
        ([], "{next_minor}", "0.1.0"),
        # a monorepo: only the tags with the template's prefix count
        (["podinfo-v0.3.1", "frontend-v7.0.0", "v9.0.0"], "{name}-v{next_patch}", "podinfo-v0.3.2"),
    ],
)
def test_a_release_tag_bumps_the_highest_version(
    database_url: str,
    world: dict[str, Any],
    clock: ManualClock,
    tags: list[str],
    template: str,
    expected: str,
) -> None:
    github: FakeGitHubRepos = world["github"]
    for tag in tags:
        github.add_tag("acme/podinfo", tag, OLD, annotated=tag.startswith("v1.1"))
    puerta = make(database_url, world, clock, release_action(template, "{name} {next_patch}"))
    try:
        roll_out(puerta)
        until(lambda: settled(puerta))
        promotion = the_promotion(puerta)
        assert (promotion["status"], promotion["tag"]) == ("done", expected), promotion
        release = github.release("acme/podinfo", expected)
        assert release is not None
        assert release.target_sha == SHA
        assert github.tags["acme/podinfo"][expected].commit_sha == SHA
    finally:
        puerta.stop()


def test_the_version_is_read_once_and_kept_for_the_retry(
    database_url: str, world: dict[str, Any], clock: ManualClock
) -> None:
    """A tag pushed between the lost answer and the retry does not move the version: the
    promotion still asks for (and finds) the release it made."""
    github: FakeGitHubRepos = world["github"]
    github.add_tag("acme/podinfo", "v1.4.1", OLD)
    world["lossy"].lose_next("POST", "/repos/acme/podinfo/releases")
    puerta = make(database_url, world, clock, release_action("v{next_patch}"))
    try:
        roll_out(puerta)
        until(lambda: the_promotion(puerta)["attempts"] == 1)
        assert the_promotion(puerta)["tag"] == "v1.4.2"
        github.add_tag("acme/podinfo", "v1.4.7", OLD)  # someone tags by hand meanwhile
        clock.advance(timedelta(seconds=5))
        until(lambda: settled(puerta))
        promotion = the_promotion(puerta)
        assert (promotion["status"], promotion["tag"], promotion["created"]) == (
            "done",
            "v1.4.2",
            False,
        )
        assert [r.tag_name for r in github.releases] == ["v1.4.2"]
        assert len(github.requests_to("GET", "/repos/acme/podinfo/tags")) == 1
    finally:
        puerta.stop()


def test_two_promotions_in_flight_never_pick_the_same_version(
    database_url: str, world: dict[str, Any], clock: ManualClock
) -> None:
    """A version another promotion of the repository chose but has not released yet (its
    call failed; the retry is to come) is taken: the next promotion picks the one after,
    and both releases go out."""
    github: FakeGitHubRepos = world["github"]
    github.add_tag("acme/podinfo", "v1.4.1", OLD)
    github.fail_next_on("/repos/acme/podinfo/releases", status=502)
    puerta = make(database_url, world, clock, release_action("v{next_patch}"))
    try:
        roll_out(puerta)
        until(lambda: the_promotion(puerta)["attempts"] == 1)
        first = the_promotion(puerta)
        assert (first["status"], first["tag"]) == ("pending", "v1.4.2")
        assert github.releases == []  # the 502: nothing made yet

        body = flagger_payload("confirm-rollout", namespace="staging", name="podinfo", metadata={})
        again = {**body, "checksum": "7b7b7b7b7b"}
        puerta.http.post("/hooks/confirm-rollout", json={**again, "phase": "Succeeded"})
        puerta.http.post("/hooks/pre-rollout", json={**again, "phase": "Progressing"})
        puerta.http.post("/hooks/post-rollout", json={**again, "phase": "Succeeded"})
        until(lambda: any(p["status"] == "done" for p in promotions(puerta)))
        clock.advance(timedelta(minutes=5))  # the first one's retry comes due
        until(lambda: len(promotions(puerta)) == 2 and settled(puerta))
        by_rollout = {p["rollout_seq"]: p for p in promotions(puerta)}
        assert (by_rollout[1]["status"], by_rollout[1]["tag"]) == ("done", "v1.4.2")
        assert (by_rollout[2]["status"], by_rollout[2]["tag"]) == ("done", "v1.4.3")
        assert sorted(r.tag_name for r in github.releases) == ["v1.4.2", "v1.4.3"]
    finally:
        puerta.stop()


def test_a_release_of_another_commit_fails_the_promotion(
    released: Puerta, world: dict[str, Any]
) -> None:
    github: FakeGitHubRepos = world["github"]
    tag = f"v20261126-{SHA[:7]}"
    made = httpx.post(
        f"{world['github_url']}/repos/acme/podinfo/releases",
        json={"tag_name": tag, "target_commitish": OLD},
        headers={"Authorization": "Bearer ghp-promote"},
    )
    assert made.status_code == 201
    roll_out(released)
    until(lambda: settled(released))

    promotion = the_promotion(released)
    assert promotion["status"] == "failed"
    assert promotion["last_error"].startswith(
        f"tag {tag} already exists in acme/podinfo for commit {OLD[:7]}, not {SHA[:7]}"
    )
    assert promotion["created"] is None
    assert [r.target_sha for r in github.releases] == [OLD]  # nothing made for SHA
    (audit,) = released.audit(kind="promotion")
    assert audit["reason"].startswith(f"promotion to production failed: tag {tag} already")


def test_a_tag_of_another_commit_without_a_release_fails_before_creating(
    released: Puerta, world: dict[str, Any]
) -> None:
    """GitHub would make the release at the existing tag, ignoring the commit asked for."""
    github: FakeGitHubRepos = world["github"]
    tag = f"v20261126-{SHA[:7]}"
    github.add_tag("acme/podinfo", tag, OLD, annotated=True)
    roll_out(released)
    until(lambda: settled(released))

    promotion = the_promotion(released)
    assert promotion["status"] == "failed"
    assert f"for commit {OLD[:7]}, not {SHA[:7]}" in promotion["last_error"]
    assert github.releases == []
    assert github.requests_to("POST", "/releases") == []


# ---- only an explicit success promotes ---------------------------------------------------------


@pytest.mark.parametrize("phase", ["", "Finalising", "succeeded"])
def test_a_post_rollout_without_an_explicit_succeeded_promotes_nothing(
    released: Puerta, world: dict[str, Any], phase: str
) -> None:
    roll_out(released, phase)
    assert promotions(released) == []
    # the rollout itself ends as before: only the promotion needs Flagger's explicit word
    canary = released.api("GET", "/canaries/staging/podinfo", token=VIEWER).json()
    assert canary["rollout"]["status"] == "succeeded"
    assert call(released, "post-rollout", "Succeeded").status_code == 200
    until(lambda: settled(released))
    assert len(world["github"].releases) == 1


# ---- holds ---------------------------------------------------------------------------------


def test_a_freeze_of_other_production_namespaces_does_not_hold_it(
    released: Puerta, world: dict[str, Any]
) -> None:
    production_canary(released, "prod-eu")
    freeze = released.api(
        "POST",
        "/freezes",
        token=ADMIN,
        json={"environment": "production", "namespaces": ["prod-us*"], "reason": "US incident"},
    )
    assert freeze.status_code in (200, 201), freeze.text
    roll_out(released)
    until(lambda: settled(released))
    assert the_promotion(released)["status"] == "done"
    assert len(world["github"].releases) == 1


def test_a_freeze_of_the_production_namespace_holds_it(
    released: Puerta, world: dict[str, Any]
) -> None:
    production_canary(released, "prod-eu")
    freeze = released.api(
        "POST",
        "/freezes",
        token=ADMIN,
        json={"environment": "production", "namespaces": ["prod-eu"], "reason": "EU incident"},
    )
    assert freeze.status_code in (200, 201), freeze.text
    roll_out(released)
    until(lambda: in_status(released, "held"))
    held = the_promotion(released)["held_reason"]
    assert held.startswith("production for prod-eu is frozen by admin: EU incident")
    assert "has seen no" not in held
    assert world["github"].releases == []


def test_a_namespace_freeze_holds_it_while_production_is_unknown(
    released: Puerta, world: dict[str, Any]
) -> None:
    """No podinfo canary seen in production yet: Puerta cannot tell where it will run, so
    any freeze of production holds it, and it says so."""
    freeze = released.api(
        "POST",
        "/freezes",
        token=ADMIN,
        json={"environment": "production", "namespaces": ["prod-us*"], "reason": "US incident"},
    )
    assert freeze.status_code in (200, 201), freeze.text
    roll_out(released)
    until(lambda: in_status(released, "held"))
    assert the_promotion(released)["held_reason"].endswith(
        "(Puerta has seen no podinfo canary in production yet, so any freeze of production "
        "holds it)"
    )
    assert world["github"].releases == []


def test_a_halt_of_the_source_canary_holds_it_until_approved(
    released: Puerta, world: dict[str, Any]
) -> None:
    assert call(released, "confirm-rollout", "Initialized").status_code == 200
    assert call(released, "pre-rollout", "Progressing").status_code == 200
    halt = released.api(
        "POST", "/canaries/staging/podinfo/halt", token=APPROVER, json={"reason": "check logs"}
    )
    assert halt.status_code == 200, halt.text
    assert call(released, "post-rollout", "Succeeded").status_code == 200
    until(lambda: in_status(released, "held"))
    assert the_promotion(released)["held_reason"].startswith(
        "staging/podinfo is halted (by approver"
    )
    assert world["github"].releases == []

    approve = released.api("POST", "/canaries/staging/podinfo/approve", token=APPROVER, json={})
    assert approve.status_code == 200, approve.text
    released.clock.advance(timedelta(seconds=31))
    until(lambda: settled(released))
    assert len(world["github"].releases) == 1


def test_hold_and_release_by_hand_through_the_api(released: Puerta, world: dict[str, Any]) -> None:
    github: FakeGitHubRepos = world["github"]
    frozen = released.api(
        "POST", "/freezes", token=ADMIN, json={"environment": "production", "reason": "bake"}
    )
    assert frozen.status_code in (200, 201), frozen.text
    roll_out(released)
    until(lambda: in_status(released, "held"))
    promotion = the_promotion(released)["id"]

    assert act(released, promotion, "hold", VIEWER).status_code == 403
    assert act(released, promotion, "hold", None).status_code == 401
    assert act(released, 999_999, "hold", APPROVER).status_code == 404
    held = act(released, promotion, "hold", APPROVER, reason="wait for QA")
    assert held.status_code == 200, held.text
    answer = held.json()
    assert (answer["action"], answer["actor"]) == ("promotion-hold", "approver")
    assert answer["promotion"]["held_by"] == "approver"
    assert answer["promotion"]["held_reason"] == (
        f"held by approver: wait for QA (release with: puerta promotions release {promotion}); "
        "production is frozen by admin: bake (until lifted) (Puerta has seen no podinfo canary "
        "in production yet, so any freeze of production holds it)"
    )
    again = act(released, promotion, "hold", APPROVER)
    assert again.status_code == 409
    assert again.json()["detail"] == f"promotion {promotion} is already held by approver"

    # the freeze ends: the hand hold still keeps it (once the worker has looked again)
    lifted = released.api("POST", "/environments/production/unfreeze", token=ADMIN, json={})
    assert lifted.status_code == 200, lifted.text
    released.clock.advance(timedelta(seconds=31))
    until(lambda: "frozen" not in the_promotion(released)["held_reason"])
    assert the_promotion(released)["status"] == "held"
    assert the_promotion(released)["held_reason"] == (
        f"held by approver: wait for QA (release with: puerta promotions release {promotion})"
    )
    assert github.releases == []

    assert act(released, promotion, "release", VIEWER).status_code == 403
    let_go = act(released, promotion, "release", APPROVER, reason="QA passed")
    assert let_go.status_code == 200, let_go.text
    assert let_go.json()["promotion"]["released_by"] == "approver"
    until(lambda: settled(released))  # due at once, on the same manual clock
    assert len(github.releases) == 1

    for action in ("hold", "release"):
        late = act(released, promotion, action, APPROVER)
        assert late.status_code == 409
        assert late.json()["detail"].startswith(f"promotion {promotion} is done: only a pending")
    audit = [e for e in released.audit(kind="admin") if e["action"].startswith("promotion-")]
    assert [(e["action"], e["actor"], e["reason"]) for e in reversed(audit)] == [
        ("promotion-hold", "approver", "wait for QA"),
        ("promotion-release", "approver", "QA passed"),
    ]


def test_manual_release_waits_for_an_approver(
    database_url: str, world: dict[str, Any], clock: ManualClock
) -> None:
    puerta = make(database_url, world, clock, release_action("v{date}-{short_sha}", manual=True))
    try:
        roll_out(puerta)
        promotion = the_promotion(puerta)
        assert promotion["status"] == "held"  # from the start: recorded so
        assert promotion["held_reason"].startswith("waiting for a manual release")
        # the worker has looked at it (and says how to release it), and keeps it
        until(lambda: "release with" in (the_promotion(puerta)["held_reason"] or ""))
        assert the_promotion(puerta)["held_reason"] == (
            f"waiting for a manual release (release with: puerta promotions release "
            f"{promotion['id']})"
        )
        assert the_promotion(puerta)["status"] == "held"
        assert world["github"].releases == []

        answer = act(puerta, promotion["id"], "release", APPROVER)
        assert answer.status_code == 200, answer.text
        until(lambda: settled(puerta))
        assert len(world["github"].releases) == 1
        again = act(puerta, promotion["id"], "release", APPROVER)
        assert again.status_code == 409
    finally:
        puerta.stop()


def test_a_promotion_held_by_a_freeze_only_is_not_released_by_hand(
    released: Puerta, world: dict[str, Any]
) -> None:
    frozen = released.api(
        "POST", "/freezes", token=ADMIN, json={"environment": "production", "reason": "bake"}
    )
    assert frozen.status_code in (200, 201), frozen.text
    roll_out(released)
    until(lambda: in_status(released, "held"))
    refused = act(released, the_promotion(released)["id"], "release", APPROVER)
    assert refused.status_code == 409
    assert (
        "is not held by hand (it waits for: production is frozen by admin: bake"
        in (refused.json()["detail"])
    )


def test_hold_and_release_with_the_cli(released: Puerta, world: dict[str, Any]) -> None:
    runner = CliRunner()
    frozen = released.api(
        "POST", "/freezes", token=ADMIN, json={"environment": "production", "reason": "bake"}
    )
    assert frozen.status_code in (200, 201), frozen.text
    roll_out(released)
    until(lambda: in_status(released, "held"))
    promotion = str(the_promotion(released)["id"])
    with serve_in_thread(released.build_app()) as live:  # a second replica, for the CLI
        server = ["--server", live]

        listed = runner.invoke(cli, ["promotions", *server, "--token", VIEWER])
        assert listed.exit_code == 0, listed.output
        header, row = listed.output.splitlines()
        assert header.split() == ["ID", "CANARY", "ROLLOUT", "TO", "ACTION", "STATUS", "DETAIL"]
        assert row.split()[:6] == [
            promotion,
            "staging/podinfo",
            "#1",
            "production",
            "github_release",
            "held",
        ]
        assert "production is frozen by admin: bake" in row

        weak = runner.invoke(cli, ["promotions", "hold", promotion, *server, "--token", VIEWER])
        assert weak.exit_code == 1
        assert "needs approver (HTTP 403)" in weak.output
        unknown = runner.invoke(
            cli, ["promotions", "release", "4242", *server, "--token", APPROVER]
        )
        assert (unknown.exit_code, unknown.output.strip()) == (
            1,
            "error: no promotion 4242 (HTTP 404)",
        )

        hold = runner.invoke(
            cli,
            ["promotions", "hold", promotion, "--reason", "QA", *server, "--token", APPROVER],
        )
        assert hold.exit_code == 0, hold.output
        assert hold.output.startswith(f"promotion {promotion} held: held by approver: QA")
        assert hold.output.strip().endswith("(by approver)")

        lifted = released.api("POST", "/environments/production/unfreeze", token=ADMIN, json={})
        assert lifted.status_code == 200, lifted.text
        release = runner.invoke(
            cli, ["promotions", "release", promotion, *server, "--token", APPROVER]
        )
        assert release.exit_code == 0, release.output
        assert release.output.strip() == f"promotion {promotion} released (by approver)"
        until(lambda: settled(released))

        done = runner.invoke(
            cli, ["promotions", "list", "--status", "done", *server, "--token", VIEWER]
        )
        assert done.exit_code == 0, done.output
        assert f"v20261126-{SHA[:7]} https://github.com/acme/podinfo/releases/tag/" in done.output
    assert len(world["github"].releases) == 1


# ---- delivery ids and notices ------------------------------------------------------------------


def test_a_dispatch_whose_answer_was_lost_is_sent_again_with_the_same_delivery_id(
    database_url: str, world: dict[str, Any], clock: ManualClock
) -> None:
    world["lossy"].lose_next("POST", "/repos/acme/deploy/dispatches")
    puerta = make(database_url, world, clock, DISPATCH)
    try:
        roll_out(puerta)
        until(lambda: the_promotion(puerta)["attempts"] == 1)
        assert the_promotion(puerta)["event_type"] == "promote-podinfo-to-production"
        clock.advance(timedelta(seconds=5))
        until(lambda: settled(puerta))
        first, second = world["github"].dispatches
        assert first == second  # the receiver de-duplicates by client_payload.delivery_id
        payload = first["client_payload"]
        assert payload["delivery_id"] == f"puerta-promotion-{the_promotion(puerta)['id']}"
        assert len(payload) <= 10  # GitHub's limit of top-level keys
    finally:
        puerta.stop()


def test_the_webhook_carries_its_delivery_id_in_header_and_body(
    database_url: str, world: dict[str, Any], clock: ManualClock
) -> None:
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
        expected = f"puerta-promotion-{the_promotion(puerta)['id']}"
        assert delivery.delivery_id == delivery.payload["delivery_id"] == expected
    finally:
        puerta.stop()


def test_promotions_and_hand_holds_are_announced(
    database_url: str, world: dict[str, Any], clock: ManualClock
) -> None:
    receiver: WebhookReceiver = world["receiver"]
    action = notifying(release_action("v{date}-{short_sha}", manual=True), world["receiver_url"])
    puerta = start(database_url, world, clock, action)
    try:
        roll_out(puerta)
        until(lambda: "release with" in (the_promotion(puerta)["held_reason"] or ""))
        promotion = the_promotion(puerta)["id"]
        assert act(puerta, promotion, "hold", APPROVER, reason="QA first").status_code == 200
        assert act(puerta, promotion, "release", APPROVER, reason="QA done").status_code == 200
        until(lambda: settled(puerta))
        tag = f"v20261126-{SHA[:7]}"

        def notices() -> list[dict[str, Any]]:
            return [d.payload for d in receiver.deliveries if d.path == "/notices"]

        until(lambda: any(n["kind"] == "promoted" for n in notices()))
        by_kind = {n["kind"]: n for n in notices()}
        promoted = by_kind["promoted"]
        assert promoted["text"].startswith(
            f":package: *promoted*: acme/podinfo@{SHA[:7]} promoted to production: "
            f"release {tag} created"
        )
        assert promoted["link"] == f"https://github.com/acme/podinfo/releases/tag/{tag}"
        assert (promoted["namespace"], promoted["name"], promoted["rollout_seq"]) == (
            "staging",
            "podinfo",
            1,
        )
        held = [n for n in notices() if n["kind"] == "promotion-held"]
        # manual_release announces the wait when the rollout succeeds; then the hand hold
        assert [n["actor"] for n in held] == [None, "approver"]
        assert held[0]["text"].endswith(
            f"promotion {promotion} to production held: waiting for a manual release "
            f"(release with: puerta promotions release {promotion})"
        )
        assert held[1]["text"].endswith(
            f"promotion {promotion} to production held: it goes out only once released "
            "(reason: QA first)"
        )
        assert by_kind["promotion-released"]["actor"] == "approver"
        assert "promotion" in by_kind["promotion-released"]["text"]
        assert "halted" not in by_kind and "approved" not in by_kind  # the canary's own words
        assert all(d.signature_valid for d in receiver.deliveries)
    finally:
        puerta.stop()
