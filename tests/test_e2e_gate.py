"""E2E gates through the HTTP API, against a fake GitHub Actions API on a real socket.

Flagger's call order for a canary with the non-blocking mode: pre-rollout (triggers the run,
answers 200), confirm-traffic-increase and confirm-promotion (403 "E2E running: <link>" until
the run passed), rollback (200 = roll back at once when it failed). The blocking mode holds
pre-rollout open until the run ends. Exactly one run per (canary, revision, gate), whatever
Flagger does; provider outages are waits, never passes, and fail at the deadline.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from conftest import VIEWER, Puerta, flagger_payload
from fakes.github import FakeGitHub
from fakes.server import serve_in_thread
from puerta.clock import ManualClock
from waiting import until

GH_TOKEN = "ghs_e2e_test_token_5a7c"
HOOK_SECRET = "It's a Secret to Everybody"
REPO = "acme/e2e"

POLICY = """
version: 1
auth:
  tokens:
    - {{name: viewer, role: viewer, token_env: PUERTA_VIEWER_TOKEN}}
ci:
  providers:
    gh:
      type: github
      base_url: {url}
      token: {{token_env: GH_TOKEN}}
      webhook_secret: {{token_env: GH_HOOK_SECRET}}
      poll_interval: 10s
      max_poll_interval: 1m
      requests_per_minute: {rpm}
      burst: {burst}
environments:
  staging:
    match: [{{namespace: "staging*"}}]
    gates:
      pre-rollout:
        - type: e2e
          provider: gh
          project: {repo}
          workflow: e2e.yml
          ref: main
          parameters:
            target: "{{canary_url}}"
            revision: "{{revision}}"
            puerta_run: "{{run_id}}"
          wait: {wait}
          hold: {hold}
          deadline: 30m
      confirm-traffic-increase:
        - type: e2e-result
      confirm-promotion:
        - type: e2e-result
      rollback:
        - type: e2e-result
"""


class TickingClock(ManualClock):
    """Moves forward a little each time it is read: the background runner's poll schedule
    advances while a test waits on a held hook call, with no test sleeping on the wall
    clock's schedule."""

    def __init__(self, start: datetime, step: timedelta) -> None:
        super().__init__(start)
        self.step = step
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            self._now += self.step
            return self._now


@pytest.fixture
def github() -> Iterator[tuple[FakeGitHub, str]]:
    fake = FakeGitHub(token=GH_TOKEN)
    fake.add_workflow(
        REPO,
        "e2e.yml",
        run_name="E2E {puerta_run}",
        inputs=["target", "revision"],
        jobs=["api", "playwright"],
    )
    with serve_in_thread(fake.app) as url:
        yield fake, url


def make_puerta(
    database_url: str,
    url: str,
    clock: ManualClock,
    *,
    wait: str = "background",
    hold: str = "50s",
    rpm: int = 600,
    burst: int = 20,
) -> Puerta:
    policy = POLICY.format(url=url, repo=REPO, wait=wait, hold=hold, rpm=rpm, burst=burst)
    puerta = Puerta(database_url, policy, clock)
    puerta.environ.update({"GH_TOKEN": GH_TOKEN, "GH_HOOK_SECRET": HOOK_SECRET})
    return puerta.start()


@pytest.fixture
def gh_puerta(
    database_url: str, github: tuple[FakeGitHub, str], clock: ManualClock
) -> Iterator[tuple[Puerta, FakeGitHub]]:
    fake, url = github
    puerta = make_puerta(database_url, url, clock)
    try:
        yield puerta, fake
    finally:
        puerta.stop()


def hook(puerta: Puerta, name: str, checksum: str = "rev-a", **metadata: str) -> httpx.Response:
    phase = "Progressing" if name != "confirm-rollout" else "Initialized"
    payload = flagger_payload(
        name, namespace="staging", name="podinfo", checksum=checksum, phase=phase, metadata=metadata
    )
    response: httpx.Response = puerta.http.post(f"/hooks/{name}", json=payload)
    return response


def runs(puerta: Puerta) -> list[dict[str, Any]]:
    response = puerta.api("GET", "/canaries/staging/podinfo", token=VIEWER)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["e2e_runs"]
    return found


def run_status(puerta: Puerta) -> str | None:
    found = runs(puerta)
    return found[0]["status"] if found else None


