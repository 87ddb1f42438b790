"""The CircleCI provider against a fake CircleCI served over real HTTP.

Every request the provider sends is checked against CircleCI's OpenAPI description on the
wire (httpx event hooks), and the fake checks what it receives and what it answers; both
lists of problems must stay empty, so a test passing here means the traffic would also be
well-formed for the real API.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from fakes.circleci import FakeCircleCI
from fakes.circleci_spec import Call, SpecValidator, load, spec_file
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
from puerta.ci.circleci import CircleCI, Slug, overall_state
from puerta.clock import ManualClock
from required import skip_unless_required

TOKEN = "circle-5f3a9c0e77d2"
PROJECT = "gh/acme/e2e"
WEB = "https://app.circleci.com/pipelines/github/acme/e2e"
NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


@dataclass
class Wire:
    """What the provider put on the wire, and what the spec says about it."""

    validator: SpecValidator
    sent: list[httpx.Request] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def hooks(self) -> dict[str, list[Callable[..., Any]]]:
        """httpx ``event_hooks`` that check every request and answer against the spec."""
        return {"request": [self.on_request], "response": [self.on_response]}

    async def on_request(self, request: httpx.Request) -> None:
        self.sent.append(request)
        self.problems.extend(self.validator.request_problems(Call.from_httpx(request)))

    async def on_response(self, response: httpx.Response) -> None:
        await response.aread()
        call = Call.from_httpx(response.request)
        # injected outages, and the undocumented 200 "not triggered" of /pipeline/run
        undeclared_ok = response.status_code in (429, 503) or (
            response.status_code == 200 and call.method == "POST"
        )
        self.problems.extend(
            self.validator.response_problems(
                call,
                response.status_code,
                dict(response.headers),
                response.content,
                undeclared_ok=undeclared_ok,
            )
        )


@pytest.fixture(scope="session")
def validator() -> SpecValidator:
    path = spec_file()
    if path is None:
        message = "CircleCI OpenAPI description not found (set PUERTA_CIRCLECI_SPEC)"
        skip_unless_required(message, "PUERTA_REQUIRE_SPECS")
    return load(path)


@pytest.fixture
def fake(validator: SpecValidator) -> Iterator[FakeCircleCI]:
    fake = FakeCircleCI(token=TOKEN, validator=validator)
    fake.add_project(PROJECT)
    yield fake
    assert fake.violations == [], "the fake saw traffic outside CircleCI's spec"


@pytest.fixture
def base_url(fake: FakeCircleCI) -> Iterator[str]:
    with serve_in_thread(fake.app) as url:
        yield url


@pytest.fixture
def wire(validator: SpecValidator) -> Iterator[Wire]:
    wire = Wire(validator)
    yield wire
    assert wire.problems == [], "the provider sent or got traffic outside CircleCI's spec"


@pytest.fixture
async def http(wire: Wire) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5, event_hooks=wire.hooks()) as client:
        yield client


@pytest.fixture
def circleci(http: httpx.AsyncClient, base_url: str) -> CircleCI:
    return CircleCI(http, base_url=base_url, token=TOKEN, clock=ManualClock(NOW))


async def poll(circleci: CircleCI, ref: RunRef, target: Target, times: int) -> list[RunState]:
    return [(await circleci.status(ref, target)).state for _ in range(times)]


# -- triggering ------------------------------------------------------------------------------
async def test_legacy_trigger_posts_branch_and_string_parameters(
    circleci: CircleCI, fake: FakeCircleCI, wire: Wire
) -> None:
    """Without a definition id the older endpoint gets the slug as three encoded segments."""
    target = Target(project=PROJECT, ref="main", parameters={"canary": "shop", "replicas": "3"})
    ref = await circleci.trigger(target)

    request = wire.sent[-1]
    assert request.method == "POST"
    assert request.url.raw_path == b"/project/gh/acme/e2e/pipeline"
    assert request.headers["Circle-Token"] == TOKEN
    assert fake.triggered == [{"branch": "main", "parameters": {"canary": "shop", "replicas": "3"}}]
    pipeline = fake.last_pipeline
    assert ref == RunRef(
        id=pipeline.id,
        number="1",
        url=f"{WEB}/1",
        triggered_at=NOW.isoformat(timespec="seconds"),
        data={"slug": PROJECT},
    )


async def test_legacy_trigger_with_a_tag(circleci: CircleCI, fake: FakeCircleCI) -> None:
    await circleci.trigger(Target(project=PROJECT, ref="v1.4.0", ref_is_tag=True))
    assert fake.triggered == [{"tag": "v1.4.0", "parameters": {}}]


async def test_run_trigger_uses_the_definition_and_encodes_each_segment(
    circleci: CircleCI, fake: FakeCircleCI, wire: Wire
) -> None:
    """GitHub App projects: ``circleci/<org-id>/<project-id>`` and ``/pipeline/run``."""
    org, project = "a2f5c2f4-9b7e-4d0a-8c7e-1c0b9e5f6a70", "6e0c1a7e-3f2d-4b8a-9c1e-5d7f2a4b8c90"
    slug = f"circleci/{org}/{project}"
    fake.add_project(slug)
    definition = fake.add_definition(slug)
    target = Target(
        project=slug, ref="v2.0.1", ref_is_tag=True, workflow=definition, parameters={"a": "1"}
    )

    ref = await circleci.trigger(target)

    assert wire.sent[-1].url.raw_path == f"/project/circleci/{org}/{project}/pipeline/run".encode()
    assert fake.triggered == [
        {
            "definition_id": definition,
            "config": {"tag": "v2.0.1"},
            "checkout": {"tag": "v2.0.1"},
            "parameters": {"a": "1"},
        }
    ]
    assert ref.url == f"https://app.circleci.com/pipelines/circleci/{org}/{project}/1"
    assert ref.data == {"slug": slug}


async def test_run_trigger_without_ref_leaves_config_and_checkout_out(
    circleci: CircleCI, fake: FakeCircleCI
) -> None:
    definition = fake.add_definition(PROJECT)
    await circleci.trigger(Target(project=PROJECT, workflow=definition))
    assert fake.triggered == [{"definition_id": definition, "parameters": {}}]


def test_slug_segments_are_encoded_one_by_one() -> None:
    slug = Slug.parse("bb/acme corp/shop#1")
    assert slug.api_path() == "/project/bb/acme%20corp/shop%231"
    assert slug.web_url("https://ci.example.com", 7) == (
        "https://ci.example.com/pipelines/bitbucket/acme%20corp/shop%231/7"
    )


@pytest.mark.parametrize("project", ["acme/e2e", "gh/acme/e2e/extra", "gh//e2e", ""])
async def test_a_malformed_slug_is_refused_before_sending(
    circleci: CircleCI, fake: FakeCircleCI, project: str
) -> None:
    with pytest.raises(PermanentError, match="not a slug"):
        await circleci.trigger(Target(project=project))
    assert fake.received == []


@pytest.mark.parametrize(
    ("parameters", "named"),
    [
        ({f"p{i}": "x" for i in range(101)}, "101 pipeline parameters"),
        ({"k" * 129: "x"}, "name of 129 characters"),
        ({"release_notes": "x" * 513}, "'release_notes' has a value of 513 characters"),
    ],
)
async def test_parameters_over_circleci_limits_are_refused_before_sending(
    circleci: CircleCI, fake: FakeCircleCI, parameters: dict[str, str], named: str
) -> None:
    with pytest.raises(PermanentError, match=named):
        await circleci.trigger(Target(project=PROJECT, ref="main", parameters=parameters))
    assert fake.received == []


async def test_parameters_at_the_limits_are_sent(circleci: CircleCI, fake: FakeCircleCI) -> None:
    parameters = {f"{i:03d}" + "k" * 125: "v" * 512 for i in range(100)}
    await circleci.trigger(Target(project=PROJECT, parameters=parameters))
    assert fake.triggered[0]["parameters"] == parameters


async def test_a_2xx_other_than_201_means_not_triggered(
    circleci: CircleCI, fake: FakeCircleCI
) -> None:
    """CircleCI answers 200 with a message (e.g. ``[ci skip]``) and creates nothing."""
    fake.skip_next("Pipeline not triggered: [ci skip] in the commit")
    with pytest.raises(PermanentError, match=r"not triggered.*\[ci skip\]"):
        await circleci.trigger(Target(project=PROJECT, ref="main"))
    assert fake.pipelines == {}


async def test_not_triggered_on_the_run_endpoint_too(
    circleci: CircleCI, fake: FakeCircleCI
) -> None:
    definition = fake.add_definition(PROJECT)
    fake.skip_next("Pipeline not triggered: no workflows to run")
    with pytest.raises(PermanentError, match=r"not triggered.*no workflows to run"):
        await circleci.trigger(Target(project=PROJECT, ref="main", workflow=definition))


async def test_a_definition_id_that_is_not_a_uuid_is_refused_before_sending(
    circleci: CircleCI, fake: FakeCircleCI
) -> None:
    with pytest.raises(PermanentError, match=r"'e2e\.yml' is not a uuid"):
        await circleci.trigger(Target(project=PROJECT, workflow="e2e.yml"))
    assert fake.received == []


def test_it_is_a_ci_provider(circleci: CircleCI) -> None:
    provider: CiProvider = circleci  # mypy checks the Protocol here
    assert provider.kind == "circleci"


# -- following a run -------------------------------------------------------------------------
async def test_polling_through_to_success(circleci: CircleCI, fake: FakeCircleCI) -> None:
    target = Target(project=PROJECT, ref="main")
    ref = await circleci.trigger(target)

    running = await circleci.status(ref, target)
    done = await circleci.status(ref, target)

    workflow = fake.last_pipeline.workflows["e2e"]
    assert (running.state, running.raw) == (RunState.RUNNING, "e2e:running")
    assert (done.state, done.raw) == (RunState.SUCCEEDED, "e2e:success")
    assert done.url == f"{WEB}/1"
    assert [(p.name, p.status, p.state) for p in done.parts] == [
        ("e2e", "success", RunState.SUCCEEDED)
    ]
    assert done.parts[0].url == f"{WEB}/1/workflows/{workflow.id}"


async def test_a_failure_names_the_workflow_and_its_failed_job_with_a_link(
    circleci: CircleCI, fake: FakeCircleCI
) -> None:
    fake.script_next(
        {"e2e": "running"},
        {"e2e": ("failed", {"lint": "success", "playwright": "failed"})},
    )
    target = Target(project=PROJECT, ref="main")
    ref = await circleci.trigger(target)

    states = await poll(circleci, ref, target, 2)
    failed = await circleci.status(ref, target)

    workflow = fake.last_pipeline.workflows["e2e"]
    assert states == [RunState.RUNNING, RunState.FAILED]
    assert failed.raw == "e2e:failed"
    assert failed.reason == (
        f'workflow "e2e" failed (job "playwright" failed): {WEB}/1/workflows/{workflow.id}'
    )


async def test_failing_is_still_running_but_says_so(circleci: CircleCI, fake: FakeCircleCI) -> None:
    fake.script_next({"e2e": ("failing", {"unit": "failed", "playwright": "running"})})
    target = Target(project=PROJECT)
    ref = await circleci.trigger(target)

    status = await circleci.status(ref, target)

    assert status.state is RunState.RUNNING
    assert 'workflow "e2e" is failing (a job failed, others still run)' in status.reason


@pytest.mark.parametrize(
    ("step", "state", "in_reason"),
    [
        ({"e2e": "success", "deploy": "on_hold"}, RunState.RUNNING, '"deploy" is on hold'),
        ({"e2e": "success", "smoke": "canceled"}, RunState.CANCELED, '"smoke" was canceled'),
        ({"e2e": "canceled", "smoke": "error"}, RunState.FAILED, '"smoke" errored'),
        ({"e2e": "not_run"}, RunState.FAILED, '"e2e" was not run'),
        ({"e2e": "unauthorized"}, RunState.FAILED, '"e2e" was not authorized'),
        ({"e2e": "success", "smoke": "success"}, RunState.SUCCEEDED, '"e2e", "smoke" succeeded'),
    ],
)
async def test_workflows_combine_into_one_state(
    circleci: CircleCI,
    fake: FakeCircleCI,
    step: dict[str, str],
    state: RunState,
    in_reason: str,
) -> None:
    fake.script_next(step)
    target = Target(project=PROJECT)
    ref = await circleci.trigger(target)

    status = await circleci.status(ref, target)

    assert status.state is state
    assert in_reason in status.reason
    assert status.raw == ",".join(f"{name}:{word}" for name, word in step.items())


def test_overall_state_order() -> None:
    """Anything still going wins, then failure, then cancellation; none at all is queued."""
    s, r, f, c = RunState.SUCCEEDED, RunState.RUNNING, RunState.FAILED, RunState.CANCELED
    assert overall_state([]) is RunState.QUEUED
    assert overall_state([f, r]) is r
    assert overall_state([c, f, s]) is f
    assert overall_state([s, c]) is c
    assert overall_state([s, s]) is s


async def test_queued_until_the_first_workflow_appears(
    circleci: CircleCI, fake: FakeCircleCI
) -> None:
    fake.script_next({}, {"e2e": "running"})
    target = Target(project=PROJECT)
    ref = await circleci.trigger(target)

    queued = await circleci.status(ref, target)
    running = await circleci.status(ref, target)

    assert (queued.state, queued.raw) == (RunState.QUEUED, "pending")
    assert queued.parts == ()
    assert running.state is RunState.RUNNING


async def test_an_errored_pipeline_fails_with_its_errors(
    circleci: CircleCI, fake: FakeCircleCI
) -> None:
    fake.error_next(("config", "Unknown job 'e2e-test'"), ("permission", "No access to context"))
    target = Target(project=PROJECT)
    ref = await circleci.trigger(target)

    status = await circleci.status(ref, target)

    assert (status.state, status.raw) == (RunState.FAILED, "errored")
    assert status.reason == (
        "pipeline errored: config: Unknown job 'e2e-test'; permission: No access to context: "
        f"{WEB}/1"
    )
    assert fake.requests_to("GET", "/workflow") == []


async def test_all_pages_of_workflows_are_read(
    circleci: CircleCI, fake: FakeCircleCI, validator: SpecValidator
) -> None:
    fake.page_size = 2
    names = ["unit", "lint", "e2e", "smoke", "a11y"]
    fake.script_next(dict.fromkeys(names, "running"), dict.fromkeys(names, "success"))
    target = Target(project=PROJECT)
    ref = await circleci.trigger(target)

    first = await circleci.status(ref, target)
    second = await circleci.status(ref, target)

    assert [p.name for p in first.parts] == names
    assert first.state is RunState.RUNNING
    assert second.state is RunState.SUCCEEDED  # page 2 and 3 did not advance the script
    pages = [r.query.get("page-token") for r in fake.requests_to("GET", "/workflow")]
    assert pages == [None, "page-2", "page-4"] * 2


async def test_a_stored_ref_without_url_still_links_to_the_pipeline(
    circleci: CircleCI, fake: FakeCircleCI
) -> None:
    """A ref from another replica or an older version may lack the URL: rebuild it."""
    target = Target(project=PROJECT)
    ref = await circleci.trigger(target)
    bare = RunRef(id=ref.id)

    status = await circleci.status(bare, target)

    assert status.url == f"{WEB}/1"


# -- cancelling ------------------------------------------------------------------------------
async def test_cancel_cancels_the_workflows_still_going(
    circleci: CircleCI, fake: FakeCircleCI
) -> None:
    fake.script_next({"unit": "success", "e2e": "running", "deploy": "on_hold"})
    target = Target(project=PROJECT)
    ref = await circleci.trigger(target)
    await circleci.status(ref, target)

    assert await circleci.cancel(ref) is True

    workflows = fake.last_pipeline.workflows
    assert fake.cancelled == [workflows["e2e"].id, workflows["deploy"].id]
    status = await circleci.status(ref, target)
    assert status.state is RunState.CANCELED


async def test_cancel_of_a_finished_pipeline_cancels_nothing(
    circleci: CircleCI, fake: FakeCircleCI
) -> None:
    target = Target(project=PROJECT)
    ref = await circleci.trigger(target)
    fake.complete(ref.id or "", "failed")

    assert await circleci.cancel(ref) is True
    assert fake.cancelled == []


async def test_cancel_without_a_pipeline_or_workflows_is_false(
    circleci: CircleCI, fake: FakeCircleCI
) -> None:
    fake.script_next({})
    ref = await circleci.trigger(Target(project=PROJECT))
    assert await circleci.cancel(RunRef(id=None)) is False
    assert await circleci.cancel(ref) is False


async def test_complete_sets_the_final_status_at_once(
    circleci: CircleCI, fake: FakeCircleCI
) -> None:
    target = Target(project=PROJECT)
    ref = await circleci.trigger(target)
    fake.complete(ref.id or "", "success")

    assert await poll(circleci, ref, target, 2) == [RunState.SUCCEEDED, RunState.SUCCEEDED]


# -- find: the pipeline of a trigger whose answer was lost -----------------------------------
CORRELATION = "pr-3c4d5e6f7a8b"
FINDABLE = Target(
    project=PROJECT, ref="main", parameters={"puerta_run": CORRELATION}, correlation=CORRELATION
)
SINCE = NOW - timedelta(minutes=1)


@pytest.fixture
def clock(fake: FakeCircleCI) -> ManualClock:
    """The fake stamps pipelines on the same clock as the provider."""
    clock = ManualClock(NOW)
    fake.now = clock.now
    return clock


def other(correlation: str, ref: str = "main") -> Target:
    return Target(
        project=PROJECT, ref=ref, parameters={"puerta_run": correlation}, correlation=correlation
    )


async def test_find_returns_the_pipeline_showing_the_run_id(
    circleci: CircleCI, fake: FakeCircleCI, wire: Wire, clock: ManualClock
) -> None:
    """Where CircleCI shows a pipeline's parameters in ``trigger_parameters``, the lost
    trigger's pipeline is recognised among the project's pipelines on the branch."""
    await circleci.trigger(other("pr-000000000001"))
    created = await circleci.trigger(FINDABLE)
    await circleci.trigger(other("pr-000000000002"))
    await circleci.trigger(other(CORRELATION, ref="release"))

    found = await circleci.find(FINDABLE, SINCE)

    assert found == RunRef(
        id=created.id,
        number="2",
        url=f"{WEB}/2",
        triggered_at=SINCE.isoformat(timespec="seconds"),
        data={"slug": PROJECT},
    )
    listed = wire.sent[-1]
    assert (listed.method, listed.url.raw_path) == (
        "GET",
        b"/project/gh/acme/e2e/pipeline?branch=main",
    )


async def test_find_reads_pages_back_to_since_and_no_further(
    circleci: CircleCI, fake: FakeCircleCI, clock: ManualClock
) -> None:
    """Newest first, pages of 2: #8 #7 | #6 #5 | #4 (ours) #3 (an hour old: the search
    ends) | #2 #1 never read."""
    fake.page_size = 2
    for index in range(1, 4):
        await circleci.trigger(other(f"pr-old-{index}"))
    clock.advance(timedelta(hours=1))
    ours = await circleci.trigger(FINDABLE)
    for index in range(5, 9):
        await circleci.trigger(other(f"pr-new-{index}"))

    found = await circleci.find(FINDABLE, clock.now() - timedelta(minutes=1))

    assert found is not None and found.id == ours.id
    assert len(fake.requests_to("GET", "/project/")) == 3


