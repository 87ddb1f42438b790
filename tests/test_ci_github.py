"""GitHubActions against a fake GitHub served over real HTTP: dispatch with and without run ids,
finding a run by its title, polling to a verdict (naming the failed job), cancel, and GitHub's
error and rate-limit answers mapped to Puerta's error classes."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from fakes.base import Received
from fakes.github import FakeGitHub
from fakes.server import serve_in_thread
from puerta.ci.base import (
    CannotTell,
    CiProvider,
    PermanentError,
    RateLimited,
    RunRef,
    RunState,
    Target,
    TransientError,
)
from puerta.ci.github import GitHubActions, parse_workflow_run_event
from puerta.clock import ManualClock
from required import skip_unless_required

TOKEN = "ghs_test_5f0c9a1e7b"
START = datetime(2026, 3, 2, 10, 0, 0, tzinfo=UTC)
REPO = "acme/e2e"
CORRELATION = "pr-7f3a9c"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def fake(clock: ManualClock) -> FakeGitHub:
    fake = FakeGitHub(token=TOKEN, now=clock.now)
    fake.add_workflow(REPO, "e2e.yml", name="E2E", run_name="E2E {puerta_run}", inputs=["suite"])
    return fake


@pytest.fixture
def base_url(fake: FakeGitHub) -> Iterator[str]:
    with serve_in_thread(fake.app) as url:
        yield url


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as client:
        yield client


@pytest.fixture
def github(client: httpx.AsyncClient, base_url: str, clock: ManualClock) -> GitHubActions:
    return GitHubActions(client, base_url=base_url, token=TOKEN, clock=clock.now)


def target(**overrides: Any) -> Target:
    values: dict[str, Any] = {
        "project": REPO,
        "workflow": "e2e.yml",
        "ref": "main",
        "parameters": {"puerta_run": CORRELATION, "suite": "smoke"},
        "correlation": CORRELATION,
    }
    values.update(overrides)
    return Target(**values)


def dispatches(fake: FakeGitHub) -> list[Received]:
    return fake.requests_to("POST", "/dispatches")


# ---- trigger -------------------------------------------------------------------------------


async def test_dispatch_returns_the_run_id_when_github_gives_run_details(
    github: GitHubActions, fake: FakeGitHub
) -> None:
    """github.com answers 200 with the run's id and link: the ref carries them at once."""
    ref = await github.trigger(target())

    run = fake.last_run
    assert ref == RunRef(
        id=str(run.id),
        url=f"https://github.com/{REPO}/actions/runs/{run.id}",
        triggered_at="2026-03-02T10:00:00Z",
        data={"repo": REPO, "workflow": "e2e.yml"},
    )
    assert run.display_title == f"E2E {CORRELATION}"


async def test_dispatch_sends_githubs_headers_and_body(
    github: GitHubActions, fake: FakeGitHub
) -> None:
    """Bearer token, GitHub's media type and pinned API version; ref, inputs and the flag."""
    await github.trigger(target())

    [sent] = dispatches(fake)
    assert sent.path == f"/repos/{REPO}/actions/workflows/e2e.yml/dispatches"
    assert sent.headers["authorization"] == f"Bearer {TOKEN}"
    assert sent.headers["accept"] == "application/vnd.github+json"
    assert sent.headers["x-github-api-version"] == "2022-11-28"
    assert sent.headers["content-type"] == "application/json"
    assert sent.json() == {
        "ref": "main",
        "inputs": {"puerta_run": CORRELATION, "suite": "smoke"},
        "return_run_details": True,
    }
    assert fake.dispatches == [sent.json()]


async def test_dispatch_by_numeric_workflow_id(github: GitHubActions, fake: FakeGitHub) -> None:
    """A workflow id works as well as its file name."""
    workflow_id = fake.workflows[(REPO, "e2e.yml")].id

    ref = await github.trigger(target(workflow=str(workflow_id)))

    assert ref.id == str(fake.last_run.id)
    assert dispatches(fake)[0].path.endswith(f"/workflows/{workflow_id}/dispatches")


