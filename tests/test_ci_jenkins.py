"""The Jenkins client against the fake Jenkins over real HTTP: queue item to build, result
mapping, cancel while queued and while building, forgotten queue items, error classes."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from fakes.jenkins import FakeJenkins
from fakes.server import serve_in_thread
from puerta.ci.base import (
    CannotTell,
    PermanentError,
    RateLimited,
    RunRef,
    RunState,
    RunStatus,
    Target,
    TransientError,
)
from puerta.ci.jenkins import Jenkins, html_message, job_url_path
from puerta.clock import ManualClock

TARGET = Target(project="acme/e2e", parameters={"TARGET": "http://app", "REVISION": "abc"})


@pytest.fixture
def fake() -> FakeJenkins:
    jenkins = FakeJenkins()
    jenkins.add_job("acme/e2e", params=["TARGET", "REVISION"])
    jenkins.add_job("Team A/smoke tests")
    return jenkins


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
def base_url(fake: FakeJenkins, server: tuple[str, CurrentApp]) -> str:
    url, current = server
    current.app = fake.app
    return url


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as http:
        yield http


@pytest.fixture
def jenkins(client: httpx.AsyncClient, base_url: str, fake: FakeJenkins) -> Jenkins:
    return Jenkins(client, base_url=base_url, user=fake.user, token=fake.token)


async def poll_until_build(jenkins: Jenkins, ref: RunRef) -> tuple[RunRef, RunStatus]:
    """Poll a queued ref until the status carries the build's ref (bounded, no sleeping)."""
    for _ in range(10):
        status = await jenkins.status(ref, TARGET)
        if status.ref is not None:
            return status.ref, status
        assert status.state is RunState.QUEUED
    raise AssertionError("the queue item never became a build")


# -- trigger ---------------------------------------------------------------------------------
async def test_trigger_posts_form_parameters_with_basic_auth(
    jenkins: Jenkins, fake: FakeJenkins, base_url: str
) -> None:
    ref = await jenkins.trigger(TARGET)

    assert fake.raw_paths == ["/job/acme/job/e2e/buildWithParameters"]
    sent = fake.received[0]
    expected = base64.b64encode(f"{fake.user}:{fake.token}".encode()).decode()
    assert sent.headers["authorization"] == f"Basic {expected}"
    assert sent.headers["content-type"] == "application/x-www-form-urlencoded"
    assert sent.query == {}
    assert fake.triggered == [("acme/e2e", {"TARGET": "http://app", "REVISION": "abc"})]
    assert ref.id is None
    assert ref.url == f"{base_url}/job/acme/job/e2e/"
    assert ref.data == {"queue_url": f"{base_url}/queue/item/101/", "job": "acme/e2e"}
    assert ref.triggered_at is not None


async def test_trigger_without_parameters_uses_build_and_encodes_segments(
    jenkins: Jenkins, fake: FakeJenkins
) -> None:
    ref = await jenkins.trigger(Target(project="Team A/smoke tests"))

    assert fake.raw_paths == ["/job/Team%20A/job/smoke%20tests/build"]
    assert fake.triggered == [("Team A/smoke tests", {})]
    assert ref.data["job"] == "Team A/smoke tests"


def test_job_url_path() -> None:
    assert job_url_path("folder/sub/job") == "/job/folder/job/sub/job/job"
    assert job_url_path("/a b/c%d/") == "/job/a%20b/job/c%25d"
    with pytest.raises(PermanentError):
        job_url_path("//")


async def test_build_on_a_parameterised_job_is_a_readable_400(jenkins: Jenkins) -> None:
    with pytest.raises(PermanentError) as caught:
        await jenkins.trigger(Target(project="acme/e2e"))

    assert caught.value.status == 400
    assert str(caught.value) == (
        'jenkins: job "acme/e2e" refused the request (HTTP 400): Error 400 Nothing is submitted'
    )


async def test_a_201_without_location_is_permanent(jenkins: Jenkins, fake: FakeJenkins) -> None:
    fake.omit_location = True

    with pytest.raises(PermanentError, match="Jenkins returned no queue item"):
        await jenkins.trigger(TARGET)