async def test_find_cannot_tell_when_circleci_hides_the_parameters(
    circleci: CircleCI, fake: FakeCircleCI, clock: ManualClock
) -> None:
    """CircleCI does not promise to show them: finding none is no proof there is none."""
    fake.echo_parameters = False
    await circleci.trigger(FINDABLE)

    with pytest.raises(CannotTell, match="does not promise"):
        await circleci.find(FINDABLE, SINCE)


async def test_find_needs_the_run_id_in_a_parameter(circleci: CircleCI, fake: FakeCircleCI) -> None:
    bare = Target(project=PROJECT, ref="main", correlation=CORRELATION)

    assert not circleci.can_find(bare)
    assert circleci.can_find(FINDABLE)
    with pytest.raises(CannotTell, match="run id"):
        await circleci.find(bare, SINCE)
    assert fake.received == []


# -- errors ----------------------------------------------------------------------------------
async def test_a_wrong_token_is_permanent_and_never_echoed(
    http: httpx.AsyncClient, base_url: str
) -> None:
    wrong = "circle-wrong-0000"
    circleci = CircleCI(http, base_url=base_url, token=wrong)
    with pytest.raises(PermanentError) as caught:
        await circleci.trigger(Target(project=PROJECT))
    assert caught.value.status == 401
    assert "You must log in first." in str(caught.value)
    assert wrong not in str(caught.value) and wrong not in repr(circleci)