async def test_dispatch_retries_without_the_flag_when_an_old_server_rejects_it(
    github: GitHubActions, fake: FakeGitHub
) -> None:
    """Older GHES refuse ``return_run_details`` with 422: dispatch again without it (204)."""
    fake.dispatch_mode = "reject_flag"

    ref = await github.trigger(target())

    first, second = dispatches(fake)
    assert first.json()["return_run_details"] is True
    assert "return_run_details" not in second.json()
    assert len(fake.runs) == 1  # the refused call started nothing
    assert ref.id is None
    assert ref.triggered_at == "2026-03-02T10:00:00Z"
    assert ref.data == {"repo": REPO, "workflow": "e2e.yml"}


async def test_the_return_run_details_switch_selects_the_old_behaviour(fake: FakeGitHub) -> None:
    """``return_run_details = False`` is shorthand for the refusing dispatch mode."""
    fake.return_run_details = False
    modes = [fake.dispatch_mode]
    fake.return_run_details = True
    modes.append(fake.dispatch_mode)
    assert modes == ["reject_flag", "details"]


async def test_dispatch_answered_with_204_has_no_id(
    github: GitHubActions, fake: FakeGitHub
) -> None:
    """A server that ignores the flag answers 204: the run is found later."""
    fake.dispatch_mode = "204"

    ref = await github.trigger(target())

    assert ref.id is None
    assert len(dispatches(fake)) == 1


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"workflow": None}, "workflow"),
        ({"ref": None}, "ref"),
        ({"project": "acme"}, "owner/repo"),
        ({"parameters": {f"in{i}": "x" for i in range(26)}}, "at most 25"),
    ],
)
async def test_targets_github_cannot_run_fail_before_any_request(
    github: GitHubActions, fake: FakeGitHub, overrides: dict[str, Any], expected: str
) -> None:
    """Missing workflow or ref, a bad project, more than 25 inputs: PermanentError, no call."""
    with pytest.raises(PermanentError, match=expected):
        await github.trigger(target(**overrides))
    assert fake.received == []


async def test_github_enterprise_base_url(
    client: httpx.AsyncClient, base_url: str, fake: FakeGitHub, clock: ManualClock
) -> None:
    """An Enterprise base URL (``https://host/api/v3``) prefixes every path."""
    ghe = GitHubActions(client, base_url=f"{base_url}/api/v3/", token=TOKEN, clock=clock.now)

    ref = await ghe.trigger(target())
    await ghe.status(ref, target())

    assert [r.path.split("/actions")[0] for r in fake.received] == [f"/api/v3/repos/{REPO}"] * 2


# ---- errors --------------------------------------------------------------------------------


async def test_bad_token_is_permanent_with_githubs_message_and_never_shows_the_token(
    client: httpx.AsyncClient, base_url: str, clock: ManualClock
) -> None:
    """401 Bad credentials: retrying will not help; the token stays out of the message."""
    wrong = "ghs_wrong_token_4c2d"
    github = GitHubActions(client, base_url=base_url, token=wrong, clock=clock.now)

    with pytest.raises(PermanentError, match="Bad credentials") as caught:
        await github.trigger(target())

    assert caught.value.status == 401
    assert wrong not in str(caught.value)
    assert wrong not in repr(github)


async def test_unknown_workflow_is_permanent_not_found(github: GitHubActions) -> None:
    """404 for a workflow or repository GitHub does not know."""
    with pytest.raises(PermanentError, match="Not Found") as caught:
        await github.trigger(target(workflow="missing.yml"))
    assert caught.value.status == 404
    assert "missing.yml" in str(caught.value)


async def test_undeclared_input_is_permanent_with_githubs_message(
    github: GitHubActions,
) -> None:
    """422 Unexpected inputs: the policy passes an input the workflow does not declare."""
    params = {"puerta_run": CORRELATION, "colour": "blue"}
    with pytest.raises(PermanentError, match=r'Unexpected inputs provided: \["colour"\]') as caught:
        await github.trigger(target(parameters=params))
    assert caught.value.status == 422