def poll_round(puerta: Puerta, clock: ManualClock, seconds: float = 10) -> None:
    """Let the next poll of every run come due, and wait until the runner made it."""
    before = [r["polls"] for r in runs(puerta)]
    clock.advance(timedelta(seconds=seconds))
    until(lambda: [r["polls"] for r in runs(puerta)] != before)


# ---- the non-blocking mode, in Flagger's order --------------------------------------------


def test_background_run_passes_and_lets_the_canary_on(
    gh_puerta: tuple[Puerta, FakeGitHub], clock: ManualClock
) -> None:
    puerta, fake = gh_puerta
    fake.script = [("in_progress", None), ("completed", "success")]
    response = hook(puerta, "pre-rollout")
    assert response.status_code == 200
    assert "start E2E e2e on gh: e2e.yml@main" in response.text
    until(lambda: run_status(puerta) == "queued")

    (dispatch,) = fake.dispatches
    run = fake.last_run
    assert dispatch["ref"] == "main"
    assert dispatch["inputs"]["target"] == "http://podinfo-canary.staging"
    assert dispatch["inputs"]["revision"] == "rev-a"
    assert dispatch["inputs"]["puerta_run"] in run.display_title
    traffic = hook(puerta, "confirm-traffic-increase")
    assert traffic.status_code == 403
    assert traffic.text.startswith(
        "E2E e2e queued on gh: https://github.com/acme/e2e/actions/runs/"
    )

    poll_round(puerta, clock)  # queued -> in_progress
    assert run_status(puerta) == "running"
    running = hook(puerta, "confirm-promotion")
    assert running.status_code == 403
    assert running.text == f"E2E e2e running: {run.html_url}"
    assert hook(puerta, "rollback").status_code == 403  # carry on

    poll_round(puerta, clock)  # completed/success
    assert hook(puerta, "confirm-traffic-increase").status_code == 200
    promotion = hook(puerta, "confirm-promotion")
    assert promotion.status_code == 200
    assert f"E2E e2e passed: {run.html_url}" in promotion.text
    assert hook(puerta, "rollback").status_code == 403
    # pre-rollout again (Flagger re-runs it after a restart of the analysis): no second run
    assert hook(puerta, "pre-rollout").status_code == 200
    assert len(fake.dispatches) == 1

    (stored,) = runs(puerta)
    assert stored["status"] == "succeeded"
    assert stored["url"] == run.html_url
    page = puerta.http.get("/ui/canaries/staging/podinfo")
    assert page.status_code == 200
    assert "E2E runs of the current rollout" in page.text
    assert f'<a href="{run.html_url}" rel="noopener noreferrer">gh run {run.id}</a>' in page.text
    assert stored["external_id"] == str(run.id)
    assert [e["status"] for e in stored["events"]] == ["queued", "running", "succeeded"]
    assert [e["source"] for e in stored["events"]] == ["trigger", "poll", "poll"]


def test_failed_run_names_the_job_and_rolls_back_at_once(
    gh_puerta: tuple[Puerta, FakeGitHub], clock: ManualClock
) -> None:
    puerta, fake = gh_puerta
    assert hook(puerta, "pre-rollout").status_code == 200
    until(lambda: run_status(puerta) == "queued")
    run = fake.last_run
    fake.set_jobs(run.id, [("api", "completed", "success"), ("playwright", "completed", "failure")])
    fake.complete(run.id, "failure")
    poll_round(puerta, clock)

    rollback = hook(puerta, "rollback")
    assert rollback.status_code == 200  # roll back now, without counting failed checks
    assert 'job "playwright"' in rollback.text
    assert "https://github.com/acme/e2e/actions/runs/" in rollback.text
    promotion = hook(puerta, "confirm-promotion")
    assert promotion.status_code == 403
    assert promotion.text == rollback.text
    assert run_status(puerta) == "failed"
    audit = puerta.audit(hook="rollback")
    assert audit[0]["verdict"] == "rollback"
    metrics = puerta.http.get("/metrics").text
    assert 'puerta_e2e_runs_finished_total{provider="gh",status="failed"} 1.0' in metrics


