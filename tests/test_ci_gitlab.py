"""The GitLab CI client against the fake GitLab over real HTTP: request shapes, polling,
state mapping, failed-job reasons, cancel, and how errors are classified."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from fakes.gitlab import FakeGitLab
from fakes.server import serve_in_thread
from puerta.ci.base import (
    CannotTell,
    Part,
    PermanentError,
    RateLimited,
    RunRef,
    RunState,
    Target,
    TransientError,
)
from puerta.ci.gitlab import GitLabCI
from puerta.ci.http import error_message
from puerta.clock import ManualClock

TARGET = Target(project="acme/e2e", ref="main", parameters={"TARGET": "http://app", "REV": "abc"})


@pytest.fixture
def fake() -> FakeGitLab:
    gitlab = FakeGitLab()
    gitlab.add_project(id=7, path="acme/e2e")
    gitlab.add_project(id=8, path="group/sub/project", refs=["main", "v1.2.0"])
    return gitlab


class CurrentApp:
    """One server per module (starting uvicorn per test is slow); each test plugs in its fake."""

    app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, CurrentApp]]:
    current = CurrentApp()
    with serve_in_thread(current, lifespan="off") as url:
        yield url, current


@pytest.fixture
def base_url(fake: FakeGitLab, server: tuple[str, CurrentApp]) -> str:
    url, current = server
    current.app = fake.app
    return url


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as http:
        yield http


@pytest.fixture
def gitlab(client: httpx.AsyncClient, base_url: str, fake: FakeGitLab) -> GitLabCI:
    return GitLabCI(client, base_url=base_url, token=fake.token)


# -- trigger ---------------------------------------------------------------------------------
async def test_trigger_sends_token_encoded_path_and_variables(
    gitlab: GitLabCI, fake: FakeGitLab, base_url: str
) -> None:
    ref = await gitlab.trigger(TARGET)

    assert fake.raw_paths == ["/api/v4/projects/acme%2Fe2e/pipeline"]
    sent = fake.requests_to("POST", "/pipeline")[0]
    assert sent.headers["private-token"] == fake.token
    assert sent.json() == {
        "ref": "main",
        "variables": [
            {"key": "TARGET", "value": "http://app", "variable_type": "env_var"},
            {"key": "REV", "value": "abc", "variable_type": "env_var"},
        ],
    }
    assert ref.id == "1001"
    assert ref.number == "1"
    assert ref.url == f"{base_url}/acme/e2e/-/pipelines/1001"
    assert ref.data == {"project": "acme/e2e"}
    assert ref.triggered_at is not None and ref.triggered_at.endswith("+00:00")


async def test_trigger_by_numeric_id_and_nested_path(gitlab: GitLabCI, fake: FakeGitLab) -> None:
    await gitlab.trigger(Target(project="7", ref="main"))
    ref = await gitlab.trigger(Target(project="group/sub/project", ref="v1.2.0", ref_is_tag=True))

    assert fake.raw_paths == [
        "/api/v4/projects/7/pipeline",
        "/api/v4/projects/group%2Fsub%2Fproject/pipeline",
    ]
    assert fake.created[1] == {"ref": "v1.2.0", "variables": []}
    assert ref.data == {"project": "group/sub/project"}


async def test_trigger_without_ref_is_permanent_and_sends_nothing(
    gitlab: GitLabCI, fake: FakeGitLab
) -> None:
    with pytest.raises(PermanentError, match="ref"):
        await gitlab.trigger(Target(project="acme/e2e"))
    assert fake.received == []


# -- polling ---------------------------------------------------------------------------------
async def test_polls_to_success(gitlab: GitLabCI, fake: FakeGitLab) -> None:
    fake.script = ["pending", "running", "success"]
    ref = await gitlab.trigger(TARGET)

    seen = [await gitlab.status(ref, TARGET) for _ in range(3)]

    assert [(s.state, s.raw) for s in seen] == [
        (RunState.QUEUED, "pending"),
        (RunState.RUNNING, "running"),
        (RunState.SUCCEEDED, "success"),
    ]
    assert seen[-1].url == ref.url
    assert fake.raw_paths[-1] == "/api/v4/projects/acme%2Fe2e/pipelines/1001"
    assert fake.requests_to("GET", "/jobs") == []


async def test_failure_names_and_links_the_failed_job(gitlab: GitLabCI, fake: FakeGitLab) -> None:
    fake.script = ["running", "failed"]
    fake.add_failed_job("lint", stage="test", allow_failure=True)
    fake.add_failed_job("playwright", stage="test")
    ref = await gitlab.trigger(TARGET)
    await gitlab.status(ref, TARGET)

    status = await gitlab.status(ref, TARGET)

    job = next(j for j in fake.pipelines[1001].jobs if j["name"] == "playwright")
    assert status.state is RunState.FAILED
    assert status.raw == "failed"
    assert status.reason == (
        f'pipeline 1001 failed (job "playwright" in stage "test" failed): {job["web_url"]}'
    )
    assert status.parts == (Part("playwright", "failed", RunState.FAILED, job["web_url"]),)
    listing = fake.requests_to("GET", "/jobs")[0]
    assert listing.query == {"scope[]": "failed", "per_page": "100"}


async def test_failure_with_several_jobs_counts_the_rest(
    gitlab: GitLabCI, fake: FakeGitLab
) -> None:
    fake.script = ["failed"]
    fake.add_failed_job("unit", stage="test")
    fake.add_failed_job("deploy-preview", stage="review")
    ref = await gitlab.trigger(TARGET)

    status = await gitlab.status(ref, TARGET)

    assert '(job "unit" in stage "test" and 1 more failed)' in status.reason
    assert [part.name for part in status.parts] == ["unit", "deploy-preview"]


async def test_failure_without_failed_jobs_links_the_pipeline(
    gitlab: GitLabCI, fake: FakeGitLab
) -> None:
    fake.script = ["failed"]
    fake.add_failed_job("flaky", allow_failure=True)
    ref = await gitlab.trigger(TARGET)

    status = await gitlab.status(ref, TARGET)

    assert status.state is RunState.FAILED
    assert status.reason == f"pipeline 1001 failed: {ref.url}"
    assert status.parts == ()


async def test_failure_stays_a_failure_when_jobs_cannot_be_listed(
    gitlab: GitLabCI, fake: FakeGitLab
) -> None:
    fake.script = ["failed"]
    fake.jobs_status = 503
    ref = await gitlab.trigger(TARGET)

    status = await gitlab.status(ref, TARGET)

    assert status.state is RunState.FAILED
    assert status.reason == f"pipeline 1001 failed: {ref.url}"


@pytest.mark.parametrize(
    ("word", "state", "reason"),
    [
        ("created", RunState.QUEUED, "is created"),
        ("waiting_for_resource", RunState.QUEUED, "is waiting for resource"),
        ("preparing", RunState.QUEUED, "is preparing"),
        ("pending", RunState.QUEUED, "is pending"),
        ("scheduled", RunState.QUEUED, "is scheduled"),
        ("running", RunState.RUNNING, "is running"),
        ("manual", RunState.RUNNING, "is waiting for a manual job"),
        ("success", RunState.SUCCEEDED, "succeeded"),
        ("failed", RunState.FAILED, "failed"),
        ("canceled", RunState.CANCELED, "was canceled"),
        ("canceling", RunState.CANCELED, "was canceled"),
        ("skipped", RunState.FAILED, "was skipped"),
        ("some_future_word", RunState.RUNNING, "has an unknown status 'some_future_word'"),
    ],
)
async def test_status_words_map_to_states(
    gitlab: GitLabCI, fake: FakeGitLab, word: str, state: RunState, reason: str
) -> None:
    fake.script = [word]
    ref = await gitlab.trigger(TARGET)

    status = await gitlab.status(ref, TARGET)

    assert (status.state, status.raw) == (state, word)
    assert status.reason.startswith(f"pipeline 1001 {reason}")
    assert status.reason.endswith(f": {ref.url}")


async def test_status_uses_the_project_stored_in_the_ref(
    gitlab: GitLabCI, fake: FakeGitLab
) -> None:
    ref = await gitlab.trigger(Target(project="7", ref="main"))

    await gitlab.status(ref, Target(project="ignored/elsewhere", ref="main"))

    assert fake.raw_paths[-1] == "/api/v4/projects/7/pipelines/1001"


# -- cancel ----------------------------------------------------------------------------------
async def test_cancel_cancels_the_pipeline(gitlab: GitLabCI, fake: FakeGitLab) -> None:
    fake.script = ["running"]
    ref = await gitlab.trigger(TARGET)

    assert await gitlab.cancel(ref) is True

    assert fake.cancelled == [1001]
    assert fake.raw_paths[-1] == "/api/v4/projects/acme%2Fe2e/pipelines/1001/cancel"
    assert (await gitlab.status(ref, TARGET)).state is RunState.CANCELED


async def test_cancel_without_a_pipeline_id_is_false(gitlab: GitLabCI, fake: FakeGitLab) -> None:
    assert await gitlab.cancel(RunRef(id=None, data={"project": "acme/e2e"})) is False
    assert fake.received == []


# -- find: the pipeline of a trigger whose answer was lost ----------------------------------
START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
SINCE = START - timedelta(minutes=1)
CORRELATED = replace(TARGET, correlation="pr-5e1f0a2b3c4d")


@pytest.fixture
def clock(fake: FakeGitLab) -> ManualClock:
    clock = ManualClock(START)
    fake.now = clock.now
    return clock


async def test_trigger_sends_the_run_id_as_a_variable(gitlab: GitLabCI, fake: FakeGitLab) -> None:
    await gitlab.trigger(CORRELATED)
    carried = replace(CORRELATED, parameters={"RUN": "e2e pr-5e1f0a2b3c4d"})
    await gitlab.trigger(carried)

    assert fake.created[0]["variables"][-1] == {
        "key": "PUERTA_RUN_ID",
        "value": "pr-5e1f0a2b3c4d",
        "variable_type": "env_var",
    }
    # a gate parameter already carries it: nothing added
    assert [v["key"] for v in fake.created[1]["variables"]] == ["RUN"]


async def test_find_returns_the_pipeline_a_lost_trigger_created(
    gitlab: GitLabCI, fake: FakeGitLab, clock: ManualClock
) -> None:
    created = await gitlab.trigger(CORRELATED)

    found = await gitlab.find(CORRELATED, SINCE)

    assert found is not None
    assert (found.id, found.number, found.url, found.data) == (
        created.id,
        created.number,
        created.url,
        created.data,
    )
    [listed] = fake.requests_to("GET", "/pipelines")[:1]
    assert listed.query == {
        "ref": "main",
        "source": "api",
        "updated_after": "2026-03-02T09:59:00Z",
        "order_by": "id",
        "sort": "asc",
        "per_page": "100",
        "page": "1",
    }
    assert fake.raw_paths[-1] == "/api/v4/projects/acme%2Fe2e/pipelines/1001/variables"


async def test_find_reads_variables_until_the_run_id_and_picks_the_earliest(
    gitlab: GitLabCI, fake: FakeGitLab, clock: ManualClock
) -> None:
    """Other gates' pipelines on the same ref come first; two of ours: the first."""
    await gitlab.trigger(replace(CORRELATED, correlation="pr-000000000001"))
    ours = await gitlab.trigger(CORRELATED)
    await gitlab.trigger(CORRELATED)

    found = await gitlab.find(CORRELATED, SINCE)

    assert found is not None and found.id == ours.id
    assert len(fake.requests_to("GET", "/variables")) == 2