async def test_missing_required_input_is_permanent(github: GitHubActions, fake: FakeGitHub) -> None:
    """422 when a required input is missing (the fallback without the flag is not tried)."""
    fake.add_workflow(REPO, "deploy.yml", required=["env"])

    with pytest.raises(PermanentError, match="Required input 'env' not provided"):
        await github.trigger(target(workflow="deploy.yml", parameters={}))
    assert len(dispatches(fake)) == 1


async def test_unknown_ref_is_permanent(github: GitHubActions, fake: FakeGitHub) -> None:
    """422 "No ref found" for a branch that does not exist."""
    fake.add_workflow(REPO, "release.yml", refs=["main"])

    with pytest.raises(PermanentError, match="No ref found for: nope"):
        await github.trigger(target(workflow="release.yml", ref="nope", parameters={}))


async def test_outage_is_transient(github: GitHubActions, fake: FakeGitHub) -> None:
    """503 means try again later, never a pass and never a refusal."""
    fake.fail_next(status=503)

    with pytest.raises(TransientError) as caught:
        await github.trigger(target())

    assert type(caught.value) is TransientError
    assert caught.value.status == 503


async def test_connection_refused_is_transient(client: httpx.AsyncClient) -> None:
    """Nothing listening: TransientError, with no token in the message."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    github = GitHubActions(client, base_url=f"http://127.0.0.1:{port}", token=TOKEN)

    with pytest.raises(TransientError) as caught:
        await github.trigger(target())
    assert TOKEN not in str(caught.value)


async def test_429_is_rate_limited_with_retry_after(
    github: GitHubActions, fake: FakeGitHub
) -> None:
    """429 with Retry-After: wait that long."""
    fake.fail_next(status=429, retry_after="30")

    with pytest.raises(RateLimited) as caught:
        await github.trigger(target())

    assert caught.value.retry_after == 30.0
    assert caught.value.status == 429


async def test_secondary_rate_limit_403_with_retry_after(
    github: GitHubActions, fake: FakeGitHub
) -> None:
    """GitHub's secondary limit answers 403 with retry-after: RateLimited, not a refusal."""
    fake.secondary_rate_limit_next(retry_after=45)

    with pytest.raises(RateLimited, match="secondary rate limit") as caught:
        await github.trigger(target())

    assert caught.value.retry_after == 45.0
    assert caught.value.status == 403


async def test_secondary_rate_limit_without_headers_waits_a_minute(
    github: GitHubActions, fake: FakeGitHub
) -> None:
    """GitHub: without retry-after or a zero remaining count, wait at least one minute."""
    fake.secondary_rate_limit_next(retry_after=None)

    with pytest.raises(RateLimited) as caught:
        await github.trigger(target())
    assert caught.value.retry_after == 60.0


@pytest.mark.parametrize("status", [403, 429])
async def test_primary_rate_limit_waits_until_the_reset(
    github: GitHubActions, fake: FakeGitHub, status: int
) -> None:
    """``x-ratelimit-remaining: 0``: wait until ``x-ratelimit-reset`` (epoch) by our clock."""
    fake.primary_rate_limit_next(reset_in=754, status=status)

    with pytest.raises(RateLimited, match="API rate limit exceeded") as caught:
        await github.trigger(target())
    assert caught.value.retry_after == 754.0
    assert caught.value.status == status


async def test_plain_403_is_permanent(github: GitHubActions, fake: FakeGitHub) -> None:
    """A 403 without rate-limit signs is a refusal (the token may not dispatch)."""
    message = "Resource not accessible by personal access token"
    fake.fail_next(status=403, body={"message": message})

    with pytest.raises(PermanentError, match=message) as caught:
        await github.trigger(target())
    assert caught.value.status == 403


# ---- finding a run without an id ----------------------------------------------------------