def test_retry_storm_triggers_one_run(
    database_url: str, github: tuple[FakeGitHub, str], clock: ManualClock
) -> None:
    """Ten concurrent identical pre-rollout calls (Flagger retrying, a second replica) make
    one run."""
    fake, url = github
    puerta = make_puerta(database_url, url, clock)
    try:
        with serve_in_thread(puerta.build_app()) as base:
            body = flagger_payload(
                "pre-rollout", namespace="staging", name="podinfo", checksum="rev-a", metadata={}
            )

            async def storm() -> list[int]:
                async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                    answers = await asyncio.gather(
                        *(client.post("/hooks/pre-rollout", json=body) for _ in range(10))
                    )
                return [a.status_code for a in answers]

            assert asyncio.run(storm()) == [200] * 10
            until(lambda: len(fake.dispatches) >= 1)
            until(lambda: run_status(puerta) == "queued")
            assert len(fake.dispatches) == 1
            assert len(runs(puerta)) == 1
    finally:
        puerta.stop()


def test_a_new_revision_abandons_and_cancels_the_old_run(
    gh_puerta: tuple[Puerta, FakeGitHub], clock: ManualClock
) -> None:
    puerta, fake = gh_puerta
    assert hook(puerta, "pre-rollout", checksum="rev-a").status_code == 200
    until(lambda: run_status(puerta) == "queued")
    first = fake.last_run

    # Flagger restarts the analysis for a newer revision: pre-rollout with the new checksum
    assert hook(puerta, "pre-rollout", checksum="rev-b").status_code == 200
    until(lambda: len(fake.dispatches) == 2)
    until(lambda: first.id in fake.cancelled)
    second = fake.last_run
    assert second.id != first.id
    assert fake.dispatches[1]["inputs"]["revision"] == "rev-b"

    listed = puerta.api("GET", "/ci/runs", params={"namespace": "staging"}).json()
    assert listed["total"] == 2
    old = next(r for r in listed["runs"] if r["external_id"] == str(first.id))
    assert old["status"] == "abandoned"
    assert "a new revision replaced this rollout; run cancelled on CI" in old["reason"]


def test_restart_mid_run_follows_the_same_run(
    gh_puerta: tuple[Puerta, FakeGitHub], clock: ManualClock
) -> None:
    puerta, fake = gh_puerta
    assert hook(puerta, "pre-rollout").status_code == 200
    until(lambda: run_status(puerta) == "queued")
    run = fake.last_run
    puerta.restart()  # a new process on the same database
    fake.complete(run.id, "success")
    poll_round(puerta, clock)
    assert run_status(puerta) == "succeeded"
    assert hook(puerta, "confirm-promotion").status_code == 200
    assert len(fake.dispatches) == 1


# ---- outages, rate limits, deadlines -----------------------------------------------------


def test_an_outage_is_a_wait_and_fails_at_the_deadline(
    gh_puerta: tuple[Puerta, FakeGitHub], clock: ManualClock
) -> None:
    puerta, fake = gh_puerta
    fake.fail_next(None, status=503)  # GitHub is down until healed
    assert hook(puerta, "pre-rollout").status_code == 200
    until(lambda: (runs(puerta) or [{}])[0].get("last_error") is not None)
    waiting = hook(puerta, "confirm-promotion")
    assert waiting.status_code == 403
    assert "E2E e2e starting on gh" in waiting.text
    assert "HTTP 503" in waiting.text
    assert "fails at 2026-11-26 10:30 UTC" in waiting.text
    assert fake.dispatches == []

    clock.advance(timedelta(minutes=31))
    until(lambda: run_status(puerta) == "failed")
    failed = hook(puerta, "confirm-promotion")
    assert failed.status_code == 403
    assert "did not finish within its deadline of 30m" in failed.text
    assert "HTTP 503" in failed.text
    assert hook(puerta, "rollback").status_code == 200


def test_a_deadline_passes_even_when_no_runner_got_to_it(
    gh_puerta: tuple[Puerta, FakeGitHub], clock: ManualClock
) -> None:
    """The gate itself refuses a run past its deadline: an outage of Puerta's own runners
    (or a stalled provider) is never a pass."""
    puerta, fake = gh_puerta
    fake.fail_next(None, status=503)
    assert hook(puerta, "pre-rollout").status_code == 200
    puerta.stop()
    settings_clock = clock
    settings_clock.advance(timedelta(minutes=45))
    puerta.environ["PUERTA_RUNNER_INTERVAL"] = "3600"  # the restarted runner rounds once
    puerta.start()
    answer = hook(puerta, "confirm-promotion")
    assert answer.status_code == 403
    assert "did not finish" in answer.text