# -- polling ---------------------------------------------------------------------------------
async def test_follows_the_queue_item_to_the_build_and_its_success(
    jenkins: Jenkins, fake: FakeJenkins, base_url: str
) -> None:
    fake.queue_polls = 1
    fake.script = [None, "SUCCESS"]
    queued = await jenkins.trigger(TARGET)

    first = await jenkins.status(queued, TARGET)
    assert (first.state, first.raw, first.ref) == (RunState.QUEUED, "queued", None)
    assert "Waiting for next available executor" in first.reason

    second = await jenkins.status(queued, TARGET)
    build_url = f"{base_url}/job/acme/job/e2e/1/"
    assert second.ref == RunRef(
        id=build_url,
        url=build_url,
        number="1",
        triggered_at=queued.triggered_at,
        data=queued.data,
    )
    assert (second.state, second.raw) == (RunState.RUNNING, "building")

    third = await jenkins.status(second.ref, TARGET)
    assert (third.state, third.raw, third.ref) == (RunState.SUCCEEDED, "SUCCESS", None)
    assert fake.raw_paths[-1] == "/job/acme/job/e2e/1/api/json"


async def test_failure_names_the_build_and_links_its_console(
    jenkins: Jenkins, fake: FakeJenkins
) -> None:
    fake.queue_polls = 0
    fake.script = ["FAILURE"]
    queued = await jenkins.trigger(TARGET)

    status = await jenkins.status(queued, TARGET)

    assert status.ref is not None
    assert status.state is RunState.FAILED
    assert status.reason == f'build #1 of "acme/e2e" FAILURE: {status.ref.id}console'


@pytest.mark.parametrize(
    ("result", "state", "raw"),
    [
        (None, RunState.RUNNING, "building"),
        ("SUCCESS", RunState.SUCCEEDED, "SUCCESS"),
        ("FAILURE", RunState.FAILED, "FAILURE"),
        ("UNSTABLE", RunState.FAILED, "UNSTABLE"),
        ("NOT_BUILT", RunState.FAILED, "NOT_BUILT"),
        ("ABORTED", RunState.CANCELED, "ABORTED"),
        ("SOMETHING_NEW", RunState.FAILED, "SOMETHING_NEW"),
    ],
)
async def test_build_results_map_to_states(
    jenkins: Jenkins, fake: FakeJenkins, result: str | None, state: RunState, raw: str
) -> None:
    fake.queue_polls = 0
    fake.script = [result]
    build, status = await poll_until_build(jenkins, await jenkins.trigger(TARGET))

    assert (status.state, status.raw) == (state, raw)
    assert status.url == build.id
    if state is RunState.FAILED:
        assert status.reason == f'build #1 of "acme/e2e" {raw}: {build.id}console'


async def test_a_cancelled_queue_item_is_canceled(jenkins: Jenkins, fake: FakeJenkins) -> None:
    fake.queue_polls = 5
    queued = await jenkins.trigger(TARGET)
    fake.queue[101].cancelled = True

    status = await jenkins.status(queued, TARGET)

    assert (status.state, status.raw) == (RunState.CANCELED, "cancelled")


async def test_a_forgotten_queue_item_is_transient_and_explained(
    jenkins: Jenkins, fake: FakeJenkins
) -> None:
    queued = await jenkins.trigger(TARGET)
    fake.forget_queue_items()

    with pytest.raises(TransientError) as caught:
        await jenkins.status(queued, TARGET)

    assert caught.value.status == 404
    assert "forgets queue items" in str(caught.value)


async def test_urls_from_another_jenkins_root_are_fetched_from_base_url(
    jenkins: Jenkins, fake: FakeJenkins
) -> None:
    fake.root_url = "http://jenkins.invalid:8080"
    fake.queue_polls = 0
    fake.script = ["SUCCESS"]
    queued = await jenkins.trigger(TARGET)
    assert queued.data["queue_url"] == "http://jenkins.invalid:8080/queue/item/101/"

    build, status = await poll_until_build(jenkins, queued)

    assert build.id == "http://jenkins.invalid:8080/job/acme/job/e2e/1/"
    assert status.state is RunState.SUCCEEDED
    assert fake.raw_paths[-2:] == ["/queue/item/101/api/json", "/job/acme/job/e2e/1/api/json"]


# -- cancel ----------------------------------------------------------------------------------
@pytest.mark.parametrize("answer", [302, 204])
async def test_cancel_while_queued(jenkins: Jenkins, fake: FakeJenkins, answer: int) -> None:
    fake.queue_polls = 5
    fake.cancel_status = answer
    queued = await jenkins.trigger(TARGET)

    assert await jenkins.cancel(queued) is True

    assert fake.cancelled == ["queue/101"]
    cancel = fake.requests_to("POST", "/queue/cancelItem")[0]
    assert cancel.query == {"id": "101"}
    assert (await jenkins.status(queued, TARGET)).state is RunState.CANCELED