async def test_run_without_id_is_found_by_correlation_in_its_title(
    github: GitHubActions, fake: FakeGitHub
) -> None:
    """204 dispatch: QUEUED "not found yet" until GitHub lists the run, then the run's ref."""
    fake.dispatch_mode = "204"
    fake.list_delay = 1
    ref = await github.trigger(target())

    waiting = await github.status(ref, target())
    found = await github.status(ref, target())

    assert waiting.state is RunState.QUEUED
    assert waiting.raw == "not found yet"
    assert "waiting for GitHub to list the run" in waiting.reason
    assert waiting.ref is None
    run = fake.last_run
    assert found.state is RunState.QUEUED
    assert found.raw == "queued"
    assert found.ref == RunRef(
        id=str(run.id),
        url=run.html_url,
        number="1",
        triggered_at=ref.triggered_at,
        data=ref.data,
    )


async def test_run_search_filters_dispatches_since_a_minute_before_the_trigger(
    github: GitHubActions, fake: FakeGitHub
) -> None:
    """The list query: workflow_dispatch runs on the branch, created since trigger - 1 min."""
    fake.dispatch_mode = "204"
    ref = await github.trigger(target())

    await github.status(ref, target())

    [listed] = fake.requests_to("GET", "/runs")
    assert listed.path == f"/repos/{REPO}/actions/workflows/e2e.yml/runs"
    assert listed.query == {
        "event": "workflow_dispatch",
        "created": ">=2026-03-02T09:59:00Z",
        "per_page": "100",
        "page": "1",
        "branch": "main",
    }


async def test_run_search_picks_the_run_with_its_own_correlation(
    github: GitHubActions, fake: FakeGitHub
) -> None:
    """Several runs since the trigger: the one whose title holds our correlation."""
    fake.dispatch_mode = "204"
    ours = await github.trigger(target())
    await github.trigger(target(parameters={"puerta_run": "other-1"}, correlation="other-1"))

    status = await github.status(ours, target())

    assert status.ref is not None
    mine = next(r for r in fake.runs.values() if CORRELATION in r.display_title)
    assert status.ref.id == str(mine.id)


async def test_run_search_ignores_runs_from_before_the_trigger(
    github: GitHubActions, fake: FakeGitHub, clock: ManualClock
) -> None:
    """An older run with the same title (a rerun of yesterday's gate) is not ours."""
    fake.dispatch_mode = "204"
    await github.trigger(target())
    clock.advance(timedelta(hours=1))
    ref = await github.trigger(target())

    status = await github.status(ref, target())

    assert status.ref is not None
    assert status.ref.id == str(fake.last_run.id)


async def test_runs_on_a_tag_are_not_filtered_by_branch(
    github: GitHubActions, fake: FakeGitHub
) -> None:
    """A tag is no branch: the run list is searched without ``branch``."""
    fake.dispatch_mode = "204"
    tagged = target(ref="v1.4.0", ref_is_tag=True)
    ref = await github.trigger(tagged)

    status = await github.status(ref, tagged)

    assert status.ref is not None
    assert "branch" not in fake.requests_to("GET", "/runs")[0].query


async def test_without_run_ids_a_correlation_is_required(
    github: GitHubActions, fake: FakeGitHub
) -> None:
    """No id and no correlation: say how to make the workflow findable."""
    fake.dispatch_mode = "204"
    ref = await github.trigger(target())

    with pytest.raises(PermanentError, match="run-name"):
        await github.status(ref, target(correlation=""))


# ---- find: the run of a dispatch whose answer was lost ---------------------------------------


async def test_find_returns_the_run_a_lost_dispatch_started(
    github: GitHubActions, fake: FakeGitHub
) -> None:
    """github.com returned the run id, but Puerta never read the answer: the same title search
    finds the run, with the ref a poll needs."""
    await github.trigger(target())
    run = fake.last_run

    found = await github.find(target(), START - timedelta(minutes=1))

    assert found == RunRef(
        id=str(run.id),
        url=run.html_url,
        number="1",
        triggered_at="2026-03-02T09:59:00Z",
        data={"repo": REPO, "workflow": "e2e.yml"},
    )
    [listed] = fake.requests_to("GET", "/runs")
    assert listed.query["created"] == ">=2026-03-02T09:59:00Z"  # since as given, no more margin
    assert listed.query["event"] == "workflow_dispatch"


async def test_find_answers_none_when_no_dispatch_arrived(
    github: GitHubActions, fake: FakeGitHub
) -> None:
    await github.trigger(target(parameters={"puerta_run": "other-1"}, correlation="other-1"))

    assert await github.find(target(), START - timedelta(minutes=1)) is None