async def test_an_unknown_project_is_permanent(circleci: CircleCI) -> None:
    with pytest.raises(PermanentError, match="Project not found") as caught:
        await circleci.trigger(Target(project="gh/acme/nope"))
    assert caught.value.status == 404


async def test_an_unknown_definition_is_permanent(circleci: CircleCI) -> None:
    target = Target(project=PROJECT, workflow="0b8f3c1e-2d4a-4f6b-8c9d-0e1f2a3b4c5d")
    with pytest.raises(PermanentError) as caught:
        await circleci.trigger(target)
    assert caught.value.status == 404


async def test_an_outage_is_transient(circleci: CircleCI, fake: FakeCircleCI) -> None:
    fake.fail_next(status=503)
    with pytest.raises(TransientError) as caught:
        await circleci.trigger(Target(project=PROJECT))
    assert caught.value.status == 503
    assert not isinstance(caught.value, PermanentError)


async def test_a_rate_limit_carries_retry_after(circleci: CircleCI, fake: FakeCircleCI) -> None:
    target = Target(project=PROJECT)
    ref = await circleci.trigger(target)
    fake.fail_next(status=429, retry_after="7")
    with pytest.raises(RateLimited) as caught:
        await circleci.status(ref, target)
    assert caught.value.retry_after == 7.0


