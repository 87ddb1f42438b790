"""Exactly one CI run per (canary, revision, gate) when a trigger's answer never arrives.

Each fake provider carries out the trigger (the run exists on CI) and then holds its answer
back past Puerta's 1 s request timeout, so Puerta cannot know whether a run was started. The
next turn looks for the run by its correlation id instead of triggering again, adopts it and
follows it to its end, all seen through the HTTP API. Where the provider cannot tell (CircleCI
not showing a pipeline's parameters), Puerta triggers again, says so, and follows the newer
run. Cancels of replaced runs that fail are retried, and a run whose id was never learnt is
found before it is cancelled.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from conftest import VIEWER, Puerta, flagger_payload
from fakes.circleci import FakeCircleCI
from fakes.github import FakeGitHub
from fakes.gitlab import FakeGitLab
from fakes.jenkins import FakeJenkins
from puerta.clock import ManualClock
from test_e2e_gate import (
    github,  # noqa: F401  (fixture)
    make_puerta,
)
from test_e2e_gate import hook as gh_hook
from test_e2e_providers import (  # noqa: F401  (circleci, gitlab, jenkins, validator)
    CIRCLECI,
    circleci,
    follow_to_end,
    gitlab,
    hook,
    jenkins,
    pre_rollout,
    start,
    the_run,
    validator,
)
from waiting import until

#: Puerta gives up on a request after 1 s; the fakes answer the trigger after 2 s
TIMEOUT = "\n      timeout: 1s"
LATE = 2.0
#: past the retry's backoff (poll_interval 10s) and the runner's wait before it looks for an
#: earlier trigger's run (10 s after the mark)
AFTER_SETTLE = timedelta(seconds=11)
LOOKS_FOR_IT = "the trigger may have started a run on ci; Puerta looks for that run before it"


def trigger_answer_lost(puerta: Puerta) -> dict[str, Any]:
    """pre-rollout starts the run; wait until Puerta noted that its trigger's outcome is
    unknown (the fake's answer came after the timeout)."""
    assert pre_rollout(puerta) == 200
    until(lambda: the_run(puerta)["last_error"] is not None)
    run = the_run(puerta)
    assert run["status"] == "pending"
    assert "timed out" in run["last_error"]
    return run


def next_turn(puerta: Puerta, clock: ManualClock) -> dict[str, Any]:
    """Let the run's next turn come (past the settle time) and return it once it moved on."""
    clock.advance(AFTER_SETTLE)
    hook(puerta, "confirm-promotion")  # Flagger keeps asking; also wakes the runner
    until(lambda: the_run(puerta)["status"] != "pending")
    return the_run(puerta)


def assert_adopted(run: dict[str, Any], external_id: str) -> None:
    """The run was stored from the lookup (not from a second trigger)."""
    assert run["external_id"] == external_id
    assert [(e["status"], e["source"]) for e in run["events"]] == [("queued", "found")]
    assert run["last_error"] is None


# ---- one provider each: the lost answer's run is found and followed to its end -------------


def test_github_dispatch_answered_too_late_runs_once(
    database_url: str,
    github: tuple[FakeGitHub, str],  # noqa: F811
    clock: ManualClock,
) -> None:
    fake, url = github
    fake.now = clock.now
    fake.answer_late("POST", "/dispatches", delay=LATE)
    provider = f"      type: github\n      base_url: {url}{TIMEOUT}"
    target = (
        "          project: acme/e2e\n"
        "          workflow: e2e.yml\n"
        "          ref: main\n"
        '          parameters: {target: "{canary_url}", puerta_run: "{run_id}"}'
    )
    puerta = start(database_url, clock, provider, target, CI_TOKEN=fake.token)
    try:
        lost = trigger_answer_lost(puerta)
        assert LOOKS_FOR_IT in lost["last_error"]
        run = next_turn(puerta, clock)
        (dispatched,) = fake.runs.values()
        assert len(fake.dispatches) == 1
        assert_adopted(run, str(dispatched.id))
        assert follow_to_end(puerta, clock)["status"] == "succeeded"
        assert hook(puerta, "confirm-promotion").status_code == 200
        assert len(fake.dispatches) == 1
    finally:
        puerta.stop()


def test_gitlab_pipeline_created_but_answered_too_late_runs_once(
    database_url: str,
    gitlab: tuple[FakeGitLab, str],  # noqa: F811
    clock: ManualClock,
) -> None:
    fake, url = gitlab
    fake.now = clock.now
    fake.answer_late("POST", "/pipeline", delay=LATE)
    provider = f"      type: gitlab\n      base_url: {url}{TIMEOUT}"
    target = (
        "          project: acme/e2e\n"
        "          ref: main\n"
        '          parameters: {TARGET: "{canary_url}"}'
    )
    puerta = start(database_url, clock, provider, target, CI_TOKEN=fake.token)
    try:
        lost = trigger_answer_lost(puerta)
        assert LOOKS_FOR_IT in lost["last_error"]
        run = next_turn(puerta, clock)
        (pipeline,) = fake.pipelines.values()
        assert len(fake.created) == 1
        assert_adopted(run, str(pipeline.id))
        assert follow_to_end(puerta, clock)["status"] == "succeeded"
        assert len(fake.created) == 1
    finally:
        puerta.stop()


def test_gitlab_trigger_lost_before_it_arrived_is_sent_again(
    database_url: str,
    gitlab: tuple[FakeGitLab, str],  # noqa: F811
    clock: ManualClock,
) -> None:
    """The other side of the lookup: the timed-out call never created a pipeline (a slow
    proxy answered 503 too late), so the lookup finds none and Puerta triggers."""
    fake, url = gitlab
    fake.now = clock.now
    fake.fail_next(1, status=503, delay=LATE)
    provider = f"      type: gitlab\n      base_url: {url}{TIMEOUT}"
    target = "          project: acme/e2e\n          ref: main"
    puerta = start(database_url, clock, provider, target, CI_TOKEN=fake.token)
    try:
        trigger_answer_lost(puerta)
        assert fake.pipelines == {}
        run = next_turn(puerta, clock)
        (pipeline,) = fake.pipelines.values()
        assert run["external_id"] == str(pipeline.id)
        assert [e["source"] for e in run["events"]] == ["trigger"]
        assert follow_to_end(puerta, clock)["status"] == "succeeded"
    finally:
        puerta.stop()


def test_jenkins_build_queued_but_answered_too_late_runs_once(
    database_url: str,
    jenkins: tuple[FakeJenkins, str],  # noqa: F811
    clock: ManualClock,
) -> None:
    fake, url = jenkins
    fake.now = clock.now
    fake.add_job("acme/e2e", params=["TARGET", "PUERTA_RUN_ID"])  # the job declares the id
    fake.answer_late("POST", "/buildWithParameters", delay=LATE)
    provider = f"      type: jenkins\n      base_url: {url}\n      user: {fake.user}{TIMEOUT}"
    target = '          project: acme/e2e\n          parameters: {TARGET: "{canary_url}"}'
    puerta = start(database_url, clock, provider, target, CI_TOKEN=fake.token)
    try:
        lost = trigger_answer_lost(puerta)
        assert LOOKS_FOR_IT in lost["last_error"]
        run = next_turn(puerta, clock)
        (item,) = fake.queue.values()
        assert len(fake.triggered) == 1
        assert run["external_id"] is None  # still a queue item: found in the queue
        assert [(e["status"], e["source"]) for e in run["events"]] == [("queued", "found")]
        ended = follow_to_end(puerta, clock)
        assert ended["status"] == "succeeded"
        assert item.build is not None and ended["external_id"] == item.build.url
        assert len(fake.triggered) == 1
    finally:
        puerta.stop()


CIRCLECI_TARGET = """          project: gh/acme/e2e
          ref: main
          parameters: {target: "{canary_url}", puerta_run: "{run_id}"}"""


def test_circleci_pipeline_created_but_answered_too_late_runs_once(
    database_url: str,
    circleci: tuple[FakeCircleCI, str],  # noqa: F811
    clock: ManualClock,
) -> None:
    fake, url = circleci
    fake.now = clock.now
    fake.answer_late("POST", "/pipeline", delay=LATE)
    puerta = start(
        database_url,
        clock,
        CIRCLECI.format(url=url) + TIMEOUT,
        CIRCLECI_TARGET,
        CI_TOKEN=fake.token,
        CIRCLE_HOOK_SECRET="circle-secret",
    )
    try:
        trigger_answer_lost(puerta)
        run = next_turn(puerta, clock)
        (pipeline,) = fake.pipelines.values()
        assert len(fake.triggered) == 1
        assert_adopted(run, pipeline.id)
        assert follow_to_end(puerta, clock)["status"] == "succeeded"
        assert len(fake.triggered) == 1
    finally:
        puerta.stop()


def test_circleci_that_hides_pipeline_parameters_is_triggered_again(
    database_url: str,
    circleci: tuple[FakeCircleCI, str],  # noqa: F811
    clock: ManualClock,
) -> None:
    """The documented limit: a CircleCI that does not show a pipeline's parameters cannot
    tell Puerta which pipeline its lost trigger started, so Puerta triggers again (a second
    pipeline) and follows the newer one."""
    fake, url = circleci
    fake.now = clock.now
    fake.echo_parameters = False
    fake.answer_late("POST", "/pipeline", delay=LATE)
    puerta = start(
        database_url,
        clock,
        CIRCLECI.format(url=url) + TIMEOUT,
        CIRCLECI_TARGET,
        CI_TOKEN=fake.token,
        CIRCLE_HOOK_SECRET="circle-secret",
    )
    try:
        trigger_answer_lost(puerta)
        run = next_turn(puerta, clock)
        assert len(fake.triggered) == 2
        assert run["external_id"] == fake.last_pipeline.id
        assert [e["source"] for e in run["events"]] == ["trigger"]
        assert follow_to_end(puerta, clock)["status"] == "succeeded"
    finally:
        puerta.stop()


# ---- cancels --------------------------------------------------------------------------------


def all_runs(puerta: Puerta) -> list[dict[str, Any]]:
    """Every run of the canary, of every rollout (a replaced rollout's too)."""
    answer = puerta.api("GET", "/ci/runs", token=VIEWER, params={"namespace": "staging"})
    assert answer.status_code == 200, answer.text
    listed: list[dict[str, Any]] = answer.json()["runs"]
    return listed


def test_a_failed_cancel_of_a_replaced_run_is_retried(
    database_url: str,
    github: tuple[FakeGitHub, str],  # noqa: F811
    clock: ManualClock,
) -> None:
    fake, url = github
    puerta = make_puerta(database_url, url, clock)
    try:
        assert gh_hook(puerta, "pre-rollout", checksum="rev-a").status_code == 200
        until(lambda: [r["status"] for r in all_runs(puerta)] == ["queued"])
        first = fake.last_run
        fake.fail_next_on("/cancel", status=503)

        assert gh_hook(puerta, "pre-rollout", checksum="rev-b").status_code == 200
        until(lambda: len(fake.dispatches) == 2)

        def old_run() -> dict[str, Any]:
            return next(r for r in all_runs(puerta) if r["external_id"] == str(first.id))

        until(lambda: old_run()["last_error"] is not None)
        # rounds go on (another canary's run is triggered and stored): the old run waits
        # for its retry instead of being cancelled again at once
        other = flagger_payload(
            "pre-rollout", namespace="staging", name="other", checksum="r1", metadata={}
        )
        assert puerta.http.post("/hooks/pre-rollout", json=other).status_code == 200
        until(lambda: any(r["name"] == "other" and r["external_id"] for r in all_runs(puerta)))
        assert old_run()["status"] == "queued"  # kept until the cancel went through
        assert old_run()["last_error"].startswith("could not cancel the run on CI, retrying")
        assert first.id not in fake.cancelled
        assert len(fake.requests_to("POST", f"/runs/{first.id}/cancel")) == 1

        clock.advance(timedelta(seconds=61))  # the retry's backoff (max_poll_interval 1m)
        gh_hook(puerta, "confirm-promotion", checksum="rev-b")  # wakes the runner
        until(lambda: old_run()["status"] == "abandoned")
        assert first.id in fake.cancelled
        assert "a new revision replaced this rollout; run cancelled on CI" in old_run()["reason"]
        # one failed try and one retry: the failed one did not make it due again at once
        assert len(fake.requests_to("POST", f"/runs/{first.id}/cancel")) == 2
    finally:
        puerta.stop()


def test_a_replaced_run_whose_id_was_never_learnt_is_found_and_cancelled(
    database_url: str,
    github: tuple[FakeGitHub, str],  # noqa: F811
    clock: ManualClock,
) -> None:
    """An older GitHub answers the dispatch 204 (no run id); the rollout is replaced before
    any poll found the run by its title: the cancel finds it first."""
    fake, url = github
    fake.now = clock.now
    fake.dispatch_mode = "204"
    puerta = make_puerta(database_url, url, clock)
    try:
        assert gh_hook(puerta, "pre-rollout", checksum="rev-a").status_code == 200
        until(lambda: [r["status"] for r in all_runs(puerta)] == ["queued"])
        assert all_runs(puerta)[0]["external_id"] is None
        first = fake.last_run

        assert gh_hook(puerta, "pre-rollout", checksum="rev-b").status_code == 200
        until(lambda: first.id in fake.cancelled)
        until(lambda: "abandoned" in [r["status"] for r in all_runs(puerta)])
        old = next(r for r in all_runs(puerta) if r["status"] == "abandoned")
        assert "a new revision replaced this rollout; run cancelled on CI" in old["reason"]
    finally:
        puerta.stop()


def test_a_failed_cancel_at_the_deadline_is_retried_while_the_gates_refuse(
    database_url: str,
    github: tuple[FakeGitHub, str],  # noqa: F811
    clock: ManualClock,
) -> None:
    """Past its deadline the run must be stopped on CI; while the cancel fails it is retried,
    and the gates already answer as for a failed run."""
    fake, url = github
    fake.script = [("in_progress", None)]
    puerta = make_puerta(database_url, url, clock)
    try:
        assert gh_hook(puerta, "pre-rollout").status_code == 200
        until(lambda: [r["status"] for r in all_runs(puerta)] == ["queued"])
        run = fake.last_run
        fake.fail_next_on("/cancel", status=503)

        clock.advance(timedelta(minutes=31))
        refused = gh_hook(puerta, "confirm-promotion")  # also wakes the runner
        assert refused.status_code == 403
        assert "did not finish by its deadline" in refused.text
        until(lambda: all_runs(puerta)[0]["last_error"] is not None)
        (waiting,) = all_runs(puerta)
        assert waiting["status"] == "queued"
        assert waiting["last_error"].startswith("could not cancel the run on CI, retrying")
        assert gh_hook(puerta, "rollback").status_code == 200  # roll back now

        clock.advance(timedelta(seconds=61))
        gh_hook(puerta, "confirm-promotion")
        until(lambda: all_runs(puerta)[0]["status"] == "failed")
        assert run.id in fake.cancelled
        (failed,) = all_runs(puerta)
        assert failed["reason"].startswith("did not finish within its deadline of 30m")
        assert "could not cancel" not in failed["reason"]
    finally:
        puerta.stop()