def test_rate_limit_retry_after_is_honoured(
    gh_puerta: tuple[Puerta, FakeGitHub], clock: ManualClock
) -> None:
    puerta, fake = gh_puerta
    fake.fail_next(1, status=429, retry_after="120")
    assert hook(puerta, "pre-rollout").status_code == 200
    until(lambda: (runs(puerta) or [{}])[0].get("last_error") is not None)
    (run,) = runs(puerta)
    assert "rate limited" in run["last_error"]
    due = datetime.fromisoformat(run["next_check_at"])
    assert due - clock.now() >= timedelta(seconds=120)
    requests = len(fake.received)

    clock.advance(timedelta(seconds=60))
    assert hook(puerta, "confirm-promotion").status_code == 403  # wakes the runner
    time_to_act = time.monotonic() + 0.5
    while time.monotonic() < time_to_act:  # give the runner rounds to (wrongly) retry
        assert len(fake.received) == requests
        time.sleep(0.05)

    clock.advance(timedelta(seconds=61))
    until(lambda: run_status(puerta) == "queued")
    assert len(fake.dispatches) == 1


def test_the_request_budget_is_shared_and_kept(
    database_url: str, github: tuple[FakeGitHub, str], clock: ManualClock
) -> None:
    """Six canaries start at once under a budget of 6 requests/min with a burst of 2: two
    dispatches go out now, then one every 10 s of (clock) time, never more."""
    fake, url = github
    puerta = make_puerta(database_url, url, clock, rpm=6, burst=2)
    try:
        for i in range(6):
            payload = flagger_payload(
                "pre-rollout", namespace="staging", name=f"svc-{i}", checksum="r1", metadata={}
            )
            assert puerta.http.post("/hooks/pre-rollout", json=payload).status_code == 200
        until(lambda: len(fake.dispatches) == 2)
        settle = time.monotonic() + 0.5
        while time.monotonic() < settle:
            assert len(fake.dispatches) == 2
            time.sleep(0.05)
        assert untouched_pending(puerta) == 4  # the runner did not churn runs it cannot serve
        clock.advance(timedelta(seconds=10))
        puerta.http.post("/hooks/pre-rollout", json=payload)  # any call wakes the runner
        until(lambda: len(fake.received) >= 3)
        settle = time.monotonic() + 0.5
        while time.monotonic() < settle:
            assert len(fake.received) == 3
            time.sleep(0.05)
        assert untouched_pending(puerta) == 3
    finally:
        puerta.stop()


def untouched_pending(puerta: Puerta) -> int:
    """Pending runs the runner never claimed for a request its budget could not grant (such a
    try moves the run's next check on)."""
    response = puerta.api("GET", "/ci/runs?limit=100", token=VIEWER)
    assert response.status_code == 200, response.text
    listed = response.json()["runs"]
    pending = [r for r in listed if r["status"] == "pending"]
    assert all(r["next_check_at"] == r["created_at"] for r in pending), pending
    return len(pending)


# ---- the blocking mode -------------------------------------------------------------------


@pytest.fixture
def ticking() -> TickingClock:
    return TickingClock(datetime(2026, 11, 26, 10, 0, tzinfo=UTC), timedelta(seconds=1))


def test_held_pre_rollout_answers_when_the_run_passes(
    database_url: str, github: tuple[FakeGitHub, str], ticking: TickingClock
) -> None:
    fake, url = github
    puerta = make_puerta(database_url, url, ticking, wait="hold", hold="30s")
    try:
        started = time.monotonic()
        response = hook(puerta, "pre-rollout")
        assert response.status_code == 200, response.text
        assert response.text.startswith("passed pre-rollout[0] e2e: E2E e2e passed: https://")
        assert time.monotonic() - started < 30
        again = hook(puerta, "pre-rollout")  # re-attaches: the stored result, no new run
        assert again.status_code == 200
        assert len(fake.dispatches) == 1
    finally:
        puerta.stop()