async def test_a_slow_answer_is_a_transient_timeout(
    wire: Wire, base_url: str, fake: FakeCircleCI
) -> None:
    async with httpx.AsyncClient(timeout=0.05, event_hooks=wire.hooks()) as http:
        circleci = CircleCI(http, base_url=base_url, token=TOKEN)
        fake.fail_next(status=503, delay=0.5)
        with pytest.raises(TransientError, match="timed out"):
            await circleci.trigger(Target(project=PROJECT))


async def test_job_lookup_failing_only_makes_the_reason_less_specific(
    circleci: CircleCI, fake: FakeCircleCI
) -> None:
    fake.script_next({"e2e": "failed"})
    target = Target(project=PROJECT)
    ref = await circleci.trigger(target)
    fake.fail_next_on("/job", status=503)

    status = await circleci.status(ref, target)

    workflow = fake.last_pipeline.workflows["e2e"]
    assert status.state is RunState.FAILED
    assert status.reason == f'workflow "e2e" failed: {WEB}/1/workflows/{workflow.id}'
    assert (await circleci.status(ref, target)).reason.startswith(
        'workflow "e2e" failed (job "build" failed): '
    )


def test_an_empty_token_is_refused(http: httpx.AsyncClient) -> None:
    with pytest.raises(ValueError, match="token"):
        CircleCI(http, token="")