async def test_cancel_while_building_stops_the_build(jenkins: Jenkins, fake: FakeJenkins) -> None:
    fake.queue_polls = 0
    fake.script = [None]
    build, _ = await poll_until_build(jenkins, await jenkins.trigger(TARGET))

    assert await jenkins.cancel(build) is True

    assert fake.cancelled == ["acme/e2e#1"]
    assert fake.raw_paths[-1] == "/job/acme/job/e2e/1/stop"
    status = await jenkins.status(build, TARGET)
    assert (status.state, status.raw) == (RunState.CANCELED, "ABORTED")


async def test_cancel_of_a_queued_ref_whose_build_started_stops_the_build(
    jenkins: Jenkins, fake: FakeJenkins
) -> None:
    fake.queue_polls = 0
    fake.script = [None]
    queued = await jenkins.trigger(TARGET)

    assert await jenkins.cancel(queued) is True

    assert fake.cancelled == ["acme/e2e#1"]
    assert fake.requests_to("POST", "/queue/cancelItem") == []


async def test_cancel_without_anything_to_cancel_is_false(
    jenkins: Jenkins, fake: FakeJenkins
) -> None:
    assert await jenkins.cancel(RunRef(id=None)) is False
    assert fake.received == []


async def test_cancel_of_a_forgotten_queue_item_is_false(
    jenkins: Jenkins, fake: FakeJenkins
) -> None:
    queued = await jenkins.trigger(TARGET)
    fake.forget_queue_items()

    assert await jenkins.cancel(queued) is False
    assert fake.cancelled == []


# -- find: the build of a trigger whose answer was lost -------------------------------------
START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
SINCE = START - timedelta(minutes=1)
CORRELATED = replace(TARGET, correlation="pr-0a1b2c3d4e5f")


@pytest.fixture
def clock(fake: FakeJenkins) -> ManualClock:
    """Builds stamped on a manual clock; the job declares the run id parameter."""
    clock = ManualClock(START)
    fake.now = clock.now
    fake.add_job("acme/e2e", params=["TARGET", "REVISION", "PUERTA_RUN_ID"])
    return clock


async def test_trigger_sends_the_run_id_with_the_parameters(
    jenkins: Jenkins, fake: FakeJenkins
) -> None:
    await jenkins.trigger(CORRELATED)
    await jenkins.trigger(Target(project="Team A/smoke tests", correlation="pr-0a1b2c3d4e5f"))

    assert fake.triggered == [
        ("acme/e2e", {**TARGET.parameters, "PUERTA_RUN_ID": "pr-0a1b2c3d4e5f"}),
        ("Team A/smoke tests", {}),  # /build: a job without parameters takes none
    ]


async def test_find_returns_the_queue_item_a_lost_trigger_left(
    jenkins: Jenkins, fake: FakeJenkins, base_url: str, clock: ManualClock
) -> None:
    await jenkins.trigger(CORRELATED)

    found = await jenkins.find(CORRELATED, SINCE)

    assert found == RunRef(
        id=None,
        url=f"{base_url}/job/acme/job/e2e/",
        triggered_at="2026-03-02T09:59:00+00:00",
        data={"queue_url": f"{base_url}/queue/item/101/", "job": "acme/e2e"},
    )
    [queue] = fake.requests_to("GET", "/queue/api/json")
    assert queue.query == {"tree": "items[id,task[name],actions[parameters[name,value]]]"}
    assert fake.requests_to("GET", "/job/") == []  # found in the queue: no second request
    assert (await jenkins.status(found, CORRELATED)).state is RunState.QUEUED


async def test_find_returns_the_build_the_item_became(
    jenkins: Jenkins, fake: FakeJenkins, base_url: str, clock: ManualClock
) -> None:
    queued = await jenkins.trigger(CORRELATED)
    await jenkins.trigger(replace(CORRELATED, correlation="pr-ffffffffffff"))
    built, _ = await poll_until_build(jenkins, queued)

    found = await jenkins.find(CORRELATED, SINCE)

    assert found is not None
    assert (found.id, found.url, found.number) == (built.id, built.url, "1")
    assert found.data == {"job": "acme/e2e"}
    [job] = fake.requests_to("GET", "/job/acme/job/e2e/api/json")
    assert job.query["tree"].endswith(
        "builds[number,url,timestamp,actions[parameters[name,value]]]{0,50}"
    )


