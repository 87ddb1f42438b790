"""Replica roles: ``web`` replicas answer Flagger and people, ``worker`` replicas do the
background work, both on one database; ``all`` (the default) does both.

Through the HTTP API of two apps on one database (SQLite and PostgreSQL), against the fake
GitHub Actions API: the web replica records an E2E run it cannot trigger (it holds no CI
token), the worker triggers and follows it, and a call held on the web replica answers when
the worker's poll finds the run's end.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from conftest import TEST_POLICY, Puerta
from fakes.github import FakeGitHub
from puerta.cli.main import app as cli
from puerta.clock import ManualClock
from puerta.errors import ConfigError
from test_e2e_gate import (  # noqa: F401  (github, ticking: fixtures)
    GH_TOKEN,
    HOOK_SECRET,
    POLICY,
    REPO,
    TickingClock,
    github,
    hook,
    poll_round,
    run_status,
    ticking,
)
from waiting import until


def replica(
    database_url: str,
    url: str,
    clock: ManualClock,
    role: str,
    *,
    ci_token: bool = True,
    wait: str = "background",
) -> Puerta:
    """A Puerta of ``role`` (not started), with the E2E policy of test_e2e_gate."""
    policy = POLICY.format(url=url, repo=REPO, wait=wait, hold="30s", rpm=600, burst=20)
    puerta = Puerta(database_url, policy, clock)
    puerta.environ.update({"GH_HOOK_SECRET": HOOK_SECRET, "PUERTA_ROLE": role})
    if ci_token:
        puerta.environ["GH_TOKEN"] = GH_TOKEN
    return puerta


@pytest.fixture
def worker(
    database_url: str,
    github: tuple[FakeGitHub, str],  # noqa: F811
    clock: ManualClock,
) -> Iterator[Puerta]:
    _, url = github
    started = replica(database_url, url, clock, "worker").start()
    try:
        yield started
    finally:
        started.stop()


def test_a_web_replica_needs_no_ci_token_and_a_worker_runs_what_it_records(
    database_url: str,
    github: tuple[FakeGitHub, str],  # noqa: F811
    clock: ManualClock,
) -> None:
    fake, url = github
    with pytest.raises(ConfigError, match="GH_TOKEN"):  # a replica that triggers runs needs it
        replica(database_url, url, clock, "all", ci_token=False).start()

    web = replica(database_url, url, clock, "web", ci_token=False).start()
    try:
        response = hook(web, "pre-rollout")
        assert response.status_code == 200, response.text
        assert "start E2E e2e on gh: e2e.yml@main" in response.text
        assert run_status(web) == "pending"

        worker = replica(database_url, url, clock, "worker").start()
        try:
            until(lambda: run_status(web) == "queued")
            for _ in range(len(fake.last_run.script)):
                if run_status(web) == "succeeded":
                    break
                poll_round(web, clock)
            assert run_status(web) == "succeeded"
        finally:
            worker.stop()
        assert len(fake.dispatches) == 1
        promotion = hook(web, "confirm-promotion")
        assert promotion.status_code == 200, promotion.text
        assert "E2E e2e passed" in promotion.text
    finally:
        web.stop()


def test_a_call_held_on_a_web_replica_answers_when_the_worker_sees_the_run_end(
    database_url: str,
    github: tuple[FakeGitHub, str],  # noqa: F811
    ticking: TickingClock,  # noqa: F811
) -> None:
    fake, url = github
    fake.script = [("in_progress", None), ("completed", "failure")]
    worker = replica(database_url, url, ticking, "worker").start()
    web = replica(database_url, url, ticking, "web", ci_token=False, wait="hold").start()
    try:
        response = hook(web, "pre-rollout")
        assert response.status_code == 403, response.text
        assert "E2E e2e failed: workflow" in response.text
        verdicts = [e["verdict"] for e in web.audit(hook="pre-rollout")]
        assert verdicts == ["fail", "wait"]  # newest first: held, then decided again
        assert len(fake.dispatches) == 1
    finally:
        web.stop()
        worker.stop()


def test_a_worker_replica_answers_only_its_probes_and_metrics(worker: Puerta) -> None:
    assert worker.http.get("/healthz").text == "ok"
    assert worker.http.get("/readyz").text == "ready"
    metrics = worker.http.get("/metrics")
    assert metrics.status_code == 200
    assert "puerta_hook_calls_total" in metrics.text

    refused = worker.hook("confirm-rollout")
    assert refused.status_code == 503  # Flagger retries; a load balancer tries another pod
    assert refused.headers["content-type"].startswith("text/plain")
    assert "PUERTA_ROLE=worker" in refused.text
    for path in ("/api/v1/canaries", "/ui/", "/webhooks/ci/gh", "/openapi.json"):
        response = worker.http.get(path)
        assert response.status_code == 503, path
        assert "only does background work" in response.json()["detail"]


def test_an_unknown_role_is_refused_by_name() -> None:
    result = CliRunner().invoke(cli, ["serve", "--config", str(TEST_POLICY), "--role", "scheduler"])
    assert result.exit_code == 1
    assert "PUERTA_ROLE: 'scheduler' is not one of all, web, worker" in result.output