async def test_find_answers_none_when_no_pipeline_carries_the_run_id(
    gitlab: GitLabCI, fake: FakeGitLab, clock: ManualClock
) -> None:
    await gitlab.trigger(replace(CORRELATED, correlation="pr-000000000001"))
    await gitlab.trigger(replace(CORRELATED, ref="v1.2.0", project="group/sub/project"))

    assert await gitlab.find(CORRELATED, SINCE) is None


async def test_find_ignores_pipelines_created_before_since(
    gitlab: GitLabCI, fake: FakeGitLab, clock: ManualClock
) -> None:
    await gitlab.trigger(CORRELATED)
    clock.advance(timedelta(hours=1))

    assert await gitlab.find(CORRELATED, clock.now() - timedelta(minutes=1)) is None
    assert fake.requests_to("GET", "/variables") == []


async def test_find_with_too_many_pipelines_to_check_cannot_tell(
    gitlab: GitLabCI, fake: FakeGitLab, clock: ManualClock
) -> None:
    for index in range(26):
        await gitlab.trigger(replace(CORRELATED, correlation=f"pr-{index:012d}"))

    with pytest.raises(CannotTell, match="too many pipelines"):
        await gitlab.find(CORRELATED, SINCE)
    assert len(fake.requests_to("GET", "/variables")) == 25