async def test_find_picks_the_earliest_of_two_runs(
    github: GitHubActions, fake: FakeGitHub, clock: ManualClock
) -> None:
    """Two runs with the correlation (an older Puerta triggered twice): the first one."""
    await github.trigger(target())
    first = fake.last_run
    clock.advance(timedelta(seconds=5))
    await github.trigger(target())

    found = await github.find(target(), START - timedelta(minutes=1))

    assert found is not None and found.id == str(first.id)


async def test_find_ignores_runs_created_before_since(
    github: GitHubActions, fake: FakeGitHub, clock: ManualClock
) -> None:
    await github.trigger(target())
    clock.advance(timedelta(hours=1))

    assert await github.find(target(), clock.now() - timedelta(minutes=1)) is None


async def test_find_needs_the_run_id_in_an_input(github: GitHubActions, fake: FakeGitHub) -> None:
    """Without {run_id} in an input no title can carry it: cannot tell, without a request."""
    without = target(parameters={"suite": "smoke"})

    assert not github.can_find(without)
    assert github.can_find(target())
    with pytest.raises(CannotTell, match="run id"):
        await github.find(without, START)
    assert fake.received == []


async def test_find_in_a_list_github_cannot_answer_is_transient(
    github: GitHubActions, fake: FakeGitHub
) -> None:
    fake.fail_next_on("/runs", status=502)

    with pytest.raises(TransientError):
        await github.find(target(), START)


# ---- polling to a verdict ------------------------------------------------------------------


async def test_polling_follows_the_run_to_success(github: GitHubActions, fake: FakeGitHub) -> None:
    """queued -> in_progress -> completed/success, one step per poll."""
    ref = await github.trigger(target())

    seen = [await github.status(ref, target()) for _ in range(3)]

    assert [s.state for s in seen] == [RunState.QUEUED, RunState.RUNNING, RunState.SUCCEEDED]
    assert [s.raw for s in seen] == ["queued", "in_progress", "completed/success"]
    run = fake.last_run
    assert seen[2].reason == f'workflow "E2E" run 1 succeeded: {run.html_url}'
    assert seen[2].url == run.html_url
    assert fake.requests_to("GET", "/jobs") == []  # jobs are only looked up on failure


async def test_first_poll_learns_the_run_number(github: GitHubActions, fake: FakeGitHub) -> None:
    """The dispatch answer has no run number; the first poll returns a ref with it."""
    ref = await github.trigger(target())

    first = await github.status(ref, target())
    assert first.ref is not None
    second = await github.status(first.ref, target())

    assert first.ref.number == "1"
    assert first.ref.id == ref.id
    assert second.ref is None


async def test_failure_names_and_links_the_failed_job(
    github: GitHubActions, fake: FakeGitHub
) -> None:
    """completed/failure: the reason names the failed job and links to it; jobs become parts."""
    ref = await github.trigger(target())
    run = fake.last_run
    fake.complete(run.id, "failure")
    fake.set_jobs(
        run.id,
        [("build", "completed", "success"), ("playwright", "completed", "failure")],
    )

    status = await github.status(ref, target())

    job_url = f"https://github.com/{REPO}/actions/runs/{run.id}/job/{run.id * 100 + 1}"
    assert status.state is RunState.FAILED
    assert status.raw == "completed/failure"
    assert status.reason == f'workflow "E2E" run 1 failed (job "playwright" failure): {job_url}'
    assert [(p.name, p.status, p.state, p.url) for p in status.parts][1] == (
        "playwright",
        "failure",
        RunState.FAILED,
        job_url,
    )
    assert status.parts[0].state is RunState.SUCCEEDED
    [jobs] = fake.requests_to("GET", "/jobs")
    assert jobs.query == {"filter": "latest", "per_page": "100"}