async def test_find_answers_none_when_no_build_carries_the_run_id(
    jenkins: Jenkins, fake: FakeJenkins, clock: ManualClock
) -> None:
    other = await jenkins.trigger(replace(CORRELATED, correlation="pr-ffffffffffff"))
    await poll_until_build(jenkins, other)

    assert await jenkins.find(CORRELATED, SINCE) is None


async def test_find_ignores_builds_started_before_since(
    jenkins: Jenkins, fake: FakeJenkins, clock: ManualClock
) -> None:
    queued = await jenkins.trigger(CORRELATED)
    await poll_until_build(jenkins, queued)
    clock.advance(timedelta(hours=1))

    assert await jenkins.find(CORRELATED, clock.now() - timedelta(minutes=1)) is None


async def test_find_cannot_tell_when_the_job_does_not_declare_the_parameter(
    jenkins: Jenkins, fake: FakeJenkins
) -> None:
    """Jenkins dropped PUERTA_RUN_ID from the build: no build can be told apart."""
    await jenkins.trigger(CORRELATED)

    with pytest.raises(CannotTell, match="does not declare the parameter PUERTA_RUN_ID"):
        await jenkins.find(CORRELATED, SINCE)


async def test_find_cannot_tell_for_a_job_without_parameters(
    jenkins: Jenkins, fake: FakeJenkins
) -> None:
    bare = Target(project="Team A/smoke tests", correlation="pr-0a1b2c3d4e5f")

    assert not jenkins.can_find(bare)
    assert jenkins.can_find(CORRELATED)
    with pytest.raises(CannotTell):
        await jenkins.find(bare, SINCE)
    assert fake.received == []


# -- errors ----------------------------------------------------------------------------------
async def test_bad_token_is_permanent_readable_and_not_echoed(
    client: httpx.AsyncClient, base_url: str, fake: FakeJenkins
) -> None:
    wrong = "0bad0token0value"
    jenkins = Jenkins(client, base_url=base_url, user=fake.user, token=wrong)

    with pytest.raises(PermanentError) as caught:
        await jenkins.trigger(TARGET)

    message = str(caught.value)
    assert caught.value.status == 401
    assert message == "jenkins: authentication failed (HTTP 401): check the user and API token"
    assert wrong not in repr(jenkins)


async def test_unknown_job_is_permanent(jenkins: Jenkins) -> None:
    with pytest.raises(PermanentError) as caught:
        await jenkins.trigger(Target(project="acme/nope", parameters={"A": "1"}))

    assert caught.value.status == 404
    assert str(caught.value) == 'jenkins: job "acme/nope" not found (HTTP 404)'


async def test_outage_is_transient(jenkins: Jenkins, fake: FakeJenkins) -> None:
    fake.fail_next(status=503)

    with pytest.raises(TransientError) as caught:
        await jenkins.trigger(TARGET)

    assert not isinstance(caught.value, RateLimited)
    assert caught.value.status == 503
    assert fake.triggered == []


async def test_429_is_rate_limited_with_retry_after(jenkins: Jenkins, fake: FakeJenkins) -> None:
    queued = await jenkins.trigger(TARGET)
    fake.fail_next(status=429, retry_after="30")

    with pytest.raises(RateLimited) as caught:
        await jenkins.status(queued, TARGET)

    assert caught.value.retry_after == 30.0


async def test_timeout_is_transient(base_url: str, fake: FakeJenkins) -> None:
    fake.fail_next(status=200, delay=1.0)
    async with httpx.AsyncClient(timeout=0.1) as http:
        jenkins = Jenkins(http, base_url=base_url, user=fake.user, token=fake.token)
        with pytest.raises(TransientError, match="timed out"):
            await jenkins.trigger(TARGET)


def test_html_message_prefers_the_title() -> None:
    assert html_message("<html><title>Error 400 Nothing is submitted</title></html>") == (
        "Error 400 Nothing is submitted"
    )
    assert html_message("<p>Bad\n  <b>thing</b></p>") == "Bad thing"


async def test_a_redirected_poll_is_permanent(jenkins: Jenkins, fake: FakeJenkins) -> None:
    queued = await jenkins.trigger(TARGET)
    fake.fail_next(status=302)

    with pytest.raises(PermanentError, match=r"redirected \(HTTP 302\)"):
        await jenkins.status(queued, TARGET)