async def test_find_cannot_tell_when_the_gate_took_the_variable_name(
    gitlab: GitLabCI, fake: FakeGitLab
) -> None:
    taken = replace(CORRELATED, parameters={"PUERTA_RUN_ID": "mine"})

    assert not gitlab.can_find(taken)
    assert gitlab.can_find(CORRELATED)
    with pytest.raises(CannotTell):
        await gitlab.find(taken, SINCE)
    assert fake.received == []


async def test_find_during_an_outage_is_transient(gitlab: GitLabCI, fake: FakeGitLab) -> None:
    fake.fail_next(1, status=502)

    with pytest.raises(TransientError):
        await gitlab.find(CORRELATED, SINCE)


# -- errors ----------------------------------------------------------------------------------
async def test_bad_token_is_permanent_and_not_echoed(
    client: httpx.AsyncClient, base_url: str
) -> None:
    wrong = "glpat-wrong-secret"
    gitlab = GitLabCI(client, base_url=base_url, token=wrong)

    with pytest.raises(PermanentError) as caught:
        await gitlab.trigger(TARGET)

    assert caught.value.status == 401
    assert "401 Unauthorized" in str(caught.value)
    assert "access token" in str(caught.value)
    assert wrong not in str(caught.value)
    assert wrong not in repr(gitlab)