# -- the fake itself -------------------------------------------------------------------------
async def test_the_fake_wants_the_token(base_url: str, fake: FakeCircleCI) -> None:
    async with httpx.AsyncClient(base_url=base_url) as plain:
        response = await plain.post("/project/gh/acme/e2e/pipeline", json={"branch": "main"})
    assert response.status_code == 401
    assert response.json() == {"message": "You must log in first."}
    assert len(fake.violations) == 1 and "Security" in fake.violations[0]
    fake.violations.clear()


async def test_the_fake_refuses_unknown_fields_and_a_whole_encoded_slug(
    base_url: str, fake: FakeCircleCI
) -> None:
    definition = fake.add_definition(PROJECT)
    headers = {"Circle-Token": TOKEN}
    async with httpx.AsyncClient(base_url=base_url, headers=headers) as plain:
        unknown = await plain.post(
            "/project/gh/acme/e2e/pipeline/run", json={"definition_id": definition, "branch": "x"}
        )
        encoded = await plain.post(
            "/project/gh%2Facme%2Fe2e/pipeline/run", json={"definition_id": definition}
        )
    assert (unknown.status_code, unknown.json()) == (
        400,
        {"message": "Unexpected request body provided."},
    )
    assert encoded.status_code == 404
    assert any("Additional properties" in v for v in fake.violations)
    fake.violations.clear()