async def test_failure_is_reported_even_when_jobs_cannot_be_fetched(
    github: GitHubActions, fake: FakeGitHub
) -> None:
    """The verdict is known from the run; a 503 on the jobs call only loses the job names."""
    ref = await github.trigger(target())
    run = fake.last_run
    fake.complete(run.id, "timed_out")
    fake.fail_next_on("/jobs", status=503)

    status = await github.status(ref, target())

    assert status.state is RunState.FAILED
    assert status.reason == f'workflow "E2E" run 1 failed (timed_out): {run.html_url}'
    assert status.parts == ()


@pytest.mark.parametrize("conclusion", ["skipped", "neutral"])
async def test_skipped_or_neutral_run_is_no_pass(
    github: GitHubActions, fake: FakeGitHub, conclusion: str
) -> None:
    """GitHub calls them "not failed"; an E2E gate needs a success, and says why."""
    ref = await github.trigger(target())
    fake.complete(fake.last_run.id, conclusion)

    status = await github.status(ref, target())

    assert status.state is RunState.FAILED
    assert status.raw == f"completed/{conclusion}"
    assert f"failed ({conclusion}; the gate needs a success)" in status.reason


@pytest.mark.parametrize(
    ("conclusion", "state"),
    [
        ("cancelled", RunState.CANCELED),
        ("startup_failure", RunState.FAILED),
        ("action_required", RunState.FAILED),
        ("stale", RunState.FAILED),
        ("something_new", RunState.FAILED),
    ],
)
async def test_other_conclusions(
    github: GitHubActions, fake: FakeGitHub, conclusion: str, state: RunState
) -> None:
    """Cancelled is CANCELED; every other conclusion but success is a failure."""
    ref = await github.trigger(target())
    fake.complete(fake.last_run.id, conclusion)

    assert (await github.status(ref, target())).state is state


@pytest.mark.parametrize("waiting", ["requested", "pending", "waiting"])
async def test_waiting_statuses_are_queued(
    github: GitHubActions, fake: FakeGitHub, waiting: str
) -> None:
    """A run waiting for a runner, a concurrency group or an environment approval."""
    ref = await github.trigger(target())
    fake.set_script(fake.last_run.id, [(waiting, None)])

    status = await github.status(ref, target())

    assert status.state is RunState.QUEUED
    assert status.raw == waiting


async def test_unknown_run_is_permanent(github: GitHubActions) -> None:
    """A run id GitHub does not know (deleted run): 404 PermanentError."""
    ref = RunRef(id="1", data={"repo": REPO, "workflow": "e2e.yml"})
    with pytest.raises(PermanentError, match="Not Found"):
        await github.status(ref, target())


# ---- cancel --------------------------------------------------------------------------------


async def test_cancel_a_running_run(github: GitHubActions, fake: FakeGitHub) -> None:
    """202: GitHub accepted the cancel; the run ends cancelled."""
    ref = await github.trigger(target())

    assert await github.cancel(ref) is True

    assert fake.cancelled == [fake.last_run.id]
    assert (await github.status(ref, target())).state is RunState.CANCELED


async def test_cancel_a_completed_run_is_nothing_to_do(
    github: GitHubActions, fake: FakeGitHub
) -> None:
    """409 "Cannot cancel a workflow run that is completed": nothing left to cancel."""
    ref = await github.trigger(target())
    fake.complete(fake.last_run.id, "success")

    assert await github.cancel(ref) is True
    assert fake.cancelled == []
    assert len(fake.requests_to("POST", "/cancel")) == 1


async def test_cancel_without_an_id_cannot(github: GitHubActions, fake: FakeGitHub) -> None:
    """A run not found yet cannot be cancelled; no request is made."""
    assert await github.cancel(RunRef(id=None, data={"repo": REPO})) is False
    assert fake.received == []


# ---- webhook -------------------------------------------------------------------------------


async def test_workflow_run_webhook_completed(github: GitHubActions, fake: FakeGitHub) -> None:
    """A completed ``workflow_run`` event gives the run id and the same verdict as a poll."""
    ref = await github.trigger(target())
    fake.complete(fake.last_run.id, "failure")

    parsed = parse_workflow_run_event(fake.workflow_run_event(fake.last_run.id))

    assert parsed is not None
    run_id, status = parsed
    assert run_id == ref.id
    assert status.state is RunState.FAILED
    assert status.raw == "completed/failure"
    assert status.url == fake.last_run.html_url
    assert status.reason.startswith('workflow "E2E" run 1 failed (failure)')


