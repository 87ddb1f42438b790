"""Each CI provider wired end to end through Puerta's HTTP API (policy -> gate -> runner ->
provider module -> fake API on a real socket), the CircleCI ``workflow-completed`` webhook, and
the signature test vectors from the providers' documentation."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from conftest import VIEWER, Puerta, flagger_payload
from fakes.circleci import FakeCircleCI
from fakes.circleci_spec import SpecValidator, load, spec_file
from fakes.gitlab import FakeGitLab
from fakes.jenkins import FakeJenkins
from fakes.server import serve_in_thread
from puerta.ci.webhooks import BadSignature, verify_circleci, verify_github
from puerta.clock import ManualClock
from puerta.errors import ConfigError
from puerta.policy.loader import load_policy
from required import skip_unless_required
from waiting import until

POLICY = """
version: 1
auth:
  tokens:
    - {{name: viewer, role: viewer, token_env: PUERTA_VIEWER_TOKEN}}
ci:
  providers:
    ci:
{provider}
      token: {{token_env: CI_TOKEN}}
      poll_interval: 10s
environments:
  staging:
    match: [{{namespace: "staging*"}}]
    gates:
      pre-rollout:
        - type: e2e
          provider: ci
{target}
          wait: background
      confirm-promotion:
        - type: e2e-result
      rollback:
        - type: e2e-result