def test_held_pre_rollout_refuses_when_the_run_fails(
    database_url: str, github: tuple[FakeGitHub, str], ticking: TickingClock
) -> None:
    fake, url = github
    fake.script = [("in_progress", None), ("completed", "failure")]
    puerta = make_puerta(database_url, url, ticking, wait="hold", hold="30s")
    try:
        response = hook(puerta, "pre-rollout")
        assert response.status_code == 403
        assert "E2E e2e failed: workflow" in response.text
        assert "https://github.com/acme/e2e/actions/runs/" in response.text
        verdicts = [e["verdict"] for e in puerta.audit(hook="pre-rollout")]
        assert verdicts == ["fail", "wait"]  # newest first: the held call decided twice
    finally:
        puerta.stop()


def test_hold_elapses_with_the_run_still_going(
    database_url: str, github: tuple[FakeGitHub, str], clock: ManualClock
) -> None:
    """A run longer than ``hold``: the call answers 403 "E2E running" after the hold; the
    next call re-attaches to the same run."""
    fake, url = github
    puerta = make_puerta(database_url, url, clock, wait="hold", hold="1s")
    try:
        first = hook(puerta, "pre-rollout")
        assert first.status_code == 403
        assert first.text.startswith("E2E e2e")
        until(lambda: run_status(puerta) == "queued")
        second = hook(puerta, "pre-rollout")
        assert second.status_code == 403
        assert "queued on gh: https://github.com/acme/e2e/actions/runs/" in second.text
        assert len(fake.dispatches) == 1
    finally:
        puerta.stop()


# ---- webhooks ------------------------------------------------------------------------------


def _signed(body: bytes, secret: str = HOOK_SECRET) -> str:
    import hashlib
    import hmac

    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _deliver(
    puerta: Puerta, payload: dict[str, Any], *, delivery: str, signature: str | None = None
) -> httpx.Response:
    body = json.dumps(payload).encode()
    headers = {
        "X-GitHub-Event": "workflow_run",
        "X-GitHub-Delivery": delivery,
        "Content-Type": "application/json",
    }
    headers["X-Hub-Signature-256"] = signature if signature is not None else _signed(body)
    response: httpx.Response = puerta.http.post("/webhooks/ci/gh", content=body, headers=headers)
    return response


def test_workflow_run_webhook_finishes_the_run_at_once(
    gh_puerta: tuple[Puerta, FakeGitHub], clock: ManualClock
) -> None:
    puerta, fake = gh_puerta
    assert hook(puerta, "pre-rollout").status_code == 200
    until(lambda: run_status(puerta) == "queued")
    run = fake.last_run
    fake.complete(run.id, "success")
    polls_before = len(fake.requests_to("GET", f"/runs/{run.id}"))
    event = fake.workflow_run_event(run.id, "completed")

    answer = _deliver(puerta, event, delivery="d-1")
    assert answer.status_code == 200
    assert run_status(puerta) == "succeeded"  # no poll was needed
    assert len(fake.requests_to("GET", f"/runs/{run.id}")) == polls_before
    assert hook(puerta, "confirm-promotion").status_code == 200
    (stored,) = runs(puerta)
    assert stored["events"][-1]["source"] == "webhook"

    again = _deliver(puerta, event, delivery="d-1")  # GitHub redelivers
    assert again.status_code == 200
    assert again.text == "duplicate delivery ignored"
    assert len(runs(puerta)[0]["events"]) == len(stored["events"])


def test_webhook_signatures_are_required(gh_puerta: tuple[Puerta, FakeGitHub]) -> None:
    puerta, fake = gh_puerta
    assert hook(puerta, "pre-rollout").status_code == 200
    until(lambda: run_status(puerta) == "queued")
    fake.complete(fake.last_run.id, "failure")
    event = fake.workflow_run_event(fake.last_run.id, "completed")
    body = json.dumps(event).encode()

    wrong = _deliver(puerta, event, delivery="d-2", signature=_signed(body, "not the secret"))
    assert wrong.status_code == 401
    assert wrong.text == "X-Hub-Signature-256 does not match the body"
    tampered = json.dumps({**event, "action": "completed "}).encode()
    forged = puerta.http.post(
        "/webhooks/ci/gh",
        content=tampered,
        headers={
            "X-GitHub-Event": "workflow_run",
            "X-GitHub-Delivery": "d-3",
            "X-Hub-Signature-256": _signed(body),
        },
    )
    assert forged.status_code == 401
    missing = puerta.http.post(
        "/webhooks/ci/gh", content=body, headers={"X-GitHub-Event": "workflow_run"}
    )
    assert missing.status_code == 401
    assert missing.text == "missing X-Hub-Signature-256 header"
    assert run_status(puerta) == "queued"  # nothing unsigned changed the run
    unknown = puerta.http.post("/webhooks/ci/nope", content=body)
    assert unknown.status_code == 404