async def test_unknown_project_is_permanent(gitlab: GitLabCI) -> None:
    with pytest.raises(PermanentError, match="404 Project Not Found") as caught:
        await gitlab.trigger(Target(project="acme/nope", ref="main"))
    assert caught.value.status == 404


async def test_unknown_ref_gives_a_readable_message(gitlab: GitLabCI) -> None:
    with pytest.raises(PermanentError) as caught:
        await gitlab.trigger(Target(project="acme/e2e", ref="no-such-branch"))

    assert str(caught.value) == "gitlab: HTTP 400: Reference not found"
    assert caught.value.status == 400


async def test_outage_is_transient(gitlab: GitLabCI, fake: FakeGitLab) -> None:
    fake.fail_next(status=503)

    with pytest.raises(TransientError) as caught:
        await gitlab.trigger(TARGET)

    assert not isinstance(caught.value, RateLimited)
    assert caught.value.status == 503
    assert fake.created == []


async def test_429_is_rate_limited_with_retry_after(gitlab: GitLabCI, fake: FakeGitLab) -> None:
    ref = await gitlab.trigger(TARGET)
    fake.fail_next(status=429, retry_after="17")

    with pytest.raises(RateLimited) as caught:
        await gitlab.status(ref, TARGET)

    assert caught.value.retry_after == 17.0


async def test_timeout_is_transient(base_url: str, fake: FakeGitLab) -> None:
    fake.fail_next(status=200, delay=1.0)
    async with httpx.AsyncClient(timeout=0.1) as http:
        gitlab = GitLabCI(http, base_url=base_url, token=fake.token)
        with pytest.raises(TransientError, match="timed out"):
            await gitlab.trigger(TARGET)


@pytest.mark.parametrize(
    ("body", "readable"),
    [
        ({"message": {"base": ["Reference not found"]}}, "Reference not found"),
        ({"message": {"ref": ["is invalid"], "base": ["a", "b"]}}, "ref: is invalid; a, b"),
        ({"error": "ref is missing"}, "ref is missing"),
    ],
)
def test_error_bodies_read_as_one_line(body: dict[str, object], readable: str) -> None:
    response = httpx.Response(400, json=body)
    assert error_message(response) == readable


async def test_a_redirect_means_a_wrong_base_url(gitlab: GitLabCI, fake: FakeGitLab) -> None:
    fake.fail_next(status=301)

    with pytest.raises(PermanentError, match=r"redirected \(HTTP 301\).*check base_url"):
        await gitlab.trigger(TARGET)