@pytest.mark.parametrize(
    ("action", "state"), [("requested", RunState.QUEUED), ("in_progress", RunState.RUNNING)]
)
async def test_workflow_run_webhook_in_flight(
    github: GitHubActions, fake: FakeGitHub, action: str, state: RunState
) -> None:
    """``requested`` and ``in_progress`` events are not terminal."""
    await github.trigger(target())

    parsed = parse_workflow_run_event(fake.workflow_run_event(fake.last_run.id, action))

    assert parsed is not None
    assert parsed[1].state is state


@pytest.mark.parametrize(
    "body",
    [
        {"action": "opened", "pull_request": {"id": 1}},
        {"action": "completed", "check_run": {"id": 1}},
        {"ref": "refs/heads/main", "commits": []},
        {"zen": "Keep it logically awesome.", "hook_id": 1},
    ],
)
def test_other_payloads_are_not_workflow_run_events(body: dict[str, Any]) -> None:
    """Pull request, check run, push and ping payloads: None."""
    assert parse_workflow_run_event(body) is None


async def test_fake_webhook_payload_has_githubs_shape(
    github: GitHubActions, fake: FakeGitHub
) -> None:
    """The fake's event carries the fields a receiver reads (so other tests can rely on it)."""
    await github.trigger(target())
    event = fake.workflow_run_event(fake.last_run.id, "in_progress")

    assert set(event) == {"action", "workflow_run", "workflow", "repository", "sender"}
    assert {
        "id",
        "name",
        "display_title",
        "status",
        "conclusion",
        "html_url",
        "run_number",
        "run_attempt",
        "head_branch",
        "head_sha",
        "event",
        "created_at",
        "updated_at",
    } <= set(event["workflow_run"])
    assert event["repository"]["full_name"] == REPO
    with pytest.raises(ValueError, match="complete"):
        fake.workflow_run_event(fake.last_run.id, "completed")


def test_is_a_ci_provider(client: httpx.AsyncClient) -> None:
    """GitHubActions satisfies the CiProvider protocol (checked by mypy too)."""
    provider: CiProvider = GitHubActions(client, token=TOKEN)
    assert provider.kind == "github"


# ---- requests checked against GitHub's OpenAPI description ---------------------------------

SPEC_ENV = "PUERTA_GITHUB_OPENAPI"
SPEC_DEFAULT = Path(__file__).parent.parent / "artifacts" / "specs" / "api.github.com.json"
SPEC_PATHS = (
    "/repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches",
    "/repos/{owner}/{repo}/actions/workflows/{workflow_id}/runs",
    "/repos/{owner}/{repo}/actions/runs/{run_id}",
    "/repos/{owner}/{repo}/actions/runs/{run_id}/jobs",
    "/repos/{owner}/{repo}/actions/runs/{run_id}/cancel",
)


def _trimmed_spec(path: Path) -> dict[str, Any]:
    """The paths Puerta calls plus every component they reference (13 MB -> a few KB)."""
    full = json.loads(path.read_text())
    spec: dict[str, Any] = {
        "openapi": full["openapi"],
        "info": full["info"],
        "servers": [{"url": "/"}],
        "paths": {p: full["paths"][p] for p in SPEC_PATHS},
        "components": {},
    }
    pending = [spec["paths"]]
    while pending:
        node = pending.pop()
        if isinstance(node, list):
            pending.extend(node)
        elif isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/components/"):
                _, _, kind, name = ref.split("/", 3)
                section = spec["components"].setdefault(kind, {})
                if name not in section:
                    section[name] = full["components"][kind][name]
                    pending.append(section[name])
            pending.extend(node.values())
    # The description types ``created`` as a plain date-time, yet documents (and GitHub
    # accepts) the search syntax ``>=2026-03-02T09:59:00Z``; the test checks that form itself.
    created = spec["components"]["parameters"]["created"]
    created["schema"] = {"type": "string", "pattern": r"^>=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"}
    return spec