async def test_workflow_completed_event_looks_like_circleci_s(
    circleci: CircleCI, fake: FakeCircleCI
) -> None:
    target = Target(project=PROJECT, ref="main")
    ref = await circleci.trigger(target)
    fake.complete(ref.id or "", "failed")

    event = fake.workflow_completed_event(ref.id or "")

    workflow = fake.last_pipeline.workflows["e2e"]
    assert event["type"] == "workflow-completed"
    assert set(event) == {
        "type",
        "id",
        "happened_at",
        "webhook",
        "project",
        "organization",
        "workflow",
        "pipeline",
    }
    assert event["workflow"]["id"] == workflow.id
    assert event["workflow"]["status"] == "failed"
    assert event["workflow"]["url"] == f"{WEB}/1/workflows/{workflow.id}"
    assert event["workflow"]["stopped_at"] is not None
    assert event["pipeline"]["id"] == ref.id
    assert event["pipeline"]["number"] == 1
    assert event["pipeline"]["trigger"] == {"type": "api"}
    assert event["pipeline"]["vcs"]["branch"] == "main"
    assert event["project"]["slug"] == "github/acme/e2e"
    assert event["organization"]["name"] == "acme"


async def test_workflow_completed_event_of_a_github_app_project(
    circleci: CircleCI, fake: FakeCircleCI
) -> None:
    """``circleci/...`` projects carry trigger parameters instead of ``vcs``."""
    slug = "circleci/89xcrx7UvWQfzcUPAEmu5Q/63AY3yf3XeUQojmQcGZTtB"
    fake.add_project(slug)
    definition = fake.add_definition(slug)
    ref = await circleci.trigger(
        Target(project=slug, ref="v3", ref_is_tag=True, workflow=definition)
    )
    fake.complete(ref.id or "", "success")

    event = fake.workflow_completed_event(ref.id or "")

    assert event["project"]["slug"] == slug
    assert "vcs" not in event["pipeline"]
    assert event["pipeline"]["trigger_parameters"]["git"]["tag"] == "v3"
    assert event["workflow"]["url"].startswith(f"https://app.circleci.com/pipelines/{slug}/1/")