def test_ping_and_other_events_are_acknowledged(gh_puerta: tuple[Puerta, FakeGitHub]) -> None:
    puerta, _ = gh_puerta
    body = b'{"zen": "Design for failure."}'
    headers = {
        "X-GitHub-Event": "ping",
        "X-GitHub-Delivery": "p-1",
        "X-Hub-Signature-256": _signed(body),
    }
    answer = puerta.http.post("/webhooks/ci/gh", content=body, headers=headers)
    assert (answer.status_code, answer.text) == (200, "pong")


# ---- bad input -------------------------------------------------------------------------------


def test_a_metadata_placeholder_the_webhook_did_not_send_fails_the_gate(
    database_url: str, github: tuple[FakeGitHub, str], clock: ManualClock
) -> None:
    fake, url = github
    puerta = make_puerta(database_url, url, clock)
    policy = puerta.policy_text.replace('revision: "{revision}"', 'revision: "{metadata.suite}"')
    puerta.restart(policy)
    try:
        answer = hook(puerta, "pre-rollout")
        assert answer.status_code == 403
        assert answer.text == "E2E e2e: the webhook sent no metadata.suite for its parameters"
        assert fake.dispatches == []
        ok = hook(puerta, "pre-rollout", suite="smoke")
        assert ok.status_code == 200
        until(lambda: len(fake.dispatches) == 1)
        assert fake.dispatches[0]["inputs"]["revision"] == "smoke"
    finally:
        puerta.stop()


# ---- what the Canary's metadata picks, the poll schedule, Flagger's whole tick order -----


def test_the_canary_metadata_picks_repository_branch_and_workflow(
    database_url: str, github: tuple[FakeGitHub, str], clock: ManualClock
) -> None:
    """Each team picks its own suite from its Canary's webhook metadata; a Canary that sends
    none gets the policy's defaults."""
    fake, url = github
    fake.add_workflow(
        "acme/payments-e2e", "smoke.yml", run_name="E2E {puerta_run}", inputs=["target", "revision"]
    )
    policy = (
        POLICY.format(
            url=url,
            repo='"{metadata.repo|acme/e2e}"',
            wait="background",
            hold="50s",
            rpm=600,
            burst=20,
        )
        .replace("workflow: e2e.yml", 'workflow: "{metadata.suite|e2e.yml}"')
        .replace("ref: main", 'ref: "{metadata.branch|main}"')
    )
    puerta = Puerta(database_url, policy, clock)
    puerta.environ.update({"GH_TOKEN": GH_TOKEN, "GH_HOOK_SECRET": HOOK_SECRET})
    puerta.start()
    try:
        chosen = {"repo": "acme/payments-e2e", "suite": "smoke.yml", "branch": "release"}
        assert hook(puerta, "pre-rollout", **chosen).status_code == 200
        until(lambda: len(fake.dispatches) == 1)
        first = fake.last_run
        assert (first.workflow.repo, first.workflow.file, first.ref) == (
            "acme/payments-e2e",
            "smoke.yml",
            "release",
        )

        other = flagger_payload("pre-rollout", namespace="staging", name="checkout", metadata={})
        assert puerta.http.post("/hooks/pre-rollout", json=other).status_code == 200
        until(lambda: len(fake.dispatches) == 2)
        second = fake.last_run
        assert (second.workflow.repo, second.workflow.file, second.ref) == (
            REPO,
            "e2e.yml",
            "main",
        )
    finally:
        puerta.stop()