class _SpecRequest:
    """A request the fake received, in the shape openapi-core reads."""

    def __init__(self, base_url: str, received: Received) -> None:
        from openapi_core.datatypes import RequestParameters
        from werkzeug.datastructures import Headers, ImmutableMultiDict

        self.host_url = base_url
        self.path = received.path
        self.full_url_pattern = base_url + received.path
        self.method = received.method.lower()
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(received.query), header=Headers(received.headers)
        )
        self.content_type = received.headers.get("content-type", "")
        self.body = received.body or None


class _SpecResponse:
    """An httpx response in the shape openapi-core reads."""

    def __init__(self, response: httpx.Response) -> None:
        from werkzeug.datastructures import Headers

        self.data = response.content
        self.status_code = response.status_code
        self.content_type = response.headers.get("content-type", "")
        self.headers = Headers(dict(response.headers))


@pytest.fixture(scope="module")
def github_openapi() -> Any:
    """openapi-core over GitHub's description (trimmed), or a skip saying how to get it
    (a failure under ``PUERTA_REQUIRE_SPECS=1``, as in CI).

    The description is too big to keep in the repository; ``scripts/fetch-specs`` (which
    ``.ci/run`` calls) puts it in ``artifacts/specs/`` (ignored by git), or point
    ``PUERTA_GITHUB_OPENAPI`` at the file.
    """
    path = Path(os.environ.get(SPEC_ENV) or SPEC_DEFAULT)
    if not path.is_file():
        message = (
            f"GitHub's OpenAPI description is not at {path}: run scripts/fetch-specs "
            f"(or set {SPEC_ENV})"
        )
        skip_unless_required(message, "PUERTA_REQUIRE_SPECS")
    from openapi_core import OpenAPI

    return OpenAPI.from_dict(_trimmed_spec(path))


async def test_requests_match_githubs_openapi_description(
    github: GitHubActions, fake: FakeGitHub, base_url: str, github_openapi: Any
) -> None:
    """Every request Puerta sends (dispatch, list, poll, jobs, cancel) is one GitHub documents."""
    fake.dispatch_mode = "204"
    ref = await github.trigger(target())
    found = await github.status(ref, target())
    assert found.ref is not None
    fake.complete(int(str(found.ref.id)), "failure")
    await github.status(found.ref, target())
    fake.dispatch_mode = "details"
    await github.cancel(await github.trigger(target()))

    paths = {r.path for r in fake.received}
    assert any(p.endswith("/runs") for p in paths)
    assert any(p.endswith("/jobs") for p in paths)
    assert any(p.endswith("/cancel") for p in paths)
    for received in fake.received:
        github_openapi.validate_request(_SpecRequest(base_url, received))


async def test_fake_dispatch_and_cancel_answers_match_githubs_openapi_description(
    client: httpx.AsyncClient, fake: FakeGitHub, base_url: str, github_openapi: Any
) -> None:
    """The fake's 200/204 dispatch and 202/409 cancel answers have GitHub's documented shape.

    (Run and job objects are not checked: GitHub requires dozens of fields Puerta never
    reads, such as the full repository object.)
    """
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/vnd.github+json"}
    dispatch = f"/repos/{REPO}/actions/workflows/e2e.yml/dispatches"
    body = {"ref": "main", "inputs": {"puerta_run": "x"}}
    calls = [
        ("POST", dispatch, {**body, "return_run_details": True}, 200),
        ("POST", dispatch, body, 204),
    ]
    answers = []
    for method, path, payload, expected in calls:
        answer = await client.request(method, base_url + path, json=payload, headers=headers)
        assert answer.status_code == expected
        answers.append(answer)
    cancel = f"/repos/{REPO}/actions/runs/{fake.last_run.id}/cancel"
    for expected in (202, 409):
        answer = await client.post(base_url + cancel, headers=headers)
        assert answer.status_code == expected
        answers.append(answer)

    for received, answer in zip(fake.received, answers, strict=True):
        request = _SpecRequest(base_url, received)
        github_openapi.validate_response(request, _SpecResponse(answer))