"""


def start(database_url: str, clock: ManualClock, provider: str, target: str, **env: str) -> Puerta:
    puerta = Puerta(database_url, POLICY.format(provider=provider, target=target), clock)
    puerta.environ.update(env)
    return puerta.start()


def pre_rollout(puerta: Puerta) -> int:
    payload = flagger_payload("pre-rollout", namespace="staging", name="podinfo", metadata={})
    status: int = puerta.http.post("/hooks/pre-rollout", json=payload).status_code
    return status


def hook(puerta: Puerta, name: str) -> Any:
    payload = flagger_payload(name, namespace="staging", name="podinfo", metadata={})
    return puerta.http.post(f"/hooks/{name}", json=payload)


def the_run(puerta: Puerta) -> dict[str, Any]:
    runs = puerta.api("GET", "/canaries/staging/podinfo", token=VIEWER).json()["e2e_runs"]
    assert len(runs) == 1
    run: dict[str, Any] = runs[0]
    return run


def follow_to_end(puerta: Puerta, clock: ManualClock) -> dict[str, Any]:
    """Advance the clock poll by poll until the run ends."""
    for _ in range(10):
        run = the_run(puerta)
        if run["status"] in ("succeeded", "failed", "canceled"):
            return run
        before = (run["polls"], run["status"])
        clock.advance(timedelta(seconds=30))
        hook(puerta, "confirm-promotion")  # Flagger keeps asking; also wakes the runner

        def moved(before: tuple[int, str] = before) -> bool:
            now = the_run(puerta)
            return (now["polls"], now["status"]) != before

        until(moved)
    raise AssertionError("the run did not end")


# ---- CircleCI -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def validator() -> SpecValidator:
    path = spec_file()
    if path is None:
        skip_unless_required(
            "CircleCI's OpenAPI description is not in tests/fixtures/specs", "PUERTA_REQUIRE_SPECS"
        )
    return load(path)


@pytest.fixture
def circleci(validator: SpecValidator) -> Iterator[tuple[FakeCircleCI, str]]:
    fake = FakeCircleCI(token="circle-e2e-token", validator=validator)
    fake.add_project("gh/acme/e2e")
    with serve_in_thread(fake.app) as url:
        yield fake, url
    assert fake.violations == [], "Puerta sent CircleCI a request outside its API description"


CIRCLECI = """      type: circleci
      base_url: {url}
      webhook_secret: {{token_env: CIRCLE_HOOK_SECRET}}"""
CIRCLECI_TARGET = """          project: gh/acme/e2e
          ref: main
          parameters: {target: "{canary_url}", revision: "{revision}"}"""


def test_circleci_pipeline_passes(
    database_url: str, circleci: tuple[FakeCircleCI, str], clock: ManualClock
) -> None:
    fake, url = circleci
    puerta = start(
        database_url,
        clock,
        CIRCLECI.format(url=url),
        CIRCLECI_TARGET,
        CI_TOKEN=fake.token,
        CIRCLE_HOOK_SECRET="circle-secret",
    )
    try:
        assert pre_rollout(puerta) == 200
        until(lambda: the_run(puerta)["status"] != "pending")
        (trigger,) = fake.triggered
        assert trigger == {
            "branch": "main",
            "parameters": {"target": "http://podinfo-canary.staging", "revision": "85d557f47b"},
        }
        run = follow_to_end(puerta, clock)
        assert run["status"] == "succeeded"
        assert run["url"].startswith("https://app.circleci.com/pipelines/github/acme/e2e/")
        assert hook(puerta, "confirm-promotion").status_code == 200
    finally:
        puerta.stop()


def test_circleci_failed_workflow_webhook_rolls_back_at_once(
    database_url: str, circleci: tuple[FakeCircleCI, str], clock: ManualClock
) -> None:
    fake, url = circleci
    fake.script = [{"e2e": ("running", {"playwright": "running"})}]
    puerta = start(
        database_url,
        clock,
        CIRCLECI.format(url=url),
        CIRCLECI_TARGET,
        CI_TOKEN=fake.token,
        CIRCLE_HOOK_SECRET="circle-secret",
    )
    try:
        assert pre_rollout(puerta) == 200
        until(lambda: the_run(puerta)["status"] != "pending")
        pipeline = fake.last_pipeline
        fake.complete(pipeline.id, "failed")
        body = json.dumps(fake.workflow_completed_event(pipeline.id)).encode()
        signature = "v1=" + hmac.new(b"circle-secret", body, hashlib.sha256).hexdigest()
        headers = {"circleci-signature": signature, "circleci-event-type": "workflow-completed"}
        answer = puerta.http.post("/webhooks/ci/ci", content=body, headers=headers)
        assert answer.status_code == 200, answer.text
        assert the_run(puerta)["status"] == "failed"
        rollback = hook(puerta, "rollback")
        assert rollback.status_code == 200
        assert 'workflow "e2e" failed' in rollback.text
        assert "https://app.circleci.com/pipelines/github/acme/e2e/" in rollback.text

        redelivered = puerta.http.post("/webhooks/ci/ci", content=body, headers=headers)
        assert redelivered.text == "duplicate delivery ignored"
        bad = {**headers, "circleci-signature": "v1=" + "0" * 64}
        assert puerta.http.post("/webhooks/ci/ci", content=body, headers=bad).status_code == 401
    finally:
        puerta.stop()


# ---- GitLab and Jenkins ------------------------------------------------------------------


@pytest.fixture
def gitlab() -> Iterator[tuple[FakeGitLab, str]]:
    fake = FakeGitLab()
    fake.add_project(id=7, path="acme/e2e")
    with serve_in_thread(fake.app) as url:
        yield fake, url


def test_gitlab_pipeline_fails_naming_the_job(
    database_url: str, gitlab: tuple[FakeGitLab, str], clock: ManualClock
) -> None:
    fake, url = gitlab
    fake.script = ["running", "failed"]
    fake.add_failed_job("playwright", stage="e2e")
    provider = f"      type: gitlab\n      base_url: {url}"
    target = (
        "          project: acme/e2e\n"
        "          ref: main\n"
        '          parameters: {TARGET: "{canary_url}"}'
    )
    puerta = start(database_url, clock, provider, target, CI_TOKEN=fake.token)
    try:
        assert pre_rollout(puerta) == 200
        until(lambda: the_run(puerta)["status"] != "pending")
        correlation = the_run(puerta)["target"]["correlation"]
        assert fake.created[0]["variables"] == [
            {"key": "TARGET", "value": "http://podinfo-canary.staging", "variable_type": "env_var"},
            {"key": "PUERTA_RUN_ID", "value": correlation, "variable_type": "env_var"},
        ]
        run = follow_to_end(puerta, clock)
        assert run["status"] == "failed"
        assert 'job "playwright" in stage "e2e" failed' in run["reason"]
        assert hook(puerta, "rollback").status_code == 200
    finally:
        puerta.stop()


@pytest.fixture
def jenkins() -> Iterator[tuple[FakeJenkins, str]]:
    fake = FakeJenkins()
    fake.add_job("acme/e2e", params=["TARGET"])
    with serve_in_thread(fake.app) as url:
        fake.root_url = url
        yield fake, url


def test_jenkins_build_passes_from_its_queue_item(
    database_url: str, jenkins: tuple[FakeJenkins, str], clock: ManualClock
) -> None:
    fake, url = jenkins
    provider = f"      type: jenkins\n      base_url: {url}\n      user: {fake.user}"
    target = '          project: acme/e2e\n          parameters: {TARGET: "{canary_url}"}'
    puerta = start(database_url, clock, provider, target, CI_TOKEN=fake.token)
    try:
        assert pre_rollout(puerta) == 200
        until(lambda: the_run(puerta)["status"] != "pending")
        correlation = the_run(puerta)["target"]["correlation"]
        sent = {"TARGET": "http://podinfo-canary.staging", "PUERTA_RUN_ID": correlation}
        assert fake.triggered == [("acme/e2e", sent)]
        run = follow_to_end(puerta, clock)
        assert run["status"] == "succeeded"
        assert run["external_id"].startswith(url)  # the build, found from the queue item
        assert hook(puerta, "confirm-promotion").status_code == 200
    finally:
        puerta.stop()


# ---- signatures: the documentation's test vectors -------------------------------------------


def test_circleci_signature_vectors() -> None:
    verify_circleci(
        "secret",
        b"hello world",
        "v1=734cc62f32841568f45715aeb9f4d7891324e6d948e4c6c60c0621cdac48623a",
    )
    verify_circleci(
        "secret", b"foo", "v1=773ba44693c7553d6ee20f61ea5d2757a9a4f4a44d2841ae4e95b52e4cd62db4"
    )
    # a list of versions: the newest Puerta knows (v1) is checked, unknown ones are ignored
    verify_circleci(
        "secret",
        b"foo",
        "v2=abc,v1=773ba44693c7553d6ee20f61ea5d2757a9a4f4a44d2841ae4e95b52e4cd62db4",
    )
    with pytest.raises(BadSignature, match="does not match"):
        verify_circleci(
            "secret",
            b"foo!",
            "v1=773ba44693c7553d6ee20f61ea5d2757a9a4f4a44d2841ae4e95b52e4cd62db4",
        )
    with pytest.raises(BadSignature, match="no version"):
        verify_circleci("secret", b"foo", "v0=773ba446")
    with pytest.raises(BadSignature, match="missing"):
        verify_circleci("secret", b"foo", None)


def test_github_signature_vector() -> None:
    signature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    verify_github("It's a Secret to Everybody", b"Hello, World!", signature)
    with pytest.raises(BadSignature, match="does not match"):
        verify_github("It's a Secret to Everybody", b"Hello, World?", signature)
    with pytest.raises(BadSignature, match="sha256="):
        verify_github("It's a Secret to Everybody", b"Hello, World!", "sha1=abc")


# ---- the policy file ------------------------------------------------------------------------

BROKEN = {
    "unknown provider": (
        "        - {type: e2e, provider: circle, project: gh/a/b}\n",
        "environments.staging.gates.pre-rollout[0].provider: unknown CI provider 'circle' (gh)",
    ),
    "github without workflow": (
        "        - {type: e2e, provider: gh, project: acme/e2e, ref: main}\n",
        "environments.staging.gates.pre-rollout[0].workflow: required for github",
    ),
    "unknown placeholder": (
        "        - {type: e2e, provider: gh, project: acme/e2e, workflow: e.yml, ref: main,\n"
        "           parameters: {target: '{canry_url}'}}\n",
        "parameters: target: unknown placeholder {canry_url}",
    ),
    "result of no e2e gate": (
        "        - {type: e2e, provider: gh, project: acme/e2e, workflow: e.yml, ref: main,\n"
        "           parameters: {puerta_run: '{run_id}'}}\n"
        "      confirm-promotion:\n"
        "        - {type: e2e-result, run: smoke}\n",
        "environments.staging.gates.confirm-promotion[0].run: no e2e gate named 'smoke' in "
        "staging (e2e gates: e2e)",
    ),
    "github without run_id": (
        "        - {type: e2e, provider: gh, project: acme/e2e, workflow: e.yml, ref: main,\n"
        "           parameters: {target: '{canary_url}'}}\n",
        "environments.staging.gates.pre-rollout[0].parameters: github needs an input carrying "
        "{run_id}",
    ),
    "e2e on confirm-rollout": (
        "        - {type: allow}\n"
        "      confirm-rollout:\n"
        "        - {type: e2e, provider: gh, project: acme/e2e, workflow: e.yml, ref: main}\n",
        "a e2e gate cannot be used on confirm-rollout",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_check_config_names_e2e_mistakes(case: str, tmp_path: Path) -> None:
    gates, message = BROKEN[case]
    path = tmp_path / "policy.yaml"
    path.write_text(
        "version: 1\n"
        "ci:\n"
        "  providers:\n"
        "    gh: {type: github, token: {token_env: GH_TOKEN}}\n"
        "environments:\n"
        "  staging:\n"
        "    match: [{namespace: staging}]\n"
        "    gates:\n"
        "      pre-rollout:\n" + gates
    )
    with pytest.raises(ConfigError) as caught:
        load_policy(path)
    assert any(message in problem for problem in caught.value.problems), caught.value.problems