def test_polls_back_off_while_nothing_changes_and_after_errors(
    gh_puerta: tuple[Puerta, FakeGitHub], clock: ManualClock
) -> None:
    """poll_interval 10s, max_poll_interval 1m: a run that stays the same is looked at less
    and less often (x1.5 each time, up to the cap), a change brings the interval back, and an
    error doubles it."""
    puerta, fake = gh_puerta
    fake.script = [("in_progress", None)]
    assert hook(puerta, "pre-rollout").status_code == 200
    until(lambda: run_status(puerta) == "queued")

    def next_wait() -> float:
        (run,) = runs(puerta)
        due = datetime.fromisoformat(run["next_check_at"])
        return (due - clock.now()).total_seconds()

    assert next_wait() == 10  # just triggered
    waits = []
    for _ in range(6):
        poll_round(puerta, clock, seconds=next_wait())
        waits.append(next_wait())
    # queued -> running is a change (10 s); then unchanged: 15, 22.5, 33.75, 50.6, 60 (the cap)
    assert waits == [10, 15, 22.5, 33.75, 50.625, 60]

    fake.fail_next(1, status=502)
    errors_before = (runs(puerta)[0].get("last_error"), clock.now())
    clock.advance(timedelta(seconds=60))
    until(lambda: runs(puerta)[0].get("last_error") not in (None, errors_before[0]))
    assert next_wait() == 60  # doubled, held at the cap
    assert "HTTP 502" in runs(puerta)[0]["last_error"]


def _tick(puerta: Puerta, calls: list[tuple[str, str]], checksum: str = "rev-a") -> list[int]:
    """One Flagger tick: the hook calls in Flagger's order, each with its phase."""
    answers = []
    for name, phase in calls:
        payload = flagger_payload(
            name, namespace="staging", name="podinfo", checksum=checksum, phase=phase, metadata={}
        )
        answers.append(puerta.http.post(f"/hooks/{name}", json=payload).status_code)
    return answers


def test_flaggers_whole_tick_order_in_the_background_mode(
    gh_puerta: tuple[Puerta, FakeGitHub], clock: ManualClock
) -> None:
    """The calls Flagger makes for one rollout, tick by tick (flagger-contract.md): the
    rollback hook before the others in every Progressing tick, pre-rollout at weight 0,
    confirm-traffic-increase before each step, rollout with the analysis, confirm-promotion
    at the top, post-rollout once."""
    puerta, fake = gh_puerta
    fake.script = [("in_progress", None), ("completed", "success")]
    assert _tick(puerta, [("confirm-rollout", "Initialized")]) == [200]
    # weight 0: rollback (carry on), pre-rollout triggers and lets the canary on at once
    assert _tick(puerta, [("rollback", "Progressing"), ("pre-rollout", "Progressing")]) == [
        403,
        200,
    ]
    until(lambda: run_status(puerta) == "queued")
    # the first step waits for the run; the rollback hook keeps saying "carry on"
    progressing = [("rollback", "Progressing"), ("confirm-traffic-increase", "Progressing")]
    assert _tick(puerta, progressing) == [403, 403]
    poll_round(puerta, clock)  # running
    assert _tick(puerta, progressing) == [403, 403]
    poll_round(puerta, clock)  # passed
    assert _tick(puerta, [*progressing, ("rollout", "Progressing")]) == [403, 200, 200]
    top = [*progressing, ("rollout", "Progressing"), ("confirm-promotion", "Progressing")]
    assert _tick(puerta, top) == [403, 200, 200, 200]
    assert _tick(puerta, [("post-rollout", "Succeeded")]) == [200]
    assert len(fake.dispatches) == 1

    canary = puerta.api("GET", "/canaries/staging/podinfo", token=VIEWER).json()
    assert canary["rollout"]["status"] == "succeeded"
    assert [r["status"] for r in canary["e2e_runs"]] == ["succeeded"]


def test_flaggers_whole_tick_order_in_the_blocking_mode(
    database_url: str, github: tuple[FakeGitHub, str], ticking: TickingClock
) -> None:
    """The blocking mode: pre-rollout holds until the run failed and answers 403; Flagger
    calls it again next tick (threshold) and gets the same verdict from the same run, with
    no second trigger."""
    fake, url = github
    fake.script = [("in_progress", None), ("completed", "failure")]
    puerta = make_puerta(database_url, url, ticking, wait="hold", hold="30s")
    try:
        assert _tick(puerta, [("confirm-rollout", "Initialized")]) == [200]
        weight_zero = [("rollback", "Progressing"), ("pre-rollout", "Progressing")]
        assert _tick(puerta, weight_zero) == [403, 403]
        assert _tick(puerta, weight_zero) == [200, 403]  # failed: the rollback hook says now
        assert _tick(puerta, [("post-rollout", "Failed")]) == [200]
        assert len(fake.dispatches) == 1
        canary = puerta.api("GET", "/canaries/staging/podinfo", token=VIEWER).json()
        assert canary["rollout"]["status"] == "failed"
    finally:
        puerta.stop()
